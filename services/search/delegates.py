"""The delegate activity report: who has been recorded speaking this term, and the
council's two targets as a checklist (seed ``004_…``): every delegate speaks at
least once in the term; every delegate group gives at least one opinion in
plenary at each session.

The counting is Elasticsearch's: aggregations over the nested ``speeches``
entries and the ``appearing_ids`` field the projector writes
(``shared.speeches``), one request whatever the number of assets. Python only
joins the buckets (a few per delegate) with the delegate list and the sessions
(``shared.delegates.DelegateDirectory``). Pure functions, unit-tested.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.activities import Activity
from shared.delegates import Delegate
from shared.events.speech import SPEECH_KIND_LABELS
from shared.taxonomy import LOCAL_TZ, term_by_code

SPEAKING_KINDS = ("phat-bieu", "thao-luan", "chat-van")  # what counts as taking the floor
MAX_EVIDENCE = 100


@dataclass(frozen=True)
class ReportParams:
    term: str
    groups: tuple[str, ...] = ()
    session: str | None = None
    kinds: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    evidence: int = 10


def _asset_filters(p: ReportParams, visible: dict[str, Any] | None) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = [{"term": {"term": p.term}}]
    if p.date_from or p.date_to:
        rng: dict[str, Any] = {"time_zone": LOCAL_TZ.key}
        if p.date_from:
            rng["gte"] = p.date_from.isoformat()
        if p.date_to:
            rng["lte"] = p.date_to.isoformat()
        clauses.append({"range": {"recorded_at": rng}})
    if visible is not None:
        clauses.append(visible)
    return clauses


def report_body(
    p: ReportParams, person_ids: list[str], session_ids: list[str], *, visible: dict[str, Any] | None
) -> dict[str, Any]:
    """One search request: speeches per delegate (by kind, by session, last date, evidence),
    plenary opinions per session per delegate, appearances per delegate."""
    size = max(1, len(person_ids))
    speaks: list[dict[str, Any]] = [
        {"term": {"speeches.role": "speaks"}},
        {"terms": {"speeches.person_id": person_ids}},
    ]
    if p.kinds:
        speaks.append({"terms": {"speeches.kind": list(p.kinds)}})
    if p.session:
        speaks.append({"term": {"speeches.activity_id": p.session}})
    evidence = min(max(p.evidence, 0), MAX_EVIDENCE)
    newest_speech = {"top_hits": {"size": evidence, "_source": False, "sort": [{"speeches.recorded_at": "desc"}]}}
    newest_asset = {"top_hits": {"size": evidence, "_source": False, "sort": [{"recorded_at": "desc"}]}}
    plenary = [
        {"term": {"speeches.role": "speaks"}},
        {"term": {"speeches.plenary": True}},
        {"terms": {"speeches.person_id": person_ids}},
        {"terms": {"speeches.activity_id": session_ids}},
    ]
    return {
        "size": 0,
        "query": {"bool": {"filter": _asset_filters(p, visible)}},
        "aggs": {
            "speeches": {
                "nested": {"path": "speeches"},
                "aggs": {
                    "spoke": {
                        "filter": {"bool": {"filter": speaks}},
                        "aggs": {
                            "people": {
                                "terms": {"field": "speeches.person_id", "size": size},
                                "aggs": {
                                    "kinds": {"terms": {"field": "speeches.kind", "size": 10}},
                                    "sessions": {
                                        "terms": {"field": "speeches.activity_id", "size": 500},
                                        "aggs": {
                                            "kinds": {"terms": {"field": "speeches.kind", "size": 10}},
                                            "evidence": {"top_hits": {"size": min(evidence, 5), "_source": False}},
                                        },
                                    },
                                    "last": {"max": {"field": "speeches.recorded_at"}},
                                    "evidence": newest_speech,
                                },
                            }
                        },
                    },
                    "plenary": {
                        "filter": {"bool": {"filter": plenary}},
                        "aggs": {
                            "sessions": {
                                "terms": {"field": "speeches.activity_id", "size": max(1, len(session_ids))},
                                "aggs": {
                                    "people": {
                                        "terms": {"field": "speeches.person_id", "size": size},
                                        "aggs": {"evidence": {"top_hits": {"size": 3, "_source": False}}},
                                    }
                                },
                            }
                        },
                    },
                },
            },
            "appearances": {
                "terms": {"field": "appearing_ids", "size": size, "include": person_ids},
                "aggs": {"last": {"max": {"field": "recorded_at"}}, "evidence": newest_asset},
            },
        },
    }


# What Elasticsearch would answer when nothing is counted (a term without delegates yet).
NOTHING_COUNTED: dict[str, Any] = {
    "aggregations": {
        "speeches": {"spoke": {"people": {"buckets": []}}, "plenary": {"sessions": {"buckets": []}}},
        "appearances": {"buckets": []},
    }
}


def _ids(bucket: dict[str, Any]) -> list[str]:
    return [str(h["_id"]) for h in bucket["evidence"]["hits"]["hits"]]


def _kinds(bucket: dict[str, Any]) -> dict[str, int]:
    return {str(k["key"]): int(k["doc_count"]) for k in bucket["kinds"]["buckets"]}


def _day(value: str | None) -> str | None:
    """The day in Vietnam of an aggregated moment (Elasticsearch answers it in UTC: a recording
    before 07:00 Vietnam time is the day before in UTC)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment.astimezone(LOCAL_TZ) if moment.tzinfo else moment).date().isoformat()


def shape_report(
    p: ReportParams, delegates: list[Delegate], sessions: list[Activity], response: dict[str, Any]
) -> dict[str, Any]:
    """The report as the API answers it: per delegate, per session × group, the checklist."""
    aggs = response["aggregations"]
    titles = {s.activity_id: s.title for s in sessions}
    spoke = {b["key"]: b for b in aggs["speeches"]["spoke"]["people"]["buckets"]}
    seen = {b["key"]: b for b in aggs["appearances"]["buckets"]}
    rows = []
    for d in delegates:
        s = spoke.get(d.person_id)
        a = seen.get(d.person_id)
        last = max(
            (x for x in (s and s["last"].get("value_as_string"), a and a["last"].get("value_as_string")) if x),
            default=None,
        )
        rows.append(
            {
                "person_id": d.person_id,
                "delegate_id": d.delegate_id,
                "name": d.name,
                "group": d.group,
                "electoral_unit": d.electoral_unit,
                "speeches": int(s["doc_count"]) if s else 0,
                "by_kind": _kinds(s) if s else {},
                "by_session": [
                    {
                        "session": b["key"],
                        "title": titles.get(b["key"]),
                        "count": int(b["doc_count"]),
                        "by_kind": _kinds(b),
                        "evidence": _ids(b),
                    }
                    for b in (s["sessions"]["buckets"] if s else [])
                ],
                "speech_evidence": _ids(s) if s else [],
                "appearances": int(a["doc_count"]) if a else 0,
                "appearance_evidence": _ids(a) if a else [],
                "last_recorded_at": _day(last),
            }
        )
    by_person = {d.person_id: d for d in delegates}
    groups = sorted({d.group for d in delegates if d.group})
    plenary = {b["key"]: b for b in aggs["speeches"]["plenary"]["sessions"]["buckets"]}
    session_rows = []
    for session in sessions:
        bucket = plenary.get(session.activity_id)
        per_group: dict[str, dict[str, Any]] = {
            g: {"group": g, "opinions": 0, "delegates": [], "evidence": []} for g in groups
        }
        for person in bucket["people"]["buckets"] if bucket else []:
            delegate = by_person.get(person["key"])
            if delegate is None or delegate.group not in per_group:
                continue
            cell = per_group[delegate.group]
            cell["opinions"] += int(person["doc_count"])
            cell["delegates"].append({"name": delegate.name, "count": int(person["doc_count"])})
            cell["evidence"].extend(i for i in _ids(person) if i not in cell["evidence"])
        session_rows.append(
            {
                "session": session.activity_id,
                "title": session.title,
                "start_date": session.start_date.isoformat(),
                "groups": list(per_group.values()),
                "groups_without_opinion": [g for g, c in per_group.items() if c["opinions"] == 0],
            }
        )
    silent = [{"person_id": r["person_id"], "name": r["name"], "group": r["group"]} for r in rows if not r["speeches"]]
    missing = [
        {"session": s["session"], "title": s["title"], "groups": s["groups_without_opinion"]}
        for s in session_rows
        if s["groups_without_opinion"]
    ]
    term = term_by_code(p.term)
    return {
        "term": p.term,
        "term_label": term.label_vi if term else p.term,
        "filters": {
            "group": list(p.groups),
            "session": p.session,
            "kind": list(p.kinds),
            "date_from": p.date_from.isoformat() if p.date_from else None,
            "date_to": p.date_to.isoformat() if p.date_to else None,
        },
        "kind_labels": SPEECH_KIND_LABELS,
        "delegates": rows,
        "sessions": session_rows,
        "checklist": {
            "delegates_without_speech": silent,
            "groups_without_opinion": missing,
            # None: nothing to check (no delegate registered, no session yet) — neither met nor missed.
            "every_delegate_has_spoken": (not silent) if rows else None,
            "every_group_at_every_session": (not missing) if session_rows and groups else None,
        },
        "totals": {
            "delegates": len(rows),
            "delegates_who_spoke": len(rows) - len(silent),
            "speeches": sum(r["speeches"] for r in rows),
            "sessions": len(session_rows),
            "groups": len(groups),
        },
    }


# --- export ------------------------------------------------------------------------------------

DELEGATE_COLUMNS = (
    "Họ tên",
    "Tổ đại biểu",
    "Đơn vị bầu cử",
    "Phát biểu",
    "Thảo luận",
    "Chất vấn",
    "Tổng số lần phát biểu",
    "Số tư liệu có mặt",
    "Lần ghi gần nhất",
    "Chưa phát biểu trong nhiệm kỳ",
    "Tư liệu (mã)",
)
GROUP_COLUMNS = ("Kỳ họp", "Ngày", "Tổ đại biểu", "Số ý kiến tại phiên toàn thể", "Đại biểu", "Tư liệu (mã)")


def delegate_table(report: dict[str, Any]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for r in report["delegates"]:
        kinds = r["by_kind"]
        out.append(
            [
                r["name"],
                r["group"],
                r["electoral_unit"],
                kinds.get("phat-bieu", 0),
                kinds.get("thao-luan", 0),
                kinds.get("chat-van", 0),
                r["speeches"],
                r["appearances"],
                r["last_recorded_at"] or "",
                "" if r["speeches"] else "Chưa",
                " ".join(r["speech_evidence"]),
            ]
        )
    return out


def group_table(report: dict[str, Any]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for s in report["sessions"]:
        for g in s["groups"]:
            names = ", ".join(f"{x['name']} ({x['count']})" for x in g["delegates"])
            out.append([s["title"], s["start_date"], g["group"], g["opinions"], names, " ".join(g["evidence"])])
    return out


def report_csv(report: dict[str, Any]) -> bytes:
    """The delegate table as CSV (UTF-8 with BOM, so spreadsheet programs read the diacritics)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(DELEGATE_COLUMNS)
    writer.writerows(delegate_table(report))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def report_xlsx(report: dict[str, Any]) -> bytes:
    """Three sheets: delegates, groups per session, the targets."""
    from openpyxl import Workbook  # only exports need it

    book = Workbook(write_only=True)
    delegates = book.create_sheet("Đại biểu")
    delegates.append(list(DELEGATE_COLUMNS))
    for row in delegate_table(report):
        delegates.append(row)
    groups = book.create_sheet("Tổ theo kỳ họp")
    groups.append(list(GROUP_COLUMNS))
    for row in group_table(report):
        groups.append(row)
    targets = book.create_sheet("Chỉ tiêu")
    targets.append(["Chỉ tiêu", "Chưa đạt"])
    for d in report["checklist"]["delegates_without_speech"]:
        targets.append(["Đại biểu chưa phát biểu trong nhiệm kỳ", f"{d['name']} ({d['group']})"])
    for s in report["checklist"]["groups_without_opinion"]:
        for g in s["groups"]:
            targets.append([f"Tổ chưa có ý kiến tại {s['title']}", g])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
