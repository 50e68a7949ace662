"""Mask proposers: the masks CLIP then judges, on one frame.

The default, :class:`PointPromptProposer`, takes CLIP's heat-map peaks plus a sparse grid as point
prompts, runs SAM 2's image encoder **once** and decodes every point in one batch (three masks a
point), keeps masks by predicted quality and drops duplicates. The full automatic generators
(SAM 2's or segment-anything's) are available as :class:`AutoMaskProposer`; :data:`PROPOSERS`
names them (``"points"``, ``"sam2-auto"``, ``"sam1-auto"``) and :func:`build_proposer` builds one
from loaded models. Heavy imports (torch, sam2) happen inside functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .. import timing
from ..errors import InputError
from ..masks import resize_mask
from .clip import resize

if TYPE_CHECKING:
    import torch

#: One logger for the whole Find step, whichever module of this package logs: people and the
#: benchmarks filter on this name.
logger = logging.getLogger("tracker.candidates")


class Proposal(NamedTuple):
    """One proposed mask: ``H×W bool`` at the frame's size, and the proposer's own quality in [0, 1]
    (SAM's predicted IoU), used to order and de-duplicate proposals, not to rank candidates."""

    mask: np.ndarray
    quality: float


@runtime_checkable
class MaskProposer(Protocol):
    """Proposes masks on one frame.

    ``__call__(frame, points)``: ``frame`` is ``H×W×3 uint8 RGB``; ``points`` is an ``N×2`` float
    array of ``(x, y)`` frame pixels where the prompt probably is (CLIP's heat-map peaks), or None.
    Returns proposals best first. ``uses_points`` says whether the proposer looks at ``points``;
    when it is False the finder does not spend time computing them.
    """

    uses_points: bool

    def __call__(self, frame: np.ndarray, points: np.ndarray | None = None) -> list[Proposal]: ...


class PointPromptProposer:
    """SAM 2 masks from a few point prompts: CLIP's heat-map peaks plus a sparse grid.

    One ``set_image`` per frame (SAM 2 resizes to its processing size, e.g. 512), then every point
    decoded in one batch with ``multimask_output`` (three masks a point: part, object, group).
    Masks are judged at the decoder's low resolution (``image_size/4`` square): kept when the
    predicted IoU and the stability score pass, de-duplicated by mask IoU, and only the
    survivors are upsampled to the frame (bilinear on the logits, ``> 0``, the way SAM 2's own
    post-processing does it).

    ``predictor`` is a ``SAM2ImagePredictor`` whose ``_bb_feat_sizes`` match its model's
    image size (``tracker.models.sam2_image_predictor`` builds one sharing the video model).
    ``grid`` points a side of the sparse grid (``grid=4`` → 16 points) find what CLIP's peaks
    miss. When no mask passes the quality filters, the ``fallback_masks`` best (by predicted
    IoU) are kept anyway: CLIP, not SAM's self-assessment, decides what matches the prompt.
    ``random_weights`` turns the quality thresholds off (untrained scores are noise).
    """

    uses_points = True

    def __init__(
        self,
        predictor: Any,
        *,
        grid: int = 4,
        pred_iou_thresh: float = 0.7,
        stability_thresh: float = 0.85,
        dedupe_iou: float = 0.8,
        max_masks: int = 24,
        fallback_masks: int = 3,
        min_area_fraction: float = 0.001,
        max_area_fraction: float = 0.95,
        random_weights: bool = False,
    ) -> None:
        self.predictor = predictor
        self.grid = grid
        self.pred_iou_thresh = 0.0 if random_weights else pred_iou_thresh
        self.stability_thresh = 0.0 if random_weights else stability_thresh
        self.dedupe_iou = dedupe_iou
        self.max_masks = max_masks
        self.fallback_masks = fallback_masks
        self.min_area_fraction = min_area_fraction
        self.max_area_fraction = max_area_fraction
        self.last_timings: dict[str, float] = {}
        self.last_prompts = 0

    def grid_points(self, width: int, height: int) -> np.ndarray:
        """``grid×grid`` cell centres as ``(x, y)`` pixels."""
        if self.grid <= 0:
            return np.zeros((0, 2), np.float32)
        steps = (np.arange(self.grid) + 0.5) / self.grid
        xs, ys = np.meshgrid(steps * width, steps * height)
        return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)

    @timing.stage("proposals", count=len)
    def __call__(
        self,
        frame: np.ndarray,
        points: np.ndarray | None = None,
        *,
        backbone: dict[str, Any] | None = None,
        grid: bool = True,
    ) -> list[Proposal]:
        """Proposals on ``frame``; ``backbone``: SAM 2's backbone output for this very frame
        (e.g. :meth:`tracker.session.TrackingSession.frame_features`), used instead of encoding
        the frame again. ``grid=False`` decodes ``points`` alone (a caller that picked its own
        grid points, as discovery's detector does to leave out those inside tracked objects).
        ``last_prompts`` says how many points the call decoded."""
        import torch

        height, width = frame.shape[:2]
        prompts = self.grid_points(width, height) if grid else np.zeros((0, 2), np.float32)
        if points is not None and len(points):
            prompts = np.concatenate([np.asarray(points, np.float32).reshape(-1, 2), prompts])
        self.last_prompts = len(prompts)
        if not len(prompts):
            return []
        if not frame.flags.writeable:  # torch warns on read-only arrays (e.g. a reader's cached frame)
            frame = frame.copy()
        started = perf_counter()
        if backbone is not None:
            use_backbone(self.predictor, backbone, (height, width))
        else:
            self.predictor.set_image(frame)
        encoded = perf_counter()
        logits, quality = _decode_points(self.predictor, prompts / np.array([width, height], np.float32))
        self.predictor.reset_predictor()
        decoded = perf_counter()

        low = logits > 0
        area = low.flatten(1).float().mean(1).numpy()
        sized = (area >= self.min_area_fraction) & (area <= self.max_area_fraction)
        keep = sized & (quality >= self.pred_iou_thresh)
        if self.stability_thresh > 0:
            keep &= _stability(logits) >= self.stability_thresh
        if not keep.any() and sized.any():
            # Better a few doubtful masks for CLIP to judge than an empty result.
            keep = sized & (quality >= np.sort(quality[sized])[::-1][: self.fallback_masks].min())
            logger.debug("no mask passed the quality filters; keeping the %d best anyway", int(keep.sum()))
        order = [int(i) for i in np.argsort(-quality, kind="stable") if keep[i]]
        order = _dedupe(low, order, self.dedupe_iou)[: self.max_masks]

        proposals = []
        for chunk in range(0, len(order), 8):
            index = torch.as_tensor(order[chunk : chunk + 8])
            up = torch.nn.functional.interpolate(
                logits[index][:, None], size=(height, width), mode="bilinear", align_corners=False
            )[:, 0]
            for i, mask in zip(index.tolist(), (up > 0).numpy(), strict=True):
                proposals.append(Proposal(mask, float(quality[i])))
        self.last_timings = {
            "set_image": encoded - started,
            "decode": decoded - encoded,
            "post": perf_counter() - decoded,
        }
        logger.debug(
            "points proposer: %d prompts → %d masks → %d kept (set_image %.2f s, decode %.2f s)",
            len(prompts),
            len(quality),
            len(proposals),
            encoded - started,
            decoded - encoded,
        )
        return proposals


def use_backbone(predictor: Any, backbone: dict[str, Any], size: tuple[int, int]) -> None:
    """Give a ``SAM2ImagePredictor`` an image through the model's backbone output for it.

    ``backbone`` is what ``model.forward_image`` returned for the frame (``backbone_fpn``,
    ``vision_pos_enc``); ``size`` the frame's ``(height, width)``. The same steps as
    ``SAM2ImagePredictor.set_image`` after ``forward_image`` (features in float32).
    """
    import torch

    model = predictor.model
    with torch.inference_mode():
        _, vision_feats, _, _ = model._prepare_backbone_features(backbone)
        if model.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
        feats = [
            feat.permute(1, 2, 0).reshape(1, -1, *feat_size).float()
            for feat, feat_size in zip(vision_feats[::-1], predictor._bb_feat_sizes[::-1], strict=True)
        ][::-1]
    predictor._features = {"image_embed": feats[-1], "high_res_feats": feats[:-1]}
    predictor._orig_hw = [tuple(size)]
    predictor._is_image_set = True


def _decode_points(predictor: Any, points_normalised: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Decode one positive point per prompt on the predictor's current image.

    Returns low-resolution mask logits ``(3N)×h×w`` (``h = w = image_size/4``) and their
    predicted IoUs ``(3N,)``. This is ``SAM2ImagePredictor._predict`` without its final upsampling
    to the image size, which for ~60 masks on a 720p frame costs more than the decoder itself.
    """
    import torch

    model = predictor.model
    features = predictor._features
    coords = torch.as_tensor(points_normalised, dtype=torch.float32)[:, None, :] * model.image_size
    labels = torch.ones(coords.shape[:2], dtype=torch.int)
    with torch.inference_mode():
        sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        low_res, iou, _, _ = model.sam_mask_decoder(
            image_embeddings=features["image_embed"][-1].unsqueeze(0),
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=coords.shape[0] > 1,
            high_res_features=[level[-1].unsqueeze(0) for level in features["high_res_feats"]],
        )
    return low_res.flatten(0, 1).float().clamp(-32, 32), iou.flatten().float().numpy()


def _stability(logits: torch.Tensor, offset: float = 1.0) -> np.ndarray:
    """SAM's stability score: IoU of the mask thresholded at ``+offset`` and at ``−offset``."""
    inner = (logits > offset).flatten(1).sum(1).float()
    outer = (logits > -offset).flatten(1).sum(1).float()
    return (inner / outer.clamp(min=1)).numpy()


def _dedupe(masks: torch.Tensor, order: list[int], iou: float) -> list[int]:
    """Greedy NMS by mask IoU over ``masks`` (N×h×w bool) in ``order``; returns kept indices."""
    if not order:
        return []
    flat = masks[order].flatten(1).float()
    inter = flat @ flat.T
    areas = flat.sum(1)
    ious = (inter / (areas[:, None] + areas[None, :] - inter).clamp(min=1)).numpy()
    kept: list[int] = []
    for position in range(len(order)):
        if all(ious[position, other] <= iou for other in kept):
            kept.append(position)
    return [order[position] for position in kept]


class AutoMaskProposer:
    """An automatic mask generator (a grid of points over the whole image) as a proposer.

    ``generator`` is anything with ``generate(image) -> list[dict]`` returning
    ``segmentation`` (``H×W bool``) and ``predicted_iou``: SAM 2's ``SAM2AutomaticMaskGenerator``
    or segment-anything's ``SamAutomaticMaskGenerator`` with ``output_mode="binary_mask"``.
    The frame is first shrunk (never enlarged) so its short side is at most ``short_side`` and
    its long side at most ``long_side`` (the model resizes to its processing size anyway, and
    full-size masks for every grid point are what makes these generators slow); the kept
    masks are scaled back up to the frame. Ignores ``points``.
    """

    uses_points = False

    def __init__(
        self,
        generator: Any,
        *,
        short_side: int | None = None,
        long_side: int | None = None,
        max_masks: int = 64,
    ) -> None:
        self.generator = generator
        self.short_side = short_side
        self.long_side = long_side
        self.max_masks = max_masks
        self.last_timings: dict[str, float] = {}

    @timing.stage("proposals", count=len)
    def __call__(self, frame: np.ndarray, points: np.ndarray | None = None) -> list[Proposal]:
        height, width = frame.shape[:2]
        scale = 1.0
        if self.short_side:
            scale = min(scale, self.short_side / min(height, width))
        if self.long_side:
            scale = min(scale, self.long_side / max(height, width))
        small = frame if frame.flags.writeable else frame.copy()  # torch warns on read-only arrays
        if scale < 1.0:
            small = resize(frame, max(1, round(width * scale)), max(1, round(height * scale)))
        started = perf_counter()
        records = self.generator.generate(small)
        self.last_timings = {"generate": perf_counter() - started}
        records = sorted(records, key=lambda r: -float(r.get("predicted_iou", 0.0)))[: self.max_masks]
        proposals = []
        for record in records:
            mask = np.asarray(record["segmentation"], dtype=bool)
            if mask.shape != (height, width):
                mask = resize_mask(mask, width, height)
            proposals.append(Proposal(mask, float(record.get("predicted_iou", 0.0))))
        return proposals


def _build_points(
    video_predictor: Any = None,
    *,
    sam1: Any = None,
    points_per_side: int | None = None,
    random_weights: bool = False,
) -> MaskProposer:
    from ..models import sam2_image_predictor

    if video_predictor is None:
        raise ValueError("the 'points' proposer needs the SAM 2 model")
    return PointPromptProposer(
        sam2_image_predictor(video_predictor),
        grid=max(2, points_per_side // 4) if points_per_side else 4,
        random_weights=random_weights,
    )


def _build_sam2_auto(
    video_predictor: Any = None,
    *,
    sam1: Any = None,
    points_per_side: int | None = None,
    random_weights: bool = False,
) -> MaskProposer:
    from ..models import sam2_mask_generator

    if video_predictor is None:
        raise ValueError("the 'sam2-auto' proposer needs the SAM 2 model")
    generator = sam2_mask_generator(video_predictor, points_per_side or 16, random_weights)
    return AutoMaskProposer(generator, short_side=int(video_predictor.image_size))


def _build_sam1_auto(
    video_predictor: Any = None,
    *,
    sam1: Any = None,
    points_per_side: int | None = None,
    random_weights: bool = False,
) -> MaskProposer:
    from ..models import sam1_mask_generator

    if sam1 is None:
        raise ValueError("the 'sam1-auto' proposer needs a segment-anything model (tracker.models.load_sam1)")
    generator = sam1_mask_generator(sam1, points_per_side or 16, random_weights)
    return AutoMaskProposer(generator, long_side=1024)


#: Proposer name → builder ``(video_predictor, *, sam1, points_per_side, random_weights)``.
#: ``points_per_side`` is the sparse grid's side for "points" (default 4) and the generator's
#: grid for the automatic ones (default 16).
PROPOSERS: dict[str, Callable[..., MaskProposer]] = {
    "points": _build_points,
    "sam2-auto": _build_sam2_auto,
    "sam1-auto": _build_sam1_auto,
}


def proposer_name(name: str) -> str:
    """The :data:`PROPOSERS` key for ``name``; the older settings values ``"sam2"`` and
    ``"sam1:<variant>"`` mean the automatic generators."""
    key = (name or "points").strip().lower()
    if key == "sam2":
        return "sam2-auto"
    if key.startswith("sam1") and key != "sam1-auto":
        return "sam1-auto"
    return key


def build_proposer(
    name: str,
    video_predictor: Any = None,
    *,
    sam1: Any = None,
    points_per_side: int | None = None,
    random_weights: bool = False,
) -> MaskProposer:
    """Build the proposer called ``name`` (see :func:`proposer_name`) from loaded models.

    Raises :class:`InputError` for an unknown name.
    """
    try:
        builder = PROPOSERS[proposer_name(name)]
    except KeyError:
        raise InputError(
            f"Unknown mask proposer {name!r}; choose one of {', '.join(sorted(PROPOSERS))}."
        ) from None
    return builder(video_predictor, sam1=sam1, points_per_side=points_per_side, random_weights=random_weights)
