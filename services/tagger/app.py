"""tagger service: wiring, the durable JetStream consumer and thin HTTP handlers
(archivists' edits, re-tagging, activities, people registry)."""

import logging
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from services.tagger.domain import Activity
from services.tagger.ocr import OcrSettings
from services.tagger.people import parse_people_csv
from services.tagger.worker import Tagger
from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import AssetIngestedV1, EventPayload
from shared.events.tagging import (
    EDITABLE_FIELDS,
    ActivityCreatedV1,
    ActivityEditedV1,
    ActivityMergedV1,
    AssetActivityAssignedV1,
    AssetMetadataEditedV1,
    AssetRetagRequestedV1,
    PersonRegisteredV1,
)
from shared.eventstore import ConcurrencyConflict, EventStore, StoredEvent
from shared.http import UserError, app_deps, make_auth_dependency, service_app
from shared.ids import uuid7
from shared.objectstore import ObjectStore
from shared.pull_consumers import start_broker
from shared.settings import Settings
from shared.subjects import aggregate_type_filter, event_type_filter
from shared.tags import fold_tag_event
from shared.vocabulary import classify

log = logging.getLogger("mam.tagger")
TAGGER_DURABLE = "tagger"
_RETRY_DELAY_S = 2.0


@dataclass
class TaggerDeps:
    settings: Settings
    events: EventStore
    tagger: Tagger
    broker: NatsBroker

    async def close(self) -> None:
        await self.broker.stop()
        await self.events.close()


def build_broker(settings: Settings, tagger: Tagger) -> NatsBroker:
    """One durable pull consumer on every asset event; it acts on ingested/retag only."""
    broker = NatsBroker(settings.resolved_nats_url)

    @broker.subscriber(
        aggregate_type_filter("asset"),
        stream=JStream(name=settings.event_stream, declare=False),
        durable=TAGGER_DURABLE,
        pull_sub=PullSub(batch_size=4, timeout=5.0),
        config=ConsumerConfig(ack_wait=120, max_ack_pending=64),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_asset_event(msg: NatsMessage) -> None:
        raw = msg.raw_message
        deliveries = int(raw.metadata.num_delivered or 1)
        try:
            event = EventEnvelope.from_bytes(raw.data)
        except ValidationError:
            log.exception("undecodable event at sequence %s; skipped", raw.metadata.sequence.stream)
            await raw.ack()
            return
        try:
            outcome = await tagger.handle(event, deliveries, raw.in_progress)
        except Exception as exc:
            if deliveries >= tagger.max_attempts:
                await tagger.fail(event, exc, deliveries)
                await raw.ack()
                return
            log.warning("tagging %s failed (attempt %d), will retry: %s", event.aggregate_id, deliveries, exc)
            await raw.nak(delay=_RETRY_DELAY_S * deliveries)
            return
        if outcome != "ignored":
            log.info("%s %s: %s", event.type, event.aggregate_id, outcome)
        await raw.ack()

    return broker


async def build_deps(settings: Settings) -> TaggerDeps:
    """The one wiring function of this service."""
    events = await EventStore.from_settings(settings)
    objects = ObjectStore.from_settings(settings)
    ocr = OcrSettings(
        tesseract=settings.tesseract_cmd,
        lang=settings.tesseract_lang,
        timeout_s=settings.ocr_timeout_s,
        max_keyframes=settings.ocr_max_keyframes,
        scene_threshold=settings.ocr_scene_threshold,
    )
    tagger = Tagger(events, objects, ocr, max_attempts=settings.tagger_max_attempts)
    await tagger.refresh(force=True)
    broker = build_broker(settings, tagger)
    await start_broker(broker)
    return TaggerDeps(settings, events, tagger, broker)


# --- request bodies -------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetadataEdit(_Body):
    title: str | None = None
    caption: str | None = None
    activity_type: str | None = None
    term: str | None = None
    people: list[str] | None = None
    organisations: list[str] | None = None
    reset: list[str] = Field(default_factory=list)
    note: str = ""


# A blank title would be carried into every asset of the activity (search shows it).
ActivityTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class ActivityIn(_Body):
    title: ActivityTitle
    activity_type: str
    term: str | None = None
    start_date: date
    end_date: date | None = None
    place: str = ""
    organs: list[str] = Field(default_factory=list)


class ActivityPatch(_Body):
    title: ActivityTitle | None = None
    activity_type: str | None = None
    term: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    place: str | None = None
    organs: list[str] | None = None


class MergeIn(_Body):
    into_activity_id: str


class AssignIn(_Body):
    activity_id: str | None


class ClassifyIn(_Body):
    text: str = Field(max_length=50_000)


class RetagIn(_Body):
    reason: str = ""


def _payload(model: type[EventPayload], data: dict[str, Any]) -> EventPayload:
    """Build a payload from user input; validation problems become a bilingual 422."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UserError(
            422, "invalid_value", f"Giá trị không hợp lệ: {problems}", f"Invalid value: {problems}"
        ) from exc


def _check_id(value: str, what_vi: str, what_en: str) -> str:
    if not value.replace("-", "").replace("_", "").isalnum():
        raise UserError(400, "invalid_id", f"Mã {what_vi} không hợp lệ.", f"Invalid {what_en} id.")
    return value


def tags_view(asset_id: str, history: list[StoredEvent]) -> dict[str, Any]:
    """The asset's tags as folded from its events (manual wins), with the audit trail."""
    doc: dict[str, Any] = {}
    trail = []
    for stored in history:
        doc = fold_tag_event(doc, stored.envelope)
        env = stored.envelope
        if env.type != AssetIngestedV1.EVENT_TYPE:
            trail.append(
                {
                    "type": env.type,
                    "sequence": stored.sequence,
                    "actor": env.actor,
                    "occurred_at": env.occurred_at.isoformat(),
                    "payload": env.payload,
                }
            )
    return {"asset_id": asset_id, **doc, "events": trail}


def activity_view(act: Activity, assets: list[str]) -> dict[str, Any]:
    return {
        "activity_id": act.activity_id,
        "title": act.title,
        "activity_type": act.activity_type,
        "term": act.term,
        "start_date": act.start_date.isoformat(),
        "end_date": act.end_date.isoformat() if act.end_date else None,
        "place": act.place,
        "organs": list(act.organs),
        "merged_into": act.merged_into,
        "assets": assets,
    }


def create_app(settings: Settings) -> FastAPI:
    app = service_app("tagger", lambda: build_deps(settings))
    Actor = Annotated[str, Depends(make_auth_dependency(settings.token_actors))]
    Deps = Annotated[TaggerDeps, Depends(app_deps)]

    async def asset_history(d: TaggerDeps, asset_id: str) -> list[StoredEvent]:
        history = await d.events.history("asset", _check_id(asset_id, "tư liệu", "asset"))
        if not history:
            raise UserError(404, "asset_not_found", f"Không tìm thấy tư liệu {asset_id}.", f"No asset {asset_id}.")
        return history

    async def live_activity(d: TaggerDeps, activity_id: str) -> Activity:
        await d.tagger.refresh(force=True)
        act = d.tagger.activities.by_id.get(_check_id(activity_id, "hoạt động", "activity"))
        if act is None:
            raise UserError(
                404, "activity_not_found", f"Không tìm thấy hoạt động {activity_id}.", f"No activity {activity_id}."
            )
        return act

    async def append(d: TaggerDeps, event: EventEnvelope, expected: int | None = None) -> None:
        try:
            await d.events.append(event, expected_last_sequence=expected)
        except ConcurrencyConflict as exc:
            raise UserError(
                409,
                "conflict",
                "Dữ liệu vừa bị người khác thay đổi, hãy tải lại và thử lại.",
                "Someone else changed this meanwhile; reload and retry.",
            ) from exc

    async def assign_all(
        d: TaggerDeps, asset_ids: list[str], act: Activity, actor: str, cause: EventEnvelope, previous: str
    ) -> None:
        """(Re-)assign assets to ``act``, carrying its current title into each asset's events
        (and so into the search index), caused by the merge or rename that required it."""
        for asset_id in asset_ids:
            payload = AssetActivityAssignedV1(
                activity_id=act.activity_id, activity_title=act.title, previous_activity_id=previous
            )
            await append(d, new_event(payload, aggregate_id=asset_id, actor=actor, causation=cause))
        await d.tagger.refresh(force=True)

    @app.post("/v1/classify", summary="Đề xuất loại hoạt động cho một đoạn văn / classify a text")
    async def classify_text(body: ClassifyIn, actor: Actor) -> dict[str, Any]:
        return classify(body.text).as_json()

    @app.get("/v1/assets/{asset_id}/tags", summary="Nhãn của tư liệu (tự động và sửa tay) / an asset's tags")
    async def get_tags(asset_id: str, actor: Actor, d: Deps) -> dict[str, Any]:
        return tags_view(asset_id, await asset_history(d, asset_id))

    @app.patch("/v1/assets/{asset_id}/metadata", summary="Lưu trữ viên sửa thông tin / archivist's edit")
    async def edit_metadata(asset_id: str, body: MetadataEdit, actor: Actor, d: Deps) -> dict[str, Any]:
        history = await asset_history(d, asset_id)
        unknown = [f for f in body.reset if f not in EDITABLE_FIELDS]
        if unknown:
            raise UserError(
                422,
                "invalid_reset",
                f"Không thể đặt lại trường: {', '.join(unknown)}.",
                f"Cannot reset fields: {', '.join(unknown)}; allowed: {', '.join(EDITABLE_FIELDS)}.",
            )
        payload = _payload(AssetMetadataEditedV1, body.model_dump(exclude_none=True))
        assert isinstance(payload, AssetMetadataEditedV1)
        if not payload.changed_fields() and not payload.reset:
            raise UserError(422, "nothing_to_change", "Không có trường nào để sửa.", "No field to change.")
        await append(d, new_event(payload, aggregate_id=asset_id, actor=actor), history[-1].sequence)
        return tags_view(asset_id, await d.events.history("asset", asset_id))

    @app.post("/v1/assets/{asset_id}/retag", status_code=202, summary="Gắn nhãn lại một tư liệu / re-tag")
    async def retag_one(asset_id: str, actor: Actor, d: Deps, body: RetagIn | None = None) -> dict[str, Any]:
        await asset_history(d, asset_id)
        event = new_event(AssetRetagRequestedV1(reason=body.reason if body else ""), aggregate_id=asset_id, actor=actor)
        await append(d, event)
        return {"asset_id": asset_id, "retag_event_id": event.event_id}

    @app.post("/v1/retag", status_code=202, summary="Gắn nhãn lại toàn bộ kho (đổi từ vựng) / re-tag all")
    async def retag_all(actor: Actor, d: Deps, body: RetagIn | None = None) -> dict[str, Any]:
        reason = (body.reason if body else "") or "vocabulary change"
        count = 0
        async for stored in d.events.read_subjects(event_type_filter(AssetIngestedV1.EVENT_TYPE)):
            await append(
                d,
                new_event(AssetRetagRequestedV1(reason=reason), aggregate_id=stored.envelope.aggregate_id, actor=actor),
            )
            count += 1
        return {"requested": count}

    @app.put("/v1/assets/{asset_id}/activity", summary="Gán tư liệu vào hoạt động / assign to an activity")
    async def assign(asset_id: str, body: AssignIn, actor: Actor, d: Deps) -> dict[str, Any]:
        await asset_history(d, asset_id)
        title = ""
        target: str | None = None
        if body.activity_id is not None:
            act = d.tagger.activities.resolve((await live_activity(d, body.activity_id)).activity_id)
            assert act is not None
            target, title = act.activity_id, act.title
        await d.tagger.refresh(force=True)
        previous = d.tagger.activities.asset_activity.get(asset_id)
        payload = AssetActivityAssignedV1(activity_id=target, activity_title=title, previous_activity_id=previous)
        await append(d, new_event(payload, aggregate_id=asset_id, actor=actor))
        return {"asset_id": asset_id, "activity_id": target, "activity_title": title or None}

    @app.post("/v1/activities", status_code=201, summary="Tạo hoạt động / create an activity")
    async def create_activity(body: ActivityIn, actor: Actor, d: Deps) -> dict[str, Any]:
        payload = _payload(ActivityCreatedV1, body.model_dump())
        activity_id = "v" + uuid7().hex
        await append(d, new_event(payload, aggregate_id=activity_id, actor=actor), 0)
        act = await live_activity(d, activity_id)
        return activity_view(act, [])

    @app.get("/v1/activities", summary="Danh sách hoạt động / list activities")
    async def list_activities(
        actor: Actor, d: Deps, term: str | None = None, activity_type: str | None = None
    ) -> dict[str, Any]:
        await d.tagger.refresh(force=True)
        acts = [
            a
            for a in d.tagger.activities.live()
            if (term is None or a.term == term) and (activity_type is None or a.activity_type == activity_type)
        ]
        acts.sort(key=lambda a: (a.start_date, a.title), reverse=True)
        return {"activities": [activity_view(a, d.tagger.activities.assets_of(a.activity_id)) for a in acts]}

    @app.get("/v1/activities/{activity_id}", summary="Một hoạt động / one activity")
    async def get_activity(activity_id: str, actor: Actor, d: Deps) -> dict[str, Any]:
        act = await live_activity(d, activity_id)
        return activity_view(act, d.tagger.activities.assets_of(act.activity_id))

    @app.patch("/v1/activities/{activity_id}", summary="Sửa hoạt động / edit an activity")
    async def edit_activity(activity_id: str, body: ActivityPatch, actor: Actor, d: Deps) -> dict[str, Any]:
        before = await live_activity(d, activity_id)
        payload = _payload(ActivityEditedV1, body.model_dump(exclude_none=True))
        edited = new_event(payload, aggregate_id=activity_id, actor=actor)
        await append(d, edited, before.sequence)
        act = await live_activity(d, activity_id)
        if act.title != before.title:  # the assets carry the title for search: tell each of them
            await assign_all(d, d.tagger.activities.assets_of(activity_id), act, actor, edited, activity_id)
        return activity_view(act, d.tagger.activities.assets_of(activity_id))

    @app.post("/v1/activities/{activity_id}/merge", summary="Gộp hoạt động trùng / merge a duplicate activity")
    async def merge_activity(activity_id: str, body: MergeIn, actor: Actor, d: Deps) -> dict[str, Any]:
        source = await live_activity(d, activity_id)
        target = await live_activity(d, body.into_activity_id)
        if source.activity_id == target.activity_id or target.merged_into or source.merged_into:
            raise UserError(
                422,
                "invalid_merge",
                "Không thể gộp: hoạt động trùng nhau hoặc đã được gộp.",
                "Cannot merge: same activity, or one of them is already merged.",
            )
        merged = new_event(ActivityMergedV1(into_activity_id=target.activity_id), aggregate_id=activity_id, actor=actor)
        await append(d, merged, source.sequence)
        moved = d.tagger.activities.assets_of(activity_id)
        await assign_all(d, moved, target, actor, merged, activity_id)
        return {
            "merged": activity_id,
            "into": activity_view(target, d.tagger.activities.assets_of(target.activity_id)),
            "moved_assets": moved,
        }

    @app.post("/v1/people/import", summary="Nhập danh sách đại biểu từ CSV / import people from CSV")
    async def import_people(
        actor: Actor, d: Deps, csv_text: Annotated[str, Body(media_type="text/csv")]
    ) -> dict[str, Any]:
        try:
            people = parse_people_csv(csv_text)
        except ValueError as exc:
            raise UserError(
                422, "invalid_csv", "Tệp CSV không hợp lệ: cần dòng tiêu đề có cột 'name'.", f"Invalid CSV: {exc}"
            ) from exc
        added = 0
        for person in people:
            _check_id(person.person_id, "người", "person")
            payload = _payload(
                PersonRegisteredV1,
                {"name": person.name, "role": person.role, "organ": person.organ, "term": person.term},
            )
            event = new_event(payload, aggregate_id=person.person_id, actor=actor)
            try:
                await d.events.append(event, expected_last_sequence=0)
                added += 1
            except ConcurrencyConflict:
                continue  # already registered: importing the same CSV twice changes nothing
        await d.tagger.refresh(force=True)
        return {"rows": len(people), "added": added, "registry_size": len(d.tagger.registry)}

    @app.get("/v1/people", summary="Danh sách người trong sổ / the people registry")
    async def list_people(actor: Actor, d: Deps) -> dict[str, Any]:
        await d.tagger.refresh(force=True)
        return {
            "people": [
                {"person_id": p.person_id, "name": p.name, "role": p.role, "organ": p.organ, "term": p.term}
                for p in d.tagger.registry.all()
            ]
        }

    return app
