"""Caption sheets as stations write them: every encoding ``mam import`` reads."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence
from pathlib import Path

# Windows-1258 has the vowels with circumflex, breve and horn precomposed, but the five
# tone marks only as combining characters: Vietnamese text is written half-decomposed.
_TONE_MARKS = frozenset("\u0300\u0301\u0303\u0309\u0323")
SHEET_ENCODINGS = ("utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "cp1258", "nfd", "xlsx")


def cp1258_bytes(text: str) -> bytes:
    """``text`` as Vietnamese Windows writes it (precomposed base letter + combining tone)."""
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        parts = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in _TONE_MARKS))
        out += (base + "".join(c for c in parts if c in _TONE_MARKS)).encode("cp1258")
    return bytes(out)


def write_sheet(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]], encoding: str) -> Path:
    """A sheet file in one of SHEET_ENCODINGS (``.xlsx`` written with openpyxl)."""
    if encoding == "xlsx":
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(list(header))
        for row in rows:
            sheet.append(list(row))
        book.save(path)
        return path
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows([list(header), *map(list, rows)])
    text = buffer.getvalue()
    data = {
        "utf-8": lambda: text.encode("utf-8"),
        "utf-8-bom": lambda: b"\xef\xbb\xbf" + text.encode("utf-8"),
        "utf-16-le-bom": lambda: text.encode("utf-16"),  # Python writes a BOM, little-endian here
        "utf-16-be-bom": lambda: b"\xfe\xff" + text.encode("utf-16-be"),
        "cp1258": lambda: cp1258_bytes(text),
        "nfd": lambda: unicodedata.normalize("NFD", text).encode("utf-8"),
    }[encoding]()
    path.write_bytes(data)
    return path
