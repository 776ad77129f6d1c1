"""People (người, đại biểu): the registry and a person's page (their assets, their speeches
with evidence); on an asset's page, who speaks in it (confirm, correct, hand back to the
tagger) and the collections it is in. Every call goes to the APIs as the signed-in user."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from services.web.api import _asset_action, _form_text, backend, page
from services.web.backend import ApiRefused
from services.web.session import current_user, page_requires
from shared.auth import Principal
from shared.events.speech import SPEECH_KIND_LABELS
from shared.http import UserError
from shared.policy import Action
from shared.taxonomy import current_term, terms
from shared.text import fold

router = APIRouter()
PeopleReader = Annotated[Principal, Depends(page_requires(Action.PEOPLE_READ))]
Reader = Annotated[Principal, Depends(page_requires(Action.ASSET_READ))]
Editor = Annotated[Principal, Depends(page_requires(Action.ASSET_EDIT))]
ROLE_LABELS = {
    "speaks": ("Phát biểu", "Speaks"),
    "answers": ("Trả lời", "Answers"),
    "appears": ("Xuất hiện", "Appears"),
}
KIND_LABELS = {
    **{code: (label, label) for code, label in SPEECH_KIND_LABELS.items()},
    "phat-bieu": ("Phát biểu", "Speech"),
    "thao-luan": ("Thảo luận", "Discussion"),
    "chat-van": ("Chất vấn", "Question"),
    "tra-loi": ("Trả lời chất vấn, giải trình", "Answer"),
}
# Blank rows under a correction form, for people the tagger missed.
EXTRA_SPEECH_ROWS = 2
MAX_SPEECH_ROWS = 100


def default_term() -> str:
    """The term shown when the address names none (``shared.taxonomy.current_term``)."""
    term = current_term()
    return term.code if term else ""


# --- the registry ---------------------------------------------------------------------------------


@router.get("/people", response_class=HTMLResponse, include_in_schema=False)
async def people_page(request: Request, who: PeopleReader) -> HTMLResponse:
    """Everyone in the registry, with their delegate seat in the chosen term; ``q`` narrows
    by name, with or without diacritics."""
    known = [t.code for t in terms()]
    term = request.query_params.get("term", "")
    term = term if term in known else default_term()
    q = request.query_params.get("q", "")[:200].strip()
    api = backend(request)
    registry, seats = await asyncio.gather(
        api.get("catalogue", "/v1/people"), api.get("catalogue", "/v1/delegates", term=term)
    )
    seat_of = {d["person_id"]: d for d in seats.get("delegates", [])}
    people = {p["person_id"]: {**p, "seat": seat_of.get(p["person_id"])} for p in registry.get("people", [])}
    for person_id, seat in seat_of.items():  # a seat whose person is not (yet) in the registry
        people.setdefault(person_id, {"person_id": person_id, "name": seat["name"], "role": seat["role"], "seat": seat})
    wanted = fold(q)
    shown = sorted(
        (p for p in people.values() if not wanted or wanted in fold(p.get("name") or "")),
        key=lambda p: (p["seat"] is None, fold(p.get("name") or "")),
    )
    return page(request, "people.html", people=shown, q=q, term=term, total=len(people))


async def _person(request: Request, person_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The person as the registry has them, and their delegate seats (any term)."""
    api = backend(request)
    registry, seats = await asyncio.gather(api.get("catalogue", "/v1/people"), api.get("catalogue", "/v1/delegates"))
    mine = [d for d in seats.get("delegates", []) if d["person_id"] == person_id]
    person = next((p for p in registry.get("people", []) if p["person_id"] == person_id), None)
    if person is None and mine:
        person = {"person_id": person_id, "name": mine[0]["name"], "role": mine[0]["role"], "organ": mine[0]["organ"]}
    if person is None:
        raise UserError(404, "person_not_found", f"Không có người {person_id} trong sổ.", f"No person {person_id}.")
    return person, sorted(mine, key=lambda d: d["term"], reverse=True)


@router.get("/people/{person_id}", response_class=HTMLResponse, include_in_schema=False)
async def person_page(request: Request, person_id: str, who: PeopleReader) -> HTMLResponse:
    """A person: the assets they are in (search by their name), and per term they sat,
    their speeches per session with the assets that show them (the delegate report)."""
    person, seats = await _person(request, person_id)
    api = backend(request)
    user = current_user(request)
    found = await api.optional("search", "/v1/search", person=person["name"], sort="date", size=24)
    reports: list[Any] = (
        await asyncio.gather(
            *(api.optional("search", "/v1/delegates/report", term=s["term"], evidence=10) for s in seats)
        )
        if user.may(Action.DELEGATE_REPORT)
        else [None] * len(seats)
    )
    rows = []
    for seat, report in zip(seats, reports, strict=True):
        row = next((d for d in (report or {}).get("delegates", []) if d["person_id"] == person_id), None)
        rows.append({"seat": seat, "row": row, "term_label": (report or {}).get("term_label", seat["term"])})
    return page(
        request,
        "person.html",
        person=person,
        seats=rows,
        found=found or {"total": 0, "hits": []},
        kind_labels=KIND_LABELS,
        search_link="/search?" + f"person={quote(person['name'])}",
    )


# --- on an asset's page: who speaks, and its collections --------------------------------------------


@router.post("/assets/{asset_id}/speeches", include_in_schema=False)
async def decide_speeches(request: Request, asset_id: str, who: Editor) -> Response:
    """Confirm the tagger's recognitions, correct them (the rows of the form), or hand back."""
    form = await request.form()
    action = _form_text(form, "speech_action")
    body: dict[str, Any] = {"action": action if action in ("confirm", "reset") else "correct"}
    if _form_text(form, "speech_note"):
        body["note"] = _form_text(form, "speech_note")
    if body["action"] == "correct":
        speeches = []
        for i in range(MAX_SPEECH_ROWS):
            name = _form_text(form, f"speech_name_{i}")
            if not name:
                continue  # a row left (or made) blank is no speech
            speech: dict[str, Any] = {"name": name, "role": _form_text(form, f"speech_role_{i}") or "speaks"}
            kind = _form_text(form, f"speech_kind_{i}")
            speech["kind"] = "" if speech["role"] == "appears" else (kind or "phat-bieu")
            speech["plenary"] = _form_text(form, f"speech_group_{i}") != "1"
            if _form_text(form, f"speech_person_{i}") and name == _form_text(form, f"speech_shown_{i}"):
                speech["person_id"] = _form_text(form, f"speech_person_{i}")  # same person, same id
            speeches.append(speech)
        body["speeches"] = speeches
    call = backend(request).json("catalogue", "PUT", f"/v1/assets/{quote(asset_id)}/speeches", json=body)
    return await _asset_action(request, asset_id, call, "speeches")


@router.get("/assets/{asset_id}/collections", response_class=HTMLResponse, include_in_schema=False)
async def asset_collections(request: Request, asset_id: str, who: Reader) -> HTMLResponse:
    """The collections the asset is in (loaded into its page): hand-placed, or matched by a saved search."""
    listing: dict[str, Any] | None = None
    problem: tuple[str, str] | None = None
    if current_user(request).may(Action.COLLECTION_READ):
        try:
            listing = await backend(request).get("search", f"/v1/assets/{quote(asset_id)}/collections")
        except ApiRefused as refused:
            problem = (refused.message_vi, refused.message_en)
    return page(request, "asset_collections.html", listing=listing, problem=problem)
