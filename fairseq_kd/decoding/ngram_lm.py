"""Building the word n-gram LM and its lexicon for CTC beam search with shallow fusion (``--ctc-decoder
beam_lm``); ``scripts/build_lm.py`` is its command line.

Steps of :func:`build_lm`: every line of the text is normalised like the transcripts
(:func:`fairseq_kd.data.text.normalize_transcript`; lines it rejects are dropped); lines equal to a sentence of
an ``exclude`` file (dev/test transcripts), or containing one of at least ``contained_min_words`` words, are
removed, and the written text is checked again for any excluded sentence (the build fails if one remains);
KenLM's lmplz (modified Kneser-Ney) and build_binary (from .venv/bin, built by scripts/setup_env.sh) make the
LM; the lexicon spells every word of the LM vocabulary in the model's units (letters: "WORD W O R D |") and
leaves out words with a letter missing from the dictionary.

Outputs in ``out_dir``, each written atomically: lm.bin (KenLM binary), lexicon.txt, lm_text.txt (the
normalised text the LM was estimated on) and build_lm.json (sources, checksums, counts; written last).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, NamedTuple, Sequence

from fairseq.data import Dictionary
from tqdm import tqdm

from ..data.exclusion import CONTAINED_MIN_WORDS, TextExclusion
from ..errors import DataError, ToolError
from ..io_utils import atomic_write, open_text_hashed, sha256_file
from .lexicon import write_lexicon

ARPA_SPECIALS = {"<s>", "</s>", "<unk>"}
INFO_FILE = "build_lm.json"


class BuiltLm(NamedTuple):
    info: dict                       # the content of build_lm.json
    words_not_spellable: List[str]   # LM words left out of the lexicon (build_lm.json keeps the first 100)


def kenlm_tool(name: str) -> str:
    """Path of a KenLM program: next to the Python executable (scripts/setup_env.sh builds them there) or on PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    path = path if os.access(path, os.X_OK) else shutil.which(name)
    if path is None:
        raise ToolError(f"KenLM's {name} not found next to {sys.executable} or on PATH: run scripts/setup_env.sh")
    return path


def arpa_vocabulary(arpa_path: str) -> List[str]:
    """Words of the ARPA \\1-grams section, in file order, without <s>, </s>, <unk>."""
    words, in_unigrams = [], False
    with open(arpa_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                in_unigrams = True
            elif in_unigrams and (line.startswith("\\") or not line):
                break
            elif in_unigrams:
                word = line.split("\t")[1]
                if word not in ARPA_SPECIALS:
                    words.append(word)
    return words


def run_tool(cmd, stdin=None, stdout=None) -> None:
    proc = subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        hint = ("\n(small text: add --discount-fallback)" if "discount" in proc.stderr.lower()
                and "--discount_fallback" not in cmd else "")
        raise ToolError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}{hint}")


def build_lm(text: str, dict_path: str, out_dir: str, exclude: Sequence[str] = (),
             contained_min_words: int = CONTAINED_MIN_WORDS, order: int = 4, memory: str = "1G",
             prune: Sequence[str] = (), discount_fallback: bool = False) -> BuiltLm:
    """Build ``lm.bin``, ``lexicon.txt``, ``lm_text.txt`` and ``build_lm.json`` in ``out_dir`` (module docstring).

    Raises :class:`~fairseq_kd.errors.DataError` for missing inputs, a text with nothing left after normalisation
    and exclusion, or an excluded sentence still in the written text; :class:`~fairseq_kd.errors.ToolError` when a
    KenLM program is missing or fails.
    """
    if not os.path.isfile(text):
        raise DataError(f"--text {text} not found (scripts/extract_text.py makes one)")
    if not os.path.isfile(dict_path):
        raise DataError(f"--dict {dict_path} not found: pass the dict.ltr.txt the model was trained with")
    lmplz, build_binary = kenlm_tool("lmplz"), kenlm_tool("build_binary")
    units = Dictionary.load(dict_path).symbols
    exclusion = TextExclusion(exclude, contained_min_words)
    os.makedirs(out_dir, exist_ok=True)

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build_lm.") as work:
        text_tmp, arpa_tmp = os.path.join(work, "lm_text.txt"), os.path.join(work, "lm.arpa")
        counts = {"lm_lines": 0, "lm_words": 0}
        text_digest = hashlib.sha256()  # of the raw text, fed by the filter's pass: the text is read once here
        with open_text_hashed(text, text_digest) as src, open(text_tmp, "w", encoding="utf-8") as out:
            raw_lines = tqdm(src, desc="normalise + exclude", unit=" lines", disable=None)
            for line in exclusion.lines(raw_lines, counts):
                out.write(line + "\n")
                counts["lm_lines"] += 1
                counts["lm_words"] += line.count(" ") + 1  # a normalised line: words and single spaces
        if counts["lm_lines"] == 0:
            raise DataError(f"no LM text left from {text} after normalisation and exclusion")
        with open(text_tmp, encoding="utf-8") as f:
            exclusion.check(f, "the LM text")  # streamed: memory bounded by the excluded sentences

        lmplz_cmd = [lmplz, "-o", str(order), "-S", memory, "-T", work]
        if prune:
            lmplz_cmd += ["--prune", *prune]
        if discount_fallback:
            lmplz_cmd.append("--discount_fallback")
        with open(text_tmp, encoding="utf-8") as stdin, open(arpa_tmp, "w", encoding="utf-8") as stdout:
            run_tool(lmplz_cmd, stdin=stdin, stdout=stdout)
        run_tool([build_binary, arpa_tmp, os.path.join(work, "lm.bin")])
        vocabulary = arpa_vocabulary(arpa_tmp)
        written, skipped = write_lexicon(os.path.join(work, "lexicon.txt"), vocabulary, units)

        for name in ("lm.bin", "lexicon.txt", "lm_text.txt"):
            os.replace(os.path.join(work, name), os.path.join(out_dir, name))
    info = {
        "text": os.path.abspath(text), "text_sha256": text_digest.hexdigest(),
        "dict": os.path.abspath(dict_path), "dict_sha256": sha256_file(dict_path),
        "exclude": [{"path": os.path.abspath(p), "sha256": sha256_file(p)} for p in exclude],
        "excluded_sentences": len(exclusion), "contained_min_words": contained_min_words,
        **counts, "order": order, "prune": list(prune), "discount_fallback": discount_fallback,
        "lm_vocabulary": len(vocabulary), "lexicon_words": written, "words_not_spellable": skipped[:100],
        "lm_bin_sha256": sha256_file(os.path.join(out_dir, "lm.bin")),
    }
    with atomic_write(os.path.join(out_dir, INFO_FILE)) as f:
        json.dump(info, f, indent=1)
    return BuiltLm(info, skipped)
