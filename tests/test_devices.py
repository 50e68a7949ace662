"""tracker.devices: device choice, the autocast policy, presets and time estimates."""

from __future__ import annotations

import pytest
import torch

from tracker import devices
from tracker.devices import (
    PRESETS,
    Preset,
    autocast,
    autocast_dtype,
    default_preset,
    enable_tf32,
    estimate_seconds,
    pick_device,
    resolve_autocast,
    seconds_per_frame,
)
from tracker.errors import InputError
from tracker.registry import SAM2_MODELS


@pytest.fixture
def machine(monkeypatch):
    """Pretend hardware: ``machine(cuda=2, mps=False)``."""

    def configure(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(devices, "_mps_available", lambda: mps)

    return configure


@pytest.mark.parametrize(
    ("cuda", "mps", "preference", "expected"),
    [
        (0, False, "auto", "cpu"),
        (0, True, "auto", "mps"),
        (1, True, "auto", "cuda"),
        (2, False, "AUTO", "cuda"),
        (2, False, "cpu", "cpu"),
        (2, False, "cuda", "cuda"),
        (2, False, "cuda:1", "cuda:1"),
        (0, True, "mps", "mps"),
        (0, True, "gpu", "mps"),
        (1, False, "gpu", "cuda"),
        (0, False, torch.device("cpu"), "cpu"),
        (0, False, None, "cpu"),
    ],
)
def test_pick_device(machine, cuda, mps, preference, expected) -> None:
    machine(cuda=cuda, mps=mps)
    assert pick_device(preference) == torch.device(expected)


@pytest.mark.parametrize(
    ("cuda", "mps", "preference", "message"),
    [
        (0, False, "cuda", "no CUDA GPU is available"),
        (0, False, "cuda:0", "available: cpu"),
        (2, False, "cuda:2", "has 2 CUDA GPU(s)"),
        (1, False, "cuda:x", "is not a device"),
        (0, False, "mps", "MPS was requested"),
        (0, True, "gpu", None),
        (0, False, "gpu", "none is available"),
        (1, False, "tpu", "Unknown device"),
    ],
)
def test_pick_device_refuses(machine, cuda, mps, preference, message) -> None:
    machine(cuda=cuda, mps=mps)
    if message is None:
        pick_device(preference)
        return
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pick_device(preference)


@pytest.mark.parametrize(
    ("device", "env", "native", "expected"),
    [
        ("cpu", None, True, torch.bfloat16),
        ("cpu", None, False, None),
        ("cpu", "0", True, None),
        ("cpu", "1", False, torch.bfloat16),
        ("mps", None, True, None),
    ],
)
def test_autocast_dtype_cpu(monkeypatch, device, env, native, expected) -> None:
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    if env is None:
        monkeypatch.delenv(devices.ENV_CPU_BF16, raising=False)
    else:
        monkeypatch.setenv(devices.ENV_CPU_BF16, env)
    assert autocast_dtype(device) == expected


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, None)])
def test_autocast_dtype_cuda(monkeypatch, bf16, expected) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    assert autocast_dtype("cuda") == expected


@pytest.mark.parametrize(
    ("enabled", "native", "expected"),
    [
        (None, True, torch.bfloat16),
        (None, False, None),
        (True, False, torch.bfloat16),  # forced on: any CPU runs bf16 (maybe slowly)
        (False, True, None),
    ],
)
def test_resolve_autocast_cpu(monkeypatch, enabled, native, expected) -> None:
    monkeypatch.delenv(devices.ENV_CPU_BF16, raising=False)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    assert resolve_autocast("cpu", enabled) == expected


@pytest.mark.parametrize(("enabled", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_autocast_context_on_cpu(enabled, expected) -> None:
    a = torch.randn(4, 8)
    b = torch.randn(8, 3)
    with autocast("cpu", enabled=enabled) as dtype:
        assert (a @ b).dtype == expected
        assert torch.is_autocast_enabled("cpu") is enabled
    assert dtype == (torch.bfloat16 if enabled else None)
    assert not torch.is_autocast_enabled("cpu")


def test_tf32_only_on_cuda() -> None:
    assert enable_tf32("cpu") is False


def test_cpu_bf16_probe_runs() -> None:
    assert isinstance(devices.cpu_has_native_bf16(), bool)


# ------------------------------------------------------------------ presets


def test_presets_are_valid() -> None:
    assert {"fast", "balanced", "quality"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert preset.sam2_model in SAM2_MODELS
        assert preset.image_size % 32 == 0
        assert preset.description


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("cpu", "balanced"),
        (torch.device("cpu"), "balanced"),
        ("mps", "balanced"),
        ("cuda", "quality"),
        ("cuda:1", "quality"),
    ],
)
def test_default_preset(device, expected) -> None:
    assert default_preset(device).name == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image_size": 500}, "multiple of 32"),
        ({"sam2_model": "gigantic"}, "Unknown SAM 2 model"),
        ({"stride_seconds": 0}, "must be positive"),
    ],
)
def test_bad_preset(changes, message) -> None:
    fields = {**PRESETS["fast"].__dict__, **changes}
    with pytest.raises(InputError, match=message):
        Preset(**fields)


@pytest.mark.parametrize(
    ("image_size", "seconds"), [(256, 0.18), (384, 0.34), (512, 0.68), (768, 2.3), (1024, 5.5)]
)
def test_cpu_cost_table_is_exact_at_measured_sizes(monkeypatch, image_size, seconds) -> None:
    monkeypatch.setenv(devices.ENV_CPU_BF16, "0")
    assert seconds_per_frame("tiny", image_size, "cpu") == pytest.approx(seconds)


def test_estimates_grow_with_work(monkeypatch) -> None:
    monkeypatch.setenv(devices.ENV_CPU_BF16, "0")
    sizes = [seconds_per_frame("tiny", size, "cpu") for size in (128, 256, 320, 512, 640, 1024, 1280)]
    assert sizes == sorted(sizes)
    models = [seconds_per_frame(name, 512, "cpu") for name in ("tiny", "small", "base+", "large")]
    assert models == sorted(models)
    assert seconds_per_frame("tiny", 512, "cpu", num_objects=3) > seconds_per_frame("tiny", 512, "cpu")
    assert seconds_per_frame("large", 1024, "cuda") < seconds_per_frame("tiny", 512, "cpu")


@pytest.mark.parametrize(
    ("preset", "frames", "device", "low", "high"),
    [
        ("balanced", 100, "cpu", 40, 80),  # 0.68 s/frame, /1.3 with native bf16
        ("fast", 10, "cpu", 2, 4),
        ("quality", 1000, "cuda", 10, 120),
        ("balanced", 0, "cpu", 0, 0),
    ],
)
def test_estimate_seconds(preset, frames, device, low, high) -> None:
    assert low <= estimate_seconds(preset, frames, device) <= high
    assert estimate_seconds(PRESETS[preset], frames, device) == estimate_seconds(preset, frames, device)


def test_estimate_unknown_preset() -> None:
    with pytest.raises(InputError, match="Unknown preset"):
        estimate_seconds("ludicrous", 10, "cpu")
