"""Which index fields the query API uses, read from the asset mapping.

Other parts of the system add fields to ``ASSET_MAPPINGS`` (probe facts,
tags, people, OCR text). Rather than hard-code every name, the query side
discovers them: every ``text`` field with a ``<name>_folded`` twin is searched,
and each filter/facet takes the first of its candidate keyword fields the
mapping has, wrapped in a ``nested`` clause when the field lives in one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from services.search.documents import ASSET_MAPPINGS


@dataclass(frozen=True)
class IndexField:
    path: str
    type: str
    nested_path: str | None  # the innermost enclosing ``nested`` field, if any


def _walk(props: Mapping[str, Any], prefix: str = "", nested: str | None = None) -> Iterator[IndexField]:
    for name, spec in props.items():
        path = f"{prefix}{name}"
        kind = str(spec.get("type", "object"))
        if "properties" in spec:
            inner = path if kind == "nested" else nested
            yield IndexField(path, kind, nested)
            yield from _walk(spec["properties"], f"{path}.", inner)
        else:
            yield IndexField(path, kind, nested)
        for sub, sub_spec in (spec.get("fields") or {}).items():
            yield IndexField(f"{path}.{sub}", str(sub_spec.get("type", "keyword")), nested)


@cache
def index_fields() -> dict[str, IndexField]:
    return {f.path: f for f in _walk(ASSET_MAPPINGS["properties"])}


# Filter/facet name -> candidate keyword fields, first present wins. The
# organisation falls back to the uploader's source organisation until tags exist.
KEYWORD_CANDIDATES: dict[str, tuple[str, ...]] = {
    "activity_type": ("activity_type",),
    "term": ("term",),
    "year": ("year",),
    "kind": ("kind",),
    "activity": ("activity_id", "activity.id", "activities.id", "activity_ids"),
    "person": ("people.name", "people_names", "person_names", "people", "persons.name", "persons"),
    "organisation": ("organisations.name", "organisations", "organization_names", "orgs", "source_org"),
}
_KEYWORDISH = frozenset({"keyword", "integer", "long", "short", "boolean", "constant_keyword"})

# Relative weight of each searchable text field; unknown ones weigh 1.
TEXT_BOOSTS: dict[str, float] = {
    "title": 3.0,
    "activity_title": 2.0,
    "activity_name": 2.0,
    "people_text": 2.0,
    "people_names_text": 2.0,
    "caption": 1.0,
    "description": 1.0,
    "ocr_text": 0.7,
}


def keyword_field(name: str) -> IndexField | None:
    """The index field a filter/facet called ``name`` uses, or None if the index has none yet."""
    fields = index_fields()
    for candidate in KEYWORD_CANDIDATES.get(name, (name,)):
        found = fields.get(candidate)
        if found is not None and found.type in _KEYWORDISH:
            return found
    return None


@cache  # asked on every query and every hit; the mapping never changes at run time
def text_fields() -> tuple[str, ...]:
    """Searchable text fields (as typed) that have a folded twin, outside nested objects."""
    fields = index_fields()
    out = []
    for path, f in fields.items():
        if f.type != "text" or f.nested_path or path.endswith("_folded"):
            continue
        twin = fields.get(f"{path}_folded")
        if twin is not None and twin.type == "text":
            out.append(path)
    return tuple(sorted(out, key=lambda p: (-TEXT_BOOSTS.get(p, 1.0), p)))


def boosted(paths: Iterable[str], suffix: str = "") -> list[str]:
    return [f"{p}{suffix}^{TEXT_BOOSTS.get(p, 1.0):g}" for p in paths]


def wrap_nested(field: IndexField, clause: dict[str, Any]) -> dict[str, Any]:
    if field.nested_path is None:
        return clause
    return {"nested": {"path": field.nested_path, "query": clause}}
