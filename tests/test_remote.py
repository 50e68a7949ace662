"""The remote session's bookkeeping around stand-in GPU calls (no models, no forks: fast).

:class:`tracker.remote.RemoteSession` turns a run into calls that fit the GPU time, starts
each call after the first from the masks the previous one ended with, continues a stopped or
failed run, and computes prompt results once. Its GPU calls here are small named stand-ins that
record what they were asked and answer with masks that say which frame they are of.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tracker import engine
from tracker.errors import InputError
from tracker.legs import Leg, plan_legs
from tracker.masks import encode_mask
from tracker.remote import Engine, GpuRunStopped, RemoteSession
from tracker.settings import Settings
from tracker.types import FramePrompt

W, H, N = 16, 8, 10
SETTINGS = Settings(sam2_model="tiny", image_size=256, device="cpu")


def frame_mask(frame_idx: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[0, frame_idx] = True  # the frame it belongs to, readable back
    return mask


class StandInGPU:
    """Records each call; ``fail_after`` items of the next track call, then it raises."""

    def __init__(self) -> None:
        self.tracks: list[tuple[list[FramePrompt], list[Leg]]] = []
        self.prompts: list[list[int]] = []
        self.fail_after: int | None = None

    def track(self, video, settings, prompts, legs):
        self.tracks.append((list(prompts), list(legs)))
        ids = tuple(dict.fromkeys(p.object_id for p in prompts))
        for count, frame_idx in enumerate(f for leg in legs for f in leg.frames()):
            if self.fail_after is not None and count == self.fail_after:
                self.fail_after = None
                raise RuntimeError("GPU task aborted")
            masks = [encode_mask(frame_mask(frame_idx)) for _ in ids]
            yield engine.FrameMasks(frame_idx, ids, tuple(masks), tuple(1.0 for _ in ids))

    def prompt(self, video, settings, prompts, frames):
        self.prompts.append(list(frames))
        out = []
        for frame_idx in frames:
            ids = tuple(dict.fromkeys(p.object_id for p in prompts if p.frame_idx == frame_idx))
            masks = tuple(encode_mask(frame_mask(frame_idx)) for _ in ids)
            out.append(engine.FrameMasks(frame_idx, ids, masks, tuple(1.0 for _ in ids)))
        return out


def session_with(per_call: int, gpu: StandInGPU, stored=None) -> RemoteSession:
    budget = engine.LOAD_SECONDS + (per_call + 0.5) * engine.seconds_per_frame(SETTINGS, 1)
    assert engine.frames_per_call(SETTINGS, 1, budget) == per_call
    calls = Engine(track=gpu.track, prompt=gpu.prompt, max_seconds=budget)
    return RemoteSession(calls, "clip.mp4", SETTINGS, N, W, H, stored=stored or (lambda _f: None))


def click(frame_idx: int) -> FramePrompt:
    return FramePrompt(1, frame_idx, [(3.0, 3.0)], [1])


@pytest.mark.parametrize(
    ("prompted", "start", "end", "direction", "max_frames", "expected"),
    [
        ({4}, None, None, "both", None, [Leg(3, 0, -1), Leg(4, 9, 1)]),
        ({0}, None, None, "both", None, [Leg(0, 9, 1)]),
        ({2, 6}, None, None, "backward", None, [Leg(6, 0, -1)]),
        ({2, 6}, 5, 7, "forward", None, [Leg(5, 7, 1)]),
        ({4}, 4, None, "both", 2, [Leg(3, 2, -1), Leg(4, 5, 1)]),
    ],
)
def test_plan_legs(prompted, start, end, direction, max_frames, expected):
    assert plan_legs(N, prompted, start, end, direction, max_frames) == expected


@pytest.mark.parametrize(
    ("prompted", "start", "end", "direction", "message"),
    [
        (set(), None, None, "both", "Nothing to track yet"),
        ({4}, 4, 2, "both", "end_frame only applies"),
        ({4}, 4, 2, "forward", "before start_frame"),
        ({4}, 12, None, "forward", "outside the video"),
        ({4}, None, None, "sideways", "Unknown direction"),
    ],
)
def test_plan_legs_refuses(prompted, start, end, direction, message):
    with pytest.raises(InputError, match=message):
        plan_legs(N, prompted, start, end, direction, None)


def test_a_run_is_cut_into_calls_that_continue_from_the_last_masks():
    gpu = StandInGPU()
    session = session_with(3, gpu)
    session.add_prompt(click(4))
    frames = [r.frame_idx for r in session.propagate(direction="both")]
    assert frames == [3, 2, 1, 0, 4, 5, 6, 7, 8, 9]  # the plan's order, each frame once
    assert [legs for _, legs in gpu.tracks] == [
        [Leg(3, 1, -1)],
        [Leg(0, 0, -1), Leg(4, 5, 1)],
        [Leg(6, 8, 1)],
        [Leg(9, 9, 1)],
    ]
    seeds = [[p for p in prompts if p.mask is not None] for prompts, _ in gpu.tracks]
    assert [[s.frame_idx for s in found] for found in seeds] == [[], [1], [5], [8]]
    assert all(np.array_equal(s[0].mask, frame_mask(s[0].frame_idx)) for s in seeds[1:])
    assert all(click(4) in prompts for prompts, _ in gpu.tracks)  # the clicks go to every call


def test_a_failed_call_keeps_its_frames_and_the_next_run_continues():
    gpu = StandInGPU()
    stored: dict[int, object] = {}
    session = session_with(100, gpu, stored=stored.get)
    session.add_prompt(click(0))
    gpu.fail_after = 4
    with pytest.raises(GpuRunStopped, match="after 4 of 10 frames.*continue from frame 4"):
        for result in session.propagate(direction="forward"):
            stored[result.frame_idx] = result  # what the workspace keeps
    assert sorted(stored) == [0, 1, 2, 3] and not session.running
    again = [r.frame_idx for r in session.propagate(direction="forward")]
    assert again == list(range(10))  # the kept frames first, without a call
    assert gpu.tracks[-1][1] == [Leg(4, 9, 1)]
    assert [p.frame_idx for p in gpu.tracks[-1][0] if p.mask is not None] == [3]


def test_stop_keeps_its_frames_and_new_clicks_start_over():
    gpu = StandInGPU()
    stored: dict[int, object] = {}
    session = session_with(100, gpu, stored=stored.get)
    session.add_prompt(click(0))
    cancel = threading.Event()
    for result in session.propagate(direction="forward", cancel=cancel):
        stored[result.frame_idx] = result
        if result.frame_idx == 2:
            cancel.set()
    assert sorted(stored) == [0, 1, 2]
    list(session.propagate(direction="forward"))
    assert gpu.tracks[-1][1] == [Leg(3, 9, 1)]
    session.add_prompt(FramePrompt(1, 0, [(3.0, 3.0), (5.0, 2.0)], [1, 0]))
    list(session.propagate(direction="forward"))
    assert gpu.tracks[-1][1] == [Leg(0, 9, 1)]  # other prompts: the whole run again


def test_clicks_refine_the_mask_there_and_results_are_computed_once():
    gpu = StandInGPU()
    session = session_with(100, gpu)
    candidate = FramePrompt(1, 2, mask=frame_mask(7))
    session.add_prompt(candidate)
    session.add_prompt(click(2))
    assert session.prompts() == [candidate, click(2)]  # the mask first, then the clicks
    assert gpu.prompts == [[2], [2]]
    session.add_prompt(candidate)  # back to a state seen before (as undo replays it)
    assert gpu.prompts == [[2], [2]]
    with session.batched():
        session.add_prompt(click(5))
        session.add_prompt(FramePrompt(2, 6, [(1.0, 1.0)], [1]))
        assert gpu.prompts == [[2], [2]]  # nothing computed inside a batch
    assert gpu.prompts[-1] == [5, 6]  # one call for the batch
    result = session.result_at(6)
    assert result.object_ids == (2,) and result.masks[0][0, 6]


@pytest.mark.parametrize(
    ("env", "spaces_installed", "expected"),
    [
        (None, True, False),  # the spaces package alone (any Space): the normal path
        ("true", False, False),  # ZeroGPU said but no package: the normal path, with a warning
        ("false", True, False),
        ("true", True, True),
        ("1", True, True),
    ],
)
def test_zero_gpu_needs_the_space_flag_and_the_package(monkeypatch, env, spaces_installed, expected):
    import sys

    from tests import fake_spaces
    from ui.gpu import gpu, zero_gpu

    if env is None:
        monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    else:
        monkeypatch.setenv("SPACES_ZERO_GPU", env)
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces.module() if spaces_installed else None)
    assert zero_gpu() is expected

    def handler():
        return 1

    assert gpu(handler, duration=600) is handler  # handlers never go to a GPU process
