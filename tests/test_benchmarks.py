"""The benchmark: its arithmetic, the library stages its table reads, and an end-to-end run on a tiny video.

The stage tests run the real jobs in-process on a generated clip (random weights): if a function
the table times loses its ``@timing.stage`` mark, moves out of the tracked path or stops being
recorded on the thread the row reads, they fail instead of the row quietly reading 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.jobs import job_find, job_ours
from benchmarks.measure import growth_per_100, linear_fit, per_frame_stats, require_stages
from benchmarks.report import FIND_STAGES, TRACK_STAGES, find_rows, memory_table, render_rows
from benchmarks.summary import summarise_memory
from tests.synthetic import make_video
from tracker import timing

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


@pytest.mark.parametrize(
    ("xs", "ys", "expected"),
    [
        ([150, 300, 600], [1.0, 2.0, 4.0], (1 / 150, 0.0)),
        ([100, 200], [5.0, 5.0], (0.0, 5.0)),
        ([100, 100], [1.0, 2.0], None),
        ([100], [1.0], None),
    ],
)
def test_linear_fit(xs, ys, expected):
    fit = linear_fit(xs, ys)
    if expected is None:
        assert fit is None
    else:
        assert fit == pytest.approx(expected)


@pytest.mark.parametrize(
    ("times", "median", "mean"),
    [
        ([0.0, 1.0, 2.0, 4.0], 1.0, 4 / 3),
        ([5.0], None, None),
    ],
)
def test_per_frame_stats(times, median, mean):
    stats = per_frame_stats(times)
    assert stats["median"] == (pytest.approx(median) if median is not None else None)
    assert stats["mean"] == (pytest.approx(mean) if mean is not None else None)


def test_growth_per_100_frames():
    assert growth_per_100([(100, 500 * MB), (300, 540 * MB)]) == pytest.approx(20.0)


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_video(tmp_path):
    video = tmp_path / "tiny.mp4"
    make_video(video, num_frames=12, width=160, height=120)
    out = tmp_path / "out.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--video",
            str(video),
            "--sections",
            "memory",
            "--frames",
            "12",
            "--image-size",
            "256",
            "--discover-every",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = report["memory"]["runs"]
    assert [(r["spec"]["kind"], r["spec"].get("discover_every")) for r in runs] == [
        ("ours", None),
        ("ours", 4),
        ("plain", None),
    ]
    for run in runs:
        assert "error" not in run, run["error"]
        assert run["num_frames"] == 12 and run["frames_done"] == 12
        assert run["peak_rss_mb"] > 100 and run["per_frame"]["mean"] > 0
    # the discovery run looked (frames 0, 4, 8) through the real detector and added nothing
    looked = runs[1]["discovery"]
    assert looked["frames"] == [0, 4, 8] and looked["found"] == 0 and looked["objects_at_end"] == 1
    assert looked["points"] + looked["skipped_points"] == 3 * 16 and looked["crops"] > 0
    assert "discovery" not in runs[0]
    assert report["load_average_start"] and report["machine"]["cores"]
    # one length: no slope, so the memory targets are reported as not run, never as a pass
    assert [t["status"] for t in report["targets"][:2]] == ["NOT RUN", "NOT RUN"]
    assert "memory growth per 100 frames, discovery on every 4 frames" in completed.stdout
    assert "| ours, discovery on: peak RSS |" in completed.stdout
    # the Stages table's row built from the library's stage hook, with figures, not "—"
    (row,) = [line for line in completed.stdout.splitlines() if line.startswith("| render + encode |")]
    assert "—" not in row and "draw " in row and "hand-off" in row


def _memory_run(kind: str, frames: int, peak: float, every: int | None = None) -> dict:
    spec = {"kind": kind, "discover_every": every} if every else {"kind": kind}
    run = {"spec": spec, "num_frames": frames, "frames_done": frames, "peak_rss_mb": peak}
    run.update(ru_maxrss_mb=peak, per_frame={"mean": 0.1}, within_run_growth_mb_per_100=1.0)
    if every:
        run["discovery"] = {"checks": frames // every}
    return run


def test_memory_rows_fit_discovery_on_beside_discovery_off():
    memory = {"image_size": 256, "model": "tiny", "discover_every": 20, "runs": []}
    for frames, ours, looking, plain in ((150, 800, 1100, 700), (300, 803, 1102, 820), (600, 809, 1107, 1060)):
        memory["runs"] += [
            _memory_run("ours", frames, ours),
            _memory_run("ours", frames, looking, every=20),
            _memory_run("plain", frames, plain),
        ]
    rows, targets = summarise_memory(memory, {})
    assert rows["ours"]["growth_mb_per_100"] == pytest.approx(2.0, abs=0.1)
    assert rows["discovery"]["growth_mb_per_100"] == pytest.approx(1.6, abs=0.05)
    assert [t["status"] for t in targets] == ["PASS", "PASS"]
    assert targets[1]["target"] == "memory growth per 100 frames, discovery on every 20 frames"
    assert targets[1]["value"] == "+1.6 MB (discovery off +2.0 MB)"
    lines = memory_table(memory, {"summary": {"memory": rows}})
    header, rule = lines[2], lines[3]
    assert header.count("|") == rule.count("|") == 10 and "ours, discovery on: peak RSS" in header
    assert "| 600 | 809 MB | 809 MB | 0.100 | 1107 MB | 0.100 (30) | 1060 MB |" in lines[6]
    growth = next(line for line in lines if line.startswith("| **growth / 100 frames**"))
    assert growth.count("|") == 10 and "**+1.6 MB**" in growth
    assert any("threshold and re-acquisition set to +inf" in line for line in lines)
    # without discovery runs the table keeps its old shape
    memory["discover_every"] = None
    memory["runs"] = [r for r in memory["runs"] if not r["spec"].get("discover_every")]
    rows, targets = summarise_memory(memory, {})
    assert len(targets) == 1 and memory_table(memory, {"summary": {"memory": rows}})[2].count("|") == 8


def test_a_stage_the_table_needs_fails_the_job_when_missing():
    with timing.record() as stages:
        pass
    with pytest.raises(RuntimeError, match="'draw'.*'decode' on thread 'sam2-frames'"):
        require_stages(stages, [("draw", None), ("decode", "sam2-frames")], "track run")


def test_rows_show_a_dash_for_a_stage_that_is_not_there():
    run = {
        "spec": {"kind": "ours", "image_size": 128},
        "num_frames": 10,
        "frames_done": 10,
        "children_cpu_s": 0.1,
        "stages": {"draw": {"seconds": 0.05, "calls": 10, "items": 0, "threads": {}}},
    }
    (row,) = render_rows({"memory": {"runs": [run]}})
    assert row[1] == "— ms/frame on the tracking thread" and "draw 5.0 ms" in row[2]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "shapes.mp4"
    make_video(path, num_frames=16, width=160, height=128, fps=8)
    return path


@pytest.mark.slow
def test_a_track_run_records_every_stage_the_table_reads(clip, tmp_path):
    spec = {"kind": "ours", "mode": "track", "video": str(clip), "workdir": str(tmp_path), "num_frames": 16}
    spec.update(model="tiny", image_size=128, device="cpu", label="test")
    record = job_ours(spec)  # raises when one of TRACK_STAGES was not recorded
    for name, thread in TRACK_STAGES:
        entry = record["stages"][name]
        assert (entry["threads"][thread] if thread else entry)["calls"] > 0, (name, thread)
    assert record["stages"]["sam2"]["calls"] == 16 and record["stages"]["store"]["calls"] == 16
    assert record["stages"]["encode"]["threads"]["overlay-writer"]["calls"] == 16
    (row,) = render_rows({"memory": {"runs": [record]}})
    assert "—" not in row[1] + row[2]


@pytest.mark.slow
def test_a_find_run_records_every_stage_the_table_reads(clip, tmp_path):
    spec = {"kind": "find", "video": str(clip), "workdir": str(tmp_path), "prompt": "a red disc"}
    spec.update(device="cpu", label="test")
    record = job_find(spec)  # raises when one of FIND_STAGES was not recorded
    for run in record["runs"]:
        assert not [name for name, _ in FIND_STAGES if not run["stages"].get(name, {}).get("calls")]
        assert run["stages"]["crop scoring"]["items"] > 0 and run["stages"]["clip"]["calls"] > 0
    rows = dict((name, notes) for name, _, notes in find_rows({"find": record}))
    assert "CLIP heat map" in rows["automatic masks (candidate proposal)"]
    assert "—" not in rows["crop scoring (CLIP)"]


def run_gpu_benchmark(tmp_path: Path, *extra: str, timeout: float = 400) -> tuple[dict, str]:
    """``benchmarks/gpu.py --dry``: the GPU benchmark's code on the CPU at toy sizes (2 frames)."""
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (out / "gpu-table.md").read_text().strip() == completed.stdout.strip()
    return json.loads((out / "gpu.json").read_text()), completed.stdout


def test_gpu_benchmark_reports_rows_it_had_no_time_for(tmp_path):
    report, table = run_gpu_benchmark(tmp_path, "--budget-s", "1")
    assert [run.get("skipped") for run in report["speed"]] == ["skipped: time budget"]
    assert "| tiny | no | 47.2 | skipped: time budget |" in table
    assert "Find: skipped: time budget" in table and table.count("skipped: time budget") == 4


@pytest.mark.slow
def test_gpu_benchmark_dry_run_on_the_cpu(tmp_path):
    report, table = run_gpu_benchmark(tmp_path, "--budget-s", "300")
    (speed,) = report["speed"]
    assert "error" not in speed, speed.get("error")
    arms = {arm["name"]: arm for arm in speed["arms"]}
    assert sorted(arms) == ["ours propagate", "ours track", "plain"]
    for arm in arms.values():
        assert arm["frames_done"] == 2 and arm["fps"] > 0, arm
    assert speed["warmup_s"] > 0 and speed["compiled"] is None
    (row,) = [line for line in table.splitlines() if line.startswith("| tiny | no |")]
    ratio = arms["ours track"]["s_per_frame_mean"] / arms["ours propagate"]["s_per_frame_mean"]
    assert f"{ratio:.2f}×" in row
    assert [run["frames_done"] for run in report["memory"]] == [4, 8]
    assert all(run["complete"] and run["peak_rss_mb"] > 100 for run in report["memory"])
    assert [run["run"] for run in report["find"]["runs"]] == ["cold", "warm"]
    assert "first candidates" in table


def test_discovery_rows_compare_discovery_off_and_on(tmp_path):
    video = tmp_path / "tiny.mp4"
    make_video(video, num_frames=10, width=160, height=120)
    out = tmp_path / "out.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--find-video", str(video), "--sections",
         "discovery", "--discover-every", "4", "--json", str(out)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(out.read_text())
    (run,) = report["discovery"]["runs"]
    assert "error" not in run, run.get("error")
    off, on, baseline = run["arms"]
    assert (off["name"], on["name"]) == ("discovery off", "discovery on")
    assert baseline["name"] == "discovery on, nothing skipped"
    assert off["frames_done"] == on["frames_done"] == baseline["frames_done"] == 10 and "discovery" not in off
    assert on["discovery"]["frames"] == [0, 4, 8] and on["discovery"]["found"] == 0
    assert on["discovery"]["reused_features"] >= 2  # frames 4 and 8 were just encoded by the tracker
    assert on["discovery"]["points"] + on["discovery"]["skipped_points"] == 3 * 16
    assert baseline["discovery"]["skipped_points"] == baseline["discovery"]["skipped_crops"] == 0
    assert baseline["discovery"]["points"] == 3 * 16
    summary = report["summary"]["discovery"]
    assert summary["checks"] == 3 and summary["s_per_check"] > 0
    assert summary["baseline"]["points_per_check"] == 16
    assert report["targets"][-1]["target"] == "discovery overhead, a check every 4 frames"
    assert "| discovery on, every 4 frames |" in completed.stdout
    assert "| discovery on, nothing skipped (as before) |" in completed.stdout
    # the detector alone on check frames 4 and 8, with and without a solid tracked mask
    detect = report["discovery"]["detect"]
    assert "error" not in detect, detect.get("error")
    plain, solid = detect["variants"]["nothing skipped"], detect["variants"]["solid tracked mask"]
    assert detect["checks"] == 2 and len(plain["seconds"]) == len(solid["seconds"]) == 2
    assert plain["points"] == 2 * 16 and plain["skipped_points"] == plain["skipped_crops"] == 0
    assert solid["skipped_points"] > 0 and solid["points"] + solid["skipped_points"] == 2 * 16
    assert "**The detector alone** on 2 check frames" in completed.stdout
    assert "| solid tracked mask |" in completed.stdout
