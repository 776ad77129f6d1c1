"""Scratch space of a service replica: one folder, swept when the replica starts.

Every temporary file a service writes — an upload being received, an original
being transcoded, keyframes being read — lives under
``<work_dir>/<service>-<port>`` (``work_dir`` defaults to ``<home>/work``),
never in the system's ``/tmp``. A process killed in the middle of a job
(``kill -9``, OOM, power loss) cannot clean up after itself, so the replica
empties its folder when it starts, before it takes any work: nothing is left
behind for ever. Replicas on one machine differ by port, so they never sweep
each other's files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shared.settings import Settings


def work_dir_for(settings: Settings, service: str, base: Path | None = None) -> Path:
    """This replica's scratch folder: ``<base>/<service>-<port>``, absolute.

    ``base`` overrides ``settings.work_dir`` (itself ``<home>/work`` when unset).
    """
    port = int(getattr(settings, f"{service}_port"))
    root = base or settings.work_dir or settings.home / "work"
    return (root / f"{service}-{port}").resolve()


def fresh_work_dir(settings: Settings, service: str, base: Path | None = None) -> Path:
    """The replica's scratch folder, emptied of a crashed run's leftovers and created.

    Call it once at start-up, before the replica takes any job: whatever is
    there then belongs to no running job of this replica.
    """
    folder = work_dir_for(settings, service, base)
    sweep(folder)
    folder.mkdir(parents=True, mode=0o700)
    return folder


def sweep(folder: Path) -> None:
    """Remove ``folder`` and everything in it; a missing folder is fine."""
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
