"""The portal feed's renderings without servers: RSS 2.0 with Media RSS, Atom and JSON Feed
parse back to exactly the Vietnamese text given (escaped, never injected), media and
poster links where a reader looks for them, and conditional requests per RFC 9110."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from services.search.feed import (
    ATOM_NS,
    JSON_FEED_VERSION,
    MEDIA_NS,
    FeedItem,
    FeedPage,
    MediaLink,
    etag_of,
    feed_item,
    http_date,
    not_modified,
    render_atom,
    render_json,
    render_rss,
    renditions_for,
    signing_window,
    valid_feed_sort,
    xml_text,
)

WINDOW = datetime(2025, 6, 20, 1, 0, tzinfo=UTC)
HOSTILE = 'Kỳ họp <script>alert("x")</script> & "HĐND" \'tỉnh\' ]]> <!-- -->'
M = f"{{{MEDIA_NS}}}"
A = f"{{{ATOM_NS}}}"


def item(**overrides: Any) -> FeedItem:
    fields: dict[str, Any] = {
        "asset_id": "a" + "1" * 32,
        "title": "Kỳ họp thứ 7 HĐND tỉnh khóa XI",
        "caption": "Đồng chí Trần Minh Lực, Phó Chủ tịch HĐND tỉnh phát biểu bế mạc kỳ họp.",
        "kind": "video",
        "publish_at": WINDOW + timedelta(minutes=2),
        "activity_type": "ky-hop",
        "activity_label": "Kỳ họp, phiên họp Thường trực",
        "term": "2021-2026",
        "recorded_at": datetime(2025, 6, 19, 20, 30, tzinfo=UTC),  # 20/06 in Vietnam
        "duration_s": 61.6,
        "source_org": "Đài Phát thanh - Truyền hình tỉnh",
        "media": MediaLink("http://s3/proxy.mp4?X-Amz-Signature=ab&X-Amz-Expires=600", "video/mp4", 123456, 1280, 720),
        "thumbnail": MediaLink("http://s3/poster.jpg?sig=1&b=2", "image/jpeg", 2000, 1280, 720),
    }
    fields.update(overrides)
    return FeedItem(**fields)


def page(*items: FeedItem, next_url: str | None = None) -> FeedPage:
    return FeedPage(
        title="Tư liệu hoạt động HĐND tỉnh",
        feed_url="http://feed/v1/feed.rss?size=2",
        home_url="http://feed/",
        items=list(items),
        window=WINDOW,
        url_life_s=600,
        next_url=next_url,
        next_cursor="abc" if next_url else None,
    )


# --- RSS ------------------------------------------------------------------------------------------


def test_rss_is_rss_2_with_a_vietnamese_channel_and_one_item_per_asset() -> None:
    rss = ET.fromstring(render_rss(page(item(), item(asset_id="a" + "2" * 32))))
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    channel = rss.find("channel")
    assert channel is not None
    assert channel.findtext("title") == "Tư liệu hoạt động HĐND tỉnh" and channel.findtext("language") == "vi"
    assert channel.findtext("lastBuildDate") == "Fri, 20 Jun 2025 01:02:00 GMT"
    entries = channel.findall("item")
    assert [e.findtext("guid") for e in entries] == [
        f"urn:hdnd-mam:asset:a{'1' * 32}",
        f"urn:hdnd-mam:asset:a{'2' * 32}",
    ]
    first = entries[0]
    assert first.findtext("title") == "Kỳ họp thứ 7 HĐND tỉnh khóa XI"
    assert first.findtext("pubDate") == "Fri, 20 Jun 2025 01:02:00 GMT"
    assert [c.text for c in first.findall("category")] == ["Kỳ họp, phiên họp Thường trực", "Nhiệm kỳ 2021 - 2026"]


def test_rss_items_carry_the_web_proxy_as_media_content_and_the_poster_as_media_thumbnail() -> None:
    entry = ET.fromstring(render_rss(page(item()))).find("channel/item")
    assert entry is not None
    content, thumb = entry.find(f"{M}content"), entry.find(f"{M}thumbnail")
    assert content is not None and thumb is not None
    assert content.attrib == {
        "url": "http://s3/proxy.mp4?X-Amz-Signature=ab&X-Amz-Expires=600",
        "type": "video/mp4",
        "medium": "video",
        "fileSize": "123456",
        "width": "1280",
        "height": "720",
        "duration": "62",
        "isDefault": "true",
    }
    assert thumb.attrib == {"url": "http://s3/poster.jpg?sig=1&b=2", "width": "1280", "height": "720"}
    enclosure = entry.find("enclosure")
    assert enclosure is not None and enclosure.attrib["length"] == "123456"


def test_rss_of_an_asset_without_renditions_has_no_media_elements() -> None:
    entry = ET.fromstring(render_rss(page(item(media=None, thumbnail=None)))).find("channel/item")
    assert entry is not None
    assert entry.find(f"{M}content") is None and entry.find("enclosure") is None and entry.find("link") is None


def test_rss_links_to_itself_and_to_the_next_page() -> None:
    channel = ET.fromstring(render_rss(page(item(), next_url="http://feed/v1/feed.rss?cursor=x&size=2"))).find(
        "channel"
    )
    assert channel is not None
    links = {link.get("rel"): link.get("href") for link in channel.findall(f"{A}link")}
    assert links == {"self": "http://feed/v1/feed.rss?size=2", "next": "http://feed/v1/feed.rss?cursor=x&size=2"}


# --- escaping and Vietnamese text -----------------------------------------------------------------


@pytest.mark.parametrize("render", [render_rss, render_atom])
def test_markup_in_titles_and_captions_is_escaped_text_never_elements(render: Any) -> None:
    raw = render(page(item(title=HOSTILE, caption=HOSTILE, source_org="A & B <C>")))
    assert b"<script>" not in raw and b"&lt;script&gt;" in raw
    root = ET.fromstring(raw)
    titles = [e.text for e in root.iter() if e.tag in ("title", f"{A}title") and e.text == HOSTILE]
    assert titles  # parses back to exactly what was given
    assert not [e for e in root.iter() if e.tag == "script"]


@pytest.mark.parametrize("render", [render_rss, render_atom])
def test_characters_xml_cannot_hold_are_dropped_and_the_feed_still_parses(render: Any) -> None:
    raw = render(page(item(title="Kỳ\x01 họp\x0b thứ\ufffe 7\x00", caption="a\udcffb")))
    root = ET.fromstring(raw)
    assert any(e.text == "Kỳ họp thứ 7" for e in root.iter())


def test_xml_text_keeps_vietnamese_tabs_and_newlines_and_drops_controls() -> None:
    assert xml_text("Hội đồng\tnhân dân\ntỉnh\x07\x1f") == "Hội đồng\tnhân dân\ntỉnh"


def test_feed_text_is_utf_8_vietnamese_as_stored_nfc() -> None:
    raw = render_rss(page(item()))
    assert raw.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert "Kỳ họp thứ 7 HĐND tỉnh khóa XI".encode() in raw


def test_the_description_is_the_caption_then_the_facts_in_vietnamese() -> None:
    assert item(activity_title="Kỳ họp thứ 7").description() == (
        "Đồng chí Trần Minh Lực, Phó Chủ tịch HĐND tỉnh phát biểu bế mạc kỳ họp.\n"
        "Hoạt động: Kỳ họp thứ 7. Loại hoạt động: Kỳ họp, phiên họp Thường trực. Nhiệm kỳ 2021 - 2026. "
        "Ghi hình ngày 20/06/2025. Nguồn: Đài Phát thanh - Truyền hình tỉnh."
    )
    bare = item(caption="", activity_label=None, term=None, recorded_at=None, source_org=None)
    assert bare.description() == ""


# --- Atom and JSON Feed ---------------------------------------------------------------------------


def test_atom_is_a_vietnamese_atom_feed_with_entries_media_and_paging() -> None:
    feed = ET.fromstring(render_atom(page(item(), next_url="http://feed/v1/feed.atom?cursor=x")))
    assert feed.tag == f"{A}feed" and feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "vi"
    assert feed.findtext(f"{A}updated") == "2025-06-20T01:02:00+00:00"
    assert {link.get("rel") for link in feed.findall(f"{A}link")} == {"self", "alternate", "next"}
    [entry] = feed.findall(f"{A}entry")
    assert entry.findtext(f"{A}id") == f"urn:hdnd-mam:asset:a{'1' * 32}"
    assert entry.findtext(f"{A}published") == "2025-06-20T01:02:00+00:00"
    enclosure = entry.find(f"{A}link[@rel='enclosure']")
    assert enclosure is not None and enclosure.get("type") == "video/mp4"
    assert entry.find(f"{M}content") is not None and entry.find(f"{M}thumbnail") is not None
    assert [c.get("term") for c in entry.findall(f"{A}category")] == ["ky-hop", "2021-2026"]


def test_json_feed_is_json_feed_1_1_with_attachments_image_and_the_next_page() -> None:
    feed = json.loads(render_json(page(item(), next_url="http://feed/v1/feed?cursor=x")))
    assert feed["version"] == JSON_FEED_VERSION and feed["language"] == "vi"
    assert feed["next_url"] == "http://feed/v1/feed?cursor=x" and feed["_hdnd"]["next_cursor"] == "abc"
    assert feed["_hdnd"]["urls_expire_at"] == "2025-06-20T01:10:00+00:00"
    [entry] = feed["items"]
    assert entry["title"] == "Kỳ họp thứ 7 HĐND tỉnh khóa XI" and entry["image"] == "http://s3/poster.jpg?sig=1&b=2"
    assert entry["attachments"] == [
        {
            "url": "http://s3/proxy.mp4?X-Amz-Signature=ab&X-Amz-Expires=600",
            "mime_type": "video/mp4",
            "size_in_bytes": 123456,
            "duration_in_seconds": 61.6,
        }
    ]
    assert "uploaded_by" not in json.dumps(feed)


# --- items from index documents -------------------------------------------------------------------


def test_each_kind_offers_its_web_rendition_as_media_and_its_poster_as_thumbnail() -> None:
    stored = {n: {"bucket": "r", "key": n} for n in ("proxy", "poster", "web", "thumb", "audio", "waveform")}
    keys = {
        kind: tuple(r["key"] if r else None for r in renditions_for({"kind": kind, "renditions": stored}))
        for kind in ("video", "photo", "audio")
    }
    assert keys == {"video": ("proxy", "poster"), "photo": ("web", "thumb"), "audio": ("audio", "waveform")}
    assert renditions_for({"kind": "video"}) == (None, None)


def test_an_item_is_read_from_the_documents_public_fields_only() -> None:
    src = {
        "asset_id": "a9",
        "title": "Ảnh",
        "kind": "photo",
        "publish_at": "2025-06-20T01:00:00+00:00",
        "duration_s": True,  # nonsense is left out
        "uploaded_by": "phong-vien",
    }
    made = feed_item(src, None, None)
    assert made.publish_at == WINDOW and made.duration_s is None and made.caption == ""


def test_a_feed_cursor_must_hold_epoch_milliseconds_then_an_asset_id() -> None:
    assert valid_feed_sort([1750381200000, "a1"])
    assert not valid_feed_sort(["1750381200000", "a1"]) and not valid_feed_sort([1, ""]) and not valid_feed_sort([1])


# --- caching --------------------------------------------------------------------------------------


def test_urls_are_signed_per_half_of_their_life_so_each_stays_valid_at_least_that_long() -> None:
    start = signing_window(WINDOW + timedelta(seconds=10), 600)
    assert start == WINDOW and signing_window(WINDOW + timedelta(seconds=299), 600) == WINDOW
    assert signing_window(WINDOW + timedelta(seconds=300), 600) == WINDOW + timedelta(seconds=300)


def test_last_modified_is_the_newest_publication_shown_or_the_url_signing() -> None:
    assert page(item()).last_modified == WINDOW + timedelta(minutes=2)
    assert page(item(publish_at=WINDOW - timedelta(days=1))).last_modified == WINDOW
    assert page().last_modified == WINDOW


def test_the_etag_changes_with_the_bytes_and_only_with_them() -> None:
    assert etag_of(render_rss(page(item()))) == etag_of(render_rss(page(item())))
    assert etag_of(render_rss(page(item()))) != etag_of(render_rss(page(item(title="Kỳ họp thứ 8"))))
    assert etag_of(b"x").startswith('"') and etag_of(b"x").endswith('"')


@pytest.mark.parametrize(
    ("if_none_match", "if_modified_since", "expected"),
    [
        ('"e1"', None, True),
        ('W/"e1"', None, True),
        ('"e0", "e1"', None, True),
        ("*", None, True),
        ('"e0"', None, False),
        ('"e0"', "Fri, 20 Jun 2025 02:00:00 GMT", False),  # If-None-Match decides when present
        (None, "Fri, 20 Jun 2025 01:02:00 GMT", True),
        (None, "Fri, 20 Jun 2025 02:00:00 GMT", True),
        (None, "Fri, 20 Jun 2025 01:01:59 GMT", False),
        (None, "hôm qua", False),
        (None, None, False),
    ],
)
def test_a_conditional_request_is_not_modified_exactly_when_rfc_9110_says(
    if_none_match: str | None, if_modified_since: str | None, expected: bool
) -> None:
    modified = WINDOW + timedelta(minutes=2)
    assert not_modified('"e1"', modified, if_none_match, if_modified_since) is expected


def test_http_dates_are_gmt() -> None:
    assert http_date(datetime(2025, 6, 20, 8, 0, tzinfo=UTC)) == "Fri, 20 Jun 2025 08:00:00 GMT"
