"""Building Elasticsearch request bodies from the archivists' parameters.

Pure functions over frozen parameter objects, unit-tested without servers.
Folded fields decide what matches (so a query typed without diacritics finds
Vietnamese text); exact-diacritic and phrase clauses only add score, so the
spelling the archivist typed, and whole phrases, rank first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

from services.search.aliases import with_aliases
from services.search.documents import KEYWORD_IGNORE_ABOVE, MAX_SEARCHABLE_CHARS
from services.search.fields import boosted, keyword_field, text_fields, wrap_nested
from shared.taxonomy import LOCAL_TZ
from shared.text import clean_text, fold, nfc

# Private-use characters as highlight tags: they never occur in captions, and
# are swapped for <em> after mapping the highlight back onto the original text.
HL_PRE, HL_POST = "\ue000", "\ue001"

FACETS = ("activity_type", "term", "year", "kind", "organisation", "person")
KEYWORD_FILTERS = ("activity_type", "term", "activity", "person", "organisation", "kind")
# date: when recorded; uploaded: when ingested (a user's own uploads, newest first).
SortKey = Literal["relevance", "date", "duration", "uploaded"]
SORT_KEYS: tuple[str, ...] = ("relevance", "date", "duration", "uploaded")
MAX_FROM = 10_000
# The folded copies and the projector's bookkeeping are never shown: leaving them
# out of ``_source`` halves the bytes Elasticsearch sends and the API parses.
# (Highlighting still reads the whole stored source.)
HIDDEN_SOURCE = {"excludes": ["*_folded", "event_sequences"]}


class CursorError(ValueError):
    """A pagination cursor that is corrupt or belongs to another query."""


@dataclass(frozen=True)
class Filters:
    """Every filter of the query API; empty tuples / None mean "no filter"."""

    activity_type: tuple[str, ...] = ()
    term: tuple[str, ...] = ()
    activity: tuple[str, ...] = ()
    person: tuple[str, ...] = ()
    organisation: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    published: bool | None = None
    duration_min: float | None = None
    duration_max: float | None = None
    height_min: int | None = None
    height_max: int | None = None


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    filters: Filters = field(default_factory=Filters)
    sort: SortKey = "relevance"
    order: Literal["asc", "desc"] = "desc"
    size: int = 20
    offset: int = 0
    search_after: tuple[Any, ...] | None = None
    facets: tuple[str, ...] = FACETS
    facet_size: int = 50


# What the caller may see, as ``shared.policy.visibility_filter(principal)`` gives it (None:
# everything). Every body builder takes it as a required argument, and puts it in the
# query's own filter (never a post_filter), so hits, facet counts, statistics and similar
# assets all count only what may be seen.
Visible = dict[str, Any] | None


def _only_visible(clauses: list[dict[str, Any]], visible: Visible) -> list[dict[str, Any]]:
    return clauses if visible is None else [*clauses, visible]


def filter_clauses(f: Filters, *, skip: str | None = None) -> list[dict[str, Any]]:
    """The filters as ES clauses; ``skip`` leaves one out (for its own facet's counts)."""
    out: list[dict[str, Any]] = []
    for name in KEYWORD_FILTERS:
        values: tuple[str, ...] = getattr(f, name)
        if not values or name == skip:
            continue
        target = keyword_field(name)
        # Longer values are never indexed (ignore_above), and Elasticsearch refuses a query
        # term over Lucene's limit with an error: such a value can only match nothing.
        indexed = [v for v in values if len(v) <= KEYWORD_IGNORE_ABOVE]
        if target is None or not indexed:
            # The index has no such field yet (or cannot hold the values): nothing can carry them.
            out.append({"bool": {"must_not": {"match_all": {}}}})
            continue
        out.append(wrap_nested(target, {"terms": {target.path: indexed}}))
    if (f.date_from or f.date_to) and skip != "date":
        rng: dict[str, Any] = {"time_zone": LOCAL_TZ.key}
        if f.date_from:
            rng["gte"] = f.date_from.isoformat()
        if f.date_to:
            rng["lte"] = f.date_to.isoformat()
        out.append({"range": {"recorded_at": rng}})
    if f.published is not None:
        if f.published:
            out.append({"term": {"published": True}})
        else:
            out.append({"bool": {"must_not": {"term": {"published": True}}}})
    ranges = (("duration_s", f.duration_min, f.duration_max), ("height", f.height_min, f.height_max))
    for fld, lo, hi in ranges:
        if lo is not None or hi is not None:
            bounds: dict[str, Any] = {}
            if lo is not None:
                bounds["gte"] = lo
            if hi is not None:
                bounds["lte"] = hi
            out.append({"range": {fld: bounds}})
    return out


def text_query(q: str) -> dict[str, Any]:
    """Folded fields decide what matches; fixed bonuses put better kinds of match first.

    Up to two words must all match; longer queries may miss a quarter of their
    words. Every document with all the words (folded) gets a bonus, more if
    spelled as typed, more again for the words as a phrase, so tiers are:
    exact phrase > folded phrase > all words exact > all words folded > partial.
    Within a tier BM25 over the weighted fields (title first) orders.
    """
    exact = nfc(clean_text(q))
    folded = fold(exact)
    paths = text_fields()
    exact_fields = boosted(paths)
    folded_fields = boosted(paths, "_folded")

    def bonus(query: str, fields: list[str], kind: str, points: float) -> dict[str, Any]:
        match: dict[str, Any] = {"query": query, "fields": fields, "type": kind}
        if kind == "cross_fields":
            match["operator"] = "and"
        return {"constant_score": {"filter": {"multi_match": match}, "boost": points}}

    return {
        "bool": {
            "must": [
                {
                    "multi_match": {
                        "query": folded,
                        "fields": folded_fields,
                        "type": "cross_fields",
                        "operator": "or",
                        "minimum_should_match": "2<-25%",
                        "boost": 0.5,
                    }
                }
            ],
            "should": [
                bonus(folded, folded_fields, "cross_fields", 20),
                bonus(exact, exact_fields, "cross_fields", 10),
                bonus(folded, folded_fields, "phrase", 20),
                bonus(exact, exact_fields, "phrase", 20),
            ],
        }
    }


def sort_spec(p: SearchParams) -> list[Any]:
    """Sort with a unique tiebreaker (asset_id), so ``search_after`` pages are stable."""
    if p.sort == "relevance":
        head: list[Any] = ["_score", {"recorded_at": {"order": "desc", "missing": "_last"}}]
    elif p.sort == "date":
        head = [{"recorded_at": {"order": p.order, "missing": "_last"}}]
    elif p.sort == "uploaded":
        head = [{"ingested_at": {"order": p.order, "missing": "_last"}}]
    else:
        head = [
            {"duration_s": {"order": p.order, "missing": "_last"}},
            {"recorded_at": {"order": "desc", "missing": "_last"}},
        ]
    return [*head, {"asset_id": "asc"}]


def facet_aggs(p: SearchParams) -> dict[str, Any]:
    """Each facet counts with every filter but its own, so picking one value still shows the others."""
    aggs: dict[str, Any] = {}
    for facet in p.facets:
        target = keyword_field(facet)
        if target is None:
            continue
        terms: dict[str, Any] = {"terms": {"field": target.path, "size": p.facet_size}}
        inner: dict[str, Any] = (
            {"values": terms}
            if target.nested_path is None
            else {"nested": {"nested": {"path": target.nested_path}, "aggs": {"values": terms}}}
        )
        aggs[facet] = {"filter": {"bool": {"filter": filter_clauses(p.filters, skip=facet)}}, "aggs": inner}
    return aggs


def highlight_spec() -> dict[str, Any]:
    # Whole fields (no fragments) so the marks map back onto the original text. Only the
    # searchable start of a field is analysed: without the bound, one document with a field
    # over index.highlight.max_analyzed_offset (1 000 000 characters) fails every search
    # that matches it. (Documents written before folded copies were bounded may hold more.)
    return {
        "pre_tags": [HL_PRE],
        "post_tags": [HL_POST],
        "require_field_match": False,
        "max_analyzed_offset": MAX_SEARCHABLE_CHARS,
        "fields": {f"{name}_folded": {"number_of_fragments": 0} for name in text_fields()},
    }


def build_search_body(p: SearchParams, *, visible: Visible) -> dict[str, Any]:
    """Query (with what may be seen as its filter), post-filter (facets see counts without
    the chosen filters), facets, sort, highlight, paging."""
    # Former names and other spellings of names in the query weigh less (services/search/aliases.py).
    query: dict[str, Any] = with_aliases(p.q, text_query) if p.q.strip() else {"match_all": {}}
    if visible is not None:
        query = {"bool": {"must": [query], "filter": [visible]}}
    body: dict[str, Any] = {
        "query": query,
        "post_filter": {"bool": {"filter": filter_clauses(p.filters)}},
        "aggs": facet_aggs(p),
        "sort": sort_spec(p),
        "size": p.size,
        "track_total_hits": True,
        "highlight": highlight_spec(),
        "_source": HIDDEN_SOURCE,
        # Each hit's version: the stream sequence of its asset's last projected event (what a
        # bulk edit sends back as "expected", so an asset changed since is not overwritten).
        "version": True,
    }
    if p.search_after is not None:
        body["search_after"] = list(p.search_after)
    elif p.offset:
        body["from"] = p.offset
    return body


def more_like_this_body(
    asset_id: str, like_text: list[str], f: Filters, size: int, *, visible: Visible
) -> dict[str, Any]:
    """Assets sharing the rarer folded words of this asset's own texts.

    ``more_like_this`` is part of the Elasticsearch core, so it runs on the
    minimal distribution; feeding it the folded text matches regardless of
    diacritics, and the asset itself is excluded.
    """
    folded_fields = [f"{p}_folded" for p in text_fields()]
    return {
        "query": {
            "bool": {
                "must": [
                    {
                        "more_like_this": {
                            "fields": folded_fields,
                            "like": like_text,
                            "min_term_freq": 1,
                            "min_doc_freq": 1,
                            "max_query_terms": 40,
                            "minimum_should_match": "20%",
                        }
                    }
                ],
                "must_not": [{"ids": {"values": [asset_id]}}],
                "filter": _only_visible(filter_clauses(f), visible),
            }
        },
        "size": size,
        "sort": ["_score", {"asset_id": "asc"}],
        "highlight": highlight_spec(),
        "_source": HIDDEN_SOURCE,
    }


StatsGroup = Literal["month", "year", "term"]
STATS_GROUPS: tuple[str, ...] = ("month", "year", "term")


def stats_body(f: Filters, group_by: StatsGroup, *, visible: Visible) -> dict[str, Any]:
    """Counts and total duration per period per activity type, for review charts."""
    per_type = {
        "by_type": {
            "terms": {"field": "activity_type", "size": 50, "order": {"_key": "asc"}},
            "aggs": {"duration": {"sum": {"field": "duration_s"}}},
        }
    }
    if group_by == "month":
        period: dict[str, Any] = {
            "date_histogram": {
                "field": "recorded_at",
                "calendar_interval": "month",
                "time_zone": LOCAL_TZ.key,
                "format": "yyyy-MM",
                "min_doc_count": 1,
            }
        }
        undated: dict[str, Any] = {"missing": {"field": "recorded_at"}}
    else:
        fld = "year" if group_by == "year" else "term"
        period = {"terms": {"field": fld, "size": 500, "order": {"_key": "asc"}}}
        undated = {"missing": {"field": fld}}
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": _only_visible(filter_clauses(f), visible)}},
        "aggs": {
            "periods": {**period, "aggs": per_type},
            "undated": {**undated, "aggs": per_type},
            "duration": {"sum": {"field": "duration_s"}},
        },
    }


def activities_body(f: Filters, size: int, *, visible: Visible) -> dict[str, Any] | None:
    """Activities per term with asset counts and date span; None if the index has no activity field."""
    activity = keyword_field("activity")
    if activity is None:
        return None
    per_activity: dict[str, Any] = {
        "terms": {"field": activity.path, "size": size, "order": {"first": "desc"}},
        "aggs": {
            "first": {"min": {"field": "recorded_at"}},
            "last": {"max": {"field": "recorded_at"}},
            "duration": {"sum": {"field": "duration_s"}},
            "types": {"terms": {"field": "activity_type", "size": 3}},
            "sample": {"top_hits": {"size": 1, "_source": {"includes": ["activity*", "title"]}}},
        },
    }
    body_aggs: dict[str, Any] = {"activities": per_activity}
    if activity.nested_path is not None:
        body_aggs = {"nested": {"nested": {"path": activity.nested_path}, "aggs": body_aggs}}
    return {
        "size": 0,
        "query": {"bool": {"filter": _only_visible(filter_clauses(f), visible)}},
        "aggs": {
            "terms": {
                "terms": {"field": "term", "size": 20, "missing": "", "order": {"_key": "desc"}},
                "aggs": body_aggs,
            }
        },
    }


# --- opaque cursors --------------------------------------------------------------
# A cursor carries ``search_after`` values straight into Elasticsearch, so the API only
# takes back what it issued: the payload is signed (HMAC-SHA256 with the deployment's
# ``search_cursor_key``), and its values are checked against the sort before use.

CURSOR_VERSION = 2
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_MAX_ID_CHARS = 512
# What Elasticsearch returns as the sort value of a missing float (a duration).
_FLOAT_MISSING = frozenset({"Infinity", "-Infinity"})


def params_fingerprint(p: SearchParams) -> str:
    """What a cursor is bound to: query, filters and sort (not the page size)."""
    return params_fingerprint_of([p.q, p.filters, p.sort, p.order])


def params_fingerprint_of(parts: list[Any]) -> str:
    """A short digest of a query's parts (``Filters`` included) that a cursor is bound to."""
    basis = json.dumps([asdict(x) if isinstance(x, Filters) else x for x in parts], default=str, sort_keys=True)
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def sign_cursor(fingerprint: str, sort_values: list[Any], key: bytes) -> str:
    """An opaque cursor: ``sort_values`` bound to a query's ``fingerprint``, signed with ``key``."""
    payload = _b64(
        json.dumps({"v": CURSOR_VERSION, "f": fingerprint, "s": sort_values}, separators=(",", ":")).encode()
    )
    return f"{payload}.{_signature(key, payload)}"


def encode_cursor(p: SearchParams, sort_values: list[Any], key: bytes) -> str:
    return sign_cursor(params_fingerprint(p), sort_values, key)


def _is_long(v: Any) -> bool:
    return type(v) is int and _LONG_MIN <= v <= _LONG_MAX


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and abs(v) <= 3.4028234663852886e38


def _sort_value_checks(p: SearchParams) -> list[Any]:
    """One check per ``sort_spec`` entry: what Elasticsearch returns for it."""
    checks: list[Any] = []
    for entry in sort_spec(p):
        name = entry if isinstance(entry, str) else next(iter(entry))
        if name == "_score":
            checks.append(_is_number)
        elif name == "recorded_at":  # epoch millis; Long.MIN/MAX for undated assets
            checks.append(_is_long)
        elif name == "duration_s":
            checks.append(lambda v: _is_number(v) or v in _FLOAT_MISSING)
        else:  # asset_id
            checks.append(lambda v: isinstance(v, str) and 0 < len(v) <= _MAX_ID_CHARS)
    return checks


def decode_cursor(p: SearchParams, cursor: str, key: bytes) -> tuple[Any, ...]:
    """The ``search_after`` values in ``cursor``; raises CursorError unless this deployment
    issued it for ``p`` and its values fit the sort."""
    values = verified_cursor(cursor, params_fingerprint(p), key)
    checks = _sort_value_checks(p)
    if len(values) != len(checks) or not all(check(v) for check, v in zip(checks, values, strict=True)):
        raise CursorError("corrupt cursor")
    return tuple(values)


def verified_cursor(cursor: str, fingerprint: str, key: bytes) -> list[Any]:
    """The sort values of a cursor this deployment signed for the query ``fingerprint``
    (the caller checks them against its sort), else CursorError."""
    payload, _, signature = cursor.partition(".")
    expected = _signature(key, payload).encode()
    if not payload or not hmac.compare_digest(signature.encode("utf-8", "surrogatepass"), expected):
        raise CursorError("not a cursor this service issued")
    try:
        data = json.loads(_unb64(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise CursorError("corrupt cursor") from exc
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION or not isinstance(data.get("s"), list):
        raise CursorError("corrupt cursor")
    if data.get("f") != fingerprint:
        raise CursorError("cursor belongs to another query")
    values: list[Any] = data["s"]
    return values
