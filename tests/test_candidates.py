"""tracker.candidates: prompt checks, frame ranking, point proposals, crop scoring, the streaming finder.

Most tests use named stand-ins (``StandInEncoder`` scores colours, ``StandInProposer`` returns
colour-threshold masks) so scores are deterministic; the ``slow`` tests run the real open_clip
ViT-B-32 and SAM 2.1 tiny (256 px) with random weights through the whole path once.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import make_video
from tracker.candidates import (
    GREY,
    MAX_PROMPT_CHARS,
    CandidateFinder,
    FinderOptions,
    Heatmap,
    Proposal,
    RankedFrame,
    check_prompt,
    clip_heatmap,
    combine_scores,
    crop_features,
    crop_for_clip,
    default_min_gap,
    default_stride,
    expand_box,
    frame_views,
    pick_frames,
    proposer_name,
    rank_frames,
    score_masks,
    suppress_overlaps,
    window_grid,
)
from tracker.errors import Cancelled, InputError, NoCandidates
from tracker.masks import mask_box
from tracker.types import Candidate
from tracker.video import VideoReader, probe

WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 24.0, 48  # 2 seconds


# ------------------------------------------------------------------------------ stand-ins


def red_pixels(image: np.ndarray) -> np.ndarray:
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 100) & (b < 100)


def blue_pixels(image: np.ndarray) -> np.ndarray:
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return (b > 150) & (r < 100) & (g < 130)


class StandInEncoder:
    """A stand-in for CLIP with known answers: an image's features are its shares of red, blue
    and other pixels (normalised); a prompt mentioning "red" is ``(1, 0, 0)``, "blue"
    ``(0, 1, 0)``, anything else ``(0, 0, 1)``. So a pure red crop scores 100 against "red"."""

    def __init__(self) -> None:
        self.image_calls: list[int] = []  # batch sizes, in call order

    def encode_prompt(self, prompt: str) -> np.ndarray:
        vector = np.zeros(3, np.float32)
        words = prompt.lower()
        vector[0 if "red" in words else 1 if "blue" in words else 2] = 1.0
        return vector

    def encode_images(self, images) -> np.ndarray:
        self.image_calls.append(len(images))
        rows = []
        for image in images:
            red, blue = red_pixels(image).mean(), blue_pixels(image).mean()
            rows.append([red, blue, max(0.0, 1.0 - red - blue)])
        rows = np.asarray(rows, np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class StandInProposer:
    """A stand-in for SAM: proposes the red shape, the blue shape, a duplicate of the red one,
    the whole frame and a speck (the last two must be dropped by the scorer). Each call is
    appended to ``log`` as ``("propose", frame_shape)``."""

    uses_points = False

    def __init__(self, log: list | None = None) -> None:
        self.log = log if log is not None else []

    def __call__(self, frame: np.ndarray, points=None) -> list[Proposal]:
        self.log.append(("propose", frame.shape))
        red, blue = red_pixels(frame), blue_pixels(frame)
        speck = np.zeros(frame.shape[:2], bool)
        speck[0:2, 0:2] = True
        whole = np.ones(frame.shape[:2], bool)
        return [
            Proposal(red, 0.9),
            Proposal(blue, 0.8),
            Proposal(red.copy(), 0.7),
            Proposal(whole, 0.6),
            Proposal(speck, 0.5),
        ]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, list[list[np.ndarray]]]:
    path = tmp_path_factory.mktemp("candidates") / "shapes.mp4"
    truth = make_video(path, num_frames=FRAMES, width=WIDTH, height=HEIGHT, fps=FPS)
    return path, truth


@pytest.fixture
def reader(video):
    with VideoReader(probe(video[0])) as opened:
        yield opened


def stand_in_finder(log: list | None = None, **options) -> CandidateFinder:
    return CandidateFinder(StandInEncoder(), proposer=StandInProposer(log), options=FinderOptions(**options))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def check_candidate(candidate: Candidate, reader, ranked: tuple[RankedFrame, ...]) -> None:
    assert candidate.mask.dtype == bool and candidate.mask.shape == (HEIGHT, WIDTH)
    x0, y0, x1, y1 = candidate.box
    assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
    assert candidate.box == mask_box(candidate.mask)
    assert candidate.frame_idx in {frame.frame_idx for frame in ranked}
    assert candidate.time == pytest.approx(reader.info.time_of(candidate.frame_idx))
    assert candidate.area == int(candidate.mask.sum())
    assert math.isfinite(candidate.score)


# ------------------------------------------------------------------------------ the finder


def test_find_streams_progress_then_candidates(reader, video):
    events = list(stand_in_finder().find(reader, "the red disc"))
    stages = [event.stage for event in events]
    assert stages[0] == "rank" and stages[-1] == "done"
    assert stages.index("masks") > max(i for i, s in enumerate(stages) if s == "rank")
    progress = [event.progress for event in events]
    assert progress == sorted(progress) and 0.0 <= progress[0] and progress[-1] == 1.0
    arrivals = [event for event in events if event.new_frame is not None]
    assert len(arrivals) == len(events[-1].ranked) >= 2
    final = events[-1].candidates
    assert final and [c.score for c in final] == sorted((c.score for c in final), reverse=True)
    for candidate in final:
        check_candidate(candidate, reader, events[-1].ranked)
    best = final[0]
    truth_red = video[1][best.frame_idx][0]
    assert iou(best.mask, truth_red) > 0.8
    assert best.score > 50  # about half the padded crop is red
    # the duplicate red mask was suppressed, the whole frame and the speck dropped: per frame,
    # only the red and the blue shape can remain
    for frame in events[-1].ranked:
        assert len([c for c in final if c.frame_idx == frame.frame_idx]) <= 2


def test_first_frame_candidates_arrive_before_next_frame_work(reader):
    log: list = []
    for event in stand_in_finder(log).find(reader, "red"):
        if event.new_frame is not None:
            log.append(("candidates", event.new_frame))
    kinds = [entry[0] for entry in log]
    assert kinds == ["propose", "candidates"] * (len(kinds) // 2)


@pytest.mark.parametrize("when", ["before start", "after first frame"])
def test_cancel_stops_with_cancelled(reader, when):
    cancel = threading.Event()
    events = stand_in_finder().find(reader, "red", cancel=cancel)
    seen = []
    with pytest.raises(Cancelled):
        if when == "before start":
            cancel.set()
        for event in events:
            seen.append(event)
            if event.new_frame is not None:
                cancel.set()
    if when == "after first frame":
        assert [e.new_frame for e in seen if e.new_frame is not None] == [seen[-1].new_frame]
        assert seen[-1].candidates  # what was shown stays valid
    else:
        assert seen == []


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t ", None])
def test_empty_prompt_is_refused_at_the_call(reader, prompt):
    with pytest.raises(InputError, match="Type what to follow"):
        stand_in_finder().find(reader, prompt)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("  red   shoes ", "red shoes"),
        ("rote Schuhe", "rote Schuhe"),
        ("赤い靴", "赤い靴"),
        ("a\x00b c", "ab c"),
    ],
)
def test_check_prompt(prompt, expected):
    assert check_prompt(prompt) == expected


def test_check_prompt_shortens_long_prompts_at_a_word(caplog):
    long_prompt = " ".join(["red"] * 200)  # 799 characters
    with caplog.at_level("WARNING", logger="tracker.candidates"):
        text = check_prompt(long_prompt)
    assert len(text) <= MAX_PROMPT_CHARS and set(text.split()) == {"red"}
    assert "77 tokens" in caplog.text


@pytest.mark.parametrize(
    ("options", "take_best", "outcome"),
    [
        ({"threshold": 1000.0}, False, NoCandidates),
        ({"threshold": 1000.0}, True, "below"),
        ({"threshold": 1000.0, "random_weights": True}, False, "passing"),
        ({"threshold": 50.0}, False, "passing"),
    ],
    ids=["impossible", "take-best", "random-weights", "normal"],
)
def test_threshold_no_candidates_and_take_best(reader, options, take_best, outcome):
    finder = stand_in_finder(**options)
    if outcome is NoCandidates:
        with pytest.raises(NoCandidates) as error:
            list(finder.find(reader, "red", take_best=take_best))
        assert error.value.best_score is not None and error.value.best_score < 1000
        assert error.value.threshold == 1000.0
        return
    done = list(finder.find(reader, "red", take_best=take_best))[-1]
    assert done.stage == "done" and done.candidates
    assert done.below_threshold is (outcome == "below")


def test_options_from_keywords():
    finder = CandidateFinder(
        StandInEncoder(), proposer=StandInProposer(), stride=None, threshold=5.0, top_frames=2
    )
    assert (
        finder.options.threshold == 5.0 and finder.options.top_frames == 2 and finder.options.stride is None
    )
    with pytest.raises(TypeError, match="unknown finder options"):
        CandidateFinder(StandInEncoder(), proposer=StandInProposer(), colour="red")


def test_options_from_settings():
    from tracker.settings import Settings

    options = FinderOptions.from_settings(
        Settings(top_frames=None, threshold=25.0, max_objects=6, take_best=True)
    )
    assert (options.top_frames, options.threshold, options.per_frame, options.take_best) == (3, 25.0, 6, True)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("points", "points"),
        ("sam2", "sam2-auto"),
        ("SAM2-auto", "sam2-auto"),
        ("sam1:vit_b", "sam1-auto"),
        (None, "points"),
    ],
)
def test_proposer_names(name, key):
    assert proposer_name(name) == key


def test_unknown_proposer_is_an_input_error():
    with pytest.raises(InputError, match="Unknown mask proposer"):
        CandidateFinder(StandInEncoder(), None, proposer="magic")


# ------------------------------------------------------------------------------ ranking


@pytest.mark.parametrize(
    ("scores", "top_k", "min_gap", "expected"),
    [
        ({0: 1.0, 12: 3.0, 24: 2.0, 36: 0.5}, 3, 24, [12, 36]),
        ({0: 1.0, 12: 3.0, 24: 2.0, 36: 0.5}, 3, 12, [12, 24, 0]),
        ({0: 1.0, 12: 3.0, 24: 2.0, 36: 0.5}, 1, 1, [12]),
        ({0: 2.0, 10: 2.0}, 2, 5, [0, 10]),  # ties: earlier first
        ({}, 3, 1, []),
    ],
)
def test_pick_frames_keeps_a_gap(scores, top_k, min_gap, expected):
    assert [frame for frame, _ in pick_frames(scores, top_k, min_gap)] == expected


@pytest.mark.parametrize(
    ("fps", "stride", "min_gap"),
    [(24.0, 12, 24), (30.0, 15, 30), (2.0, 1, 2), (1.0, 1, 2), (0.0, 1, 2)],
)
def test_default_stride_and_gap(fps, stride, min_gap):
    assert default_stride(fps) == stride
    assert default_min_gap(fps, stride) == min_gap


@pytest.mark.parametrize(
    ("width", "height", "views"), [(320, 240, 2), (240, 320, 2), (100, 100, 1), (854, 480, 2), (300, 100, 3)]
)
def test_frame_views_cover_the_frame(width, height, views):
    out = frame_views(np.zeros((height, width, 3), np.uint8), size=64)
    assert len(out) == views and all(view.shape == (64, 64, 3) for view in out)


class CountingReader:
    """Wraps a reader to check that ranking streams (no ``get``) with the asked stride."""

    def __init__(self, reader) -> None:
        self.reader, self.info, self.gets, self.iterations = reader, reader.info, 0, []

    def iter_frames(self, start, stop, step):
        self.iterations.append((start, stop, step))
        return self.reader.iter_frames(start, stop, step)

    def get(self, frame_idx):
        self.gets += 1
        return self.reader.get(frame_idx)


def test_rank_frames_streams_and_spaces_frames(reader):
    counting = CountingReader(reader)
    encoder = StandInEncoder()
    ranked = rank_frames(
        counting, encoder, encoder.encode_prompt("red"), stride=6, top_k=3, min_gap=12, batch_size=4
    )
    assert counting.iterations == [(0, FRAMES, 6)] and counting.gets == 0
    assert max(encoder.image_calls) <= 4  # one small batch of thumbnails at a time
    assert 1 <= len(ranked) <= 3 and all(frame.frame_idx % 6 == 0 for frame in ranked)
    indices = [frame.frame_idx for frame in ranked]
    assert all(abs(a - b) >= 12 for i, a in enumerate(indices) for b in indices[i + 1 :])
    assert [frame.score for frame in ranked] == sorted((frame.score for frame in ranked), reverse=True)
    assert ranked[0].time == pytest.approx(reader.info.time_of(ranked[0].frame_idx))


# ------------------------------------------------------------------------------ heat map


@pytest.mark.parametrize(("width", "height"), [(320, 240), (854, 480), (240, 320), (50, 50)])
def test_window_grid_covers_the_frame(width, height):
    windows = window_grid(width, height, (0.4, 0.7), 0.5)
    for scale_index in (0, 1):
        covered = np.zeros((height, width), bool)
        for s, x0, y0, x1, y1 in windows:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and x1 - x0 == y1 - y0
            if s == scale_index:
                covered[y0:y1, x0:x1] = True
        assert covered.all()


@pytest.mark.parametrize(
    ("prompt", "shape", "frame_idx", "scales"),
    [
        ("blue", 1, 10, (0.5,)),
        ("red", 0, 10, (0.5,)),
        ("red", 0, 40, (0.5,)),
        ("blue", 1, 40, (0.4, 0.7)),
        ("red", 0, 0, (0.4, 0.7)),
    ],
)
def test_heatmap_peak_lands_on_the_prompted_shape(reader, video, prompt, shape, frame_idx, scales):
    frame = reader.get(frame_idx)
    encoder = StandInEncoder()
    heat = clip_heatmap(frame, encoder, encoder.encode_prompt(prompt), scales=scales)
    assert len(encoder.image_calls) == 1  # all windows in one batch
    x, y = heat.peaks(3, 40)[0]
    ys, xs = np.nonzero(video[1][frame_idx][shape])
    assert xs.min() - 10 <= x <= xs.max() + 10 and ys.min() - 10 <= y <= ys.max() + 10


@pytest.mark.parametrize(
    ("hot", "expected"),
    [
        ((slice(2, 5), slice(6, 9)), (7.5 * 10, 3.5 * 10)),  # a 3×3 plateau: its centre, not its corner
        ((slice(0, 1), slice(0, 1)), (5.0, 5.0)),
        ((slice(9, 10), slice(11, 12)), (115.0, 95.0)),  # last cell, clamped inside the 120×100 frame
    ],
)
def test_heatmap_peak_is_the_plateau_centre(hot, expected):
    values = np.zeros((10, 12), np.float32)
    values[hot] = 5.0
    peaks = Heatmap(values, 10.0, 120, 100).peaks(2, 15.0)
    assert tuple(peaks[0]) == pytest.approx(expected)
    assert len(peaks) == 2 and np.hypot(*(peaks[1] - peaks[0])) > 15.0


# ------------------------------------------------------------------------------ crops and scores


@pytest.mark.parametrize(
    ("box", "margin", "expected"),
    [
        ((100, 100, 200, 150), 0.1, (90, 95, 210, 155)),
        ((0, 0, 50, 40), 0.2, (0, 0, 60, 48)),  # top-left corner: grows inwards only
        ((280, 200, 320, 240), 0.5, (260, 180, 320, 240)),  # bottom-right corner
        ((10.5, 20.5, 11.5, 21.5), 0.0, (10, 20, 12, 22)),  # fractional edges round outwards
        ((0, 0, 320, 240), 0.3, (0, 0, 320, 240)),  # the whole frame stays the frame
    ],
)
def test_expand_box_clips_to_the_frame(box, margin, expected):
    assert expand_box(box, margin, WIDTH, HEIGHT) == expected


@pytest.mark.parametrize(
    ("rect", "margin", "square", "shape"),
    [
        ((100, 100, 200, 150), 0.1, False, (60, 120, 3)),
        ((100, 100, 200, 150), 0.1, True, (120, 120, 3)),
        ((0, 0, 50, 40), 0.2, False, (48, 60, 3)),
        ((300, 220, 320, 240), 1.0, False, (40, 40, 3)),
        ((0, 100, 320, 110), 0.0, True, (320, 320, 3)),  # a long thin mask padded, not cut
    ],
)
def test_crop_for_clip_shapes(rect, margin, square, shape):
    frame = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    x0, y0, x1, y1 = rect
    mask[y0:y1, x0:x1] = True
    assert crop_for_clip(frame, mask, margin, dim=0.5, square=square).shape == shape


@pytest.mark.parametrize(("dim", "outside"), [(0.0, 200), (0.5, 164), (1.0, GREY)])
def test_crop_for_clip_dims_only_the_background(dim, outside):
    frame = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[100:150, 100:200] = True
    crop = crop_for_clip(frame, mask, margin=0.2, dim=dim, square=False)
    assert (crop[10:60, 20:120] == 200).all()  # the mask itself, untouched
    assert (crop[0, 0] == outside).all()


@pytest.mark.parametrize(
    "mask", [np.zeros((HEIGHT, WIDTH), bool), np.ones((10, 10), bool)], ids=["empty", "wrong size"]
)
def test_crop_for_clip_rejects_bad_masks(mask):
    with pytest.raises(ValueError):
        crop_for_clip(np.zeros((HEIGHT, WIDTH, 3), np.uint8), mask)


@pytest.mark.parametrize(
    ("s_pos", "s_neg", "expected"),
    [
        (30.0, None, 30.0),
        (30.0, 10.0, 30.0 - math.log1p(math.exp(-20.0))),  # negative far worse: ~no penalty
        (30.0, 30.0, 30.0 - math.log(2.0)),  # a tie costs log 2
        (20.0, 30.0, 20.0 - math.log1p(math.exp(10.0))),  # negative better: ~ s_neg − s_pos lost
    ],
)
def test_combine_scores(s_pos, s_neg, expected):
    # unit features whose dot products with the unit text vectors are s/100
    text, negative = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    a, b = s_pos / 100, (s_neg or 0.0) / 100
    features = np.array([[a, b, math.sqrt(1 - a * a - b * b)]])
    scores, negatives = combine_scores(features, text, None if s_neg is None else negative)
    assert scores[0] == pytest.approx(expected)
    assert negatives is None if s_neg is None else negatives[0] == pytest.approx(s_neg)


def test_negative_prompt_lowers_scores_by_how_much_better_it_matches(reader):
    frame = reader.get(10)
    red, blue = red_pixels(frame), blue_pixels(frame)
    sliver = red & (np.cumsum(red, axis=0) <= 3)  # the top few red pixels of each column
    encoder = StandInEncoder()
    text, negative = encoder.encode_prompt("red"), encoder.encode_prompt("blue")
    masks = {"red": red, "both": red | blue, "mostly blue": blue | sliver}
    plain = {c.area: c for c in score_masks(frame, list(masks.values()), encoder, text, margin=0.0, dim=1.0)}
    penalised = {
        c.area: c
        for c in score_masks(frame, list(masks.values()), encoder, text, negative, margin=0.0, dim=1.0)
    }
    penalty = {}
    for name, mask in masks.items():
        before, after = plain[int(mask.sum())], penalised[int(mask.sum())]
        assert before.negative_score is None and after.negative_score is not None
        penalty[name] = before.score - after.score
    assert 0 <= penalty["red"] < 1e-6 < penalty["both"] < penalty["mostly blue"]
    bluish = penalised[int(masks["mostly blue"].sum())]
    assert bluish.negative_score > plain[int(masks["mostly blue"].sum())].score  # the negative fits better
    assert penalty["mostly blue"] == pytest.approx(
        bluish.negative_score - (bluish.score + penalty["mostly blue"]), abs=1.0
    )


def test_each_candidate_keeps_the_crop_embedding_it_was_scored_with(reader):
    from tracker.engine import PlainCandidate

    frame = reader.get(10)
    encoder = StandInEncoder()
    text = encoder.encode_prompt("red")
    out = score_masks(frame, [red_pixels(frame), blue_pixels(frame)], encoder, text)
    assert encoder.image_calls == [2]  # one batch: the embeddings are the scored features, not encoded again
    assert len(out) == 2
    for c in out:
        assert c.embedding is not None and c.embedding.dtype == np.float32
        assert float(np.linalg.norm(c.embedding)) == pytest.approx(1.0, abs=1e-5)
        assert c.score == pytest.approx(100.0 * float(c.embedding @ text), abs=1e-3)
        assert c.text_score == c.score
        assert np.allclose(c.embedding, crop_features(frame, [c.mask], encoder)[0], atol=1e-6)
        assert "embedding" not in c.to_row("red")  # never exported
        back = PlainCandidate.from_candidate(c).to_candidate()  # what a ZeroGPU call hands back
        assert np.array_equal(back.embedding, c.embedding) and back.text_score == c.text_score


@pytest.mark.parametrize(
    ("area", "kept"),
    [(0, False), (50, False), (77, True), (5000, True), (72_960, True), (73_000, False), (76_800, False)],
)
def test_score_masks_drops_specks_and_whole_frames(area, kept):
    frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    mask = np.zeros(HEIGHT * WIDTH, bool)
    mask[:area] = True
    out = score_masks(frame, [mask.reshape(HEIGHT, WIDTH)], StandInEncoder(), np.array([0, 0, 1.0]))
    assert bool(out) is kept


def _candidate(frame_idx: int, rect: tuple[int, int, int, int], score: float) -> Candidate:
    mask = np.zeros((40, 40), bool)
    x0, y0, x1, y1 = rect
    mask[y0:y1, x0:x1] = True
    return Candidate(frame_idx, 0.0, mask, mask_box(mask), score)


@pytest.mark.parametrize(
    ("candidates", "iou", "kept_scores"),
    [
        ([(0, (0, 0, 10, 10), 5.0), (0, (0, 0, 10, 10), 9.0)], 0.5, [9.0]),  # identical collapse
        ([(0, (0, 0, 10, 10), 5.0), (0, (20, 20, 30, 30), 9.0)], 0.5, [9.0, 5.0]),  # disjoint survive
        ([(0, (0, 0, 10, 10), 5.0), (1, (0, 0, 10, 10), 9.0)], 0.5, [9.0, 5.0]),  # other frame survives
        ([(0, (0, 0, 10, 10), 5.0), (0, (5, 0, 15, 10), 9.0)], 0.5, [9.0, 5.0]),  # IoU 1/3 ≤ 0.5
        ([(0, (0, 0, 10, 10), 5.0), (0, (5, 0, 15, 10), 9.0)], 0.3, [9.0]),  # IoU 1/3 > 0.3
        (
            [(0, (0, 0, 20, 20), 5.0), (0, (0, 0, 10, 10), 9.0), (0, (10, 10, 20, 20), 7.0)],
            0.5,
            [9.0, 7.0, 5.0],
        ),
        ([], 0.5, []),
    ],
)
def test_suppress_overlaps(candidates, iou, kept_scores):
    kept = suppress_overlaps([_candidate(*row) for row in candidates], iou)
    assert [c.score for c in kept] == kept_scores


# ------------------------------------------------------------------------------ real models


@pytest.fixture(scope="module")
def models():
    from tracker.models import load_clip, load_sam2

    clip = load_clip("ViT-B-32/laion2b_s34b_b79k", device="cpu", random_weights=True)
    sam2 = load_sam2("tiny", image_size=256, device="cpu", random_weights=True)
    return clip, sam2


@pytest.mark.slow
def test_whole_find_with_real_models_random_weights(models, reader, caplog):
    clip, sam2 = models
    # small on purpose (2 ranked frames, 6 heat-map windows, a 2×2 grid): the path, not the quality
    finder = CandidateFinder(
        clip,
        sam2,
        proposer="points",
        points_per_side=8,
        stride=24,
        top_frames=2,
        min_gap=24,
        heat_scales=(0.7,),
        heat_peaks=2,
    )
    assert finder.options.random_weights  # the encoder says it is untrained
    with caplog.at_level("WARNING", logger="tracker.candidates"):
        events = list(finder.find(reader, "red disc", negative_prompt="blue square"))
    assert "Random weights" in caplog.text
    assert events[0].stage == "rank" and events[-1].stage == "done"
    first = next(i for i, e in enumerate(events) if e.new_frame is not None)
    assert events[first].candidates and first < len(events) - 1
    final = events[-1].candidates
    assert final
    for candidate in final:
        check_candidate(candidate, reader, events[-1].ranked)
        assert candidate.negative_score is not None


@pytest.mark.slow
def test_sam2_automatic_generator_as_proposer(models, reader):
    from tracker.candidates import build_proposer

    _, sam2 = models
    proposer = build_proposer("sam2-auto", sam2, points_per_side=4, random_weights=True)
    assert not proposer.uses_points
    proposals = proposer(reader.get(0))
    assert proposals
    for proposal in proposals:
        assert proposal.mask.shape == (HEIGHT, WIDTH) and proposal.mask.dtype == bool
    qualities = [p.quality for p in proposals]
    assert qualities == sorted(qualities, reverse=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("random_weights", "at_most"), [(True, 24), (False, 3)], ids=["relaxed", "strict-fallback"]
)
def test_point_proposer_with_real_sam2(models, reader, random_weights, at_most):
    from tracker.candidates import PointPromptProposer
    from tracker.models import sam2_image_predictor

    _, sam2 = models
    # Untrained SAM predicts IoU ≈ 0.5: the strict filters reject everything, so the fallback
    # keeps a few masks for CLIP rather than none.
    proposer = PointPromptProposer(sam2_image_predictor(sam2), grid=3, random_weights=random_weights)
    proposals = proposer(reader.get(5), np.array([[100.0, 80.0]]))
    assert 1 <= len(proposals) <= at_most
    assert all(p.mask.shape == (HEIGHT, WIDTH) and p.mask.dtype == bool for p in proposals)
    assert set(proposer.last_timings) == {"set_image", "decode", "post"}
