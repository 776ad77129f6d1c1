"""People in captions: "Đồng chí <name>, <role>" parsing and registry matching
regardless of diacritics and Unicode form; unknown names are proposed, not dropped."""

from __future__ import annotations

import unicodedata

import pytest

from shared.people import Registry, bundled_registry, find_people, parse_people_csv, person_id_for

SEED_CAPTION = (
    "Đồng chí Nguyễn Hải Long, Ủy viên BCH Đảng bộ tỉnh, Phó Trưởng Ban Tuyên giáo Tỉnh ủy \n"
    "báo cáo kết quả phối hợp năm 2022 giữa Ban Tuyên giáo Tỉnh ủy và Thường trực HĐND tỉnh"
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return bundled_registry()


def test_a_seed_caption_yields_the_registered_person_with_the_role_as_written(registry: Registry) -> None:
    [person] = find_people(SEED_CAPTION, registry)
    assert (person.name, person.person_id, person.known) == ("Nguyễn Hải Long", "p-nguyen-hai-long", True)
    assert person.role == "Ủy viên BCH Đảng bộ tỉnh, Phó Trưởng Ban Tuyên giáo Tỉnh ủy"


@pytest.mark.parametrize(
    "spelling",
    [
        "Nguyễn Hải Long",
        "Nguyen Hai Long",
        "Nguyễn Hãi Long",  # a wrong tone mark
        unicodedata.normalize("NFD", "Nguyễn Hải Long"),
        "NGUYỄN HẢI LONG".title(),
    ],
)
def test_the_same_person_is_found_whatever_the_diacritics_or_unicode_form(registry: Registry, spelling: str) -> None:
    [person] = find_people(f"Đồng chí {spelling}, Phó Trưởng Ban Tuyên giáo Tỉnh ủy phát biểu", registry)
    assert person.person_id == "p-nguyen-hai-long"
    assert person.name == "Nguyễn Hải Long"  # the registry's NFC spelling
    assert unicodedata.is_normalized("NFC", person.role)


def test_the_role_stops_at_the_verb_that_follows_it(registry: Registry) -> None:
    [person] = find_people(
        "Đồng chí Bùi Văn Hoàng, Ủy viên BCH Đảng bộ tỉnh, Phó Chủ tịch HĐND tỉnh phát biểu tại hội nghị", registry
    )
    assert person.role == "Ủy viên BCH Đảng bộ tỉnh, Phó Chủ tịch HĐND tỉnh"


def test_a_dash_and_the_short_forms_of_the_honorific_are_understood(registry: Registry) -> None:
    dash = find_people(
        "Đồng chí Nguyễn Thị Bích Ngọc - Phó Bí thư Thành uỷ, Chủ tịch HĐND TP Hà Nội chủ trì hội nghị", registry
    )
    assert [(p.name, p.role) for p in dash] == [
        ("Nguyễn Thị Bích Ngọc", "Phó Bí thư Thành uỷ, Chủ tịch HĐND TP Hà Nội")
    ]
    short = find_people("Tham dự họp có đ/c Trần Minh Lực, UVTV, Phó Chủ tịch HĐND tỉnh, lãnh đạo các Ban", registry)
    assert [(p.name, p.role) for p in short] == [("Trần Minh Lực", "UVTV, Phó Chủ tịch HĐND tỉnh")]


def test_a_list_of_comrades_gives_every_person_and_proposes_the_unknown_one(registry: Registry) -> None:
    text = (
        "Cùng dự có các đồng chí: Nguyễn Ngọc Tuấn, Ủy viên Ban Thường vụ Thành ủy, Phó Chủ tịch Thường trực "
        "HĐND thành phố; Phùng Thị Hồng Hà, Phó Chủ tịch HĐND thành phố; Ngô Văn Quý, Phó Chủ tịch UBND "
        "thành phố cùng đại diện các sở"
    )
    people = {p.name: p for p in find_people(text, registry)}
    assert set(people) == {"Nguyễn Ngọc Tuấn", "Phùng Thị Hồng Hà", "Ngô Văn Quý"}
    assert people["Ngô Văn Quý"].known is False and people["Ngô Văn Quý"].person_id is None
    assert people["Ngô Văn Quý"].role == "Phó Chủ tịch UBND thành phố"


def test_an_unknown_comrade_is_proposed_as_a_new_person_with_role(registry: Registry) -> None:
    [person] = find_people("Đồng chí Trần Văn Bình, Tổ trưởng Tổ đại biểu số 2 tiếp xúc cử tri xã Phước Hậu", registry)
    assert (person.name, person.role, person.known) == ("Trần Văn Bình", "Tổ trưởng Tổ đại biểu số 2", False)


def test_a_registered_name_said_without_an_honorific_is_still_found(registry: Registry) -> None:
    [person] = find_people("Le Thi Thanh Ha phat bieu ket luan hoi nghi", registry)
    assert person.person_id == "p-le-thi-thanh-ha"


def test_lowercase_words_after_an_honorific_are_not_a_name(registry: Registry) -> None:
    assert find_people("Ông bà cử tri phấn khởi; ba năm qua đồng chí đã làm tốt", registry) == []


def test_the_registry_imports_from_csv_and_derives_ids_for_rows_without_one() -> None:
    people = parse_people_csv(
        "\ufeffname,role,organ,term\nHoàng Thị Mai,Đại biểu HĐND tỉnh,Tổ đại biểu,2021-2026\n,,,\n"
    )
    assert len(people) == 1
    assert people[0].person_id == person_id_for("Hoang Thi Mai")
    registry = Registry(people)
    assert registry.lookup("HOÀNG THỊ MAI".title()) == people[0]


def test_a_csv_without_a_name_column_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_people_csv("ho_ten,chuc_vu\nA,B\n")
