"""Many objects: ours (``Workspace.track`` with the overlay) vs plain SAM 2, per object count (issue 14).

For each image size and object count, two arms run in one process, one frame each in turn (as
``run.py``'s ``equal`` section does, so both see the same load):

* **ours**: ``Workspace.open`` → one box per object on frame 0 → ``Workspace.track`` writing the
  overlay mp4 (decode, SAM 2, result store, drawing, encoding);
* **plain SAM 2**: a JPEG folder of the same frames → ``init_state`` → the same boxes →
  ``propagate_in_video``, thresholding each frame's logits as SAM 2's notebook does.

Both use one predictor object (tiny, random weights) and the same autocast policy. With one
object a third arm times ``TrackingSession.propagate`` alone, for end to end ÷ propagation. The
library's stage marks (:mod:`tracker.timing`) split ours per stage: SAM 2's work (``sam2``),
per-mask work on the tracking thread (``store``, trails), drawing, the hand-off to the writer,
and what other threads did. ``--micro`` times the per-mask code alone on noise masks (what random
weights give) and on smooth blobs (what real masks look like).

    /work/bin/heavy .venv/bin/python benchmarks/objects.py --quick
    /work/bin/heavy .venv/bin/python benchmarks/objects.py --frames 24 --json objects.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.arms import Arm, autocast_name, interleave, workspace_predictor
from benchmarks.measure import load_average, machine
from benchmarks.media import DEFAULT_VIDEO, looped_video, write_jpegs

MAX_SIZE = 854  # the working size of the 960×540 clip: 854×480
# Stages of ours on the tracking thread (MainThread) and on the library's own threads.
MAIN_STAGES = ("sam2", "resolve masks", "store", "draw", "encode")
SIDE_STAGES = (("encode", "overlay-writer"), ("decode", "sam2-frames"), ("preprocess", "sam2-frames"))


def object_boxes(count: int, width: int, height: int) -> list[tuple[float, float, float, float]]:
    """``count`` boxes (``xyxy``) on a grid over the frame, each the middle 70 % of its cell."""
    columns = 1
    while columns * columns < count:
        columns += 1
    rows = -(-count // columns)
    cell_w, cell_h = width / columns, height / rows
    boxes = []
    for k in range(count):
        x0, y0 = (k % columns) * cell_w, (k // columns) * cell_h
        boxes.append(
            (
                round(x0 + 0.15 * cell_w),
                round(y0 + 0.15 * cell_h),
                round(x0 + 0.85 * cell_w),
                round(y0 + 0.85 * cell_h),
            )
        )
    return boxes


class PlainObjects(Arm):
    """Plain SAM 2 with ``count`` boxes on frame 0 (``predictor`` shared with ours)."""

    def __init__(self, predictor: Any, frames_dir: Path, count: int, width: int, height: int) -> None:
        import numpy as np

        from tracker.devices import autocast

        super().__init__("plain")
        device = predictor.device
        self.autocast = autocast_name(device, None)
        self._context = lambda: autocast(device, enabled=None)
        self.width, self.height = width, height
        with self._context():
            state = predictor.init_state(video_path=str(frames_dir))
            for object_id, box in enumerate(object_boxes(count, width, height), start=1):
                predictor.add_new_points_or_box(
                    state, frame_idx=0, obj_id=object_id, box=np.array(box, dtype=np.float32)
                )
        self._iterator = (
            (logits > 0.0).cpu().numpy() for _f, _ids, logits in predictor.propagate_in_video(state)
        )


class OursObjects(Arm):
    """Ours with ``count`` boxes on frame 0: ``track`` (with the overlay) or the session's ``propagate``."""

    def __init__(self, name: str, ws: Any, count: int, mode: str, overlay: Path) -> None:
        super().__init__(name)
        self.ws = ws
        self.recorders: list[Any] = []
        self.width, self.height = ws.info.width, ws.info.height
        for box in object_boxes(count, ws.info.width, ws.info.height):
            obj = ws.add_object()
            ws.set_box(obj.object_id, 0, box)
        if mode == "track":
            self._iterator = (event for event in ws.track(direction="both", overlay_path=overlay))
        else:
            self._iterator = ws.session.propagate(direction="forward")

    def step(self) -> None:
        from tracker import timing

        # One recorder per step, so that the arms interleaved on this thread keep their stages apart.
        with timing.record() as recorder:
            super().step()
        self.recorders.append(recorder)

    def after_step(self) -> None:
        self.ws.session.wait_prefetch()  # the frames it prepared ahead are charged to this arm

    def seconds(self, name: str, thread: str | None = None) -> float:
        return sum(recorder.seconds(name, thread=thread) for recorder in self.recorders)


def _open(video: Path, hub: Any, size: int, end_time: float | None, folder: Path) -> Any:
    from tracker.settings import Settings
    from tracker.workspace import Workspace

    settings = Settings(
        sam2_model="tiny",
        image_size=size,
        max_size=MAX_SIZE,
        random_weights=True,
        end_time=end_time,
        device="cpu",
    )
    return Workspace.open(video, hub, settings, folder)


def run_pair(
    video: Path, jpegs: Path, hub: Any, size: int, count: int, frames: int, work: Path, unbatched: bool
) -> dict[str, Any]:
    """One (size, count) cell: ours and plain interleaved; with one object also propagation alone,
    with several (``unbatched``) also ours with each object through SAM 2 on its own."""
    _, end_time = looped_video(video, frames, work)
    folder = work / f"s{size}-n{count}"
    ws = _open(video, hub, size, end_time, folder / "track")
    plain = PlainObjects(workspace_predictor(hub, ws), jpegs, count, ws.info.width, ws.info.height)
    arms: list[Arm] = [OursObjects("ours", ws, count, "track", folder / "overlay.mp4"), plain]
    extra = None
    if count == 1:
        extra = _open(video, hub, size, end_time, folder / "propagate")
        arms.append(OursObjects("ours propagate", extra, count, "propagate", folder / "unused.mp4"))
    elif unbatched and hasattr(type(ws.session), "batch_objects"):
        extra = _open(video, hub, size, end_time, folder / "unbatched")
        arm = OursObjects("ours one by one", extra, count, "track", folder / "unbatched.mp4")
        extra.session.batch_objects = False  # the same track, each object through SAM 2 on its own
        arms.append(arm)
    started = time.perf_counter()
    interleave(arms)
    loop_s = time.perf_counter() - started
    records = {arm.name: arm.record() for arm in arms}
    for each in (ws, extra):
        if each is not None:
            each.close()
    return {
        "size": size,
        "objects": count,
        "frames": frames,
        "loop_s": loop_s,
        "arms": records,
        "stages": stage_table(arms[0], records["ours"]["steps"]),
        "load_average": load_average(),
    }


def stage_table(recorder: OursObjects | Any, steps: list[float]) -> dict[str, float]:
    """Ours' seconds per frame by stage (tracking thread, then the library's threads).

    ``sam2`` includes ``resolve masks``; ``other`` is the tracking thread's time outside the
    marked stages (the trails' centroids, the event, Python glue).
    """
    frames = max(1, len(steps))
    out = {f"{name} (main)": recorder.seconds(name, thread="MainThread") / frames for name in MAIN_STAGES}
    marked = sum(out[f"{name} (main)"] for name in ("sam2", "store", "draw", "encode"))
    out["other (main)"] = sum(steps) / frames - marked
    for name, thread in SIDE_STAGES:
        out[f"{name} ({thread})"] = recorder.seconds(name, thread=thread) / frames
    return out


def sweep(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    from tracker.models import ModelHub

    video = Path(args.video)
    jpegs = work / "jpg"
    write_jpegs(video, jpegs, args.frames, MAX_SIZE)
    cells = []
    for size in args.sizes:
        hub = ModelHub(device="cpu")
        warm = _open(video, hub, size, looped_video(video, args.frames, work)[1], work / f"warm{size}")
        for box in object_boxes(1, warm.info.width, warm.info.height):
            warm.set_box(warm.add_object().object_id, 0, box)
        for _ in warm.session.propagate(direction="forward", max_frames=min(args.frames, 17)):
            pass  # kernels for every memory-bank size exist before the timed arms meet them
        warm.close()
        for count in args.counts:
            cell = run_pair(video, jpegs, hub, size, count, args.frames, work, args.unbatched)
            print(cell_line(cell), flush=True)
            cells.append(cell)
    return cells


def per_frame(record: dict[str, Any]) -> float:
    return record["s_per_frame_mean"]


def cell_line(cell: dict[str, Any]) -> str:
    ours, plain = per_frame(cell["arms"]["ours"]), per_frame(cell["arms"]["plain"])
    return f"size {cell['size']}, {cell['objects']} objects: ours {ours:.3f} s/frame, plain {plain:.3f} ({ours / plain:.2f}×)"


def tables(cells: list[dict[str, Any]]) -> Iterator[str]:
    """Markdown: s/frame per count and size, ratios; end to end ÷ propagation; ours' stages."""
    yield (
        "| size | objects | ours s/frame | plain s/frame | ours ÷ plain | ours ÷ ours at 1 | plain ÷ plain at 1 "
        "| ours, objects one by one (s/frame, ÷ plain) |"
    )
    yield "|---|---|---|---|---|---|---|---|"
    base = {c["size"]: c for c in cells if c["objects"] == 1}
    for cell in cells:
        ours, plain = per_frame(cell["arms"]["ours"]), per_frame(cell["arms"]["plain"])
        one = base.get(cell["size"])
        o1 = f"{ours / per_frame(one['arms']['ours']):.2f}" if one else "—"
        p1 = f"{plain / per_frame(one['arms']['plain']):.2f}" if one else "—"
        alone = cell["arms"].get("ours one by one")
        single = f"{per_frame(alone):.3f} ({per_frame(alone) / plain:.2f})" if alone else "—"
        yield (
            f"| {cell['size']} | {cell['objects']} | {ours:.3f} | {plain:.3f} | **{ours / plain:.2f}** "
            f"| {o1} | {p1} | {single} |"
        )
    yield ""
    yield "| size | end to end (track + overlay) | propagation alone | ratio |"
    yield "|---|---|---|---|"
    for cell in cells:
        alone = cell["arms"].get("ours propagate")
        if alone:
            track = cell["arms"]["ours"]["propagated_s"]
            yield f"| {cell['size']} | {track:.2f} s | {alone['propagated_s']:.2f} s | **{track / alone['propagated_s']:.3f}** |"
    yield ""
    names = list(cells[0]["stages"]) if cells else []
    yield "| size | objects | " + " | ".join(names) + " |"
    yield "|---|---|" + "---|" * len(names)
    for cell in cells:
        row = " | ".join(f"{1000 * cell['stages'][n]:.1f}" for n in names)
        yield f"| {cell['size']} | {cell['objects']} | {row} |"
    yield "(ms per frame, ours; `sam2` includes `resolve masks`)"


# ------------------------------------------------------------------------------- per-mask micro-benchmark


def smooth_masks(count: int, width: int, height: int, seed: int = 0) -> Any:
    """``count`` ellipses with wobbly edges spread over the frame (what real masks look like)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    angle = np.arctan2(ys - height / 2, xs - width / 2)
    masks = np.zeros((count, height, width), bool)
    for k, (x0, y0, x1, y1) in enumerate(object_boxes(count, width, height)):
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        wobble = 1 + 0.1 * np.sin(5 * angle + rng.uniform(0, 6))
        masks[k] = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 < wobble
    return masks


def noise_masks(count: int, width: int, height: int, seed: int = 0) -> Any:
    """What random weights give: about half the pixels of each object's box set at random."""
    import numpy as np

    rng = np.random.default_rng(seed)
    masks = np.zeros((count, height, width), bool)
    for k, (x0, y0, x1, y1) in enumerate(object_boxes(count, width, height)):
        masks[k, y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.5
    return masks


def micro(counts: list[int], repeats: int) -> list[dict[str, Any]]:
    """Per-mask code on one 854×480 frame: store (stats + RLE), trails, drawing; ms per frame."""
    import numpy as np

    from tracker.types import FrameResult

    width, height = MAX_SIZE, 480
    frame = np.full((height, width, 3), 90, np.uint8)
    rows = []
    for kind, make in (("noise", noise_masks), ("smooth", smooth_masks)):
        for count in counts:
            masks = make(count, width, height)
            results = [
                FrameResult(r, tuple(range(1, count + 1)), masks, np.ones(count, np.float32))
                for r in range(repeats)
            ]
            row = {k: 1000 * statistics.median(v) for k, v in _time_steps(frame, results).items()}
            rows.append({"masks": kind, "objects": count, **row})
            print(
                f"micro {kind:6s} {count:2d} objects: " + ", ".join(f"{k} {v:.1f} ms" for k, v in row.items())
            )
    return rows


def _time_steps(frame: Any, results: list[Any]) -> dict[str, list[float]]:
    """Seconds of each per-mask step for each result, as ``Workspace.track`` runs them."""
    from tracker.render import TrailHistory, draw_overlay
    from tracker.results import ResultStore

    height, width = frame.shape[:2]
    store, trails = ResultStore(width, height, len(results)), TrailHistory()
    timings: dict[str, list[float]] = {"store": [], "trails": [], "draw": []}
    for result in results:
        t0 = time.perf_counter()
        store.put(result)
        t1 = time.perf_counter()
        trails.update(result)
        t2 = time.perf_counter()
        draw_overlay(frame, result, {}, trails=trails.trails())
        t3 = time.perf_counter()
        timings["store"].append(t1 - t0)
        timings["trails"].append(t2 - t1)
        timings["draw"].append(t3 - t2)
    return timings


def micro_table(rows: list[dict[str, Any]]) -> Iterator[str]:
    yield "| masks | objects | store (stats + RLE) | trails | draw | total |"
    yield "|---|---|---|---|---|---|"
    for row in rows:
        total = row["store"] + row["trails"] + row["draw"]
        yield f"| {row['masks']} | {row['objects']} | {row['store']:.1f} | {row['trails']:.1f} | {row['draw']:.1f} | {total:.1f} |"
    yield "(ms per frame, 854×480, median)"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--frames", type=int, default=24, help="frames per run (frame 0 is the prompt)")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--e2e-sizes", default="384", help="extra sizes run with one object only")
    parser.add_argument("--counts", default="1,4,16")
    parser.add_argument("--quick", action="store_true", help="10 frames, size 256, 1 and 4 objects")
    parser.add_argument("--micro", action="store_true", help="only the per-mask micro-benchmark")
    parser.add_argument(
        "--unbatched", action="store_true", help="also ours with batch_objects off (2+ objects)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.sizes, args.e2e_sizes, args.counts = 10, "256", "", "1,4"
    args.sizes = [int(v) for v in args.sizes.split(",") if v]
    args.e2e_sizes = [int(v) for v in args.e2e_sizes.split(",") if v]
    args.counts = [int(v) for v in args.counts.split(",") if v]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    started, load_start = time.perf_counter(), load_average()
    out: dict[str, Any] = {"machine": machine(), "load_average_start": load_start, "argv": sys.argv}
    out["micro"] = micro([1, 4, 16], 5 if args.quick else 15)
    if not args.micro:
        with tempfile.TemporaryDirectory(prefix="objects-") as tmp:
            out["cells"] = sweep(args, Path(tmp))
            if args.e2e_sizes:
                extra = argparse.Namespace(**{**vars(args), "sizes": args.e2e_sizes, "counts": [1]})
                out["cells"] += sweep(extra, Path(tmp))
        print("\n".join(tables(sorted(out["cells"], key=lambda c: (c["size"], c["objects"])))))
    print("\n".join(micro_table(out["micro"])))
    out["load_average_end"] = load_average()
    out["wall_s"] = time.perf_counter() - started
    print(f"load average {load_start} → {out['load_average_end']}; wall {out['wall_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
