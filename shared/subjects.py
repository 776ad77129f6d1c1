"""Subject naming for the event stream: ``mam.<aggregate>.<id>.<event>``."""

from __future__ import annotations

import re

ROOT = "mam"
AGGREGATES = frozenset({"asset", "activity", "reel", "person", "user", "collection", "delegate"})
# Ids are short ("a" + 32 hex digits); a bound keeps any request far below NATS's
# 4 KB control line, whose overflow makes the server drop the connection.
MAX_TOKEN_LENGTH = 64
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TOKEN_LENGTH}}}")


class SubjectError(ValueError):
    """A subject token would break NATS subject syntax."""


def _check(token: str, what: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise SubjectError(f"invalid {what} for a subject token: {token!r}")
    return token


def event_subject(aggregate: str, aggregate_id: str, event: str) -> str:
    """Subject of one event, e.g. ``mam.asset.a1b2….ingested``."""
    if aggregate not in AGGREGATES:
        raise SubjectError(f"unknown aggregate {aggregate!r}")
    return f"{ROOT}.{aggregate}.{_check(aggregate_id, 'aggregate id')}.{_check(event, 'event name')}"


def aggregate_filter(aggregate: str, aggregate_id: str) -> str:
    """Wildcard matching every event of one aggregate instance."""
    if aggregate not in AGGREGATES:
        raise SubjectError(f"unknown aggregate {aggregate!r}")
    return f"{ROOT}.{aggregate}.{_check(aggregate_id, 'aggregate id')}.*"


def aggregate_type_filter(aggregate: str) -> str:
    """Wildcard matching every event of every instance of one aggregate."""
    if aggregate not in AGGREGATES:
        raise SubjectError(f"unknown aggregate {aggregate!r}")
    return f"{ROOT}.{aggregate}.*.*"


def event_type_filter(event_type: str) -> str:
    """Wildcard matching one event type across instances, e.g. ``asset.ingested``."""
    aggregate, _, event = event_type.partition(".")
    if aggregate not in AGGREGATES or not event:
        raise SubjectError(f"invalid event type {event_type!r}")
    return f"{ROOT}.{aggregate}.*.{_check(event, 'event name')}"


ALL_EVENTS = f"{ROOT}.>"


def parse_subject(subject: str) -> tuple[str, str, str]:
    """Split a subject into (aggregate, aggregate id, event name)."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != ROOT or parts[1] not in AGGREGATES:
        raise SubjectError(f"not an event subject: {subject!r}")
    return parts[1], parts[2], parts[3]


def subject_matches(subject_filter: str, subject: str) -> bool:
    """Whether ``subject`` matches a NATS filter (``*`` one token, ``>`` one or more at the end)."""
    want, got = subject_filter.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(got) == len(want)
