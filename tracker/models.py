"""Building the models: SAM 2 (tracking, automatic masks), CLIP (ranking), SAM 1 (optional masks).

Every loader either finds real weights through :func:`tracker.weights.resolve_checkpoint` and
loads them strictly (``torch.load(..., weights_only=True)``, missing or unexpected keys are a
:class:`~tracker.weights.CheckpointError`), or — with ``random_weights=True`` — builds the same
architecture with seeded random weights, logs a WARNING and says so on the result
(``tracker_random_weights``). Each SAM 2 / SAM 1 model carries:

* ``tracker_random_weights`` — bool;
* ``tracker_checkpoint`` — the ``Path`` loaded, or None;
* ``tracker_checkpoint_sha256`` — its SHA-256, or None;
* ``tracker_model_name`` — the registry key;
* ``tracker_lock`` — a ``threading.RLock``: SAM 2 modules keep per-call state (RoPE caches,
  the image predictor's features), so whoever runs inference on a shared model holds it.

:class:`ModelHub` caches loaded models so web sessions share one instance of each.

torch, sam2, open_clip and segment_anything are imported inside the functions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import timing
from .errors import InputError, WeightsUnavailable
from .registry import (
    DEFAULT_CLIP,
    DEFAULT_SAM1,
    DEFAULT_SAM2,
    ClipSpec,
    ModelSpec,
    clip_spec,
    sam1_spec,
    sam2_spec,
)
from .weights import CheckpointError, checkpoint_sha256, fix_command, resolve_checkpoint

if TYPE_CHECKING:
    import numpy as np
    import torch
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    from .settings import Settings


logger = logging.getLogger(__name__)

SAM2_CONFIG_IMAGE_SIZE = 1024  # what every SAM 2 / 2.1 config file says
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 128, 2048

PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a cropped photo of a {}.",
    "a blurry photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a low resolution photo of a {}.",
)

# Untrained SAM predicts meaningless IoU and stability scores; with upstream thresholds every
# mask is filtered out, so random-weight runs switch those filters off (0 disables them).
RANDOM_WEIGHTS_AMG_OPTIONS: dict[str, Any] = {
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": 0.7,
    "min_mask_region_area": 0,
}

_BUILD_LOCK = threading.Lock()  # Hydra's global config store is not thread-safe
_RANDOM_WARNING = (
    "%s uses UNTRAINED RANDOM WEIGHTS: its masks/scores are meaningless (fine for testing the pipeline)"
)


def validate_image_size(image_size: int | None) -> int:
    """SAM 2's input size: a multiple of 32 in [128, 2048]; None means the config's 1024."""
    if image_size is None:
        return SAM2_CONFIG_IMAGE_SIZE
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise InputError(f"The SAM 2 image size must be a whole number of pixels, not {image_size!r}.")
    if image_size % 32 or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        nearest = min(max(round(image_size / 32) * 32, MIN_IMAGE_SIZE), MAX_IMAGE_SIZE)
        raise InputError(
            f"The SAM 2 image size must be a multiple of 32 between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} "
            f"(got {image_size}; try {nearest})."
        )
    return image_size


def backbone_feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """SAM 2's three backbone feature-map sizes (strides 4, 8, 16) for a square ``image_size`` input.

    Upstream hard-codes ``[(256, 256), (128, 128), (64, 64)]``, right only at 1024.
    """
    return [(image_size // 4,) * 2, (image_size // 8,) * 2, (image_size // 16,) * 2]


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's CPU generator for the block without disturbing the caller's random state."""
    if seed is None:
        yield
        return
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _ensure_hydra() -> None:
    """``import sam2`` initialises Hydra with sam2's configs; re-do it if someone cleared Hydra."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        initialize_config_module("sam2", version_base="1.2")


def _read_checkpoint(path: Path, spec: ModelSpec, key: str | None) -> dict:
    """``torch.load(path, weights_only=True)`` (and ``[key]``), damaged files as :class:`CheckpointError`."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling / zip / EOF errors all mean "not a usable file"
        raise CheckpointError(
            f"{path} could not be read as a {spec.display_name} checkpoint ({_first_line(error)}); "
            f"it may be an interrupted download: delete it and {fix_command(spec, path.parent)}"
        ) from error
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            found = ", ".join(list(state)[:5]) if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(
                f"{path} is not a {spec.display_name} checkpoint: it has no {key!r} entry (found: {found})."
            )
        state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict.")
    return state


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def _load_strict(module: Any, state_dict: dict, spec: ModelSpec, path: Path) -> None:
    """Load ``state_dict`` into ``module``; any missing, unexpected or mis-shaped key is a CheckpointError.

    Everything is checked before anything is copied, so a refused checkpoint leaves ``module`` as it was.
    """
    own = module.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    reshaped = [
        f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}"
        for key, value in state_dict.items()
        if key in own and hasattr(value, "shape") and tuple(value.shape) != tuple(own[key].shape)
    ]
    _raise_on_incompatible(missing, unexpected, spec, path, reshaped)
    module.load_state_dict(state_dict, strict=True)


def _raise_on_incompatible(
    missing: Sequence[str],
    unexpected: Sequence[str],
    spec: ModelSpec,
    path: Path,
    reshaped: Sequence[str] = (),
) -> None:
    if not missing and not unexpected and not reshaped:
        return

    def sample(keys: Sequence[str]) -> str:
        shown = ", ".join(list(keys)[:3])
        return f" ({shown}{', …' if len(keys) > 3 else ''})" if keys else ""

    shapes = f", {len(reshaped)} with another shape{sample(reshaped)}" if reshaped else ""
    raise CheckpointError(
        f"{path.name} does not fit {spec.display_name}: {len(missing)} missing key(s){sample(missing)}, "
        f"{len(unexpected)} unexpected key(s){sample(unexpected)}{shapes}. It was probably made for another "
        f"model size or version; choose the matching model or {fix_command(spec, path.parent)}"
    )


def _mark(model: Any, name: str, path: Path | None) -> None:
    model.tracker_model_name = name
    model.tracker_random_weights = path is None
    model.tracker_checkpoint = path
    model.tracker_checkpoint_sha256 = checkpoint_sha256(path) if path is not None else None
    model.tracker_lock = threading.RLock()


def _check_random_vs_checkpoint(random_weights: bool, checkpoint: Path | str | None) -> None:
    if random_weights and checkpoint is not None:
        raise InputError("Pass either a checkpoint or random weights, not both.")


# --------------------------------------------------------------------------------------- SAM 2


def load_sam2(
    model: str = "tiny",
    image_size: int | None = None,
    device: Any = None,
    random_weights: bool = False,
    checkpoint: Path | str | None = None,
    checkpoints_dir: Path | str | None = None,
    offline: bool | None = None,
    apply_postprocessing: bool = True,
    seed: int | None = 0,
) -> SAM2VideoPredictor:
    """A SAM 2 video predictor (eval mode) on ``device`` (None = :func:`~tracker.devices.pick_device`).

    ``model`` is any :data:`~tracker.registry.SAM2_MODELS` key or alias; ``image_size`` (a
    multiple of 32, default 1024) is SAM 2's square input size — smaller is much faster on CPU
    and the pretrained weights still apply (the Hiera position embeddings are interpolated).
    Real weights come from ``checkpoint`` or :func:`~tracker.weights.resolve_checkpoint`;
    ``random_weights`` builds untrained weights from ``seed`` instead (a WARNING is logged).
    ``apply_postprocessing`` keeps upstream's demo settings (dynamic multimask, binarised click
    masks in memory, hole filling — the last one needs SAM 2's CUDA extension and is skipped,
    with a warning from sam2, without it). Raises WeightsUnavailable / CheckpointError / InputError.
    """
    from .compat import ensure_torchvision
    from .devices import pick_device

    _check_random_vs_checkpoint(random_weights, checkpoint)
    spec = sam2_spec(model)
    size = validate_image_size(image_size)
    target = pick_device(device if device is not None else "auto")
    path = state = None
    if not random_weights:
        path = resolve_checkpoint(spec, explicit=checkpoint, checkpoints_dir=checkpoints_dir, offline=offline)
        state = _read_checkpoint(path, spec, key="model")  # a damaged file fails before the build
    ensure_torchvision()

    from sam2.build_sam import build_sam2_video_predictor

    feat = size // 16
    overrides = [
        f"++model.image_size={size}",
        # RoPE tables sized for this resolution (upstream rebuilds them on first use otherwise).
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
    ]
    with _BUILD_LOCK, _seeded(seed if random_weights else None):
        _ensure_hydra()
        predictor = build_sam2_video_predictor(
            spec.config,
            ckpt_path=None,  # loaded below, strictly and with a clear error
            device="cpu",
            mode="eval",
            hydra_overrides_extra=overrides,
            apply_postprocessing=apply_postprocessing,
        )
    if path is not None and state is not None:
        _load_strict(predictor, state, spec, path)
        del state
        logger.info("loaded SAM 2 %s from %s (image size %d)", spec.name, path, size)
    else:
        logger.warning(_RANDOM_WARNING, f"SAM 2 {spec.name}")
    predictor = predictor.to(target).eval()
    _disable_hole_filling_without_extension(predictor)
    _mark(predictor, spec.name, path)
    return predictor


def _disable_hole_filling_without_extension(predictor: Any) -> None:
    """Turn hole filling off, once and with one log line, when sam2's CUDA extension is missing.

    Upstream tries the extension on every frame and warns each time it is missing, which floods
    the log of a long run; the masks are the same either way (upstream then skips the step).
    """
    if getattr(predictor, "fill_hole_area", 0) <= 0:
        return
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        logger.info(
            "sam2's CUDA extension is not installed: small holes in masks are not filled (results otherwise identical)"
        )
        predictor.fill_hole_area = 0


# What ``build_sam2_video_predictor(vos_optimized=True)`` compiles (and ``compile_image_encoder``),
# with its ``dynamic`` flag: the memory attention sees a varying number of memories.
COMPILED_PARTS: tuple[tuple[str, bool], ...] = (
    ("image_encoder", False),
    ("memory_encoder", False),
    ("memory_attention", True),
    ("sam_prompt_encoder", False),
    ("sam_mask_decoder", False),
)
COMPILE_MODE = "max-autotune"  # SAM 2's own choice for its published compiled figures


def compile_sam2(predictor: Any, mode: str | None = COMPILE_MODE) -> Any:
    """Turn ``predictor`` into SAM 2's VOS-optimised predictor in place, as ``vos_optimized=True`` builds it.

    The class becomes ``SAM2VideoPredictorVOS`` (method bodies written for ``torch.compile``;
    the same model and weights) and each of :data:`COMPILED_PARTS` gets its ``forward`` wrapped
    by ``torch.compile(mode=mode, fullgraph=True)``. Compiling happens lazily on the first
    frames of each shape (minutes with ``max-autotune``). ``mode=None`` swaps the class only,
    without compiling: what the CPU tests run to check our session against those method bodies.
    Returns ``predictor``; calling it twice does nothing the second time.
    """
    import torch
    from sam2.sam2_video_predictor import SAM2VideoPredictorVOS

    if getattr(predictor, "tracker_compiled", None) is not None:
        return predictor
    predictor.__class__ = SAM2VideoPredictorVOS
    if mode is not None:
        for name, dynamic in COMPILED_PARTS:
            part = getattr(predictor, name)
            part.forward = torch.compile(part.forward, mode=mode, fullgraph=True, dynamic=dynamic)
        logger.info("SAM 2 compiled (%s): the first frames of each shape build kernels", mode)
    predictor.tracker_compiled = mode or "vos-class-only"
    return predictor


def sam2_image_predictor(video_predictor: Any, **kwargs: Any) -> SAM2ImagePredictor:
    """A ``SAM2ImagePredictor`` that shares ``video_predictor``'s weights (no copy).

    Works at any image size the model was built with (upstream assumes 1024). The predictor
    holds one image's features: make one per caller, and hold ``video_predictor.tracker_lock``
    while calling ``set_image`` / ``predict`` on a shared model. ``kwargs`` go to
    ``SAM2ImagePredictor`` (``mask_threshold``, ``max_hole_area``, ``max_sprinkle_area``).
    """
    from .compat import ensure_torchvision

    ensure_torchvision()  # sam2.utils.transforms imports torchvision
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(video_predictor, **kwargs)
    predictor._bb_feat_sizes = backbone_feature_sizes(video_predictor.image_size)
    predictor.tracker_random_weights = getattr(video_predictor, "tracker_random_weights", False)
    return predictor


def sam2_mask_generator(
    video_predictor: Any,
    points_per_side: int = 16,
    random_weights: bool | None = None,
    **kwargs: Any,
) -> SAM2AutomaticMaskGenerator:
    """A ``SAM2AutomaticMaskGenerator`` sharing ``video_predictor``'s weights.

    ``random_weights`` (default: what the model says) switches the quality filters off
    (:data:`RANDOM_WEIGHTS_AMG_OPTIONS`) so untrained models still produce masks; ``kwargs``
    override any option. ``generate(image)`` expects ``H×W×3`` uint8 RGB and returns upstream's
    list of dicts (``segmentation`` H×W bool, ``bbox`` xywh, ``predicted_iou``, …).
    """
    from .compat import ensure_torchvision

    ensure_torchvision()
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    if random_weights is None:
        random_weights = bool(getattr(video_predictor, "tracker_random_weights", False))
    options = dict(RANDOM_WEIGHTS_AMG_OPTIONS) if random_weights else {}
    options.update(kwargs)
    generator = SAM2AutomaticMaskGenerator(video_predictor, points_per_side=points_per_side, **options)
    generator.predictor._bb_feat_sizes = backbone_feature_sizes(video_predictor.image_size)
    generator.tracker_random_weights = random_weights
    return generator


# ---------------------------------------------------------------------------------------- CLIP


@dataclass
class ClipModel:
    """An open_clip model with its tokenizer and image normalisation, ready to embed.

    All ``encode_*`` methods run under ``torch.inference_mode`` and return float32, L2-normalised
    rows on the CPU, so scores are plain dot products (``100 ·`` cosine in the candidate table).
    """

    model: Any
    preprocess: Callable
    tokenizer: Callable
    device: Any
    name: str
    random_weights: bool
    checkpoint: Path | None = None
    checkpoint_sha256: str | None = None
    image_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, ...] = (0.26862954, 0.26130258, 0.27577711)
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    embed_dim: int = 0
    _text_cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def dim(self) -> int:
        """Embedding width D."""
        if not self.embed_dim:
            self.embed_dim = int(self.encode_text(["x"]).shape[1])
        return self.embed_dim

    @timing.stage("clip")
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """``N×D`` normalised text embeddings of ``texts`` (tokenised with the model's own tokenizer)."""
        import torch

        from .devices import autocast

        if isinstance(texts, str):
            raise TypeError("encode_text takes a list of strings; use encode_prompt for one prompt")
        if not texts:
            return torch.empty((0, self.dim), dtype=torch.float32)
        tokens = self.tokenizer(list(texts)).to(self.device)
        with (
            torch.inference_mode(),
            autocast(self.device, enabled=None if self.device.type == "cuda" else False),
        ):
            features = self.model.encode_text(tokens)
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu()

    def encode_prompt(self, prompt: str, templates: Sequence[str] = PROMPT_TEMPLATES) -> torch.Tensor:
        """``(D,)`` embedding of ``prompt``: the mean over ``templates`` of normalised embeddings, renormalised.

        Remembered per (prompt, templates). Raises InputError for an empty prompt.
        """
        import torch

        text = " ".join((prompt or "").split())
        if not text:
            raise InputError("The prompt is empty: type what to look for, e.g. 'red car'.")
        key = "\x00".join((text, *templates))
        with self._cache_lock:
            cached = self._text_cache.get(key)
        if cached is not None:
            return cached.clone()
        sentences = [template.format(text) for template in templates] if templates else [text]
        embedding = torch.nn.functional.normalize(self.encode_text(sentences).mean(dim=0), dim=0)
        with self._cache_lock:
            if len(self._text_cache) > 256:
                self._text_cache.clear()
            self._text_cache[key] = embedding
        return embedding.clone()

    @timing.stage("clip")
    def encode_images(self, images: Sequence[np.ndarray], batch_size: int = 32) -> torch.Tensor:
        """``N×D`` normalised embeddings of ``H×W×3`` uint8 RGB images (any sizes).

        Each image is resized and centre-cropped like open_clip's own preprocess (shortest side
        to the model size, then crop; ``squash`` models are stretched), in torch, batched.
        """
        import torch

        from .devices import autocast

        if len(images) == 0:
            return torch.empty((0, self.dim), dtype=torch.float32)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = torch.stack([self._prepare(image) for image in images[start : start + batch_size]])
                with autocast(self.device, enabled=None if self.device.type == "cuda" else False):
                    features = self.model.encode_image(batch.to(self.device))
                outputs.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        return torch.cat(outputs)

    def _prepare(self, image: np.ndarray) -> torch.Tensor:
        """One ``H×W×3`` uint8 image → normalised ``3×S×S`` float tensor."""
        import numpy as np
        import torch
        import torch.nn.functional as F

        if (
            not isinstance(image, np.ndarray)
            or image.ndim != 3
            or image.shape[2] != 3
            or image.dtype != np.uint8
        ):
            shape = getattr(image, "shape", None)
            raise ValueError(
                f"encode_images expects H×W×3 uint8 RGB arrays, got {getattr(image, 'dtype', type(image))} {shape}"
            )
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            raise ValueError("encode_images got an empty image")
        out_h, out_w = self.image_size
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
        if self.resize_mode == "squash":
            resized = F.interpolate(
                pixels, size=(out_h, out_w), mode=mode, antialias=True, align_corners=False
            )
        else:  # "shortest" (and the rare "longest", approximated the same way)
            short = min(out_h, out_w)
            scale = short / min(height, width)
            if height <= width:
                new_h, new_w = short, max(int(short * width / height), short)
            else:
                new_h, new_w = max(int(short * height / width), short), short
            if scale != 1 or (new_h, new_w) != (height, width):
                resized = F.interpolate(
                    pixels, size=(new_h, new_w), mode=mode, antialias=True, align_corners=False
                )
            else:
                resized = pixels
            top = int(round((new_h - out_h) / 2.0))
            left = int(round((new_w - out_w) / 2.0))
            resized = resized[:, :, top : top + out_h, left : left + out_w]
        tensor = resized[0].clamp_(0, 255).div_(255)
        mean = torch.tensor(self.mean, dtype=tensor.dtype)[:, None, None]
        std = torch.tensor(self.std, dtype=tensor.dtype)[:, None, None]
        return (tensor - mean) / std


@contextmanager
def _quiet_open_clip_random_warning() -> Iterator[None]:
    """Hide open_clip's root-logger "Model initialized randomly" (we load the weights ourselves)."""

    def drop(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def load_clip(
    name: str = DEFAULT_CLIP,
    device: Any = None,
    random_weights: bool = False,
    checkpoint: Path | str | None = None,
    checkpoints_dir: Path | str | None = None,
    offline: bool | None = None,
    seed: int | None = 0,
) -> ClipModel:
    """An open_clip model for ``name`` (any :data:`~tracker.registry.CLIP_MODELS` key or alias).

    The architecture is built with ``pretrained=None`` (nothing fetched by open_clip), the image
    normalisation taken from open_clip's pretrained table for the tag (it differs per model:
    MobileCLIP uses mean 0 / std 1), then the resolved checkpoint is loaded strictly through
    ``open_clip.load_checkpoint`` (safetensors or ``weights_only`` pickle). The tokenizer is the
    one packaged with open_clip, so nothing needs the network after the weights are there.
    """
    from .compat import ensure_torchvision
    from .devices import pick_device

    _check_random_vs_checkpoint(random_weights, checkpoint)
    spec = clip_spec(name)
    target = pick_device(device if device is not None else "auto")
    path = None
    if not random_weights:
        path = resolve_checkpoint(spec, explicit=checkpoint, checkpoints_dir=checkpoints_dir, offline=offline)
    ensure_torchvision()
    import open_clip

    pretrained_cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained) or {}
    with _seeded(seed if random_weights else None), _quiet_open_clip_random_warning():
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.arch,
            pretrained=None,
            device="cpu",
            force_quick_gelu=bool(pretrained_cfg.get("quick_gelu", False)),
            image_mean=pretrained_cfg.get("mean"),
            image_std=pretrained_cfg.get("std"),
            image_interpolation=pretrained_cfg.get("interpolation"),
            image_resize_mode=pretrained_cfg.get("resize_mode"),
        )
    if path is not None:
        _load_clip_checkpoint(model, path, spec)
        logger.info("loaded CLIP %s from %s", spec.name, path)
    else:
        logger.warning(_RANDOM_WARNING, f"CLIP {spec.name}")
    model.eval()
    model = _reparameterize(model, spec)
    model = model.to(target)
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    return ClipModel(
        model=model,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(spec.arch),
        device=target,
        name=spec.name,
        random_weights=path is None,
        checkpoint=path,
        checkpoint_sha256=checkpoint_sha256(path) if path is not None else None,
        image_size=(size, size) if isinstance(size, int) else tuple(size),
        mean=tuple(cfg.get("mean", ClipModel.mean)),
        std=tuple(cfg.get("std", ClipModel.std)),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        resize_mode=str(cfg.get("resize_mode", "shortest")),
        embed_dim=spec.embed_dim,
    )


def _load_clip_checkpoint(model: Any, path: Path, spec: ClipSpec) -> None:
    import open_clip

    try:
        incompatible = open_clip.load_checkpoint(model, str(path), strict=False, weights_only=True)
    except RuntimeError as error:  # open_clip's strict checks: shape mismatches
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(
            f"{path.name} does not fit {spec.display_name} ({detail}); "
            "it was probably made for another architecture."
        ) from error
    except Exception as error:  # safetensors / unpickling / zip errors: a damaged file
        raise CheckpointError(
            f"{path} could not be read as a {spec.display_name} checkpoint ({_first_line(error)}); "
            f"it may be an interrupted download: delete it and {fix_command(spec, path.parent)}"
        ) from error
    if incompatible:  # load_checkpoint returns {} for numpy checkpoints
        _raise_on_incompatible(incompatible.missing_keys, incompatible.unexpected_keys, spec, path)


def _reparameterize(model: Any, spec: ClipSpec) -> Any:
    """Fold MobileCLIP's train-time branches (MobileOne / FastViT) for faster inference."""
    if not spec.arch.startswith("MobileCLIP"):
        return model
    try:
        from timm.utils import reparameterize_model
    except ImportError:
        logger.debug("timm.utils.reparameterize_model missing; MobileCLIP runs unfused")
        return model
    return reparameterize_model(model)


# --------------------------------------------------------------------------------------- SAM 1


def load_sam1(
    name: str = DEFAULT_SAM1,
    device: Any = None,
    random_weights: bool = False,
    checkpoint: Path | str | None = None,
    checkpoints_dir: Path | str | None = None,
    offline: bool | None = None,
    seed: int | None = 0,
) -> Any:
    """A segment-anything ``Sam`` model (eval) for ``vit_b`` / ``vit_l`` / ``vit_h``, strictly loaded.

    (segment-anything's own builder calls ``torch.load`` without ``weights_only``; we don't use it
    for loading.) SAM 1 always works at 1024 px.
    """
    from .compat import ensure_torchvision
    from .devices import pick_device

    _check_random_vs_checkpoint(random_weights, checkpoint)
    spec = sam1_spec(name)
    target = pick_device(device if device is not None else "auto")
    path = state = None
    if not random_weights:
        path = resolve_checkpoint(spec, explicit=checkpoint, checkpoints_dir=checkpoints_dir, offline=offline)
        state = _read_checkpoint(path, spec, key=None)
    ensure_torchvision()
    from segment_anything import sam_model_registry

    with _seeded(seed if random_weights else None):
        sam = sam_model_registry[spec.name](checkpoint=None)
    if path is not None and state is not None:
        _load_strict(sam, state, spec, path)
        del state
        logger.info("loaded SAM 1 %s from %s", spec.name, path)
    else:
        logger.warning(_RANDOM_WARNING, f"SAM 1 {spec.name}")
    sam = sam.to(target).eval()
    _mark(sam, spec.name, path)
    return sam


def sam1_mask_generator(
    sam: Any, points_per_side: int = 16, random_weights: bool | None = None, **kwargs: Any
) -> Any:
    """A segment-anything ``SamAutomaticMaskGenerator``; random weights relax the filters as for SAM 2."""
    from .compat import ensure_torchvision

    ensure_torchvision()
    from segment_anything import SamAutomaticMaskGenerator

    if random_weights is None:
        random_weights = bool(getattr(sam, "tracker_random_weights", False))
    options = dict(RANDOM_WEIGHTS_AMG_OPTIONS) if random_weights else {}
    options.update(kwargs)
    generator = SamAutomaticMaskGenerator(sam, points_per_side=points_per_side, **options)
    generator.tracker_random_weights = random_weights
    return generator


# ----------------------------------------------------------------------------------------- hub


def mask_generator_spec(settings: Settings) -> ModelSpec | None:
    """The SAM 1 spec a run's candidate proposer needs, or None when it only uses SAM 2.

    Reads ``settings.mask_generator`` ("points" | "sam2-auto" | "sam1-auto", or the older
    "sam2" / "sam1:vit_b" forms) and ``settings.sam1_model``.
    """
    choice = (settings.mask_generator or "points").strip().lower()
    if not choice.startswith("sam1"):
        return None
    variant = choice.partition(":")[2] or settings.sam1_model or DEFAULT_SAM1
    return sam1_spec(variant)


def missing_weights(settings: Settings, checkpoints_dir: Path | str | None = None) -> list[WeightsUnavailable]:
    """The checkpoints ``settings`` needs that cannot be found locally (nothing built, nothing downloaded).

    Checks SAM 2 (``settings.sam2_model``, None = the default), CLIP, and SAM 1 when the proposer
    is ``sam1-auto``; explicit ``sam2_checkpoint`` / ``clip_checkpoint`` / ``sam1_checkpoint``
    paths are checked as given. Empty with ``settings.random_weights``. Looks where
    :func:`resolve_checkpoint` looks, minus the download. Unknown model names raise
    :class:`~tracker.errors.InputError`.
    """
    if settings.random_weights:
        return []
    folder = settings.checkpoints_dir or checkpoints_dir
    needed: list[tuple[ModelSpec, Path | None]] = [
        (sam2_spec(settings.sam2_model or DEFAULT_SAM2), settings.sam2_checkpoint),
        (clip_spec(settings.clip_model or DEFAULT_CLIP), settings.clip_checkpoint),
    ]
    sam1 = mask_generator_spec(settings)
    if sam1 is not None:
        needed.append((sam1, settings.sam1_checkpoint))
    missing = []
    for spec, explicit in needed:
        try:
            resolve_checkpoint(spec, explicit=explicit, checkpoints_dir=folder, download=False)
        except WeightsUnavailable as error:
            missing.append(error)
    return missing


class ModelHub:
    """Loaded models, shared: one instance per (kind, name, image size, device, random weights).

    Concurrent callers asking for the same model wait for one load and get the same object;
    different models load in parallel. Whoever runs a SAM 2 / SAM 1 model holds
    :meth:`model_lock` for the duration of the call.
    """

    def __init__(
        self,
        checkpoints_dir: Path | str | None = None,
        offline: bool | None = None,
        device: Any = "auto",
    ) -> None:
        self.checkpoints_dir = Path(checkpoints_dir) if checkpoints_dir else None
        self.offline = offline
        self.device_preference = device
        self._lock = threading.Lock()
        self._models: dict[tuple, Any] = {}
        self._loading: dict[tuple, threading.Lock] = {}

    def _device(self, device: Any) -> Any:
        import torch

        from .devices import pick_device

        resolved = pick_device(device if device is not None else self.device_preference)
        if resolved.type == "cuda" and resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
        return resolved

    def _get(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._models:
                return self._models[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            model = load()
            with self._lock:
                self._models[key] = model
                self._loading.pop(key, None)
        return model

    def _key(
        self, kind: str, name: str, size: int | None, device: Any, random_weights: bool, checkpoint: Any
    ) -> tuple:
        return (
            kind,
            name,
            size,
            str(device),
            bool(random_weights),
            str(Path(checkpoint).expanduser()) if checkpoint else None,
        )

    def sam2(
        self,
        model: str | None = "tiny",
        image_size: int | None = None,
        device: Any = None,
        random_weights: bool = False,
        checkpoint: Path | str | None = None,
        checkpoints_dir: Path | str | None = None,
        offline: bool | None = None,
        compile: bool = False,
    ) -> SAM2VideoPredictor:
        """The shared SAM 2 video predictor (see :func:`load_sam2`); ``model`` None = the default.

        ``checkpoints_dir`` / ``offline`` default to the hub's; they only matter on first load.
        ``compile`` gives the :func:`compile_sam2` one (a model of its own) on a CUDA device; on
        any other device it is ignored with a warning (compiling SAM 2 there is slow and untested).
        """
        spec = sam2_spec(model or "tiny")
        size = validate_image_size(image_size)
        target = self._device(device)
        if compile and target.type != "cuda":
            logger.warning("--compile applies to CUDA GPUs only; SAM 2 runs uncompiled on %s", target)
            compile = False
        key = self._key("sam2", spec.name, size, target, random_weights, checkpoint)
        if compile:
            key += ("compiled",)

        def load() -> SAM2VideoPredictor:
            predictor = load_sam2(
                spec.name,
                image_size=size,
                device=target,
                random_weights=random_weights,
                checkpoint=checkpoint,
                checkpoints_dir=checkpoints_dir or self.checkpoints_dir,
                offline=self.offline if offline is None else offline,
            )
            return compile_sam2(predictor) if compile else predictor

        return self._get(key, load)

    def clip(
        self,
        name: str = DEFAULT_CLIP,
        device: Any = None,
        random_weights: bool = False,
        checkpoint: Path | str | None = None,
        checkpoints_dir: Path | str | None = None,
        offline: bool | None = None,
    ) -> ClipModel:
        """The shared CLIP model (see :func:`load_clip`)."""
        spec = clip_spec(name or DEFAULT_CLIP)
        target = self._device(device)
        return self._get(
            self._key("clip", spec.name, None, target, random_weights, checkpoint),
            lambda: load_clip(
                spec.name,
                device=target,
                random_weights=random_weights,
                checkpoint=checkpoint,
                checkpoints_dir=checkpoints_dir or self.checkpoints_dir,
                offline=self.offline if offline is None else offline,
            ),
        )

    def sam1(
        self,
        name: str = DEFAULT_SAM1,
        device: Any = None,
        random_weights: bool = False,
        checkpoint: Path | str | None = None,
        checkpoints_dir: Path | str | None = None,
        offline: bool | None = None,
    ) -> Any:
        """The shared SAM 1 model (see :func:`load_sam1`)."""
        spec = sam1_spec(name or DEFAULT_SAM1)
        target = self._device(device)
        return self._get(
            self._key("sam1", spec.name, 1024, target, random_weights, checkpoint),
            lambda: load_sam1(
                spec.name,
                device=target,
                random_weights=random_weights,
                checkpoint=checkpoint,
                checkpoints_dir=checkpoints_dir or self.checkpoints_dir,
                offline=self.offline if offline is None else offline,
            ),
        )

    def model_lock(self, model: Any) -> threading.RLock:
        """The lock to hold while running inference on a shared SAM model (one per instance)."""
        with self._lock:
            lock = getattr(model, "tracker_lock", None)
            if lock is None:
                lock = threading.RLock()
                model.tracker_lock = lock
            return lock

    lock_for = model_lock

    def missing_weights(self, settings: Settings) -> list[WeightsUnavailable]:
        """:func:`missing_weights` with this hub's checkpoints folder as the fallback."""
        return missing_weights(settings, checkpoints_dir=self.checkpoints_dir)

    def loaded(self) -> list[tuple]:
        """Keys of the models loaded so far (kind, name, image size, device, random, checkpoint)."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        """Forget every loaded model (memory is freed once no session holds them)."""
        with self._lock:
            self._models.clear()
