"""The reel renderer: a pure media pipeline on local files (no servers).

:func:`render_reel` turns a :class:`ReelPlan` into an MP4 with chapters, a
WebVTT chapters file and EBU R128 loudness; the reels service wraps it with
S3, events and progress. See ``plan.py`` for the contract.
"""

from services.reels.render.pipeline import LocalSegmentCache, choose_target, probe_source, render_reel, segment_key
from services.reels.render.plan import (
    Chapter,
    Profile,
    ReelPlan,
    RenderRefused,
    RenderResult,
    Segment,
    SegmentCache,
    Source,
    SourceProbe,
    Target,
)

__all__ = [
    "Chapter",
    "LocalSegmentCache",
    "Profile",
    "ReelPlan",
    "RenderRefused",
    "RenderResult",
    "Segment",
    "SegmentCache",
    "Source",
    "SourceProbe",
    "Target",
    "choose_target",
    "probe_source",
    "render_reel",
    "segment_key",
]
