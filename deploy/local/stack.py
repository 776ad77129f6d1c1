"""The local stack: which servers and services run, with what config, where.

Everything lives under ``settings.home``: one sub-folder of data per server,
``run/`` for pid files and ``logs/`` for logs. Ports come from settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from deploy.local import installers
from deploy.local.processes import HealthCheck, LaunchError, ProcessSpec, StartResult, http_ok, running_pid, start, stop
from shared.auth import ensure_signing_keys
from shared.settings import Settings

SERVERS = ("nats", "minio", "seaweedfs", "elasticsearch")
# In the order they start: accounts first, so its key pair and accounts exist before the rest.
SERVICES = ("accounts", "ingest", "search", "transcoder", "tagger", "catalogue", "reels", "web")
# Started only when named (``mam up --services …,watch``): the watch folder (MAM_WATCH_DIR).
OPTIONAL_SERVICES = ("watch",)


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``MAM_*`` variables, so child processes see the same config.

    Unset optional settings (``None``) are left out: the child then reads its
    own default, where ``str(None)`` would be read as the text "None" (a path
    ``None/`` in the working folder, for ``MAM_TRANSCODER_WORK_DIR``).
    """
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[f"MAM_{name.upper()}"] = str(value)
    return env


def _es_healthy(url: str) -> bool:
    try:
        response = httpx.get(f"{url}/_cluster/health", timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("status") in {"green", "yellow"}


def _all(*checks: HealthCheck) -> HealthCheck:
    def check() -> bool:
        return all(c() for c in checks)

    return check


def _user_namespace_prefix() -> list[str]:
    """Elasticsearch refuses to run as root. When we are root, run it in a user
    namespace where it is an ordinary uid: the files it writes still belong to
    root outside, so nothing needs chown and the data folder can live anywhere.
    """
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    probe = (
        subprocess.run(
            [unshare or "unshare", "--user", "--map-user=1000", "--map-group=1000", "true"], capture_output=True
        )
        if unshare
        else None
    )
    if probe is None or probe.returncode != 0:
        raise LaunchError(
            "Elasticsearch cannot run as root and `unshare --user` is not available here: "
            "run the launcher as an ordinary user"
        )
    return [unshare or "unshare", "--user", "--map-user=1000", "--map-group=1000", "--"]


@dataclass
class LocalStack:
    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.home.resolve()

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def _spec(self, name: str, argv: list[str], health: HealthCheck, **options: Any) -> ProcessSpec:
        """A server's process in this stack's run and log folders (``options``: ProcessSpec's own)."""
        return ProcessSpec(name=name, argv=argv, health=health, run_dir=self.run_dir, log_dir=self.log_dir, **options)

    # --- servers -----------------------------------------------------------------
    def nats_spec(
        self,
        name: str = "nats",
        port: int | None = None,
        monitor_port: int | None = None,
        sync_always: bool = True,
        cluster: str = "",
    ) -> ProcessSpec:
        """NATS with JetStream. ``sync_interval: always`` fsyncs every write, since
        an acknowledged event must survive a crash of the machine. ``cluster``: a
        ``cluster {…}`` block making this server one node of a cluster."""
        port = port or self.settings.nats_port
        monitor_port = monitor_port or self.settings.nats_monitor_port
        data = self.home / name
        data.mkdir(parents=True, exist_ok=True)
        sync = "  sync_interval: always\n" if sync_always else ""
        conf = data / "nats.conf"
        conf.write_text(
            f"server_name: mam-{name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\n"
            f'max_payload: 8MB\njetstream {{\n  store_dir: "{data / "jetstream"}"\n{sync}}}\n{cluster}'
        )
        return self._spec(
            name,
            [str(installers.nats_server()), "-c", str(conf)],
            http_ok(f"http://127.0.0.1:{monitor_port}/healthz?js-enabled-only=true"),
            startup_timeout_s=30,
            stop_grace_s=10,
            cmdline_marker=str(conf),
        )

    def minio_spec(self) -> ProcessSpec:
        s = self.settings
        data = self.home / "minio"
        data.mkdir(parents=True, exist_ok=True)
        return self._spec(
            "minio",
            [
                str(installers.minio(s.cache_dir)),
                "server",
                str(data),
                "--quiet",
                "--address",
                f"127.0.0.1:{s.minio_port}",
                "--console-address",
                f"127.0.0.1:{s.minio_console_port}",
            ],
            http_ok(f"http://127.0.0.1:{s.minio_port}/minio/health/ready"),
            env={
                "MINIO_ROOT_USER": s.s3_access_key,
                "MINIO_ROOT_PASSWORD": s.s3_secret_key.get_secret_value(),
                "MINIO_UPDATE": "off",
            },
            startup_timeout_s=60,
            stop_grace_s=15,
            cmdline_marker=str(data),
        )

    def seaweedfs_spec(self) -> ProcessSpec:
        """SeaweedFS (master + volume + filer + S3 gateway in one process), the
        second real S3 server the object-store adapter is tested against."""
        s = self.settings
        data = self.home / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "mam",
                    "credentials": [{"accessKey": s.s3_access_key, "secretKey": s.s3_secret_key.get_secret_value()}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        s3_config = data / "s3.json"
        s3_config.write_text(json.dumps(identities))
        s3_config.chmod(0o600)
        return self._spec(
            "seaweedfs",
            [
                str(installers.weed()),
                "server",
                f"-dir={data}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={s.seaweed_master_port}",
                f"-volume.port={s.seaweed_volume_port}",
                f"-filer.port={s.seaweed_filer_port}",
                "-s3",
                f"-s3.port={s.seaweed_s3_port}",
                f"-master.port.grpc={s.seaweed_master_grpc_port}",
                f"-volume.port.grpc={s.seaweed_volume_grpc_port}",
                f"-filer.port.grpc={s.seaweed_filer_grpc_port}",
                f"-s3.port.grpc={s.seaweed_s3_grpc_port}",
                f"-s3.config={s3_config}",
                "-master.volumeSizeLimitMB=1024",
                "-volume.max=0",
                # Extra catalog listeners on fixed default ports would clash between stacks.
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ],
            _all(
                http_ok(f"http://127.0.0.1:{s.seaweed_s3_port}/healthz"),
                http_ok(f"http://127.0.0.1:{s.seaweed_volume_port}/status"),
            ),
            startup_timeout_s=60,
            stop_grace_s=15,
            cmdline_marker=str(data),
        )

    def elasticsearch_spec(
        self,
        name: str = "elasticsearch",
        http_port: int | None = None,
        transport_port: int | None = None,
        discovery: str = "discovery.type: single-node\n",
        heap: str | None = None,
    ) -> ProcessSpec:
        """One Elasticsearch node; ``discovery`` (the single-node default, or a cluster's
        seed hosts and initial masters) decides whether it joins others."""
        s = self.settings
        http_port = http_port or s.es_port
        transport_port = transport_port or s.es_transport_port
        es_home = installers.elasticsearch(s.cache_dir, s.es_version)
        base = self.home / name
        conf, data, logs, tmp = (base / d for d in ("config", "data", "logs", "tmp"))
        for folder in (data, logs, tmp):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(
            es_home / "config", conf, dirs_exist_ok=True, ignore=shutil.ignore_patterns("elasticsearch.yml")
        )
        (conf / "elasticsearch.yml").write_text(
            f"cluster.name: mam-local\nnode.name: mam-{name}\n"
            f"network.host: 127.0.0.1\nhttp.port: {http_port}\ntransport.port: {transport_port}\n"
            f"{discovery}"
            # Loopback only, so no TLS/auth; containers and production enable security.
            "xpack.security.enabled: false\n"
            f"path.data: {data}\npath.logs: {logs}\n"
            # A developer disk that is 90% full must not turn indices read-only.
            "cluster.routing.allocation.disk.threshold_enabled: false\n"
            "action.destructive_requires_name: true\n"
        )
        heap_opts = conf / "jvm.options.d" / "heap.options"
        heap_opts.parent.mkdir(exist_ok=True)
        heap = heap or s.es_heap
        heap_opts.write_text(f"-Xms{heap}\n-Xmx{heap}\n")
        single = "single-node" in discovery
        return self._spec(
            name,
            [*_user_namespace_prefix(), str(es_home / "bin" / "elasticsearch")],
            # A cluster's node answers its health once the cluster has formed (the launcher
            # starts all nodes at once); a single node as soon as it is up.
            (lambda: _es_healthy(f"http://127.0.0.1:{http_port}"))
            if single
            else http_ok(f"http://127.0.0.1:{http_port}/_cluster/health?wait_for_nodes=ge(2)&timeout=1s"),
            env={
                "ES_JAVA_HOME": str(installers.java_home(21)),
                "ES_PATH_CONF": str(conf),
                "ES_TMPDIR": str(tmp),
                "ES_JAVA_OPTS": "",
            },
            startup_timeout_s=180,
            stop_grace_s=30,
            cmdline_marker="elasticsearch",
        )

    def server_spec(self, name: str) -> ProcessSpec:
        builders = {
            "nats": self.nats_spec,
            "minio": self.minio_spec,
            "seaweedfs": self.seaweedfs_spec,
            "elasticsearch": self.elasticsearch_spec,
        }
        if name not in builders:
            raise LaunchError(f"unknown server {name!r}; known: {', '.join(SERVERS)}")
        return builders[name]()

    # --- services ----------------------------------------------------------------
    def service_spec(self, name: str, replica: int = 1) -> ProcessSpec:
        """One service process; replica ``n > 1`` (the cluster profile) is named ``<name>-<n>``
        and listens on the service's port + ``cluster_replica_port_shift`` × (n - 1)."""
        # Every service serves /healthz on MAM_<NAME>_PORT (workers too).
        if name == "watch":
            return self.watch_spec()
        if name not in SERVICES:
            raise LaunchError(f"unknown service {name!r}; known: {', '.join((*SERVICES, *OPTIONAL_SERVICES))}")
        port = int(getattr(self.settings, f"{name}_port")) + self.settings.cluster_replica_port_shift * (replica - 1)
        repo_root = Path(__file__).resolve().parents[2]
        return self._spec(
            name if replica == 1 else f"{name}-{replica}",
            [sys.executable, "-m", f"services.{name}"],
            http_ok(f"http://127.0.0.1:{port}/readyz"),
            env={**settings_env(self.settings), f"MAM_{name.upper()}_PORT": str(port), "PYTHONPATH": str(repo_root)},
            cwd=repo_root,
            startup_timeout_s=60,
            stop_grace_s=10,
            cmdline_marker=f"services.{name}",
        )

    def watch_spec(self) -> ProcessSpec:
        """``mam watch`` on MAM_WATCH_DIR, uploading to this stack's ingest with MAM_WATCH_API_KEY;
        healthy while its heartbeat file is fresh."""
        from deploy.bulk_import.watch import heartbeat_fresh

        folder = self.settings.watch_dir
        if folder is None or self.settings.watch_api_key is None:
            raise LaunchError(
                "watch: set MAM_WATCH_DIR (the folder) and MAM_WATCH_API_KEY (an API key of a phóng viên)"
            )
        folder = folder.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        repo_root = Path(__file__).resolve().parents[2]
        return self._spec(
            "watch",
            [sys.executable, "-m", "deploy.cli", "watch", str(folder)],
            lambda: heartbeat_fresh(folder),
            env={**settings_env(self.settings), "PYTHONPATH": str(repo_root)},
            cwd=repo_root,
            startup_timeout_s=30,
            stop_grace_s=10,
            cmdline_marker=f"watch {folder}",
        )

    # --- whole stack -------------------------------------------------------------
    def install(self, servers: Iterable[str]) -> None:
        """Install everything the chosen servers and the media services need."""
        installers.debian_tool("ffmpeg")
        installers.debian_tool("ffprobe")
        installers.tesseract_vietnamese()
        installers.reel_fonts()  # the reel renderer's titles and captions
        for name in servers:
            self.server_spec(name)  # building a spec installs its binary

    def up(self, servers: Iterable[str] = SERVERS, services: Iterable[str] = SERVICES) -> list[StartResult]:
        self.home.mkdir(parents=True, exist_ok=True)
        # The key pair that signs access tokens: made before any service starts, so every
        # service finds the public key (the accounts service would make it too).
        ensure_signing_keys(self.settings.resolved_jwt_private_key_file, self.settings.resolved_jwt_public_key_file)
        self.install(servers)
        results = [start(self.server_spec(name)) for name in servers]
        results += [start(self.service_spec(name)) for name in services]
        return results

    def down(self) -> list[str]:
        """Stop services first (they hold connections), then servers."""
        stopped = []
        for name in (*OPTIONAL_SERVICES, *SERVICES, *reversed(SERVERS)):
            spec = self._known_spec(name)
            if spec is not None and stop(spec):
                stopped.append(name)
        return stopped

    def _known_spec(self, name: str) -> ProcessSpec | None:
        """A spec good enough to stop/inspect a process without installing anything."""
        if not (self.run_dir / f"{name}.pid").exists():
            return None
        return ProcessSpec(
            name=name, argv=[], health=lambda: False, run_dir=self.run_dir, log_dir=self.log_dir, stop_grace_s=30
        )

    def status(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for name in (*SERVERS, *SERVICES, *OPTIONAL_SERVICES):
            spec = self._known_spec(name)
            out[name] = running_pid(spec) if spec else None
        return out
