"""Review statistics (charts drawn as SVG on the server, every number also in a table) and the
delegates' activity checklist per term: pages over the search API's reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.web.api import backend, page
from services.web.backend import ApiRefused
from services.web.people import default_term
from services.web.session import page_requires
from shared.auth import Principal
from shared.policy import Action
from shared.taxonomy import terms

router = APIRouter()
Searcher = Annotated[Principal, Depends(page_requires(Action.SEARCH))]
Reporter = Annotated[Principal, Depends(page_requires(Action.DELEGATE_REPORT))]
MIN_YEAR, MAX_YEAR = 1945, 2100  # the dates the archive accepts (shared.fields)
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


def years_with_material(periods: list[dict[str, Any]]) -> list[int]:
    """The years the archive holds material from (the year-grouped statistics' periods)."""
    found = {int(str(p.get("period", ""))[:4]) for p in periods if str(p.get("period", ""))[:4].isdigit()}
    return sorted(y for y in found if MIN_YEAR <= y <= MAX_YEAR)


def compared_years(request: Request, years: list[int]) -> tuple[int, int] | None:
    """The two years to compare: those asked for, else the latest year with material and the
    one before it (an archive of older material would otherwise open on two empty years);
    None: the API's default (this year and last)."""

    def asked(name: str) -> int | None:
        value = request.query_params.get(name, "")
        return int(value) if value.isdigit() and MIN_YEAR <= int(value) <= MAX_YEAR else None

    current, previous = asked("current_year"), asked("previous_year")
    if current is None and not years:
        return None
    current = current if current is not None else years[-1]
    return current, previous if previous is not None else current - 1


@router.get("/stats", response_class=HTMLResponse, include_in_schema=False)
async def stats_page(request: Request, who: Searcher) -> HTMLResponse:
    api = backend(request)
    group = request.query_params.get("group_by", "year")
    group = group if group in GROUPS else "year"
    problem: tuple[str, str] | None = None
    stats: dict[str, Any] = {"periods": [], "total": 0, "total_duration_s": 0}
    compare: dict[str, Any] | None = None
    years: list[int] = []
    chosen: tuple[int, int] | None = None
    try:
        stats = await api.get("search", "/v1/stats", group_by=group)
        by_year = stats if group == "year" else await api.get("search", "/v1/stats", group_by="year")
        years = years_with_material(by_year.get("periods", []))
        chosen = compared_years(request, years)
        spans = {}
        if chosen is not None:
            (current, previous) = chosen
            spans = {
                "current_from": f"{current}-01-01",
                "current_to": f"{current}-12-31",
                "previous_from": f"{previous}-01-01",
                "previous_to": f"{previous}-12-31",
            }
        compare = await api.get("search", "/v1/stats/compare", by="activity_type", **spans)
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
        years=sorted(set(years) | set(chosen or ()), reverse=True),
        chosen=chosen,
        problem=problem,
    )


@router.get("/delegates", response_class=HTMLResponse, include_in_schema=False)
async def delegates_page(request: Request, who: Reporter) -> HTMLResponse:
    known = [t.code for t in terms()]
    term = request.query_params.get("term", "")
    term = term if term in known else default_term()
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
