"""A machine's API key, made once by an administrator, opens every service for its
role only, and stops working everywhere soon after it is revoked."""

from __future__ import annotations

import httpx
import pytest

from shared.settings import Settings
from tests.conftest import ADMIN, wait_for

pytestmark = pytest.mark.integration


def test_an_api_key_works_on_every_service_for_its_role_only_until_revoked(
    services: Settings, http: httpx.Client
) -> None:
    s = services
    made = http.post(
        f"{s.accounts_url}/v1/api-keys", headers=ADMIN, json={"name": "Cổng thông tin", "role": "bien-tap"}
    )
    assert made.status_code == 201, made.text
    key = {"Authorization": f"Bearer {made.json()['key']}"}

    assert http.get(f"{s.search_url}/v1/search", headers=key, params={"q": "kỳ họp"}).status_code == 200
    assert http.get(f"{s.catalogue_url}/v1/activities", headers=key).status_code == 200
    # A producer's key may not take an archivist's action nor an administrator's.
    refused = http.post(f"{s.catalogue_url}/v1/retag", headers=key, json={"reason": "thử"})
    assert refused.status_code == 403 and refused.json()["error"]["message_en"]
    assert http.get(f"{s.search_url}/v1/projection", headers=key).status_code == 403

    key_id = made.json()["id"]
    assert http.delete(f"{s.accounts_url}/v1/api-keys/{key_id}", headers=ADMIN).status_code == 204
    wait_for(
        lambda: http.get(f"{s.search_url}/v1/search", headers=key).status_code == 401,
        timeout=s.api_key_cache_ttl_s + 15,
        what="the revoked key refused by search",
    )
