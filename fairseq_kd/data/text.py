"""Transcript normalisation shared by the corpus, label, teacher and LM tools.

Transcripts follow LibriSpeech conventions: upper-case ASCII letters and apostrophes, words separated by
single spaces. Letter labels (``.ltr``) follow fairseq's ``libri_labels.py``: every character separated by
a space, ``|`` marking word boundaries and closing the line (``HI YOU`` -> ``H I | Y O U |``).
"""
import re
import string
import unicodedata
from typing import Optional

WORD_BOUNDARY = "|"
TRANSCRIPT_ALPHABET = string.ascii_uppercase + "'"  # every character of a transcript but the word-separating space
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_DROP = re.compile(r"[\"\u201c\u201d,.;:!?()\[\]{}\u2014\u2013-]")
_ALLOWED = re.compile(f"^[{re.escape(TRANSCRIPT_ALPHABET)} ]+$")
# a transcript already (librispeech-lm-norm.txt, our own outputs): words of A-Z with inner apostrophes, one space
_TRANSCRIPT = re.compile(r"[A-Z]+(?:'+[A-Z]+)*(?: [A-Z]+(?:'+[A-Z]+)*)*")


def normalize_transcript(text: str) -> Optional[str]:
    """Map raw text to a LibriSpeech-style transcript, or ``None`` when it cannot be spoken unambiguously.

    Punctuation is dropped (dashes become spaces), curly apostrophes become ``'``, letters are upper-cased.
    Text with digits, symbols or non-ASCII letters returns ``None``: a TTS voice would read them in a way
    the transcript cannot know (``12`` -> "twelve"), so such sentences are left out rather than mislabelled.
    A text that is a transcript already, but for surrounding whitespace, is its own normalisation (returned
    stripped without the steps above: 4x faster on a normalised LM text).
    """
    stripped = text.strip()
    if _TRANSCRIPT.fullmatch(stripped):
        return stripped
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    text = re.sub(r"[\u2014\u2013-]", " ", text)
    text = _DROP.sub("", text).upper()
    text = " ".join(word.strip("'") for word in text.split())
    text = " ".join(text.split())
    if not text or not _ALLOWED.match(text):
        return None
    return text


def words_to_letters(transcript: str) -> str:
    """``"HI YOU"`` -> ``"H I | Y O U |"`` (fairseq ``.ltr`` format)."""
    return " ".join(transcript.replace(" ", WORD_BOUNDARY)) + " " + WORD_BOUNDARY


def letters_to_words(letters: str) -> str:
    """Inverse of :func:`words_to_letters`; tolerant of missing or repeated boundaries."""
    return " ".join(letters.replace(" ", "").replace(WORD_BOUNDARY, " ").split())
