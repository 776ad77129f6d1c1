"""The public portal feed (no sign-in): what is published, in its window and ``public``.

Pure functions: the Elasticsearch body (``shared.policy.visibility_filter`` for
the anonymous public, so an embargo ends by Elasticsearch's clock, without any
request or event), the items, and their renderings as JSON Feed 1.1, RSS 2.0
with Media RSS, and Atom — built with ``xml.etree.ElementTree``, which escapes
every text and attribute; characters XML cannot hold at all are dropped first.

Media links are presigned URLs signed per *window* (half their life): within a
window the same feed gives the same bytes, so its ETag is a hash of them and a
client revalidating with ``If-None-Match`` is told exactly whether anything
changed; every URL handed out stays valid for at least half its life.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from xml.etree import ElementTree as ET

from services.search.query import Filters, filter_clauses, params_fingerprint_of
from shared.auth import ANONYMOUS
from shared.policy import PUBLISH_AT, PUBLISHED_SINCE, visibility_filter
from shared.taxonomy import LOCAL_TZ, term_by_code

MAX_FEED_SIZE = 100
# Which rendition is the item's media (web proxy) and which its poster, by kind.
FEED_RENDITIONS: dict[str, tuple[str, str]] = {
    "video": ("proxy", "poster"),
    "photo": ("web", "thumb"),
    "audio": ("audio", "waveform"),
}
MEDIUM = {"video": "video", "photo": "image", "audio": "audio"}
# Only these fields leave the index for the public (never who uploaded it, file names, OCR…).
FEED_SOURCE = [
    "asset_id",
    "title",
    "caption",
    "kind",
    "activity_type",
    "activity_label",
    "activity_title",
    "term",
    "recorded_at",
    PUBLISH_AT,
    PUBLISHED_SINCE,
    "duration_s",
    "source_org",
    "renditions",
]
MEDIA_NS = "http://search.yahoo.com/mrss/"
ATOM_NS = "http://www.w3.org/2005/Atom"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
ET.register_namespace("media", MEDIA_NS)
ET.register_namespace("atom", ATOM_NS)
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot hold (controls, lone surrogates,
    U+FFFE/U+FFFF); escaping ``<``, ``&``, quotes is the serializer's."""
    return _XML_INVALID.sub("", value)


# --- the query ------------------------------------------------------------------------------------


def public_filter() -> dict[str, Any]:
    """What the anonymous public may see; never "everything"."""
    visible = visibility_filter(ANONYMOUS)
    if visible is None:  # a policy change must not turn the portal into the archive
        raise RuntimeError("the policy lets the public see everything; the feed refuses to serve it")
    return visible


def feed_fingerprint(f: Filters) -> str:
    return params_fingerprint_of(["feed", f])


def feed_body(f: Filters, size: int, search_after: Sequence[Any] | None = None) -> dict[str, Any]:
    """Newest publication first (a unique tiebreak: stable pages), public and on air only.

    Sorted by when each went out (``published_since``), not by ``publish_at``: one published
    at once has none (no writer's clock decides when it shows). A document indexed before
    that field existed sorts last until the index is rebuilt (``mam rebuild-index``)."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [*filter_clauses(f), public_filter()]}},
        "sort": [{PUBLISHED_SINCE: {"order": "desc", "missing": "_last"}}, {"asset_id": "asc"}],
        "size": size,
        "track_total_hits": False,
        "_source": {"includes": FEED_SOURCE},
    }
    if search_after is not None:
        body["search_after"] = list(search_after)
    return body


def valid_feed_sort(values: list[Any]) -> bool:
    """Sort values fit the feed's sort: epoch milliseconds, then an asset id."""
    return (
        len(values) == 2
        and type(values[0]) is int
        and -(2**63) <= values[0] < 2**63
        and isinstance(values[1], str)
        and 0 < len(values[1]) <= 512
    )


# --- presigned URLs -------------------------------------------------------------------------------


def signing_window(now: datetime, url_life_s: int) -> datetime:
    """Start of the window ``now`` is in: URLs signed at it live ``url_life_s`` seconds, so
    they stay valid at least half of that after any request of the window."""
    half = max(1, url_life_s // 2)
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % half, UTC)


def renditions_for(src: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The item's media and poster renditions (stored bucket/key…), if the transcoder made them."""
    stored = src.get("renditions") or {}
    media_name, poster_name = FEED_RENDITIONS.get(str(src.get("kind")), ("", ""))
    media, poster = stored.get(media_name), stored.get(poster_name)
    return (media if isinstance(media, dict) else None, poster if isinstance(poster, dict) else None)


# --- items ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaLink:
    url: str
    mime_type: str
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def of(cls, stored: Mapping[str, Any], url: str) -> MediaLink:
        def number(name: str) -> int | None:
            value = stored.get(name)
            return value if type(value) is int and value >= 0 else None

        return cls(url, str(stored.get("mime_type") or "application/octet-stream"), *map(number, _SIZES))


_SIZES = ("size_bytes", "width", "height")


@dataclass(frozen=True)
class FeedItem:
    asset_id: str
    title: str
    caption: str
    kind: str
    publish_at: datetime  # when it went out (published_since): shown and dated, never a gate
    activity_type: str | None = None
    activity_label: str | None = None
    activity_title: str | None = None
    term: str | None = None
    recorded_at: datetime | None = None
    duration_s: float | None = None
    source_org: str | None = None
    media: MediaLink | None = None
    thumbnail: MediaLink | None = None

    @property
    def guid(self) -> str:
        return f"urn:hdnd-mam:asset:{self.asset_id}"

    @property
    def term_label(self) -> str | None:
        found = term_by_code(self.term) if self.term else None
        return found.label_vi if found else None

    def description(self) -> str:
        """The caption, then what an editor of the portal needs to know, in Vietnamese."""
        facts = []
        if self.activity_title:
            facts.append(f"Hoạt động: {self.activity_title}")
        if self.activity_label:
            facts.append(f"Loại hoạt động: {self.activity_label}")
        if self.term_label:
            facts.append(self.term_label)
        if self.recorded_at:
            facts.append(f"Ghi hình ngày {self.recorded_at.astimezone(LOCAL_TZ):%d/%m/%Y}")
        if self.source_org:
            facts.append(f"Nguồn: {self.source_org}")
        return "\n".join(part for part in (self.caption, ". ".join(facts) + ("." if facts else "")) if part)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def feed_item(src: Mapping[str, Any], media: MediaLink | None, thumbnail: MediaLink | None) -> FeedItem:
    duration = src.get("duration_s")
    return FeedItem(
        asset_id=str(src["asset_id"]),
        title=str(src.get("title") or ""),
        caption=str(src.get("caption") or ""),
        kind=str(src.get("kind") or ""),
        publish_at=_instant(src.get(PUBLISHED_SINCE))
        or _instant(src.get(PUBLISH_AT))
        or datetime.fromtimestamp(0, UTC),
        activity_type=_text(src.get("activity_type")),
        activity_label=_text(src.get("activity_label")),
        activity_title=_text(src.get("activity_title")),
        term=_text(src.get("term")),
        recorded_at=_instant(src.get("recorded_at")),
        duration_s=float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else None,
        source_org=_text(src.get("source_org")),
        media=media,
        thumbnail=thumbnail,
    )


@dataclass(frozen=True)
class FeedPage:
    title: str
    feed_url: str  # this page's own address
    home_url: str
    items: Sequence[FeedItem]
    window: datetime  # when its URLs were signed
    url_life_s: int
    next_url: str | None = None
    next_cursor: str | None = None

    @property
    def last_modified(self) -> datetime:
        """The newest of: the URLs' signing, the newest publication shown (whole seconds,
        as HTTP dates go)."""
        newest = max((i.publish_at for i in self.items), default=self.window)
        return max(self.window, newest).replace(microsecond=0)

    @property
    def urls_expire_at(self) -> datetime:
        return self.window + timedelta(seconds=self.url_life_s)


DESCRIPTION_VI = "Ảnh, video và bản ghi âm về hoạt động của Hội đồng nhân dân tỉnh, đã được xuất bản."


# --- renderings -----------------------------------------------------------------------------------


def render_json(page: FeedPage) -> bytes:
    """JSON Feed 1.1 (``application/feed+json``); project fields under ``_hdnd``."""
    items = []
    for item in page.items:
        entry: dict[str, Any] = {
            "id": item.guid,
            "title": item.title,
            "content_text": item.description(),
            "summary": item.caption,
            "date_published": item.publish_at.isoformat(),
            "tags": [t for t in (item.activity_label, item.term_label) if t],
            "_hdnd": {
                "asset_id": item.asset_id,
                "kind": item.kind,
                "activity_type": item.activity_type,
                "activity_title": item.activity_title,
                "term": item.term,
                "recorded_at": item.recorded_at.isoformat() if item.recorded_at else None,
                "duration_s": item.duration_s,
                "source_org": item.source_org,
                "media": _link_json(item.media),
                "thumbnail": _link_json(item.thumbnail),
            },
        }
        if item.media:
            entry["url"] = item.media.url
            attachment: dict[str, Any] = {"url": item.media.url, "mime_type": item.media.mime_type}
            if item.media.size_bytes is not None:
                attachment["size_in_bytes"] = item.media.size_bytes
            if item.duration_s is not None:
                attachment["duration_in_seconds"] = item.duration_s
            entry["attachments"] = [attachment]
        if item.thumbnail:
            entry["image"] = item.thumbnail.url
        items.append(entry)
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": page.title,
        "description": DESCRIPTION_VI,
        "home_page_url": page.home_url,
        "feed_url": page.feed_url,
        "language": "vi",
        "items": items,
        "_hdnd": {
            "next_cursor": page.next_cursor,
            "updated": page.last_modified.isoformat(),
            "urls_expire_at": page.urls_expire_at.isoformat(),
        },
    }
    if page.next_url:
        feed["next_url"] = page.next_url
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _link_json(link: MediaLink | None) -> dict[str, Any] | None:
    if link is None:
        return None
    return {
        "url": link.url,
        "mime_type": link.mime_type,
        "size_bytes": link.size_bytes,
        "width": link.width,
        "height": link.height,
    }


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str | None) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = xml_text(text)
    return element


def _media_elements(parent: ET.Element, item: FeedItem) -> None:
    """Media RSS: ``media:content`` (the web proxy) and ``media:thumbnail`` (the poster)."""
    if item.media:
        m = item.media
        content = _sub(
            parent,
            f"{{{MEDIA_NS}}}content",
            url=m.url,
            type=m.mime_type,
            medium=MEDIUM.get(item.kind),
            fileSize=_num(m.size_bytes),
            width=_num(m.width),
            height=_num(m.height),
            duration=_num(round(item.duration_s) if item.duration_s is not None else None),
            isDefault="true",
        )
        _sub(content, f"{{{MEDIA_NS}}}title", item.title, type="plain")
    if item.thumbnail:
        t = item.thumbnail
        _sub(parent, f"{{{MEDIA_NS}}}thumbnail", url=t.url, width=_num(t.width), height=_num(t.height))


def _num(value: int | None) -> str | None:
    return None if value is None else str(value)


def _bytes(root: ET.Element) -> bytes:
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


def render_rss(page: FeedPage) -> bytes:
    """RSS 2.0 with Media RSS; ``atom:link`` rel self and next (RFC 5005 paging)."""
    rss = ET.Element("rss", {"version": "2.0"})
    channel = _sub(rss, "channel")
    _sub(channel, "title", page.title)
    _sub(channel, "link", page.home_url)
    _sub(channel, "description", DESCRIPTION_VI)
    _sub(channel, "language", "vi")
    _sub(channel, "lastBuildDate", format_datetime(page.last_modified, usegmt=True))
    _sub(channel, f"{{{ATOM_NS}}}link", rel="self", href=page.feed_url, type="application/rss+xml")
    if page.next_url:
        _sub(channel, f"{{{ATOM_NS}}}link", rel="next", href=page.next_url, type="application/rss+xml")
    for item in page.items:
        entry = _sub(channel, "item")
        _sub(entry, "title", item.title)
        if item.media:
            _sub(entry, "link", item.media.url)
        _sub(entry, "description", item.description())
        _sub(entry, "guid", item.guid, isPermaLink="false")
        _sub(entry, "pubDate", format_datetime(item.publish_at.astimezone(UTC), usegmt=True))
        for category in (item.activity_label, item.term_label):
            if category:
                _sub(entry, "category", category)
        if item.media and item.media.size_bytes is not None:
            _sub(entry, "enclosure", url=item.media.url, length=str(item.media.size_bytes), type=item.media.mime_type)
        _media_elements(entry, item)
    return _bytes(rss)


def render_atom(page: FeedPage) -> bytes:
    """Atom (RFC 4287), in Vietnamese (``xml:lang="vi"``), with Media RSS for the media."""
    a = f"{{{ATOM_NS}}}"
    feed = ET.Element(f"{a}feed", {"{http://www.w3.org/XML/1998/namespace}lang": "vi"})
    _sub(feed, f"{a}id", "urn:hdnd-mam:feed")
    _sub(feed, f"{a}title", page.title)
    _sub(feed, f"{a}subtitle", DESCRIPTION_VI)
    _sub(feed, f"{a}updated", page.last_modified.isoformat())
    _sub(feed, f"{a}link", rel="self", href=page.feed_url, type="application/atom+xml")
    _sub(feed, f"{a}link", rel="alternate", href=page.home_url)
    if page.next_url:
        _sub(feed, f"{a}link", rel="next", href=page.next_url, type="application/atom+xml")
    author = _sub(feed, f"{a}author")
    _sub(author, f"{a}name", page.title)
    for item in page.items:
        entry = _sub(feed, f"{a}entry")
        _sub(entry, f"{a}id", item.guid)
        _sub(entry, f"{a}title", item.title, type="text")
        _sub(entry, f"{a}published", item.publish_at.isoformat())
        _sub(entry, f"{a}updated", item.publish_at.isoformat())
        _sub(entry, f"{a}summary", item.description(), type="text")
        if item.activity_type:
            _sub(entry, f"{a}category", term=item.activity_type, label=item.activity_label)
        if item.term:
            _sub(entry, f"{a}category", term=item.term, label=item.term_label)
        if item.media:
            m = item.media
            _sub(entry, f"{a}link", rel="enclosure", href=m.url, type=m.mime_type, length=_num(m.size_bytes))
        _media_elements(entry, item)
    return _bytes(feed)


# --- conditional requests -------------------------------------------------------------------------


def etag_of(body: bytes) -> str:
    """A strong validator: the bytes themselves (stable within a signing window)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def not_modified(etag: str, last_modified: datetime, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110 §13.2.2: ``If-None-Match`` decides when present (weak comparison);
    otherwise ``If-Modified-Since`` against Last-Modified, in whole seconds."""
    if if_none_match is not None:
        wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in wanted or etag in wanted
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unreadable date is ignored, as the RFC says
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return last_modified <= since
