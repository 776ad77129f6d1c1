"""A collection's export for the review report: one ZIP streamed into S3.

The ZIP (zipstream-ng) is generated while it is uploaded (an S3 multipart upload
of unknown length): each original or web rendition is read from S3 in chunks
into the archive as the upload asks for more, so neither memory nor disk ever
holds the archive or a whole member. Beside the media it holds:

- ``contact-sheet.pdf``: a grid of thumbnails with each asset's Vietnamese title,
  caption, date, activity and people (fpdf2, DejaVu Sans, which has every
  Vietnamese glyph, found with ``fc-match``);
- ``manifest.csv`` and ``manifest.xlsx`` (openpyxl, write-only): one row per asset
  in the collection's order.

The contact sheet and the manifests are small files written to the service's
scratch folder first (they need every row before they are complete). Everything
here is synchronous and runs in one worker thread; progress is counted in a
:class:`Progress` the event loop reads.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from fpdf import FPDF
from openpyxl import Workbook
from zipstream import ZIP_STORED, ZipStream

from shared.taxonomy import LOCAL_TZ, activity_label

MediaChoice = Literal["original", "web"]
# What "web" means per kind: the rendition a reviewer can open anywhere.
WEB_RENDITION = {"photo": "web", "video": "proxy", "audio": "audio"}
THUMB_RENDITIONS = ("thumb", "poster", "waveform")
FONT_FALLBACK = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
MANIFEST_COLUMNS = (
    "stt",
    "asset_id",
    "file",
    "title",
    "caption",
    "recorded_at",
    "activity_type",
    "activity_label",
    "term",
    "people",
    "organisations",
    "source_org",
    "kind",
    "duration_s",
    "size_bytes",
    "sha256",
    "in_collection_by",
    "note",
)
# Vietnamese headers for people who open the manifest in a spreadsheet.
MANIFEST_HEADERS_VI = (
    "STT",
    "Mã tư liệu",
    "Tệp trong ZIP",
    "Tiêu đề",
    "Chú thích",
    "Ngày ghi",
    "Mã loại hoạt động",
    "Loại hoạt động",
    "Nhiệm kỳ",
    "Người xuất hiện",
    "Cơ quan",
    "Đơn vị gửi",
    "Loại tư liệu",
    "Thời lượng (giây)",
    "Dung lượng (byte)",
    "SHA-256",
    "Vào bộ sưu tập do",
    "Ghi chú",
)
CHUNK = 256 * 1024


@dataclass(frozen=True)
class ExportItem:
    """One asset of the collection, in its order, with what the export needs of its document."""

    doc: dict[str, Any]
    how: Literal["hand", "search"]
    note: str = ""

    @property
    def asset_id(self) -> str:
        return str(self.doc["asset_id"])


@dataclass
class Progress:
    """Counted by the worker thread, read by the event loop (ints: no lock needed to read)."""

    total: int
    done: int = 0
    bytes_out: int = 0
    stage: str = "preparing"
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Source:
    """Where one member's bytes are (bucket, key), its name in the ZIP and its size."""

    bucket: str
    key: str
    arcname: str
    size: int


def font_file(style: str = "Book") -> str:
    """DejaVu Sans as fontconfig finds it (the Debian package fonts-dejavu-core)."""
    family = "DejaVu Sans"
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", f"{family}:style={style}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        if found and "DejaVuSans" in found:
            return found
    return FONT_FALLBACK if style == "Book" else FONT_FALLBACK.replace("DejaVuSans", "DejaVuSans-Bold")


def _local_day(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return datetime.fromisoformat(value).astimezone(LOCAL_TZ).strftime("%d/%m/%Y")
    except ValueError:
        return ""


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if v]
    return [str(value)] if value else []


def _safe_stem(text: str, limit: int = 60) -> str:
    """A file name part from a Vietnamese title: letters kept (NFC), separators collapsed."""
    kept = "".join(c if c.isalnum() else "-" for c in unicodedata.normalize("NFC", text))
    return "-".join(p for p in kept.split("-") if p)[:limit] or "tu-lieu"


def media_source(item: ExportItem, choice: MediaChoice, originals_bucket: str, position: int) -> Source | None:
    """The original (content-addressed) or the web rendition of one member; None if it has none yet."""
    doc = item.doc
    stem = f"{position:04d}-{_safe_stem(str(doc.get('title') or ''))}"
    if choice == "web":
        rendition = (doc.get("renditions") or {}).get(WEB_RENDITION.get(str(doc.get("kind")), "web"))
        if not isinstance(rendition, dict) or not rendition.get("key"):
            return None
        suffix = PurePosixPath(str(rendition["key"])).suffix or ".bin"
        return Source(
            str(rendition["bucket"]),
            str(rendition["key"]),
            f"media/{stem}{suffix}",
            int(rendition.get("size_bytes", 0)),
        )
    sha = doc.get("sha256")
    if not isinstance(sha, str):
        return None
    original_suffix = PurePosixPath(str(doc.get("original_filename") or "")).suffix.lower()
    suffix = original_suffix if original_suffix.isascii() and len(original_suffix) <= 8 else ""
    key = f"sha256/{sha[:2]}/{sha[2:4]}/{sha}"
    return Source(originals_bucket, key, f"media/{stem}{suffix or '.bin'}", int(doc.get("size_bytes") or 0))


def manifest_row(position: int, item: ExportItem, source: Source | None) -> list[Any]:
    d = item.doc
    return [
        position,
        item.asset_id,
        source.arcname if source else "",
        d.get("title") or "",
        d.get("caption") or "",
        _local_day(d.get("recorded_at")),
        d.get("activity_type") or "",
        activity_label(str(d["activity_type"])) if d.get("activity_type") else "",
        d.get("term") or "",
        "; ".join(_names(d.get("people"))),
        "; ".join(_names(d.get("organisations"))),
        d.get("source_org") or "",
        d.get("kind") or "",
        d.get("duration_s") if d.get("duration_s") is not None else "",
        d.get("size_bytes") or "",
        d.get("sha256") or "",
        "tay" if item.how == "hand" else "tìm kiếm lưu sẵn",
        item.note,
    ]


def write_manifests(rows: list[list[Any]], folder: Path) -> tuple[Path, Path]:
    csv_path, xlsx_path = folder / "manifest.csv", folder / "manifest.xlsx"
    # UTF-8 with BOM: spreadsheet programs then read the Vietnamese correctly.
    with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Danh mục")
    sheet.append(list(MANIFEST_HEADERS_VI))
    for row in rows:
        sheet.append(row)
    book.save(xlsx_path)
    return csv_path, xlsx_path


def caption_lines(item: ExportItem) -> list[str]:
    """What the contact sheet prints under a thumbnail (Vietnamese, NFC)."""
    d = item.doc
    lines = [str(d.get("title") or "")]
    if d.get("caption"):
        caption = str(d["caption"])
        lines.append(caption if len(caption) <= 240 else caption[:239] + "…")
    when = _local_day(d.get("recorded_at"))
    activity = activity_label(str(d["activity_type"])) if d.get("activity_type") else ""
    lines.append(" · ".join(p for p in (when, activity) if p))
    people = _names(d.get("people"))
    if people:
        lines.append("Người: " + ", ".join(people[:8]))
    return [unicodedata.normalize("NFC", line) for line in lines if line]


def write_contact_sheet(
    title: str, items: list[ExportItem], thumbnail: Callable[[ExportItem], bytes | None], path: Path
) -> None:
    """A4 pages, 3 × 3 thumbnails each, captions below; ``thumbnail`` reads one item's image."""
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_font("DejaVu", "", font_file("Book"))
    pdf.add_font("DejaVu", "B", font_file("Bold"))
    cols, rows, margin = 3, 3, 10.0
    cell_w = (210 - 2 * margin) / cols
    cell_h = (297 - 2 * margin - 12) / rows
    thumb_h = cell_h * 0.52
    per_page = cols * rows
    for index, item in enumerate(items):
        if index % per_page == 0:
            pdf.add_page()
            pdf.set_font("DejaVu", "B", 11)
            pdf.set_xy(margin, margin)
            pdf.cell(0, 6, unicodedata.normalize("NFC", title))
        slot = index % per_page
        x = margin + (slot % cols) * cell_w
        y = margin + 10 + (slot // cols) * cell_h
        image = thumbnail(item)
        if image:
            try:
                pdf.image(io.BytesIO(image), x=x + 1, y=y, w=cell_w - 2, h=thumb_h, keep_aspect_ratio=True)
            except Exception:  # an unreadable thumbnail leaves an empty frame, not a failed export
                pdf.rect(x + 1, y, cell_w - 2, thumb_h)
        else:
            pdf.rect(x + 1, y, cell_w - 2, thumb_h)
        pdf.set_xy(x + 1, y + thumb_h + 1)
        for n, line in enumerate(caption_lines(item)):
            pdf.set_font("DejaVu", "B" if n == 0 else "", 7)
            pdf.set_x(x + 1)
            pdf.multi_cell(cell_w - 3, 3.2, line, max_line_height=3.2)
    if not items:
        pdf.add_page()
        pdf.set_font("DejaVu", "", 11)
        pdf.cell(0, 6, "Bộ sưu tập chưa có tư liệu nào.")
    pdf.output(str(path))


class IterReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (what an S3 upload of unknown length reads)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = -1 if size is None else size
        while want < 0 or len(self._buffer) < want:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if want < 0 or want >= len(self._buffer):
            out = bytes(self._buffer)
            self._buffer.clear()
        else:
            out = bytes(self._buffer[:want])
            del self._buffer[:want]
        return out

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


def zip_chunks(
    sources: list[Source],
    extras: list[tuple[Path, str]],
    read: Callable[[Source], Iterator[bytes]],
    progress: Progress,
) -> Iterator[bytes]:
    """The ZIP, chunk by chunk: the extra files (contact sheet, manifests), then every member.

    Media are stored, not deflated (JPEG and H.264 do not shrink); each one is read
    from S3 only when the archive reaches it.
    """
    archive = ZipStream(compress_type=ZIP_STORED, sized=False)
    for path, arcname in extras:
        archive.add_path(str(path), arcname)

    def counted(source: Source) -> Iterator[bytes]:
        yield from read(source)
        progress.done += 1

    for source in sources:
        archive.add(counted(source), source.arcname)
    for chunk in archive:
        if progress.cancelled.is_set():
            raise RuntimeError("export cancelled")
        progress.bytes_out += len(chunk)
        yield chunk
