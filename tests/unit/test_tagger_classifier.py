"""The activity-type classifier: explainable, diacritic-insensitive, and measured
on a labelled evaluation set written in the council documents' language."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from shared.taxonomy import activity_types
from shared.vocabulary import classify, find_organisations, load_vocabulary

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
CODES = [a.code for a in activity_types()]


def _load(name: str) -> list[tuple[str, str]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return [(row["text"], row["label"]) for row in csv.DictReader(handle, delimiter="\t")]


def _evaluate(rows: list[tuple[str, str]], title: str) -> float:
    """Print accuracy, the confusion table and the misses; return accuracy."""
    confusion: Counter[tuple[str, str]] = Counter()
    misses = []
    for text, truth in rows:
        got = classify(text)
        confusion[(truth, got.activity_type)] += 1
        if got.activity_type != truth:
            misses.append(f"  {truth} → {got.activity_type} {got.scores}: {text}")
    correct = sum(n for (t, p), n in confusion.items() if t == p)
    accuracy = correct / len(rows)
    short = {c: c[:9] for c in CODES}
    print(f"\n{title}: {correct}/{len(rows)} correct, accuracy {accuracy:.1%}")
    print("true \\ predicted".ljust(20) + "".join(short[c].rjust(10) for c in CODES))
    for truth in CODES:
        print(truth.ljust(20) + "".join(str(confusion[(truth, p)] or ".").rjust(10) for p in CODES))
    print("\n".join(misses) or "  (no misses)")
    return accuracy


def test_the_evaluation_set_is_large_and_covers_every_activity_type() -> None:
    rows = _load("tagger_eval.tsv")
    assert len(rows) >= 60
    assert {label for _, label in rows} == set(CODES)


def test_the_classifier_reaches_ninety_percent_on_the_labelled_set() -> None:
    assert _evaluate(_load("tagger_eval.tsv"), "evaluation set (vocabulary tuned on it)") >= 0.9


def test_the_classifier_reaches_ninety_percent_on_the_held_out_set() -> None:
    assert _evaluate(_load("tagger_eval_heldout.tsv"), "held-out set (written after the vocabulary)") >= 0.9


def test_a_proposal_explains_itself_with_the_matched_phrases() -> None:
    result = classify("Đoàn giám sát chuyên đề của HĐND tỉnh về quản lý đất công")
    assert result.activity_type == "giam-sat-chuyen-de"
    phrases = [m.phrase for m in result.matched]
    # The longer phrase consumed its words: "giám sát" alone does not count again.
    assert "giám sát chuyên đề" in phrases and "giám sát" not in phrases
    assert 0.5 < result.confidence <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "Tiếp xúc cử tri tại xã Phước Hậu",
        "Tiep xuc cu tri tai xa Phuoc Hau",
        unicodedata.normalize("NFD", "Tiếp xúc cử tri tại xã Phước Hậu"),
        "TIẾP XÚC CỬ TRI TẠI XÃ PHƯỚC HẬU",
    ],
)
def test_diacritics_case_and_unicode_form_do_not_change_the_result(text: str) -> None:
    result = classify(text)
    assert result.activity_type == "tiep-xuc-cu-tri"
    assert [m.phrase for m in result.matched] == ["tiếp xúc cử tri"]


def test_a_session_mentioned_only_as_a_point_in_time_does_not_make_it_a_session() -> None:
    result = classify("Tổ đại biểu tiếp xúc cử tri trước kỳ họp thứ 7")
    assert result.activity_type == "tiep-xuc-cu-tri"
    assert all(m.activity_type != "ky-hop" for m in result.matched)


def test_an_ambiguous_folded_word_needs_its_diacritics_when_the_text_has_them() -> None:
    # "tham dự" / "thẩm tra" fold to "tham", like "thăm"; only "thăm" signals a visit.
    assert all(m.phrase != "thăm" for m in classify("Lãnh đạo tỉnh tham dự hội nghị").matched)
    assert any(m.phrase == "thăm" for m in classify("Lãnh đạo tỉnh thăm đơn vị").matched)


def test_a_text_without_any_phrase_is_other_with_zero_confidence() -> None:
    result = classify("Ảnh tư liệu")
    assert (result.activity_type, result.confidence, result.matched) == ("khac", 0.0, ())


def test_organs_and_partner_organisations_are_found_in_any_spelling() -> None:
    text = (
        "Van phong Doan DBQH & HĐND tỉnh phối hợp với Báo Ninh Thuận, Đài Phát thanh và Truyền hình tỉnh; "
        "Ban Văn hoá - Xã hội HĐND và UBND tỉnh"
    )
    codes = [o.code for o in find_organisations(text)]
    assert codes == ["ban-van-hoa-xa-hoi", "van-phong-doan-dbqh-hdnd", "bao", "dai-ptth", "ubnd"]


def test_the_vocabulary_is_data_with_a_version_and_phrases_for_every_type() -> None:
    vocab = load_vocabulary()
    assert vocab.version
    assert {p.activity_type for p in vocab.phrases if p.activity_type} == set(CODES)


def test_the_cli_prints_one_json_object_per_text_from_arguments_and_stdin() -> None:
    from_args = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "classify", "Phiên chất vấn tại kỳ họp"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    first = json.loads(from_args.stdout)
    assert first["activity_type"] == "ky-hop" and "chất vấn" in " ".join(first["matched_phrases"])
    from_stdin = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "classify"],
        cwd=REPO,
        check=True,
        input="Diễn đàn tiếng nói cử tri\n\nThăm và làm việc với Sở Y tế\n",
        capture_output=True,
        text=True,
    )
    lines = [json.loads(line) for line in from_stdin.stdout.splitlines()]
    assert [line["activity_type"] for line in lines] == ["dien-dan-cu-tri", "tham-lam-viec"]
    assert all(0 <= line["confidence"] <= 1 for line in lines)
