"""The one helper for a service replica's scratch folder (shared/workdirs.py)."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings
from shared.workdirs import fresh_work_dir, work_dir_for


def test_each_replica_gets_its_own_folder_under_the_home_work_dir_by_service_and_port(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, ingest_port=18401, tagger_port=18404)
    assert work_dir_for(settings, "ingest") == tmp_path.resolve() / "work" / "ingest-18401"
    assert work_dir_for(settings, "tagger") == tmp_path.resolve() / "work" / "tagger-18404"
    elsewhere = Settings(home=tmp_path, work_dir=tmp_path / "scratch", ingest_port=18401)
    assert work_dir_for(elsewhere, "ingest") == tmp_path.resolve() / "scratch" / "ingest-18401"
    assert work_dir_for(settings, "transcoder", tmp_path / "big-disk").parent == tmp_path.resolve() / "big-disk"


def test_a_fresh_work_dir_is_emptied_of_a_crashed_runs_leftovers_and_spares_other_replicas(tmp_path: Path) -> None:
    mine = Settings(home=tmp_path, tagger_port=18404)
    other = Settings(home=tmp_path, tagger_port=18504)
    leftover = work_dir_for(mine, "tagger") / "mam-tagger-crashed" / "frames" / "kf001.png"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 1000)
    neighbour = work_dir_for(other, "tagger") / "mam-tagger-running" / "original"
    neighbour.parent.mkdir(parents=True)
    neighbour.write_bytes(b"y")

    folder = fresh_work_dir(mine, "tagger")

    assert folder.is_dir() and not any(folder.iterdir())
    assert neighbour.exists()
    assert fresh_work_dir(mine, "tagger") == folder  # starting again is fine
