"""Delegates (đại biểu) per term: the council's list as imported, and the read model of them.

The list comes as the Office keeps it, a spreadsheet (CSV or XLSX) with one row
per delegate: name, term, electoral unit (đơn vị bầu cử), delegate group (Tổ
đại biểu), role, organisation. Headers may be English or Vietnamese, with or
without diacritics. The read model folds ``delegate.*`` and ``activity.*``
events (the sessions of a term are its ``ky-hop`` activities); the search
service answers the delegate report from it and from the index.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from shared.activities import Activities, Activity
from shared.catch_up import fold_appended
from shared.events.delegates import DelegateEditedV1, DelegateRegisteredV1
from shared.people import name_key, person_id_for
from shared.ports import EventLog, StoredEvent
from shared.subjects import aggregate_type_filter
from shared.taxonomy import term_by_code
from shared.text import clean_text, fold

# Import limits: the council has some 50–90 delegates a term; a list is a few kilobytes.
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 5000
SESSION_TYPE = "ky-hop"

# Column -> the headers it may have (folded, spaces and underscores alike).
_HEADERS: dict[str, tuple[str, ...]] = {
    "person_id": ("person id", "ma", "ma dai bieu", "ma nguoi"),
    "name": ("name", "ho ten", "ho va ten", "dai bieu", "ten"),
    "term": ("term", "nhiem ky"),
    "electoral_unit": ("electoral unit", "don vi bau cu", "dvbc"),
    "group": ("group", "delegate group", "to dai bieu", "to", "to db"),
    "role": ("role", "chuc vu"),
    "organ": ("organ", "organisation", "co quan", "don vi cong tac", "noi cong tac"),
}


class DelegateListError(ValueError):
    """A list that cannot be read, with the reason in Vietnamese and English."""

    def __init__(self, message_vi: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_vi = message_vi
        self.message_en = message_en


@dataclass(frozen=True)
class DelegateRow:
    """One delegate of one term, as a list gives it (text cleaned, NFC)."""

    person_id: str
    name: str
    term: str
    electoral_unit: str = ""
    group: str = ""
    role: str = ""
    organ: str = ""
    line: int = 0  # where in the list (header = 1), for error messages

    @property
    def delegate_id(self) -> str:
        return delegate_id_for(self.person_id, self.term)


def delegate_id_for(person_id: str, term: str) -> str:
    """The delegate aggregate's id: one seat of one person in one term (subject-token safe)."""
    return "d" + hashlib.sha256(f"{person_id}|{term}".encode()).hexdigest()[:24]


def _column(header: str) -> str | None:
    key = " ".join(fold(header).replace("_", " ").replace("-", " ").split())
    for column, names in _HEADERS.items():
        if key in names:
            return column
    return None


def _rows_from_table(table: Iterable[list[str]]) -> list[DelegateRow]:
    rows = iter(table)
    header = next(rows, None)
    if header is None:
        raise DelegateListError("Danh sách trống.", "The list is empty.")
    columns = [_column(h or "") for h in header]
    if "name" not in columns or "term" not in columns:
        raise DelegateListError(
            "Danh sách cần dòng tiêu đề có cột họ tên (name / họ tên) và nhiệm kỳ (term / nhiệm kỳ).",
            "The list needs a header row with a name column (name / họ tên) and a term column (term / nhiệm kỳ).",
        )
    out: list[DelegateRow] = []
    for number, cells in enumerate(rows, start=2):
        if number > MAX_IMPORT_ROWS + 1:
            raise DelegateListError(
                f"Danh sách dài quá {MAX_IMPORT_ROWS} dòng.", f"The list has more than {MAX_IMPORT_ROWS} rows."
            )
        values: dict[str, str] = {}
        for column, cell in zip(columns, cells, strict=False):
            if column is not None and cell is not None:
                values[column] = clean_text(str(cell))
        name = values.get("name", "")
        if not name:
            continue  # blank lines, notes under the table
        term = values.get("term", "").replace(" ", "").replace("–", "-")
        if term_by_code(term) is None:
            raise DelegateListError(
                f"Dòng {number}: nhiệm kỳ '{term}' không có trong cấu hình (vd. 2021-2026).",
                f"Row {number}: term '{term}' is not a configured term (e.g. 2021-2026).",
            )
        person_id = values.get("person_id") or person_id_for(name)
        out.append(
            DelegateRow(
                person_id=person_id,
                name=name,
                term=term,
                electoral_unit=values.get("electoral_unit", ""),
                group=values.get("group", ""),
                role=values.get("role", ""),
                organ=values.get("organ", ""),
                line=number,
            )
        )
    return out


def parse_delegate_rows(text: str) -> list[DelegateRow]:
    """Rows of a CSV list (UTF-8, comma or semicolon separated, BOM allowed)."""
    body = text.lstrip("\ufeff")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(body[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        return _rows_from_table(csv.reader(io.StringIO(body), dialect))
    except csv.Error as exc:  # a NUL byte, an unterminated quote …
        raise DelegateListError("tệp CSV không đọc được.", f"unreadable CSV: {exc}") from exc


def parse_delegate_xlsx(data: bytes) -> list[DelegateRow]:
    """Rows of the first sheet of an XLSX workbook (read-only, values not formulas)."""
    from openpyxl import load_workbook  # only importers need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a file that is not a workbook
        raise DelegateListError("tệp XLSX không đọc được.", f"unreadable XLSX file: {exc}") from exc
    try:
        sheet = book.worksheets[0]
        table = (
            ["" if v is None else str(v) for v in row]
            for row in sheet.iter_rows(values_only=True, max_row=MAX_IMPORT_ROWS + 2)
        )
        return _rows_from_table(table)
    except DelegateListError:
        raise
    except Exception as exc:  # a damaged sheet inside a valid ZIP
        raise DelegateListError("tệp XLSX không đọc được.", f"unreadable XLSX file: {exc}") from exc
    finally:
        book.close()


@dataclass(frozen=True)
class Delegate:
    """A delegate record as folded from its events."""

    delegate_id: str
    person_id: str
    name: str
    term: str
    electoral_unit: str = ""
    group: str = ""
    role: str = ""
    organ: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "delegate_id": self.delegate_id,
            "person_id": self.person_id,
            "name": self.name,
            "term": self.term,
            "electoral_unit": self.electoral_unit,
            "group": self.group,
            "role": self.role,
            "organ": self.organ,
        }


def fold_delegate(history: Iterable[StoredEvent]) -> Delegate | None:
    current: Delegate | None = None
    for stored in history:
        current = apply_delegate_event(current, stored)
    return current


def apply_delegate_event(current: Delegate | None, stored: StoredEvent) -> Delegate | None:
    p = stored.envelope.typed_payload()
    if isinstance(p, DelegateRegisteredV1):
        return Delegate(
            stored.envelope.aggregate_id, p.person_id, p.name, p.term, p.electoral_unit, p.group, p.role, p.organ
        )
    if isinstance(p, DelegateEditedV1) and current is not None:
        return replace(current, **{k: v for k, v in p.model_dump().items() if v is not None})
    return current


def changed_fields(current: Delegate, row: DelegateRow) -> dict[str, str]:
    """What a re-imported row changes in a delegate record."""
    wanted = {
        "name": row.name,
        "electoral_unit": row.electoral_unit,
        "group": row.group,
        "role": row.role,
        "organ": row.organ,
    }
    return {k: v for k, v in wanted.items() if getattr(current, k) != v}


_FILTERS = (aggregate_type_filter("delegate"), aggregate_type_filter("activity"))


@dataclass
class DelegateDirectory:
    """Delegates by term and the council's sessions, as the log says now (caught up incrementally)."""

    by_id: dict[str, Delegate] = field(default_factory=dict)
    activities: Activities = field(default_factory=Activities)
    read_up_to: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def apply(self, stored: StoredEvent) -> None:
        if stored.envelope.aggregate == "delegate":
            folded = apply_delegate_event(self.by_id.get(stored.envelope.aggregate_id), stored)
            if folded is not None:
                self.by_id[folded.delegate_id] = folded
        else:
            self.activities.apply(stored)

    async def catch_up(self, events: EventLog) -> DelegateDirectory:
        async with self._lock:
            self.read_up_to = await fold_appended(events, _FILTERS, self.read_up_to, self.apply)
        return self

    def of_term(self, term: str) -> list[Delegate]:
        return sorted((d for d in self.by_id.values() if d.term == term), key=lambda d: (d.group, name_key(d.name)))

    def sessions(self, term: str) -> list[Activity]:
        """The term's council sessions (kỳ họp activities), oldest first."""
        found = [a for a in self.activities.live() if a.activity_type == SESSION_TYPE and a.term == term]
        return sorted(found, key=lambda a: (a.start_date, a.title))
