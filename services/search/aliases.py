"""Names across time: organisations and places renamed or merged (the 2025 mergers:
Ninh Thuận into Khánh Hòa, the departments regrouped…) and the abbreviations
archivists type (HĐND, UBND, ĐBQH, TXCT…). The table is data:
``shared/data/aliases.csv`` (``kind,current,former,since,note``).

Assets keep the name they had. At query time:

- a query naming the current name also searches for the former ones
  ("Khánh Hòa" finds "Ninh Thuận"), and the answer says so (``aliases``);
- an abbreviation and its full form find each other, both ways;
- the alternatives are extra query clauses with a lower boost
  (:data:`ALIAS_BOOST`), using the index's own folding (``shared.text.fold``,
  DESIGN §3: no analysis plugin), so exact matches still rank first;
- facet values are grouped under the current name, and filtering by the
  current name also matches the former ones.

Pure functions over the table, unit-tested without servers.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from shared.text import clean_text, fold

AliasKind = Literal["merged", "renamed", "abbreviation"]
# Alternatives weigh this much of the query as typed: an asset matching only a former
# name or the other spelling of an abbreviation ranks below one matching the words typed.
ALIAS_BOOST = 0.3
MAX_VARIANTS = 8
_TOKEN = re.compile(r"[a-z0-9]+")
_KIND_VI = {"merged": "sáp nhập", "renamed": "đổi tên", "abbreviation": "viết tắt"}


@dataclass(frozen=True)
class Form:
    text: str  # as written in the table (NFC)
    tokens: tuple[str, ...]  # folded words


@dataclass(frozen=True)
class AliasGroup:
    """One current name with its former ones, or one set of equivalent spellings."""

    kind: AliasKind
    current: Form
    others: tuple[Form, ...]
    since: str = ""
    note: str = ""

    def alternatives(self, matched: Form) -> tuple[Form, ...]:
        """What else to search for when the query names ``matched``."""
        if self.kind == "abbreviation":
            return tuple(f for f in (self.current, *self.others) if f != matched)
        return self.others if matched == self.current else ()


def _form(text: str) -> Form:
    clean = clean_text(text)
    return Form(clean, tuple(_TOKEN.findall(fold(clean))))


def parse_alias_table(text: str) -> list[AliasGroup]:
    """Rows ``kind,current,former,since,note``; rows sharing a current name (renames) or
    any spelling (abbreviations) make one group."""
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    merged: dict[tuple[str, ...], tuple[AliasKind, Form, list[Form], str, str]] = {}
    spellings: list[set[Form]] = []
    for row in rows:
        kind = (row.get("kind") or "").strip()
        current, former = _form(row.get("current") or ""), _form(row.get("former") or "")
        if not current.tokens or not former.tokens:
            continue
        if kind == "abbreviation":
            joined = [s for s in spellings if current in s or former in s]
            union = {current, former}.union(*joined)
            spellings = [s for s in spellings if s not in joined] + [union]
        elif kind == "merged" or kind == "renamed":
            since = (row.get("since") or "").strip()
            change: AliasKind = "merged" if kind == "merged" else "renamed"
            entry = merged.setdefault(current.tokens, (change, current, [], since, clean_text(row.get("note"))))
            if former not in entry[2]:
                entry[2].append(former)
        else:
            raise ValueError(f"unknown alias kind {kind!r} (merged, renamed, abbreviation)")
    groups = [AliasGroup(k, c, tuple(o), s, n) for k, c, o, s, n in merged.values()]
    for spelling in spellings:
        ordered = sorted(spelling, key=lambda f: (-len(f.tokens), f.text))
        groups.append(AliasGroup("abbreviation", ordered[0], tuple(ordered[1:])))
    return groups


@cache
def alias_table() -> tuple[AliasGroup, ...]:
    """The table shipped in ``shared/data/aliases.csv``."""
    text = resources.files("shared").joinpath("data/aliases.csv").read_text("utf-8")
    return tuple(parse_alias_table(text))


@dataclass(frozen=True)
class Match:
    start: int  # character offsets in the text
    end: int
    group: AliasGroup
    form: Form


def _words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(fold(text))]


def find_aliases(text: str, groups: Iterable[AliasGroup], *, formers_only: bool = False) -> list[Match]:
    """Where the text names a form of the table: longest first, not overlapping.

    ``formers_only``: only former names (of merges and renames), for grouping facets.
    """
    words = _words(text)
    forms: list[tuple[Form, AliasGroup]] = []
    for g in groups:
        if formers_only:
            if g.kind != "abbreviation":
                forms.extend((f, g) for f in g.others)
        else:
            forms.extend((f, g) for f in (g.current, *g.others))
    forms.sort(key=lambda fg: -len(fg[0].tokens))
    taken = [False] * len(words)
    found: list[Match] = []
    tokens = [w for w, _, _ in words]
    for form, group in forms:
        n = len(form.tokens)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i : i + n]) == form.tokens and not any(taken[i : i + n]):
                taken[i : i + n] = [True] * n
                found.append(Match(words[i][1], words[i + n - 1][2], group, form))
    return sorted(found, key=lambda m: m.start)


def _splice(text: str, changes: list[tuple[Match, Form]]) -> str:
    out, pos = [], 0
    for match, form in sorted(changes, key=lambda c: c[0].start):
        out.append(text[pos : match.start])
        out.append(form.text)
        pos = match.end
    out.append(text[pos:])
    return "".join(out)


def query_variants(q: str, groups: Iterable[AliasGroup] | None = None) -> list[str]:
    """The query as typed with names swapped for their alternatives (one or more at once)."""
    matches = [m for m in find_aliases(q, alias_table() if groups is None else groups) if m.group.alternatives(m.form)]
    if not matches:
        return []
    choices = [[None, *m.group.alternatives(m.form)] for m in matches]
    variants: list[str] = []
    for combo in itertools.product(*choices):
        changes = [(m, f) for m, f in zip(matches, combo, strict=True) if f is not None]
        if changes:
            variants.append(_splice(q, changes))
        if len(variants) >= MAX_VARIANTS:
            break
    return variants


def with_aliases(q: str, text_query: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``text_query(q)``, or it OR-ed with its alias variants at :data:`ALIAS_BOOST`."""
    base = text_query(q)
    variants = query_variants(q)
    if not variants:
        return base
    alternatives = [{"bool": {"must": [text_query(v)], "boost": ALIAS_BOOST}} for v in variants]
    return {"bool": {"should": [base, *alternatives], "minimum_should_match": 1}}


def alias_notes(q: str) -> list[dict[str, Any]]:
    """What the search did with names of the table, for the answer (``aliases``)."""
    notes = []
    for m in find_aliases(q, alias_table()):
        also = [f.text for f in m.group.alternatives(m.form)]
        is_former = m.group.kind != "abbreviation" and m.form != m.group.current
        if is_former:
            vi = f"“{m.form.text}” nay là “{m.group.current.text}” ({_KIND_VI[m.group.kind]}, từ {m.group.since})."
            en = f"“{m.form.text}” is now “{m.group.current.text}” ({m.group.kind} since {m.group.since})."
        elif m.group.kind == "abbreviation":
            vi = f"Tìm cả cách viết: {', '.join(also)}."
            en = f"Also searched for: {', '.join(also)}."
        else:
            vi = f"Tìm cả tên cũ: {', '.join(also)} ({_KIND_VI[m.group.kind]}, từ {m.group.since})."
            en = f"Also searched for the former names: {', '.join(also)} ({m.group.kind} since {m.group.since})."
        notes.append(
            {
                "matched": m.form.text,
                "kind": m.group.kind,
                "current": m.group.current.text,
                "also_searched": also,
                "since": m.group.since or None,
                "note": m.group.note or None,
                "message": vi,
                "message_en": en,
            }
        )
    return notes


def current_name(value: str, groups: Iterable[AliasGroup] | None = None) -> str:
    """A name as it is now: every former name in it replaced by the current one."""
    matches = find_aliases(value, alias_table() if groups is None else groups, formers_only=True)
    return _splice(value, [(m, m.group.current) for m in matches]) if matches else value


def expand_names(values: list[str] | None, groups: Iterable[AliasGroup] | None = None) -> list[str] | None:
    """Filter values plus the former names they stand for ("HĐND tỉnh Khánh Hòa" also
    matches "HĐND tỉnh Ninh Thuận"), so filtering by a grouped facet value finds them all."""
    if not values:
        return values
    table = alias_table() if groups is None else tuple(groups)
    out: list[str] = []
    for value in values:
        out.append(value)
        found = find_aliases(value, table)
        currents = [m for m in found if m.group.kind != "abbreviation" and m.form == m.group.current]
        choices = [[None, *m.group.others] for m in currents]
        for combo in itertools.product(*choices):
            changes = [(m, f) for m, f in zip(currents, combo, strict=True) if f is not None]
            if changes:
                out.append(_splice(value, changes))
            if len(out) > 50:
                break
    return list(dict.fromkeys(out))


GROUPED_FACETS = ("organisation",)


def group_facets(facets: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Facet rows with former names folded under the current one: ``count`` is the sum
    (an asset carrying both names counts twice), ``aliases`` the former values and counts."""
    out = dict(facets)
    for name in GROUPED_FACETS:
        rows = facets.get(name)
        if not rows:
            continue
        grouped: dict[str, dict[str, Any]] = {}
        for row in rows:
            value = str(row["value"])
            now = current_name(value)
            target = grouped.setdefault(now, {"value": now, "count": 0})
            target["count"] += int(row["count"])
            if now != value:
                target.setdefault("aliases", []).append({"value": value, "count": row["count"]})
        out[name] = sorted(grouped.values(), key=lambda r: (-r["count"], r["value"]))
    return out
