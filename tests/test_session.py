"""TrackingSession against SAM 2 tiny at image_size 256 with random weights (CPU, small videos).

Random weights make the masks meaningless as segmentations, so these tests check contracts
(shapes, order, overlap, cancel, errors, memory bounds) and exact equality with plain SAM 2.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.synthetic import ListFrames, render
from tracker.errors import InputError
from tracker.session import TrackingSession, preprocess_frame, resolve_masks
from tracker.types import FramePrompt, FrameResult

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 128, 96
NUM_FRAMES = 12


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # On a busy machine, OpenMP's barrier waits make two threads several times slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def video():
    """12 frames of a red disc and a blue square; ground truth ``[frame][shape]``."""
    rendered = list(render(NUM_FRAMES, WIDTH, HEIGHT))
    return ListFrames([frame for frame, _ in rendered]), [masks for _, masks in rendered]


@pytest.fixture(autouse=True)
def _quiet_sam2():
    # sam2 warns once per frame that its CUDA hole-filling extension is missing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def centre(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def click(truth, frame_idx: int, shape: int = 0, object_id: int = 1) -> FramePrompt:
    return FramePrompt(object_id, frame_idx, [centre(truth[frame_idx][shape])], [1])


def jpeg_video(folder: Path, num_frames: int) -> list[np.ndarray]:
    """Write high-quality JPEGs the way SAM 2 wants them; return the decoded frames."""
    folder.mkdir()
    for idx, (frame, _) in enumerate(render(num_frames, WIDTH, HEIGHT)):
        Image.fromarray(frame).save(folder / f"{idx:05d}.jpg", quality=95)
    return [np.array(Image.open(folder / f"{idx:05d}.jpg").convert("RGB")) for idx in range(num_frames)]


def test_click_gives_frame_result(predictor, video):
    frames, truth = video
    with TrackingSession(predictor, frames) as session:
        assert (session.num_frames, session.width, session.height) == (NUM_FRAMES, WIDTH, HEIGHT)
        result = session.add_prompt(click(truth, 5))
        assert isinstance(result, FrameResult)
        assert result.frame_idx == 5 and result.object_ids == (1,)
        assert result.masks.shape == (1, HEIGHT, WIDTH) and result.masks.dtype == bool
        assert result.scores.shape == (1,) and 0.0 <= result.scores[0] <= 1.0
        assert session.object_ids == (1,)
        assert session.prompted_frames() == {1: [5]}
        again = session.mask_at(5)
        assert again is not None and np.array_equal(again.masks, result.masks)
        assert session.mask_at(6) is None


@pytest.fixture(scope="module")
def empty_session(predictor, video):
    session = TrackingSession(predictor, video[0])
    yield session
    session.close()


@pytest.fixture(scope="module")
def prompted_session(predictor, video):
    frames, truth = video
    session = TrackingSession(predictor, frames)
    session.add_prompt(click(truth, 5))
    yield session
    session.close()


@pytest.mark.parametrize(
    ("direction", "start", "end", "max_frames", "expected"),
    [
        ("both", None, None, None, [4, 3, 2, 1, 0, 5, 6, 7, 8, 9, 10, 11]),  # backward leg first
        ("forward", 3, None, 4, [3, 4, 5, 6]),
        ("forward", 9, 10, None, [9, 10]),
        ("backward", 8, None, 3, [8, 7, 6]),
        ("backward", None, 2, None, [5, 4, 3, 2]),  # backward defaults to the latest prompted frame
        ("backward", 0, None, None, [0]),  # SAM 2's own propagate_in_video skips this one
        ("both", 7, None, 2, [6, 5, 7, 8]),
        ("both", 0, None, 2, [0, 1]),
    ],
)
def test_propagate_order(prompted_session, direction, start, end, max_frames, expected):
    session = prompted_session
    assert session.planned_frames(start, end, direction, max_frames) == len(expected)
    legs = session.plan(start, end, direction, max_frames)
    assert [f for leg in legs for f in leg.frames()] == expected  # the plan is what runs
    results = list(session.propagate(start, end, direction, max_frames=max_frames))
    assert [r.frame_idx for r in results] == expected
    for result in results:
        assert result.object_ids == (1,)
        assert result.masks.shape == (1, HEIGHT, WIDTH) and result.masks.dtype == bool
    assert not session.last_run_cancelled and session.last_run_frames == len(expected)


def test_run_can_be_driven_from_several_threads(prompted_session):
    """Web servers resume generators on pool threads: no lock may be held across a yield."""
    run = prompted_session.propagate(start_frame=2, direction="forward", max_frames=3)
    with ThreadPoolExecutor(max_workers=3) as pool:
        frames = [pool.submit(next, run).result().frame_idx for _ in range(3)]
    assert frames == [2, 3, 4]
    assert next(run, None) is None
    assert prompted_session.mask_at(3) is not None


def test_two_objects_never_overlap(predictor, video):
    """Object 2 is prompted later than object 1, so it is tracked before its prompt too.

    (Plain SAM 2 on CPU without autocast fails there: bfloat16 memory, no object pointer.)
    """
    frames, truth = video
    with TrackingSession(predictor, frames) as session:
        first = session.add_prompt(click(truth, 0, shape=0, object_id=1))
        assert first.object_ids == (1,)
        later = session.add_prompt(click(truth, 3, shape=1, object_id=2))
        assert later.object_ids == (1, 2) and later.masks[1].any()
        results = list(session.propagate(direction="forward", max_frames=6))
        assert [r.frame_idx for r in results] == list(range(6))
        for result in [later, *results]:
            assert result.object_ids == (1, 2)
            assert result.masks.sum(axis=0).max() <= 1


def test_cancel_stops_within_one_frame(predictor, video):
    frames, truth = video
    with TrackingSession(predictor, frames) as session:
        session.add_prompt(click(truth, 0))
        cancel = threading.Event()
        seen = []
        for result in session.propagate(direction="forward", cancel=cancel):
            seen.append(result.frame_idx)
            if len(seen) == 2:
                cancel.set()
        assert seen == [0, 1]
        assert session.last_run_cancelled and session.last_run_frames == 2
        # the run is over: prompts can change again, and a new run starts clean
        session.add_prompt(click(truth, 1))
        run = session.propagate(start_frame=1, direction="forward", max_frames=2)
        assert next(run).frame_idx == 1
        with pytest.raises(InputError, match="running"):
            session.add_prompt(click(truth, 2))
        run.close()
        session.add_prompt(click(truth, 2))
        assert not session.last_run_cancelled


def test_remove_object_then_propagate(predictor, video):
    frames, truth = video
    with TrackingSession(predictor, frames) as session:
        session.add_prompt(click(truth, 0, shape=0, object_id=1))
        session.add_prompt(click(truth, 0, shape=1, object_id=2))
        session.remove_object(1)
        assert session.object_ids == (2,)
        assert session.prompted_frames() == {2: [0]}
        results = list(session.propagate(direction="forward", max_frames=3))
        assert [r.object_ids for r in results] == [(2,)] * 3
        assert all(r.masks.shape == (1, HEIGHT, WIDTH) for r in results)


def _mask() -> np.ndarray:
    return np.zeros((HEIGHT, WIDTH), bool)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda s: s.add_prompt(FramePrompt(1, 0, [(WIDTH + 5, 10)], [1])), "outside"),
        (lambda s: s.add_prompt(FramePrompt(1, 0, [(-1, 10)], [1])), "outside"),
        (lambda s: s.add_prompt(FramePrompt(1, 0, box=(10, 10, 10, 40))), "no area"),
        (lambda s: s.add_prompt(FramePrompt(1, 0, mask=_mask())), "empty"),
        (lambda s: s.add_prompt(FramePrompt(1, 0, mask=np.ones((10, 10), bool))), "the frame is"),
        (lambda s: s.add_prompt(FramePrompt(1, 0, [(10, 10), (20, 20)], [0, 0])), "negative"),
        (lambda s: s.add_prompt(FramePrompt(1, 0, [(10, 10)], [1, 0])), "label"),
        (lambda s: s.add_prompt(FramePrompt(1, 0)), "empty"),
        (lambda s: s.add_prompt(FramePrompt(1, NUM_FRAMES, [(10, 10)], [1])), "outside the video"),
        (lambda s: s.add_prompt(FramePrompt(0, 0, [(10, 10)], [1])), "start at 1"),
        (lambda s: s.remove_object(7), "not being tracked"),
        (lambda s: s.clear_prompts(0, object_id=7), "not being tracked"),
        (lambda s: s.propagate(), "Nothing to track"),
        (lambda s: s.planned_frames(), "Nothing to track"),
    ],
)
def test_invalid_input(empty_session, action, message):
    with pytest.raises(InputError, match=message):
        action(empty_session)
    assert empty_session.object_ids == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"direction": "sideways"}, "Unknown direction"),
        ({"direction": "both", "end_frame": 8}, "end_frame only applies"),
        ({"direction": "forward", "start_frame": 6, "end_frame": 2}, "before start_frame"),
        ({"direction": "backward", "start_frame": 2, "end_frame": 6}, "after start_frame"),
        ({"direction": "forward", "start_frame": NUM_FRAMES}, "outside the video"),
        ({"direction": "forward", "max_frames": 0}, "at least 1"),
    ],
)
def test_invalid_propagation(prompted_session, kwargs, message):
    with pytest.raises(InputError, match=message):
        prompted_session.propagate(**kwargs)


def test_object_without_clicks_blocks_tracking(predictor, video):
    frames, truth = video
    with TrackingSession(predictor, frames) as session:
        session.add_prompt(click(truth, 0, shape=0, object_id=1))
        session.add_prompt(click(truth, 3, shape=1, object_id=2))
        cleared = session.clear_prompts(3, object_id=2)
        assert cleared.object_ids == (1, 2) and not cleared.masks[1].any()
        with pytest.raises(InputError, match="Object 2 has no clicks yet"):
            session.propagate()


def test_correction_becomes_conditioning_and_survives_retracking(predictor, video):
    frames, truth = video
    with TrackingSession(predictor, frames) as session:
        session.add_prompt(click(truth, 0))
        list(session.propagate(direction="forward", max_frames=4))
        corrected = session.add_prompt(FramePrompt(1, 2, mask=truth[2][0]))
        assert session.prompted_frames() == {1: [0, 2]}
        assert session.stored_frames().conditioning == {1: 2}
        again = {r.frame_idx: r for r in session.propagate(start_frame=0, direction="forward", max_frames=4)}
        assert np.array_equal(again[2].masks, corrected.masks)
        # clearing every conditioning frame, then clicking a tracked frame, starts afresh
        session.clear_prompts(0)
        session.clear_prompts(2)
        result = session.add_prompt(click(truth, 1))
        assert result.frame_idx == 1 and session.prompted_frames() == {1: [1]}


@pytest.mark.parametrize(
    ("plain_order", "legs"),
    [
        ((True, False), ["both"]),  # "both": backward first, as plain SAM 2 run backward then forward
        ((False, True), ["forward", "backward"]),  # one call each way, forward first
    ],
    ids=["both", "forward-then-backward"],
)
def test_lazy_session_matches_plain_sam2(predictor, tmp_path, plain_order, legs):
    """Same click, same decoded JPEG pixels: every frame's mask equals plain SAM 2's, in either order."""
    frames = jpeg_video(tmp_path / "jpg", 8)
    truth = [masks for _, masks in render(8, WIDTH, HEIGHT)]
    prompt = click(truth, 3)

    state = predictor.init_state(str(tmp_path / "jpg"))
    predictor.add_new_points_or_box(state, 3, 1, points=prompt.points, labels=prompt.labels)
    plain = {}
    for reverse in plain_order:
        for frame_idx, _, logits in predictor.propagate_in_video(state, reverse=reverse):
            plain.setdefault(frame_idx, FrameResult.from_sam2(frame_idx, [1], logits.numpy()).masks)

    with TrackingSession(predictor, ListFrames(frames)) as session:
        session.add_prompt(prompt)
        ours = {}
        for direction in legs:
            for result in session.propagate(start_frame=3, direction=direction):
                ours.setdefault(result.frame_idx, result.masks)
    assert sorted(ours) == list(range(8))
    for frame_idx, masks in plain.items():
        assert np.array_equal(ours[frame_idx], masks), f"frame {frame_idx} differs"


def test_pruning_is_bounded_and_changes_nothing(tmp_path):
    """keep_window=15 (SAM 2's minimum) over 34 frames: bounded state, same masks as plain SAM 2.

    A run keeps its first keep_window + 1 frames and the current window, so pruning starts only
    after 2 · 16 frames; image_size 128 keeps that affordable (pruning does not depend on it).
    """
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    small = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        None,
        device="cpu",
        hydra_overrides_extra=["++model.image_size=128"],
    )
    num_frames, keep_window = 34, 15
    frames = jpeg_video(tmp_path / "jpg", num_frames)
    prompt = click([masks for _, masks in render(num_frames, WIDTH, HEIGHT)], 0)

    state = small.init_state(str(tmp_path / "jpg"))
    small.add_new_points_or_box(state, 0, 1, points=prompt.points, labels=prompt.labels)
    plain = {f: logits[:, 0].numpy() > 0 for f, _, logits in small.propagate_in_video(state)}

    assert TrackingSession.min_keep_window(small) == keep_window
    with TrackingSession(small, ListFrames(frames), keep_window=keep_window) as session:
        session.add_prompt(prompt)
        for result in session.propagate(direction="forward"):
            stored = session.stored_frames()
            assert stored.non_conditioning[1] <= 2 * (keep_window + 1)
            assert stored.cached_features <= 1 and stored.model_frames <= 6
            assert np.array_equal(result.masks, plain[result.frame_idx]), f"frame {result.frame_idx} differs"
        # frame 0 is the prompt; 1..15 are the run's first frames; 16 and 17 fell out of the window
        assert session.stored_frames().non_conditioning[1] == 15 + keep_window + 1
        assert session.stored_frames().conditioning[1] == 1
        assert session.mask_at(16) is None and session.mask_at(15) is not None


def test_keep_window_below_what_sam2_reads_is_refused(predictor, video):
    with pytest.raises(ValueError, match="keep_window"):
        TrackingSession(predictor, video[0], keep_window=8)


@pytest.mark.parametrize("num_objects", [1, 2, 3])
def test_masks_resolved_on_device_like_from_sam2(num_objects):
    generator = torch.Generator().manual_seed(num_objects)
    logits = torch.randn(num_objects, 9, 11, generator=generator)
    logits[:, 0, 0] = 1.5  # a tie: the first object wins, as in from_sam2
    expected = FrameResult.from_sam2(0, list(range(1, num_objects + 1)), logits.numpy()).masks
    assert np.array_equal(resolve_masks(logits), expected)


def test_preprocessing_matches_sam2_loader(tmp_path):
    from sam2.utils.misc import load_video_frames_from_jpg_images

    folder = tmp_path / "jpg"
    folder.mkdir()
    rng = np.random.default_rng(0)
    decoded = []
    for idx in range(2):
        Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(
            folder / f"{idx}.jpg", quality=95
        )
        decoded.append(np.array(Image.open(folder / f"{idx}.jpg").convert("RGB")))
    images, height, width = load_video_frames_from_jpg_images(str(folder), 64, offload_video_to_cpu=True)
    assert (height, width) == (37, 53)
    for idx, frame in enumerate(decoded):
        ours = preprocess_frame(frame, 64)
        assert ours.dtype == torch.float32 and ours.is_contiguous()
        assert torch.equal(ours, images[idx])
