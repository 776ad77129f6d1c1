"""Who emits and who reads each event type: the routing half of the event catalogue.

The payload models say what an event contains; this table says which service
appends it and which services react to it or fold it. ``docs/architecture.md``
is generated from both (``mam docs``), and a unit test fails when a registered
event type has no entry here, so the document cannot silently fall behind.
"""

from __future__ import annotations

from dataclasses import dataclass

# The services, in the order an upload meets them (also the order of the document's tables).
SERVICE_ORDER = ("ingest", "transcoder", "tagger", "catalogue", "search", "accounts", "reels")


@dataclass(frozen=True)
class EventRoute:
    """Which services append an event type and which read it.

    ``consumed_by``: durable JetStream consumers that receive every event of
    the type as it is appended (and react, or project it).
    ``read_by``: services that fold the event out of the stream when they need
    state — an aggregate's history before a command, or a small in-memory read
    model rebuilt from the log — without a subscription of their own.
    """

    emitted_by: tuple[str, ...]
    consumed_by: tuple[str, ...] = ()
    read_by: tuple[str, ...] = ()


# Search's projector subscribes to every asset event (``mam.asset.*.*``): each
# one lands in the asset's document, its history and its sequence list.
EVENT_ROUTES: dict[str, EventRoute] = {
    "asset.ingested": EventRoute(
        emitted_by=("ingest",),
        consumed_by=("transcoder", "tagger", "search"),
        read_by=("ingest", "catalogue"),
    ),
    "asset.probed": EventRoute(emitted_by=("transcoder",), consumed_by=("search",)),
    "asset.renditions_ready": EventRoute(emitted_by=("transcoder",), consumed_by=("search",)),
    "asset.processing_failed": EventRoute(emitted_by=("transcoder",), consumed_by=("search",), read_by=("tagger",)),
    # An archivist's retry of a failed transcode (catalogue API); the transcoder runs the job again.
    "asset.processing_retry_requested": EventRoute(
        emitted_by=("catalogue",), consumed_by=("transcoder", "search"), read_by=("catalogue",)
    ),
    "asset.tagged": EventRoute(emitted_by=("tagger",), consumed_by=("search",), read_by=("catalogue",)),
    "asset.tagging_failed": EventRoute(emitted_by=("tagger",), consumed_by=("search",), read_by=("catalogue",)),
    "asset.retag_requested": EventRoute(emitted_by=("catalogue",), consumed_by=("tagger", "search")),
    "asset.metadata_edited": EventRoute(emitted_by=("catalogue",), consumed_by=("search",), read_by=("catalogue",)),
    "asset.activity_assigned": EventRoute(
        emitted_by=("catalogue",), consumed_by=("search",), read_by=("tagger", "catalogue")
    ),
    # Publishing: every read path judges visibility by these (shared.publication folds them).
    "asset.published": EventRoute(emitted_by=("catalogue",), consumed_by=("search",), read_by=("catalogue",)),
    "asset.unpublished": EventRoute(emitted_by=("catalogue",), consumed_by=("search",), read_by=("catalogue",)),
    "asset.restriction_set": EventRoute(emitted_by=("catalogue",), consumed_by=("search",), read_by=("catalogue",)),
    "activity.published": EventRoute(emitted_by=("catalogue",)),
    "activity.created": EventRoute(emitted_by=("catalogue",), read_by=("tagger", "catalogue", "search")),
    "activity.edited": EventRoute(emitted_by=("catalogue",), read_by=("tagger", "catalogue", "search")),
    "activity.merged": EventRoute(emitted_by=("catalogue",), read_by=("tagger", "catalogue", "search")),
    "person.registered": EventRoute(emitted_by=("catalogue",), read_by=("tagger", "catalogue")),
    # Collections: the catalogue decides them; search folds one from the log when a query
    # names it (``collection=<id>``), its page, its export and the statistics per collection.
    "collection.created": EventRoute(emitted_by=("catalogue",), read_by=("catalogue", "search")),
    "collection.edited": EventRoute(emitted_by=("catalogue",), read_by=("catalogue", "search")),
    "collection.asset_added": EventRoute(emitted_by=("catalogue",), read_by=("catalogue", "search")),
    "collection.asset_removed": EventRoute(emitted_by=("catalogue",), read_by=("catalogue", "search")),
    "collection.asset_excluded": EventRoute(emitted_by=("catalogue",), read_by=("catalogue", "search")),
    "collection.exclusion_lifted": EventRoute(emitted_by=("catalogue",), read_by=("catalogue", "search")),
    # Delegates per term (đơn vị bầu cử, Tổ đại biểu) and archivists' decisions on who speaks.
    "delegate.registered": EventRoute(emitted_by=("catalogue",), read_by=("catalogue", "search")),
    "delegate.edited": EventRoute(emitted_by=("catalogue",), read_by=("catalogue", "search")),
    "asset.speeches_edited": EventRoute(emitted_by=("catalogue",), consumed_by=("search",), read_by=("catalogue",)),
    # The accounts' audit trail: the state is in NATS KV, the log says who changed what.
    "user.created": EventRoute(emitted_by=("accounts",)),
    "user.role_changed": EventRoute(emitted_by=("accounts",)),
    "user.disabled": EventRoute(emitted_by=("accounts",)),
    "user.enabled": EventRoute(emitted_by=("accounts",)),
    "user.password_changed": EventRoute(emitted_by=("accounts",)),
    "user.sign_in_failed": EventRoute(emitted_by=("accounts",)),
    # Reels: the producers' edits and render requests (reels API), the renderer's facts
    # (reels worker, the same service); search indexes every reel event in its reels index.
    "reel.created": EventRoute(emitted_by=("reels",), consumed_by=("search",), read_by=("reels",)),
    "reel.items_set": EventRoute(emitted_by=("reels",), consumed_by=("search",), read_by=("reels",)),
    "reel.render_requested": EventRoute(emitted_by=("reels",), consumed_by=("reels", "search")),
    "reel.render_started": EventRoute(emitted_by=("reels",), consumed_by=("search",), read_by=("reels",)),
    "reel.rendered": EventRoute(emitted_by=("reels",), consumed_by=("search",), read_by=("reels",)),
    "reel.render_failed": EventRoute(emitted_by=("reels",), consumed_by=("search",), read_by=("reels",)),
}


def route_for(event_type: str) -> EventRoute:
    """The route of an event type; a ``KeyError`` names a type missing from the table."""
    return EVENT_ROUTES[event_type]
