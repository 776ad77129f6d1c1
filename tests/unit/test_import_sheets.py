"""Caption sheets in every encoding a station hands over are read to the same NFC rows."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path

import pytest

from deploy.bulk_import.journal import Entry, Journal
from deploy.bulk_import.run import dry_run, metadata_problems, row_problems
from deploy.bulk_import.sheet import SheetError, SheetRow, decode_text, read_sheet, row_from_mapping
from tests.caption_sheets import SHEET_ENCODINGS, cp1258_bytes, write_sheet

HEADER_VI = ["Tên tệp", "Tiêu đề", "Loại hoạt động", "Chú thích", "Ngày ghi hình", "Đơn vị"]
HEADER_EN = ["filename", "title", "activity_type", "caption", "recorded_at", "source_org"]
ROWS = [
    [
        "anh-001.jpg",
        "Tiếp xúc cử tri tại xã Phước Dinh",
        "tiep-xuc-cu-tri",
        "Đại biểu HĐND tỉnh lắng nghe ý kiến của cử tri về đường giao thông nông thôn",
        "2023-06-20",
        "Báo Ninh Thuận",
    ],
    [
        "anh-002.jpg",
        "Kỳ họp thứ mười bảy, Hội đồng nhân dân tỉnh khóa XI",
        "Kỳ họp, phiên họp Thường trực",
        "",
        "7/12/2023",
        "Đài PT-TH",
    ],
    ["anh-003.jpg", "Giám sát chuyên đề: ứng dụng công nghệ", "giam-sat-chuyen-de", "Ảnh: Nguyễn Văn Ỷ", "", ""],
]
EXPECTED_ENCODING = {
    "utf-8": "UTF-8",
    "utf-8-bom": "UTF-8 (BOM)",
    "utf-16-le-bom": "UTF-16 LE (BOM)",
    "utf-16-be-bom": "UTF-16 BE (BOM)",
    "cp1258": "Windows-1258",
    "nfd": "UTF-8",
    "xlsx": "XLSX",
}


@pytest.mark.parametrize("encoding", SHEET_ENCODINGS)
@pytest.mark.parametrize("header", [HEADER_VI, HEADER_EN], ids=["vietnamese-headers", "english-headers"])
def test_every_encoding_reads_to_the_same_nfc_rows(tmp_path: Path, encoding: str, header: list[str]) -> None:
    path = write_sheet(tmp_path / f"sheet.{'xlsx' if encoding == 'xlsx' else 'csv'}", header, ROWS, encoding)
    sheet = read_sheet(path)
    assert sheet.encoding == EXPECTED_ENCODING[encoding]
    assert [row.filename for row in sheet.rows] == ["anh-001.jpg", "anh-002.jpg", "anh-003.jpg"]
    first = sheet.rows[0]
    assert first.title == "Tiếp xúc cử tri tại xã Phước Dinh"
    assert first.caption == ROWS[0][3]
    assert first.source_org == "Báo Ninh Thuận"
    assert first.recorded_at == "2023-06-20"
    for row in sheet.rows:
        for value in (row.title, row.caption, row.source_org):
            assert unicodedata.is_normalized("NFC", value)
    # A label instead of a code, and a day-first date, as typed in Vietnam.
    assert sheet.rows[1].activity_type == "ky-hop"
    assert sheet.rows[1].recorded_at == "2023-12-07"
    assert sheet.rows[2].caption == "Ảnh: Nguyễn Văn Ỷ"
    assert sheet.rows[0].line == 2  # the row number the spreadsheet shows (header is row 1)
    if encoding in ("nfd", "cp1258"):
        assert sheet.normalised_cells > 0  # and so told to the user
    else:
        assert sheet.normalised_cells == 0


def test_windows_1258_text_is_not_mistaken_for_utf8() -> None:
    data = cp1258_bytes("Tiếp xúc cử tri")
    assert decode_text(data)[1] == "Windows-1258"
    assert unicodedata.normalize("NFC", decode_text(data)[0]) == "Tiếp xúc cử tri"


def test_utf16_without_a_bom_is_recognised_by_its_zero_bytes() -> None:
    text, name = decode_text("Tên tệp,Tiêu đề\r\na.jpg,Kỳ họp\r\n".encode("utf-16-le"))
    assert name == "UTF-16 LE"
    assert text.startswith("Tên tệp")


def test_semicolon_and_tab_separated_sheets_are_read(tmp_path: Path) -> None:
    for delimiter in (";", "\t"):
        path = tmp_path / "s.csv"
        path.write_text(f"filename{delimiter}title{delimiter}activity\r\na.jpg{delimiter}Kỳ họp{delimiter}ky-hop\r\n")
        assert read_sheet(path).rows[0] == SheetRow(line=2, filename="a.jpg", title="Kỳ họp", activity_type="ky-hop")


def test_a_sheet_without_the_required_columns_is_refused_in_both_languages(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("Tên tệp,Ghi chú\r\na.jpg,x\r\n", encoding="utf-8")
    with pytest.raises(SheetError) as caught:
        read_sheet(path)
    assert "title" in caught.value.message_en and "activity_type" in caught.value.message_en
    assert "thiếu cột" in caught.value.message_vi


def test_unknown_columns_are_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("filename,title,activity_type,Người chụp\r\na.jpg,T,khac,X\r\n", encoding="utf-8")
    assert read_sheet(path).ignored_columns == ("Người chụp",)


def test_xlsx_dates_are_read_as_iso_dates(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.append(HEADER_EN)
    ws.append(["a.jpg", "Kỳ họp", "ky-hop", "", datetime(2024, 7, 9), ""])
    book.save(tmp_path / "s.xlsx")
    assert read_sheet(tmp_path / "s.xlsx").rows[0].recorded_at == "2024-07-09"


def test_a_sidecar_caption_takes_any_header_alias() -> None:
    row = row_from_mapping({"Tiêu đề": "Thăm, làm việc", "loai hoat dong": "tham-lam-viec"}, "clip.mp4")
    assert (row.filename, row.title, row.activity_type) == ("clip.mp4", "Thăm, làm việc", "tham-lam-viec")


def test_row_problems_find_missing_and_repeated_files_and_escapes(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    rows = (
        SheetRow(2, "a.jpg", "T", "khac"),
        SheetRow(3, "a.jpg", "T", "khac"),
        SheetRow(4, "b.jpg", "T", "khac"),
        SheetRow(5, "../etc.jpg", "T", "khac"),
        SheetRow(6, "", "T", "khac"),
    )
    found = row_problems(tmp_path, rows)
    assert [[p["code"] for p in found[line]] for line in (2, 3, 4, 5, 6)] == [
        [],
        ["duplicate_row"],
        ["missing_file"],
        ["outside_folder"],
        ["missing_filename"],
    ]
    assert all(p["message_vi"] and p["message_en"] for problems in found.values() for p in problems)


def test_metadata_is_checked_by_the_ingest_rules_for_the_dry_run() -> None:
    codes = [p["code"] for p in metadata_problems(SheetRow(2, "a.jpg", "T", "hop-bao", recorded_at="31/02/2023"))]
    assert codes == ["unknown_activity_type", "invalid_recorded_at"]
    assert metadata_problems(SheetRow(2, "a.jpg", "T", "ky-hop", recorded_at="2023-02-03")) == []
    assert [p["code"] for p in metadata_problems(SheetRow(2, "a.jpg", "", "ky-hop"))] == ["invalid_title"]


def test_dry_run_without_an_archive_reports_each_row(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    path = write_sheet(
        tmp_path / "s.csv", HEADER_EN, [["a.jpg", "T", "ky-hop", "", "", ""], ["b.jpg", "T", "x", "", "", ""]], "utf-8"
    )
    reports = dry_run(tmp_path, read_sheet(path), None)
    assert [(r.file, r.result) for r in reports] == [("a.jpg", "ready"), ("b.jpg", "problem")]
    assert [p["code"] for p in reports[1].problems] == ["missing_file", "unknown_activity_type"]


def test_the_journal_survives_a_restart_and_forgets_a_changed_file(tmp_path: Path) -> None:
    media = tmp_path / "a.jpg"
    media.write_bytes(b"first")
    stat = media.stat()
    journal = Journal(tmp_path / "state" / "j.json")
    journal.put("a.jpg", Entry("uploading", stat.st_size, stat.st_mtime_ns, url="http://x/v1/uploads/1"))
    again = Journal(tmp_path / "state" / "j.json")
    entry = again.current("a.jpg", media)
    assert entry is not None and entry.url == "http://x/v1/uploads/1"
    media.write_bytes(b"second, longer")
    assert again.current("a.jpg", media) is None
    (tmp_path / "state" / "j.json").write_text('{"entries": {"a.jpg": {"sta')  # cut short by a crash
    assert Journal(tmp_path / "state" / "j.json").get("a.jpg") is None
