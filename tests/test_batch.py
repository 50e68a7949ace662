"""Batch processing without Ray: jobs from files, folders and CSV/JSONL, ids, resume, rows, summary.

The Ray runs themselves are in ``test_batch_ray.py``; everything here takes milliseconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tracker import batch
from tracker.batch import (
    CANCELLED,
    CRASHED,
    DONE,
    FAILED,
    NOT_STARTED,
    SKIPPED,
    BatchProgress,
    BatchSummary,
    Job,
    WorkerStatus,
    discover,
    read_jobs,
)
from tracker.cli import build_parser, main
from tracker.errors import InputError
from tracker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    """clips/: two cam1.mp4 in different folders, other containers, a hidden folder, notes, outputs."""
    clips = tmp_path / "clips"
    for name in ("day1/cam1.mp4", "day2/cam1.mp4", "b.MOV", "a.webm", "c.mkv", ".hidden/x.mp4", "notes.txt"):
        touch(clips / name)
    touch(clips / "out/a.webm/overlay.mp4")  # a batch's own outputs inside the input folder
    return clips


# -- jobs from files and folders ---------------------------------------------------------------
def test_a_folder_gives_one_job_per_video_with_ids_relative_to_it(tree):
    jobs = discover([tree], "a dog", exclude=tree / "out")
    assert [job.id for job in jobs] == ["a.webm", "b.MOV", "c.mkv", "day1/cam1.mp4", "day2/cam1.mp4"]
    assert all(job.video == tree / job.id and job.prompt == "a dog" for job in jobs)


def test_a_named_file_is_a_job_whatever_its_suffix_and_its_id_is_its_name(tree):
    jobs = discover([tree / "notes.txt", tree / "day1" / "cam1.mp4"], "x")
    assert [(job.id, job.video.name) for job in jobs] == [
        ("notes.txt", "notes.txt"),
        ("cam1.mp4", "cam1.mp4"),
    ]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (["day1", "day2"], "share the output folder 'cam1.mp4'"),
        (["day1/cam1.mp4", "day2/cam1.mp4"], "share the output folder 'cam1.mp4'"),
        (["missing"], "No such file or folder"),
    ],
)
def test_inputs_that_cannot_work_are_one_sentence(tree, inputs, message):
    with pytest.raises(InputError, match=message):
        discover([tree / name for name in inputs], "x")


# -- jobs files ---------------------------------------------------------------------------------
CSV = """video,prompt,negative,max_objects,start,end
day1/cam1.mp4,a dog,,2,1.5,
day2/cam1.mp4,,a cat,,,4
"""
JSONL = """{"video": "day1/cam1.mp4", "prompt": "a dog", "max_objects": 2, "start": 1.5}
# a comment, then a blank line

{"video": "day2/cam1.mp4", "negative": "a cat", "end": 4}
"""


@pytest.mark.parametrize(("name", "text"), [("jobs.csv", CSV), ("jobs.jsonl", JSONL)])
def test_csv_and_jsonl_jobs_files_read_the_same(tree, name, text):
    jobs = read_jobs(touch(tree / name, text), "default prompt", max_objects=1)
    assert jobs == [
        Job("day1/cam1.mp4", tree / "day1/cam1.mp4", "a dog", None, 2, 1.5, None),
        Job("day2/cam1.mp4", tree / "day2/cam1.mp4", "default prompt", "a cat", 1, None, 4.0),
    ]


def test_a_jobs_file_can_name_ids_and_videos_outside_its_folder(tree, tmp_path):
    outside = touch(tmp_path / "elsewhere" / "far.mp4")
    rows = [
        {"video": str(outside), "prompt": "p"},
        {"video": "a.webm", "prompt": "a dog", "id": "a-dog"},
        {"video": "a.webm", "prompt": "a cat", "id": "runs/a-cat"},
    ]
    path = touch(tree / "jobs.jsonl", "\n".join(json.dumps(row) for row in rows))
    assert [(job.id, job.video) for job in read_jobs(path)] == [
        ("far.mp4", outside),
        ("a-dog", tree / "a.webm"),
        ("runs/a-cat", tree / "a.webm"),
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("jobs.csv", "path,prompt\na.mp4,x\n", "must name the columns, one of them 'video'"),
        ("jobs.csv", "video,max_objects\na.mp4,two\n", "line 2: 'two' is not a number"),
        ("jobs.csv", "video,max_objects\na.mp4,1.5\n", "not a whole number"),
        ("jobs.csv", "video,colour\na.mp4,red\n", "unknown column"),
        ("jobs.jsonl", '{"video": "a.mp4"}\n{"video": \n', "line 2: not JSON"),
        ("jobs.jsonl", '["a.mp4"]\n', "each line must be a JSON object"),
        ("jobs.jsonl", '{"prompt": "x"}\n', "line 1: no video"),
        ("jobs.jsonl", '{"video": "a.mp4", "id": "../up"}\n', "must be a relative path"),
        ("jobs.jsonl", '{"video": "a.mp4"}\n{"video": "a.mp4"}\n', "share the output folder 'a.mp4'"),
        ("jobs.txt", "a.mp4\n", "is .csv or .jsonl"),
    ],
)
def test_jobs_files_that_cannot_work_name_the_line(tmp_path, name, text, message):
    with pytest.raises(InputError, match=message):
        read_jobs(touch(tmp_path / name, text))


def test_a_job_range_replaces_the_settings_range_and_is_part_of_its_request():
    settings = Settings(start_time=1.0, end_time=9.0, preset="fast")
    job = Job("a.mp4", Path("a.mp4"), "x", end=3.0)
    assert (job.settings(settings).start_time, job.settings(settings).end_time) == (1.0, 3.0)
    assert job.request(settings)["settings"]["end_time"] == 3.0
    assert job.request(settings) != Job("a.mp4", Path("a.mp4"), "y", end=3.0).request(settings)


# -- resume -----------------------------------------------------------------------------------
SETTINGS = Settings(preset="fast", random_weights=True)


def finish(out: Path, job: Job, status: str = DONE, request=None) -> Path:
    folder = out / job.id
    folder.mkdir(parents=True, exist_ok=True)
    row = batch.row_for(job, status, frames=12, objects=1, flags=0, out=str(folder))
    batch.write_json_atomic(folder / batch.RESULT, row | {"request": request or job.request(SETTINGS)})
    return folder / batch.RESULT


@pytest.mark.parametrize(
    ("change", "skipped"),
    [
        ({}, True),
        ({"status": FAILED}, False),
        ({"request": Job("a", Path("a"), "another prompt").request(SETTINGS)}, False),
        ({"corrupt": True}, False),
    ],
    ids=["done", "not-done", "changed-prompt", "corrupt"],
)
def test_a_video_is_skipped_only_when_done_for_the_same_request(tmp_path, change, skipped):
    job = Job("a", Path("a.mp4"), "a dog")
    path = finish(tmp_path, job, change.get("status", DONE), change.get("request"))
    if change.get("corrupt"):
        path.write_text('{"status": "do')
    found = batch.previous_result(tmp_path, job, job.request(SETTINGS))
    assert (found is not None) is skipped
    assert list(tmp_path.rglob("*.tmp")) == []


def test_a_rerun_with_everything_done_skips_without_starting_ray(tmp_path, monkeypatch):
    jobs = [Job("a", tmp_path / "a.mp4", "a dog"), Job("sub/b", tmp_path / "b.mp4", "a dog")]
    for job in jobs:
        finish(tmp_path / "out", job)
    monkeypatch.setattr(batch, "_connect", lambda *args: pytest.fail("Ray was started"))
    rows = []
    summary = batch.run(jobs, tmp_path / "out", SETTINGS, on_row=rows.append)
    assert [row["status"] for row in rows] == [SKIPPED, SKIPPED] and summary.exit_code == 0
    written = json.loads((tmp_path / "out" / batch.SUMMARY).read_text())
    assert written["counts"] == {SKIPPED: 2} and [v["id"] for v in written["videos"]] == ["a", "sub/b"]
    assert written["videos"][0]["frames"] == 12
    assert not (tmp_path / "out" / batch.MANIFEST).exists()  # nothing ended in this run


@pytest.mark.parametrize(
    ("jobs", "message"),
    [([], "No videos to track"), ([Job("a", Path("a.mp4"), None)], "No prompt for a")],
)
def test_a_batch_that_cannot_start_says_so_before_ray(tmp_path, monkeypatch, jobs, message):
    monkeypatch.setattr(batch, "_connect", lambda *args: pytest.fail("Ray was started"))
    with pytest.raises(InputError, match=message):
        batch.run(jobs, tmp_path / "out", SETTINGS)


# -- rows, the summary, retries, progress -------------------------------------------------------
def rows(*statuses: str) -> list[dict]:
    return [batch.row_for(Job(str(i), Path(f"{i}.mp4"), "x"), s) for i, s in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "cancelled", "code"),
    [
        ((DONE, SKIPPED), False, 0),
        ((DONE, FAILED), False, 1),
        ((DONE, CRASHED), False, 1),
        ((DONE, CANCELLED, NOT_STARTED), True, 130),
        ((), False, 0),
    ],
)
def test_exit_codes(statuses, cancelled, code):
    assert BatchSummary(Path("out"), rows(*statuses), cancelled=cancelled).exit_code == code


def test_the_summary_counts_in_status_order_and_rates_only_this_runs_videos():
    summary = BatchSummary(Path("out"), rows(FAILED, DONE, SKIPPED, DONE), seconds=30.0, workers=2)
    data = summary.to_dict()
    assert list(data["counts"].items()) == [(DONE, 2), (SKIPPED, 1), (FAILED, 1)]
    assert data["videos_per_minute"] == 4.0 and data["total"] == 4 and data["exit_code"] == 1


class _Manifest:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def append(self, row: dict) -> None:
        self.rows.append(row)


@pytest.mark.parametrize(("retries", "runs_again"), [(1, True), (0, False)])
def test_a_dead_worker_is_retried_then_crashed(retries, runs_again):
    driver = batch._Driver(
        Path("out"), SETTINGS, _Manifest(), BatchSummary(Path("out")), None, None, None, None
    )
    driver.retries = retries
    job = Job("a", Path("a.mp4"), "x")
    again = driver.crashed(job, 1, RuntimeError("The actor died unexpectedly. More text."))
    assert (again == (job, 2)) is runs_again
    if not runs_again:
        (row,) = driver.manifest.rows
        assert row["status"] == CRASHED and row["attempts"] == 1
        assert "died 1 time(s)" in row["message"] and "The actor died unexpectedly" in row["message"]


def test_the_progress_line_says_done_of_total_and_each_running_frame():
    progress = BatchProgress(
        3, 10, (WorkerStatus("a.mp4", "track", 17, 18, 48, 0.37), WorkerStatus("b.mp4", "find", fraction=0.5))
    )
    assert progress.line == "3/10 videos | a.mp4: frame 17 (18/48) | b.mp4: find 50%"


# -- Ray resources -----------------------------------------------------------------------------
class _FakeRay:
    def __init__(self, resources: dict) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict:
        return self.resources


@pytest.mark.parametrize(
    ("resources", "device", "workers", "cpus", "jobs", "expected"),
    [
        ({"CPU": 16}, "cpu", None, None, 100, (4, {"num_cpus": 4})),
        ({"CPU": 2}, "cpu", None, None, 100, (1, {"num_cpus": 2})),
        ({"CPU": 2}, "cpu", 2, 1, 100, (2, {"num_cpus": 1})),
        ({"CPU": 2}, "cpu", 8, 1, 100, (2, {"num_cpus": 1})),
        ({"CPU": 16}, "cpu", None, 2, 3, (3, {"num_cpus": 2})),
        ({"CPU": 16, "GPU": 2}, "auto", None, None, 100, (2, {"num_gpus": 1, "num_cpus": 1})),
        ({"CPU": 16, "GPU": 2}, "cpu", None, 8, 100, (2, {"num_cpus": 8})),
    ],
)
def test_one_worker_per_gpu_else_per_cpus_per_video(
    monkeypatch, resources, device, workers, cpus, jobs, expected
):
    monkeypatch.setattr(batch, "_ray", lambda: _FakeRay(resources))
    assert batch.plan_workers(Settings(device=device), jobs, workers, cpus) == expected


# -- the command line and the web app ----------------------------------------------------------
def _options(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {s for action in sub.choices[command]._actions for s in action.option_strings}


def test_batch_takes_every_track_option():
    assert _options("track") - {"--project"} <= _options("batch")
    assert {"--jobs", "--address", "--workers", "--cpus-per-video", "--retries", "--redo"} <= _options(
        "batch"
    )


def test_batch_without_inputs_is_one_line(capsys):
    assert main(["batch", "--prompt", "x", "--out", "out"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: Nothing to do: pass video files or folders, or --jobs FILE."
    )


def test_the_web_app_and_the_library_never_import_ray():
    code = (
        "import sys, app, ui.app, ui.handlers, ui.services, tracker.cli, tracker.batch, tracker.pipeline; "
        "sys.exit('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# -- the worker's rows (BatchWorker called in this process, the numpy stand-in workspace) ---------
def standin(hub, video, settings, workdir):
    from tests.standin_workspace import StandInWorkspace

    return StandInWorkspace.open(video, hub, settings, workdir)


def broken_code(hub, video, settings, workdir):
    raise KeyError("a bug")


@pytest.mark.parametrize(
    ("opener", "video", "status", "message"),
    [
        ("standin", "small", DONE, ""),
        ("standin", "missing", FAILED, "missing.mp4"),
        ("broken_code", "small", batch.ERRORED, "unexpected KeyError: 'a bug' (traceback in"),
    ],
)
def test_the_worker_turns_each_outcome_into_a_row(small_video, tmp_path, opener, video, status, message):
    worker = batch.BatchWorker(None, f"tests.test_batch:{opener}")
    path = small_video if video == "small" else tmp_path / "missing.mp4"
    job = Job("x/v.mp4", path, "a red disc")
    request = job.request(SETTINGS)
    row = worker.run_job(job, str(tmp_path / "out"), Settings(preset="fast"), request)
    assert row["status"] == status and message in row["message"] and row["attempts"] == 1
    folder = tmp_path / "out" / "x" / "v.mp4"
    result = folder / batch.RESULT
    assert result.exists() is (status == DONE)
    assert (folder / batch.ERROR).exists() is (status == batch.ERRORED)
    if status == DONE:
        assert row["frames"] == 12 and (folder / "annotations.zip").exists()
        assert batch.previous_result(tmp_path / "out", job, request)["summary"]["frames_tracked"] == 12
    if status == batch.ERRORED:
        assert "KeyError: 'a bug'" in (folder / batch.ERROR).read_text()
    assert worker.status() is None  # idle again


def test_a_cancelled_worker_stops_and_marks_nothing_done(small_video, tmp_path):
    worker = batch.BatchWorker(None, "tests.test_batch:standin")
    worker.cancel()
    job = Job("v.mp4", small_video, "a red disc")
    row = worker.run_job(job, str(tmp_path), Settings(preset="fast"), job.request(SETTINGS))
    assert row["status"] == CANCELLED and "Stopped before" in row["message"]
    assert not (tmp_path / "v.mp4" / batch.RESULT).exists()
