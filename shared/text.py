"""Vietnamese text normalisation.

Text is stored as NFC. Diacritic-insensitive search is done by the project
itself (the Elasticsearch distribution run locally has no ``analysis-common``
module and so no ``asciifolding``): ``fold`` is applied to indexed text and to
queries alike, filling parallel "folded" fields.
"""

from __future__ import annotations

import re
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


# --- user text: the input contract ---------------------------------------------------------------

# Bidirectional embeddings, overrides and isolates: they reorder what a reader sees
# ("U+202E" makes "gpj.exe" read as "exe.jpg"). Refused in user text.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Invisible characters with no place in Vietnamese text: removed (said so in the README).
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


class TextProblem(ValueError):
    """User text that breaks the contract, with the reason in Vietnamese and English."""

    def __init__(self, code: str, message_vi: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_vi = message_vi
        self.message_en = message_en


# Refused characters: the C0 and C1 controls (category Cc, a fixed set) but tab and line
# breaks, lone surrogates (Cs) and the bidi controls. One compiled class, so checking and
# coercing stored text runs at C speed (the search projector coerces every text it folds);
# tests/unit/test_text.py checks it against the Unicode categories.
_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff" + "".join(sorted(_BIDI_CONTROLS)) + "]")


def _refused_char(text: str) -> str | None:
    found = _REFUSED.search(text)
    return found.group() if found else None


def _visible(text: str) -> bool:
    """Something a reader can see: a letter, digit, punctuation or symbol (not only marks)."""
    return any(unicodedata.category(ch)[0] in "LNPS" for ch in text)


def check_text(value: str, max_length: int, *, required: bool = True) -> str:
    """User text as stored: NFC, whitespace collapsed, invisible characters removed.

    Control characters, lone surrogates and bidi overrides are refused, as is
    text that is blank once trimmed (when ``required``) or made only of
    combining marks, and text longer than ``max_length`` characters.
    """
    text = nfc(value)
    bad = _refused_char(text)
    if bad is not None:
        raise TextProblem(
            "forbidden_character",
            f"Có ký tự điều khiển không được phép (U+{ord(bad):04X}).",
            f"Contains a forbidden control or direction character (U+{ord(bad):04X}).",
        )
    text = " ".join(_INVISIBLE.sub("", text).split())
    if text and not _visible(text):
        raise TextProblem("invisible_text", "Nội dung không có chữ nào đọc được.", "The text has nothing visible.")
    if required and not text:
        raise TextProblem("blank", "Không được để trống.", "Must not be blank.")
    if len(text) > max_length:
        raise TextProblem(
            "too_long",
            f"Dài quá {max_length} ký tự ({len(text)}).",
            f"Longer than {max_length} characters ({len(text)}).",
        )
    return text


def coerce_text(value: str, max_length: int) -> str:
    """Stored text brought within the contract on read (events written before it existed):
    refused characters dropped, whitespace collapsed, cut at ``max_length``."""
    # Nearly all of it is already within (it was checked when written), and every event a
    # replay reads passes here: text with nothing to change is told by C-speed checks.
    # Every refused, invisible and whitespace character but the space is non-printable.
    if (
        value.isprintable()
        and "  " not in value
        and not value.startswith(" ")
        and not value.endswith(" ")
        and unicodedata.is_normalized("NFC", value)
    ):
        return value[:max_length]
    return _coerced(value, max_length)


def _coerced(value: str, max_length: int) -> str:
    text = _REFUSED.sub("", nfc(value))
    return " ".join(_INVISIBLE.sub("", text).split())[:max_length]
