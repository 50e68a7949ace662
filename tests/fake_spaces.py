"""A stand-in for Hugging Face's ``spaces`` package whose ``GPU`` behaves as ZeroGPU's does.

Each call of a decorated function runs in a forked child process (``multiprocessing``'s
``fork`` context): the arguments are pickled to it, the result (or each yield of a generator,
as it comes) is pickled back over a pipe, an exception is pickled back and raised again, and
the child's memory is discarded when it exits. A call that runs past its ``duration`` (a
number, or a function of the call's arguments, as ``spaces.GPU`` accepts) is killed and
raises ``RuntimeError("GPU task aborted …")``; closing a generator early kills the child too.

``TIME_SCALE`` stretches every duration (this machine's CPU stands in for a GPU); ``CALLS``
records each call in the parent: :class:`Call` (function name, duration, bytes each way,
items yielded, the child's pid). Install with :func:`install` (``sys.modules["spaces"]``).
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import pickle
import sys
import time
import types
from contextlib import closing
from dataclasses import dataclass

CONTEXT = multiprocessing.get_context("fork")
TIME_SCALE = 1.0


@dataclass
class Call:
    name: str
    duration: float
    pid: int = 0
    sent: int = 0  # pickled argument bytes
    received: int = 0  # pickled result / yield bytes
    items: int = 0  # yields (or 1 for a result)
    aborted: bool = False


CALLS: list[Call] = []


def _child(fn, payload: bytes, conn) -> None:
    """In the forked child: run ``fn`` and send back each item, then the end (or the error)."""
    try:
        args, kwargs = pickle.loads(payload)
        out = fn(*args, **kwargs)
        if inspect.isgenerator(out):
            for item in out:
                conn.send_bytes(pickle.dumps(("yield", item)))
            conn.send_bytes(pickle.dumps(("end", None)))
        else:
            conn.send_bytes(pickle.dumps(("return", out)))
    except BaseException as error:  # every failure goes back to the caller, as ZeroGPU does
        try:
            message = pickle.dumps(("error", error))
        except Exception:
            message = pickle.dumps(("error", RuntimeError(f"{type(error).__name__}: {error}")))
        conn.send_bytes(message)
    finally:
        conn.close()


def _run(fn, seconds: float, call: Call, args, kwargs):
    """A generator of ("yield" | "return", value) from a child running ``fn``, killed after ``seconds``."""
    payload = pickle.dumps((args, kwargs))
    call.sent = len(payload)
    parent, child = CONTEXT.Pipe(duplex=False)
    process = CONTEXT.Process(target=_child, args=(fn, payload, child), daemon=True)
    process.start()
    child.close()
    call.pid = process.pid or 0
    deadline = time.monotonic() + seconds * TIME_SCALE
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not parent.poll(left):
                call.aborted = True
                raise RuntimeError(f"GPU task aborted: {call.name} ran past its duration of {seconds:g} s")
            try:
                data = parent.recv_bytes()
            except EOFError:
                raise RuntimeError(f"GPU task aborted: the process of {call.name} died") from None
            call.received += len(data)
            kind, value = pickle.loads(data)
            if kind == "error":
                raise value
            if kind == "end":
                return
            call.items += 1
            yield kind, value
            if kind == "return":
                return
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        parent.close()


def GPU(fn=None, *, duration=60):  # noqa: N802 (the real package's name)
    """``@GPU``, ``@GPU(duration=…)`` or ``GPU(duration=…)(fn)``: see the module docstring."""

    def wrap(fn):
        def start(args, kwargs) -> tuple[Call, object]:
            seconds = float(duration(*args, **kwargs) if callable(duration) else duration)
            call = Call(fn.__name__, seconds)
            CALLS.append(call)
            return call, _run(fn, seconds, call, args, kwargs)

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def stream(*args, **kwargs):
                call, items = start(args, kwargs)
                with closing(items):
                    for _, value in items:
                        yield value

            return stream

        @functools.wraps(fn)
        def once(*args, **kwargs):
            call, items = start(args, kwargs)
            with closing(items):
                for _, value in items:
                    return value
            raise RuntimeError(f"GPU task aborted: {call.name} returned nothing")

        return once

    return wrap(fn) if fn is not None else wrap


def module() -> types.ModuleType:
    spaces = types.ModuleType("spaces")
    spaces.GPU = GPU  # type: ignore[attr-defined]
    spaces.__file__ = __file__
    return spaces


def install(monkeypatch) -> types.ModuleType:
    """Make ``import spaces`` give this stand-in and mark the process as a ZeroGPU Space."""
    spaces = module()
    monkeypatch.setitem(sys.modules, "spaces", spaces)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    CALLS.clear()
    return spaces
