"""End to end: ``python -m tracker`` on a generated video, real models with random weights."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.synthetic import make_video
from tracker.cli import main

pytestmark = pytest.mark.slow

FAST = ["--random-weights", "--device", "cpu", "--image-size", "256", "--top-frames", "1", "--offline"]


@pytest.fixture(scope="module")
def shapes_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "shapes.mp4"
    make_video(path, num_frames=24, width=320, height=240, fps=12)
    return path


@pytest.fixture(scope="module")
def tracked(shapes_video, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    code = main(
        [
            "-q",
            "track",
            str(shapes_video),
            "--prompt",
            "a red disc",
            "--out",
            str(out),
            "--max-objects",
            "2",
            *FAST,
        ]
    )
    assert code == 0
    return out


def test_track_writes_every_output(tracked):
    for name in [
        "overlay.mp4",
        "coco.json",
        "ytvis.json",
        "mot.txt",
        "trajectories.csv",
        "candidates.json",
        "candidates.csv",
        "flags.json",
        "flags.csv",
        "manifest.json",
        "annotations.zip",
    ]:
        assert (tracked / name).is_file(), name
    members = set(zipfile.ZipFile(tracked / "annotations.zip").namelist())
    assert {"flags.json", "flags.csv", "overlay.mp4", "masks/00000.png"} <= members
    pngs = sorted((tracked / "masks").glob("*.png"))
    assert [p.name for p in pngs[:2]] == ["00000.png", "00001.png"]
    assert len(pngs) == 24


def test_overlay_matches_source(tracked, shapes_video):
    from tracker.video import probe

    src, overlay = probe(shapes_video), probe(tracked / "overlay.mp4")
    assert overlay.num_frames == src.num_frames == 24
    assert overlay.fps == pytest.approx(src.fps, rel=1e-3)
    assert (overlay.width, overlay.height) == (src.width, src.height)
    assert overlay.codec == "h264"


def _png_masks(folder: Path) -> dict[int, np.ndarray]:
    return {int(p.stem): np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def test_coco_rle_decodes_to_png_masks(tracked):
    coco = json.loads((tracked / "coco.json").read_text())
    pngs = _png_masks(tracked / "masks")
    images = {img["id"]: img for img in coco["images"]}
    seen = 0
    for ann in coco["annotations"]:
        frame = images[ann["image_id"]]["frame_index"]
        rle = dict(ann["segmentation"])
        rle["counts"] = rle["counts"].encode()
        decoded = mask_utils.decode(rle).astype(bool)
        assert np.array_equal(decoded, pngs[frame] == ann["track_id"]), (frame, ann["track_id"])
        assert ann["iscrowd"] == 0
        seen += 1
    # every object pixel in the PNGs is covered by an annotation
    total_png_objects = sum(len(set(np.unique(m)) - {0}) for m in pngs.values())
    assert seen == total_png_objects


def test_trajectories_are_mask_centroids(tracked):
    pngs = _png_masks(tracked / "masks")
    with open(tracked / "trajectories.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    checked = 0
    for row in rows:
        mask = pngs[int(row["frame"])] == int(row["object_id"])
        if not mask.any():
            assert row["cx"] in ("", "nan", "NaN")
            continue
        ys, xs = np.nonzero(mask)
        assert float(row["cx"]) == pytest.approx(xs.mean(), abs=1e-2)
        assert float(row["cy"]) == pytest.approx(ys.mean(), abs=1e-2)
        assert int(float(row["area"])) == int(mask.sum())
        checked += 1
    assert checked > 0


def test_manifest_says_random_weights(tracked):
    manifest = json.loads((tracked / "manifest.json").read_text())
    text = json.dumps(manifest)
    assert "random" in text
    assert manifest["prompt"] == "a red disc"


def test_missing_weights_one_line_no_traceback(shapes_video, tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    env = {
        "TRACKER_CHECKPOINTS": str(empty),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracker",
            "track",
            str(shapes_video),
            "--prompt",
            "a disc",
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
            "--offline",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[1],
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    line = error_lines[0]
    assert "python -m tracker download" in line
    assert str(empty) in line
    assert ".pt" in line or ".safetensors" in line or ".bin" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prompt", "   "], "Type what to follow"),
        (["--prompt", "x", "--image-size", "250"], "multiple of 32"),
    ],
)
def test_bad_arguments_exit_cleanly(shapes_video, tmp_path, capsys, args, needle):
    code = main(
        ["track", str(shapes_video), "--out", str(tmp_path), *args, "--random-weights", "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert needle in err


def test_not_a_video(tmp_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    code = main(["candidates", str(fake), "--prompt", "x", "--random-weights"])
    assert code == 2
    assert "error:" in capsys.readouterr().err


def _write_masks(folder: Path, shift: int = 0) -> None:
    from tracker.export import write_png_masks
    from tracker.results import ResultStore
    from tracker.types import FrameResult

    store = ResultStore(64, 48, 6)
    for f in range(6):
        mask = np.zeros((48, 64), bool)
        mask[10:30, 10 + f + shift : 30 + f + shift] = True
        store.put(FrameResult(f, (1,), mask[None], np.ones(1, np.float32)))
    write_png_masks(store, folder)


def test_eval_identical_is_perfect_and_shift_is_not(tmp_path, capsys):
    gt, same, shifted = tmp_path / "gt", tmp_path / "same", tmp_path / "shifted"
    _write_masks(gt)
    _write_masks(same)
    _write_masks(shifted, shift=4)
    assert main(["eval", str(same), str(gt), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["overall"]["jf_mean"] == pytest.approx(1.0)
    capsys.readouterr()
    assert main(["eval", str(shifted), str(gt)]) == 0
    table = capsys.readouterr().out
    assert "J&F" in table
    # a 20×20 square shifted by 4 px: IoU = 16·20 / (24·20) = 2/3
    assert main(["eval", str(shifted), str(gt), "--json", str(tmp_path / "s.json")]) == 0
    shifted_report = json.loads((tmp_path / "s.json").read_text())
    assert shifted_report["overall"]["j_mean"] == pytest.approx(2 / 3, abs=1e-6)
