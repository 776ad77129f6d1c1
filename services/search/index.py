"""Elasticsearch adapter for the asset index: an alias over versioned indices.

Writes use external versioning with the event's stream sequence, so a
redelivered or out-of-order event can never overwrite a newer document. An
index template carries settings and mappings for every ``<prefix>-assets-*``
index, so a rebuild creates a fresh index and swaps the alias in one atomic
``_aliases`` call while queries keep being served.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from elasticsearch import AsyncElasticsearch, BadRequestError, ConflictError, NotFoundError
from elasticsearch.serializer import OrjsonSerializer

from services.search.documents import ASSET_MAPPINGS
from services.search.projector import bounded_reason
from shared.ports import BulkItemResult
from shared.settings import split_urls

log = logging.getLogger("mam.search.index")
# One replica wherever a second node can hold it (the cluster profile), none on a single
# node (whose index would otherwise stay yellow forever).
INDEX_SETTINGS: dict[str, Any] = {"number_of_shards": 1, "auto_expand_replicas": "0-1", "refresh_interval": "1s"}
# What a rebuild's bulk-loading index gets back before its swap.
LIVE_SETTINGS: dict[str, Any] = {
    "auto_expand_replicas": INDEX_SETTINGS["auto_expand_replicas"],
    "refresh_interval": "1s",
}
# How long a swap waits for the new index's replica to be allocated.
REPLICA_WAIT_S = 300
# Elasticsearch refuses a request body over http.max_content_length (100 MB by default) as a
# whole: a batch of documents with huge texts (events already in the log may hold them)
# would fail every time it is redelivered. Bulk bodies are split well below that.
MAX_BULK_BYTES = 32 * 1024 * 1024


def es_client(url: str, request_timeout: float = 30) -> AsyncElasticsearch:
    """The Elasticsearch client every part of the project uses.

    ``url``: one node, or a cluster's nodes comma-separated; the client spreads
    requests over them and retries a request on the next node when one fails.

    orjson parses search responses (whole captions and OCR text per hit)
    several times faster than the standard library.
    """
    return AsyncElasticsearch(
        split_urls(url), request_timeout=request_timeout, serializer=OrjsonSerializer(), retry_on_timeout=True
    )


def _log_refusals(results: list[BulkItemResult]) -> None:
    """One line per ``_bulk`` in which Elasticsearch refused documents (a version conflict is a
    race the projector settles, not a refusal): how many of the request were written beside them."""
    refused = Counter(f"{r.status} {r.error_type}" for r in results if not r.ok and not r.version_conflict)
    if refused:
        written = sum(1 for r in results if r.ok)
        kinds = ", ".join(f"{kind} ×{n}" for kind, n in sorted(refused.items()))
        log.warning("_bulk of %d documents: %d written, %d refused (%s)", len(results), written, refused.total(), kinds)


class AssetIndex:
    def __init__(self, es: AsyncElasticsearch, prefix: str, target: str | None = None) -> None:
        self.es = es
        self.prefix = prefix
        self.alias = f"{prefix}-assets"
        self.first_index = f"{prefix}-assets-v1"
        self.template = f"{prefix}-assets-template"
        self.failures_index = f"{prefix}-projection-failures"
        # Marks a rebuild's index until its swap: one still marked when no rebuild runs was
        # left by a rebuild that died (its process killed) and is deleted by the next one.
        self.unfinished_alias = f"{prefix}-rebuild-unfinished"
        # Where writes go: the alias, or (during a rebuild) the new concrete index.
        self.target = target or self.alias

    def writing_to(self, index_name: str) -> AssetIndex:
        """The same adapter writing into one concrete index (a rebuild's new index)."""
        return AssetIndex(self.es, self.prefix, target=index_name)

    async def ensure(self) -> None:
        """Template, first index and alias, unless the alias exists; new mapping fields are added in place."""
        await self.es.indices.put_index_template(
            name=self.template,
            index_patterns=[f"{self.alias}-*"],
            priority=100,
            template={"settings": INDEX_SETTINGS, "mappings": ASSET_MAPPINGS},
        )
        if await self.es.indices.exists_alias(name=self.alias):
            try:
                await self.es.indices.put_mapping(index=self.alias, **ASSET_MAPPINGS)
            except BadRequestError as exc:
                log.warning(
                    "the live index mapping cannot take the new mapping in place; run `mam rebuild-index`: %s", exc
                )
            return
        if not await self.es.indices.exists(index=self.first_index):
            try:
                await self.es.indices.create(
                    index=self.first_index,
                    settings=INDEX_SETTINGS,
                    mappings=ASSET_MAPPINGS,
                    aliases={self.alias: {"is_write_index": True}},
                )
            except BadRequestError as exc:  # another replica created it first
                if "resource_already_exists" not in str(exc):
                    raise
        else:
            await self.es.indices.put_alias(index=self.first_index, name=self.alias)

    async def get(self, doc_id: str) -> tuple[dict[str, Any], int] | None:
        try:
            found = await self.es.get(index=self.target, id=doc_id)
        except NotFoundError:
            return None
        return dict(found["_source"]), int(found["_version"])

    async def mget(self, doc_ids: Iterable[str]) -> dict[str, tuple[dict[str, Any], int]]:
        """Current documents and versions (real-time, no refresh needed); absent ids are left out."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        response = await self.es.mget(index=self.target, ids=ids)
        docs = response["docs"]
        return {d["_id"]: (dict(d["_source"]), int(d["_version"])) for d in docs if d.get("found")}

    async def put(self, doc_id: str, doc: dict[str, Any], version: int, *, refresh: bool = False) -> bool:
        """Write ``doc`` at ``version``; False if the index already holds that version or newer."""
        try:
            await self.es.index(
                index=self.target,
                id=doc_id,
                document=doc,
                version=version,
                version_type="external",
                refresh="wait_for" if refresh else None,
            )
        except ConflictError:
            return False
        return True

    async def bulk_put(
        self, docs: list[tuple[str, dict[str, Any], int]], gte: set[str] | frozenset[str] = frozenset()
    ) -> list[BulkItemResult]:
        """Write (id, doc, version) triples in one ``_bulk`` call; one result per triple, in order.

        Ids in ``gte`` may overwrite a document of the same version (full rebuilds).
        """
        if not docs:
            return []
        # Serialised here (orjson; the client's NDJSON serialiser is the standard library's)
        # so each request can be kept under MAX_BULK_BYTES; one request for ordinary batches.
        chunks: list[list[bytes]] = [[]]
        size = 0
        for doc_id, doc, version in docs:
            action = {
                "index": {
                    "_index": self.target,
                    "_id": doc_id,
                    "version": version,
                    "version_type": "external_gte" if doc_id in gte else "external",
                }
            }
            lines = [orjson.dumps(action), orjson.dumps(doc)]
            weight = len(lines[0]) + len(lines[1]) + 2
            if chunks[-1] and size + weight > MAX_BULK_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].extend(lines)
            size += weight
        items: list[dict[str, Any]] = []
        for chunk in chunks:
            response = await self.es.bulk(operations=cast(Any, chunk))
            items.extend(response["items"])
        out = []
        for (doc_id, _, _), item in zip(docs, items, strict=True):
            result = item["index"]
            error = result.get("error") or {}
            out.append(BulkItemResult(doc_id, int(result.get("status", 500)), error.get("type"), error.get("reason")))
        _log_refusals(out)
        return out

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.es.search(index=self.alias, **body)
        return dict(response.body)

    async def refresh(self) -> None:
        await self.es.indices.refresh(index=self.target)

    # --- rebuilds -----------------------------------------------------------------

    async def ready(self) -> bool:
        """Elasticsearch answers (for readiness checks)."""
        # Not ping(): its HEAD / answers 405 on the integ-test-zip distribution.
        try:
            health = await self.es.cluster.health(timeout="2s")
        except Exception:
            return False
        return health.get("status") in {"green", "yellow"}

    async def live_indices(self) -> list[str]:
        """Concrete indices the alias points at (one, except mid-swap by hand)."""
        try:
            found = await self.es.indices.get_alias(name=self.alias)
        except NotFoundError:
            return []
        return sorted(found.body)

    async def all_indices(self) -> list[str]:
        found = await self.es.indices.get(index=f"{self.alias}-*", expand_wildcards="open")
        return sorted(found.body)

    async def create_rebuild_index(self) -> str:
        """A fresh, empty index for a rebuild, tuned for bulk loading (Elasticsearch's "tune
        for indexing speed"): no refresh and no replica until the swap; marked unfinished."""
        name = f"{self.alias}-{datetime.now(UTC).strftime('%Y%m%dt%H%M%S%f')}"
        loading = {k: v for k, v in INDEX_SETTINGS.items() if k != "auto_expand_replicas"}
        await self.es.indices.create(
            index=name,
            settings={**loading, "number_of_replicas": 0, "refresh_interval": "-1"},
            mappings=ASSET_MAPPINGS,
            aliases={self.unfinished_alias: {}},
        )
        return name

    async def unfinished_indices(self) -> list[str]:
        """Indices a rebuild created and never swapped in (only one rebuild runs at a time)."""
        try:
            found = await self.es.indices.get_alias(name=self.unfinished_alias)
        except NotFoundError:
            return []
        return sorted(found.body)

    async def swap_alias(self, new_index: str) -> list[str]:
        """Point the alias at ``new_index`` only, atomically; returns the indices it left.

        The index gets its live settings back first, and its replica (where a second
        node can hold it) is in place before queries move to it."""
        old = await self.live_indices()
        await self.es.indices.put_settings(index=new_index, settings=LIVE_SETTINGS)
        await self.es.indices.refresh(index=new_index)
        health = await self.es.options(ignore_status=408, request_timeout=REPLICA_WAIT_S + 30).cluster.health(
            index=new_index, wait_for_status="green", timeout=f"{REPLICA_WAIT_S}s"
        )
        if health.get("timed_out"):
            log.warning(
                "%s has no replica after %d s; swapping anyway (it keeps being allocated)", new_index, REPLICA_WAIT_S
            )
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old]
        actions.append({"add": {"index": new_index, "alias": self.alias, "is_write_index": True}})
        actions.append({"remove": {"index": new_index, "alias": self.unfinished_alias}})
        await self.es.indices.update_aliases(actions=actions)
        return old

    async def delete_indices(self, names: list[str]) -> None:
        for name in names:
            await self.es.indices.delete(index=name, ignore_unavailable=True)

    # --- failures the projector could not write ------------------------------------

    async def record_failure(self, doc_id: str, sequence: int, event_type: str, reason: str) -> None:
        """Keep a write that cannot succeed visible, instead of dropping it."""
        await self.es.index(
            index=self.failures_index,
            id=f"{doc_id}-{sequence}",
            refresh=True,
            document={
                "asset_id": doc_id,
                "sequence": sequence,
                "event_type": event_type,
                "reason": bounded_reason(reason),
                "recorded_at": datetime.now(UTC).isoformat(),
            },
        )

    async def clear_failure(self, doc_id: str, sequence: int) -> bool:
        """The recorded write has succeeded since; False if there was no record."""
        try:
            await self.es.delete(index=self.failures_index, id=f"{doc_id}-{sequence}", refresh=True)
        except NotFoundError:
            return False
        return True

    async def failures(self, size: int = 100) -> list[dict[str, Any]]:
        try:
            response = await self.es.search(
                index=self.failures_index,
                size=size,
                sort=[{"sequence": {"order": "desc", "unmapped_type": "long"}}],
                query={"match_all": {}},
            )
        except NotFoundError:
            return []
        # Records written before reasons were bounded may quote a whole refused value.
        out = [dict(h["_source"]) for h in response["hits"]["hits"]]
        for record in out:
            record["reason"] = bounded_reason(str(record.get("reason", "")))
        return out
