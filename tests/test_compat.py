"""tracker.compat: the pure-PyTorch NMS fallback and keeping torchvision importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tracker.compat import ensure_torchvision, nms_reference

REPO = Path(__file__).resolve().parents[1]


def brute_force_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """Greedy NMS written the obvious way, in plain Python."""

    def iou(a: list[float], b: list[float]) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
        area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
        union = area_a + area_b - inter
        return inter / union if union > 0 else 0.0

    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[j]) <= threshold for j in keep):
            keep.append(i)
    return keep


def random_boxes(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, generator=generator) * 100
    sizes = torch.rand(count, 2, generator=generator) * 40 + 1
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(count, generator=generator)  # distinct with probability 1
    return boxes, scores


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_matches_brute_force_on_random_boxes(seed: int, threshold: float) -> None:
    boxes, scores = random_boxes(60, seed)
    kept = nms_reference(boxes, scores, threshold)
    assert kept.dtype == torch.int64
    assert kept.tolist() == brute_force_nms(boxes.tolist(), scores.tolist(), threshold)


@pytest.mark.parametrize(
    ("boxes", "scores", "threshold", "expected"),
    [
        ([], [], 0.5, []),
        ([[0, 0, 10, 10]], [0.3], 0.5, [0]),
        ([[0, 0, 10, 10]] * 4, [0.5] * 4, 0.5, [0]),  # all identical: the first (stable order) survives
        ([[0, 0, 10, 10]] * 3, [0.1, 0.9, 0.5], 0.5, [1]),  # identical boxes: the best score survives
        ([[0, 0, 10, 10]] * 3, [0.1, 0.9, 0.5], 1.0, [1, 2, 0]),  # IoU 1 is not > 1: all kept, by score
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.0, [0]),  # any overlap suppresses at 0
        ([[0, 0, 10, 10], [10, 0, 20, 10]], [0.9, 0.8], 0.0, [0, 1]),  # touching edges: IoU 0, kept
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.8, 0.9], 1 / 3, [1, 0]),  # IoU exactly 1/3: kept
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.8, 0.9], 0.33, [1]),
        ([[3, 3, 3, 3], [3, 3, 3, 3]], [0.9, 0.8], 0.0, [0, 1]),  # zero-area boxes never overlap
    ],
)
def test_edge_cases(boxes, scores, threshold, expected) -> None:
    kept = nms_reference(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float32),
        threshold,
    )
    assert kept.tolist() == expected


def test_integer_and_double_inputs() -> None:
    boxes, scores = random_boxes(30, 7)
    expected = nms_reference(boxes, scores, 0.5)
    assert torch.equal(nms_reference(boxes.double(), scores.double(), 0.5), expected)
    rounded = boxes.round()
    assert torch.equal(nms_reference(rounded.int(), scores, 0.5), nms_reference(rounded, scores, 0.5))


def test_torchvision_ops_work_after_ensure() -> None:
    ensure_torchvision()
    import torchvision

    boxes, scores = random_boxes(80, 11)
    assert torch.equal(torchvision.ops.nms(boxes, scores, 0.5), nms_reference(boxes, scores, 0.5))
    classes = torch.arange(80) % 3
    kept = torchvision.ops.batched_nms(boxes, scores, classes, 0.5)
    expected = []
    for label in range(3):
        members = torch.nonzero(classes == label).flatten()
        expected += members[nms_reference(boxes[members], scores[members], 0.5)].tolist()
    assert sorted(kept.tolist()) == sorted(expected)
    assert scores[kept].tolist() == sorted(scores[kept].tolist(), reverse=True)  # by decreasing score
    assert torchvision.ops.nms(torch.empty(0, 4), torch.empty(0), 0.5).shape == (0,)


def test_ensure_is_idempotent() -> None:
    assert ensure_torchvision() == ensure_torchvision()


FRESH_PROCESS_STEPS = (
    "import open_clip; open_clip.get_tokenizer('ViT-B-32')(['a dog'])",
    "import torchvision.ops; torchvision.ops.nms(torch.tensor([[0., 0., 1., 1.]] * 3), torch.rand(3), 0.5)",
    "from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator",
    "from segment_anything import SamAutomaticMaskGenerator",
)


def test_imports_in_a_fresh_process() -> None:
    """What the web app and CLI do at start: ensure first, then import everything that uses torchvision.

    One process for all steps (importing torch costs seconds); each step prints its number so a
    failure names the step.
    """
    lines = ["import torch", "from tracker.compat import ensure_torchvision", "ensure_torchvision()"]
    for number, step in enumerate(FRESH_PROCESS_STEPS):
        lines += [step, f"print('step {number} ok', flush=True)"]
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-2000:]}"
    assert done.stdout.count(" ok") == len(FRESH_PROCESS_STEPS)
