"""Speed and memory of the tracker, side by side with plain SAM 2 (issue #4).

Run ``python benchmarks/run.py`` (9 minutes on the project's idle 2-core CPU) or
``python benchmarks/run.py --quick`` (a sanity check at small sizes, about 4 minutes idle); on a
busy machine both take several times longer (see ``--omp-wait-policy`` and the README). It
prints a Markdown table with PASS/FAIL per target and writes everything it measured to
``--json``. Every measurement runs in a fresh subprocess, so peaks of one run never show up in
another. Models use random weights (speed and memory do not depend on the weights' values);
nothing is downloaded. Time inside the library's stages (decode, draw, encode, …) comes from
:mod:`tracker.timing`.

Sections (``--sections``, default all; ``benchmarks/plan.py`` says what each runs):

* ``memory`` — ours (``Workspace``: open → box prompt on frame 0 → ``track`` with the overlay
  mp4) and plain SAM 2 (JPEG folder → ``init_state`` → ``add_new_points_or_box`` →
  ``propagate_in_video``) at each of ``--lengths`` (the clip looped: an mp4 concatenated with
  ffmpeg stream copy for ours, symlinks to one JPEG per clip frame for plain; nothing holds the
  looped video). Peak RSS (sampled every 50 ms, and ``ru_maxrss``) per length, then a linear fit
  of peak RSS against length: growth per 100 frames. Ours also runs with discovery on (a check
  every ``--discover-every`` frames, nothing added), fitted the same way.
* ``equal`` — same model, same processing size, same precision, same frames and prompt: ours
  propagation alone (``TrackingSession.propagate``), ours end to end (``Workspace.track``: decode,
  propagate, draw, encode) and plain SAM 2, ``--repeats`` times interleaved.
* ``defaults`` — our CPU default preset end to end against plain SAM 2 at its defaults
  (image size 1024, float32 on CPU, frames extracted to JPEG at the source size) on the first
  ``--defaults-frames`` frames, plus an extrapolation to the whole clip.
* ``find`` — ``Workspace.find_candidates`` on ``--find-video`` with the default preset: time to
  the first candidates and to the end, cold (models built in the call) and warm.
* ``gpu`` — frames per second at 1024 for tiny / base+ / large, bfloat16, optionally compiled,
  next to SAM 2's published A100 figures; only on ``--device cuda``.
* ``discovery`` — tracking the Find clip with discovery off, on, and on without skipping what
  tracked objects cover, interleaved: the overhead, seconds per check, points and crops skipped.

The modules: ``measure`` (RSS, CPU, fits, the machine), ``media`` (clips), ``arms`` (ours and plain
SAM 2), ``jobs`` (what runs in each subprocess), ``plan`` (what each section runs), ``summary``
(derived numbers, PASS/FAIL), ``report`` (the Markdown), and this file (options, subprocesses).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    # Run as a script (python benchmarks/run.py): the repository root holds `tracker` and
    # `benchmarks`, which are not installed into the environment.
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import load_average, machine  # noqa: E402
from benchmarks.media import DEFAULT_FIND_VIDEO, DEFAULT_VIDEO  # noqa: E402
from benchmarks.plan import SECTION_NAMES, SECTIONS, Context  # noqa: E402
from benchmarks.report import README, render_table, write_readme  # noqa: E402
from benchmarks.summary import summarise  # noqa: E402


class Runner:
    """Runs each job in a fresh ``python benchmarks/run.py --job`` subprocess."""

    def __init__(
        self, workdir: Path, timeout: float, omp_wait_policy: str | None = None, verbose: bool = True
    ) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.omp_wait_policy = omp_wait_policy
        self.verbose = verbose
        self.count = 0

    def __call__(self, kind: str, label: str, **spec: Any) -> dict[str, Any]:
        self.count += 1
        number = self.count
        job_dir = self.workdir / f"job{number:02d}-{kind}"
        job_dir.mkdir(parents=True, exist_ok=True)
        spec = {"kind": kind, "label": label, "workdir": str(job_dir), **spec}
        spec_path, out_path, log_path = job_dir / "spec.json", job_dir / "result.json", job_dir / "log.txt"
        spec_path.write_text(json.dumps(spec, default=str, indent=1))
        if self.verbose:
            print(f"[{number:2d}] {label} … (load {load_average()})", file=sys.stderr, flush=True)
        started = time.perf_counter()
        returncode = self._run_job(spec_path, out_path, log_path)
        wall = time.perf_counter() - started
        if returncode == 0 and out_path.exists():
            result = json.loads(out_path.read_text())
        else:
            tail = log_path.read_text()[-3000:] if log_path.exists() else ""
            reason = "timed out" if returncode is None else f"exit status {returncode}"
            last = tail.strip().splitlines()[-1] if tail.strip() else ""
            result = {"spec": spec, "error": f"{reason}: {last}"}
            print(f"     FAILED ({reason}); log {log_path}:\n{tail}", file=sys.stderr, flush=True)
        result["label"] = label
        result["wall_s"] = wall
        if self.verbose and "error" not in result:
            print(f"     done in {wall:.0f} s", file=sys.stderr, flush=True)
        return result

    def _run_job(self, spec_path: Path, out_path: Path, log_path: Path) -> int | None:
        """The job's exit status; None when it ran past the timeout."""
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--job",
            str(spec_path),
            "--job-out",
            str(out_path),
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
        if self.omp_wait_policy:
            # read by libgomp when torch loads it, so it has to be in the job's environment
            env["OMP_WAIT_POLICY"] = self.omp_wait_policy
        with open(log_path, "w") as log:
            try:
                completed = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, timeout=self.timeout, env=env, cwd=ROOT
                )
            except subprocess.TimeoutExpired:
                return None
        return completed.returncode


# ------------------------------------------------------------------------------- options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Speed and memory of the tracker, side by side with plain SAM 2 (issue #4).",
    )
    add = parser.add_argument
    add("--video", type=Path, default=DEFAULT_VIDEO, help="clip to track (looped for long lengths)")
    add("--find-video", type=Path, default=DEFAULT_FIND_VIDEO, help="clip for the Find timing")
    add("--find-prompt", default="dog")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--lengths", default=None, help="comma-separated frame counts for the memory curve")
    length.add_argument("--frames", type=int, default=None, help="one length for the memory runs")
    add("--model", default="tiny", help="SAM 2 model of the memory and equal-settings runs")
    add("--image-size", type=int, default=None, help="processing size of the memory runs (256)")
    add("--equal-image-size", type=int, default=None, help="processing size of the equal runs (512)")
    add("--equal-frames", type=int, default=None, help="frames of the equal-settings runs (40)")
    add("--defaults-frames", type=int, default=None, help="frames of the defaults runs (30)")
    add(
        "--warmup-frames",
        type=int,
        default=None,
        help="frames tracked once before the equal runs, to build kernels (20)",
    )
    add("--gpu-frames", type=int, default=200, help="frames of each GPU fps run")
    add(
        "--discover-every",
        type=int,
        default=20,
        help="frames between discovery checks (discovery rows, and the memory rows with discovery on)",
    )
    add(
        "--detect-checks",
        type=int,
        default=6,
        help="discovery section: check frames of the detector-alone job (solid tracked mask or none)",
    )
    add("--no-memory-discovery", action="store_true", help="memory section: leave out the discovery-on runs")
    add(
        "--no-discovery-baseline",
        action="store_true",
        help="discovery section: leave out the arm that skips nothing inside tracked objects",
    )
    add(
        "--discovery-seconds",
        type=float,
        default=None,
        help="seconds of the Find clip the discovery rows track (default: all of it; --quick: 2)",
    )
    add("--repeats", type=int, default=None, help="interleaved repeats of the equal runs (2)")
    add("--max-size", type=int, default=None, help="working size (default: the preset's)")
    add("--preset", default=None, help="preset of the memory/equal runs (default: the device's)")
    add(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="autocast of ours and plain in the equal runs (auto = our policy)",
    )
    add("--device", default="cpu", help="cpu or cuda (the GPU rows need cuda)")
    add("--compile", action="store_true", help="torch.compile SAM 2 (GPU rows; as vos_optimized)")
    add(
        "--omp-wait-policy",
        choices=("inherit", "passive", "active"),
        default="inherit",
        help="OMP_WAIT_POLICY of every job (inherit = this shell's). On a CPU shared with other busy "
        "processes, libgomp's default spin-waiting can make torch many times slower; passive avoids it",
    )
    add("--sections", default=",".join(SECTION_NAMES), help=f"which parts to run: {', '.join(SECTION_NAMES)}")
    add("--skip-plain", action="store_true", help="only our runs (no plain SAM 2)")
    add("--quick", action="store_true", help="a ~4 minute version with small sizes")
    add("--json", type=Path, default=None, help="write every measurement here")
    add("--write-readme", action="store_true", help=f"put the table into {README.name}")
    add("--workdir", type=Path, default=None, help="keep inputs and logs here (default: a temp dir)")
    add("--timeout", type=float, default=1800, help="seconds before a job is killed")
    add("--job", type=Path, help=argparse.SUPPRESS)
    add("--job-out", type=Path, help=argparse.SUPPRESS)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options, with the defaults of a full run or of ``--quick`` filled in."""
    parser = _parser()
    args = parser.parse_args(argv)
    quick = args.quick
    if args.frames is not None:
        args.lengths = [args.frames]
    elif args.lengths is not None:
        args.lengths = [int(v) for v in str(args.lengths).split(",") if v.strip()]
    else:
        # past the 128 frames VideoReader caches, or the cache filling up reads as growth
        args.lengths = [140, 280] if quick else [150, 300, 600]
    args.image_size = args.image_size or (128 if quick else 256)
    args.equal_image_size = args.equal_image_size or (256 if quick else 512)
    args.equal_frames = args.equal_frames or (12 if quick else 40)
    args.defaults_frames = args.defaults_frames or (6 if quick else 30)
    if quick and args.discovery_seconds is None:
        args.discovery_seconds = 2.0
    if quick and args.max_size is None:
        args.max_size = 480  # cheaper decode, drawing and encoding in the memory and equal runs
    args.repeats = args.repeats or (1 if quick else 2)
    args.warmup_frames = args.warmup_frames if args.warmup_frames is not None else (8 if quick else 20)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTION_NAMES)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    args.bf16_value = {"auto": None, "on": True, "off": False}[args.bf16]
    return args


# ------------------------------------------------------------------------------- the run


def _report_head(args: argparse.Namespace, argv: Sequence[str], device: Any) -> dict[str, Any]:
    policy = (
        os.environ.get("OMP_WAIT_POLICY")
        if args.omp_wait_policy == "inherit"
        else args.omp_wait_policy.upper()
    )
    return {
        "command": "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_start": load_average(),
        "args": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("job", "job_out")
        },
        "device": str(device),
        "environment": {
            "OMP_WAIT_POLICY": policy,
            **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")},
        },
    }


def _max_size(args: argparse.Namespace, device: Any) -> int:
    from tracker.devices import PRESETS, default_preset

    if args.max_size:
        return args.max_size
    return (PRESETS[args.preset] if args.preset else default_preset(device)).max_size


def run_all(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    """Every requested section, in order; the report (measurements, summary, targets)."""
    from tracker.devices import pick_device
    from tracker.video import probe

    device = pick_device(args.device)
    chosen = [section for section in SECTIONS if section.name in args.sections]
    for section in chosen:
        clip = getattr(args, section.clip)
        if not Path(clip).is_file():
            raise SystemExit(f"{clip} does not exist; pass another clip with --video / --find-video.")
    report = _report_head(args, argv, device)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as temp:
        workdir = Path(args.workdir) if args.workdir else Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        policy = None if args.omp_wait_policy == "inherit" else args.omp_wait_policy.upper()
        video, max_size = Path(args.video), _max_size(args, device)
        ctx = Context(
            args=args,
            run=Runner(workdir, args.timeout, omp_wait_policy=policy),
            workdir=workdir,
            device=device,
            video=video,
            max_size=max_size,
            working=probe(video, max_size=max_size) if video.is_file() else None,
            common={"device": args.device, "compile": bool(args.compile and device.type == "cuda")},
        )
        for section in chosen:
            report[section.name] = section.plan(ctx)
    report["load_average_end"] = load_average()
    report["wall_s"] = time.perf_counter() - started
    report["summary"], report["targets"] = summarise(report)
    return report


def run_job(spec_path: Path, out_path: Path) -> int:
    """The child side: run one job spec, write its record as JSON."""
    from benchmarks.gpu_jobs import GPU_JOBS
    from benchmarks.jobs import JOBS

    spec = json.loads(Path(spec_path).read_text())
    result = {**JOBS, **GPU_JOBS}[spec["kind"]](spec)
    Path(out_path).write_text(json.dumps(result, default=str, indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.job:
        return run_job(args.job, args.job_out)
    report = run_all(args, argv)
    table = render_table(report)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, default=str, indent=1))
        print(f"\nwrote {args.json}", file=sys.stderr)
    if args.write_readme:
        write_readme(table)
        print(f"updated {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
