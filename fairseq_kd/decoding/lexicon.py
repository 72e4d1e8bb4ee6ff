"""Pronunciation lexicon for lexicon-constrained CTC beam search (flashlight-text's ``LexiconDecoder``).

File format (the one fairseq's ``W2lKenLMDecoder`` and flashlight read): one spelling per line, the word
then its units separated by spaces; a word may have several lines (several spellings). With letter units
every spelling ends in the word boundary ``|``, as in the ``.ltr`` labels the model learned::

    CURSED C U R S E D |
    IS I S |

:func:`write_lexicon` spells words with the model's units; :func:`read_lexicon` checks a lexicon against the
model's dictionary before any of it reaches the C++ decoder.
"""
import os
from typing import Dict, Iterable, List, Sequence, Tuple

from ..data.text import WORD_BOUNDARY, words_to_letters
from ..errors import DataError
from ..io_utils import atomic_write

BUILD_HINT = "build the LM and its lexicon together with scripts/build_lm.py --dict <the model's dict.ltr.txt>"


def spell_in_letters(word: str) -> List[str]:
    """``"WORD"`` -> ``["W", "O", "R", "D", "|"]``: the letter units of the ``.ltr`` labels."""
    return words_to_letters(word).split()


def write_lexicon(path: str, words: Iterable[str], units: Sequence[str]) -> Tuple[int, List[str]]:
    """Write one letter spelling per word whose letters are all in ``units``; atomically.

    Returns the number of words written and the words left out (a letter missing from the model's units:
    the model could never emit them).
    """
    units = set(units)
    written, skipped = 0, []
    with atomic_write(path) as f:
        for word in words:
            spelling = spell_in_letters(word)
            if all(unit in units for unit in spelling):
                f.write(f"{word} {' '.join(spelling)}\n")
                written += 1
            else:
                skipped.append(word)
    return written, skipped


def read_lexicon(path: str, tgt_dict) -> Dict[str, List[List[int]]]:
    """Read ``path`` into ``{word: [spelling as target-dictionary ids, ...]}`` (file order), validated.

    Raises :class:`~fairseq_kd.errors.DataError` naming the file, the lines and the fix when the
    file is missing or empty, a line has no spelling, or a spelling uses a unit the model's dictionary
    does not have (or a special symbol: ``<s>`` is the CTC blank, never part of a word).
    """
    if not os.path.isfile(path):
        raise DataError(f"lexicon {path} not found: {BUILD_HINT}")
    specials = {tgt_dict.bos_word, tgt_dict.pad_word, tgt_dict.eos_word, tgt_dict.unk_word}
    lexicon: Dict[str, List[List[int]]] = {}
    problems = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                problems.append(f"line {line_number}: '{fields[0]}' has no spelling")
                continue
            word, spelling = fields[0], fields[1:]
            unknown = [unit for unit in spelling if unit in specials or unit not in tgt_dict.indices]
            if unknown:
                problems.append(f"line {line_number}: '{word}' is spelled with {sorted(set(unknown))}, "
                                f"not units of the model's dictionary")
                continue
            lexicon.setdefault(word, []).append([tgt_dict.index(unit) for unit in spelling])
    if problems:
        shown = "\n  ".join(problems[:5])
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise DataError(f"lexicon {path} does not fit the model's dictionary ({len(problems)} bad lines):\n  "
                        f"{shown}{more}\nThe lexicon must spell words in the units the model emits "
                        f"(e.g. 'WORD W O R D {WORD_BOUNDARY}' for letters): {BUILD_HINT}")
    if not lexicon:
        raise DataError(f"lexicon {path} is empty: {BUILD_HINT}")
    return lexicon


def read_lexicon_words(path: str) -> set:
    """The words of a lexicon file (first column: ``WORD W O R D |``, scripts/build_lm.py's lexicon.txt)."""
    try:
        with open(path, encoding="utf-8") as f:
            words = {line.split()[0] for line in f if line.strip()}
    except FileNotFoundError:
        raise DataError(f"lexicon {path} not found: pass the LM's lexicon.txt (scripts/build_lm.py)") from None
    if not words:
        raise DataError(f"lexicon {path} is empty: build it again with scripts/build_lm.py")
    return words
