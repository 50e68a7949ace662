"""Objects tracked as one batch (tracker.object_batch) give plain SAM 2's per-object results.

SAM 2 tiny at image size 256 with random weights, float32 on the CPU. Batching changes only the
batch size of the matrix products, so the numbers agree up to float rounding. The tolerance
stated and checked here: every stored low-resolution mask logit and object pointer within 1e-3
(absolute) of the one-object-at-a-time run, every memory feature (stored in bfloat16, as SAM 2
stores it) within 1e-3 plus one bfloat16 step, and at most 0.5 % of a frame's
pixels assigned differently from plain SAM 2's ``propagate_in_video`` (random weights give
noise-like logits, many of them near 0, where rounding can flip a pixel).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.synthetic import ListFrames, render
from tracker import object_batch
from tracker.session import TrackingSession
from tracker.types import FramePrompt, FrameResult

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 128, 96
NUM_FRAMES = 10
LOGIT_TOLERANCE = 1e-3
PIXEL_TOLERANCE = 0.005


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _quiet_sam2():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """The clip as SAM 2 wants it (a JPEG folder), and the decoded frames our session reads."""
    folder = tmp_path_factory.mktemp("jpg")
    for idx, (frame, _) in enumerate(render(NUM_FRAMES, WIDTH, HEIGHT)):
        Image.fromarray(frame).save(folder / f"{idx:05d}.jpg", quality=95)
    frames = [np.array(Image.open(folder / f"{idx:05d}.jpg").convert("RGB")) for idx in range(NUM_FRAMES)]
    return folder, frames


# Four objects prompted on different frames, with clicks and boxes: objects 1 and 2 share a
# prompt frame (the same memory layout from the start), 3 and 4 join later (other layouts).
PROMPTS = [
    FramePrompt(1, 2, [(30.0, 30.0)], [1]),
    FramePrompt(2, 2, box=(70.0, 40.0, 110.0, 80.0)),
    FramePrompt(3, 4, [(64.0, 48.0), (20.0, 80.0)], [1, 0]),
    FramePrompt(4, 5, box=(5.0, 5.0, 50.0, 40.0)),
]


def plain_sam2(predictor, folder: Path) -> dict[int, np.ndarray]:
    """Plain SAM 2: forward, then backward, from the earliest prompt (frame 2); first result per frame."""
    state = predictor.init_state(str(folder))
    for prompt in PROMPTS:
        predictor.add_new_points_or_box(
            state,
            prompt.frame_idx,
            prompt.object_id,
            points=np.array(prompt.points, np.float32) if prompt.points else None,
            labels=np.array(prompt.labels, np.int32) if prompt.points else None,
            box=np.array(prompt.box, np.float32) if prompt.box is not None else None,
        )
    # Objects 3 and 4 are tracked on frames before their first prompt: with no object pointer
    # there, plain SAM 2 in float32 feeds only bfloat16 memories into float32 layers and fails.
    # Our session keeps conditioning memories in float32 (see tracker.session); do the same here.
    predictor.propagate_in_video_preflight(state)
    for outputs in state["output_dict_per_obj"].values():
        for out in outputs["cond_frame_outputs"].values():
            out["maskmem_features"] = out["maskmem_features"].float()
    masks: dict[int, np.ndarray] = {}
    for reverse in (False, True):
        for frame_idx, ids, logits in predictor.propagate_in_video(state, reverse=reverse):
            masks.setdefault(frame_idx, FrameResult.from_sam2(frame_idx, ids, logits.numpy()).masks)
    return masks


def ours(predictor, frames, batch: bool) -> tuple[dict[int, np.ndarray], dict]:
    """Our session's masks and, per (object, frame), its stored outputs."""
    with TrackingSession(predictor, ListFrames(frames)) as session:
        session.batch_objects = batch
        for prompt in PROMPTS:
            session.add_prompt(prompt)
        masks: dict[int, np.ndarray] = {}
        for direction in ("forward", "backward"):
            for result in session.propagate(start_frame=2, direction=direction):
                masks.setdefault(result.frame_idx, result.masks)
        state = session._state  # a test's peek at what the session stored
        stored = {
            (obj_idx, frame_idx): {
                key: out[key].float().clone() for key in ("pred_masks", "obj_ptr", "maskmem_features")
            }
            for obj_idx, outputs in state["output_dict_per_obj"].items()
            for frame_idx, out in outputs["non_cond_frame_outputs"].items()
        }
    return masks, stored


def test_batched_objects_match_plain_sam2(predictor, jpegs, monkeypatch):
    folder, frames = jpegs
    sizes: list[int] = []
    real = object_batch.track_batch

    def spy(frame, memories):
        sizes.append(len(memories))
        return real(frame, memories)

    monkeypatch.setattr(object_batch, "track_batch", spy)
    batched, batched_out = ours(predictor, frames, batch=True)
    monkeypatch.undo()
    assert max(sizes) >= 2, f"no frame ran objects as one batch (batch sizes {sizes})"
    single, single_out = ours(predictor, frames, batch=False)
    plain = plain_sam2(predictor, folder)

    assert sorted(batched) == sorted(plain) == list(range(NUM_FRAMES))
    assert sorted(batched_out) == sorted(single_out)
    worst = {name: 0.0 for name in ("pred_masks", "obj_ptr", "maskmem_features")}
    for key, outputs in batched_out.items():
        for name, value in outputs.items():
            reference = single_out[key][name]
            # memory features are stored in bfloat16 (as SAM 2 does): one step of its 8-bit mantissa
            allowed = LOGIT_TOLERANCE + (reference.abs() * 2.0**-7 if name == "maskmem_features" else 0.0)
            excess = ((value - reference).abs() - allowed).max().item()
            worst[name] = max(worst[name], (value - reference).abs().max().item())
            assert excess <= 0, (
                f"{name} of object/frame {key} differs by more than allowed (worst so far {worst})"
            )
    for frame_idx, masks in plain.items():
        assert np.array_equal(single[frame_idx], masks), (
            f"one at a time differs from plain SAM 2 on {frame_idx}"
        )
        changed = np.count_nonzero(batched[frame_idx] != masks) / masks[0].size
        assert changed <= PIXEL_TOLERANCE, f"frame {frame_idx}: {changed:.2%} of the pixels differ"


def _memory(index: int, tokens: int, pointers: int, dtype=torch.float32) -> object_batch.ObjectMemory:
    return object_batch.ObjectMemory(
        index, torch.zeros(tokens, 1, 4, dtype=dtype), torch.zeros(tokens, 1, 4), pointers
    )


@pytest.mark.parametrize(
    ("memories", "tokens", "limit", "expected"),
    [
        ([(0, 64, 4), (1, 64, 4), (2, 64, 4)], 256, (2048, 1024, 8), [[0, 1, 2]]),  # one layout, in budget
        ([(0, 64, 4), (1, 80, 4), (2, 64, 4)], 256, (2048, 1024, 8), [[0, 2], [1]]),  # two layouts, in order
        ([(0, 64, 4), (1, 64, 8)], 256, (2048, 1024, 8), [[0], [1]]),  # same memory, other pointer count
        ([(i, 64, 4) for i in range(5)], 1024, (2048, 1024, 8), [[0, 1], [2, 3], [4]]),  # 2048 tokens
        ([(i, 64, 4) for i in range(5)], 256, (2048, 1024, 2), [[0, 1], [2, 3], [4]]),  # 2 objects at most
        ([(0, 64, 4), (1, 64, 4)], 4096, (2048, 1024, 8), [[0], [1]]),  # one over the budget still runs
    ],
)
def test_chunks_follow_layout_and_budget(memories, tokens, limit, expected):
    made = [_memory(*row) for row in memories]
    chunks = object_batch.chunks(made, tokens, object_batch.BatchLimit(*limit))
    assert [[m.index for m in chunk] for chunk in chunks] == expected


def test_chunks_keep_dtypes_apart():
    made = [_memory(0, 64, 4), _memory(1, 64, 4, torch.bfloat16)]
    chunks = object_batch.chunks(made, 256, object_batch.limit_for("cpu"))
    assert [[m.index for m in chunk] for chunk in chunks] == [[0], [1]]


def test_compiled_predictor_classes_are_not_batched(predictor):
    assert object_batch.supports(predictor)

    class Compiled(type(predictor)):  # like SAM2VideoPredictorVOS: its own compiled heads
        def _forward_sam_heads(self, *args, **kwargs):
            return super()._forward_sam_heads(*args, **kwargs)

    stand_in = object.__new__(Compiled)
    assert not object_batch.supports(stand_in)
