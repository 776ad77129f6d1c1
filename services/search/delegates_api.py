"""search HTTP API: the delegate activity report (``Action.DELEGATE_REPORT``), as JSON,
CSV or XLSX. Counting is one Elasticsearch request (``delegates.report_body``); the
delegates and sessions of the term come from the log (``DelegateDirectory``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from services.search.api import Deps
from services.search.delegates import (
    MAX_EVIDENCE,
    NOTHING_COUNTED,
    SPEAKING_KINDS,
    ReportParams,
    report_body,
    report_csv,
    report_xlsx,
    shape_report,
)
from shared.access import requires
from shared.auth import Principal
from shared.http import UserError
from shared.policy import Action, visibility_filter
from shared.taxonomy import term_by_code

router = APIRouter(prefix="/v1")
Reporter = Annotated[Principal, Depends(requires(Action.DELEGATE_REPORT))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def report_params(
    term: Annotated[str, Query(max_length=64, description="nhiệm kỳ, vd. 2021-2026")],
    group: Annotated[list[str] | None, Query(max_length=200, description="Tổ đại biểu (lặp lại được)")] = None,
    session: Annotated[str | None, Query(max_length=64, description="mã hoạt động kỳ họp")] = None,
    kind: Annotated[list[str] | None, Query(max_length=10, description="phat-bieu, thao-luan, chat-van")] = None,
    date_from: Annotated[date | None, Query(description="từ ngày (giờ Việt Nam)")] = None,
    date_to: Annotated[date | None, Query(description="đến ngày (giờ Việt Nam)")] = None,
    evidence: Annotated[int, Query(ge=0, le=MAX_EVIDENCE, description="số mã tư liệu dẫn chứng mỗi dòng")] = 10,
) -> ReportParams:
    if term_by_code(term) is None:
        raise UserError(
            422,
            "unknown_term",
            f"Không có nhiệm kỳ '{term}' (vd. 2021-2026).",
            f"No term '{term}' (e.g. 2021-2026).",
            field="term",
        )
    kinds = tuple(k for v in kind or [] for k in v.split(",") if k)
    wrong = [k for k in kinds if k not in SPEAKING_KINDS]
    if wrong:
        raise UserError(
            422,
            "unknown_kind",
            f"Loại phát biểu không hợp lệ: {', '.join(wrong)} (phat-bieu, thao-luan, chat-van).",
            f"Unknown speech kind: {', '.join(wrong)} (phat-bieu, thao-luan, chat-van).",
            field="kind",
        )
    return ReportParams(
        term=term,
        groups=tuple(group or ()),
        session=session,
        kinds=kinds,
        date_from=date_from,
        date_to=date_to,
        evidence=evidence,
    )


Params = Annotated[ReportParams, Depends(report_params)]


async def build_report(d: Any, who: Principal, p: ReportParams) -> dict[str, Any]:
    known = await d.delegates.catch_up(d.events)
    delegates = [x for x in known.of_term(p.term) if not p.groups or x.group in p.groups]
    sessions = [s for s in known.sessions(p.term) if p.session is None or s.activity_id == p.session]
    if not delegates:  # nothing to count: no request (an empty "include" is not a valid aggregation)
        return shape_report(p, delegates, sessions, NOTHING_COUNTED)
    body = report_body(
        p, [x.person_id for x in delegates], [s.activity_id for s in sessions], visible=visibility_filter(who)
    )
    return shape_report(p, delegates, sessions, await d.index.search(body))


@router.get(
    "/delegates/report",
    summary="Hoạt động của đại biểu trong nhiệm kỳ / delegate activity report",
    response_class=Response,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def delegate_report(who: Reporter, d: Deps, p: Params) -> Response:
    """Per delegate: speeches by session and kind, appearances, last recorded date; per
    session and delegate group: opinions in plenary; the council's two targets as a
    checklist. Each count lists the ids of the assets behind it (``evidence`` newest).
    Rendered by orjson straight from the dict (the report is plain JSON data)."""
    return Response(orjson.dumps(await build_report(d, who, p)), media_type="application/json")


@router.get(
    "/delegates/report.csv",
    summary="Báo cáo hoạt động đại biểu (CSV) / delegate report as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def delegate_report_csv(who: Reporter, d: Deps, p: Params) -> Response:
    report = await build_report(d, who, p)
    return Response(
        report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="dai-bieu-{p.term}.csv"'},
    )


@router.get(
    "/delegates/report.xlsx",
    summary="Báo cáo hoạt động đại biểu (XLSX) / delegate report as XLSX",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}}},
)
async def delegate_report_xlsx(who: Reporter, d: Deps, p: Params) -> Response:
    report = await build_report(d, who, p)
    return Response(
        report_xlsx(report),
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="dai-bieu-{p.term}.xlsx"'},
    )
