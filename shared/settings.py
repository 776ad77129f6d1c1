"""Settings for every service and for the local launcher.

All values come from environment variables with the ``MAM_`` prefix; the
defaults work on a developer machine where ``mam up`` started the servers on
loopback, so nothing needs configuring to try the archive.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One flat settings object; each field documents its env var ``MAM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MAM_", extra="ignore", frozen=True)

    # Where the local launcher keeps every server's data, logs and pid files.
    home: Path = Field(default=Path(".mam"), description="data folder of the local stack")
    # Downloaded/built binaries are cached per machine, outside the data folder,
    # so `make clean` never forces another MinIO build.
    cache_dir: Path = Field(default=Path.home() / ".cache" / "hdnd-mam")

    # --- NATS JetStream (event store)
    nats_port: int = 14222
    nats_monitor_port: int = 18222
    nats_url: str = ""  # derived from nats_port when empty; a cluster: comma-separated URLs of its nodes
    event_stream: str = "MAM_EVENTS"
    # Dedup window for Nats-Msg-Id; long enough to cover a worker's retry cycle.
    event_dedup_window_s: float = 3600.0
    # Servers holding each KV bucket a service makes (shared/kv.py): 1 on one node, 3 on the
    # cluster (`mam up --cluster` sets it), so a bucket survives a node's loss like the stream.
    nats_replicas: int = Field(default=1, ge=1, le=5)

    # --- S3 object storage
    s3_backend: str = "minio"  # "minio" or "seaweedfs": which server the launcher starts
    minio_port: int = 19000
    minio_console_port: int = 19001
    seaweed_s3_port: int = 18333
    seaweed_master_port: int = 19333
    seaweed_volume_port: int = 18080
    seaweed_filer_port: int = 18888
    # SeaweedFS's gRPC listeners default to each port + 10 000, inside Linux's ephemeral range
    # (32768-60999) for the test stacks: an outgoing connection could hold one and the server
    # failed to start ("bind: address already in use"). They are set explicitly instead.
    seaweed_master_grpc_port: int = 15333
    seaweed_volume_grpc_port: int = 15080
    seaweed_filer_grpc_port: int = 15888
    seaweed_s3_grpc_port: int = 15334
    s3_endpoint: str = ""  # host:port; derived from the backend's port when empty
    s3_access_key: str = "mam-local-access"
    s3_secret_key: SecretStr = SecretStr("mam-local-secret-change-me")
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    bucket_originals: str = "mam-originals"
    bucket_renditions: str = "mam-renditions"
    bucket_reels: str = "mam-reels"
    # Collection exports (ZIPs for the review report), fetched through presigned links.
    bucket_exports: str = "mam-exports"
    # A running export refreshes its status at least every quarter of this; one silent longer
    # (its replica died) is failed with a reason. Finished exports' ZIPs are deleted (status
    # "expired") this long after they finished. Every search replica sweeps this often.
    export_stale_after_s: float = Field(default=120.0, ge=1.0)
    export_expiry_s: float = Field(default=7 * 24 * 3600.0, ge=1.0)
    export_sweep_interval_s: float = Field(default=60.0, ge=0.2)
    # How often every catalogue replica carries merges and renames to assets a crash left on
    # the old activity or title (services/catalogue/follow_ups.py); also once at start.
    catalogue_follow_up_interval_s: float = Field(default=30.0, ge=0.2)
    presign_expiry_s: int = 900
    # Multipart part size for streaming puts of large originals.
    s3_part_size: int = 16 * 1024 * 1024

    # --- Elasticsearch
    es_version: str = "9.5.0"
    es_port: int = 19200
    es_transport_port: int = 19300
    es_url: str = ""  # derived from es_port when empty; a cluster: comma-separated URLs of its nodes
    es_heap: str = "2g"
    es_index_prefix: str = "mam"

    # --- services
    # Loopback by default; containers set 0.0.0.0 (the network is theirs alone).
    # Beyond loopback a service refuses to start with the demo tokens or S3 secret
    # (``unsafe_defaults`` below).
    bind_host: str = "127.0.0.1"
    # /docs and /openapi.json need no token (they describe the API, they hold no data);
    # unset = served on loopback only, so a deployment does not advertise its API.
    api_docs: bool | None = None
    # --- accounts: the key pair that signs access tokens (created on first start,
    # under ``home/keys`` unless set); services need only the public key.
    jwt_private_key_file: Path | None = None
    jwt_public_key_file: Path | None = None
    access_token_ttl_s: int = 300
    # --- accounts service (users, sign-in, refresh tokens and API keys in NATS KV)
    accounts_port: int = 18406
    # One demo account per role with a published password (README). Unset = on loopback
    # only; true beyond loopback is refused (``unsafe_defaults``).
    demo_accounts: bool | None = None
    # Sign-in lock-out: this many failures within the window lock the account for a while.
    signin_max_failures: int = Field(default=5, ge=1)
    signin_failure_window_s: int = Field(default=900, ge=1)
    signin_lockout_s: int = Field(default=900, ge=1)
    # A refresh token lives this long unused (each use rotates it and starts again);
    # a sign-in's chain of refresh tokens ends after ``refresh_session_max_s`` regardless.
    refresh_token_ttl_s: int = Field(default=12 * 3600, ge=60)
    refresh_session_max_s: int = Field(default=7 * 24 * 3600, ge=60)
    # How long a verified API key is trusted without looking again: a revoked key is
    # refused by every service within this time (at most 30 s).
    api_key_cache_ttl_s: float = Field(default=15.0, ge=0, le=30)
    # How long a service trusts what it read of a user's token revocation (shared.revocations):
    # a disabled user's access token is refused everywhere within this time.
    token_revocation_cache_ttl_s: float = Field(default=5.0, ge=0, le=30)
    ingest_port: int = 18401
    search_port: int = 18402
    tagger_port: int = 18404
    catalogue_port: int = 18405
    # --- reels (producers' reels and their renderer) and web (the pages)
    reels_port: int = 18407
    web_port: int = 18408
    # Signs the web pages' CSRF tokens (HMAC). Set it in production; every web replica
    # needs the same key (the local one is public, refused beyond loopback).
    web_secret_key: SecretStr = SecretStr("mam-local-web-key-change-me")
    # Front-end libraries installed from the npm registry by `make install` (htmx, tus,
    # swagger-ui for every service's /docs). Unset: ``node_modules`` of the repository.
    web_assets_dir: Path | None = None
    # Where the web service reaches each API, by name (accounts, ingest, search, catalogue,
    # reels), e.g. {"search": "http://search:8402"} in containers; unset: 127.0.0.1 and its port.
    web_api_urls: dict[str, str] = Field(default_factory=dict)
    # Reels: limits on what a producer may assemble (each a bilingual 422 beyond it).
    reels_max_items: int = Field(default=500, ge=1)
    reels_max_total_s: float = Field(default=4 * 3600.0, gt=0)
    # A photo shows as a still for out_s - in_s seconds, at most this long.
    reels_max_still_s: float = Field(default=60.0, gt=0)
    # Normalised segments, cached by content key (source hash, in, out, target, caption).
    bucket_reel_cache: str = "mam-reel-cache"
    # The renderer: a durable JetStream consumer inside the reels service (like the transcoder's).
    reels_ack_wait_s: float = 20.0
    reels_max_attempts: int = 3
    reels_retry_delay_s: float = 5.0
    # A render gets a fixed allowance plus a multiple of the reel's length.
    reels_render_timeout_base_s: float = 300.0
    reels_render_timeout_per_media_s: float = 20.0
    # Progress updates written to NATS KV per second, at most.
    reels_progress_per_s: float = 4.0
    reels_work_dir: Path | None = None
    # Where drafts query the search API (unset: the local search service).
    reels_search_url: str = ""
    # --- tagger: OCR with Tesseract's Vietnamese model (Debian tesseract-ocr, tesseract-ocr-vie)
    tesseract_cmd: str = "tesseract"
    tesseract_lang: str = "vie"
    ocr_timeout_s: float = 60.0  # one asset's OCR budget (all its keyframes); past it, tagged without on-screen text
    ocr_max_keyframes: int = 6
    ocr_scene_threshold: float = 0.3
    # Deliveries of one event before the tagger gives up with asset.tagging_failed.
    tagger_max_attempts: int = 3
    # Assets one tagger replica tags at once: a job waits on S3 and NATS as much as on OCR, and
    # one at a time let a full re-tag hold new uploads back for minutes.
    tagger_concurrency: int = Field(default=2, ge=1, le=16)
    # As the transcoder's: a job sends in-progress acks every third of it, so it only
    # matters once a replica died or an ack was lost with a killed stream leader (it was
    # 120 s, and an asset whose ack went with the leader waited two minutes to be tagged).
    tagger_ack_wait_s: float = Field(default=30.0, ge=3.0)
    max_upload_bytes: int = 8 * 1024 * 1024 * 1024
    ffprobe_timeout_s: float = 30.0
    # --- resumable uploads (tus 1.0 at /v1/uploads of the ingest service)
    # Staging bucket: each upload is an S3 multipart upload here until it is finalised.
    bucket_uploads: str = "mam-uploads"
    # The NATS KV bucket of upload records (its locks: ``<name>_LOCKS``).
    upload_state_bucket: str = "MAM_UPLOADS"
    # Bytes are sent to S3 in parts of this size as they arrive (S3's minimum is 5 MiB);
    # a resume after a crash re-sends at most one part. Memory: one part per PATCH in flight.
    upload_part_size: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024, le=512 * 1024 * 1024)
    # An upload untouched this long is expired: its multipart upload aborted, its state removed.
    upload_expiry_s: int = Field(default=24 * 3600, ge=1)
    # Bytes one user may have in unfinished uploads at once (sum of their Upload-Length).
    upload_quota_bytes: int = Field(default=32 * 1024 * 1024 * 1024, ge=1)
    # One writer per upload: a lock in NATS KV that lapses this long after its holder
    # stopped renewing it (a dead connection or a killed process).
    upload_lock_lease_s: float = Field(default=20.0, ge=2.0, le=600.0)
    # How often the sweeper expires uploads and resumes interrupted finalisations.
    upload_sweep_interval_s: float = Field(default=60.0, ge=0.5)
    # No S3 call of the upload path waits longer (an S3 server going down mid-request
    # must turn into a 503 the client resumes after, not a hung PATCH).
    upload_s3_timeout_s: float = Field(default=60.0, ge=1.0)
    # A finalisation that keeps failing (the originals bucket over its quota, the staging object
    # gone) is given up after this many attempts or this long after its first failure, whichever
    # comes first: the upload ends ``rejected`` with the reason, and its staging bytes are removed.
    upload_finalise_max_attempts: int = Field(default=10, ge=1)
    upload_finalise_max_age_s: float = Field(default=6 * 3600.0, ge=1.0)
    # A request body (``POST /v1/assets``, and every route's JSON or form body) that stalls longer
    # than this between two pieces, or, after the grace time, arrives slower than this on average,
    # is dropped with 408: a client sending headers and then trickling would otherwise hold the
    # request for ever. (A tus PATCH has its lock's lease instead.)
    upload_body_idle_timeout_s: float = Field(default=60.0, ge=0.1)
    upload_body_grace_s: float = Field(default=60.0, ge=0.0)
    upload_body_min_rate_bytes_s: float = Field(default=16 * 1024.0, gt=0.0)
    # Any request body but the uploads' (which are streamed to disk under ``max_upload_bytes``):
    # read whole before the route runs, so bounded (413 past it). The largest a client sends is
    # a reel of 10 000 items or a 5 MB delegate list.
    max_request_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Origins a browser may upload from (tus-js-client, Uppy), comma-separated; empty:
    # the web UI's own origin (``web_url``).
    upload_cors_origins: str = ""
    # Photos with more pixels are refused from their header, before decoding
    # (ingest and transcoder; also Pillow's decompression-bomb guard). 100 MP
    # covers medium-format cameras.
    max_photo_pixels: int = 100_000_000
    # Scratch space of every service: ``<work_dir>/<service>-<port>``, swept when
    # the service starts (shared/workdirs.py). Unset: ``<home>/work``.
    work_dir: Path | None = None

    # --- watch folder (``mam watch``; an optional launcher process, off by default)
    # The folder it watches (``mam up --services …,watch``), how long a file must stay
    # unchanged before it is taken, and the API key it uploads with (role phóng viên).
    watch_dir: Path | None = None
    watch_settle_s: float = Field(default=5.0, gt=0)
    watch_api_key: SecretStr | None = None

    # --- search projector and query API
    # The projector runs inside the search API process by default. With false, this
    # process only answers queries (run another with true, or several API-only
    # replicas): a projector catching up with a backlog then cannot slow queries.
    search_run_projector: bool = True
    # Events per bulk write, and how long a batch may wait to fill (the added
    # indexing latency when the stream is quiet).
    search_batch_size: int = 500
    search_batch_wait_s: float = 0.2
    # _bulk attempts per batch before a write is handed back for redelivery.
    search_bulk_attempts: int = 3
    search_redelivery_delay_s: float = 5.0
    # A write that cannot succeed as things are (mapping conflict, a bug) is
    # recorded and parked: redelivered this often, never acknowledged, so the
    # projection never moves past a lost write. Fix, redeploy: it lands.
    search_parked_redelivery_s: float = 300.0
    # How long a read-your-writes query waits for the projector to catch up.
    search_consistency_timeout_s: float = 10.0
    # Signs pagination cursors (HMAC), so the API only takes back cursors it issued. Set it
    # in production; every search replica needs the same key (the local one is public).
    search_cursor_key: SecretStr = SecretStr("mam-local-cursor-key-change-me")
    # The public portal feed (GET /v1/feed, feed.rss, feed.atom on the search service): its
    # title, and the life of its presigned media URLs. URLs are signed per half of that life,
    # so every URL a feed hands out stays valid at least half of it, and the feed's bytes
    # (hence its ETag) stay the same meanwhile.
    feed_title: str = "Tư liệu hoạt động HĐND tỉnh"
    feed_url_expiry_s: int = Field(default=600, ge=60, le=7 * 24 * 3600)

    # --- transcoder (2-core machines are the baseline)
    transcoder_port: int = 18403
    # Jobs one replica runs at once; each ffmpeg uses ``ffmpeg_threads`` threads.
    transcoder_concurrency: int = 1
    ffmpeg_threads: int = 2
    # ffmpeg gets a fixed allowance plus a multiple of the media's duration, so
    # a two-hour session is not killed while a hung decode of a short clip is.
    ffmpeg_timeout_base_s: float = 120.0
    ffmpeg_timeout_per_media_s: float = 3.0
    # The server redelivers a job not acknowledged within this; long jobs send
    # in-progress acks every third of it, so it only matters after a crash.
    transcoder_ack_wait_s: float = 20.0
    # Deliveries of one job before it ends as asset.processing_failed.
    transcoder_max_attempts: int = 3
    transcoder_retry_delay_s: float = 5.0
    transcoder_max_input_bytes: int = 8 * 1024 * 1024 * 1024
    # Frame-count limit checked before decoding (12 h at 60 fps).
    transcoder_max_frames: int = 12 * 3600 * 60
    # Local scratch space for originals and outputs being written; overrides
    # ``work_dir`` for the transcoder alone (``<transcoder_work_dir>/transcoder-<port>``).
    transcoder_work_dir: Path | None = None

    # --- the cluster profile (`mam up --cluster`, deploy/local/cluster.py): its extra
    # nodes' ports are a block from this base (layout in ClusterPorts), and each
    # service's second replica listens on its port + the shift.
    cluster_port_base: int = 14260
    cluster_replica_port_shift: int = 1000

    @property
    def resolved_nats_url(self) -> str:
        return self.nats_url or f"nats://127.0.0.1:{self.nats_port}"

    @property
    def nats_servers(self) -> list[str]:
        """Every NATS server to try, in order (nats-py and FastStream take a list, not a comma string)."""
        return split_urls(self.resolved_nats_url)

    @property
    def es_hosts(self) -> list[str]:
        """Every Elasticsearch node (the client spreads requests and retries on the next one)."""
        return split_urls(self.resolved_es_url)

    @property
    def resolved_s3_endpoint(self) -> str:
        if self.s3_endpoint:
            return self.s3_endpoint
        port = self.seaweed_s3_port if self.s3_backend == "seaweedfs" else self.minio_port
        return f"127.0.0.1:{port}"

    @property
    def resolved_es_url(self) -> str:
        return self.es_url or f"http://127.0.0.1:{self.es_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def search_url(self) -> str:
        return f"http://127.0.0.1:{self.search_port}"

    @property
    def transcoder_url(self) -> str:
        return f"http://127.0.0.1:{self.transcoder_port}"

    @property
    def tagger_url(self) -> str:
        return f"http://127.0.0.1:{self.tagger_port}"

    @property
    def catalogue_url(self) -> str:
        return f"http://127.0.0.1:{self.catalogue_port}"

    @property
    def accounts_url(self) -> str:
        return f"http://127.0.0.1:{self.accounts_port}"

    @property
    def reels_url(self) -> str:
        return f"http://127.0.0.1:{self.reels_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def resolved_jwt_private_key_file(self) -> Path:
        return self.jwt_private_key_file or self.home / "keys" / "jwt-ed25519.pem"

    @property
    def resolved_jwt_public_key_file(self) -> Path:
        return self.jwt_public_key_file or self.home / "keys" / "jwt-ed25519.pub.pem"

    @property
    def resolved_web_assets_dir(self) -> Path:
        return self.web_assets_dir or Path(__file__).resolve().parents[1] / "node_modules"

    @property
    def serves_api_docs(self) -> bool:
        return self.api_docs if self.api_docs is not None else is_loopback(self.bind_host)

    @property
    def creates_demo_accounts(self) -> bool:
        return self.demo_accounts if self.demo_accounts is not None else is_loopback(self.bind_host)


def split_urls(value: str) -> list[str]:
    """``"a,b , c"`` → ``["a", "b", "c"]``: a setting that names one server or a cluster's nodes."""
    return [url.strip() for url in value.split(",") if url.strip()]


# --- refusing the shipped demo values off loopback
# The defaults are public (they are in this file, the README and the tests), so a
# service reachable from other machines must not start with them.
_DEMO_S3_SECRET = Settings.model_fields["s3_secret_key"].default.get_secret_value()
_DEMO_CURSOR_KEY = Settings.model_fields["search_cursor_key"].default.get_secret_value()


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (also written ``[::1]``)."""
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class UnsafeSetting:
    """One setting that must be changed before a service may listen beyond loopback."""

    variable: str
    message_vi: str
    message_en: str


def unsafe_defaults(settings: Settings) -> list[UnsafeSetting]:
    """Public demo values a service must not start with when it listens beyond loopback."""
    if is_loopback(settings.bind_host):
        return []
    problems: list[UnsafeSetting] = []
    if settings.s3_secret_key.get_secret_value() == _DEMO_S3_SECRET:
        problems.append(
            UnsafeSetting(
                "MAM_S3_SECRET_KEY",
                "vẫn là khóa mẫu công khai; hãy đặt khóa bí mật riêng của máy chủ S3",
                "is still the public demo secret; set the S3 server's own secret key",
            )
        )
    if settings.search_cursor_key.get_secret_value() == _DEMO_CURSOR_KEY:
        problems.append(
            UnsafeSetting(
                "MAM_SEARCH_CURSOR_KEY",
                "vẫn là khóa mẫu công khai (ai cũng ký được con trỏ phân trang); hãy đặt khóa ngẫu nhiên riêng",
                "is still the public demo key (anyone could sign page cursors); set your own random key",
            )
        )
    if settings.demo_accounts:
        problems.append(
            UnsafeSetting(
                "MAM_DEMO_ACCOUNTS",
                "tạo các tài khoản mẫu có mật khẩu công khai; hãy bỏ biến này hoặc đặt false "
                "và tạo tài khoản bằng `mam user add`",
                "creates the demo accounts, whose passwords are public; unset it or set false "
                "and create accounts with `mam user add`",
            )
        )
    return problems


class UnsafeSettingsError(Exception):
    """Raised instead of starting a service reachable from other machines with demo values."""

    def __init__(self, bind_host: str, problems: list[UnsafeSetting]) -> None:
        self.bind_host = bind_host
        self.problems = problems
        variables = ", ".join(p.variable for p in problems)
        lines = [
            f"Từ chối khởi động: MAM_BIND_HOST={bind_host} không phải địa chỉ loopback (máy khác kết nối được) "
            f"nên phải đặt {variables}:",
            *(f"  - {p.variable} {p.message_vi}." for p in problems),
            f"Refusing to start: MAM_BIND_HOST={bind_host} is not a loopback address (other machines can connect), "
            f"so set {variables}:",
            *(f"  - {p.variable} {p.message_en}." for p in problems),
            "Tạo giá trị ngẫu nhiên / make a random value: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        ]
        super().__init__("\n".join(lines))


def refuse_unsafe_defaults(settings: Settings) -> None:
    """Raise :class:`UnsafeSettingsError` if ``settings`` must not be served as they are."""
    problems = unsafe_defaults(settings)
    if problems:
        raise UnsafeSettingsError(settings.bind_host, problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process (tests build their own ``Settings``)."""
    return Settings()
