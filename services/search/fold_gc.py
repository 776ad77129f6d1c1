"""The cyclic garbage collector, run rarely while events are folded.

Folding allocates a few dicts per event, and a process folding a replay holds tens of
thousands of documents: with the default thresholds the collector keeps scanning them
all, ≈ 40 % of a replay's CPU time (measured: 18.7 s vs 11.3 s with it off, 122 753
events). A fold makes no reference cycles, so reference counting frees nearly
everything anyway.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# The collector's thresholds while anything folds: young collections every 50 000
# allocations instead of 700, full ones practically never.
FOLDING_THRESHOLDS = (50_000, 20, 1000)
_folding = 0
_before: tuple[int, int, int] = gc.get_threshold()


@contextlib.contextmanager
def rare_collections() -> Iterator[None]:
    """Rare collections (the whole process) while at least one fold runs, then as before.

    Counted, not nested: folds of concurrent tasks start and end in any order, and the
    thresholds come back only when the last one ends."""
    global _folding, _before
    if _folding == 0:
        _before = gc.get_threshold()
        gc.set_threshold(*FOLDING_THRESHOLDS)
    _folding += 1
    try:
        yield
    finally:
        _folding -= 1
        if _folding == 0:
            gc.set_threshold(*_before)
