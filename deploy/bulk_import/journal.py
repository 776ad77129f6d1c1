"""The import journal: what happened to each file, written after every change.

An import killed at row N starts again at row N: rows already stored are
skipped without a request, and a row killed mid-upload finds its tus upload URL
here and resumes from the server's offset (tus ``HEAD``). A file whose size or
modification time changed since is treated as a new file.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Entry:
    # "uploading" (URL known, bytes may be missing), "sent" (every byte sent, waiting for the
    # server's verdict), "stored" (an asset), "rejected" (the server's reason; retried next run).
    state: str
    size: int
    mtime_ns: int
    url: str = ""
    sha256: str = ""
    asset_id: str = ""
    duplicate: bool = False
    reason_vi: str = ""
    reason_en: str = ""


def state_dir() -> Path:
    """The user's state folder (XDG): journals of imports and the watch folder."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hdnd-mam"


def journal_path_for(folder: Path, sheet: Path, url: str) -> Path:
    """One journal per (folder, sheet, archive), so two imports never share one."""
    key = "\0".join((str(folder.resolve()), str(sheet.resolve()), url.rstrip("/")))
    return state_dir() / "imports" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


class Journal:
    """A JSON file of entries by file name, rewritten atomically (temp file, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        try:
            raw: dict[str, Any] = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raw = {}
        except (OSError, ValueError):
            # A journal cut short by a crash of the machine: start afresh, the archive
            # itself still recognises every stored file (content-addressed).
            raw = {}
        for name, values in raw.get("entries", {}).items():
            try:
                self._entries[name] = Entry(**values)
            except TypeError:
                continue

    def get(self, name: str) -> Entry | None:
        with self._lock:
            return self._entries.get(name)

    def current(self, name: str, path: Path) -> Entry | None:
        """The entry for ``name`` if it still describes the file at ``path``."""
        entry = self.get(name)
        if entry is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        return entry if (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns) else None

    def put(self, name: str, entry: Entry) -> None:
        with self._lock:
            self._entries[name] = entry
            self._write()

    def forget(self, name: str) -> None:
        with self._lock:
            if self._entries.pop(name, None) is not None:
                self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"entries": {name: asdict(entry) for name, entry in self._entries.items()}}, ensure_ascii=False
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
