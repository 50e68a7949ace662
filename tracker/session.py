"""A typed, thread-safe tracking session around SAM 2's video predictor.

This is the only module that touches SAM 2's ``inference_state`` (a dict of ~20 string keys).
Everything a caller sees is in working-video terms: frames 0-based, points ``(x, y)`` and boxes
``xyxy`` in working-video pixels, masks ``H×W bool`` at working resolution, results as
:class:`tracker.types.FrameResult`.

What the session changes compared to calling ``SAM2VideoPredictor`` directly:

* **Lazy frames.** ``init_state`` normally loads every frame up front as an ``image_size²``
  float tensor (12.6 MB a frame at 1024). The session hands SAM 2 a lazy sequence instead
  (:class:`ModelFrames`) that preprocesses a frame when SAM 2 asks for it, exactly like
  ``sam2.utils.misc.load_video_frames`` does (same PIL resize, same ``/255`` and ImageNet
  normalisation, bit for bit), keeps a few recent frames and, while tracking, prepares the next
  frame on a background thread so decoding and resizing overlap inference.
* **Flat memory.** After each tracked frame the session drops each object's
  non-conditioning outputs that lie more than ``keep_window`` frames behind the current frame
  (in the direction of travel), except the first ``keep_window + 1`` frames of the run, which a
  run from the same start in the other direction reads. SAM 2 reads at most
  ``1 + (num_maskmem - 2) · stride`` frames back for mask memory (6 with the released configs)
  and ``max_obj_ptrs_in_encoder - 1`` (15) for object pointers, and skips missing frames, so a
  ``"both"`` run, or a forward and a backward run from the same frame, give the same masks as
  plain SAM 2. Conditioning frames (prompted frames) and frames with prompts are always kept;
  SAM 2's own feature cache holds one frame.
* **Corrections stick.** In sam2 1.1.0 a click on an already-tracked frame is stored as a
  *non-conditioning* output unless the model was built with ``add_all_frames_to_correct_as_cond``;
  the next propagation through that frame recomputes it and the correction is lost. The session
  stores such corrections as conditioning frames (what that flag does) without changing the
  shared predictor.
* **Objects together.** On a tracked frame, objects that share a memory layout go through
  memory attention, the mask decoder and the memory encoder as one batch, and what is the same
  for all of them (the first memory-attention self-attention, the memory encoder's projection of
  the frame) is computed once (:mod:`tracker.object_batch`; ``batch_objects = False`` runs them
  one by one as upstream does). Masks equal upstream's up to float rounding.
* **One lock, typed errors, cancel between frames.** Every public method runs under one
  ``RLock``; :meth:`TrackingSession.propagate` is a generator that yields a
  :class:`~tracker.types.FrameResult` per frame, checks a ``threading.Event`` between frames and
  never holds the lock while suspended (so it can be driven from a thread pool).

What pruning gives up: a later correction click on a frame whose neighbours were pruned is
interpreted with the conditioning frames' memory only (plain SAM 2 would also use the tracked
neighbours and the frame's previous mask), and re-tracking from an arbitrary frame starts
without the tracked frames just before it. Pass ``keep_window=None`` for plain SAM 2 behaviour
(memory then grows by roughly 50 KB per frame and object at ``image_size`` 256, 0.8 MB at 1024).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from . import timing
from .errors import InputError
from .legs import DIRECTIONS, Direction, Leg, plan_legs  # noqa: F401 (re-exported)
from .types import FramePrompt, FrameResult

if TYPE_CHECKING:
    from sam2.sam2_video_predictor import SAM2VideoPredictor

logger = logging.getLogger(__name__)


# sam2.utils.misc.load_video_frames' defaults (ImageNet statistics).
IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)
_MEAN = np.array(IMG_MEAN, dtype=np.float32)
_STD = np.array(IMG_STD, dtype=np.float32)
# SAM 2's "no object" logit (sam2.modeling.sam2_base.NO_OBJ_SCORE), used for objects with no
# output on a frame.
NO_OBJ_SCORE = -1024.0
# How many preprocessed frames ModelFrames keeps, and how far ahead it prepares while tracking.
MODEL_FRAME_CACHE = 4
PREFETCH_DEPTH = 2

# sam2 1.1.0 private methods the session drives; checked once per session so a different sam2
# fails with one clear message instead of a KeyError mid-run.
_REQUIRED_METHODS = (
    "init_state",
    "add_new_points_or_box",
    "add_new_mask",
    "clear_all_prompts_in_frame",
    "remove_object",
    "reset_state",
    "propagate_in_video_preflight",
    "_run_single_frame_inference",
    "_get_orig_video_res_output",
)

# init_state looks up load_video_frames in sam2.sam2_video_predictor's namespace; swapping it is
# serialised so two sessions never restore each other's patch.
_PATCH_LOCK = threading.Lock()


@runtime_checkable
class FrameSequence(Protocol):
    """Anything that hands out decoded frames: ``len(source)`` frames, ``get(i)`` → ``H×W×3 uint8 RGB``.

    The working size is read from ``width``/``height`` attributes, else ``info.width``/
    ``info.height`` (a :class:`tracker.video.VideoReader`), else from frame 0. ``get`` may be
    called from a background thread (one call at a time per session).
    """

    def __len__(self) -> int: ...

    def get(self, frame_idx: int) -> np.ndarray: ...


@dataclass(frozen=True)
class StoredFrames:
    """How much per-frame state the session holds (for tests and memory diagnostics).

    ``conditioning`` / ``non_conditioning``: object id → outputs kept in SAM 2's state (pending
    prompt outputs not yet merged by a propagation are counted as conditioning).
    ``cached_features``: frames whose backbone features SAM 2 caches (1 after any work).
    ``model_frames``: preprocessed frames held by :class:`ModelFrames` (cache + prefetched).
    """

    conditioning: dict[int, int]
    non_conditioning: dict[int, int]
    cached_features: int
    model_frames: int


def frame_size(frames: Any) -> tuple[int, int]:
    """``(width, height)`` of a :class:`FrameSequence` (see its docstring for where it looks)."""
    for holder in (frames, getattr(frames, "info", None)):
        width, height = getattr(holder, "width", None), getattr(holder, "height", None)
        if isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer)):
            return int(width), int(height)
    first = frames.get(0)
    return int(first.shape[1]), int(first.shape[0])


@timing.stage("preprocess")
def preprocess_frame(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """One frame as SAM 2's JPEG loader makes it: ``3×S×S float32``, contiguous, on the CPU.

    Mirrors ``sam2.utils.misc._load_img_as_tensor`` + the normalisation in
    ``load_video_frames_from_jpg_images`` operation for operation (PIL's default resize filter,
    aspect ratio not kept, ``/255`` in float64 then float32, then ``(x - mean) / std`` in
    float32), so the model sees the same numbers as with ``init_state`` on a JPEG folder of the
    same pixels. It runs in numpy only: on the prefetch thread, a torch op would start a second
    OpenMP thread team that competes with inference for the cores.
    """
    resized = np.asarray(Image.fromarray(frame).convert("RGB").resize((image_size, image_size)))
    image = (resized / 255.0).astype(np.float32)
    image -= _MEAN
    image /= _STD
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class ModelFrames:
    """SAM 2's ``inference_state["images"]``, built on demand from a :class:`FrameSequence`.

    ``len()`` is the number of frames; ``[i]`` returns frame ``i`` as :func:`preprocess_frame`
    makes it (moved to ``device`` when that is a GPU). Keeps the ``cache_size`` most recently
    used frames. While a direction is set with :meth:`hint`, each access also prepares the next
    ``prefetch`` frames in that direction on one background thread; ``frames.get`` is never
    called concurrently by this object.
    """

    def __init__(
        self,
        frames: FrameSequence,
        image_size: int,
        width: int,
        height: int,
        *,
        device: torch.device | None = None,
        cache_size: int = MODEL_FRAME_CACHE,
        prefetch: int = PREFETCH_DEPTH,
    ) -> None:
        self.source = frames
        self.image_size = int(image_size)
        self.width = int(width)
        self.height = int(height)
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.cache_size = max(1, int(cache_size))
        self.prefetch = max(0, int(prefetch))
        self._num_frames = len(frames)
        self._lock = threading.Lock()
        self._source_lock = threading.Lock()
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._pending: dict[int, Future[torch.Tensor]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._step = 0  # 0 = no prefetching
        self._stop: int | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return self._num_frames

    def __getitem__(self, frame_idx: int) -> torch.Tensor:
        frame_idx = int(frame_idx)
        if not 0 <= frame_idx < self._num_frames:
            raise IndexError(f"frame {frame_idx} is outside 0..{self._num_frames - 1}")
        with self._lock:
            image = self._cache.get(frame_idx)
            if image is not None:
                self._cache.move_to_end(frame_idx)
            future = self._pending.pop(frame_idx, None)
        if image is None:
            if future is not None:
                image = future.result()
                self.hits += 1
            else:
                image = self._load(frame_idx)
                self.misses += 1
            with self._lock:
                self._cache[frame_idx] = image
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        self._schedule(frame_idx)
        return image

    def hint(self, step: int, stop: int | None = None) -> None:
        """Prefetch in direction ``step`` (+1 / -1) up to frame ``stop``; ``step=0`` stops it."""
        with self._lock:
            self._step = int(step) if self.prefetch else 0
            self._stop = stop
            if not self._step:
                for future in self._pending.values():
                    future.cancel()
                self._pending.clear()

    def held(self) -> int:
        with self._lock:
            return len(self._cache) + len(self._pending)

    def wait(self) -> None:
        """Block until the frames being prepared ahead are ready (a failed one is retried on demand)."""
        from concurrent.futures import wait

        with self._lock:
            pending = list(self._pending.values())
        wait(pending)

    def close(self) -> None:
        self.hint(0)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._cache.clear()

    def _load(self, frame_idx: int) -> torch.Tensor:
        with self._source_lock:
            frame = self.source.get(frame_idx)
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame {frame_idx} is {frame.dtype} {frame.shape}, expected uint8 "
                f"{(self.height, self.width, 3)} (H×W×3 RGB at the working size)"
            )
        image = preprocess_frame(frame, self.image_size)
        if self.device.type == "cuda":
            # Copy on this thread, from pinned memory, so the transfer overlaps inference too.
            image = image.pin_memory().to(self.device, non_blocking=True)
        return image

    def _schedule(self, frame_idx: int) -> None:
        with self._lock:
            step, stop = self._step, self._stop
            if not step:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2-frames")
            for ahead in range(1, self.prefetch + 1):
                target = frame_idx + ahead * step
                if not 0 <= target < self._num_frames:
                    break
                if stop is not None and (target - stop) * step > 0:
                    break
                if target in self._cache or target in self._pending:
                    continue
                self._pending[target] = self._executor.submit(timing.bind(self._load), target)


@timing.stage("resolve masks")
def resolve_masks(logits: torch.Tensor) -> np.ndarray:
    """``N×H×W`` logits (any device) → ``N×H×W bool`` numpy, thresholded on the device.

    Same rule as :meth:`FrameResult.from_sam2`: a pixel belongs to the object with the highest
    positive logit (first object on ties), so masks never overlap; only the bool masks cross to
    the CPU.
    """
    n = logits.shape[0]
    if n < 2:
        return (logits > 0).cpu().numpy()
    # argmax over the objects, one elementwise pass per object (torch's argmax along dim 0 is
    # ~10× slower on a CPU); strict ">" keeps the first object on ties, as argmax does. Object
    # k's mask is "k wins and its logit is positive", i.e. "k wins and the best logit is positive".
    best = logits[0].clone()
    winner = torch.zeros(logits.shape[1:], dtype=torch.int16, device=logits.device)
    for k in range(1, n):
        better = logits[k] > best
        best = torch.where(better, logits[k], best)
        winner.masked_fill_(better, k)
    winner.masked_fill_(~(best > 0), -1)
    return (
        (winner.unsqueeze(0) == torch.arange(n, device=logits.device, dtype=torch.int16).view(n, 1, 1))
        .cpu()
        .numpy()
    )


class TrackingSession:
    """One video's SAM 2 tracking state, behind typed methods and one lock.

    ``predictor`` is a ``SAM2VideoPredictor`` (shared between sessions is fine: the session
    never changes it). ``frames`` is a :class:`FrameSequence` at the working size; masks come back
    at that size. ``keep_window`` is how many tracked frames behind the current one are kept per
    object (``None`` keeps everything, like plain SAM 2; it must be at least what SAM 2 reads,
    15 with the released configs). ``offload_state`` keeps SAM 2's per-frame state in CPU
    memory (worth it on a GPU only when ``keep_window`` is ``None`` and the video is long).
    ``autocast`` is a zero-argument callable returning a context manager entered around every
    model call (e.g. ``lambda: torch.autocast("cpu", dtype=torch.bfloat16)``), or ``None``.
    ``prefetch`` prepares the next frames on a background thread while tracking.

    Creating a session encodes frame 0 (SAM 2's warm-up). Call :meth:`close` (or use ``with``)
    to stop the prefetch thread and free the state.

    ``batch_objects`` (default True): several objects on a tracked frame go through SAM 2 as
    batches that share the frame's common work (:mod:`tracker.object_batch`); False runs them
    one by one as ``propagate_in_video`` does.
    """

    batch_objects: bool = True

    def __init__(
        self,
        predictor: SAM2VideoPredictor,
        frames: FrameSequence,
        *,
        keep_window: int | None = 24,
        offload_state: bool = False,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        prefetch: bool = True,
    ) -> None:
        missing = [name for name in _REQUIRED_METHODS if not hasattr(predictor, name)]
        if missing:
            raise TypeError(f"predictor is not a sam2 1.1 SAM2VideoPredictor (missing {', '.join(missing)})")
        if getattr(predictor, "clear_non_cond_mem_around_input", False):
            # sam2 1.1.0 calls an undefined _clear_obj_non_cond_mem_around_input on that path.
            raise ValueError(
                "clear_non_cond_mem_around_input=True is broken in sam2 1.1.0; build the predictor without it"
            )
        self.keep_window = keep_window
        if keep_window is not None and keep_window < self.min_keep_window(predictor):
            raise ValueError(
                f"keep_window={keep_window} is shorter than what SAM 2 reads back "
                f"({self.min_keep_window(predictor)} frames); results would change"
            )
        num_frames = len(frames)
        if num_frames < 1:
            raise InputError("The video has no frames to track.")
        self._predictor = predictor
        self._lock = threading.RLock()
        self._autocast = autocast
        self._running = False
        self._closed = threading.Event()
        self.width, self.height = frame_size(frames)
        self.num_frames = num_frames
        self.last_run_cancelled = False
        self.last_run_frames = 0
        self._frames = ModelFrames(
            frames,
            predictor.image_size,
            self.width,
            self.height,
            device=predictor.device,
            prefetch=PREFETCH_DEPTH if prefetch else 0,
        )
        with self._compute():
            self._state = self._init_state(offload_state)
            # SAM 2 stores memory features in bfloat16. Without autocast, a frame with no object
            # pointer to attend to (tracked forward before an object's first prompt) feeds only
            # bfloat16 memories into float32 layers and fails (plain SAM 2 too). Every tracked
            # frame attends to its conditioning frames, so keeping just those in float32 makes
            # torch.cat promote the whole memory, exactly as it does when a pointer is present.
            self._float32_memory = not torch.is_autocast_enabled(torch.device(self._state["device"]).type)
        self._check_layout()
        logger.info(
            "tracking session: %d frames at %d×%d, image_size %d, keep_window %s",
            num_frames,
            self.width,
            self.height,
            predictor.image_size,
            keep_window,
        )

    # ------------------------------------------------------------------ public API

    @staticmethod
    def min_keep_window(predictor: Any) -> int:
        """How many frames back SAM 2 reads while tracking (mask memory and object pointers)."""
        stride = max(1, int(getattr(predictor, "memory_temporal_stride_for_eval", 1)))
        memory = 1 + max(0, int(predictor.num_maskmem) - 2) * stride
        pointers = int(predictor.max_obj_ptrs_in_encoder) - 1 if predictor.use_obj_ptrs_in_encoder else 0
        return max(memory, pointers)

    @property
    def running(self) -> bool:
        """True while a :meth:`propagate` run is under way (prompts and objects can't change then)."""
        return self._running

    @property
    def object_ids(self) -> tuple[int, ...]:
        """Ids of the objects SAM 2 knows, in its order (the order of every FrameResult)."""
        with self._lock:
            return tuple(int(i) for i in self._state["obj_ids"])

    def prompted_frames(self) -> dict[int, list[int]]:
        """Object id → sorted frames where that object has clicks, a box or a mask."""
        with self._lock:
            state = self._state
            return {
                int(object_id): sorted(
                    set(state["point_inputs_per_obj"][obj_idx]) | set(state["mask_inputs_per_obj"][obj_idx])
                )
                for obj_idx, object_id in enumerate(state["obj_ids"])
            }

    def add_prompt(self, prompt: FramePrompt) -> FrameResult:
        """Set ``prompt.object_id``'s prompt on ``prompt.frame_idx``; return that frame's result.

        The prompt replaces whatever that object had on that frame (it carries all the clicks
        for it). A non-empty ``mask`` wins over points and box. Returns every object's mask on
        the frame (each object's newest output there: a prompt's, else a tracked one; empty if
        none), non-overlapping, with presence probabilities. A prompt on an already tracked frame
        is a correction: SAM 2 reads it with the tracking memory, and the session keeps it as a
        conditioning frame. Raises :class:`InputError` for prompts that cannot mean anything.
        """
        prompt.validate(self.width, self.height)
        self._check_frame(prompt.frame_idx)
        if prompt.object_id < 1:
            raise InputError(f"Object ids start at 1, got {prompt.object_id}.")
        use_mask = prompt.mask is not None and bool(prompt.mask.any())
        if prompt.is_empty and not use_mask:
            raise InputError(
                "The prompt is empty: click on the object, draw a box or paint a mask "
                "(to remove the clicks on this frame, clear the frame instead)."
            )
        with self._lock:
            self._check_idle()
            state, predictor = self._state, self._predictor
            object_id, frame_idx = int(prompt.object_id), int(prompt.frame_idx)
            is_new = object_id not in state["obj_id_to_idx"]
            promote = not is_new and self._prepare_correction(object_id, frame_idx)
            points = labels = box = None
            if prompt.points:
                points = torch.tensor(prompt.points, dtype=torch.float32)
                labels = torch.tensor(prompt.labels, dtype=torch.int32)
            if prompt.box is not None:
                box = torch.tensor(prompt.box, dtype=torch.float32)
            try:
                with self._compute():
                    if use_mask:
                        predictor.add_new_mask(
                            state, frame_idx, object_id, torch.from_numpy(np.ascontiguousarray(prompt.mask))
                        )
                    else:
                        # clear_old_points: the prompt carries every click of this object here.
                        predictor.add_new_points_or_box(
                            state,
                            frame_idx,
                            object_id,
                            points=points,
                            labels=labels,
                            box=box,
                            clear_old_points=True,
                            normalize_coords=True,
                        )
                    if promote:
                        self._promote_correction(object_id, frame_idx)
                    return self._result_at(frame_idx)
            except BaseException:
                if is_new and object_id in state["obj_id_to_idx"]:
                    predictor.remove_object(state, object_id, need_output=False)
                raise

    def clear_prompts(self, frame_idx: int, object_id: int | None = None) -> FrameResult:
        """Remove the prompts of ``object_id`` (every object if ``None``) on ``frame_idx``.

        Like SAM 2, a frame that was already tracked keeps its last mask as an ordinary tracked
        frame. An object left without any prompt blocks :meth:`propagate` until it gets a new
        prompt or is removed. Returns the frame's result after the change.
        """
        self._check_frame(frame_idx)
        with self._lock:
            self._check_idle()
            ids = list(self._state["obj_ids"]) if object_id is None else [self._known(object_id)]
            with self._compute():
                for oid in ids:
                    self._predictor.clear_all_prompts_in_frame(
                        self._state, int(frame_idx), oid, need_output=False
                    )
                return self._result_at(int(frame_idx))

    def remove_object(self, object_id: int) -> None:
        """Forget ``object_id`` entirely (prompts and tracked outputs)."""
        with self._lock:
            self._check_idle()
            oid = self._known(object_id)
            with self._compute():
                self._predictor.remove_object(self._state, oid, strict=True, need_output=False)

    def reset(self) -> None:
        """Forget every object, prompt and tracked output; the video stays loaded."""
        with self._lock:
            self._check_idle()
            with self._compute():
                self._predictor.reset_state(self._state)
            self.last_run_cancelled = False
            self.last_run_frames = 0

    def mask_at(self, frame_idx: int) -> FrameResult | None:
        """The masks the state still holds for ``frame_idx`` (prompted, or tracked and not pruned).

        ``None`` when no object has an output there. Objects without one get an empty mask and
        score 0.
        """
        self._check_frame(frame_idx)
        with self._lock, self._compute():
            if not any(
                self._output_at(obj_idx, int(frame_idx)) for obj_idx in range(len(self._state["obj_ids"]))
            ):
                return None
            return self._result_at(int(frame_idx))

    def plan(
        self,
        start_frame: int | None = None,
        end_frame: int | None = None,
        direction: Direction = "both",
        max_frames: int | None = None,
    ) -> list[Leg]:
        """The legs :meth:`propagate` with the same arguments runs, in the order it runs them.

        The one definition of a run's legs (see :meth:`propagate` for the arguments): a caller
        that drives the legs one by one (``propagate(leg.first, leg.last, leg.direction)`` for
        each) tracks the same frames in the same order and gets the same masks. Raises
        :class:`InputError` for arguments or prompts that cannot run.
        """
        with self._lock:
            return self._plan(start_frame, end_frame, direction, max_frames)

    def planned_frames(
        self,
        start_frame: int | None = None,
        end_frame: int | None = None,
        direction: Direction = "both",
        max_frames: int | None = None,
    ) -> int:
        """How many results :meth:`propagate` with the same arguments would yield (uncancelled)."""
        return sum(len(leg) for leg in self.plan(start_frame, end_frame, direction, max_frames))

    def propagate(
        self,
        start_frame: int | None = None,
        end_frame: int | None = None,
        direction: Direction = "both",
        cancel: threading.Event | None = None,
        *,
        max_frames: int | None = None,
    ) -> Iterator[FrameResult]:
        """Track every object through the video; yield one :class:`FrameResult` per frame, as done.

        * ``"forward"``: ``start_frame``, ``start_frame + 1``, … ``end_frame`` (default: the
          last frame). ``start_frame`` defaults to the earliest prompted frame.
        * ``"backward"``: ``start_frame``, ``start_frame - 1``, … ``end_frame`` (default 0).
          ``start_frame`` defaults to the latest prompted frame.
        * ``"both"``: backward from ``start_frame - 1`` (``start_frame`` defaults to the earliest
          prompted frame) to frame 0, then forward from ``start_frame`` to the last frame. Each
          frame is yielded exactly once; ``end_frame`` is not accepted. (Backward first: when
          the forward leg starts, every frame before it is done, so results can be written in
          frame order from there; the forward leg reads the backward leg's frames as memory,
          as plain SAM 2 does for a backward call followed by a forward one.)

        ``max_frames`` caps each leg (forward from ``f`` for N frames is ``f … f+N-1``;
        backward is ``f … f-N+1``, or ``f-1 … f-N`` as the backward leg of ``"both"``). Any
        frame may be the start, e.g. to re-track from a corrected frame. Argument and prompt
        problems raise :class:`InputError` here, before anything runs. ``cancel`` is checked
        before every frame: once set, the iterator ends without an error and
        ``last_run_cancelled`` is True. While a run is in progress, methods that change prompts
        raise :class:`InputError`; close or exhaust the iterator to end the run.
        """
        with self._lock:
            self._check_idle()
            self._plan(start_frame, end_frame, direction, max_frames)
        return self._run(start_frame, end_frame, direction, max_frames, cancel)

    def stored_frames(self) -> StoredFrames:
        """Counts of per-frame state held right now (see :class:`StoredFrames`)."""
        with self._lock:
            state = self._state
            conditioning, non_conditioning = {}, {}
            for obj_idx, object_id in enumerate(state["obj_ids"]):
                outputs = state["output_dict_per_obj"][obj_idx]
                pending = state["temp_output_dict_per_obj"][obj_idx]
                conditioning[int(object_id)] = len(
                    set(outputs["cond_frame_outputs"]) | set(pending["cond_frame_outputs"])
                )
                non_conditioning[int(object_id)] = len(
                    set(outputs["non_cond_frame_outputs"]) | set(pending["non_cond_frame_outputs"])
                )
            return StoredFrames(
                conditioning, non_conditioning, len(state["cached_features"]), self._frames.held()
            )

    def wait_prefetch(self) -> None:
        """Block until the frames being prepared ahead on the background thread are ready.

        Tracking never needs this. A measurement that interleaves several runs in one process
        calls it after each frame so that this work is charged to this session, not the next run.
        """
        self._frames.wait()

    def close(self) -> None:
        """Stop a running propagation at the next frame, stop prefetching and free the state."""
        self._closed.set()
        self._frames.close()
        with self._lock:
            if not self._running:
                self._predictor.reset_state(self._state)
                self._state["cached_features"] = {}

    def __enter__(self) -> TrackingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _compute(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self._autocast is not None:
            stack.enter_context(self._autocast())
        return stack

    def _init_state(self, offload_state: bool) -> dict[str, Any]:
        """Upstream ``init_state`` with ``load_video_frames`` answering with our lazy frames."""
        import sam2.sam2_video_predictor as video_predictor

        frames, width, height = self._frames, self.width, self.height
        original = video_predictor.load_video_frames

        def load_video_frames(video_path: Any, *args: Any, **kwargs: Any) -> Any:
            # Anyone else calling init_state while the patch is in place gets the real loader.
            if video_path is frames:
                return frames, height, width
            return original(video_path, *args, **kwargs)

        with _PATCH_LOCK:
            video_predictor.load_video_frames = load_video_frames
            try:
                return self._predictor.init_state(
                    frames, offload_video_to_cpu=False, offload_state_to_cpu=offload_state
                )
            finally:
                video_predictor.load_video_frames = original

    def _check_layout(self) -> None:
        keys = ("output_dict_per_obj", "temp_output_dict_per_obj", "frames_tracked_per_obj", "obj_ids")
        missing = [key for key in keys if key not in self._state]
        if missing or self._state["images"] is not self._frames:
            raise TypeError(
                f"unsupported sam2 inference_state layout (missing {missing}); sam2 1.1 is required"
            )

    def _check_frame(self, frame_idx: int) -> None:
        if not 0 <= int(frame_idx) < self.num_frames:
            raise InputError(
                f"Frame {frame_idx} is outside the video (it has frames 0 to {self.num_frames - 1})."
            )

    def _check_idle(self) -> None:
        if self._running:
            raise InputError("Tracking is running in this session: cancel it or let it finish first.")
        if self._closed.is_set():
            raise InputError("This tracking session is closed; open the video again.")

    def _known(self, object_id: int) -> int:
        object_id = int(object_id)
        if object_id not in self._state["obj_id_to_idx"]:
            known = ", ".join(str(i) for i in self._state["obj_ids"]) or "none"
            raise InputError(f"Object {object_id} is not being tracked (tracked objects: {known}).")
        return object_id

    def _prepare_correction(self, object_id: int, frame_idx: int) -> bool:
        """Before a prompt on a tracked frame: set up SAM 2's state; True if it must be promoted.

        * An object whose conditioning frames were all cleared would trip an assert in SAM 2's
          memory code on a tracked frame; its prompt starts afresh instead.
        * A correction made earlier on this frame (promoted to conditioning, not yet tracked) is
          put back where SAM 2 looks for "the latest mask on this frame" to refine.
        """
        state = self._state
        obj_idx = state["obj_id_to_idx"][object_id]
        tracked = state["frames_tracked_per_obj"][obj_idx]
        if frame_idx not in tracked:
            return False
        if not state["output_dict_per_obj"][obj_idx]["cond_frame_outputs"]:
            del tracked[frame_idx]
            return False
        if self._predictor.add_all_frames_to_correct_as_cond:
            return False
        pending = state["temp_output_dict_per_obj"][obj_idx]
        earlier = pending["cond_frame_outputs"].pop(frame_idx, None)
        if earlier is not None:
            pending["non_cond_frame_outputs"][frame_idx] = earlier
        return True

    def _promote_correction(self, object_id: int, frame_idx: int) -> None:
        """Store a correction as a conditioning output (as ``add_all_frames_to_correct_as_cond`` does)."""
        pending = self._state["temp_output_dict_per_obj"][self._state["obj_id_to_idx"][object_id]]
        out = pending["non_cond_frame_outputs"].pop(frame_idx, None)
        if out is not None:
            pending["cond_frame_outputs"][frame_idx] = out

    def _output_at(self, obj_idx: int, frame_idx: int) -> dict[str, Any] | None:
        """The newest output of one object on one frame, looked up like SAM 2's consolidation."""
        pending = self._state["temp_output_dict_per_obj"][obj_idx]
        outputs = self._state["output_dict_per_obj"][obj_idx]
        for storage in (pending, outputs):
            for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
                out = storage[key].get(frame_idx)
                if out is not None:
                    return out
        return None

    def _result_at(self, frame_idx: int) -> FrameResult:
        state, predictor = self._state, self._predictor
        object_ids = [int(i) for i in state["obj_ids"]]
        if not object_ids:
            return FrameResult(
                frame_idx, (), np.zeros((0, self.height, self.width), bool), np.zeros(0, np.float32)
            )
        device = state["device"]
        low_res = predictor.image_size // 4
        masks, score_logits = [], []
        for obj_idx in range(len(object_ids)):
            out = self._output_at(obj_idx, frame_idx)
            if out is None:
                masks.append(torch.full((1, 1, low_res, low_res), NO_OBJ_SCORE, device=device))
                score_logits.append(torch.full((1, 1), NO_OBJ_SCORE, device=device))
                continue
            mask = out["pred_masks"].to(device, non_blocking=True).float()
            if mask.shape[-2:] != (low_res, low_res):
                mask = torch.nn.functional.interpolate(
                    mask, size=(low_res, low_res), mode="bilinear", align_corners=False
                )
            masks.append(mask)
            score_logits.append(out["object_score_logits"].to(device).float().reshape(1, 1))
        _, video_res = predictor._get_orig_video_res_output(state, torch.cat(masks, dim=0))
        return self._frame_result(frame_idx, object_ids, video_res, torch.cat(score_logits, dim=0))

    @staticmethod
    def _frame_result(
        frame_idx: int, object_ids: list[int], video_res_logits: torch.Tensor, score_logits: torch.Tensor
    ) -> FrameResult:
        masks = resolve_masks(video_res_logits[:, 0])
        scores = torch.sigmoid(score_logits.float()).reshape(-1).cpu().numpy()
        return FrameResult(int(frame_idx), tuple(object_ids), masks, scores)

    def _cond_frames(self) -> set[int]:
        state = self._state
        frames: set[int] = set()
        for obj_idx in range(len(state["obj_ids"])):
            frames.update(state["output_dict_per_obj"][obj_idx]["cond_frame_outputs"])
            frames.update(state["temp_output_dict_per_obj"][obj_idx]["cond_frame_outputs"])
        return frames

    def _plan(
        self, start_frame: int | None, end_frame: int | None, direction: str, max_frames: int | None
    ) -> list[Leg]:
        state = self._state
        if not state["obj_ids"]:
            raise InputError("Nothing to track yet: click on an object (or accept a candidate) first.")
        for obj_idx, object_id in enumerate(state["obj_ids"]):
            if not (
                state["output_dict_per_obj"][obj_idx]["cond_frame_outputs"]
                or state["temp_output_dict_per_obj"][obj_idx]["cond_frame_outputs"]
            ):
                raise InputError(
                    f"Object {object_id} has no clicks yet: click on it on some frame, or remove it."
                )
        return plan_legs(self.num_frames, self._cond_frames(), start_frame, end_frame, direction, max_frames)

    def _run(
        self,
        start_frame: int | None,
        end_frame: int | None,
        direction: str,
        max_frames: int | None,
        cancel: threading.Event | None,
    ) -> Iterator[FrameResult]:
        with self._lock:
            self._check_idle()
            legs = self._plan(start_frame, end_frame, direction, max_frames)
            self._running = True
            self.last_run_cancelled = False
            self.last_run_frames = 0
        total = sum(len(leg) for leg in legs)
        logger.info("tracking %d frames: %s", total, ", ".join(f"{g.first}→{g.last}" for g in legs))

        def stopped() -> bool:
            if (cancel is not None and cancel.is_set()) or self._closed.is_set():
                self.last_run_cancelled = True
                logger.info("tracking cancelled after %d of %d frames", self.last_run_frames, total)
                return True
            return False

        try:
            if stopped():
                return
            with self._lock, self._compute():
                self._predictor.propagate_in_video_preflight(self._state)
                if self._float32_memory:
                    for outputs in self._state["output_dict_per_obj"].values():
                        for out in outputs["cond_frame_outputs"].values():
                            self._upcast_memory(out)
            # Each leg's first frames stay: a run from the same start in the other direction
            # (the other leg of "both", or a second call, as SAM 2's demo makes) reads them.
            protected = [(leg.first, -leg.step) for leg in legs]
            for leg in legs:
                self._frames.hint(leg.step, leg.last)
                for frame_idx in leg.frames():
                    if stopped():
                        return
                    with self._lock, self._compute():
                        result = self._track_frame(frame_idx, reverse=leg.step < 0)
                        self._prune([(frame_idx, leg.step), *protected])
                    self.last_run_frames += 1
                    yield result
        finally:
            self._frames.hint(0)
            with self._lock:
                self._running = False
            logger.debug(
                "tracked %d of %d frames; frames prepared ahead %d, loaded on demand %d",
                self.last_run_frames,
                total,
                self._frames.hits,
                self._frames.misses,
            )

    @timing.stage("sam2")
    def _track_frame(self, frame_idx: int, reverse: bool) -> FrameResult:
        """One frame of ``SAM2VideoPredictor.propagate_in_video`` (sam2 1.1.0) for all objects.

        Same outputs as upstream's loop body (conditioning frames reuse their output, others are
        tracked with memory), without tqdm; the tracked objects go through SAM 2 together
        (:meth:`_infer_objects`).
        """
        state, predictor = self._state, self._predictor
        device = state["device"]
        tracked = [
            obj_idx
            for obj_idx in range(len(state["obj_ids"]))
            if frame_idx not in state["output_dict_per_obj"][obj_idx]["cond_frame_outputs"]
        ]
        inferred = self._infer_objects(frame_idx, tracked, reverse)
        masks, score_logits = [], []
        for obj_idx in range(len(state["obj_ids"])):
            outputs = state["output_dict_per_obj"][obj_idx]
            if obj_idx in inferred:
                out, pred_masks = inferred[obj_idx]
                outputs["non_cond_frame_outputs"][frame_idx] = out
            else:
                out = outputs["cond_frame_outputs"][frame_idx]
                pred_masks = out["pred_masks"].to(device, non_blocking=True)
            state["frames_tracked_per_obj"][obj_idx][frame_idx] = {"reverse": reverse}
            masks.append(pred_masks)
            score_logits.append(out["object_score_logits"].reshape(1, 1))
        all_masks = torch.cat(masks, dim=0) if len(masks) > 1 else masks[0]
        _, video_res = predictor._get_orig_video_res_output(state, all_masks)
        return self._frame_result(
            frame_idx, [int(i) for i in state["obj_ids"]], video_res, torch.cat(score_logits)
        )

    def _infer_objects(
        self, frame_idx: int, obj_indices: list[int], reverse: bool
    ) -> dict[int, tuple[dict[str, Any], torch.Tensor]]:
        """Track ``obj_indices`` on ``frame_idx``: object index → (SAM 2's compact output, its mask logits).

        One object (or ``batch_objects`` off, or a predictor :mod:`tracker.object_batch` does not
        reproduce) runs upstream's ``_run_single_frame_inference``; several run as batches of
        objects sharing a memory layout, with the frame's shared work done once.
        """
        from . import object_batch

        state, predictor = self._state, self._predictor
        if len(obj_indices) < 2 or not self.batch_objects or not object_batch.supports(predictor):
            return {
                obj_idx: predictor._run_single_frame_inference(
                    inference_state=state,
                    output_dict=state["output_dict_per_obj"][obj_idx],
                    frame_idx=frame_idx,
                    batch_size=1,
                    is_init_cond_frame=False,
                    point_inputs=None,
                    mask_inputs=None,
                    reverse=reverse,
                    run_mem_encoder=True,
                )
                for obj_idx in obj_indices
            }
        _, _, feats, pos, sizes = predictor._get_image_feature(state, frame_idx, 1)
        frame = object_batch.FrameFeatures(predictor, feats, pos, sizes)
        memories = [
            object_batch.gather_memory(
                frame, obj_idx, state["output_dict_per_obj"][obj_idx], frame_idx, state["num_frames"], reverse
            )
            for obj_idx in obj_indices
        ]
        results = {}
        limit = object_batch.limit_for(torch.device(state["device"]).type)
        for chunk in object_batch.chunks(memories, frame.tokens, limit):
            batch = object_batch.track_batch(frame, chunk)
            for position, memory in enumerate(chunk):
                results[memory.index] = self._compact_output(batch, position)
        return results

    def _compact_output(self, batch: Any, position: int) -> tuple[dict[str, Any], torch.Tensor]:
        """One object's slice of a batch, stored as ``_run_single_frame_inference`` stores it."""
        from sam2.utils.misc import fill_holes_in_mask_scores

        state, predictor = self._state, self._predictor
        storage = state["storage_device"]
        one = slice(position, position + 1)
        features = batch.maskmem_features[one].to(torch.bfloat16).to(storage, non_blocking=True).clone()
        pred_masks_gpu = batch.low_res_masks[one].clone()
        if predictor.fill_hole_area > 0:
            pred_masks_gpu = fill_holes_in_mask_scores(pred_masks_gpu, predictor.fill_hole_area)
        out = {
            "maskmem_features": features,
            "maskmem_pos_enc": predictor._get_maskmem_pos_enc(
                state, {"maskmem_pos_enc": [p[one] for p in batch.maskmem_pos_enc]}
            ),
            "pred_masks": pred_masks_gpu.to(storage, non_blocking=True),
            "obj_ptr": batch.obj_ptr[one].clone(),
            "object_score_logits": batch.object_score_logits[one].clone(),
        }
        return out, pred_masks_gpu

    @staticmethod
    def _upcast_memory(out: dict[str, Any]) -> None:
        features = out.get("maskmem_features")
        if features is not None and features.dtype != torch.float32:
            out["maskmem_features"] = features.float()

    def _prune(self, windows: list[tuple[int, int]]) -> None:
        """Drop non-conditioning outputs outside every ``(frame, step)`` window of ``keep_window``.

        A window keeps the frame and the ``keep_window`` frames behind it in direction ``step``:
        the only non-conditioning frames SAM 2 reads when tracking on from there. A run keeps
        the current frame's window and each leg's first ``keep_window + 1`` frames, so at most
        ``2 · (keep_window + 1)`` per object (``+1`` window per extra leg), plus frames with
        prompts, which are kept whatever their place.
        """
        if self.keep_window is None:
            return
        keep_window, state = self.keep_window, self._state
        for obj_idx in range(len(state["obj_ids"])):
            non_cond = state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"]
            prompted = (
                state["point_inputs_per_obj"][obj_idx].keys() | state["mask_inputs_per_obj"][obj_idx].keys()
            )
            stale = [
                t
                for t in non_cond
                if t not in prompted
                and not any(0 <= (frame - t) * step <= keep_window for frame, step in windows)
            ]
            for t in stale:
                del non_cond[t]
