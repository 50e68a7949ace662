"""Measuring: memory (RSS sampled on a thread), CPU time, per-frame statistics, fits, the machine.

Nothing here imports torch or the tracker at module level, so the parent process stays light;
every job runs in its own subprocess (see ``benchmarks/run.py``). Time spent inside the
library's stages comes from :mod:`tracker.timing` (see :func:`stages`), not from patching it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

RSS_INTERVAL_S = 0.05
MB = 1024 * 1024


def current_rss() -> int:
    """This process's resident set size in bytes (Linux ``/proc/self/statm``)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize()
    except OSError:  # not Linux: fall back to the high-water mark
        return max_rss()


def max_rss() -> int:
    """``ru_maxrss`` in bytes (Linux reports KiB, macOS bytes)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value if sys.platform == "darwin" else value * 1024)


class RssSampler:
    """Samples :func:`current_rss` every ``interval`` seconds on a daemon thread."""

    def __init__(self, interval: float = RSS_INTERVAL_S) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), current_rss()))
            self._stop.wait(self.interval)

    def peak(self, since: float | None = None, until: float | None = None) -> int:
        values = [
            rss
            for t, rss in list(self.samples)
            if (since is None or t >= since) and (until is None or t <= until)
        ]
        return max(values, default=current_rss())


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def per_frame_stats(times: Sequence[float]) -> dict[str, float | None]:
    """Seconds per frame from the moments frames were yielded (the first one is the prompt frame).

    ``median`` is the median gap between consecutive frames (robust to a busy machine);
    ``mean`` is (last − first) / (n − 1).
    """
    if len(times) < 2:
        return {"median": None, "mean": None, "p90": None}
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    gaps_sorted = sorted(gaps)
    return {
        "median": statistics.median(gaps),
        "mean": (times[-1] - times[0]) / (len(times) - 1),
        "p90": gaps_sorted[min(len(gaps_sorted) - 1, int(0.9 * len(gaps_sorted)))],
    }


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares ``(slope, intercept)`` of ``ys`` against ``xs``; None with fewer than 2 distinct xs."""
    if len(xs) != len(ys) or len(set(xs)) < 2:
        return None
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, mean_y - slope * mean_x


def growth_per_100(points: Iterable[tuple[float, float]]) -> float | None:
    """MB per 100 frames from ``(frames, bytes)`` points (linear fit)."""
    pairs = list(points)
    fit = linear_fit([p[0] for p in pairs], [p[1] / MB for p in pairs])
    return None if fit is None else fit[0] * 100


def rss_trace(rss_per_frame: Sequence[int]) -> dict[str, Any]:
    """Growth over the second half of a run (MB per 100 frames) and ≤ 50 evenly spaced samples (MB)."""
    half = len(rss_per_frame) // 2
    return {
        "within_run_growth_mb_per_100": growth_per_100(
            (i, rss) for i, rss in enumerate(rss_per_frame) if i >= half
        ),
        "rss_per_frame_mb": [round(r / MB, 1) for r in rss_per_frame[:: max(1, len(rss_per_frame) // 50)]],
    }


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def sync(device: Any) -> None:
    """Wait for queued GPU work, so a timer read afterwards includes it (no-op off CUDA)."""
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def reset_gpu_peak(device: Any) -> None:
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


# ------------------------------------------------------------------------------- stages


def require_stages(recorder: Any, needed: Iterable[tuple[str, str | None]], what: str) -> None:
    """Raise when ``recorder`` lacks a ``(stage, thread)`` of ``needed``: a row would silently read 0.

    The message names the stage and where the library marks it, so a moved or unmarked function
    fails the job (and shows under "Failed runs") instead of dropping a benchmark row.
    """
    missing = recorder.missing(needed)
    if missing:
        names = ", ".join(
            f"{name!r}" + (f" on thread {thread!r}" if thread else "") for name, thread in missing
        )
        raise RuntimeError(
            f"the {what} recorded no {names} stage (see the table in tracker/timing.py: "
            "a marked function was moved, renamed or lost its @timing.stage)"
        )


@contextlib.contextmanager
def stages() -> Iterator[Any]:
    """:func:`tracker.timing.record`: the library's stage times for the work in the block."""
    from tracker import timing

    with timing.record() as recorder:
        yield recorder


# ------------------------------------------------------------------------------- one job


class JobMeter:
    """What every job records around its work: load, RSS from start to finish, GPU peak.

    ``start()`` sets up logging and the RSS sampler; ``finish(record, device)`` adds the peaks.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        self.sampler = RssSampler().start()
        self.record: dict[str, Any] = {
            "spec": spec,
            "load_average_start": load_average(),
            "rss_start_mb": current_rss() / MB,
        }

    def finish(self, device: Any) -> dict[str, Any]:
        self.sampler.stop()
        record = self.record
        record["peak_rss_mb"] = self.sampler.peak() / MB
        record["ru_maxrss_mb"] = max_rss() / MB
        record["load_average_end"] = load_average()
        if getattr(device, "type", None) == "cuda":
            import torch

            record["gpu_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / MB
        return record


# ------------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """CPU, cores, RAM, Python, torch / sam2 versions and the CPU autocast dtype."""
    info: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        from tracker.devices import autocast_dtype

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        dtype = autocast_dtype("cpu")
        info["cpu_autocast"] = str(dtype).replace("torch.", "") if dtype is not None else "float32"
    except Exception as exc:  # the report must still come out
        info["torch_error"] = repr(exc)
    try:
        import sam2

        info["sam2"] = getattr(sam2, "__version__", None) or _dist_version("sam2")
    except Exception:
        info["sam2"] = None
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
