"""Text prompt → ranked candidate masks: the "Find" step.

The pipeline, for one prompt on one video (the module that owns each step in brackets):

1. **Prompt** (:mod:`.clip`). :func:`check_prompt` rejects an empty prompt and shortens a very
   long one; the encoder turns it into one unit vector (:func:`encode_prompt`: mean of the
   normalised template embeddings, renormalised). An optional negative prompt ("not the dog") is
   encoded the same way.
2. **Frames** (:mod:`.ranking`). :func:`rank_frames` streams every ``stride``-th frame (about
   two a second by default), scores it against the prompt with CLIP and keeps the ``top_k`` best
   that are at least ``min_gap`` frames apart, so the three frames are not three copies of one
   moment. Only CLIP-sized thumbnails of the current batch are in memory, never the frames.
3. **Masks** (:mod:`.proposers`, heat map in :mod:`.ranking`). A :class:`MaskProposer` proposes
   masks on each chosen frame. The default, :class:`PointPromptProposer`, asks CLIP where the
   prompt is (:func:`clip_heatmap`: one batch of half-overlapping windows, half the short side
   wide — 21 on a 16:9 frame; more scales are an option, each costs another batch of CLIP),
   takes the heat map's peaks plus a sparse grid as point prompts, runs SAM 2's image encoder
   **once** and decodes every point in one batch (three masks a point), keeps masks by predicted
   quality and drops duplicates. The full automatic generators (SAM 2's or segment-anything's)
   are available as :class:`AutoMaskProposer`; :data:`PROPOSERS` names them (``"points"``,
   ``"sam2-auto"``, ``"sam1-auto"``).
4. **Scores** (:mod:`.scoring`). :func:`score_masks` cuts each mask out (:func:`crop_for_clip`:
   the mask's box plus a margin, the background dimmed towards grey, padded square) and scores
   all crops of a frame in one CLIP batch: ``score = 100·crop·text``. With a negative prompt
   the score becomes ``s_pos − w·softplus(s_neg − s_pos)`` (:func:`combine_scores`), i.e.
   ``s_pos`` plus ``w`` times the log-probability that CLIP's own zero-shot classifier,
   choosing between the prompt and the negative prompt, picks the prompt. Masks under 0.1 % or
   over 95 % of the frame are dropped.
5. **Choice** (:mod:`.scoring`). Per frame, :func:`suppress_overlaps` keeps one mask per
   instance (so "all the red cars" gives several objects) and the best ``per_frame`` survive
   (:func:`best_per_frame`); candidates under ``threshold`` are dropped (:func:`above_threshold`).
   :func:`score_candidates` runs steps 4 and 5 on one frame's proposals. If nothing passes,
   :class:`~tracker.errors.NoCandidates` is raised, unless ``take_best`` (return the best
   anyway, flagged ``below_threshold``) or ``random_weights`` (scores are noise, thresholds mean
   nothing: keep the best, with a warning).

:meth:`CandidateFinder.find` (:mod:`.finder`) runs all of it as a generator of
:class:`FinderEvent` (the shape of :class:`tracker.workspace.FindEvent`), yielding each frame's
candidates as soon as they exist; :class:`FinderOptions` (:mod:`.options`) says how.

Protocols, not model classes, are what this package depends on: :class:`TextImageEncoder`
(``tracker.models.ClipModel`` is one), :class:`MaskProposer` and :class:`VideoFrames`
(``tracker.video.VideoReader`` is one). Heavy imports (torch, sam2, PIL) happen inside functions.
Every module logs to the one logger ``tracker.candidates``.
"""

from __future__ import annotations

from .clip import (
    EMPTY_PROMPT_MESSAGE,
    MAX_PROMPT_CHARS,
    TextImageEncoder,
    check_prompt,
    combine_scores,
    encode_images,
    encode_prompt,
    prompt_notes,
    resize,
    to_numpy,
)
from .finder import CandidateFinder, FinderEvent
from .options import FinderOptions
from .proposers import (
    PROPOSERS,
    AutoMaskProposer,
    MaskProposer,
    PointPromptProposer,
    Proposal,
    build_proposer,
    proposer_name,
)
from .ranking import (
    Heatmap,
    RankedFrame,
    VideoFrames,
    clip_heatmap,
    default_min_gap,
    default_stride,
    frame_views,
    iter_frame_scores,
    pick_frames,
    rank_frames,
    window_grid,
)
from .scoring import (
    GREY,
    above_threshold,
    best_per_frame,
    crop_features,
    crop_for_clip,
    crop_scores,
    expand_box,
    score_candidates,
    score_masks,
    suppress_overlaps,
)

__all__ = [
    "EMPTY_PROMPT_MESSAGE",
    "GREY",
    "MAX_PROMPT_CHARS",
    "PROPOSERS",
    "AutoMaskProposer",
    "CandidateFinder",
    "FinderEvent",
    "FinderOptions",
    "Heatmap",
    "MaskProposer",
    "PointPromptProposer",
    "Proposal",
    "RankedFrame",
    "TextImageEncoder",
    "VideoFrames",
    "above_threshold",
    "best_per_frame",
    "build_proposer",
    "check_prompt",
    "clip_heatmap",
    "combine_scores",
    "crop_features",
    "crop_for_clip",
    "crop_scores",
    "default_min_gap",
    "default_stride",
    "encode_images",
    "encode_prompt",
    "expand_box",
    "frame_views",
    "iter_frame_scores",
    "pick_frames",
    "prompt_notes",
    "proposer_name",
    "rank_frames",
    "resize",
    "score_candidates",
    "score_masks",
    "suppress_overlaps",
    "to_numpy",
    "window_grid",
]
