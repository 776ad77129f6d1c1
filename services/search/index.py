"""Elasticsearch adapter for the asset index: an alias over a versioned index.

Writes use external versioning with the event's stream sequence, so a
redelivered or out-of-order event can never overwrite a newer document.
"""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from services.search.documents import ASSET_MAPPINGS

INDEX_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"}


class AssetIndex:
    def __init__(self, es: AsyncElasticsearch, prefix: str) -> None:
        self.es = es
        self.alias = f"{prefix}-assets"
        self.first_index = f"{prefix}-assets-v1"

    async def ensure(self) -> None:
        """Create the first index and point the alias at it, unless the alias exists."""
        if await self.es.indices.exists_alias(name=self.alias):
            return
        if not await self.es.indices.exists(index=self.first_index):
            await self.es.indices.create(
                index=self.first_index, settings=INDEX_SETTINGS, mappings=ASSET_MAPPINGS,
                aliases={self.alias: {"is_write_index": True}},
            )
        else:
            await self.es.indices.put_alias(index=self.first_index, name=self.alias)

    async def get(self, doc_id: str) -> tuple[dict[str, Any], int] | None:
        try:
            found = await self.es.get(index=self.alias, id=doc_id)
        except NotFoundError:
            return None
        return dict(found["_source"]), int(found["_version"])

    async def put(self, doc_id: str, doc: dict[str, Any], version: int, *, refresh: bool = False) -> bool:
        """Write ``doc`` at ``version``; False if the index already holds that version or newer."""
        try:
            await self.es.index(
                index=self.alias, id=doc_id, document=doc, version=version, version_type="external",
                refresh="wait_for" if refresh else None,
            )
        except ConflictError:
            return False
        return True

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.es.search(index=self.alias, **body)
        return dict(response.body)

    async def refresh(self) -> None:
        await self.es.indices.refresh(index=self.alias)
