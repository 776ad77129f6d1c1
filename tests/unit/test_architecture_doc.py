"""docs/architecture.md: its generated event catalogue matches the code, and the
hand-written parts name only event types that exist."""

import re
from pathlib import Path

import pytest

from deploy.docs import BEGIN, DOC_PATH, END, DocError, render_catalogue, splice, stale_diff, write
from shared.events.models import registered_payloads

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_architecture_document_equals_the_regenerated_one() -> None:
    diff = stale_diff(DOC_PATH)
    assert not diff, "docs/architecture.md is out of date with shared/events: run `make docs`\n" + diff


def test_the_document_lives_in_the_repository_and_the_readme_links_it() -> None:
    assert DOC_PATH == REPO / "docs" / "architecture.md"
    assert "docs/architecture.md" in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["README.md", "docs/architecture.md"])
def test_links_and_paths_stay_inside_the_repository_and_lead_somewhere(name: str) -> None:
    path = REPO / name
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "#")):
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(REPO), f"{name} links outside the repository: {target}"
        assert resolved.exists(), f"{name} links to a missing file: {target}"
    assert not re.search(r"`\.\./", text), f"{name} names a path outside the repository"


def test_every_event_type_named_in_the_hand_written_text_exists() -> None:
    text = DOC_PATH.read_text(encoding="utf-8")
    hand_written = text.split(BEGIN)[0] + text.split(END)[1]
    named = set(re.findall(r"\b((?:asset|activity|person)\.[a-z_]+[a-z])\b", hand_written))
    known = {model.EVENT_TYPE for model in registered_payloads()}
    assert named, "the regular expression should find the event types the text talks about"
    assert named <= known, f"not event types: {sorted(named - known)}"


def test_the_catalogue_documents_every_event_type_with_its_version_and_fields() -> None:
    rendered = render_catalogue()
    latest: dict[str, type] = {}
    for model in registered_payloads():  # sorted by (type, version): the last one of a type wins
        latest[model.EVENT_TYPE] = model
    for model in registered_payloads():
        if latest[model.EVENT_TYPE] is not model:  # an older version: named in the summary, upcast on read
            assert re.search(
                rf"`{re.escape(model.EVENT_TYPE)}` \| v\d+ \(older: [^)]*v{model.SCHEMA_VERSION}\b", rendered
            )
            continue
        assert f"#### `{model.EVENT_TYPE}` v{model.SCHEMA_VERSION}" in rendered
        for field in model.model_fields:
            assert f"| `{field}` |" in rendered, (model.EVENT_TYPE, field)


def test_rendering_twice_gives_the_same_text() -> None:
    assert render_catalogue() == render_catalogue()


def test_splice_replaces_only_the_text_between_the_markers() -> None:
    doc = f"# Title\n\nintro\n\n{BEGIN}\nold\n{END}\n\nafter\n"
    assert splice(doc, "new\n") == f"# Title\n\nintro\n\n{BEGIN}\nnew\n{END}\n\nafter\n"


@pytest.mark.parametrize("doc", ["no markers", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{BEGIN}\n{END}\n"])
def test_splice_refuses_a_document_without_one_pair_of_markers_in_order(doc: str) -> None:
    with pytest.raises(DocError):
        splice(doc, "x\n")


def test_a_stale_document_is_reported_with_a_diff_and_then_rewritten(tmp_path: Path) -> None:
    doc = tmp_path / "architecture.md"
    doc.write_text(f"# Architecture\n\n{BEGIN}\nstale\n{END}\n", encoding="utf-8")
    diff = stale_diff(doc)
    assert "-stale" in diff and "+### Event types" in diff
    assert write(doc) is True
    assert stale_diff(doc) == ""
    assert write(doc) is False
