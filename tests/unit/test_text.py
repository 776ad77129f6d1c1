import unicodedata

import pytest

from shared.text import clean_text, fold, nfc


def test_folding_makes_accented_unaccented_and_decomposed_forms_equal() -> None:
    composed = "Tiếp xúc cử tri"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed  # the inputs really differ byte-wise
    assert fold(composed) == fold("tiep xuc cu tri") == fold(decomposed) == "tiep xuc cu tri"


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Đ", "d"),
        ("đ", "d"),
        ("Đoàn ĐBQH", "doan dbqh"),
        ("HĐND tỉnh", "hdnd tinh"),
        ("Kỳ họp thứ Bảy", "ky hop thu bay"),
    ],
)
def test_folding_turns_d_with_stroke_into_plain_d_and_lowercases(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_folding_keeps_one_character_per_nfc_character_so_offsets_map_back() -> None:
    text = "Giám sát chuyên đề của Ban Kinh tế - Ngân sách"
    assert len(fold(text)) == len(nfc(text))
    assert len(fold(unicodedata.normalize("NFD", text))) == len(nfc(text))


def test_nfc_composes_decomposed_vietnamese() -> None:
    decomposed = unicodedata.normalize("NFD", "Hội đồng nhân dân")
    assert nfc(decomposed) == "Hội đồng nhân dân"
    assert unicodedata.is_normalized("NFC", nfc(decomposed))


def test_clean_text_collapses_whitespace_and_stores_nfc() -> None:
    raw = unicodedata.normalize("NFD", "  Kỳ họp \n thứ 7\t HĐND  ")
    assert clean_text(raw) == "Kỳ họp thứ 7 HĐND"
    assert clean_text(None) == ""


def test_fold_by_table_matches_folding_each_character_and_keeps_every_offset() -> None:
    from shared.text import _fold_char

    # Latin with every Vietnamese mark, other scripts, symbols, combining marks, private use.
    sample = "".join(
        chr(c)
        for c in [
            *range(0x20, 0x250),
            *range(0x300, 0x370),
            *range(0x1E00, 0x1F00),
            0x0111,
            0x0110,
            0x4E2D,
            0x0E01,
            0xE000,
            0x1F600,
        ]
    )
    expected = "".join(_fold_char(ch) for ch in nfc(sample))
    assert fold(sample) == expected and len(fold(sample)) == len(nfc(sample))


def test_the_refused_characters_are_exactly_the_controls_surrogates_and_bidi_overrides() -> None:
    # The compiled class must say what the Unicode categories say, for every code point.
    from shared.text import _BIDI_CONTROLS, _refused_char

    def refused_by_category(ch: str) -> bool:
        category = unicodedata.category(ch)
        return (category == "Cc" and ch not in "\t\n\r") or category == "Cs" or ch in _BIDI_CONTROLS

    mismatches = [hex(c) for c in range(0x110000) if (_refused_char(chr(c)) is not None) != refused_by_category(chr(c))]
    assert mismatches == []
    assert _refused_char("Kỳ họp\u202ethứ") == "\u202e" and _refused_char("Kỳ họp\tthứ\n") is None
