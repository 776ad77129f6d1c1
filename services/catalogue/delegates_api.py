"""catalogue HTTP API for delegates (per term) and for who speaks in an asset: thin
handlers over ``delegates.py`` (pure decisions) and ``shared.delegates`` (the list's parsing)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.catalogue import decide
from services.catalogue.api import CatalogueDeps, Deps, tags_view
from services.catalogue.delegates import SpeechDecision, decide_register_delegate, decide_speeches
from shared.access import requires
from shared.auth import Principal
from shared.commands import Decision, run_command
from shared.delegates import (
    MAX_IMPORT_BYTES,
    DelegateListError,
    DelegateRow,
    fold_delegate,
    parse_delegate_rows,
    parse_delegate_xlsx,
)
from shared.http import UserError, checked_id
from shared.people import Person
from shared.policy import Action
from shared.ports import StoredEvent

router = APIRouter(prefix="/v1")
PeopleReader = Annotated[Principal, Depends(requires(Action.PEOPLE_READ))]
PeopleEditor = Annotated[Principal, Depends(requires(Action.PEOPLE_EDIT))]
Editor = Annotated[Principal, Depends(requires(Action.ASSET_EDIT))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _invalid_list(vi: str, en: str) -> UserError:
    return UserError(
        422, "invalid_delegate_list", f"Danh sách đại biểu không hợp lệ: {vi}", f"Invalid delegate list: {en}"
    )


async def _read_body(request: Request) -> bytes:
    """The request body, refused past MAX_IMPORT_BYTES (from Content-Length, or while it streams)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_IMPORT_BYTES:
        raise UserError(
            413, "too_large", "Tệp danh sách quá lớn (tối đa 5 MB).", "The list is too large (5 MB at most)."
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:
            raise UserError(
                413, "too_large", "Tệp danh sách quá lớn (tối đa 5 MB).", "The list is too large (5 MB at most)."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_list(body: bytes, content_type: str) -> list[DelegateRow]:
    """CSV (UTF-8) or XLSX, told apart by the content type or the ZIP signature."""
    try:
        if XLSX in content_type or body.startswith(b"PK\x03\x04"):
            return parse_delegate_xlsx(body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DelegateListError("tệp CSV phải mã hóa UTF-8.", "a CSV list must be UTF-8.") from exc
        return parse_delegate_rows(text)
    except DelegateListError as exc:
        raise _invalid_list(exc.message_vi, exc.message_en) from exc


async def _register(d: CatalogueDeps, row: DelegateRow, actor: str) -> tuple[int, int]:
    """The person (registry, so the tagger knows the name) and the delegate seat; (people, seats) appended."""
    checked_id("person", row.person_id, "người", "person")
    person = Person(row.person_id, row.name, row.role, row.organ, row.term)

    def register_person(history: list[StoredEvent]) -> Decision:
        return decide.decide_register_person(history, person)

    def register_seat(history: list[StoredEvent]) -> Decision:
        return decide_register_delegate(fold_delegate(history), row)

    people = await run_command(d.events, "person", row.person_id, register_person, actor=actor)
    seat = await run_command(d.events, "delegate", row.delegate_id, register_seat, actor=actor)
    return len(people.appended), len(seat.appended)


@router.post(
    "/delegates/import",
    summary="Nhập danh sách đại biểu theo nhiệm kỳ (CSV/XLSX) / import delegates",
    openapi_extra=_IMPORT_BODY,
)
async def import_delegates(request: Request, who: PeopleEditor, d: Deps) -> dict[str, Any]:
    """Columns: họ tên (name), nhiệm kỳ (term), đơn vị bầu cử, tổ đại biểu, chức vụ, cơ quan.
    Importing the same list again appends nothing; a changed row is a ``delegate.edited``."""
    rows = parse_list(await _read_body(request), request.headers.get("content-type", ""))
    people = seats = 0
    for row in rows:
        added_people, added_seats = await _register(d, row, who.actor)
        people += added_people
        seats += added_seats
    return {"rows": len(rows), "people_added": people, "delegate_events": seats}


@router.get("/delegates", summary="Danh sách đại biểu theo nhiệm kỳ / delegates of a term")
async def list_delegates(
    who: PeopleReader,
    d: Deps,
    term: Annotated[str | None, Query(max_length=64, description="nhiệm kỳ, vd. 2021-2026")] = None,
    group: Annotated[str | None, Query(max_length=300, description="Tổ đại biểu")] = None,
) -> dict[str, Any]:
    known = await d.delegates.catch_up(d.events)
    found = [
        x for x in known.by_id.values() if (term is None or x.term == term) and (group is None or x.group == group)
    ]
    found.sort(key=lambda x: (x.term, x.group, x.name))
    return {"delegates": [x.as_json() for x in found], "groups": sorted({x.group for x in found if x.group})}


@router.put("/assets/{asset_id}/speeches", summary="Xác nhận, sửa người phát biểu / confirm or correct who speaks")
async def decide_who_speaks(asset_id: str, body: SpeechDecision, who: Editor, d: Deps) -> dict[str, Any]:
    checked_id("asset", asset_id, "tư liệu", "asset")
    registry = (await d.directory()).registry
    await run_command(
        d.events,
        "asset",
        asset_id,
        lambda h: decide_speeches(decide.fold_asset(h), asset_id, body, registry),
        actor=who.actor,
    )
    history = await d.events.history("asset", asset_id)
    view = tags_view(asset_id, history)
    return {
        "asset_id": asset_id,
        "speeches": view.get("speeches", []),
        "speech_status": view.get("speech_status"),
        "sequence": history[-1].sequence,  # search's after_seq waits for it
    }
