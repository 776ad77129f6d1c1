"""Review statistics (charts drawn as SVG on the server, every number also in a table) and the
delegates' activity checklist per term: pages over the search API's reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.web.api import backend, page
from services.web.backend import ApiRefused
from services.web.session import page_requires
from shared.auth import Principal
from shared.policy import Action
from shared.taxonomy import terms

router = APIRouter()
Searcher = Annotated[Principal, Depends(page_requires(Action.SEARCH))]
Reporter = Annotated[Principal, Depends(page_requires(Action.DELEGATE_REPORT))]
GROUPS = {"month": ("Theo tháng", "By month"), "year": ("Theo năm", "By year"), "term": ("Theo nhiệm kỳ", "By term")}


def bars(values: list[float], width: int = 640, height: int = 180) -> list[dict[str, float]]:
    """Bar geometry (x, y, w, h) of ``values`` in a ``width`` × ``height`` box, tallest at full height."""
    top = max(values, default=0) or 1
    slot = width / max(len(values), 1)
    bar = min(slot * 0.8, 60.0)  # a lone period is a bar, not a wall
    return [
        {"x": i * slot + (slot - bar) / 2, "w": bar, "h": height * v / top, "y": height - height * v / top}
        for i, v in enumerate(values)
    ]


@router.get("/stats", response_class=HTMLResponse, include_in_schema=False)
async def stats_page(request: Request, who: Searcher) -> HTMLResponse:
    api = backend(request)
    group = request.query_params.get("group_by", "year")
    group = group if group in GROUPS else "year"
    problem: tuple[str, str] | None = None
    stats: dict[str, Any] = {"periods": [], "total": 0, "total_duration_s": 0}
    compare: dict[str, Any] | None = None
    try:
        stats = await api.get("search", "/v1/stats", group_by=group)
        compare = await api.get("search", "/v1/stats/compare", by="activity_type")
    except ApiRefused as refused:
        problem = (refused.message_vi, refused.message_en)
    periods = stats.get("periods", [])
    types = sorted({c["label"] for p in periods for c in p.get("by_activity_type", [])})
    pairs: list[dict[str, Any]] = []
    if compare and len(compare.get("series", [])) == 2:
        current, previous = compare["series"]
        geometry = bars([float(v) for pair in zip(current["counts"], previous["counts"], strict=True) for v in pair])
        for i, name in enumerate(compare.get("label_names", [])):
            pairs.append({"name": name, "now": geometry[2 * i], "before": geometry[2 * i + 1]})
    return page(
        request,
        "stats.html",
        group=group,
        groups=GROUPS,
        stats=stats,
        periods=periods,
        types=types,
        period_bars=bars([float(p["count"]) for p in periods]),
        compare=compare,
        pairs=pairs,
        problem=problem,
    )


@router.get("/delegates", response_class=HTMLResponse, include_in_schema=False)
async def delegates_page(request: Request, who: Reporter) -> HTMLResponse:
    known = [t.code for t in terms()]
    term = request.query_params.get("term", "")
    term = term if term in known else (known[-1] if known else "")
    report: dict[str, Any] | None = None
    problem: tuple[str, str] | None = None
    try:
        report = await backend(request).get("search", "/v1/delegates/report", term=term, evidence=3)
    except ApiRefused as refused:
        problem = (refused.message_vi, refused.message_en)
    return page(request, "delegates.html", report=report, term=term, problem=problem)


@router.get("/delegates/report.{fmt}", include_in_schema=False)
async def delegates_download(request: Request, fmt: str, who: Reporter) -> Response:
    """The report as CSV or XLSX, as the search API writes it."""
    if fmt not in ("csv", "xlsx"):
        fmt = "csv"
    term = request.query_params.get("term", "")
    answer = await backend(request).call("search", "GET", f"/v1/delegates/report.{fmt}", params={"term": term})
    headers = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "content-disposition")}
    return Response(answer.content, status_code=answer.status_code, headers=headers)
