"""Whatever a user can type into an address or a form, the pages answer without a server
error: an API's refusal comes back as a page (or JSON) with its own 4xx status."""

from __future__ import annotations

import pytest

from tests.browser.conftest import csrf_of, session_client

pytestmark = pytest.mark.integration

ODD_PATHS = [
    "/assets/..%2F..%2Fv1%2Fusers",
    "/assets/a" + "0" * 300,
    "/assets/%00",
    "/media/a0000000000000000000000000000000/proxy",
    "/media/..%2F/proxy",
    "/reels/r%20x",
    "/reels/rnot-a-reel/progress",
    "/reels/rnot-a-reel/output/video",
    "/collections/nope",
    "/collections/cnope/exports/xnope",
    "/collections/cnope/exports/xnope/zip",
    "/tus/..%2Fsecret",
    "/search?q=" + "ạ" * 600,
    "/search?sort=sideways&order=up&offset=-5&year=20x4&kind=cassette",
    "/search?cursor=forged&at=999999999999",
    "/activities?term=1999-2004",
    "/delegates?term=none",
    "/delegates/report.pdf?term=2021-2026",
    "/stats?group_by=decade",
    "/sign-in?next=//evil.example/",
    "/people?q=" + "ạ" * 600 + "&term=1999-2004",
    "/people/p%00",
    "/people/..%2F..%2Fv1%2Fusers",
    "/assets/a0000000000000000000000000000000/collections",
    "/assets/..%2F/collections",
    "/search/bulk-form",
]


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_odd_addresses_never_reach_a_server_error(web: str, accept: str) -> None:
    client = session_client(web, "quan-tri")
    for path in ODD_PATHS:
        answer = client.get(path, headers={"Accept": accept})
        assert answer.status_code < 500, f"{path}: {answer.status_code} {answer.text[:300]}"


def test_odd_form_posts_are_refused_in_words_not_server_errors(web: str) -> None:
    client = session_client(web, "quan-tri")
    token = csrf_of(client.get("/search").text)
    posts = {
        "/assets/a0000000000000000000000000000000/metadata": {"title": "x" * 5000, "shown_title": ""},
        "/assets/a0000000000000000000000000000000/publication": {"publish_day": "99/99/9999"},
        "/assets/a0000000000000000000000000000000/activity": {"activity_id": "../../x"},
        "/assets/a0000000000000000000000000000000/collection": {"collection_id": "c../x"},
        "/reels": {"title": "\u0000"},
        "/reels/draft": {"draft_title": "x", "year": "3000"},
        "/reels/rnope/items": {"asset_id": "a1", "in": "00:00:00.00", "out": "00:00:01.00", "caption": ""},
        "/reels/rnope/render": {},
        "/collections": {"title": "x", "kind": "weird", "year": "2024"},
        "/admin/users": {"username": "a", "display_name": "", "password": "1"},
        "/admin/users/nobody": {"active": "false"},
        "/admin/api-keys": {"name": "", "role": "god"},
        "/admin/api-keys/knope/revoke": {},
        "/search/bulk": {"asset": "../x", "activity_type": "weird", "people_add": "\u0000, " + "x" * 400},
        "/assets/a0000000000000000000000000000000/speeches": {"speech_action": "correct", "speech_name_0": "x" * 500},
        "/assets/a0000000000000000000000000000000/speeches?": {"speech_action": "confirm"},
    }
    for path, form in posts.items():
        answer = client.post(path, data={**form, "csrf_token": token}, headers={"Accept": "text/html"})
        assert answer.status_code < 500, f"{path}: {answer.status_code} {answer.text[:300]}"
