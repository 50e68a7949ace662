"""The benchmark script runs end to end on a tiny generated video (ours and plain SAM 2, one length)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run import growth_per_100, linear_fit, per_frame_stats
from tests.synthetic import make_video

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
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = report["memory"]["runs"]
    assert [r["spec"]["kind"] for r in runs] == ["ours", "plain"]
    for run in runs:
        assert "error" not in run, run["error"]
        assert run["num_frames"] == 12 and run["frames_done"] == 12
        assert run["peak_rss_mb"] > 100 and run["per_frame"]["mean"] > 0
    assert report["load_average_start"] and report["machine"]["cores"]
    # one length: no slope, so the memory target is reported as not run, never as a pass
    assert report["targets"][0]["status"] == "NOT RUN"
    assert "memory growth per 100 frames" in completed.stdout
