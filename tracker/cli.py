"""``python -m tracker``: the whole pipeline headless, plus candidates, download and eval.

Errors a person can fix print one line (``error: …``) and exit non-zero; tracebacks appear only
with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from .errors import Cancelled, InputError, NoCandidates, TrackerError

logger = logging.getLogger("tracker")

EPILOG = """\
examples:
  python -m tracker track video.mp4 --prompt "red shoes" --out out/
  python -m tracker track video.mp4 --prompt "a dog" --max-objects 2 --preset fast --out out/
  python -m tracker candidates video.mp4 --prompt "a bed" --json candidates.json
  python -m tracker download                      # the default SAM 2.1 tiny + CLIP ViT-B-32
  python -m tracker eval out/masks ground_truth/  # DAVIS J&F
  python -m tracker track video.mp4 --prompt "a bed" --random-weights --out out/  # no weights needed
  python -m tracker batch clips/ --prompt "a dog" --out out/      # every video in clips/, on Ray
  python -m tracker batch --jobs jobs.csv --address 10.0.0.1:6379 --out /shared/out/  # a cluster
"""


def echo(*parts: object, file=None) -> None:
    """The command line's own output (results to stdout, status to stderr); library code logs."""
    stream = file or sys.stdout
    stream.write(" ".join(str(p) for p in parts) + "\n")
    stream.flush()


class _Progress:
    """One progress line on a terminal; a line every ~10 % elsewhere (logs, CI)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_bucket: dict[str, int] = {}
        self._width = 0

    def update(self, stage: str, fraction: float, message: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        line = f"[{stage:>9}] {fraction * 100:5.1f}%  {message}"
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
            self.stream.flush()
            return
        bucket = int(fraction * 10)
        if self._last_bucket.get(stage) != bucket:
            self._last_bucket[stage] = bucket
            self.stream.write(line + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models and device")
    g.add_argument(
        "--preset", help="speed/quality preset (fast, balanced, quality); default depends on the device"
    )
    g.add_argument(
        "--model", dest="sam2_model", help="SAM 2.1 size: tiny, small, base+, large (default: the preset's)"
    )
    g.add_argument(
        "--image-size",
        type=int,
        help="SAM 2 processing size, a multiple of 32 (1024 = SAM 2's own; smaller is faster, coarser)",
    )
    g.add_argument(
        "--clip-model",
        default="ViT-B-32/laion2b_s34b_b79k",
        help="open_clip model as ARCH/TAG (default: %(default)s)",
    )
    g.add_argument(
        "--mask-generator",
        default="points",
        choices=["points", "sam2-auto", "sam1-auto"],
        help="how candidate masks are proposed: CLIP-guided points (fast), SAM 2's or segment-anything's automatic generator",
    )
    g.add_argument(
        "--sam1-model",
        default="vit_b",
        help="segment-anything model for --mask-generator sam1-auto (vit_b, vit_l, vit_h)",
    )
    g.add_argument("--points-per-side", type=int, help="grid density of the automatic mask generator")
    g.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    g.add_argument("--bf16", dest="bf16", action="store_true", default=None, help="force bf16 autocast on")
    g.add_argument("--no-bf16", dest="bf16", action="store_false", help="force bf16 autocast off")
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile SAM 2 as its vos_optimized mode does (CUDA only: minutes to build, faster after)",
    )
    g.add_argument(
        "--random-weights",
        action="store_true",
        default=os.environ.get("TRACKER_RANDOM_WEIGHTS", "") not in ("", "0"),
        help="build the models with untrained random weights (no downloads; results are meaningless; for trying and testing)",
    )
    g.add_argument(
        "--checkpoints",
        dest="checkpoints_dir",
        type=Path,
        help="folder with the weights (default: ./checkpoints or $TRACKER_CHECKPOINTS)",
    )
    g.add_argument("--sam2-checkpoint", type=Path, help="explicit SAM 2 checkpoint file")
    g.add_argument("--clip-checkpoint", type=Path, help="explicit open_clip checkpoint file")
    g.add_argument(
        "--sam1-checkpoint", type=Path, help="explicit segment-anything checkpoint file (sam1-auto)"
    )
    g.add_argument("--offline", action="store_true", help="never download; only use local files")


def _add_video_options(p: argparse.ArgumentParser, positional: bool = True) -> None:
    g = p.add_argument_group("video")
    if positional:
        g.add_argument(
            "video", type=Path, help="the video file (anything ffmpeg reads: mp4, mov, webm, mkv, avi)"
        )
    g.add_argument("--start", dest="start_time", type=float, help="start time in seconds")
    g.add_argument("--end", dest="end_time", type=float, help="end time in seconds")
    g.add_argument(
        "--max-size",
        type=int,
        help="downscale so the longest side is at most this many pixels (default: the preset's)",
    )
    g.add_argument(
        "--max-frames",
        type=int,
        default=os.environ.get("TRACKER_MAX_FRAMES") or None,
        help="refuse videos (or --start/--end ranges) with more frames than this "
        "(default: $TRACKER_MAX_FRAMES, else no limit)",
    )


def _add_find_options(p: argparse.ArgumentParser, prompt_required: bool = True) -> None:
    g = p.add_argument_group("finding the object")
    g.add_argument(
        "--prompt", "-p", required=prompt_required, help='what to follow, e.g. "red shoes" (be specific)'
    )
    g.add_argument("--negative", help='what not to pick, e.g. "white shoes"')
    g.add_argument("--stride", type=int, help="rank every Nth frame (default: about 2 frames a second)")
    g.add_argument(
        "--top-frames", type=int, help="how many of the best frames get masks (default: the preset's)"
    )
    g.add_argument(
        "--threshold",
        type=float,
        default=20.0,
        help="minimum candidate score, 100·cosine (default: %(default)s)",
    )
    g.add_argument(
        "--take-best",
        action="store_true",
        help="use the best candidates even when none reaches the threshold",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tracker",
        description="Text-prompted video tracking: CLIP finds what you describe, SAM 2 follows it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_track_command(sub)
    _add_batch_command(sub)
    _add_candidates_command(sub)
    _add_download_command(sub)
    _add_eval_command(sub)
    return parser


def _add_track_command(sub) -> None:
    track = sub.add_parser(
        "track",
        help="find the prompt, track it through the video, write every output",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_video_options(track)
    _add_find_options(track, prompt_required=False)  # not needed with --project
    _add_model_options(track)
    g = _add_output_options(track, "output folder (created; files in it are replaced)")
    g.add_argument(
        "--project", type=Path, help="continue from a project file (manifest.json) instead of searching"
    )
    track.set_defaults(func=cmd_track)


def _add_output_options(p: argparse.ArgumentParser, out_help: str):
    g = p.add_argument_group("output")
    g.add_argument("--out", "-o", type=Path, required=True, help=out_help)
    g.add_argument(
        "--max-objects",
        type=int,
        default=None,
        help="track up to N non-overlapping candidates as separate objects (default 1); "
        "with --discover, the most objects in all",
    )
    d = p.add_argument_group("finding new objects while tracking")
    d.add_argument(
        "--discover",
        dest="discover",
        action="store_true",
        default=None,
        help="look for the prompt every few frames while tracking: objects that enter later get new ids, "
        "lost ones get their id back (about 5 %% more tracking time on a 2-core CPU at the default interval); "
        "the default, except with --random-weights",
    )
    d.add_argument("--no-discover", dest="discover", action="store_false", help="track only what Find chose")
    d.add_argument(
        "--discover-every",
        type=int,
        default=None,
        metavar="N",
        help="frames between two checks (default 20; implies --discover)",
    )
    g.add_argument(
        "--overlap-iou",
        type=float,
        default=0.5,
        help="candidates overlapping more than this are the same instance",
    )
    g.add_argument("--formats", help="comma-separated subset of outputs (default: all)")
    return g


def _add_batch_command(sub) -> None:
    batch = sub.add_parser(
        "batch",
        help="track many videos on Ray workers (this machine, or a cluster with --address)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Every video gets OUT/<job id>/ with what `track` writes, plus result.json when done. "
        "OUT/batch.jsonl gets a row per video as it ends, OUT/batch_summary.json one per run. "
        "Rerunning skips the videos already done. Exit code: 0 all done, 1 any failed, 130 stopped.",
    )
    batch.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="INPUT",
        help="video files and folders (walked for mp4, mov, webm, mkv, avi, …); job id = path inside the folder",
    )
    batch.add_argument(
        "--jobs",
        type=Path,
        help="a .csv or .jsonl file with the columns video, prompt, negative, max_objects, start, end (and id)",
    )
    _add_video_options(batch, positional=False)
    _add_find_options(batch, prompt_required=False)  # may come from --jobs
    _add_model_options(batch)
    _add_output_options(
        batch, "output folder: OUT/<job id>/ per video (shared by every machine on a cluster)"
    )
    g = batch.add_argument_group("Ray")
    g.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="a running Ray cluster, e.g. 10.0.0.1:6379 (default: $RAY_ADDRESS, else a local Ray)",
    )
    g.add_argument("--workers", type=int, help="at most this many workers (default: as many as fit)")
    g.add_argument(
        "--cpus-per-video",
        type=int,
        help="CPUs per worker without GPUs (default: 4, at most all); with GPUs a worker per GPU",
    )
    g.add_argument("--retries", type=int, default=1, help="run a video again this often if its worker dies")
    g.add_argument("--redo", action="store_true", help="also run videos that are already done")
    batch.set_defaults(func=cmd_batch)


def _add_candidates_command(sub) -> None:
    cand = sub.add_parser(
        "candidates",
        help="print the ranked candidates for a prompt",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_video_options(cand)
    _add_find_options(cand)
    _add_model_options(cand)
    cand.add_argument("--json", type=Path, help="also write the retrieval table as JSON here")
    cand.add_argument("--csv", type=Path, help="also write the retrieval table as CSV here")
    cand.add_argument("--max-objects", type=int, default=1, help=argparse.SUPPRESS)
    cand.add_argument(
        "--overlap-iou",
        type=float,
        default=0.5,
        help="same-frame candidates overlapping more than this are one instance",
    )
    cand.set_defaults(func=cmd_candidates)


def _add_download_command(sub) -> None:
    dl = sub.add_parser("download", help="fetch weights into checkpoints/")
    dl.add_argument(
        "names", nargs="*", help="models to fetch (default: the default SAM 2 and CLIP); see --list"
    )
    dl.add_argument("--list", action="store_true", help="list every known model name")
    dl.add_argument(
        "--checkpoints", dest="checkpoints_dir", type=Path, help="target folder (default: ./checkpoints)"
    )
    dl.set_defaults(func=cmd_download)


def _add_eval_command(sub) -> None:
    ev = sub.add_parser("eval", help="DAVIS J&F of predicted masks against ground truth")
    ev.add_argument(
        "pred",
        type=Path,
        help="predicted masks: a DAVIS-style PNG folder, a folder of sequences, a zip, or this tool's output folder",
    )
    ev.add_argument("gt", type=Path, help="ground-truth masks, same layouts")
    ev.add_argument("--json", type=Path, help="also write the report as JSON here")
    ev.add_argument(
        "--keep-first-last",
        action="store_true",
        help="score the first and last frames too (DAVIS skips them)",
    )
    ev.set_defaults(func=cmd_eval)


def _settings(args: argparse.Namespace):
    from .settings import Settings

    return Settings(
        preset=args.preset,
        sam2_model=args.sam2_model,
        image_size=args.image_size,
        clip_model=args.clip_model,
        mask_generator=args.mask_generator,
        sam1_model=args.sam1_model,
        device=args.device,
        random_weights=args.random_weights,
        max_size=args.max_size,
        start_time=args.start_time,
        end_time=args.end_time,
        stride=args.stride,
        top_frames=args.top_frames,
        points_per_side=args.points_per_side,
        threshold=args.threshold,
        take_best=args.take_best,
        max_objects=getattr(args, "max_objects", None) or 1,
        discover=_discover(args),
        discover_every=getattr(args, "discover_every", None) or 20,
        overlap_iou=args.overlap_iou,
        bf16=args.bf16,
        compile=args.compile,
        checkpoints_dir=args.checkpoints_dir,
        sam2_checkpoint=args.sam2_checkpoint,
        clip_checkpoint=args.clip_checkpoint,
        sam1_checkpoint=args.sam1_checkpoint,
        offline=args.offline,
    )


def _discover(args: argparse.Namespace) -> bool | None:
    """``--discover`` / ``--no-discover``; ``--discover-every`` alone turns it on; neither: None,
    the default (:func:`tracker.discovery.on_by_default`)."""
    choice = getattr(args, "discover", None)
    if choice is None:
        return True if getattr(args, "discover_every", None) is not None else None
    return bool(choice)


def _length_limit(args: argparse.Namespace):
    from .pipeline import LengthLimit

    return LengthLimit(
        max_frames=args.max_frames, fix="track a part of it with --start/--end, or raise --max-frames"
    )


def _print_candidates(rows, total: int, limit: int = 20) -> None:
    """The ranked candidates (:class:`tracker.pipeline.CandidateRow` s, best first) as a table."""
    echo(f"{'rank':>4}  {'frame':>6}  {'time':>7}  {'score':>7}  box (x0, y0, x1, y1)")
    for row in rows[:limit]:
        x0, y0, x1, y1 = row.box
        echo(
            f"{row.rank:>4}  {row.frame:>6}  {row.time:>6.2f}s  {row.score:>7.2f}  ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f})"
        )
    if total > limit:
        echo(f"… and {total - limit} more")


def cmd_candidates(args: argparse.Namespace) -> int:
    from .export import write_retrieval_table
    from .models import ModelHub
    from .pipeline import CandidateRow
    from .workspace import Workspace

    progress = _Progress()
    with (
        tempfile.TemporaryDirectory(prefix="tracker-") as tmp,
        Workspace.open(args.video, ModelHub(), _settings(args), Path(tmp)) as ws,
    ):
        _length_limit(args).check(ws.info)
        for event in ws.find_candidates(args.prompt, args.negative):
            progress.update("find", event.progress, event.message)
        progress.done()
        candidates = ws.candidates
        rows = [CandidateRow.from_candidate(rank, c) for rank, c in enumerate(candidates[:20], 1)]
        _print_candidates(rows, len(candidates))
        if args.json or args.csv:
            tmp_json = args.json or Path(tmp) / "candidates.json"
            tmp_csv = args.csv or Path(tmp) / "candidates.csv"
            write_retrieval_table(candidates, args.prompt, tmp_json, tmp_csv)
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from .export import write_retrieval_table  # noqa: F401  (fail early if exports can't import)
    from .pipeline import track_video

    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"Cannot use {out} as the output folder ({exc.strerror or exc}); choose another --out."
        ) from None
    summary = track_video(
        args.video,
        out,
        _settings(args),
        args.prompt,
        negative=args.negative,
        max_objects=args.max_objects,
        project=args.project,
        formats=[f.strip() for f in args.formats.split(",")] if args.formats else None,
        limit=_length_limit(args),
        progress=_TrackPrinter(quiet=args.quiet),
    )
    echo("wrote:", file=sys.stderr)
    for name, path in summary.files.items():
        echo(f"  {name:<14} {path}")
    _print_discovery(summary)
    _print_flags(summary.flags)
    echo("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in summary.timings.items()), file=sys.stderr)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from . import batch

    if not args.inputs and args.jobs is None:
        raise InputError("Nothing to do: pass video files or folders, or --jobs FILE.")
    common = {"negative": args.negative, "max_objects": args.max_objects}
    jobs = batch.discover(args.inputs, args.prompt, exclude=args.out, **common)
    if args.jobs is not None:
        jobs = batch.check_unique(jobs + batch.read_jobs(args.jobs, args.prompt, **common))
    summary = batch.run(
        jobs,
        args.out,
        _settings(args),
        args.address,
        workers=args.workers,
        cpus_per_video=args.cpus_per_video,
        retries=args.retries,
        redo=args.redo,
        formats=[f.strip() for f in args.formats.split(",")] if args.formats else None,
        limit=_length_limit(args),
        progress=None if args.quiet else batch.progress_printer(),
        on_row=_print_row,
    )
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    rate = f", {summary.videos_per_minute:.1f} videos/min" if summary.videos_per_minute else ""
    echo(
        f"{len(summary.rows)} videos: {counts} in {summary.seconds:.0f} s on {summary.workers} worker(s){rate}; "
        f"{args.out / batch.SUMMARY}",
        file=sys.stderr,
    )
    return summary.exit_code


def _print_row(row: dict) -> None:
    """One line per video as it ends: status, id, then what was made or what went wrong."""
    if row["status"] in ("done", "skipped"):
        what = f"{row.get('frames', '?')} frames, {row.get('objects', '?')} object(s), {row.get('flags', '?')} flag(s)"
        took = f", {row['seconds']:.1f} s" if "seconds" in row else ""
        line = f"{row['status']:<11} {row['id']}  {what}{took}"
    else:
        line = f"{row['status']:<11} {row['id']}  {row['message']}"
    if sys.stderr.isatty():  # the progress line is there: clear it first
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
    echo(line)


class _TrackPrinter:
    """What ``track`` prints while the pipeline runs (its :class:`tracker.pipeline.RunEvent` s)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar = _Progress()

    def __call__(self, event) -> None:
        if not event.finished:
            if event.stage in ("find", "track"):
                self.bar.update(event.stage, event.fraction, event.message)
            return
        if event.stage in ("find", "track"):
            self.bar.done()
        summary = event.summary
        if event.stage == "open":
            echo(event.message, file=sys.stderr)
        elif event.stage == "find":
            if not self.quiet:
                _print_candidates(summary.candidates, summary.num_candidates, limit=5)
            echo(event.message, file=sys.stderr)
        elif event.stage == "track" and summary.cancelled:
            echo(event.message, file=sys.stderr)


def _print_discovery(summary) -> None:
    """The end-of-run list of objects discovery found or found again."""
    stats = summary.discovery
    if stats is None:
        return
    fps = summary.info.fps if summary.info is not None else None
    per_check = stats["seconds_per_check"]
    cost = f", {per_check:.2f} s each" if per_check is not None else ""
    reused = stats.get("reused_features")
    reuse = f"; reused the tracker's features on {reused}" if reused is not None else ""
    points, crops = stats.get("skipped_points"), stats.get("skipped_crops")
    skipped = (
        f"; skipped {points} grid points and {crops} crops inside tracked objects"
        if points is not None and crops is not None
        else ""
    )
    echo(f"discovery: {stats['checks']} checks every {stats['every']} frames{cost}{reuse}{skipped}")
    found = [record for record in summary.found if record.kind != "accepted"]
    for record in found:
        echo(f"  {record.describe(fps)}")
    if not found:
        echo("  no new objects found while tracking")
    if stats["capped"]:
        echo(f"  stopped adding objects at --max-objects {stats['max_objects']}")


def _print_flags(flags) -> None:
    if not flags:
        echo("no doubtful frames flagged", file=sys.stderr)
        return
    echo(f"{len(flags)} doubtful frame(s) to check:")
    for flag in flags[:30]:
        echo(f"  frame {flag.frame:>6}  object {flag.object_id:>3}  {flag.reason:<11} {flag.message}")
    if len(flags) > 30:
        echo(f"  … and {len(flags) - 30} more (flags.csv)")


def cmd_download(args: argparse.Namespace) -> int:
    from .registry import list_models
    from .weights import download

    if args.list:
        for kind, names in list_models().items():
            echo(f"{kind}: {', '.join(names)}")
        return 0
    paths = download(args.names or None, checkpoints_dir=args.checkpoints_dir)
    for path in paths:
        echo(path)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .quality import evaluate

    report = evaluate(args.pred, args.gt, skip_first_last=not args.keep_first_last)
    echo(report.to_table())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report.to_json(args.json)
    for warning in report.warnings:
        logger.warning("%s", warning)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "PIL", "matplotlib", "huggingface_hub", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except NoCandidates as error:
        echo(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except Cancelled as error:
        echo(f"stopped: {error}", file=sys.stderr)
        return error.exit_code
    except TrackerError as error:
        if args.debug:
            raise
        echo(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        echo("interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # a full disk, a folder that vanished: the system's words, one line
        if args.debug:
            raise
        where = f" ({error.filename})" if error.filename else ""
        echo(
            f"error: {error.strerror or error}{where}; check the disk and the paths, then retry.",
            file=sys.stderr,
        )
        return 1
    except MemoryError:
        echo(
            "error: out of memory: try --preset fast, a smaller --image-size or --max-size, or a shorter --start/--end range",
            file=sys.stderr,
        )
        return 1
