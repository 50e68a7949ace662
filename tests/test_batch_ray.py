"""Batch processing on a real local Ray (one session for the module, 2 CPUs): real models, random weights.

Two workers on generated clips at image size 256; one video's outputs compared file by file
with ``track`` on the same video; a broken file and a prompt that matches nothing in the same
batch; a worker that kills itself mid-video; resume; cancel. What random weights cannot make
happen (nothing matched, the worker dying, a slow video) comes from the named stand-in
``tests/standins_batch.py``, run on the workers.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path

import pytest

from tests.synthetic import make_video
from tracker import batch
from tracker.batch import CANCELLED, DONE, FAILED, NOT_STARTED, SKIPPED, read_jobs
from tracker.cli import main
from tracker.settings import Settings

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
STANDIN = "tests.standins_batch:open_workspace"
FAST = Settings(random_weights=True, preset="fast", image_size=256, max_size=256, device="cpu", offline=True)
FAST_ARGS = ["--random-weights", "--device", "cpu", "--image-size", "256", "--max-size", "256",
             "--preset", "fast", "--offline"]  # fmt: skip
FRAMES = 12


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for every test here; workers import this checkout (tracker, tests)."""
    env = {"PYTHONPATH": str(ROOT), "GOMP_SPINCOUNT": "10000"}
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", runtime_env={"env_vars": env})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """clips/a.mp4 and clips/sub/a.mp4 (12 frames, 160×120), clips/broken.mp4 (not a video)."""
    root = tmp_path_factory.mktemp("batch") / "clips"
    for path in (root / "a.mp4", root / "sub" / "a.mp4"):
        path.parent.mkdir(parents=True, exist_ok=True)
        make_video(path, num_frames=FRAMES, width=160, height=120, fps=12)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing")
    return root


def write_jobs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def by_id(summary) -> dict[str, dict]:
    return {row["id"]: row for row in summary.rows}


@pytest.fixture(scope="module")
def first_batch(clips):
    """Two workers: two good videos, a broken file and a prompt that matches nothing."""
    jobs = read_jobs(
        write_jobs(
            clips.parent / "jobs.jsonl",
            [
                {"video": "clips/a.mp4", "prompt": "a red disc"},
                {"video": "clips/sub/a.mp4", "prompt": "a blue square"},
                {"video": "clips/broken.mp4", "prompt": "a red disc"},
                {"video": "clips/a.mp4", "id": "nothing", "prompt": "nothing like this"},
            ],
        )
    )
    out = clips.parent / "out"
    ended: list[dict] = []
    summary = batch.run(
        jobs, out, FAST, workers=2, cpus_per_video=1, open_workspace=STANDIN, on_row=ended.append
    )
    return jobs, out, summary, ended


def test_two_workers_finish_the_good_videos_and_report_the_others(first_batch):
    jobs, out, summary, ended = first_batch
    rows = by_id(summary)
    assert summary.workers == 2 and summary.exit_code == 1
    assert summary.counts == {DONE: 2, FAILED: 2}
    assert rows["clips/a.mp4"]["frames"] == rows["clips/sub/a.mp4"]["frames"] == FRAMES
    assert (
        rows["clips/broken.mp4"]["error"] == "VideoError"
        and "not a video" in rows["clips/broken.mp4"]["message"]
    )
    assert (
        rows["nothing"]["error"] == "NoCandidates"
        and "Nothing matched 'nothing like this'" in rows["nothing"]["message"]
    )
    assert all(row["attempts"] == 1 for row in summary.rows)
    assert len({row["worker"] for row in summary.rows}) == 2  # both workers took videos
    # batch.jsonl: one line per video in completion order; the summary: job order
    lines = [json.loads(line) for line in (out / batch.MANIFEST).read_text().splitlines()]
    assert [line["id"] for line in lines] == [row["id"] for row in ended]
    written = json.loads((out / batch.SUMMARY).read_text())
    assert [v["id"] for v in written["videos"]] == [job.id for job in jobs] and written[
        "counts"
    ] == summary.counts
    # result.json marks exactly the done videos
    assert sorted(p.parent.relative_to(out).as_posix() for p in out.rglob(batch.RESULT)) == [
        "clips/a.mp4",
        "clips/sub/a.mp4",
    ]
    result = json.loads((out / "clips/a.mp4" / batch.RESULT).read_text())
    assert result["status"] == DONE and result["summary"]["frames_tracked"] == FRAMES
    assert result["request"] == json.loads(json.dumps(jobs[0].request(FAST)))


def test_a_videos_outputs_are_the_files_track_writes(first_batch, clips, tmp_path):
    _, out, _, _ = first_batch
    track_out = tmp_path / "track"
    args = ["-q", "track", str(clips / "a.mp4"), "--prompt", "a red disc", "--out", str(track_out)]
    assert main(args + FAST_ARGS) == 0
    from_batch = out / "clips" / "a.mp4"

    def files(folder: Path) -> set[str]:
        return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}

    assert files(from_batch) - {batch.RESULT} == files(track_out)
    members = {name: zipfile.ZipFile(folder / "annotations.zip").namelist() for name, folder in
               (("batch", from_batch), ("track", track_out))}  # fmt: skip
    assert members["batch"] == members["track"]
    same = [
        name
        for name in files(track_out)
        if name.startswith("masks/") or name.endswith((".json", ".csv", ".txt"))
    ]
    assert len(same) > FRAMES
    for name in same:
        if name == "manifest.json":  # the project file says when it was written
            ours, theirs = (json.loads((folder / name).read_text()) for folder in (from_batch, track_out))
            assert ours.pop("created") and theirs.pop("created") and ours == theirs
            continue
        assert (from_batch / name).read_bytes() == (track_out / name).read_bytes(), name


def test_a_rerun_skips_what_is_done_and_runs_the_rest(first_batch, clips):
    jobs, out, first, _ = first_batch
    done_at = (out / "clips/a.mp4" / batch.RESULT).stat().st_mtime_ns
    (out / "clips/sub/a.mp4" / batch.RESULT).unlink()  # as if it was running when the batch stopped
    summary = batch.run(jobs, out, FAST, workers=1, cpus_per_video=1, open_workspace=STANDIN)
    rows = by_id(summary)
    assert {k: row["status"] for k, row in rows.items()} == {
        "clips/a.mp4": SKIPPED,
        "clips/sub/a.mp4": DONE,
        "clips/broken.mp4": FAILED,
        "nothing": FAILED,
    }
    assert (out / "clips/a.mp4" / batch.RESULT).stat().st_mtime_ns == done_at
    lines = (out / batch.MANIFEST).read_text().splitlines()
    assert len(lines) == 4 + 3  # appended: the three that ran again


def test_a_worker_that_dies_mid_video_is_retried_on_a_fresh_one(clips, tmp_path):
    video = tmp_path / "crash.mp4"
    video.write_bytes((clips / "a.mp4").read_bytes())
    jobs = batch.discover([video], "crash on purpose")
    summary = batch.run(
        jobs, tmp_path / "out", FAST, workers=1, cpus_per_video=1, retries=1, open_workspace=STANDIN
    )
    (row,) = summary.rows
    assert Path(str(video) + ".crashed").exists()  # the first worker did die
    dead_pid = int(Path(str(video) + ".crashed").read_text())
    assert row["status"] == DONE and row["attempts"] == 2 and row["frames"] == FRAMES
    assert not row["worker"].endswith(f":{dead_pid}") and summary.exit_code == 0


def test_cancel_stops_running_videos_at_a_frame_and_leaves_queued_ones(clips, tmp_path):
    jobs = [batch.Job(f"v{i}", clips / "a.mp4", "slow red disc") for i in range(4)]
    cancel = threading.Event()

    def stop_once_tracking(progress: batch.BatchProgress) -> None:
        running = progress.running
        if len(running) == 2 and all(s.stage == "track" and (s.done or 0) >= 1 for s in running):
            cancel.set()

    out = tmp_path / "out"
    summary = batch.run(
        jobs, out, FAST, workers=2, cpus_per_video=1, open_workspace=STANDIN,
        progress=stop_once_tracking, cancel=cancel,
    )  # fmt: skip
    statuses = [row["status"] for row in summary.rows]
    assert summary.cancelled and summary.exit_code == 130
    assert statuses.count(NOT_STARTED) == 2 and statuses.count(CANCELLED) == 2
    for row in summary.rows:
        if row["status"] == CANCELLED:
            assert 1 <= row["frames"] < FRAMES and row["message"].startswith("stopped after")
            assert (out / row["id"] / "annotations.zip").exists()  # what was tracked is kept
    assert not list(out.rglob(batch.RESULT))  # nothing counts as done
    written = json.loads((out / batch.SUMMARY).read_text())
    assert written["cancelled"] and written["counts"] == {CANCELLED: 2, NOT_STARTED: 2}
    assert len((out / batch.MANIFEST).read_text().splitlines()) == 4


def test_every_node_sees_the_output_folder(tmp_path):
    batch.check_shared_storage(tmp_path, [tmp_path])  # one machine: it does
    assert (
        batch._node_sees(str(tmp_path / "missing-token"), "t", [])
        == f"cannot see the output folder {tmp_path}"
    )
    assert os.listdir(tmp_path) == []  # the check leaves nothing behind


def test_the_command_line_passes_the_track_options_to_every_video(clips, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["-q", "batch", str(clips / "sub"), "--prompt", "a blue square", "--out", str(out), *FAST_ARGS,
            "--workers", "1", "--cpus-per-video", "1", "--end", "0.5", "--formats", "coco,flags"]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().out.split()[:3] == ["done", "a.mp4", "6"]  # 0.5 s at 12 fps
    folder = out / "a.mp4"
    assert {p.name for p in folder.iterdir()} >= {"coco.json", "flags.json", "annotations.zip", batch.RESULT}
    assert not (folder / "masks").exists()
    assert json.loads((folder / batch.RESULT).read_text())["request"]["settings"]["end_time"] == 0.5
    assert main(args) == 0 and capsys.readouterr().out.split()[:2] == ["skipped", "a.mp4"]
    assert main([*args, "--end", "0.25"]) == 0  # another range: not the same job, run again
    assert capsys.readouterr().out.split()[:3] == ["done", "a.mp4", "3"]
