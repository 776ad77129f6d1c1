"""Reel renderer: a 10-segment mixed-source reel through ``render_reel`` vs a
bare ffmpeg script doing the same normalise + join on the same files
(interleaved, same warm-up); speed in × realtime; the re-render after one
caption changed as a fraction of the full render; the renderer's peak RSS on
a long reel (it streams: memory must not grow with the reel's length).

Knobs: ``MAM_BENCH_REEL_PROFILE=broadcast`` (default draft, 960×540),
``MAM_BENCH_REEL_ROUNDS`` (default 2), ``MAM_BENCH_REEL_LONG_S`` (default 120;
1800 for the issue's 30-minute reel). Runs without servers too:
``python -m tests.bench.bench_reels``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from services.reels.render import (
    LocalSegmentCache,
    Profile,
    ReelPlan,
    Segment,
    Source,
    Target,
    choose_target,
    probe_source,
    render_reel,
)
from tests.reels_media import make_long_clip, make_sources

TITLE = "Tổng kết hoạt động HĐND tỉnh năm 2023"
SUBTITLE = "Kỳ họp thứ mười hai — HĐND tỉnh khóa X"
TITLE_S = 3.0
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def ten_segments(sources: dict[str, Source]) -> tuple[Segment, ...]:
    return (
        Segment(sources["hd50"], 0.4, 1.9, "Khai mạc kỳ họp thứ mười hai"),
        Segment(sources["hd25"], 1.0, 2.5, "Báo cáo kết quả giám sát"),
        Segment(sources["ntsc"], 0.3, 1.8, "Đại biểu phát biểu"),
        Segment(sources["portrait"], 2.0, 3.5, "Cử tri ghi bằng điện thoại"),
        Segment(sources["silent"], 0.2, 1.2, ""),
        Segment(sources["shortaudio"], 2.5, 4.0, "Tiếng ngắn hơn hình"),
        Segment(sources["photo"], 0.0, 1.5, "Ảnh tư liệu"),
        Segment(sources["audio"], 0.2, 1.7, "Ghi âm chất vấn"),
        Segment(sources["hd50"], 2.0, 3.5, "Bế mạc"),
        Segment(sources["ntsc"], 2.0, 3.5, "Tổng kết"),
    )


# ------------------------------------------------------------ the bare script


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], capture_output=True, check=True
    ).stdout
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def _ff(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-y", *args], capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stderr


def bare_ffmpeg_reel(segments: tuple[Segment, ...], title: str, target: Target, out_dir: Path, draft: bool) -> Path:
    """What a careful editor's ffmpeg script would do for the same reel: per
    segment a decode cut (-ss/-t), scale+pad, fps, caption by drawtext from a
    file, 48 kHz stereo padded/trimmed to length, loudnorm two-pass, PCM in
    MOV; a title card; then a concat demuxer join copying the video and
    encoding AAC. No cache, no checks, no progress, no residual-gain pass."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fps = f"{target.fps.numerator}/{target.fps.denominator}"
    w, h, sr = target.width, target.height, target.sample_rate
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23" if draft else "18", "-pix_fmt", "yuv420p"]
    x264 += ["-g", str(round(2 * target.fps)), "-r", fps]
    shutil.copyfile(FONT, out_dir / "font.ttf")
    parts: list[Path] = []
    title_frames = round(TITLE_S * target.fps)
    (out_dir / "title.txt").write_text(title)
    _ff(
        "-filter_complex",
        f"color=c=0x0b2545:s={w}x{h}:r={fps}:d={TITLE_S},drawtext=fontfile=font.ttf:textfile=title.txt"
        f":expansion=none:fontsize={h // 13}:fontcolor=white:x=(w-text_w)/2:y=h/2-text_h,"
        f"trim=end_frame={title_frames}[v];anullsrc=r={sr}:cl=stereo,atrim=end_sample={round(TITLE_S * sr)}[a]",
        "-map", "[v]", "-map", "[a]", *x264, "-c:a", "pcm_s16le", str(out_dir / "title.mov"),
        cwd=out_dir,
    )  # fmt: skip
    parts.append(out_dir / "title.mov")
    probes: dict[Path, dict[str, Any]] = {}
    for n, seg in enumerate(segments):
        if seg.source.path not in probes:
            probes[seg.source.path] = _ffprobe(seg.source.path)
        streams = probes[seg.source.path]["streams"]
        has_audio = any(s["codec_type"] == "audio" for s in streams) and seg.source.kind != "photo"
        dur = seg.out_s - seg.in_s
        frames = round(dur * target.fps)
        samples = round(frames * sr / target.fps)
        (out_dir / f"cap{n}.txt").write_text(seg.caption)
        caption = (
            f",drawtext=fontfile=font.ttf:textfile=cap{n}.txt:expansion=none:fontsize={h // 22}:fontcolor=white"
            f":box=1:boxcolor=black@0.6:x={w // 18}:y=h-text_h-{h // 14}"
            if seg.caption
            else ""
        )
        fit = f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1"
        if seg.source.kind == "photo":
            inputs = ["-framerate", fps, "-loop", "1", "-t", f"{dur}", "-i", str(seg.source.path)]
            video = f"[0:v]{fit},format=yuv420p,trim=end_frame={frames}{caption}[v]"
        elif seg.source.kind == "audio":
            inputs = ["-ss", f"{seg.in_s}", "-t", f"{dur}", "-i", str(seg.source.path)]
            video = f"color=c=0x0b2545:s={w}x{h}:r={fps}:d={dur},trim=end_frame={frames}{caption}[v]"
        else:
            inputs = ["-ss", f"{seg.in_s}", "-t", f"{dur + 0.1}", "-i", str(seg.source.path)]
            video = f"[0:v]fps={fps},{fit},format=yuv420p,trim=end_frame={frames}{caption}[v]"
        if has_audio:
            head = f"[0:a]aresample={sr},aformat=channel_layouts=stereo,apad,atrim=end_sample={samples}"
            measured = _ff(*inputs, "-filter_complex", f"{head},loudnorm=I=-23:TP=-2:print_format=json[a]",
                           "-map", "[a]", "-f", "null", "-")  # fmt: skip
            m = json.loads(measured[measured.rindex("{") : measured.rindex("}") + 1])
            audio = (
                f"{head},loudnorm=I=-23:TP=-2:measured_I={m['input_i']}:measured_TP={m['input_tp']}"
                f":measured_LRA={m['input_lra']}:measured_thresh={m['input_thresh']}:offset={m['target_offset']}"
                f":linear=true,aresample={sr},apad,atrim=end_sample={samples}[a]"
            )
        else:
            audio = f"anullsrc=r={sr}:cl=stereo,atrim=end_sample={samples}[a]"
        part = out_dir / f"part{n}.mov"
        _ff(*inputs, "-filter_complex", f"{video};{audio}", "-map", "[v]", "-map", "[a]", *x264,
            "-c:a", "pcm_s16le", str(part), cwd=out_dir)  # fmt: skip
        parts.append(part)
    listing = out_dir / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    out = out_dir / "reel.mp4"
    _ff("-f", "concat", "-safe", "0", "-i", str(listing), "-c:v", "copy", "-c:a", "aac", "-b:a", "192k",
        "-movflags", "+faststart", str(out))  # fmt: skip
    return out


# ------------------------------------------------------------ measurements


def _cpu() -> float:
    """CPU of this process and of every child it reaped (the ffmpegs)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _render(plan: ReelPlan, work: Path, cache: LocalSegmentCache) -> tuple[float, float]:
    """(wall s, CPU s) of one render."""
    cpu, began = _cpu(), time.perf_counter()
    asyncio.run(render_reel(plan, work, cache, lambda _p: None, timeout_s=3600))
    return time.perf_counter() - began, _cpu() - cpu


def _peak_rss_child(long_s: float, folder: Path) -> tuple[float, float]:
    """(renderer MiB, largest ffmpeg MiB) for a reel of ``long_s`` seconds,
    rendered in a fresh process so nothing else counts towards its peak."""
    script = (
        "import asyncio, json, resource, sys\n"
        "from pathlib import Path\n"
        "from services.reels.render import LocalSegmentCache, Profile, ReelPlan, Segment, Source, render_reel\n"
        "from tests.reels_media import make_long_clip\n"
        "folder, total = Path(sys.argv[1]), float(sys.argv[2])\n"
        "clip = make_long_clip(folder, total)\n"
        "n = 10\n"
        "segs = tuple(Segment(clip, i * total / n, (i + 1) * total / n, f'Phần {i + 1}') for i in range(n))\n"
        "plan = ReelPlan('Phim dài', '', segs, Profile.DRAFT)\n"
        "asyncio.run(render_reel(plan, folder / 'work', LocalSegmentCache(folder / 'cache'), lambda p: None,"
        " timeout_s=7200))\n"
        "me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps([me, kids]))\n"
    )
    # Generate the clip first (its ffmpeg must not count as the renderer's child).
    make_long_clip(folder, long_s)
    out = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(long_s)], capture_output=True, text=True, check=True
    ).stdout
    me, kids = json.loads(out.strip().splitlines()[-1])
    return float(me), float(kids)


def run(_stack: object = None) -> list[dict[str, Any]]:
    profile = Profile(os.environ.get("MAM_BENCH_REEL_PROFILE", "draft"))
    rounds = int(os.environ.get("MAM_BENCH_REEL_ROUNDS", "2"))
    long_s = float(os.environ.get("MAM_BENCH_REEL_LONG_S", "120"))
    with tempfile.TemporaryDirectory(prefix="mam-bench-reels-") as tmp:
        base = Path(tmp)
        sources = make_sources(base / "src")
        segments = ten_segments(sources)
        plan = ReelPlan(TITLE, SUBTITLE, segments, profile)
        target = choose_target(plan, [probe_source(s.source) for s in segments])
        reel_s = TITLE_S + sum(s.out_s - s.in_s for s in segments)
        # Warm-up: page cache, fontconfig, ffmpeg's shared libraries — for both alike.
        bare_ffmpeg_reel(segments[:1], TITLE, target, base / "warm-bare", profile is Profile.DRAFT)
        _render(ReelPlan(TITLE, SUBTITLE, segments[:1], profile), base / "warm", LocalSegmentCache(base / "wc"))
        # Wall time on a shared machine is noisy: CPU seconds (ours: this
        # process + its ffmpegs; bare: its ffmpegs) are reported beside it.
        ours_t, bare_t, edit_t, ours_cpu, bare_cpu, edit_cpu = [], [], [], [], [], []
        for r in range(rounds):
            cache = LocalSegmentCache(base / f"cache{r}")
            wall, cpu = _render(plan, base / f"ours{r}", cache)
            ours_t.append(wall)
            ours_cpu.append(cpu)
            cpu, began = _cpu(), time.perf_counter()
            bare_ffmpeg_reel(segments, TITLE, target, base / f"bare{r}", profile is Profile.DRAFT)
            bare_t.append(time.perf_counter() - began)
            bare_cpu.append(_cpu() - cpu)
            edited = list(segments)
            edited[3] = Segment(edited[3].source, edited[3].in_s, edited[3].out_s, f"Chú thích sửa lần {r + 1}")
            wall, cpu = _render(ReelPlan(TITLE, SUBTITLE, tuple(edited), profile), base / f"edit{r}", cache)
            edit_t.append(wall)
            edit_cpu.append(cpu)
        ours, bare, edit = min(ours_t), min(bare_t), min(edit_t)
        rss_me, rss_ffmpeg = _peak_rss_child(long_s, base / "long")
    tag = f"{profile}_{target.width}x{target.height}p{float(target.fps):g}"
    return [
        {
            "name": f"reel_render_10seg_mixed_{tag}_vs_bare_ffmpeg_script",
            "ours": ours,
            "baseline": bare,
            "ratio": ours / bare,
            "unit": "s",
        },
        {
            "name": f"reel_render_10seg_mixed_{tag}_x_realtime",
            "ours": reel_s / ours,
            "baseline": reel_s / bare,
            "ratio": bare / ours,
            "unit": "x realtime",
        },
        {
            "name": f"reel_render_10seg_mixed_{tag}_cpu_seconds",
            "ours": min(ours_cpu),
            "baseline": min(bare_cpu),
            "ratio": min(ours_cpu) / min(bare_cpu),
            "unit": "cpu s",
        },
        {
            "name": "reel_rerender_one_caption_changed_fraction_of_full",
            "ours": edit / ours,
            "baseline": None,
            "ratio": None,
            "unit": "fraction (wall)",
        },
        {
            "name": "reel_rerender_one_caption_changed_cpu_fraction_of_full",
            "ours": min(edit_cpu) / min(ours_cpu),
            "baseline": None,
            "ratio": None,
            "unit": "fraction (cpu)",
        },
        {
            "name": f"reel_renderer_peak_rss_{int(long_s)}s_reel",
            "ours": rss_me,
            "baseline": rss_ffmpeg,
            "ratio": rss_me / rss_ffmpeg,
            "unit": "MiB (baseline: largest ffmpeg child)",
        },
    ]


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        base = f"{row['baseline']:.3f}" if row["baseline"] is not None else "-"
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "-"
        print(f"{row['name']:<60} {row['ours']:>10.3f} {base:>10} {ratio:>7}  {row['unit']}")


if __name__ == "__main__":
    _print(run())
    print(f"(peak RSS of this bench process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
