"""The Find step's driver: :class:`CandidateFinder` runs prompt → ranked frames → masks → candidates.

:meth:`CandidateFinder.find` is a generator of :class:`FinderEvent` (the shape of
:class:`tracker.workspace.FindEvent`) that yields each frame's candidates as soon as they exist.
Its steps: encode the prompts (:mod:`~tracker.candidates.clip`), rank the frames
(:mod:`~tracker.candidates.ranking`), then on each chosen frame find CLIP's heat-map peaks,
propose masks (:mod:`~tracker.candidates.proposers`) and score them
(:mod:`~tracker.candidates.scoring`), and last decide what to return. It holds the caller's
model lock around every SAM call (SAM keeps per-image state); CLIP calls are stateless. One
finder runs one search at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from dataclasses import replace as dc_replace
from time import perf_counter
from typing import Any

import numpy as np

from ..errors import NoCandidates
from ..types import Candidate
from .clip import TextImageEncoder, check_prompt, encode_prompt, logger
from .options import FinderOptions
from .proposers import MaskProposer, Proposal, build_proposer, proposer_name
from .ranking import (
    RankedFrame,
    VideoFrames,
    check_cancel,
    clip_heatmap,
    default_min_gap,
    default_stride,
    iter_frame_scores,
    pick_frames,
)
from .scoring import above_threshold, best_first, best_per_frame, score_masks


@dataclass
class FinderEvent:
    """Progress of :meth:`CandidateFinder.find`.

    Same fields as :class:`tracker.workspace.FindEvent` (which this converts to field by field),
    plus ``ranked`` (the frames chosen for masks, once known) and ``below_threshold`` (True when
    the candidates are the best of a search in which nothing passed the threshold).
    """

    stage: str  # "rank" | "masks" | "score" | "done"
    progress: float  # 0..1 over the whole find
    message: str
    candidates: list[Candidate] = field(default_factory=list)  # all so far, best first
    new_frame: int | None = None  # frame whose candidates just arrived
    ranked: tuple[RankedFrame, ...] = ()
    below_threshold: bool = False


_RANK_SHARE = 0.25  # of the progress bar; the mask frames share the rest


@dataclass
class _Search:
    """What one find has gathered so far: the chosen frames and the candidates."""

    ranked: tuple[RankedFrame, ...]
    passing: list[Candidate] = field(default_factory=list)  # above the threshold, best first
    everything: list[Candidate] = field(default_factory=list)  # each frame's best, threshold ignored

    @property
    def share(self) -> float:
        """Each chosen frame's share of the progress bar."""
        return (1.0 - _RANK_SHARE) / len(self.ranked)


class CandidateFinder:
    """Text prompt → candidates, streamed; see :mod:`tracker.candidates` for the pipeline.

    ``encoder`` is CLIP (:class:`TextImageEncoder`, e.g. ``tracker.models.ClipModel``).
    ``proposer`` is a :class:`MaskProposer`, or the name of one in :data:`PROPOSERS`, built
    here from ``sam2`` (the SAM 2 video predictor, whose weights are shared) or ``sam1`` (a
    segment-anything model, or a zero-argument callable that loads one, called only for
    ``"sam1-auto"``). ``points_per_side`` is the automatic generators' grid; the "points"
    proposer's sparse grid is a quarter of it a side (16 → 4×4), 4×4 when None.

    ``options`` is a :class:`FinderOptions`; keyword ``overrides`` name any of its fields
    (``stride=``, ``threshold=``, …) and replace it unless the value is None ("the default").
    Random-weights mode is on when ``options.random_weights`` or the encoder says it is
    untrained (``encoder.random_weights``).

    ``model_lock`` (held around every SAM call; default: the model's ``tracker_lock`` when it
    has one) and ``autocast`` (a zero-argument callable returning the context to run SAM in,
    e.g. bfloat16) come from the caller that shares the models. Not thread-safe otherwise.
    """

    def __init__(
        self,
        encoder: TextImageEncoder,
        sam2: Any = None,
        options: FinderOptions | None = None,
        *,
        proposer: str | MaskProposer = "points",
        points_per_side: int | None = None,
        sam1: Any = None,
        model_lock: AbstractContextManager | None = None,
        autocast: Callable[[], AbstractContextManager] | None = None,
        **overrides: Any,
    ) -> None:
        options = options or FinderOptions()
        unknown = set(overrides) - {f.name for f in fields(FinderOptions)}
        if unknown:
            raise TypeError(f"unknown finder options: {', '.join(sorted(unknown))}")
        given = {key: value for key, value in overrides.items() if value is not None}
        if getattr(encoder, "random_weights", False):
            given["random_weights"] = True
        self.options = dc_replace(options, **given) if given else options
        self.encoder = encoder
        if isinstance(proposer, str):
            if proposer_name(proposer) == "sam1-auto" and _is_loader(sam1):
                sam1 = sam1()
            proposer = build_proposer(
                proposer,
                sam2,
                sam1=sam1,
                points_per_side=points_per_side,
                random_weights=self.options.random_weights,
            )
        self.proposer = proposer
        model = sam2 if sam2 is not None else sam1
        self._model_lock = model_lock or getattr(model, "tracker_lock", None) or nullcontext()
        self._autocast = autocast or nullcontext

    def find(
        self,
        reader: VideoFrames,
        prompt: str,
        negative_prompt: str | None = None,
        cancel: threading.Event | None = None,
        *,
        take_best: bool | None = None,
    ) -> Iterator[FinderEvent]:
        """Rank frames, propose and score masks; yield :class:`FinderEvent` as work happens.

        The prompt is checked here, before the generator is returned, so an empty prompt raises
        :class:`InputError` at the call. Events, in order: ``"rank"`` progress; then per chosen
        frame (best frame first) ``"masks"`` and ``"score"`` progress and, once that frame is
        scored, an event with ``new_frame`` set and ``candidates`` = all passing candidates so
        far, best first (before the next frame's work starts); last a ``"done"`` event with the
        final list (progress 1.0).

        Nothing passes ``threshold`` → :class:`NoCandidates`, raised by the generator after the
        last frame, unless ``take_best`` (argument, else ``options.take_best``): then the
        ``"done"`` event carries the best candidates with ``below_threshold=True``. In
        random-weights mode the threshold is ignored throughout (each frame's best candidates
        stream as usual) and a warning is logged; NoCandidates then only means no masks at all.

        ``cancel`` is checked between ranked frames and between the steps of each mask frame; when set
        the generator raises :class:`Cancelled`. Candidates already yielded stay valid.
        """
        prompt = check_prompt(prompt)
        negative = (
            check_prompt(negative_prompt, what="negative prompt")
            if negative_prompt and negative_prompt.strip()
            else None
        )
        take_best = self.options.take_best if take_best is None else take_best
        return self._run(reader, prompt, negative, cancel, take_best)

    def find_all(
        self,
        reader: VideoFrames,
        prompt: str,
        negative_prompt: str | None = None,
        cancel: threading.Event | None = None,
        *,
        take_best: bool | None = None,
    ) -> list[Candidate]:
        """:meth:`find` run to the end; the final candidates, best first."""
        final: list[Candidate] = []
        for event in self.find(reader, prompt, negative_prompt, cancel, take_best=take_best):
            if event.stage == "done":
                final = event.candidates
        return final

    def _run(
        self,
        reader: VideoFrames,
        prompt: str,
        negative: str | None,
        cancel: threading.Event | None,
        take_best: bool,
    ) -> Iterator[FinderEvent]:
        started = perf_counter()
        if self.options.random_weights:
            logger.warning(
                "Random weights: CLIP scores are noise, so the threshold %.1f is ignored and the "
                "best-scoring masks are returned whatever they show.",
                self.options.threshold,
            )
        check_cancel(cancel)
        text_features = encode_prompt(self.encoder, prompt)
        negative_features = encode_prompt(self.encoder, negative) if negative else None
        ranked = yield from self._rank(reader, prompt, text_features, cancel, started)
        search = _Search(ranked)
        for position, frame in enumerate(ranked):
            yield from self._search_frame(
                reader, frame, position, search, text_features, negative_features, cancel
            )
        yield from self._finish(prompt, search, take_best, perf_counter() - started)

    def _rank(
        self,
        reader: VideoFrames,
        prompt: str,
        text_features: np.ndarray,
        cancel: threading.Event | None,
        started: float,
    ) -> Generator[FinderEvent, None, tuple[RankedFrame, ...]]:
        """Score every ``stride``-th frame, yielding progress; returns the chosen frames, best first."""
        options = self.options
        info = reader.info
        stride = options.stride or default_stride(info.fps)
        min_gap = options.min_gap if options.min_gap is not None else default_min_gap(info.fps, stride)
        yield FinderEvent("rank", 0.0, f"Looking for {prompt!r}: ranking one frame in {stride}…")
        scores: dict[int, float] = {}
        for done, total, so_far in iter_frame_scores(
            reader,
            self.encoder,
            text_features,
            stride,
            batch_size=options.batch_size,
            thumb_size=options.thumb_size,
            cancel=cancel,
        ):
            scores = so_far
            yield FinderEvent("rank", _RANK_SHARE * done / max(total, 1), f"Ranked {done} of {total} frames")
        ranked = tuple(
            RankedFrame(frame_idx, score, info.time_of(frame_idx))
            for frame_idx, score in pick_frames(scores, options.top_frames, min_gap)
        )
        logger.info(
            "ranked %d frames in %.2f s; chose %s",
            len(scores),
            perf_counter() - started,
            ", ".join(f"{r.frame_idx} ({r.score:.1f})" for r in ranked),
        )
        if not ranked:
            raise NoCandidates(prompt, None, options.threshold)
        return ranked

    def _search_frame(
        self,
        reader: VideoFrames,
        frame: RankedFrame,
        position: int,
        search: _Search,
        text_features: np.ndarray,
        negative_features: np.ndarray | None,
        cancel: threading.Event | None,
    ) -> Iterator[FinderEvent]:
        """One chosen frame: heat-map points, proposals, scores; adds its candidates to ``search``."""
        options = self.options
        ranked = search.ranked
        base = _RANK_SHARE + position * search.share
        label = f"frame {frame.frame_idx} ({position + 1} of {len(ranked)})"
        check_cancel(cancel)
        yield FinderEvent("masks", base, f"Finding objects on {label}…", list(search.passing), ranked=ranked)
        frame_started = perf_counter()
        image = reader.get(frame.frame_idx)
        points = self._heat_points(image, text_features, negative_features)
        heat_done = perf_counter()
        check_cancel(cancel)
        proposals = self._propose(image, points)
        proposed = perf_counter()
        check_cancel(cancel)
        yield FinderEvent(
            "score",
            base + 0.6 * search.share,
            f"Scoring {len(proposals)} masks on {label}…",
            list(search.passing),
            ranked=ranked,
        )
        scored = score_masks(
            image,
            [p.mask for p in proposals],
            self.encoder,
            text_features,
            negative_features,
            frame_idx=frame.frame_idx,
            time=frame.time,
            frame_score=frame.score,
            **options.scoring(),
        )
        del image
        best_here = best_per_frame(scored, options)
        search.everything.extend(best_here)
        new = above_threshold(best_here, options)
        search.passing = best_first(search.passing + new)
        logger.info(
            "%s: heat map %.2f s, %d proposals in %.2f s, %d scored in %.2f s, %d kept",
            label,
            heat_done - frame_started,
            len(proposals),
            proposed - heat_done,
            len(scored),
            perf_counter() - proposed,
            len(new),
        )
        yield FinderEvent(
            "score",
            base + search.share,
            f"{len(new)} candidate{'s' if len(new) != 1 else ''} on {label}",
            list(search.passing),
            new_frame=frame.frame_idx,
            ranked=ranked,
        )

    def _heat_points(
        self, image: np.ndarray, text_features: np.ndarray, negative_features: np.ndarray | None
    ) -> np.ndarray | None:
        """``N×2`` point prompts from CLIP's heat map, or None when the proposer ignores points."""
        options = self.options
        if not (self.proposer.uses_points and options.heat_peaks > 0):
            return None
        heat = clip_heatmap(
            image,
            self.encoder,
            text_features,
            negative_features,
            scales=options.heat_scales,
            overlap=options.heat_overlap,
            negative_weight=options.negative_weight,
            batch_size=options.batch_size,
            thumb_size=options.thumb_size,
        )
        min_distance = min(options.heat_scales) * min(image.shape[:2]) / 2
        return heat.peaks(options.heat_peaks, min_distance)

    def _propose(self, image: np.ndarray, points: np.ndarray | None) -> list[Proposal]:
        """The proposer's masks on ``image``, run under the shared model's lock and autocast."""
        with self._model_lock, self._autocast():
            return self.proposer(image, points)

    def _finish(self, prompt: str, search: _Search, take_best: bool, elapsed: float) -> Iterator[FinderEvent]:
        """The ``"done"`` event, or :class:`NoCandidates` when nothing passed and no fallback applies."""
        options = self.options
        if search.passing:
            yield FinderEvent(
                "done",
                1.0,
                f"Found {len(search.passing)} candidates for {prompt!r} in {elapsed:.1f} s",
                search.passing,
                ranked=search.ranked,
                below_threshold=False,
            )
            return
        best_score = max((c.score for c in search.everything), default=None)
        if search.everything and take_best:
            logger.warning(
                "nothing matched %r above %.1f (best %.1f); returning the best anyway",
                prompt,
                options.threshold,
                best_score,
            )
            yield FinderEvent(
                "done",
                1.0,
                f"Nothing matched {prompt!r} above {options.threshold:.1f}; showing the best "
                f"{len(search.everything)} (best score {best_score:.1f})",
                best_first(search.everything),
                ranked=search.ranked,
                below_threshold=True,
            )
            return
        raise NoCandidates(prompt, best_score, options.threshold)


def _is_loader(value: Any) -> bool:
    """A zero-argument loader, not a model (``torch.nn.Module`` instances are callable too)."""
    import torch

    return callable(value) and not isinstance(value, torch.nn.Module)
