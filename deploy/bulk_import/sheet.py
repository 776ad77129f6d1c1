"""Caption sheets: the CSV or XLSX a station hands over with a folder of footage.

One row per file: file name, title, activity type, caption, recorded date,
source organisation. Header names may be Vietnamese or English, with or without
diacritics (``Tên tệp``, ``ten tep``, ``filename`` …). CSV text arrives in
whatever Windows or a phone wrote: UTF-8 with or without BOM, UTF-16 with BOM
(Excel's "Unicode text"), Windows-1258 (Vietnamese Windows, which writes tone
marks as combining characters) or NFD text (macOS). The encoding is detected,
told back to the user, and every value is normalised to NFC.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from shared.taxonomy import activity_types
from shared.text import fold

FIELDS = ("filename", "title", "activity_type", "caption", "recorded_at", "source_org")

# Header names per field, folded (shared.text.fold) with "_"/"-" read as spaces.
HEADER_ALIASES: dict[str, frozenset[str]] = {
    "filename": frozenset(
        {"filename", "file name", "file", "ten tep", "tep", "tep tin", "ten tep tin", "tap tin", "ten file"}
    ),
    "title": frozenset({"title", "tieu de", "ten", "ten tu lieu"}),
    "activity_type": frozenset(
        {"activity type", "activity", "activity code", "loai hoat dong", "ma loai hoat dong", "hoat dong", "loai"}
    ),
    "caption": frozenset({"caption", "description", "chu thich", "mo ta", "noi dung"}),
    "recorded_at": frozenset(
        {"recorded at", "recorded", "recorded date", "date", "ngay", "ngay ghi hinh", "ngay ghi", "thoi gian"}
    ),
    "source_org": frozenset(
        {"source org", "source", "source organisation", "source organization", "don vi", "nguon", "co quan"}
    ),
}
REQUIRED_COLUMNS = ("filename", "title", "activity_type")

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8 (BOM)"),
    (b"\xff\xfe", "utf-16-le", "UTF-16 LE (BOM)"),
    (b"\xfe\xff", "utf-16-be", "UTF-16 BE (BOM)"),
)


class SheetError(ValueError):
    """The sheet cannot be read at all (bilingual, shown as is)."""

    def __init__(self, message_vi: str, message_en: str) -> None:
        super().__init__(f"{message_vi} / {message_en}")
        self.message_vi = message_vi
        self.message_en = message_en


@dataclass(frozen=True)
class SheetRow:
    """One file's captions, NFC. ``line`` is the row number as the spreadsheet shows it."""

    line: int
    filename: str
    title: str = ""
    activity_type: str = ""
    caption: str = ""
    recorded_at: str = ""
    source_org: str = ""

    def metadata(self) -> dict[str, str]:
        """The tus ``Upload-Metadata`` of this row (empty values left out)."""
        values = {
            "title": self.title,
            "activity_type": self.activity_type,
            "caption": self.caption,
            "recorded_at": self.recorded_at,
            "source_org": self.source_org,
        }
        return {key: value for key, value in values.items() if value}


@dataclass(frozen=True)
class Sheet:
    path: Path
    rows: tuple[SheetRow, ...]
    # What was assumed: "UTF-8", "UTF-8 (BOM)", "UTF-16 LE (BOM)", "Windows-1258", "XLSX".
    encoding: str
    # Cells that were not NFC as read (NFD text, or Windows-1258's combining tone marks).
    normalised_cells: int = 0
    ignored_columns: tuple[str, ...] = field(default=())


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the name of the encoding it was read in.

    A BOM decides; else strict UTF-8 (which Windows-1258 Vietnamese almost never
    passes: its tone marks are lone high bytes); else UTF-16 without BOM if every
    other byte is NUL; else Windows-1258, the Vietnamese Windows code page.
    """
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), name
            except UnicodeDecodeError as exc:
                raise _undecodable(name, exc) from exc
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    sample = data[:4096]
    if len(sample) >= 4:
        even_nuls, odd_nuls = sample[0::2].count(0), sample[1::2].count(0)
        half = len(sample) // 2
        for nuls, codec, name in ((odd_nuls, "utf-16-le", "UTF-16 LE"), (even_nuls, "utf-16-be", "UTF-16 BE")):
            if nuls > half * 0.6:
                try:
                    return data.decode(codec), name
                except UnicodeDecodeError:
                    break
    try:
        return data.decode("cp1258"), "Windows-1258"
    except UnicodeDecodeError as exc:
        raise _undecodable("Windows-1258", exc) from exc


def _undecodable(name: str, exc: UnicodeDecodeError) -> SheetError:
    return SheetError(
        f"Không đọc được bảng chú thích: không phải UTF-8, UTF-16 hay Windows-1258 (byte {exc.start}). "
        "Hãy lưu lại dưới dạng CSV UTF-8.",
        f"Cannot read the caption sheet: not UTF-8, UTF-16 or Windows-1258 ({name} fails at byte "
        f"{exc.start}). Save it again as CSV UTF-8.",
    )


def _header_key(name: str) -> str:
    return " ".join(re.sub(r"[_\-./]+", " ", fold(name)).split())


def column_for(header: str) -> str | None:
    key = _header_key(header)
    for name, aliases in HEADER_ALIASES.items():
        if key == name.replace("_", " ") or key in aliases:
            return name
    return None


def activity_code(value: str) -> str:
    """A known activity code for a code or a label (Vietnamese or English, any diacritics);
    anything else is returned as typed, for the server (or the dry run) to refuse."""
    key = _header_key(value)
    for item in activity_types():
        if key in {item.code.replace("-", " "), _header_key(item.label_vi), _header_key(item.label_en)}:
            return item.code
    return value.strip()


_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")


def recorded_date(value: Any) -> str:
    """ISO text for the server: spreadsheet dates, ISO dates/datetimes and the Vietnamese
    day-first ``20/6/2023``; anything else is returned as typed, to be refused."""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    match = _DMY.match(text)
    if match:
        day, month, year = (int(g) for g in match.groups())
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            return text
    return text


def _cell(value: Any) -> tuple[str, bool]:
    """A cell as NFC text with whitespace collapsed, and whether NFC changed it."""
    if value is None:
        return "", False
    text = value if isinstance(value, str) else str(value)
    normal = unicodedata.normalize("NFC", text)
    return " ".join(normal.split()), normal != text


def rows_from_table(table: Iterable[list[Any]]) -> tuple[list[SheetRow], int, tuple[str, ...]]:
    """Rows from a grid whose first non-empty row is the header."""
    header: list[str | None] | None = None
    ignored: list[str] = []
    rows: list[SheetRow] = []
    changed = 0
    for line, raw in enumerate(table, start=1):
        if not any(value not in (None, "") and str(value).strip() for value in raw):
            continue
        if header is None:
            header = []
            for value in raw:
                text, _ = _cell(value)
                column = column_for(text) if text else None
                header.append(column)
                if text and column is None:
                    ignored.append(text)
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise SheetError(
                    f"Bảng chú thích thiếu cột: {', '.join(missing)} (dòng tiêu đề: {line}).",
                    f"The caption sheet lacks the column(s): {', '.join(missing)} (header row {line}).",
                )
            continue
        values: dict[str, Any] = {}
        for column, value in zip(header, raw, strict=False):
            if column is not None and column not in values:
                values[column] = value
        cells: dict[str, str] = {}
        for column, value in values.items():
            if column == "recorded_at" and value not in (None, ""):
                value = recorded_date(value)
            cells[column], was_changed = _cell(value)
            changed += was_changed
        cells["activity_type"] = activity_code(cells.get("activity_type", ""))
        rows.append(SheetRow(line=line, **cells))
    if header is None:
        raise SheetError("Bảng chú thích trống.", "The caption sheet is empty.")
    return rows, changed, tuple(ignored)


def parse_csv_text(text: str) -> tuple[list[SheetRow], int, tuple[str, ...]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)  # Excel writes ';' in some locales, tabs as "Unicode text"
    return rows_from_table(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def read_sheet(path: Path) -> Sheet:
    """Read a ``.csv`` (any of the encodings above) or ``.xlsx`` caption sheet."""
    try:
        if path.suffix.lower() in {".xlsx", ".xlsm"}:
            rows, changed, ignored = rows_from_table(_xlsx_table(path))
            return Sheet(path, tuple(rows), "XLSX", changed, ignored)
        text, encoding = decode_text(path.read_bytes())
    except OSError as exc:
        raise SheetError(
            f"Không mở được bảng chú thích {path}: {exc.strerror}.", f"Cannot open the caption sheet {path}: {exc}."
        ) from exc
    rows, changed, ignored = parse_csv_text(text.lstrip("\ufeff"))
    return Sheet(path, tuple(rows), encoding, changed, ignored)


def _xlsx_table(path: Path) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged or foreign file
        raise SheetError(
            f"Không đọc được tệp Excel {path.name}: {exc}.", f"Cannot read the Excel file {path.name}: {exc}."
        ) from exc
    try:
        sheet = book.active
        if sheet is None:
            raise SheetError("Tệp Excel không có trang tính.", "The Excel file has no worksheet.")
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def row_from_mapping(values: Mapping[str, Any], filename: str) -> SheetRow:
    """A sidecar caption (``clip.mp4.json``): the sheet's columns as keys, any alias."""
    header = list(values)
    rows, _, _ = rows_from_table([["filename", *header], [filename, *(values[k] for k in header)]])
    row = rows[0]
    return SheetRow(
        line=1,
        filename=filename,
        title=row.title,
        activity_type=row.activity_type,
        caption=row.caption,
        recorded_at=row.recorded_at,
        source_org=row.source_org,
    )
