"""Every model variant the tracker can use, as tables (no torch import, instant to import).

Three registries, one per model family, each mapping a canonical key to a frozen spec:

* :data:`SAM2_MODELS` — SAM 2.1 Hiera ``"tiny"``, ``"small"``, ``"base+"``, ``"large"`` (the
  defaults) and the original SAM 2 ones as ``"sam2-tiny"`` … ``"sam2-large"``. Config paths and
  checkpoint names are the ones in ``sam2.build_sam.HF_MODEL_ID_TO_FILENAMES``.
* :data:`CLIP_MODELS` — open_clip ``"<arch>/<pretrained tag>"``; the Hugging Face repo is the
  one in open_clip's pretrained table (``open_clip.get_pretrained_cfg(arch, tag)["hf_hub"]``).
* :data:`SAM1_MODELS` — segment-anything ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` (downloaded from
  Meta's CDN, not from Hugging Face).

Lookups (:func:`sam2_spec`, :func:`clip_spec`, :func:`sam1_spec`, :func:`find_spec`) accept the
key or any alias, case-insensitively, and raise :class:`~tracker.errors.InputError` naming the
valid choices. Every spec answers the same questions for :mod:`tracker.weights`:
``local_filename`` (the file name inside ``checkpoints/``), ``hf_repo`` + ``hf_filenames``
(where the Hugging Face hub keeps it, if anywhere) and ``url`` (a direct download, if any).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .errors import InputError

DEFAULT_SAM2 = "tiny"
DEFAULT_CLIP = "ViT-B-32/laion2b_s34b_b79k"
DEFAULT_SAM1 = "vit_b"

# open_clip's hub repos hold the same weights twice; the first name is preferred.
OPEN_CLIP_HF_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class Sam2Spec:
    """One SAM 2 / 2.1 variant.

    ``config`` is the Hydra config name inside the installed ``sam2`` package (what
    ``build_sam2_video_predictor`` takes); ``checkpoint`` the file name both on the hub
    (``repo_id``) and in ``checkpoints/``; ``cost`` the per-frame compute relative to 2.1 tiny
    (measured image-encoder time on CPU), used for time estimates.
    """

    kind: ClassVar[str] = "sam2"

    name: str
    config: str
    checkpoint: str
    repo_id: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    params_millions: float = 0.0
    cost: float = 1.0
    url: str | None = None

    @property
    def local_filename(self) -> str:
        return self.checkpoint

    @property
    def hf_repo(self) -> str | None:
        return self.repo_id

    @property
    def hf_filenames(self) -> tuple[str, ...]:
        return (self.checkpoint,)

    @property
    def display_name(self) -> str:
        return f"SAM 2 model {self.name!r}"


@dataclass(frozen=True)
class ClipSpec:
    """One open_clip model: architecture ``arch`` with pretrained tag ``pretrained``.

    ``hf_repo`` is open_clip's hub repo for the tag (no trailing slash); the hub keeps the
    weights as one of :data:`OPEN_CLIP_HF_FILENAMES` (or ``checkpoint_filename`` when given).
    In ``checkpoints/`` the file is called ``<arch>__<tag>.safetensors`` (``.bin`` when the hub
    only had the pickle), e.g. ``ViT-B-32__laion2b_s34b_b79k.safetensors``.
    """

    kind: ClassVar[str] = "clip"

    name: str
    arch: str
    pretrained: str
    hf_repo: str | None = None
    checkpoint_filename: str | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    embed_dim: int = 512
    url: str | None = None

    @property
    def hf_filenames(self) -> tuple[str, ...]:
        return (self.checkpoint_filename,) if self.checkpoint_filename else OPEN_CLIP_HF_FILENAMES

    @property
    def local_stem(self) -> str:
        return f"{self.arch}__{self.pretrained}"

    @property
    def local_filenames(self) -> tuple[str, ...]:
        """Names accepted in ``checkpoints/``, preferred first."""
        return tuple(self.local_stem + suffix for suffix in (".safetensors", ".bin"))

    @property
    def local_filename(self) -> str:
        return self.local_filenames[0]

    @property
    def display_name(self) -> str:
        return f"CLIP model {self.name!r}"


@dataclass(frozen=True)
class Sam1Spec:
    """One segment-anything (SAM 1) model: ``sam_model_registry`` key ``name``, file ``checkpoint``."""

    kind: ClassVar[str] = "sam1"

    name: str
    checkpoint: str
    url: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    params_millions: float = 0.0

    @property
    def local_filename(self) -> str:
        return self.checkpoint

    @property
    def hf_repo(self) -> str | None:
        return None

    @property
    def hf_filenames(self) -> tuple[str, ...]:
        return ()

    @property
    def display_name(self) -> str:
        return f"SAM 1 model {self.name!r}"


ModelSpec = Sam2Spec | ClipSpec | Sam1Spec

_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_SAM20_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
_SAM1_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


def _sam2_row(
    version: str, size: str, letter: str, repo_size: str, params: float, cost: float, description: str
) -> Sam2Spec:
    """One registry row; ``version`` is "2.1" or "2", ``size`` e.g. "base_plus", ``letter`` e.g. "b+"."""
    tag = f"sam{version}"  # "sam2.1" / "sam2"
    short = {"tiny": "tiny", "small": "small", "base_plus": "base+", "large": "large"}[size]
    checkpoint = f"{tag}_hiera_{size}.pt"
    repo_id = f"facebook/{tag}-hiera-{repo_size}"
    name = short if version == "2.1" else f"sam2-{short}"
    size_words = {short, size, repo_size, letter}
    if size == "base_plus":
        size_words |= {"base", "base_plus", "base-plus", "baseplus", "b+", "bplus"}
    aliases: set[str] = {
        repo_id,
        checkpoint.removesuffix(".pt"),
        f"{tag}_hiera_{letter}",
        f"{tag}-hiera-{repo_size}",
    }
    for word in size_words:
        aliases |= {f"{tag}-{word}", f"{tag}_{word}"}
    if version == "2.1":
        aliases |= size_words
    aliases.discard(name)
    return Sam2Spec(
        name=name,
        config=f"configs/{tag}/{tag}_hiera_{letter}.yaml",
        checkpoint=checkpoint,
        repo_id=repo_id,
        aliases=tuple(sorted(aliases)),
        description=description,
        params_millions=params,
        cost=cost,
        url=(_SAM21_URL if version == "2.1" else _SAM20_URL) + checkpoint,
    )


_SAM2_ROWS = (
    # version, size, config letter, hub size word, params (M), CPU cost vs 2.1 tiny, description
    ("2.1", "tiny", "t", "tiny", 38.9, 1.0, "SAM 2.1 Hiera tiny: fastest, good on CPU"),
    ("2.1", "small", "s", "small", 46.0, 1.25, "SAM 2.1 Hiera small"),
    ("2.1", "base_plus", "b+", "base-plus", 80.8, 2.2, "SAM 2.1 Hiera base+: a good GPU default"),
    ("2.1", "large", "l", "large", 224.4, 4.0, "SAM 2.1 Hiera large: best quality, slowest"),
    ("2", "tiny", "t", "tiny", 38.9, 1.0, "SAM 2 (July 2024) Hiera tiny"),
    ("2", "small", "s", "small", 46.0, 1.25, "SAM 2 (July 2024) Hiera small"),
    ("2", "base_plus", "b+", "base-plus", 80.8, 2.2, "SAM 2 (July 2024) Hiera base+"),
    ("2", "large", "l", "large", 224.4, 4.0, "SAM 2 (July 2024) Hiera large"),
)

SAM2_MODELS: dict[str, Sam2Spec] = {spec.name: spec for spec in (_sam2_row(*row) for row in _SAM2_ROWS)}

CLIP_MODELS: dict[str, ClipSpec] = {
    spec.name: spec
    for spec in (
        ClipSpec(
            name="ViT-B-32/laion2b_s34b_b79k",
            arch="ViT-B-32",
            pretrained="laion2b_s34b_b79k",
            hf_repo="laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
            aliases=(
                "ViT-B-32",
                "ViT-B/32",
                "b32",
                "vit-b-32-laion2b",
                "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
            ),
            description="OpenCLIP ViT-B/32 on LAION-2B: fast, the default",
            embed_dim=512,
        ),
        ClipSpec(
            name="ViT-B-16/laion2b_s34b_b88k",
            arch="ViT-B-16",
            pretrained="laion2b_s34b_b88k",
            hf_repo="laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
            aliases=(
                "ViT-B-16",
                "ViT-B/16",
                "b16",
                "vit-b-16-laion2b",
                "laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
            ),
            description="OpenCLIP ViT-B/16 on LAION-2B: finer detail, ~4x the compute of B/32",
            embed_dim=512,
        ),
        ClipSpec(
            name="ViT-L-14/laion2b_s32b_b82k",
            arch="ViT-L-14",
            pretrained="laion2b_s32b_b82k",
            hf_repo="laion/CLIP-ViT-L-14-laion2B-s32B-b82K",
            aliases=(
                "ViT-L-14",
                "ViT-L/14",
                "l14",
                "vit-l-14-laion2b",
                "laion/CLIP-ViT-L-14-laion2B-s32B-b82K",
            ),
            description="OpenCLIP ViT-L/14 on LAION-2B: most accurate, slow on CPU",
            embed_dim=768,
        ),
        ClipSpec(
            name="MobileCLIP-S2/datacompdr",
            arch="MobileCLIP-S2",
            pretrained="datacompdr",
            hf_repo="apple/MobileCLIP-S2-OpenCLIP",
            aliases=("MobileCLIP-S2", "mobileclip", "mobileclip-s2", "apple/MobileCLIP-S2-OpenCLIP"),
            description="Apple MobileCLIP-S2: small and fast (needs timm)",
            embed_dim=512,
        ),
    )
}

SAM1_MODELS: dict[str, Sam1Spec] = {
    spec.name: spec
    for spec in (
        Sam1Spec(
            name="vit_b",
            checkpoint="sam_vit_b_01ec64.pth",
            url=_SAM1_URL + "sam_vit_b_01ec64.pth",
            aliases=("vit-b", "b", "sam_vit_b", "sam1-vit_b", "sam_vit_b_01ec64", "base"),
            description="Segment Anything ViT-B (375 MB)",
            params_millions=93.7,
        ),
        Sam1Spec(
            name="vit_l",
            checkpoint="sam_vit_l_0b3195.pth",
            url=_SAM1_URL + "sam_vit_l_0b3195.pth",
            aliases=("vit-l", "l", "sam_vit_l", "sam1-vit_l", "sam_vit_l_0b3195", "large"),
            description="Segment Anything ViT-L (1.2 GB)",
            params_millions=312.3,
        ),
        Sam1Spec(
            name="vit_h",
            checkpoint="sam_vit_h_4b8939.pth",
            url=_SAM1_URL + "sam_vit_h_4b8939.pth",
            aliases=("vit-h", "h", "sam_vit_h", "sam1-vit_h", "sam_vit_h_4b8939", "huge", "default"),
            description="Segment Anything ViT-H (2.4 GB)",
            params_millions=641.1,
        ),
    )
}

_FAMILIES: dict[str, tuple[str, dict]] = {
    "sam2": ("SAM 2", SAM2_MODELS),
    "clip": ("CLIP", CLIP_MODELS),
    "sam1": ("SAM 1", SAM1_MODELS),
}


def _normalise(name: str) -> str:
    key = name.strip().lower()
    for suffix in (".pt", ".pth", ".yaml", ".safetensors"):
        key = key.removesuffix(suffix)
    return key


def _lookup(family: str, name: str) -> ModelSpec:
    label, table = _FAMILIES[family]
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"No {label} model named; choose one of: {', '.join(table)}.")
    key = _normalise(name)
    if key.startswith(family + ":"):
        key = key[len(family) + 1 :].strip()
    if family == "clip":
        key = key.replace(":", "/")
    for spec in table.values():
        if key == spec.name.lower() or key in {_normalise(alias) for alias in spec.aliases}:
            return spec
    raise InputError(f"Unknown {label} model {name!r}; choose one of: {', '.join(table)}.")


def sam2_spec(name: str) -> Sam2Spec:
    """The SAM 2 spec for a key or alias ("tiny", "t", "sam2.1_hiera_tiny", "b+", "sam2-large", …)."""
    return _lookup("sam2", name)  # type: ignore[return-value]


def clip_spec(name: str) -> ClipSpec:
    """The CLIP spec for a key or alias ("ViT-B-32/laion2b_s34b_b79k", "ViT-B-32", "b32", …)."""
    return _lookup("clip", name)  # type: ignore[return-value]


def sam1_spec(name: str) -> Sam1Spec:
    """The SAM 1 spec for a key or alias ("vit_b", "b", …)."""
    return _lookup("sam1", name)  # type: ignore[return-value]


def find_spec(name: str) -> ModelSpec:
    """A spec from any registry; ``"sam2:"``, ``"clip:"`` or ``"sam1:"`` prefixes pick the family.

    Without a prefix the families are tried in the order SAM 2, CLIP, SAM 1 (so ``"large"`` is
    SAM 2.1 large; say ``"sam1:vit_l"`` for SAM 1).
    """
    prefix, sep, rest = name.strip().partition(":")
    if sep and prefix.strip().lower() in _FAMILIES and rest.strip():
        return _lookup(prefix.strip().lower(), rest)
    for family in _FAMILIES:
        try:
            return _lookup(family, name)
        except InputError:
            continue
    every = [key for _, table in _FAMILIES.values() for key in table]
    raise InputError(f"Unknown model {name!r}; choose one of: {', '.join(every)}.")


def list_models() -> dict[str, list[str]]:
    """Canonical names per family, defaults first: ``{"sam2": [...], "clip": [...], "sam1": [...]}``."""
    defaults = {DEFAULT_SAM2, DEFAULT_CLIP, DEFAULT_SAM1}
    return {
        family: sorted(table, key=lambda key: key not in defaults) for family, (_, table) in _FAMILIES.items()
    }


def model_table() -> list[dict[str, str]]:
    """One row per registered model for a detailed listing (``python -m tracker download --list``).

    Keys: ``kind`` ("sam2" | "clip" | "sam1"), ``name`` (the key to pass on the command line),
    ``aliases`` (comma-separated), ``file`` (name in ``checkpoints/``), ``source`` (hub repo or
    URL), ``default`` ("yes" for the default of its kind, else ""), ``description``.
    """
    defaults = {DEFAULT_SAM2, DEFAULT_CLIP, DEFAULT_SAM1}
    rows = []
    for family, (_, table) in _FAMILIES.items():
        for spec in table.values():
            rows.append(
                {
                    "kind": family,
                    "name": spec.name,
                    "aliases": ", ".join(spec.aliases),
                    "file": spec.local_filename,
                    "source": spec.hf_repo or spec.url or "",
                    "default": "yes" if spec.name in defaults else "",
                    "description": spec.description,
                }
            )
    return rows
