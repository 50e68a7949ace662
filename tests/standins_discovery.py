"""Stand-ins for discovery's decision tests: small, exact, named as stand-ins, no models.

* :class:`StandInColourEncoder` — a stand-in for CLIP that scores by colour: an image (or a
  mask's pixels) embeds as soft weights over a few named colours, a prompt word as that colour.
* :class:`StandInComponentDetector` — a stand-in for Find on one frame: connected components of
  the named colours as proposals, scored by the colour encoder, the negative prompt applied as
  Find applies it.
* :class:`StandInPointProposer`, :class:`StandInCropEncoder` — stand-ins for SAM 2's point
  proposer and for CLIP as the real detector (``ClipDetector``) calls them, counting the points
  decoded and the crops encoded.
* :class:`StandInBlobTracker` — a stand-in for SAM 2: follows colour blobs from frame to frame
  (the component pixels overlapping the previous mask moved by the last velocity; pixels two
  objects claim go to the nearer predicted centre); an object whose blob disappears stays empty
  until it is prompted again.
* :class:`StandInBlobSession` — a stand-in for :class:`tracker.session.TrackingSession` over
  the blob tracker: what :class:`tracker.workspace.Workspace` calls on a session (prompts, the
  plan, propagation, discovery's mid-run calls), so the real workspace, handlers and app run on
  it (``Workspace.session_factory``); a click picks the colour blob under it.
* :func:`render_scene` — generated videos of discs that enter, leave and come back;
  :func:`write_scene` writes one as an mp4 (for the CLI, the app and the browser).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from tests.synthetic import background
from tracker.candidates.clip import combine_scores
from tracker.discovery import Detection
from tracker.errors import InputError
from tracker.legs import Leg, plan_legs
from tracker.masks import mask_centroid
from tracker.types import FramePrompt, FrameResult

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
}
RED, BLUE = COLOURS["red"], COLOURS["blue"]
WIDTH, HEIGHT = 128, 96


# ---------------------------------------------------------------------- scenes
@dataclass(frozen=True)
class Disc:
    """A disc of ``colour`` whose centre on frame ``f`` is ``path(f)`` (pixels), None when absent."""

    colour: tuple[int, int, int]
    radius: float
    path: Callable[[int], tuple[float, float] | None]


def render_scene(discs: Sequence[Disc], num_frames: int) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Frames (``H×W×3 uint8``) and ground truth ``[frame][disc]`` (later discs drawn on top)."""
    bg = background(WIDTH, HEIGHT)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames, truth = [], []
    for f in range(num_frames):
        frame = bg.copy()
        masks = []
        for disc in discs:
            centre = disc.path(f)
            if centre is None:
                mask = np.zeros((HEIGHT, WIDTH), bool)
            else:
                mask = (xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2 <= disc.radius**2
            frame[mask] = disc.colour
            masks = [m & ~mask for m in masks] + [mask]
        frames.append(frame)
        truth.append(masks)
    return frames, truth


def entering_scene() -> list[Disc]:
    """A blue disc all along, a red disc entering from the left on frame 4 (128×96)."""
    return [
        Disc(BLUE, 12, lambda f: (90, 30)),
        Disc(RED, 12, lambda f: None if f < 4 else (-11 + 4 * (f - 4), 60)),
    ]


def arriving_scene() -> list[Disc]:
    """A red disc all along (the one a person picks), moving right along the top; a blue disc
    standing still (the negative prompt); a second red disc entering from the left on frame 6,
    along the bottom (the one discovery finds). 128×96, radius 10."""
    return [
        Disc(RED, 10, lambda f: (20 + 2 * f, 28)),
        Disc(BLUE, 10, lambda f: (104, 28)),
        Disc(RED, 10, lambda f: None if f < 6 else (-9 + 4 * (f - 6), 70)),
    ]


def write_scene(path, discs: Sequence[Disc], num_frames: int, fps: float = 8):
    """:func:`render_scene` written to ``path`` as an H.264 mp4 (near-lossless); returns ``path``."""
    import imageio_ffmpeg

    frames, _ = render_scene(discs, num_frames)
    writer = imageio_ffmpeg.write_frames(
        str(path), (WIDTH, HEIGHT), fps=fps, codec="libx264", quality=None, bitrate=None,
        output_params=["-crf", "12", "-pix_fmt", "yuv420p"], macro_block_size=1, ffmpeg_log_level="error",
    )  # fmt: skip
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def entry_frame(truth: list[list[np.ndarray]], disc: int) -> int:
    """The first frame where disc ``disc`` has a visible pixel."""
    return next(f for f, masks in enumerate(truth) if masks[disc].any())


# ---------------------------------------------------------------------- pixels
def colour_pixels(frame: np.ndarray, colour: tuple[int, int, int], tolerance: float = 60.0) -> np.ndarray:
    distance = np.linalg.norm(frame.astype(np.float32) - np.array(colour, np.float32), axis=-1)
    return distance < tolerance


def connected_components(mask: np.ndarray, min_area: int = 4) -> list[np.ndarray]:
    """4-connected components of an ``H×W bool`` mask (by repeated min-label spreading)."""
    height, width = mask.shape
    big = height * width + 1
    labels = np.where(mask, np.arange(height * width).reshape(height, width), big)
    while True:
        spread = labels.copy()
        spread[1:] = np.minimum(spread[1:], labels[:-1])
        spread[:-1] = np.minimum(spread[:-1], labels[1:])
        spread[:, 1:] = np.minimum(spread[:, 1:], labels[:, :-1])
        spread[:, :-1] = np.minimum(spread[:, :-1], labels[:, 1:])
        spread = np.where(mask, spread, big)
        if np.array_equal(spread, labels):
            break
        labels = spread
    parts = [labels == value for value in np.unique(labels[mask])]
    return [part for part in parts if part.sum() >= min_area]


def shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(mask)
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    ys, xs = ys + dy, xs + dx
    keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    out[ys[keep], xs[keep]] = True
    return out


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


# ---------------------------------------------------------------------- stand-in CLIP and Find
class StandInColourEncoder:
    """Stand-in for CLIP: colours instead of meanings. Embeddings are unit vectors over :data:`COLOURS`."""

    def __init__(self, sharpness: float = 40.0) -> None:
        self.names = list(COLOURS)
        self.sharpness = sharpness

    def text(self, word: str) -> np.ndarray:
        vector = np.zeros(len(self.names), np.float32)
        vector[self.names.index(word)] = 1.0
        return vector

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        mean = pixels.reshape(-1, 3).astype(np.float32).mean(0)
        distance = np.array([np.linalg.norm(mean - np.array(c, np.float32)) for c in COLOURS.values()])
        weights = np.exp(-((distance / self.sharpness) ** 2)).astype(np.float32)
        weights = weights + 1e-3
        return weights / np.linalg.norm(weights)


class StandInCropEncoder(StandInColourEncoder):
    """Stand-in for CLIP as :class:`tracker.discovery.detector.ClipDetector` calls it
    (``encode_prompt`` / ``encode_images``, a crop's mean colour); counts the crops it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.crops_seen = 0

    def encode_prompt(self, prompt: str) -> np.ndarray:
        return self.text(prompt)

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        self.crops_seen += len(images)
        return np.stack([self.embed_pixels(image) for image in images])


class StandInPointProposer:
    """Stand-in for SAM 2's point proposer (``tracker.candidates.PointPromptProposer``'s call
    signature and grid): each decoded point proposes the colour component under it and the part
    of that component within ``part`` pixels of the point. ``decoded`` lists every point decoded.
    """

    uses_points = True

    def __init__(self, grid: int = 4, part: int = 6) -> None:
        self.grid = grid
        self.part = part
        self.decoded: list[tuple[float, float]] = []

    def grid_points(self, width: int, height: int) -> np.ndarray:
        steps = (np.arange(self.grid) + 0.5) / self.grid
        xs, ys = np.meshgrid(steps * width, steps * height)
        return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)

    def __call__(self, frame, points=None, *, backbone=None, grid: bool = True) -> list:
        from tracker.candidates.proposers import Proposal

        height, width = frame.shape[:2]
        prompts = [tuple(p) for p in (self.grid_points(width, height) if grid else [])]
        prompts = [tuple(map(float, p)) for p in (points if points is not None else [])] + prompts
        self.decoded += prompts
        yy, xx = np.mgrid[0:height, 0:width]
        proposals = []
        for x, y in prompts:
            for colour in COLOURS.values():
                for part in connected_components(colour_pixels(frame, colour)):
                    if part[int(y), int(x)]:
                        near = (np.abs(xx - x) <= self.part) & (np.abs(yy - y) <= self.part)
                        proposals += [Proposal(part, 1.0), Proposal(part & near, 0.9)]
        return proposals


class StandInComponentDetector:
    """Stand-in for Find on one frame: components of the named colours, scored by colour.

    ``score = 100·e·text − softplus(100·e·neg − 100·e·text)`` with ``e`` the component's colour
    embedding (:func:`tracker.candidates.clip.combine_scores`, as Find scores crops).
    """

    def __init__(
        self, prompt: str, negative: str | None = None, encoder: StandInColourEncoder | None = None
    ) -> None:
        self.encoder = encoder or StandInColourEncoder()
        self.text = self.encoder.text(prompt)
        self.negative = None if negative is None else self.encoder.text(negative)
        self.calls: list[int] = []

    def detect(self, frame_idx: int, frame: np.ndarray, covered: np.ndarray | None = None) -> list[Detection]:
        """Every component (``covered`` is accepted and ignored: a detector may skip work there)."""
        self.calls.append(frame_idx)
        detections = []
        for colour in COLOURS.values():
            for part in connected_components(colour_pixels(frame, colour)):
                embedding = self.encoder.embed_pixels(frame[part])
                scores, _ = combine_scores(
                    embedding[None], self.text, None if self.negative is None else self.negative
                )
                detections.append(Detection(part, float(scores[0]), embedding))
        return detections

    def embed(self, frame: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self.encoder.embed_pixels(frame[np.asarray(m, bool)]) for m in masks])


# ---------------------------------------------------------------------- stand-in SAM 2
@dataclass
class _Blob:
    colour: tuple[int, int, int]
    mask: np.ndarray
    velocity: tuple[float, float] = (0.0, 0.0)


class StandInBlobTracker:
    """Stand-in for SAM 2 following colour blobs (see the module docstring); an ObjectTracker."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.blobs: dict[int, _Blob] = {}
        self.prompts: dict[int, tuple[int, np.ndarray]] = {}  # object → (frame, mask) of its last prompt
        self.object_runs: list[tuple[int, int, int]] = []  # (object, start, last) of each track_object
        self.history: dict[int, dict[int, np.ndarray]] = {}  # object → frame → the mask it had there

    def begin_leg(self, start_frame: int, step: int) -> None:
        """A new leg from ``start_frame``: each object restarts from its prompt there, else from
        its mask on the frame before (in the leg's direction), else empty."""
        for oid, blob in self.blobs.items():
            prompt_frame, prompt_mask = self.prompts[oid]
            before = self.history.get(oid, {}).get(start_frame - step)
            blob.mask = (
                prompt_mask.copy()
                if prompt_frame == start_frame
                else (before.copy() if before is not None else np.zeros_like(prompt_mask))
            )
            blob.velocity = (0.0, 0.0)

    # the forward run (what the session's propagation does)
    def step(self, frame_idx: int) -> FrameResult:
        frame = self.frames[frame_idx]
        moving = {oid: blob for oid, blob in self.blobs.items() if self.prompts[oid][0] != frame_idx}
        new_masks = self._follow(frame, moving)
        for oid, mask in new_masks.items():
            self._update(self.blobs[oid], mask)
        for oid, blob in self.blobs.items():
            self.history.setdefault(oid, {})[frame_idx] = blob.mask
        return self.result(frame_idx)

    def result(self, frame_idx: int) -> FrameResult:
        ids = tuple(sorted(self.blobs))
        if not ids:
            return FrameResult.empty(frame_idx, HEIGHT, WIDTH)
        masks = np.stack([self.blobs[oid].mask for oid in ids])
        return FrameResult(frame_idx, ids, masks, np.ones(len(ids), np.float32))

    # ObjectTracker
    def add_object(self, object_id: int, frame_idx: int, mask: np.ndarray) -> FrameResult:
        frame = self.frames[frame_idx]
        colour = _nearest_colour(frame[mask])
        self.blobs[object_id] = _Blob(colour, mask.copy())
        self.prompts[object_id] = (frame_idx, mask.copy())
        self.history.setdefault(object_id, {})[frame_idx] = mask.copy()
        for oid, blob in self.blobs.items():
            if oid != object_id:
                blob.mask = blob.mask & ~mask
        return self.result(frame_idx)

    def track_object(self, object_id: int, start_frame: int, last_frame: int) -> Iterator[FrameResult]:
        self.object_runs.append((object_id, start_frame, last_frame))
        frame_idx, mask = self.prompts[object_id]
        blob = _Blob(self.blobs[object_id].colour, mask.copy())
        step = -1 if last_frame < start_frame else 1
        for f in range(start_frame + step, last_frame + step, step):
            new = self._follow(self.frames[f], {object_id: blob})[object_id]
            self._update(blob, new)
            self.history.setdefault(object_id, {})[f] = blob.mask
            yield FrameResult(f, (object_id,), blob.mask[None].copy(), np.ones(1, np.float32))

    def remove_object(self, object_id: int) -> None:
        self.blobs.pop(object_id, None)
        self.prompts.pop(object_id, None)
        self.history.pop(object_id, None)

    # blob following
    def _follow(self, frame: np.ndarray, blobs: dict[int, _Blob]) -> dict[int, np.ndarray]:
        predicted = {}
        claims: dict[int, np.ndarray] = {}
        for oid, blob in blobs.items():
            if not blob.mask.any():
                claims[oid] = blob.mask
                continue
            dx, dy = (int(round(v)) for v in blob.velocity)
            guess = dilate(shift(blob.mask, dx, dy), 2)
            centre = mask_centroid(blob.mask) or (0.0, 0.0)
            predicted[oid] = (centre[0] + dx, centre[1] + dy)
            pixels = colour_pixels(frame, blob.colour)
            claim = np.zeros_like(blob.mask)
            for part in connected_components(pixels, min_area=1):
                if (part & guess).any():
                    claim |= part
            claims[oid] = claim
        ids = [oid for oid in claims if oid in predicted]
        yy, xx = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]]
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                shared = claims[a] & claims[b]
                if not shared.any():
                    continue
                da = (xx - predicted[a][0]) ** 2 + (yy - predicted[a][1]) ** 2
                db = (xx - predicted[b][0]) ** 2 + (yy - predicted[b][1]) ** 2
                claims[a] = claims[a] & ~(shared & (db < da))
                claims[b] = claims[b] & ~(shared & (da <= db))
        return claims

    @staticmethod
    def _update(blob: _Blob, mask: np.ndarray) -> None:
        before, after = mask_centroid(blob.mask), mask_centroid(mask)
        if before is not None and after is not None:
            vx, vy = after[0] - before[0], after[1] - before[1]
            blob.velocity = (0.5 * blob.velocity[0] + 0.5 * vx, 0.5 * blob.velocity[1] + 0.5 * vy)
        blob.mask = mask


def _nearest_colour(pixels: np.ndarray) -> tuple[int, int, int]:
    mean = pixels.reshape(-1, 3).astype(np.float32).mean(0)
    return min(COLOURS.values(), key=lambda c: float(np.linalg.norm(mean - np.array(c, np.float32))))


# ---------------------------------------------------------------------- stand-in tracking session
class StandInBlobSession:
    """Stand-in for :class:`tracker.session.TrackingSession`: :class:`StandInBlobTracker` behind
    the methods :class:`tracker.workspace.Workspace` (and discovery's ``SessionTracker``) call.

    Plugged in with ``workspace.session_factory = lambda ws: StandInBlobSession.of(ws)``. A mask
    prompt is taken as it is; clicks (or a box) pick the connected blob of a named colour under
    each positive click (inside the box), minus the blobs under negative clicks. One prompt per
    object (the newest); clearing an object's prompt frame forgets the object. Runs are planned by
    :func:`tracker.legs.plan_legs`, as the real session plans them. No model, no backbone features.
    """

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        self.frames = list(frames)
        self.num_frames = len(self.frames)
        self.height, self.width = self.frames[0].shape[:2]
        self.tracker = StandInBlobTracker(self.frames)
        self._running = False
        self._lock = threading.RLock()

    @classmethod
    def of(cls, workspace) -> StandInBlobSession:
        """The session of ``workspace``'s video (every frame decoded once: stand-in clips are small)."""
        return cls([workspace.frame(i) for i in range(workspace.info.num_frames)])

    # what the workspace asks
    @property
    def running(self) -> bool:
        return self._running

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.tracker.blobs))

    def prompted_frames(self) -> dict[int, list[int]]:
        return {oid: [frame] for oid, (frame, _) in sorted(self.tracker.prompts.items())}

    def add_prompt(self, prompt: FramePrompt) -> FrameResult:
        prompt.validate(self.width, self.height)
        mask = prompt.mask if prompt.mask is not None and prompt.mask.any() else self._blob_of(prompt)
        if not mask.any():
            raise InputError("Stand-in session: no coloured blob under the click.")
        with self._lock:
            self.tracker.add_object(int(prompt.object_id), int(prompt.frame_idx), mask)
            return self._result_at(int(prompt.frame_idx))

    def clear_prompts(self, frame_idx: int, object_id: int | None = None) -> FrameResult:
        with self._lock:
            for oid in [object_id] if object_id is not None else list(self.tracker.prompts):
                if self.tracker.prompts.get(oid, (None,))[0] == frame_idx:
                    self.tracker.remove_object(oid)
            return self._result_at(int(frame_idx))

    def remove_object(self, object_id: int) -> None:
        with self._lock:
            self.tracker.remove_object(int(object_id))

    def reset(self) -> None:
        with self._lock:
            self.tracker = StandInBlobTracker(self.frames)

    def mask_at(self, frame_idx: int) -> FrameResult | None:
        result = self._result_at(int(frame_idx))
        return result if any(m.any() for m in result.masks) else None

    def plan(
        self, start_frame: int | None = None, end_frame: int | None = None, direction: str = "both",
        max_frames: int | None = None,
    ) -> list[Leg]:  # fmt: skip
        prompted = {frame for frame, _ in self.tracker.prompts.values()}
        return plan_legs(self.num_frames, prompted, start_frame, end_frame, direction, max_frames)

    def propagate(
        self, start_frame: int | None = None, end_frame: int | None = None, direction: str = "both",
        cancel: threading.Event | None = None, *, max_frames: int | None = None,
    ) -> Iterator[FrameResult]:  # fmt: skip
        legs = self.plan(start_frame, end_frame, direction, max_frames)
        return self._run(legs, cancel)

    def _run(self, legs: list[Leg], cancel: threading.Event | None) -> Iterator[FrameResult]:
        self._running = True
        try:
            for leg in legs:
                self.tracker.begin_leg(leg.first, leg.step)
                for frame_idx in leg.frames():
                    if cancel is not None and cancel.is_set():
                        return
                    with self._lock:
                        result = self.tracker.step(frame_idx)
                    yield result
        finally:
            self._running = False

    def close(self) -> None:
        pass

    # what discovery asks (tracker.discovery.detector.SessionTracker), also while a run is paused
    def frame_features(self, frame_idx: int) -> None:
        return None  # no backbone: the stand-in detector looks at the frame itself

    def add_mask_mid_run(self, object_id: int, frame_idx: int, mask: np.ndarray) -> FrameResult:
        with self._lock:
            self.tracker.add_object(int(object_id), int(frame_idx), np.asarray(mask, bool))
            return self._result_at(int(frame_idx))

    def remove_object_mid_run(self, object_id: int) -> None:
        self.remove_object(object_id)

    def track_object(
        self, object_id: int, start_frame: int, last_frame: int, cancel: threading.Event | None = None
    ) -> Iterator[FrameResult]:
        for result in self.tracker.track_object(int(object_id), int(start_frame), int(last_frame)):
            if cancel is not None and cancel.is_set():
                return
            yield result

    # helpers
    def _result_at(self, frame_idx: int) -> FrameResult:
        ids = self.object_ids
        if not ids:
            return FrameResult.empty(frame_idx, self.height, self.width)
        empty = np.zeros((self.height, self.width), bool)
        masks = np.stack([self.tracker.history.get(oid, {}).get(frame_idx, empty) for oid in ids])
        return FrameResult(frame_idx, ids, masks, np.ones(len(ids), np.float32))

    def _blob_of(self, prompt: FramePrompt) -> np.ndarray:
        """The named-colour blobs under the positive clicks (inside the box), minus those under
        the negative clicks."""
        frame = self.frames[prompt.frame_idx]
        blobs = [
            part for colour in COLOURS.values() for part in connected_components(colour_pixels(frame, colour))
        ]
        mask = np.zeros((self.height, self.width), bool)
        for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
            hit = [part for part in blobs if part[int(y), int(x)]]
            for part in hit:
                mask = mask | part if label == 1 else mask & ~part
        if prompt.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
            inside = np.zeros_like(mask)
            inside[max(0, y0) : y1 + 1, max(0, x0) : x1 + 1] = True
            mask |= np.logical_or.reduce([p for p in blobs if (p & inside).sum() > 0.5 * p.sum()] or [mask])
        return mask
