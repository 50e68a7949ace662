"""Many videos: ``python -m tracker batch`` on Ray, on one machine or a cluster.

Each video is a :class:`Job`; its outputs go to ``OUT/<job id>/`` and are exactly what
``python -m tracker track VIDEO --out OUT/<job id>`` writes, because every job is one call of
:func:`tracker.pipeline.track_video`. Ray Core actors (:class:`BatchWorker`) hold the models,
load them once and take videos one after another; the driver (:func:`run`) feeds them::

    from tracker.batch import discover, run
    from tracker.settings import Settings

    jobs = discover(["clips/"], prompt="a dog")
    summary = run(jobs, "out/", Settings(preset="fast"))      # a local Ray, or address="ray://…"
    summary.counts                                            # {"done": 7, "failed": 1}

What the output folder holds:

* ``OUT/<job id>/``: ``track``'s files, then ``result.json`` (written last, atomically) once the
  video is done. A rerun skips every job whose ``result.json`` was made for the same request
  (prompt, range, settings, formats), unless ``redo``.
* ``OUT/<job id>/error.txt``: the traceback of an unexpected exception.
* ``OUT/batch.jsonl``: one row per video as it ends, in completion order (appended across runs).
* ``OUT/batch_summary.json``: this run's rows in job order and the counts, written at the end
  (also after Ctrl+C).

Failures are rows, not crashes (:data:`STATUSES`): a problem a person can fix
(:class:`~tracker.errors.TrackerError`: not a video, nothing matched, missing weights) is
``"failed"`` with its one-line message and is not retried; any other exception is ``"error"``
(traceback in ``error.txt``); a worker process that dies (out of memory, killed) is retried on
a fresh actor up to ``retries`` times, then ``"crashed"``. A stop (``cancel`` set, or Ctrl+C)
marks queued videos ``"not started"`` and stops running ones at their next frame through
``track_video``'s cancel flag (:meth:`BatchWorker.cancel`): ``"cancelled"``, no ``result.json``.

``ray`` is imported inside functions only: importing this module (or the command line) never
imports it, and the web app never needs it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
import logging
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import Cancelled, InputError, PackageUnavailable, TrackerError
from .settings import Settings

if TYPE_CHECKING:
    from .pipeline import LengthLimit, RunEvent

logger = logging.getLogger(__name__)

# The containers ``track`` reads (anything ffmpeg decodes); a folder is walked for these.
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".wmv", ".flv")
RESULT = "result.json"
ERROR = "error.txt"
MANIFEST = "batch.jsonl"
SUMMARY = "batch_summary.json"
DONE, SKIPPED, FAILED, ERRORED, CRASHED = "done", "skipped", "failed", "error", "crashed"
CANCELLED, NOT_STARTED = "cancelled", "not started"
STATUSES = (DONE, SKIPPED, FAILED, ERRORED, CRASHED, CANCELLED, NOT_STARTED)
DEFAULT_CPUS_PER_VIDEO = 4
RAY_PIN = "ray==2.60.0"  # as in requirements-batch.txt


# ---------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class Job:
    """One video to track: ``id`` names its output folder ``OUT/<id>/`` (a relative POSIX path).

    ``prompt`` / ``negative`` / ``max_objects`` are :func:`~tracker.pipeline.track_video`'s;
    ``start`` / ``end`` (seconds) replace the settings' range for this video. ``None`` means
    the batch's value.
    """

    id: str
    video: Path
    prompt: str | None = None
    negative: str | None = None
    max_objects: int | None = None
    start: float | None = None
    end: float | None = None

    def settings(self, settings: Settings) -> Settings:
        """The batch's settings with this job's range."""
        return dataclasses.replace(
            settings,
            start_time=self.start if self.start is not None else settings.start_time,
            end_time=self.end if self.end is not None else settings.end_time,
        )

    def request(self, settings: Settings, formats: Sequence[str] | None = None) -> dict[str, Any]:
        """What decides this job's outputs; a rerun skips the job only if it is unchanged."""
        return {
            "prompt": self.prompt,
            "negative": self.negative,
            "max_objects": self.max_objects,
            "settings": self.settings(settings).to_dict(),
            "formats": None if formats is None else list(formats),
        }


def _job_id(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` as a POSIX path, or None when it is not inside ``root``."""
    try:
        return PurePosixPath(*path.relative_to(root).parts).as_posix()
    except ValueError:
        return None


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def discover(
    inputs: Iterable[str | os.PathLike[str]],
    prompt: str | None = None,
    *,
    negative: str | None = None,
    max_objects: int | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> list[Job]:
    """Jobs for video files and folders (walked, in name order, for :data:`VIDEO_SUFFIXES`).

    A folder's videos get ids relative to the folder (``day1/cam1.mp4``); a named file, its
    name. Hidden files and folders and anything under ``exclude`` (the output folder) are left
    out. A named file is always a job, whatever its suffix: if it is not a video, its row says so.
    """
    skip = Path(exclude).resolve() if exclude is not None else None
    jobs: list[Job] = []
    for given in inputs:
        path = Path(given).expanduser()
        if not path.exists():
            raise InputError(f"No such file or folder: {path}; pass video files or folders holding them.")
        path = path.resolve()
        if path.is_file():
            jobs.append(Job(path.name, path, prompt, negative, max_objects))
            continue
        found = 0
        for video in sorted(path.rglob("*")):
            relative = video.relative_to(path).parts
            if (
                video.is_file()
                and video.suffix.lower() in VIDEO_SUFFIXES
                and not any(part.startswith(".") for part in relative)
                and not _inside(video, skip)
            ):
                jobs.append(Job(str(_job_id(video, path)), video, prompt, negative, max_objects))
                found += 1
        if not found:
            logger.warning("no videos (%s) in %s", ", ".join(VIDEO_SUFFIXES), path)
    return check_unique(jobs)


def check_unique(jobs: list[Job]) -> list[Job]:
    """``jobs`` unchanged, or :class:`InputError` naming the first two that share an output folder."""
    seen: dict[str, Job] = {}
    for job in jobs:
        other = seen.get(job.id.lower())  # case-insensitive file systems fold them together
        if other is not None:
            raise InputError(
                f"Two videos would share the output folder {job.id!r} ({other.video} and {job.video}); "
                "pass their common parent folder instead, or give each an id in a --jobs file."
            )
        seen[job.id.lower()] = job
    return jobs


JOB_COLUMNS = ("video", "prompt", "negative", "max_objects", "start", "end", "id")


def read_jobs(
    path: str | os.PathLike[str],
    prompt: str | None = None,
    *,
    negative: str | None = None,
    max_objects: int | None = None,
) -> list[Job]:
    """Jobs from a ``.csv`` (header row) or ``.jsonl`` file with the columns :data:`JOB_COLUMNS`.

    Only ``video`` is required; a relative one is relative to the jobs file's folder, and so is
    the job id (``id`` overrides it; a video outside the folder gets its file name). Empty
    values take the batch's (``prompt``, ``negative``, ``max_objects``, the settings' range).
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"Cannot read the jobs file {path} ({error.strerror or error}).") from None
    rows = _parse_rows(text, path)
    root = path.resolve().parent
    defaults = {"prompt": prompt, "negative": negative, "max_objects": max_objects}
    return check_unique([_job_from_row(row, line, path, root, defaults) for line, row in rows])


def _parse_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` pairs of a CSV or JSONL jobs file, keys lower-cased."""
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "video" not in [f.strip().lower() for f in reader.fieldnames]:
            raise InputError(f"{path}: the first row must name the columns, one of them 'video'.")
        for row in reader:
            cleaned = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            rows.append((reader.line_num, cleaned))
        return rows
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise InputError(f"{path}: a jobs file is .csv or .jsonl (one JSON object a line).")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}, line {number}: not JSON ({error.msg}).") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}, line {number}: each line must be a JSON object.")
        rows.append((number, {str(k).strip().lower(): v for k, v in row.items()}))
    return rows


def _job_from_row(row: dict[str, Any], line: int, path: Path, root: Path, defaults: dict) -> Job:
    unknown = sorted(set(row) - set(JOB_COLUMNS))
    where = f"{path}, line {line}"
    if unknown:
        raise InputError(f"{where}: unknown column(s) {', '.join(unknown)}; use {', '.join(JOB_COLUMNS)}.")
    values = {k: (None if v is None or (isinstance(v, str) and not v.strip()) else v) for k, v in row.items()}
    if values.get("video") is None:
        raise InputError(f"{where}: no video.")
    video = Path(str(values["video"])).expanduser()
    video = (video if video.is_absolute() else root / video).resolve()
    job_id = values.get("id")
    if job_id is None:
        job_id = _job_id(video, root) or video.name
    job_id = PurePosixPath(str(job_id).replace("\\", "/")).as_posix().strip("/")
    if not job_id or job_id == "." or ".." in PurePosixPath(job_id).parts:
        raise InputError(
            f"{where}: the id {values.get('id')!r} must be a relative path inside the output folder."
        )
    try:
        max_objects = _number(values.get("max_objects"), int)
        start, end = _number(values.get("start"), float), _number(values.get("end"), float)
    except ValueError as error:
        raise InputError(f"{where}: {error}.") from None

    def text(key: str) -> str | None:
        value = values.get(key)
        return str(value) if value is not None else defaults.get(key)

    return Job(
        job_id,
        video,
        text("prompt"),
        text("negative"),
        max_objects if max_objects is not None else defaults["max_objects"],
        start,
        end,
    )


def _number(value: Any, kind: type) -> Any:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if kind is int:
        if not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)
    return number


# ---------------------------------------------------------------------- files in OUT
def job_folder(out: Path, job: Job) -> Path:
    return Path(out) / job.id


def previous_result(out: Path, job: Job, request: dict[str, Any]) -> dict[str, Any] | None:
    """The job's ``result.json`` if it is done for this ``request``; else None (run it)."""
    path = job_folder(out, job) / RESULT
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("status") != DONE:
        return None
    if data.get("request") != json.loads(json.dumps(request)):
        logger.info("%s: prompt, range or settings changed since it was done; running it again", job.id)
        return None
    return data


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Manifest:
    """``OUT/batch.jsonl``: one line per video as it ends (flushed and synced), then the summary."""

    def __init__(self, out: Path, run_id: str) -> None:
        self.out = out
        self.run_id = run_id
        self.path = out / MANIFEST

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps({"run": self.run_id, **row})
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def finish(self, summary: BatchSummary) -> Path:
        path = self.out / SUMMARY
        write_json_atomic(path, summary.to_dict())
        return path


# ---------------------------------------------------------------------- rows and the summary
def row_for(job: Job, status: str, message: str = "", **extra: Any) -> dict[str, Any]:
    """A video's row in ``batch.jsonl`` / the summary."""
    return {
        "id": job.id,
        "video": str(job.video),
        "prompt": job.prompt,
        "status": status,
        "message": message,
    } | extra


@dataclass
class BatchSummary:
    """What a batch run did: ``rows`` in job order (one per job), counts, time, workers."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    cancelled: bool = False
    address: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return {status: counts[status] for status in STATUSES if status in counts}

    @property
    def exit_code(self) -> int:
        """0 when every video is done (now or before), 130 when stopped, 1 when any failed."""
        if self.cancelled:
            return 130
        return 0 if all(row["status"] in (DONE, SKIPPED) for row in self.rows) else 1

    @property
    def videos_per_minute(self) -> float:
        done = sum(row["status"] == DONE for row in self.rows)
        return 60.0 * done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "total": len(self.rows),
            "counts": self.counts,
            "exit_code": self.exit_code,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 3),
            "workers": self.workers,
            "videos_per_minute": round(self.videos_per_minute, 3),
            "address": self.address,
            "videos": self.rows,
        }


# ---------------------------------------------------------------------- the worker (a Ray actor)
@dataclass(frozen=True)
class WorkerStatus:
    """What a worker is doing: the job, the pipeline stage and the frame (tracking) it is on."""

    job_id: str
    stage: str = "open"
    frame: int | None = None
    done: int | None = None
    total: int | None = None
    fraction: float = 0.0


class BatchWorker:
    """The body of the Ray actor: models loaded once (one :class:`ModelHub`), videos one by one.

    :meth:`run_job` never raises for a video's problems: it returns the video's row. The driver
    calls :meth:`status` and :meth:`cancel` while a job runs (the actor is threaded).
    ``open_workspace`` ("module:function", called as ``function(hub, video, settings, workdir)``)
    replaces :meth:`Workspace.open`, e.g. with a stand-in in the tests.
    """

    def __init__(self, cpus: int | None = None, open_workspace: str | None = None) -> None:
        from .models import ModelHub

        if cpus:
            import torch

            torch.set_num_threads(int(cpus))
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        self.hub = ModelHub()
        self.open_workspace = open_workspace
        self._cancel = threading.Event()
        self._status: WorkerStatus | None = None

    def where(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def status(self) -> WorkerStatus | None:
        return self._status

    def cancel(self) -> None:
        """Stop the running video at its next frame (and any video it is given from now on)."""
        self._cancel.set()

    def run_job(
        self,
        job: Job,
        out: str,
        settings: Settings,
        request: dict[str, Any],
        formats: Sequence[str] | None = None,
        limit: LengthLimit | None = None,
        attempt: int = 1,
    ) -> dict[str, Any]:
        """Track ``job`` into ``out/<job id>/``; its row (``result.json`` written when done)."""
        from .pipeline import track_video

        folder = job_folder(Path(out), job)
        started = time.perf_counter()
        self._status = WorkerStatus(job.id)
        extra = {"attempts": attempt, "worker": self.where()}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for stale in (folder / RESULT, folder / ERROR):
                stale.unlink(missing_ok=True)
            summary = track_video(
                job.video, folder, job.settings(settings), job.prompt,
                negative=job.negative, max_objects=job.max_objects, formats=formats, hub=self.hub,
                limit=limit, progress=self._progress(job), cancel=self._cancel,
                open_workspace=self._opener(),
            )  # fmt: skip
        except (Cancelled, KeyboardInterrupt) as stop:
            return row_for(job, CANCELLED, _one_line(stop) or "stopped", seconds=_since(started), **extra)
        except TrackerError as error:
            return row_for(
                job, FAILED, _one_line(error), error=type(error).__name__, seconds=_since(started), **extra
            )
        except Exception as error:  # a bug: keep the traceback beside the video's outputs
            with contextlib.suppress(OSError):
                (folder / ERROR).write_text(traceback.format_exc(), encoding="utf-8")
            message = f"unexpected {type(error).__name__}: {_one_line(error)} (traceback in {folder / ERROR})"
            return row_for(
                job, ERRORED, message, error=type(error).__name__, seconds=_since(started), **extra
            )
        finally:
            self._status = None
        row = row_for(
            job,
            CANCELLED if summary.cancelled else DONE,
            f"stopped after {summary.frames_tracked} frames" if summary.cancelled else "",
            seconds=_since(started),
            frames=summary.frames_tracked,
            objects=len(summary.objects),
            flags=summary.num_flags,
            out=str(folder),
            **extra,
        )
        if not summary.cancelled:
            write_json_atomic(folder / RESULT, row | {"request": request, "summary": summary.to_dict()})
        return row

    def _progress(self, job: Job) -> Callable[[RunEvent], None]:
        def update(event: RunEvent) -> None:
            self._status = WorkerStatus(
                job.id, event.stage, event.frame, event.done, event.total, event.fraction
            )

        return update

    def _opener(self):
        if not self.open_workspace:
            return None
        import importlib

        module, _, name = self.open_workspace.partition(":")
        factory = getattr(importlib.import_module(module), name)
        return lambda video, settings, workdir: factory(self.hub, video, settings, workdir)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


# ---------------------------------------------------------------------- progress
@dataclass(frozen=True)
class BatchProgress:
    """The driver's view: videos ended / to run, and what each running worker is on."""

    ended: int
    total: int
    running: tuple[WorkerStatus, ...] = ()
    skipped: int = 0

    @property
    def line(self) -> str:
        parts = [f"{self.ended}/{self.total} videos"]
        for status in self.running:
            if status.stage == "track" and status.total:
                parts.append(f"{status.job_id}: frame {status.frame} ({status.done}/{status.total})")
            else:
                parts.append(f"{status.job_id}: {status.stage} {status.fraction * 100:.0f}%")
        return " | ".join(parts)


# ---------------------------------------------------------------------- Ray
def _ray():
    try:
        import ray
    except ImportError:
        raise PackageUnavailable(
            f"Batch processing needs Ray, which is not installed: pip install {RAY_PIN} "
            "(or pip install -r requirements-batch.txt)."
        ) from None
    return ray


def _connect(address: str | None, cpus: int | None) -> bool:
    """Connect to Ray (a running one, ``address``, or a new local one); True if we started it."""
    ray = _ray()
    if ray.is_initialized():
        return False
    here = str(Path(__file__).resolve().parent.parent)  # so the workers import this checkout's tracker
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        # GOMP_SPINCOUNT as ``python -m tracker`` sets it: workers sharing cores must not spin-wait
        "runtime_env": {
            "env_vars": {"PYTHONPATH": path, "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", "10000")}
        },
    }
    if address:
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise InputError(
                f"Cannot connect to the Ray cluster at {address} ({_one_line(error)[:200]}); "
                "start it there with `ray start --head`, or check --address / $RAY_ADDRESS."
            ) from None
    else:
        ray.init(num_cpus=cpus, **options)
    return True


def _node_sees(token_path: str, token: str, folders: list[str]) -> str | None:
    """On one node: None if it reads ``token`` at ``token_path`` and every folder exists."""
    try:
        if Path(token_path).read_text(encoding="utf-8") != token:
            return f"reads another file at {token_path}"
    except OSError:
        return f"cannot see the output folder {Path(token_path).parent}"
    missing = [folder for folder in folders if not Path(folder).is_dir()]
    return f"cannot see the videos in {missing[0]}" if missing else None


def check_shared_storage(out: Path, folders: Iterable[Path], timeout: float = 120.0) -> None:
    """Every live node of the cluster sees ``out`` and the videos' folders, or one-line InputError."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    token_path = out / f".batch-check-{token}"
    token_path.write_text(token, encoding="utf-8")
    probe = ray.remote(num_cpus=0)(_node_sees)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    try:
        refs = [
            probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(str(token_path), token, sorted({str(f) for f in folders}))
            for node in nodes
        ]
        answers = ray.get(refs, timeout=timeout)
    finally:
        token_path.unlink(missing_ok=True)
    for node, problem in zip(nodes, answers, strict=True):
        if problem:
            raise InputError(
                f"The Ray node {node.get('NodeManagerAddress', '?')} {problem}: put --out and the videos "
                "on storage every machine mounts at the same path (e.g. NFS), or run without --address."
            )


def plan_workers(
    settings: Settings, jobs: int, workers: int | None, cpus_per_video: int | None
) -> tuple[int, dict[str, Any]]:
    """How many actors and each one's Ray resources: one per GPU, else one per ``cpus_per_video``."""
    ray = _ray()
    resources = ray.cluster_resources()
    total_cpus = max(1, int(resources.get("CPU", 1)))
    gpus = (
        int(resources.get("GPU", 0)) if settings.device == "auto" or settings.device.startswith("cuda") else 0
    )
    if gpus:
        count, options = gpus, {"num_gpus": 1, "num_cpus": min(cpus_per_video or 1, total_cpus)}
    else:
        cpus = min(cpus_per_video or DEFAULT_CPUS_PER_VIDEO, total_cpus)
        count, options = max(1, total_cpus // cpus), {"num_cpus": cpus}
    if workers is not None and workers > count:
        logger.warning("the cluster has room for %d workers, not %d", count, workers)
    count = min(count, workers or count, max(jobs, 1))
    return count, options


# ---------------------------------------------------------------------- the driver
def run(
    jobs: Sequence[Job],
    out: str | os.PathLike[str],
    settings: Settings,
    address: str | None = None,
    *,
    workers: int | None = None,
    cpus_per_video: int | None = None,
    retries: int = 1,
    redo: bool = False,
    formats: Sequence[str] | None = None,
    limit: LengthLimit | None = None,
    progress: Callable[[BatchProgress], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    cancel: threading.Event | None = None,
    open_workspace: str | None = None,
) -> BatchSummary:
    """Track every job on Ray workers into ``out``; the summary (also ``OUT/batch_summary.json``).

    * ``address``: a running Ray cluster (default ``$RAY_ADDRESS``, else a local Ray is started;
      a Ray already initialised in this process is used as it is). With an address, every node
      must see ``out`` and the videos (checked before anything is dispatched).
    * ``workers``: at most this many actors (default: one per GPU, else one per
      ``cpus_per_video`` CPUs, default :data:`DEFAULT_CPUS_PER_VIDEO`); each sets torch's
      threads to its CPUs.
    * ``retries``: how often a video whose worker died is tried again on a fresh actor.
    * ``redo``: run videos that are already done too.
    * ``progress``: called on this thread about once a second with a :class:`BatchProgress`;
      ``on_row``: with each video's row as it ends (skipped ones first).
    * ``cancel``: set it (or press Ctrl+C) to stop; see the module docstring.
    """
    out = Path(out).expanduser().resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"Cannot use {out} as the output folder ({error.strerror or error}).") from None
    if not jobs:
        raise InputError("No videos to track; pass video files, folders holding them, or --jobs.")
    missing = [job.id for job in jobs if not (job.prompt or "").strip()]
    if missing:
        raise InputError(f"No prompt for {missing[0]}; pass --prompt, or give every row a prompt in --jobs.")
    address = address or os.environ.get("RAY_ADDRESS") or None
    started = time.perf_counter()
    summary = BatchSummary(out, address=address)
    run_id = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    driver = _Driver(out, settings, Manifest(out, run_id), summary, formats, limit, on_row, progress)
    todo = driver.skip_done(jobs, redo)
    owns_ray = False
    try:
        if todo:
            owns_ray = _connect(address, None)
            if address:
                check_shared_storage(out, {job.video.parent for job in todo})
            count, options = plan_workers(settings, len(todo), workers, cpus_per_video)
            summary.workers = count
            driver.start(count, options, open_workspace, retries)
            driver.dispatch(todo, cancel or threading.Event())
    finally:
        driver.stop_workers()
        if owns_ray:
            _ray().shutdown()
        summary.seconds = time.perf_counter() - started
        summary.rows = driver.rows_in_order(jobs)
        driver.manifest.finish(summary)
    return summary


class _Driver:
    """The driver's loop: feeds idle actors, collects rows in completion order, retries, stops."""

    def __init__(self, out, settings, manifest, summary, formats, limit, on_row, progress) -> None:
        self.out, self.settings, self.manifest, self.summary = out, settings, manifest, summary
        self.formats = None if formats is None else list(formats)
        self.limit, self.on_row, self.progress = limit, on_row, progress
        self.rows: dict[str, dict[str, Any]] = {}
        self.total = 0
        self.actors: list[Any] = []
        self.running: dict[Any, tuple[Any, Job, int]] = {}  # ref → (actor, job, attempt)

    # -- bookkeeping
    def skip_done(self, jobs: Sequence[Job], redo: bool) -> list[Job]:
        self.total = len(jobs)
        todo = []
        for job in jobs:
            previous = None if redo else previous_result(self.out, job, self._request(job))
            if previous is None:
                todo.append(job)
                continue
            keep = {k: previous[k] for k in ("frames", "objects", "flags", "out") if k in previous}
            self.record(row_for(job, SKIPPED, "done in an earlier run", **keep), log=False)
        return todo

    def _request(self, job: Job) -> dict[str, Any]:
        return job.request(self.settings, self.formats)

    def record(self, row: dict[str, Any], log: bool = True) -> None:
        self.rows[row["id"]] = row
        if log:
            self.manifest.append(row)
        if self.on_row is not None:
            self.on_row(row)

    def rows_in_order(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        return [self.rows.get(job.id) or row_for(job, NOT_STARTED) for job in jobs]

    # -- actors
    def start(self, count: int, options: dict[str, Any], open_workspace: str | None, retries: int) -> None:
        ray = _ray()
        self.retries = retries
        self.actor_class = ray.remote(max_concurrency=4, max_restarts=0, **options)(BatchWorker)
        self.new_actor = lambda: self.actor_class.remote(options.get("num_cpus"), open_workspace)
        self.actors = [self.new_actor() for _ in range(count)]

    def stop_workers(self) -> None:
        if not self.actors:
            return
        ray = _ray()
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []

    def submit(self, actor: Any, job: Job, attempt: int) -> None:
        ref = actor.run_job.remote(
            job, str(self.out), self.settings, self._request(job), self.formats, self.limit, attempt
        )
        self.running[ref] = (actor, job, attempt)

    # -- the loop
    def dispatch(self, jobs: list[Job], cancel: threading.Event) -> None:
        queue: deque[tuple[Job, int]] = deque((job, 1) for job in jobs)
        idle = list(self.actors)
        last_report = 0.0
        try:
            while queue or self.running:
                if cancel.is_set():
                    raise KeyboardInterrupt
                while idle and queue:
                    job, attempt = queue.popleft()
                    self.submit(idle.pop(), job, attempt)
                for actor, retry in self.collect(timeout=0.25):
                    if retry is not None:
                        queue.appendleft(retry)
                    idle.append(actor)
                if self.progress is not None and time.monotonic() - last_report >= 1.0:
                    last_report = time.monotonic()
                    self.report()
        except KeyboardInterrupt:
            self.summary.cancelled = True
            self.stop_running(queue)

    def collect(self, timeout: float) -> list[tuple[Any, tuple[Job, int] | None]]:
        """Rows of the jobs that ended: (the actor now free, a job to run again or None)."""
        ray = _ray()
        ready, _ = ray.wait(list(self.running), num_returns=1, timeout=timeout)
        freed: list[tuple[Any, tuple[Job, int] | None]] = []
        for ref in ready:
            actor, job, attempt = self.running.pop(ref)
            try:
                self.record(ray.get(ref))
                freed.append((actor, None))
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as error:
                freed.append((self.replace(actor), self.crashed(job, attempt, error)))
            except ray.exceptions.RayError as error:  # the call itself failed; the worker lives on
                self.record(
                    row_for(
                        job, ERRORED, f"{type(error).__name__}: {_one_line(error)[:300]}", attempts=attempt
                    )
                )
                freed.append((actor, None))
        return freed

    def crashed(self, job: Job, attempt: int, error: Exception) -> tuple[Job, int] | None:
        """A dead worker's job: to run again (``retries`` left), else its "crashed" row."""
        reason = _one_line(error).split(". ")[0][:200]
        if attempt <= self.retries:
            logger.warning("%s: the worker died (attempt %d); trying again on a fresh one", job.id, attempt)
            return job, attempt + 1
        message = f"the worker died {attempt} time(s) on this video (out of memory? killed?): {reason}"
        self.record(row_for(job, CRASHED, message, attempts=attempt))
        return None

    def replace(self, dead: Any) -> Any:
        ray = _ray()
        with contextlib.suppress(Exception):
            ray.kill(dead)
        fresh = self.new_actor()
        self.actors = [fresh if actor is dead else actor for actor in self.actors]
        return fresh

    def statuses(self, timeout: float = 2.0) -> tuple[WorkerStatus, ...]:
        ray = _ray()
        asked = [actor.status.remote() for actor, _, _ in self.running.values()]
        found = []
        for ref in asked:
            with contextlib.suppress(Exception):
                status = ray.get(ref, timeout=timeout)
                if status is not None:
                    found.append(status)
        return tuple(sorted(found, key=lambda s: s.job_id))

    def report(self) -> None:
        assert self.progress is not None
        skipped = sum(row["status"] == SKIPPED for row in self.rows.values())
        self.progress(BatchProgress(len(self.rows), self.total, self.statuses(), skipped))

    def stop_running(self, queue: deque[tuple[Job, int]]) -> None:
        """Ctrl+C or ``cancel``: queued jobs are not started, running ones stop at their next frame."""
        for job, _ in queue:
            self.record(row_for(job, NOT_STARTED, "stopped before it started"))
        queue.clear()
        for actor in {id(a): a for a, _, _ in self.running.values()}.values():
            with contextlib.suppress(Exception):
                actor.cancel.remote()
        deadline = time.monotonic() + 120
        try:
            while self.running and time.monotonic() < deadline:
                self.collect(timeout=0.5)
        except KeyboardInterrupt:
            logger.warning("not waiting for the running videos to stop")
        for _, job, attempt in self.running.values():
            self.record(row_for(job, CANCELLED, "stopped while running", attempts=attempt))
        self.running.clear()


def progress_printer(stream=None) -> Callable[[BatchProgress], None]:
    """A :class:`BatchProgress` printer: one line rewritten on a terminal, one line every ~10 s elsewhere."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    state: dict[str, float] = {"last": 0.0, "width": 0}

    def show(progress: BatchProgress) -> None:
        line = progress.line
        if tty:
            stream.write("\r" + line[:200] + " " * max(0, int(state["width"]) - len(line)))
            state["width"] = min(len(line), 200)
        elif time.monotonic() - state["last"] >= 10:
            state["last"] = time.monotonic()
            stream.write(line + "\n")
        stream.flush()

    return show


__all__ = [
    "DEFAULT_CPUS_PER_VIDEO",
    "MANIFEST",
    "RESULT",
    "STATUSES",
    "SUMMARY",
    "VIDEO_SUFFIXES",
    "BatchProgress",
    "BatchSummary",
    "BatchWorker",
    "Job",
    "WorkerStatus",
    "check_shared_storage",
    "check_unique",
    "discover",
    "plan_workers",
    "previous_result",
    "read_jobs",
    "run",
]
