"""Bulk edit of a selection on the search page (sửa hàng loạt): the fields the archivist
changed, for every asset ticked, in one call to the catalogue; the answer per asset
(changed, already so, or refused with the API's reason) as a table."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from services.web.api import _form_text, _safe_next, backend, page
from services.web.backend import ApiRefused
from services.web.session import page_requires
from shared.auth import Principal
from shared.policy import Action

router = APIRouter()
Editor = Annotated[Principal, Depends(page_requires(Action.ASSET_EDIT))]
MAX_SELECTION = 500  # the catalogue's limit per request
# The activity choice that takes the assets out of their activity (an empty choice keeps it).
NO_ACTIVITY = "-"


@router.get("/search/bulk-form", response_class=HTMLResponse, include_in_schema=False)
async def bulk_form(request: Request, who: Editor) -> HTMLResponse:
    """The bulk form's fields, loaded when the panel is first opened (the activities list
    costs a call the search page itself does not need)."""
    listing = await backend(request).optional("catalogue", "/v1/activities")
    return page(request, "bulk_fields.html", activities=(listing or {}).get("activities", []), form={}, errors={})


def _changes(form: Any) -> dict[str, Any]:
    """Only what the archivist set: an untouched field is left as each asset has it."""
    body: dict[str, Any] = {}
    for name in ("activity_type", "term"):
        if _form_text(form, name):
            body[name] = _form_text(form, name)
    activity = _form_text(form, "activity_id")
    if activity:
        body["activity_id"] = "" if activity == NO_ACTIVITY else activity
    people = [p.strip() for p in _form_text(form, "people_add").split(",") if p.strip()]
    if people:
        body["people_add"] = people
    return body


@router.post("/search/bulk", response_class=HTMLResponse, include_in_schema=False)
async def bulk_edit(request: Request, who: Editor) -> HTMLResponse:
    form = await request.form()
    chosen = list(dict.fromkeys(v for v in form.getlist("asset") if isinstance(v, str) and v))
    labels = {a: _form_text(form, f"label_{a}") or a for a in chosen}
    back = _safe_next(_form_text(form, "back") or "/search")
    errors: dict[str, tuple[str, str]] = {}
    body = _changes(form)
    if not chosen:
        errors["asset"] = ("Hãy chọn ít nhất một tư liệu trong kết quả.", "Tick at least one asset in the results.")
    elif len(chosen) > MAX_SELECTION:
        errors["asset"] = (
            f"Mỗi lần sửa tối đa {MAX_SELECTION} tư liệu; bạn đã chọn {len(chosen)}.",
            f"At most {MAX_SELECTION} assets at a time; you chose {len(chosen)}.",
        )
    if not body:
        errors["fields"] = (
            "Chưa có trường nào được đổi: chọn loại hoạt động, nhiệm kỳ, hoạt động hoặc thêm người.",
            "Nothing to change: choose an activity type, term, activity, or people to add.",
        )
    answer: dict[str, Any] | None = None
    message: tuple[str, str] | None = None
    if not errors:
        if _form_text(form, "note"):
            body["note"] = _form_text(form, "note")
        # The version of each asset the results showed: one changed since is refused (409), not overwritten.
        seen = {a: _form_text(form, f"seen_{a}") for a in chosen}
        body["expected"] = {a: int(v) for a, v in seen.items() if v.isdigit() and len(v) < 19}
        try:
            answer = await backend(request).json(
                "catalogue", "POST", "/v1/assets/metadata/bulk", json={"asset_ids": chosen, **body}
            )
        except ApiRefused as refused:
            errors = refused.fields
            message = (refused.message_vi, refused.message_en)
    status = 200 if answer is not None else 422
    return page(
        request,
        "bulk_result.html",
        status,
        answer=answer,
        labels=labels,
        errors=errors,
        message=message,
        back=back,
        chosen=len(chosen),
    )
