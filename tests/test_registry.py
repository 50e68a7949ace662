"""tracker.registry: lookups, aliases, and agreement with the installed sam2 / open_clip / SAM 1 tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracker.errors import InputError
from tracker.registry import (
    CLIP_MODELS,
    DEFAULT_CLIP,
    DEFAULT_SAM1,
    DEFAULT_SAM2,
    SAM1_MODELS,
    SAM2_MODELS,
    clip_spec,
    find_spec,
    list_models,
    model_table,
    sam1_spec,
    sam2_spec,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tiny", "tiny"),
        ("t", "tiny"),
        (" Tiny ", "tiny"),
        ("sam2.1-tiny", "tiny"),
        ("sam2.1_hiera_tiny", "tiny"),
        ("sam2.1_hiera_tiny.pt", "tiny"),
        ("facebook/sam2.1-hiera-tiny", "tiny"),
        ("sam2:tiny", "tiny"),
        ("s", "small"),
        ("base+", "base+"),
        ("b+", "base+"),
        ("base_plus", "base+"),
        ("base-plus", "base+"),
        ("sam2.1_hiera_b+", "base+"),
        ("large", "large"),
        ("L", "large"),
        ("sam2-tiny", "sam2-tiny"),
        ("sam2_hiera_tiny", "sam2-tiny"),
        ("sam2_hiera_b+", "sam2-base+"),
        ("facebook/sam2-hiera-large", "sam2-large"),
    ],
)
def test_sam2_lookup(name: str, expected: str) -> None:
    assert sam2_spec(name).name == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ViT-B-32/laion2b_s34b_b79k", "ViT-B-32/laion2b_s34b_b79k"),
        ("vit-b-32:laion2b_s34b_b79k", "ViT-B-32/laion2b_s34b_b79k"),
        ("ViT-B-32", "ViT-B-32/laion2b_s34b_b79k"),
        ("ViT-B/32", "ViT-B-32/laion2b_s34b_b79k"),
        ("b32", "ViT-B-32/laion2b_s34b_b79k"),
        ("clip:ViT-B-16", "ViT-B-16/laion2b_s34b_b88k"),
        ("ViT-L-14", "ViT-L-14/laion2b_s32b_b82k"),
        ("mobileclip", "MobileCLIP-S2/datacompdr"),
    ],
)
def test_clip_lookup(name: str, expected: str) -> None:
    assert clip_spec(name).name == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vit_b", "vit_b"),
        ("VIT-B", "vit_b"),
        ("sam1:vit_b", "vit_b"),
        ("sam_vit_l_0b3195.pth", "vit_l"),
        ("h", "vit_h"),
        ("default", "vit_h"),  # segment-anything's own "default" is vit_h
    ],
)
def test_sam1_lookup(name: str, expected: str) -> None:
    assert sam1_spec(name).name == expected


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("tiny", "sam2", "tiny"),
        ("large", "sam2", "large"),  # SAM 2 wins without a prefix
        ("sam1:vit_l", "sam1", "vit_l"),
        ("sam1:large", "sam1", "vit_l"),
        ("ViT-B-16", "clip", "ViT-B-16/laion2b_s34b_b88k"),
        ("clip:b32", "clip", "ViT-B-32/laion2b_s34b_b79k"),
        ("vit_h", "sam1", "vit_h"),
    ],
)
def test_find_spec(name: str, kind: str, expected: str) -> None:
    spec = find_spec(name)
    assert (spec.kind, spec.name) == (kind, expected)


@pytest.mark.parametrize(
    ("lookup", "name", "mentions"),
    [
        (sam2_spec, "huge", ["tiny", "base+", "large"]),
        (sam2_spec, "", ["tiny"]),
        (clip_spec, "ViT-H-14", ["ViT-B-32/laion2b_s34b_b79k"]),
        (sam1_spec, "vit_x", ["vit_b", "vit_l", "vit_h"]),
        (find_spec, "nonsense", ["tiny", "ViT-B-32/laion2b_s34b_b79k", "vit_b"]),
    ],
)
def test_unknown_name_lists_choices(lookup, name: str, mentions: list[str]) -> None:
    with pytest.raises(InputError) as caught:
        lookup(name)
    for word in mentions:
        assert word in str(caught.value)


@pytest.mark.parametrize("table", [SAM2_MODELS, CLIP_MODELS, SAM1_MODELS], ids=["sam2", "clip", "sam1"])
def test_aliases_are_unambiguous(table: dict) -> None:
    owners: dict[str, str] = {}
    for spec in table.values():
        for word in (spec.name, *spec.aliases):
            key = word.lower()
            assert owners.setdefault(key, spec.name) == spec.name, f"{word!r} names two models"


def test_defaults_exist() -> None:
    assert DEFAULT_SAM2 in SAM2_MODELS and DEFAULT_CLIP in CLIP_MODELS and DEFAULT_SAM1 in SAM1_MODELS


def test_sam2_table_matches_installed_sam2() -> None:
    import sam2
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

    package = Path(sam2.__file__).parent
    assert len(SAM2_MODELS) == len(HF_MODEL_ID_TO_FILENAMES)
    for spec in SAM2_MODELS.values():
        assert HF_MODEL_ID_TO_FILENAMES[spec.repo_id] == (spec.config, spec.checkpoint)
        assert (package / spec.config).is_file()
        assert spec.url and spec.url.endswith("/" + spec.checkpoint)


def test_clip_table_matches_open_clip() -> None:
    from tracker.compat import ensure_torchvision

    ensure_torchvision()
    import open_clip

    for spec in CLIP_MODELS.values():
        assert spec.arch in open_clip.list_models()
        cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
        assert cfg, f"open_clip has no tag {spec.pretrained} for {spec.arch}"
        assert cfg["hf_hub"].rstrip("/") == spec.hf_repo
        assert open_clip.get_model_config(spec.arch)["embed_dim"] == spec.embed_dim
        assert spec.local_filename == f"{spec.arch}__{spec.pretrained}.safetensors"


def test_sam1_table_matches_segment_anything() -> None:
    from tracker.compat import ensure_torchvision

    ensure_torchvision()
    from segment_anything import sam_model_registry

    for spec in SAM1_MODELS.values():
        assert spec.name in sam_model_registry
        assert spec.url == "https://dl.fbaipublicfiles.com/segment_anything/" + spec.checkpoint
        assert spec.hf_repo is None and spec.hf_filenames == ()


def test_list_models_defaults_first() -> None:
    listing = list_models()
    assert listing["sam2"][0] == DEFAULT_SAM2
    assert listing["clip"][0] == DEFAULT_CLIP
    assert listing["sam1"][0] == DEFAULT_SAM1
    assert sorted(listing["sam2"]) == sorted(SAM2_MODELS)


def test_model_table_rows() -> None:
    rows = model_table()
    assert len(rows) == len(SAM2_MODELS) + len(CLIP_MODELS) + len(SAM1_MODELS)
    for kind in ("sam2", "clip", "sam1"):
        assert sum(1 for row in rows if row["kind"] == kind and row["default"]) == 1
    tiny = next(row for row in rows if row["name"] == "tiny")
    assert tiny["file"] == "sam2.1_hiera_tiny.pt" and tiny["source"] == "facebook/sam2.1-hiera-tiny"


def test_importing_the_model_modules_does_not_import_torch() -> None:
    code = (
        "import sys, tracker.registry, tracker.weights, tracker.devices, tracker.models; "
        "heavy = [m for m in ('torch', 'sam2', 'open_clip', 'huggingface_hub') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
