"""Batch throughput: videos per minute with 1 and 2 Ray workers, and the per-video cost against ``track``.

    python benchmarks/batch.py [--clips 8] [--frames 24] [--json batch.json]

Eight short generated clips (320×240, 24 frames, tests/synthetic.py), random weights, image size
256, CPU. Four measurements, one after another:

* ``track`` alone, one process per video (what looping over ``python -m tracker track`` costs):
  wall time of the process, and the pipeline's own total (``timings: … total``) for two clips;
* ``track_video`` in this process with models already loaded (the warm pipeline time);
* ``python -m tracker batch``'s library call with 1 worker (2 CPUs) and with 2 workers (1 CPU
  each): wall time from the call (Ray started inside it) to the summary, and each video's time
  on its worker.

Per-video overhead = the median time of a video on a worker that already ran one (models loaded)
minus the warm pipeline time: what Ray, the row and ``result.json`` add to each video. The
once-per-run cost (Ray, actors, model loading) is the wall time minus the workers' busy time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.synthetic import make_video  # noqa: E402
from tracker import batch  # noqa: E402
from tracker.settings import Settings  # noqa: E402

SETTINGS = Settings(
    random_weights=True, preset="fast", image_size=256, max_size=256, device="cpu", offline=True
)
ARGS = [
    "--random-weights",
    "--device",
    "cpu",
    "--image-size",
    "256",
    "--max-size",
    "256",
    "--preset",
    "fast",
    "--offline",
]
PROMPT = "a red disc"


def track_process(clip: Path, out: Path) -> dict:
    """``python -m tracker track`` in its own process: wall time and the pipeline's total."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "-q", "track", str(clip), "--prompt", PROMPT, "--out", str(out), *ARGS],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    line = next(line for line in done.stderr.splitlines() if line.startswith("timings:"))
    total = float(line.split("total ")[1].split(" s")[0])
    return {"wall_s": round(wall, 2), "pipeline_s": total}


def warm_pipeline(clips: list[Path], out: Path) -> dict:
    """``track_video`` twice with one hub: the second call's total is the warm pipeline time."""
    from tracker.models import ModelHub
    from tracker.pipeline import track_video

    hub = ModelHub()
    totals = [
        track_video(clip, out / clip.stem, SETTINGS, PROMPT, hub=hub).timings["total"] for clip in clips
    ]
    return {"cold_s": round(totals[0], 2), "warm_s": round(statistics.median(totals[1:]), 2)}


def batch_run(clips: list[Path], out: Path, workers: int, cpus: int) -> dict:
    jobs = batch.discover(clips, PROMPT)
    load = os.getloadavg()
    started = time.perf_counter()
    summary = batch.run(jobs, out, SETTINGS, workers=workers, cpus_per_video=cpus)
    wall = time.perf_counter() - started
    assert summary.counts == {batch.DONE: len(clips)}, summary.counts
    by_worker: dict[str, list[float]] = {}
    for line in (out / batch.MANIFEST).read_text().splitlines():  # completion order
        row = json.loads(line)
        by_worker.setdefault(row["worker"], []).append(row["seconds"])
    first = [times[0] for times in by_worker.values()]
    later = [t for times in by_worker.values() for t in times[1:]]
    busy = max(sum(times) for times in by_worker.values())
    return {
        "workers": workers,
        "cpus_per_worker": cpus,
        "wall_s": round(wall, 2),
        "videos_per_minute": round(60 * len(clips) / wall, 2),
        "first_video_on_a_worker_s": round(statistics.median(first), 2),
        "later_videos_median_s": round(statistics.median(later), 2) if later else None,
        "once_per_run_s": round(wall - busy, 2),
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/batch-bench"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.workdir
    clips = []
    for i in range(args.clips):
        clip = work / "clips" / f"clip{i}.mp4"
        if not clip.exists():
            clip.parent.mkdir(parents=True, exist_ok=True)
            make_video(clip, num_frames=args.frames, width=320, height=240, fps=12)
        clips.append(clip)
    for old in ("track", "warm", "batch1", "batch2"):
        subprocess.run(["rm", "-rf", str(work / old)], check=True)
    results: dict = {"clips": args.clips, "frames": args.frames, "load_start": list(os.getloadavg())}
    results["track_process"] = [track_process(clip, work / "track" / clip.stem) for clip in clips[:2]]
    results["warm"] = warm_pipeline(clips[:3], work / "warm")
    results["batch"] = [batch_run(clips, work / "batch1", 1, 2), batch_run(clips, work / "batch2", 2, 1)]
    results["load_end"] = list(os.getloadavg())
    track_wall = statistics.mean(r["wall_s"] for r in results["track_process"])
    one, two = results["batch"]
    results["track_loop_videos_per_minute"] = round(60 / track_wall, 2)
    results["overhead_per_video_s"] = round(one["later_videos_median_s"] - results["warm"]["warm_s"], 2)
    print(json.dumps(results, indent=2))
    print(
        f"\n| {args.clips} clips × {args.frames} frames, 320×240, tiny at 256, random weights, CPU | "
        f"{results['track_loop_videos_per_minute']} (one `track` process each, {track_wall:.1f} s) | "
        f"{one['videos_per_minute']} | {two['videos_per_minute']} | "
        f"{results['overhead_per_video_s']:+.2f} s ({one['later_videos_median_s']} s on a warm worker vs "
        f"{results['warm']['warm_s']} s warm `track_video`); once per run {one['once_per_run_s']} s |"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
