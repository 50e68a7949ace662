"""tracker.timing: stages recorded only inside record(), per thread, nested, across bound threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tracker import timing


@timing.stage("work")
def work(seconds: float = 0.0) -> str:
    if seconds:
        time.sleep(seconds)
    return "done"


@timing.stage("batch", count=len)
def batch(n: int) -> list[int]:
    return list(range(n))


def test_nothing_is_recorded_without_a_recorder():
    assert timing.current() is None
    assert work() == "done"
    with timing.stage("block"):
        pass
    with timing.record() as stages:
        pass
    assert stages.names() == []
    assert timing.current() is None


def test_a_recorder_collects_seconds_calls_and_items():
    with timing.record() as stages:
        work(0.01)
        work()
        batch(3)
        batch(4)
        with timing.stage("block"):
            time.sleep(0.005)
    assert stages.names() == ["batch", "block", "work"]
    assert stages.calls("work") == 2 and stages.seconds("work") >= 0.01
    assert stages.items("batch") == 7 and stages.calls("batch") == 2
    assert stages.calls("block") == 1 and stages.seconds("block") >= 0.005
    assert stages.threads("work") == ["MainThread"]
    assert stages.calls("missing") == 0 and stages.seconds("missing") == 0.0
    assert stages.to_dict()["work"]["threads"]["MainThread"]["calls"] == 2


def test_work_after_the_block_is_not_recorded():
    with timing.record() as stages:
        work()
    work()
    assert stages.calls("work") == 1


def test_nested_stages_are_inclusive_and_nested_recorders_add_to_the_outer_one():
    @timing.stage("outer")
    def outer() -> None:
        work(0.005)

    with timing.record() as everything:
        work()
        with timing.record() as inner:
            outer()
        work()
    assert inner.calls("outer") == 1 and inner.calls("work") == 1
    assert everything.calls("outer") == 1 and everything.calls("work") == 3
    assert inner.seconds("outer") >= inner.seconds("work") >= 0.005


def test_exceptions_are_timed_and_propagate():
    @timing.stage("fails")
    def fails() -> None:
        raise ValueError("boom")

    with timing.record() as stages, pytest.raises(ValueError, match="boom"):
        fails()
    assert stages.calls("fails") == 1 and stages.items("fails") == 0


def test_bound_threads_record_into_the_callers_recorder_under_their_own_name():
    with timing.record() as stages:
        thread = threading.Thread(target=timing.bind(work), name="overlay-writer")
        thread.start()
        thread.join()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2-frames") as pool:
            pool.submit(timing.bind(work)).result()
            pool.submit(work).result()  # not bound: the pool's context has no recorder
        work()
    assert stages.threads("work") == ["MainThread", "overlay-writer", "sam2-frames"]
    assert stages.calls("work", thread="sam2-frames") == 1
    assert stages.calls("work") == 3


def test_each_thread_has_its_own_recorder():
    counts = {}
    barrier = threading.Barrier(2)

    def user(name: str, calls: int) -> None:
        with timing.record() as stages:
            barrier.wait()
            for _ in range(calls):
                work()
            barrier.wait()
        counts[name] = stages.calls("work")

    threads = [threading.Thread(target=user, args=(f"u{i}", n)) for i, n in enumerate((3, 5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == {"u0": 3, "u1": 5}


def test_bind_without_a_recorder_returns_the_function_itself():
    assert timing.bind(work) is work


def test_generator_functions_are_refused():
    with pytest.raises(TypeError, match="generator"):

        @timing.stage("frames")
        def frames():
            yield 1


def test_thread_labels_drop_a_pool_suffix():
    assert timing.thread_label(threading.Thread(name="sam2-frames_0")) == "sam2-frames"
    assert timing.thread_label(threading.Thread(name="overlay-writer")) == "overlay-writer"
    assert timing.thread_label(threading.Thread(name="a_b")) == "a_b"


def test_missing_names_what_was_not_recorded():
    with timing.record() as stages:
        work()
    assert stages.missing([("work", None), ("work", "MainThread")]) == []
    assert stages.missing([("work", "sam2-frames"), ("draw", None)]) == [
        ("work", "sam2-frames"),
        ("draw", None),
    ]


def test_the_overlay_writer_thread_is_recorded(tmp_path):
    from tracker.render import OverlayWriter

    frame = np.zeros((32, 48, 3), np.uint8)
    with timing.record() as stages:
        with OverlayWriter(tmp_path / "out.mp4", fps=10, size=(48, 32), threaded=True) as writer:
            for _ in range(3):
                writer.write(frame)
    assert stages.calls("encode", thread="MainThread") == 3  # the hand-off
    assert stages.calls("encode", thread="overlay-writer") == 3  # into ffmpeg's pipe


def test_an_unmarked_call_costs_little():
    """With no recorder a marked call adds one global read and one call: well under a microsecond."""

    def plain() -> None:
        return None

    marked = timing.stage("noop")(plain)
    n = 200_000

    def per_call(function) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(n):
                function()
            best = min(best, (time.perf_counter() - started) / n)
        return best

    overhead = per_call(marked) - per_call(plain)
    assert overhead < 1e-6, f"{overhead * 1e9:.0f} ns per call"
