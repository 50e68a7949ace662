"""tracker.models with the real model classes and random weights (no checkpoint is ever downloaded).

Each model is built once per module; SAM 2 runs at 256 px (``++model.image_size=256``) so the
whole file stays in the tens of seconds on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tracker import models
from tracker.errors import InputError, WeightsUnavailable
from tracker.models import (
    RANDOM_WEIGHTS_AMG_OPTIONS,
    ModelHub,
    backbone_feature_sizes,
    load_clip,
    load_sam1,
    load_sam2,
    mask_generator_spec,
    missing_weights,
    sam1_mask_generator,
    sam2_image_predictor,
    sam2_mask_generator,
    validate_image_size,
)
from tracker.registry import sam2_spec
from tracker.settings import Settings
from tracker.weights import CheckpointError, file_sha256

pytestmark = pytest.mark.slow


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def sam2_256():
    """SAM 2.1 tiny at 256 px with random weights, and the warnings its loading logged."""
    records = _Records()
    logger = logging.getLogger("tracker.models")
    logger.addHandler(records)
    try:
        model = load_sam2("tiny", image_size=256, device="cpu", random_weights=True)
    finally:
        logger.removeHandler(records)
    return model, records.messages


@pytest.fixture(scope="module")
def clip_model():
    return load_clip("ViT-B-32", device="cpu", random_weights=True)


def frame(height: int = 96, width: int = 128) -> np.ndarray:
    """A synthetic RGB frame: a red disc on a smooth background."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    disc = (xx - width * 0.4) ** 2 + (yy - height * 0.5) ** 2 < (min(height, width) * 0.2) ** 2
    image[disc] = (220, 30, 30)
    return image


# ------------------------------------------------------------------ SAM 2


def test_random_sam2_says_so(sam2_256) -> None:
    model, warnings = sam2_256
    assert model.image_size == 256
    assert model.tracker_random_weights is True
    assert model.tracker_checkpoint is None and model.tracker_checkpoint_sha256 is None
    assert model.tracker_model_name == "tiny"
    assert not model.training
    assert any("UNTRAINED RANDOM WEIGHTS" in message for message in warnings)
    rope = model.memory_attention.layers[0].self_attn.freqs_cis
    assert rope.shape[0] == (256 // 16) ** 2  # RoPE tables sized for 256 px, not 1024


def test_random_weights_are_seeded() -> None:
    first = load_sam2("tiny", image_size=128, device="cpu", random_weights=True, seed=3)
    second = load_sam2("tiny", image_size=128, device="cpu", random_weights=True, seed=3)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.fixture(scope="module")
def saved_sam2(sam2_256, tmp_path_factory) -> Path:
    model, _ = sam2_256
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


def test_strict_load_round_trip(sam2_256, saved_sam2) -> None:
    model, _ = sam2_256
    loaded = load_sam2("tiny", image_size=256, device="cpu", checkpoint=saved_sam2)
    assert loaded.tracker_random_weights is False
    assert loaded.tracker_checkpoint == saved_sam2
    assert loaded.tracker_checkpoint_sha256 == file_sha256(saved_sam2)
    expected = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_extra_key_is_a_clear_error(sam2_256, tmp_path) -> None:
    model, _ = sam2_256
    state = dict(model.state_dict())
    state["decoder.surprise"] = torch.zeros(1)
    path = tmp_path / "odd.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as caught:
        load_sam2("tiny", image_size=256, device="cpu", checkpoint=path)
    message = str(caught.value)
    assert "odd.pt" in message and "1 unexpected key(s) (decoder.surprise)" in message
    assert "0 missing" in message


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda sd: sd.pop("no_mem_embed"), ["1 missing key(s) (no_mem_embed)"]),
        (
            lambda sd: sd.update(no_mem_embed=torch.zeros(3)),
            ["1 with another shape (no_mem_embed (3,) vs (1, 1, 256))"],
        ),
    ],
    ids=["missing", "wrong-shape"],
)
def test_mismatched_state_dict(sam2_256, tmp_path, mutate, words) -> None:
    model, _ = sam2_256
    state = dict(model.state_dict())  # only the dict is changed, never a tensor
    mutate(state)
    with pytest.raises(CheckpointError) as caught:  # (the rest of the state is the model's own values)
        models._load_strict(model, state, sam2_spec("tiny"), tmp_path / "x.pt")
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            b"this is not a checkpoint",
            ["could not be read", "interrupted download", "python -m tracker download tiny"],
        ),
        ({"state_dict": {}}, ["no 'model' entry", "state_dict"]),
    ],
    ids=["garbage", "no-model-key"],
)
def test_unreadable_checkpoints(tmp_path, content, words) -> None:
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as caught:
        load_sam2("tiny", image_size=128, device="cpu", checkpoint=path)
    for word in words:
        assert word in str(caught.value)


def test_missing_sam2_weights_is_weights_unavailable(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("tracker.weights.find_in_hf_cache", lambda spec: None)
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable, match="sam2.1_hiera_tiny.pt"):
        load_sam2("tiny", device="cpu", checkpoints_dir=tmp_path, offline=True)
    assert time.monotonic() - started < 2  # fails before building anything


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 250}, "multiple of 32"),
        ({"image_size": 96}, "between 128 and 2048"),
        ({"image_size": 4096}, "between 128 and 2048"),
        ({"image_size": "512"}, "whole number"),
        ({"model": "enormous"}, "Unknown SAM 2 model"),
        ({"random_weights": True, "checkpoint": "x.pt"}, "not both"),
        ({"device": "quantum"}, "Unknown device"),
    ],
)
def test_load_sam2_rejects(kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        load_sam2(**{"model": "tiny", "device": "cpu", "random_weights": True, **kwargs})


@pytest.mark.parametrize(("size", "expected"), [(None, 1024), (256, 256), (512, 512)])
def test_validate_image_size(size, expected) -> None:
    assert validate_image_size(size) == expected


def test_feature_sizes() -> None:
    assert backbone_feature_sizes(1024) == [(256, 256), (128, 128), (64, 64)]  # upstream's constant
    assert backbone_feature_sizes(256) == [(64, 64), (32, 32), (16, 16)]


def test_upstream_image_predictor_breaks_below_1024(sam2_256) -> None:
    """Why sam2_image_predictor exists: upstream hard-codes 1024-px feature sizes."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    with pytest.raises(RuntimeError):
        SAM2ImagePredictor(sam2_256[0]).set_image(frame())


@pytest.fixture(scope="module")
def sam2_512():
    return load_sam2("tiny", image_size=512, device="cpu", random_weights=True)


@pytest.mark.parametrize("which", ["sam2_256", "sam2_512"])
def test_image_predictor_at_small_sizes(request, which) -> None:
    model = request.getfixturevalue(which)
    model = model[0] if isinstance(model, tuple) else model
    predictor = sam2_image_predictor(model)
    assert predictor.model is model  # shares the weights
    assert predictor.tracker_random_weights is True
    image = frame()
    with model.tracker_lock:
        predictor.set_image(image)
        masks, scores, low_res = predictor.predict(
            point_coords=np.array([[50.0, 48.0]]), point_labels=np.array([1])
        )
        box_masks, _, _ = predictor.predict(box=np.array([20, 20, 80, 70]), multimask_output=False)
    assert masks.shape == (3, 96, 128) and scores.shape == (3,)
    assert low_res.shape == (3, model.image_size // 4, model.image_size // 4)
    assert box_masks.shape == (1, 96, 128)


def test_mask_generator_with_random_weights(sam2_256) -> None:
    model, _ = sam2_256
    generator = sam2_mask_generator(model, points_per_side=4)
    assert generator.tracker_random_weights is True
    assert generator.pred_iou_thresh == 0 and generator.stability_score_thresh == 0
    assert generator.predictor._bb_feat_sizes == backbone_feature_sizes(256)
    image = frame(48, 64)
    with model.tracker_lock:
        found = generator.generate(image)
    assert len(found) >= 1
    for mask in found:
        assert mask["segmentation"].shape == (48, 64) and mask["segmentation"].dtype == bool


def test_mask_generator_upstream_thresholds_find_nothing(sam2_256) -> None:
    """With upstream's quality filters an untrained model yields no masks: hence the relaxed ones."""
    model, _ = sam2_256
    generator = sam2_mask_generator(model, points_per_side=4, random_weights=False)
    assert generator.pred_iou_thresh == 0.8
    with model.tracker_lock:
        assert generator.generate(frame(48, 64)) == []


def test_propagation_under_cpu_bf16_autocast(sam2_256, tmp_path) -> None:
    """SAM 2 tracks under bfloat16 autocast on CPU (the default where the CPU has native bf16)."""
    from PIL import Image

    from tracker.devices import autocast

    model, _ = sam2_256
    for index in range(3):
        Image.fromarray(np.roll(frame(), 4 * index, axis=1)).save(tmp_path / f"{index:05d}.jpg")
    with model.tracker_lock, torch.inference_mode(), autocast("cpu", enabled=True) as dtype:
        state = model.init_state(str(tmp_path))
        model.add_new_points_or_box(
            state,
            frame_idx=0,
            obj_id=1,
            points=np.array([[50.0, 48.0]], np.float32),
            labels=np.array([1], np.int32),
        )
        results = list(model.propagate_in_video(state))
    assert dtype == torch.bfloat16
    assert [index for index, _, _ in results] == [0, 1, 2]
    for _, object_ids, logits in results:
        assert list(object_ids) == [1]
        assert logits.shape == (1, 1, 96, 128)
        assert torch.isfinite(logits.float()).all()


# ------------------------------------------------------------------ CLIP


def test_clip_is_marked_random(clip_model) -> None:
    assert (
        clip_model.random_weights is True
        and clip_model.checkpoint is None
        and clip_model.checkpoint_sha256 is None
    )
    assert clip_model.name == "ViT-B-32/laion2b_s34b_b79k"
    assert clip_model.dim == 512 and clip_model.image_size == (224, 224)
    assert not clip_model.model.training


def test_encode_prompt(clip_model) -> None:
    embedding = clip_model.encode_prompt("red car")
    assert embedding.shape == (512,) and embedding.dtype == torch.float32
    assert embedding.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(clip_model.encode_prompt("  red   car "), embedding)  # whitespace-normalised, cached
    plain = clip_model.encode_prompt("red car", templates=())
    assert plain.shape == (512,) and not torch.allclose(plain, embedding)


def test_encode_text(clip_model) -> None:
    features = clip_model.encode_text(
        ["a dog", "a cat", "a very long prompt " * 40]
    )  # truncated to 77 tokens
    assert features.shape == (3, 512)
    assert torch.allclose(features.norm(dim=1), torch.ones(3), atol=1e-5)
    assert clip_model.encode_text([]).shape == (0, 512)
    with pytest.raises(TypeError):
        clip_model.encode_text("not a list")


@pytest.mark.parametrize("prompt", ["", "   ", None])
def test_empty_prompt(clip_model, prompt) -> None:
    with pytest.raises(InputError, match="prompt is empty"):
        clip_model.encode_prompt(prompt)


def test_encode_images(clip_model) -> None:
    images = [frame(96, 128), frame(300, 200), frame(224, 224), frame(40, 400), frame(7, 9)]
    features = clip_model.encode_images(images, batch_size=2)
    assert features.shape == (5, 512) and features.dtype == torch.float32
    assert torch.allclose(features.norm(dim=1), torch.ones(5), atol=1e-5)
    alone = clip_model.encode_images(images[:1])
    assert torch.allclose(alone[0], features[0], atol=1e-4)  # batching does not change results
    assert clip_model.encode_images([]).shape == (0, 512)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32)],
    ids=["gray", "rgba", "float"],
)
def test_encode_images_rejects(clip_model, bad) -> None:
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        clip_model.encode_images([bad])


@pytest.mark.parametrize("shape", [(96, 128), (300, 200), (224, 224), (31, 500)])
def test_torch_preprocessing_matches_open_clip(clip_model, shape) -> None:
    from PIL import Image

    image = frame(*shape)
    ours = clip_model._prepare(image)
    theirs = clip_model.preprocess(Image.fromarray(image))
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert (ours - theirs).abs().mean().item() < 0.02  # PIL vs torch resampling differ slightly


def test_clip_preprocessing_follows_the_pretrained_tag() -> None:
    """open_clip's ``pretrained=None`` would use OpenAI's mean/std; ViT-L-14 laion2b uses 0.5."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg("ViT-L-14", "laion2b_s32b_b82k")
    assert cfg["mean"] == (0.5, 0.5, 0.5)  # the reason load_clip passes the tag's values on


def test_clip_checkpoint_loading(clip_model, monkeypatch, tmp_path) -> None:
    """Strict loading through open_clip.load_checkpoint (file reading stubbed: a real one is 600 MB)."""
    import open_clip.factory

    spec = models.clip_spec(clip_model.name)
    state = {name: tensor.clone() for name, tensor in clip_model.model.state_dict().items()}
    monkeypatch.setattr(open_clip.factory, "load_state_dict", lambda *args, **kwargs: dict(state))
    models._load_clip_checkpoint(clip_model.model, tmp_path / "fine.safetensors", spec)  # a perfect fit loads

    state["visual.surprise"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\) \(visual.surprise\)"):
        models._load_clip_checkpoint(clip_model.model, tmp_path / "odd.safetensors", spec)


def test_damaged_clip_file(clip_model, tmp_path) -> None:
    path = tmp_path / "ViT-B-32__laion2b_s34b_b79k.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="could not be read"):
        models._load_clip_checkpoint(clip_model.model, path, models.clip_spec(clip_model.name))


# ------------------------------------------------------------------ SAM 1


@pytest.fixture(scope="module")
def sam1():
    return load_sam1("vit_b", device="cpu", random_weights=True)


def test_sam1_random(sam1) -> None:
    assert sam1.tracker_random_weights is True and sam1.tracker_model_name == "vit_b"
    assert sam1.image_encoder.img_size == 1024 and not sam1.training
    generator = sam1_mask_generator(sam1, points_per_side=4)
    assert generator.pred_iou_thresh == 0 and generator.stability_score_thresh == 0
    strict = sam1_mask_generator(sam1, points_per_side=4, random_weights=False)
    assert strict.pred_iou_thresh == 0.88  # segment-anything's default


def test_sam1_strict_load(sam1, tmp_path) -> None:
    spec = models.sam1_spec("vit_b")
    state = dict(sam1.state_dict())
    state["mask_decoder.surprise"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected"):
        models._load_strict(sam1, state, spec, tmp_path / spec.checkpoint)


def run_settings(**values) -> Settings:
    """The run's real :class:`Settings`, with SAM 2 tiny named (the preset would pick it)."""
    return Settings(**{"sam2_model": "tiny", **values})


@pytest.mark.parametrize(
    ("mask_generator", "sam1_model", "expected"),
    [
        ("points", "vit_b", None),
        ("sam2-auto", "vit_b", None),
        ("sam1-auto", "vit_l", "vit_l"),
        ("sam1:vit_h", "vit_b", "vit_h"),
    ],
)
def test_mask_generator_spec(mask_generator, sam1_model, expected) -> None:
    spec = mask_generator_spec(run_settings(mask_generator=mask_generator, sam1_model=sam1_model))
    assert (spec.name if spec else None) == expected


# ------------------------------------------------------------------ missing weights


@pytest.fixture
def no_hf_cache(monkeypatch):
    monkeypatch.setattr("tracker.weights.find_in_hf_cache", lambda spec: None)


@pytest.mark.parametrize(
    ("settings", "present", "missing"),
    [
        (run_settings(), [], ["sam2.1_hiera_tiny.pt", "ViT-B-32__laion2b_s34b_b79k.safetensors"]),
        (
            run_settings(sam2_model=None),
            ["sam2.1_hiera_tiny.pt"],
            ["ViT-B-32__laion2b_s34b_b79k.safetensors"],
        ),
        (
            run_settings(sam2_model="large", mask_generator="sam1-auto"),
            ["ViT-B-32__laion2b_s34b_b79k.bin"],
            ["sam2.1_hiera_large.pt", "sam_vit_b_01ec64.pth"],
        ),
        (run_settings(), ["sam2.1_hiera_tiny.pt", "ViT-B-32__laion2b_s34b_b79k.safetensors"], []),
        (run_settings(random_weights=True), [], []),
        (
            run_settings(sam2_checkpoint=Path("/nowhere/mine.pt")),
            ["sam2.1_hiera_tiny.pt", "ViT-B-32__laion2b_s34b_b79k.bin"],
            ["mine.pt"],
        ),
        (  # an explicit SAM 1 file is the one looked for, not the folder's
            run_settings(mask_generator="sam1-auto", sam1_checkpoint=Path("/nowhere/my_sam1.pth")),
            ["sam2.1_hiera_tiny.pt", "ViT-B-32__laion2b_s34b_b79k.bin", "sam_vit_b_01ec64.pth"],
            ["my_sam1.pth"],
        ),
    ],
)
def test_missing_weights(no_hf_cache, tmp_path, settings, present, missing) -> None:
    for name in present:
        (tmp_path / name).write_bytes(b"x")
    errors = missing_weights(settings, checkpoints_dir=tmp_path)
    assert [error.filename for error in errors] == missing
    for error in errors:
        assert "python -m tracker download" in error.fix


def test_an_explicit_sam1_checkpoint_is_honoured(no_hf_cache, tmp_path) -> None:
    for name in ("sam2.1_hiera_tiny.pt", "ViT-B-32__laion2b_s34b_b79k.bin"):
        (tmp_path / name).write_bytes(b"x")
    mine = tmp_path / "elsewhere" / "my_sam1.pth"
    mine.parent.mkdir()
    mine.write_bytes(b"x")
    settings = run_settings(mask_generator="sam1-auto", sam1_checkpoint=mine)
    assert missing_weights(settings, checkpoints_dir=tmp_path) == []  # the folder has no SAM 1 file
    folder_only = dataclasses.replace(settings, sam1_checkpoint=None)
    assert [e.filename for e in missing_weights(folder_only, checkpoints_dir=tmp_path)] == ["sam_vit_b_01ec64.pth"]
    # a project file keeps it
    assert Settings.from_dict(settings.to_dict()).sam1_checkpoint == mine


def test_settings_folder_beats_hub_folder(no_hf_cache, tmp_path) -> None:
    (tmp_path / "sam2.1_hiera_tiny.pt").write_bytes(b"x")
    (tmp_path / "ViT-B-32__laion2b_s34b_b79k.safetensors").write_bytes(b"x")
    hub = ModelHub(checkpoints_dir=tmp_path / "empty")
    assert len(hub.missing_weights(run_settings())) == 2
    assert hub.missing_weights(run_settings(checkpoints_dir=tmp_path)) == []


# ------------------------------------------------------------------ ModelHub


@pytest.fixture
def counting_hub(monkeypatch):
    """A hub whose loaders are slow fakes that count calls."""
    calls: list[tuple] = []
    lock = threading.Lock()

    class Fake:
        def __init__(self, key):
            self.key = key

    def fake_loader(kind):
        def load(name, **kwargs):
            time.sleep(0.2)
            with lock:
                calls.append((kind, name, kwargs.get("image_size")))
            return Fake((kind, name))

        return load

    for kind in ("sam2", "clip", "sam1"):
        monkeypatch.setattr(models, f"load_{kind}", fake_loader(kind))
    return ModelHub(device="cpu"), calls


def test_hub_loads_once_for_concurrent_callers(counting_hub) -> None:
    hub, calls = counting_hub
    got: list = []
    threads = [
        threading.Thread(target=lambda: got.append(hub.sam2("tiny", image_size=256))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 6 and all(model is got[0] for model in got)
    assert calls == [("sam2", "tiny", 256)]


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ({"model": "tiny"}, {"model": "t"}, True),
        ({"model": "tiny"}, {"model": None}, True),
        ({"model": "tiny", "image_size": None}, {"model": "tiny", "image_size": 1024}, True),
        ({"model": "tiny", "image_size": 256}, {"model": "tiny", "image_size": 512}, False),
        ({"model": "tiny"}, {"model": "small"}, False),
        ({"model": "tiny"}, {"model": "tiny", "random_weights": True}, False),
        ({"model": "tiny"}, {"model": "tiny", "checkpoint": "/x/sam2.1_hiera_tiny.pt"}, False),
    ],
)
def test_hub_keys(counting_hub, first, second, same) -> None:
    hub, _ = counting_hub
    assert (hub.sam2(**first) is hub.sam2(**second)) is same


def test_hub_kinds_are_separate(counting_hub) -> None:
    hub, calls = counting_hub
    assert hub.clip("b32") is hub.clip("ViT-B-32/laion2b_s34b_b79k")
    hub.sam1("vit_b")
    hub.sam2()
    assert sorted(kind for kind, _, _ in calls) == ["clip", "sam1", "sam2"]
    assert len(hub.loaded()) == 3
    hub.clear()
    assert hub.loaded() == []


def test_hub_retries_after_a_failed_load(monkeypatch) -> None:
    attempts = []

    def flaky(name, **kwargs):
        attempts.append(name)
        if len(attempts) == 1:
            raise WeightsUnavailable("SAM 2 model 'tiny'", "sam2.1_hiera_tiny.pt", [], "download it")
        return object()

    monkeypatch.setattr(models, "load_sam2", flaky)
    hub = ModelHub(device="cpu")
    with pytest.raises(WeightsUnavailable):
        hub.sam2("tiny")
    assert hub.sam2("tiny") is hub.sam2("tiny")
    assert len(attempts) == 2


def test_model_lock_per_instance(sam2_256) -> None:
    hub = ModelHub(device="cpu")
    model, _ = sam2_256
    lock = hub.model_lock(model)
    assert lock is model.tracker_lock and hub.lock_for(model) is lock

    class Bare:
        pass

    one, two = Bare(), Bare()
    assert hub.model_lock(one) is hub.model_lock(one)
    assert hub.model_lock(one) is not hub.model_lock(two)
    with lock:  # re-entrant: a caller holding it may call helpers that take it again
        with hub.model_lock(model):
            pass


def test_hub_real_load_is_cached(sam2_256) -> None:
    hub = ModelHub(device="cpu")
    model = hub.sam2("tiny", image_size=128, random_weights=True)
    assert hub.sam2("t", image_size=128, random_weights=True) is model
    assert model.tracker_random_weights and model.image_size == 128
    assert RANDOM_WEIGHTS_AMG_OPTIONS["pred_iou_thresh"] == 0
