"""The cluster profile on loopback: the engines' own clustering, started by the launcher.

- NATS: three servers in one cluster (JetStream, ``sync_interval: always``); the
  event stream is scaled to three replicas once the services have made it, and
  every KV bucket is made (or scaled) on three by the service that opens it
  (``nats_replicas``), also one a service makes long after ``up``.
- MinIO: four server processes with one drive each, one erasure set (EC:2 —
  reads and writes go on with one server down). The ``minio`` SDK talks to one
  endpoint, so HAProxy (Debian's package) listens on ``minio_port`` in front of the
  four: it health-checks each server every second, sends requests to live ones,
  and retries a request whose connection failed on another server.
- Elasticsearch: three nodes (all master-eligible; heap ``CLUSTER_ES_HEAP``). The
  index has one replica (``auto_expand_replicas: 0-1``). Services get every
  node's URL and the client retries a failed request on the next node.
- Services: two replicas of each in SERVICES, on the same durable consumers; the
  second listens on its port + ``cluster_replica_port_shift``. Both search replicas
  project: a replica never folds onto a document missing an event the log holds
  (services/search/projector.py), so two projectors cannot lose an update.

Ports beyond the single-node ones come from ``cluster_port_base`` (ClusterPorts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from deploy.local import installers
from deploy.local.processes import LaunchError, ProcessSpec, StartResult, http_ok, running_pid, start, stop
from deploy.local.stack import SERVICES, LocalStack
from shared.auth import ensure_signing_keys
from shared.settings import Settings

NATS_NODES = 3
MINIO_SERVERS = 4
ES_NODES = 3
SERVICE_REPLICAS = 2
# Three nodes and their JVMs must fit a 2-core, 24 GiB machine shared with others.
CLUSTER_ES_HEAP = "512m"
STREAM_REPLICAS = 3
S3_BALANCER = "s3-balancer"

# How long each kind gets to stop on SIGTERM before SIGKILL (the stop path honours each).
STOP_GRACE_S = {"service": 10.0, "elasticsearch": 30.0, "minio": 15.0, S3_BALANCER: 5.0, "nats": 10.0}


@dataclass(frozen=True)
class ClusterPorts:
    """The cluster's extra ports, a block of ``SIZE`` from ``cluster_port_base``.

    Node 1 of NATS and of Elasticsearch keep the single-node ports (so URLs that
    name one node still work); the S3 balancer takes ``minio_port``.
    """

    base: int
    SIZE = 19

    def nats_route(self, node: int) -> int:  # 1..3
        return self.base + node - 1

    def nats_client(self, settings: Settings, node: int) -> int:
        return settings.nats_port if node == 1 else self.base + 3 + node - 2

    def nats_monitor(self, settings: Settings, node: int) -> int:
        return settings.nats_monitor_port if node == 1 else self.base + 5 + node - 2

    def minio_api(self, server: int) -> int:  # 1..4
        return self.base + 7 + server - 1

    def minio_console(self, server: int) -> int:
        return self.base + 11 + server - 1

    def es_http(self, settings: Settings, node: int) -> int:
        return settings.es_port if node == 1 else self.base + 15 + node - 2

    def es_transport(self, settings: Settings, node: int) -> int:
        return settings.es_transport_port if node == 1 else self.base + 17 + node - 2

    def all(self) -> list[int]:
        return list(range(self.base, self.base + self.SIZE))


def cluster_settings(settings: Settings) -> Settings:
    """``settings`` as the services of the cluster see them: every node's URL."""
    ports = ClusterPorts(settings.cluster_port_base)
    nats = ",".join(f"nats://127.0.0.1:{ports.nats_client(settings, n)}" for n in range(1, NATS_NODES + 1))
    es = ",".join(f"http://127.0.0.1:{ports.es_http(settings, n)}" for n in range(1, ES_NODES + 1))
    return settings.model_copy(
        update={
            "nats_url": nats,
            "es_url": es,
            "s3_backend": "minio",
            "s3_endpoint": "",
            "nats_replicas": STREAM_REPLICAS,
        }
    )


def _kind(name: str) -> str:
    if name == S3_BALANCER:
        return S3_BALANCER
    base = name.rsplit("-", 1)[0]
    return base if base in {"nats", "minio", "elasticsearch"} else "service"


@dataclass
class ClusterStack:
    """Start, stop and inspect the cluster profile (same data folder layout as LocalStack)."""

    settings: Settings

    def __post_init__(self) -> None:
        self.settings = cluster_settings(self.settings)
        self.local = LocalStack(self.settings)
        self.ports = ClusterPorts(self.settings.cluster_port_base)

    # --- names, in start order ----------------------------------------------------
    @staticmethod
    def nats_names() -> list[str]:
        return [f"nats-{n}" for n in range(1, NATS_NODES + 1)]

    @staticmethod
    def minio_names() -> list[str]:
        return [f"minio-{n}" for n in range(1, MINIO_SERVERS + 1)]

    @staticmethod
    def es_names() -> list[str]:
        return [f"elasticsearch-{n}" for n in range(1, ES_NODES + 1)]

    @staticmethod
    def service_names(services: tuple[str, ...] = SERVICES) -> list[str]:
        return [name if r == 1 else f"{name}-{r}" for name in services for r in range(1, SERVICE_REPLICAS + 1)]

    def stop_order(self) -> list[str]:
        """Services first (they hold connections and unacknowledged jobs), then the index,
        the object store behind its balancer, and the event log last."""
        return [
            *reversed(self.service_names()),
            *reversed(self.es_names()),
            S3_BALANCER,
            *reversed(self.minio_names()),
            *reversed(self.nats_names()),
        ]

    # --- specs ------------------------------------------------------------------
    def nats_spec(self, node: int) -> ProcessSpec:
        s, p = self.settings, self.ports
        routes = ", ".join(f"nats-route://127.0.0.1:{p.nats_route(n)}" for n in range(1, NATS_NODES + 1))
        block = f"cluster {{\n  name: mam-cluster\n  listen: 127.0.0.1:{p.nats_route(node)}\n  routes: [{routes}]\n}}\n"
        spec = self.local.nats_spec(
            name=f"nats-{node}", port=p.nats_client(s, node), monitor_port=p.nats_monitor(s, node), cluster=block
        )
        # A node is healthy once it serves clients; JetStream's meta leader is elected once
        # two are up, which prepare() waits for.
        spec.health = http_ok(f"http://127.0.0.1:{p.nats_monitor(s, node)}/varz")
        return spec

    def minio_spec(self, server: int) -> ProcessSpec:
        s, p = self.settings, self.ports
        drives = [
            f"http://127.0.0.1:{p.minio_api(n)}{self.local.home / f'minio-{n}' / 'drive'}"
            for n in range(1, MINIO_SERVERS + 1)
        ]
        for n in range(1, MINIO_SERVERS + 1):
            (self.local.home / f"minio-{n}" / "drive").mkdir(parents=True, exist_ok=True)
        return self.local._spec(
            f"minio-{server}",
            [
                str(installers.minio(s.cache_dir)),
                "server",
                "--quiet",
                "--address",
                f"127.0.0.1:{p.minio_api(server)}",
                "--console-address",
                f"127.0.0.1:{p.minio_console(server)}",
                *drives,
            ],
            http_ok(f"http://127.0.0.1:{p.minio_api(server)}/minio/health/live"),
            env={
                "MINIO_ROOT_USER": s.s3_access_key,
                "MINIO_ROOT_PASSWORD": s.s3_secret_key.get_secret_value(),
                "MINIO_UPDATE": "off",
                # The four drives share this machine's root filesystem, which distributed
                # MinIO otherwise refuses (as in MinIO's own multi-process tests).
                "MINIO_CI_CD": "1",
                # Inside a container (/.dockerenv) MinIO waits for loopback hosts to resolve
                # to another address, forever; this names which endpoint is this process's own.
                "_MINIO_SERVER_LOCAL": f"127.0.0.1:{p.minio_api(server)}",
            },
            startup_timeout_s=120,
            stop_grace_s=STOP_GRACE_S["minio"],
            cmdline_marker=f"127.0.0.1:{p.minio_api(server)}",
        )

    def balancer_spec(self) -> ProcessSpec:
        s, p = self.settings, self.ports
        conf = self.local.home / S3_BALANCER / "haproxy.cfg"
        conf.parent.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"  server minio-{n} 127.0.0.1:{p.minio_api(n)} check inter 1s fall 2 rise 2"
            for n in range(1, MINIO_SERVERS + 1)
        )
        conf.write_text(
            "global\n  maxconn 2048\n"
            "defaults\n  mode http\n  timeout connect 2s\n  timeout client 600s\n  timeout server 600s\n"
            # A request whose server died before answering goes to another one (bodies
            # that fit the buffer: S3's small requests; a large upload fails and the
            # SDK's caller retries it).
            "  retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response 503\n"
            "  option http-buffer-request\n"
            f"frontend s3\n  bind 127.0.0.1:{s.minio_port}\n  default_backend minio\n"
            "backend minio\n  balance leastconn\n  option httpchk GET /minio/health/live\n"
            f"  http-check expect status 200\n{servers}\n"
        )
        return self.local._spec(
            S3_BALANCER,
            [str(installers.debian_tool("haproxy")), "-db", "-f", str(conf)],
            http_ok(f"http://127.0.0.1:{s.minio_port}/minio/health/cluster"),
            startup_timeout_s=120,
            stop_grace_s=STOP_GRACE_S[S3_BALANCER],
            cmdline_marker=str(conf),
        )

    def es_spec(self, node: int) -> ProcessSpec:
        s, p = self.settings, self.ports
        seeds = ", ".join(f'"127.0.0.1:{p.es_transport(s, n)}"' for n in range(1, ES_NODES + 1))
        masters = ", ".join(f'"mam-elasticsearch-{n}"' for n in range(1, ES_NODES + 1))
        spec = self.local.elasticsearch_spec(
            name=f"elasticsearch-{node}",
            http_port=p.es_http(s, node),
            transport_port=p.es_transport(s, node),
            discovery=f"discovery.seed_hosts: [{seeds}]\ncluster.initial_master_nodes: [{masters}]\n",
            heap=CLUSTER_ES_HEAP,
        )
        spec.cmdline_marker = ""  # every node's launcher looks alike; the pid file tells them apart
        spec.startup_timeout_s = 300  # three JVMs starting at once on two cores
        return spec

    def service_spec(self, name: str) -> ProcessSpec:
        service, _, replica = name.rpartition("-")
        if service in SERVICES and replica.isdigit():
            return self.local.service_spec(service, int(replica))
        return self.local.service_spec(name)

    def spec(self, name: str) -> ProcessSpec:
        kind, _, number = name.rpartition("-")
        if name == S3_BALANCER:
            return self.balancer_spec()
        if kind == "nats":
            return self.nats_spec(int(number))
        if kind == "minio":
            return self.minio_spec(int(number))
        if kind == "elasticsearch":
            return self.es_spec(int(number))
        return self.service_spec(name)

    # --- whole cluster ------------------------------------------------------------
    def up(self, services: tuple[str, ...] = SERVICES) -> list[StartResult]:
        """Start every node (each tier's nodes at once: they wait for each other), then the services."""
        self.local.home.mkdir(parents=True, exist_ok=True)
        ensure_signing_keys(self.settings.resolved_jwt_private_key_file, self.settings.resolved_jwt_public_key_file)
        self.local.install(["nats", "minio", "elasticsearch"])
        results: list[StartResult] = []
        for tier in (self.nats_names(), self.minio_names(), [S3_BALANCER], self.es_names()):
            results += _start_together([self.spec(name) for name in tier])
        self.wait_for_jetstream()
        names = self.service_names(services)
        # Replica 1 of every service in order (accounts makes the key buckets first), then replica 2 of each.
        for replica_names in (names[0::SERVICE_REPLICAS], names[1::SERVICE_REPLICAS]):
            results += [start(self.spec(name)) for name in replica_names]
        asyncio.run(replicate_streams(self.settings, STREAM_REPLICAS))
        return results

    def wait_for_jetstream(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(http_ok(f"http://127.0.0.1:{self.ports.nats_monitor(self.settings, n)}/healthz")() for n in (1,)):
                if _meta_leader(self.settings, self.ports):
                    return
            time.sleep(0.5)
        raise LaunchError(f"the NATS cluster elected no JetStream meta leader within {timeout_s:.0f}s")

    def known(self, name: str) -> ProcessSpec | None:
        """A spec good enough to stop or inspect ``name``, with its own stop grace; nothing is installed."""
        if not (self.local.run_dir / f"{name}.pid").exists():
            return None
        return ProcessSpec(
            name=name,
            argv=[],
            health=lambda: False,
            run_dir=self.local.run_dir,
            log_dir=self.local.log_dir,
            stop_grace_s=STOP_GRACE_S[_kind(name)],
        )

    def running(self) -> bool:
        return any(self.known(name) is not None for name in self.stop_order())

    def down(self, on_stopped: Callable[[str, float], None] | None = None) -> list[str]:
        """Stop in order: every service replica, then Elasticsearch, the balancer, MinIO, NATS.
        Each gets its own grace on SIGTERM (``STOP_GRACE_S``) before SIGKILL."""
        stopped = []
        for name in self.stop_order():
            spec = self.known(name)
            began = time.monotonic()
            if spec is not None and stop(spec):
                stopped.append(name)
                if on_stopped:
                    on_stopped(name, time.monotonic() - began)
        return stopped

    def pid(self, name: str) -> int | None:
        spec = self.known(name)
        return running_pid(spec) if spec else None

    def status(self) -> ClusterStatus:
        return cluster_status(self)


def _start_together(specs: list[ProcessSpec]) -> list[StartResult]:
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        return list(pool.map(start, specs))


def _get_json(url: str, timeout: float = 2.0) -> Any:
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return response.json()


def _meta_leader(settings: Settings, ports: ClusterPorts) -> str | None:
    for node in range(1, NATS_NODES + 1):
        jsz = _get_json(f"http://127.0.0.1:{ports.nats_monitor(settings, node)}/jsz")
        leader = (jsz or {}).get("meta_cluster", {}).get("leader")
        if leader:
            return str(leader)
    return None


async def replicate_streams(settings: Settings, replicas: int) -> list[str]:
    """Scale every stream of the account (the event stream, the KV buckets) to ``replicas``."""
    import nats

    nc = await nats.connect(settings.nats_servers, name="mam-cluster-launcher", connect_timeout=5)
    scaled = []
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            config = info.config
            if (config.num_replicas or 1) < replicas:
                config.num_replicas = replicas
                await js.update_stream(config)
                scaled.append(str(config.name))
    finally:
        await nc.close()
    return scaled


# --- status ----------------------------------------------------------------------
@dataclass(frozen=True)
class NodeStatus:
    name: str
    pid: int | None
    healthy: bool
    role: str  # leader/follower, master, drive state…


@dataclass(frozen=True)
class ClusterStatus:
    nodes: list[NodeStatus]
    summary: list[str]


def cluster_status(cluster: ClusterStack) -> ClusterStatus:
    s, p = cluster.settings, cluster.ports
    nodes: list[NodeStatus] = []
    summary: list[str] = []
    # NATS: who leads the event stream (and the meta layer), per node.
    stream_leader, meta_leader = "", ""
    stream_replicas: list[dict[str, Any]] = []
    for node in range(1, NATS_NODES + 1):
        jsz = _get_json(f"http://127.0.0.1:{p.nats_monitor(s, node)}/jsz?streams=true&accounts=true")
        if not jsz:
            continue
        meta_leader = meta_leader or str(jsz.get("meta_cluster", {}).get("leader") or "")
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                cluster_view = stream.get("cluster") or {}
                peers = {r.get("name") for r in cluster_view.get("replicas") or []}
                # Each node lists the peers other than itself: the leader's own view is the one.
                if stream.get("name") == s.event_stream and cluster_view.get("leader"):
                    if cluster_view["leader"] not in peers or not stream_leader:
                        stream_leader = cluster_view["leader"]
                        stream_replicas = cluster_view.get("replicas") or []
    lag = {r.get("name"): r for r in stream_replicas}
    for node in range(1, NATS_NODES + 1):
        name = f"nats-{node}"
        server = f"mam-{name}"
        healthy = http_ok(f"http://127.0.0.1:{p.nats_monitor(s, node)}/healthz")()
        role = "stream leader" if server == stream_leader else "follower"
        if server in lag:
            role += f" (current={lag[server].get('current')}, lag={lag[server].get('lag', 0)})"
        if server == meta_leader:
            role += ", meta leader"
        nodes.append(NodeStatus(name, cluster.pid(name), healthy, role if healthy else "down"))
    summary.append(f"NATS stream {s.event_stream}: leader {stream_leader or '(none)'}, {1 + len(lag)} replicas")
    # MinIO: each server's liveness and, through the admin API, every drive's state.
    drives = _minio_drives(s, p)
    for number in range(1, MINIO_SERVERS + 1):
        minio = f"minio-{number}"
        healthy = http_ok(f"http://127.0.0.1:{p.minio_api(number)}/minio/health/live")()
        state = drives.get(f"127.0.0.1:{p.minio_api(number)}", "unknown")
        nodes.append(NodeStatus(minio, cluster.pid(minio), healthy, f"drive {state}" if healthy else "down"))
    quorum = http_ok(f"http://127.0.0.1:{s.minio_port}/minio/health/cluster")()
    nodes.append(NodeStatus(S3_BALANCER, cluster.pid(S3_BALANCER), quorum, "write quorum" if quorum else "no quorum"))
    # Elasticsearch: the cluster's health and which node is master.
    master = ""
    health: dict[str, Any] = {}
    for node in range(1, ES_NODES + 1):
        url = f"http://127.0.0.1:{p.es_http(s, node)}"
        health = health or _get_json(f"{url}/_cluster/health") or {}
        cat = _get_json(f"{url}/_cat/master?format=json") or []
        master = master or (cat[0].get("node", "") if cat else "")
    for node in range(1, ES_NODES + 1):
        name = f"elasticsearch-{node}"
        healthy = _get_json(f"http://127.0.0.1:{p.es_http(s, node)}/_cluster/health?local=true") is not None
        role = "master" if master == f"mam-{name}" else "data"
        nodes.append(NodeStatus(name, cluster.pid(name), healthy, role if healthy else "down"))
    summary.append(
        f"Elasticsearch: {health.get('status', 'unreachable')}, {health.get('number_of_nodes', 0)} nodes, "
        f"{health.get('unassigned_shards', '?')} unassigned shards"
    )
    for name in cluster.service_names():
        spec = cluster.service_spec(name)
        nodes.append(NodeStatus(name, cluster.pid(name), spec.health(), "replica"))
    return ClusterStatus(nodes, summary)


def _minio_drives(settings: Settings, ports: ClusterPorts) -> dict[str, str]:
    """endpoint → drive state, from MinIO's admin API (``server_info``) through any live server."""
    import json

    from minio.credentials.providers import StaticProvider
    from minio.minioadmin import MinioAdmin
    from urllib3 import PoolManager, Timeout

    for server in range(1, MINIO_SERVERS + 1):
        admin = MinioAdmin(
            endpoint=f"127.0.0.1:{ports.minio_api(server)}",
            credentials=StaticProvider(settings.s3_access_key, settings.s3_secret_key.get_secret_value()),
            secure=False,
            # A status must answer in seconds even with a server down (the default waits minutes).
            http_client=PoolManager(timeout=Timeout(connect=2, read=5), retries=False),
        )
        try:
            info = json.loads(admin.info())
        except Exception:
            continue
        states: dict[str, str] = {}
        for entry in info.get("servers", []):
            for drive in entry.get("drives", []):
                endpoint = str(drive.get("endpoint", ""))
                host = endpoint.split("//", 1)[-1].split("/", 1)[0]
                states[host] = str(drive.get("state", "unknown"))
        return states
    return {}


def data_dirs(home: Path) -> list[Path]:
    """Every folder the cluster writes (for `make clean` and the tests' fresh start)."""
    names = [*ClusterStack.nats_names(), *ClusterStack.minio_names(), *ClusterStack.es_names(), S3_BALANCER]
    return [home / name for name in names]
