"""``make bench``: run every ``tests/bench/bench_*.py``, print a table, write results.json.

Each module exposes ``run(settings) -> list[dict]`` returning rows
``{"name", "ours", "baseline", "ratio", "unit"}`` (``baseline``/``ratio`` None
where nothing compares). ``python -m tests.bench bench_search`` runs one; its rows
replace that benchmark's rows in results.json and the others are kept. The bench
stack uses the test stack's ports, started by the project's launcher.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from deploy.local.stack import SERVERS, LocalStack
from tests.conftest import test_settings

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    only = set(argv)
    settings = test_settings()
    stack = LocalStack(settings)
    chosen = [p.stem for p in sorted(HERE.glob("bench_*.py")) if not only or p.stem in only]
    loaded = {name: importlib.import_module(f"tests.bench.{name}") for name in chosen}
    # A bench with OWN_SERVERS starts what it measures itself (the cluster, on the same ports):
    # it runs after the others, once the single-node stack is down.
    modules = dict(sorted(loaded.items(), key=lambda item: bool(getattr(item[1], "OWN_SERVERS", False))))
    rows: list[dict[str, Any]] = []
    failed = False
    try:
        if not all(getattr(m, "OWN_SERVERS", False) for m in modules.values()):
            stack.up(servers=SERVERS, services=())  # inside the try: a half-started stack is stopped too
        for name, module in modules.items():
            if getattr(module, "OWN_SERVERS", False):
                stack.down()  # its servers take the same ports
            path = HERE / f"{name}.py"
            print(f"… {path.stem}", flush=True)
            try:
                rows.extend({**row, "bench": path.stem} for row in module.run(stack))
            except Exception:
                failed = True
                traceback.print_exc()
    finally:
        stack.down()
    width = max((len(r["name"]) for r in rows), default=10)
    print(f"\n{'name':<{width}}  {'ours':>12}  {'baseline':>12}  {'ratio':>7}  unit")
    for r in rows:
        base = f"{r['baseline']:.3f}" if r.get("baseline") is not None else "-"
        ratio = f"{r['ratio']:.3f}" if r.get("ratio") is not None else "-"
        print(f"{r['name']:<{width}}  {r['ours']:>12.3f}  {base:>12}  {ratio:>7}  {r['unit']}")
    (HERE / "results.json").write_text(json.dumps(_merged(rows), indent=2, ensure_ascii=False) + "\n")
    return 1 if failed else 0


def _merged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's rows, plus earlier rows of benchmarks this run did not repeat."""
    path = HERE / "results.json"
    earlier = json.loads(path.read_text()) if path.exists() else []
    ran = {r["bench"] for r in rows}
    kept = [r for r in earlier if r.get("bench") not in ran]
    return sorted(kept + rows, key=lambda r: (str(r.get("bench")), r["name"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
