"""The plan of a tracking run: which frames, in which order, in which direction.

:func:`plan_legs` is a pure function (no torch, no SAM 2 state): the
:class:`~tracker.session.TrackingSession` plans its runs with it, and so does a session whose
SAM 2 runs in another process (:mod:`tracker.remote`), so both track the same frames in the same
order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import InputError

Direction = Literal["both", "forward", "backward"]
DIRECTIONS: tuple[str, ...] = ("both", "forward", "backward")


@dataclass(frozen=True)
class Leg:
    """One leg of a run: frames ``first``, ``first + step``, … ``last`` (inclusive), one direction.

    A ``"forward"`` or ``"backward"`` run is one leg; a ``"both"`` run is a backward leg then a
    forward leg (see :func:`plan_legs`).
    """

    first: int
    last: int
    step: int  # +1 forward, -1 backward

    def __len__(self) -> int:
        return (self.last - self.first) * self.step + 1

    def frames(self) -> range:
        return range(self.first, self.last + self.step, self.step)

    @property
    def direction(self) -> Literal["forward", "backward"]:
        return "forward" if self.step > 0 else "backward"


def plan_legs(
    num_frames: int,
    prompted: set[int] | frozenset[int],
    start_frame: int | None,
    end_frame: int | None,
    direction: str,
    max_frames: int | None,
) -> list[Leg]:
    """The legs of a run over ``num_frames`` frames whose prompted (conditioning) frames are ``prompted``.

    ``start_frame`` defaults to the earliest prompted frame (the latest for ``"backward"``);
    ``"both"`` is a backward leg from ``start_frame - 1`` to 0 (none when starting at 0), then a
    forward leg from ``start_frame`` to the end; ``max_frames`` caps each leg. Raises
    :class:`InputError` for arguments that cannot run.
    """
    if direction not in DIRECTIONS:
        raise InputError(f"Unknown direction {direction!r}: use 'both', 'forward' or 'backward'.")
    if max_frames is not None and int(max_frames) < 1:
        raise InputError(f"max_frames must be at least 1, got {max_frames}.")
    last = num_frames - 1
    if start_frame is None:
        if not prompted:
            raise InputError("Nothing to track yet: click on an object (or accept a candidate) first.")
        start = max(prompted) if direction == "backward" else min(prompted)
    else:
        _check_frame(start_frame, num_frames)
        start = int(start_frame)
    span = num_frames if max_frames is None else int(max_frames)
    if direction == "both":
        if end_frame is not None:
            raise InputError(
                "end_frame only applies to 'forward' or 'backward' runs; use max_frames with 'both'."
            )
        forward = Leg(start, min(last, start + span - 1), 1)
        # backward first: the frames before the start are done when the forward leg begins,
        # so a caller can write the whole video in frame order while the forward leg runs
        return [Leg(start - 1, max(0, start - span), -1), forward] if start > 0 else [forward]
    step = 1 if direction == "forward" else -1
    end = (last if step > 0 else 0) if end_frame is None else int(end_frame)
    _check_frame(end, num_frames)
    if (end - start) * step < 0:
        raise InputError(
            f"end_frame {end} is {'before' if step > 0 else 'after'} start_frame {start} for a {direction} run."
        )
    return [Leg(start, start + step * min(span - 1, (end - start) * step), step)]


def _check_frame(frame_idx: int, num_frames: int) -> None:
    if not 0 <= int(frame_idx) < num_frames:
        raise InputError(f"Frame {frame_idx} is outside the video (it has frames 0 to {num_frames - 1}).")


__all__ = ["DIRECTIONS", "Direction", "Leg", "plan_legs"]
