"""Vietnamese text normalisation.

Text is stored as NFC. Diacritic-insensitive search is done by the project
itself (the Elasticsearch distribution run locally has no ``analysis-common``
module and so no ``asciifolding``): ``fold`` is applied to indexed text and to
queries alike, filling parallel "folded" fields.
"""

from __future__ import annotations

import unicodedata

# đ/Đ are letters of their own, not d + a combining mark, so NFD leaves them.
_EXTRA_FOLDS = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "Ð": "d"})


def nfc(text: str) -> str:
    """Return ``text`` in Unicode NFC, the form every stored string uses."""
    return unicodedata.normalize("NFC", text)


def _fold_char(ch: str) -> str:
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    folded = base.translate(_EXTRA_FOLDS).lower()
    # Exactly one character out per character in, so offsets in folded text are
    # offsets in the NFC original (used to map highlights back onto it).
    return folded if len(folded) == 1 else ch


class _FoldTable(dict[int, str]):
    """``str.translate`` table filled on first sight of each character: folding runs
    at C speed (it is most of the projector's per-event work)."""

    def __missing__(self, code: int) -> str:
        folded = self[code] = _fold_char(chr(code))
        return folded


_FOLD_TABLE = _FoldTable()


def fold(text: str) -> str:
    """Fold for diacritic-insensitive matching: NFD, drop marks, đ→d, lowercase.

    The input is first put in NFC, and the result has the same length as that
    NFC text, character for character.

    >>> fold("Tiếp xúc cử tri ĐBQH")
    'tiep xuc cu tri dbqh'
    """
    return nfc(text).translate(_FOLD_TABLE)


def clean_text(text: str | None) -> str:
    """NFC plus whitespace collapsed; what user-supplied captions are stored as."""
    if not text:
        return ""
    return " ".join(nfc(text).split())
