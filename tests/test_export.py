from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tracker import export
from tracker.errors import InputError
from tracker.export import (
    FORMATS,
    davis_palette,
    export_all,
    read_coco,
    read_png_masks,
    read_ytvis,
    write_coco,
    write_manifest,
    write_mot,
    write_png_masks,
    write_retrieval_table,
    write_trajectories_csv,
    write_ytvis,
)
from tracker.flags import Flag, read_flags_json
from tracker.results import ResultStore
from tracker.trajectories import compute_trajectories
from tracker.types import Candidate, FrameResult, TrackedObject, VideoInfo

W, H, N = 40, 30, 8


def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


OBJECTS = {
    1: TrackedObject(1, "dog", (230, 25, 75)),
    2: TrackedObject(2, "dog", (60, 180, 75)),
    3: TrackedObject(3, "ball", (0, 130, 200)),
}
INFO = VideoInfo(Path("/somewhere/private/clip.mp4"), W, H, 10.0, N, W, H)


def truth() -> dict[int, dict[int, np.ndarray]]:
    """frame → object → mask (empty masks included). Frames 6 and 7 are never stored."""
    frames: dict[int, dict[int, np.ndarray]] = {}
    for f in range(5):
        one = disc(8 + 3 * f, 10, 5)
        two = rect(20, 15 + f, 30, 25 + f) & ~one
        frames[f] = {1: one, 2: two, 3: rect(f, 0, f + 2, 3) & ~one & ~two}
    frames[2][3] = np.zeros((H, W), bool)  # ball lost on frame 2
    frames[5] = {}  # tracked, nothing there
    return frames


@pytest.fixture
def store() -> ResultStore:
    s = ResultStore(W, H, N)
    for f, objects in truth().items():
        ids = tuple(objects)
        masks = np.stack([objects[i] for i in ids]) if ids else np.zeros((0, H, W), bool)
        scores = np.asarray([0.5 + 0.1 * i for i in ids], np.float32)
        s.put(FrameResult(f, ids, masks, scores))
    return s


def visible_truth() -> dict[int, dict[int, np.ndarray]]:
    frames = {f: {o: m for o, m in objs.items() if m.any()} for f, objs in truth().items()}
    return {f: frames.get(f, {}) for f in range(N)}


def assert_same_masks(
    got: dict[int, dict[int, np.ndarray]], expected: dict[int, dict[int, np.ndarray]]
) -> None:
    assert sorted(got) == sorted(expected)
    for f in expected:
        assert sorted(got[f]) == sorted(expected[f]), f"frame {f}"
        for o in expected[f]:
            np.testing.assert_array_equal(got[f][o], expected[f][o], err_msg=f"frame {f} object {o}")


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith((".tmp", ".old"))]


# -- PNG --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "index, rgb",
    [(0, (0, 0, 0)), (1, (128, 0, 0)), (2, (0, 128, 0)), (3, (128, 128, 0)), (4, (0, 0, 128)),
     (5, (128, 0, 128)), (8, (64, 0, 0)), (255, (224, 224, 192))],
)  # fmt: skip
def test_davis_palette(index, rgb):
    palette = davis_palette()
    assert len(palette) == 768
    assert tuple(palette[3 * index : 3 * index + 3]) == rgb


def test_png_masks(store, tmp_path):
    out = write_png_masks(store, tmp_path / "masks")
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{f:05d}.png" for f in range(N)]
    expected = visible_truth()
    for f in range(N):
        with Image.open(out / f"{f:05d}.png") as image:
            assert image.mode == "P" and image.size == (W, H)
            assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
            labels = np.asarray(image)
        want = np.zeros((H, W), np.uint8)
        for o, m in expected[f].items():
            want[m] = o
        np.testing.assert_array_equal(labels, want, err_msg=f"frame {f}")
    assert no_temp_files(tmp_path)


def test_png_masks_replace_an_old_folder(store, tmp_path):
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "stale.png").write_bytes(b"old")
    write_png_masks(store, tmp_path / "masks", num_frames=3)
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert no_temp_files(tmp_path)


def test_png_masks_refuse_ids_above_255(tmp_path):
    s = ResultStore(W, H, N)
    s.put(FrameResult(0, (256,), rect(0, 0, 2, 2)[None], np.ones(1, np.float32)))
    with pytest.raises(InputError, match="1 to 255.*object 256"):
        write_png_masks(s, tmp_path / "masks")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("container", ["folder", "zip"])
def test_png_round_trip_is_exact(store, tmp_path, container):
    out = write_png_masks(store, tmp_path / "masks")
    source = out
    if container == "zip":
        source = export.write_zip(tmp_path, [out], tmp_path / "a.zip")
    assert_same_masks(read_png_masks(source), visible_truth())


def test_read_png_from_other_tools(tmp_path):
    labels = np.zeros((H, W), np.uint8)
    labels[2:5, 3:9] = 2
    labels[10:12, 10:12] = 7
    folder = tmp_path / "gt"
    folder.mkdir()
    Image.fromarray(labels).save(folder / "frame_0003.png")  # grey PNG, odd name
    palette = np.asarray(davis_palette(), np.uint8).reshape(256, 3)
    Image.fromarray(palette[labels]).save(folder / "frame_0004.png")  # RGB in DAVIS colours
    got = read_png_masks(folder)
    assert sorted(got) == [3, 4]
    for f in (3, 4):
        assert sorted(got[f]) == [2, 7]
        np.testing.assert_array_equal(got[f][2], labels == 2)
    Image.fromarray(np.full((H, W, 3), 17, np.uint8)).save(folder / "frame_0005.png")
    with pytest.raises(InputError, match="outside the DAVIS palette"):
        read_png_masks(folder)


# -- COCO -------------------------------------------------------------------------------------


def test_coco_structure_and_rle_decode_to_the_png_masks(store, tmp_path):
    path = write_coco(store, INFO, OBJECTS, tmp_path / "coco.json", categories={3: "tennis ball"})
    data = json.loads(path.read_text())
    assert [im["id"] for im in data["images"]] == list(range(1, N + 1))
    assert data["images"][3] == {
        "id": 4, "file_name": "00003.jpg", "width": W, "height": H, "frame_index": 3, "timestamp": 0.3,
    }  # fmt: skip
    assert data["info"]["video"] == "clip.mp4"  # a file name, never the private path
    assert data["categories"] == [
        {"id": 1, "name": "dog", "supercategory": "object"},
        {"id": 2, "name": "tennis ball", "supercategory": "object"},
    ]
    assert [t["name"] for t in data["tracks"]] == ["dog", "dog", "ball"]
    pngs = read_png_masks(write_png_masks(store, tmp_path / "masks"))
    seen = set()
    for ann in data["annotations"]:
        frame_idx = ann["image_id"] - 1
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)  # pycocotools reads our JSON as is
        np.testing.assert_array_equal(mask, pngs[frame_idx][ann["track_id"]])
        assert ann["area"] == int(mask.sum())
        x, y, w, h = ann["bbox"]
        assert [x, y, w, h] == [int(v) for v in mask_utils.toBbox(ann["segmentation"])]
        assert ann["iscrowd"] == 0
        assert ann["category_id"] == (2 if ann["track_id"] == 3 else 1)
        assert ann["score"] == pytest.approx(0.5 + 0.1 * ann["track_id"], abs=1e-6)
        seen.add((frame_idx, ann["track_id"]))
    assert seen == {(f, o) for f, objs in visible_truth().items() for o in objs}
    assert [ann["id"] for ann in data["annotations"]] == list(range(1, len(seen) + 1))


def test_coco_round_trip_is_exact(store, tmp_path):
    imported = read_coco(write_coco(store, INFO, OBJECTS, tmp_path / "coco.json"))
    assert_same_masks(imported.masks, visible_truth())
    assert imported.names == {1: "dog", 2: "dog", 3: "ball"}
    assert (imported.width, imported.height, imported.num_frames) == (W, H, N)
    again = imported.to_store()
    for f, objects in visible_truth().items():
        for o, m in objects.items():
            np.testing.assert_array_equal(again.mask(f, o), m)


def _polygon_coco() -> dict:
    """COCO as an image annotation tool writes it: polygons, uncompressed RLE, no track ids."""
    uncompressed = {"size": [H, W], "counts": [H * 5 + 2, 3, H - 3, 3, W * H - (H * 5 + 2 + 3 + H - 3 + 3)]}
    return {
        "images": [{"id": 10, "file_name": "a.jpg", "width": W, "height": H},
                   {"id": 11, "file_name": "b.jpg", "width": W, "height": H}],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 5, "iscrowd": 0,
             "segmentation": [[2, 2, 12, 2, 12, 8, 2, 8]]},
            {"id": 2, "image_id": 10, "category_id": 9, "iscrowd": 1, "segmentation": uncompressed},
            {"id": 3, "image_id": 10, "category_id": 9, "bbox": [0, 0, 3, 3]},  # no mask: skipped
        ],
        "categories": [{"id": 5, "name": "box"}, {"id": 9, "name": "blob"}],
    }  # fmt: skip


def test_read_coco_from_other_tools(tmp_path):
    path = tmp_path / "other.json"
    data = _polygon_coco()
    path.write_text(json.dumps(data))
    imported = read_coco(path)
    assert sorted(imported.masks) == [0, 1]  # by image id order
    assert imported.names == {5: "box", 9: "blob"}  # one object per category
    polygon = mask_utils.decode(
        mask_utils.frPyObjects(data["annotations"][0]["segmentation"], H, W)[0]
    ).astype(bool)
    np.testing.assert_array_equal(imported.masks[1][5], polygon)
    blob = imported.masks[0][9]
    assert blob.sum() == 6 and blob[2:5, 5:7].all()


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not a readable COCO"), ('{"annotations": []}', "not a COCO annotation file"),
     ('{"images": [{"id": 1, "width": 4, "height": 4}, {"id": 2, "width": 5, "height": 4}]}', "different sizes")],
)  # fmt: skip
def test_read_coco_rejects(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_coco(path)


# -- YouTube-VIS ------------------------------------------------------------------------------


def test_ytvis_structure(store, tmp_path):
    data = json.loads(write_ytvis(store, INFO, OBJECTS, tmp_path / "ytvis.json").read_text())
    (video,) = data["videos"]
    assert video == {
        "id": 1, "name": "clip", "width": W, "height": H, "length": N,
        "file_names": [f"{f:05d}.jpg" for f in range(N)],
    }  # fmt: skip
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3]
    for ann in data["annotations"]:
        assert ann["video_id"] == 1 and ann["iscrowd"] == 0
        assert len(ann["segmentations"]) == len(ann["bboxes"]) == len(ann["areas"]) == N
        for f in range(N):
            expected = visible_truth()[f].get(ann["id"])
            if expected is None:
                assert (
                    ann["segmentations"][f] is None and ann["bboxes"][f] is None and ann["areas"][f] is None
                )
            else:
                np.testing.assert_array_equal(
                    mask_utils.decode(ann["segmentations"][f]).astype(bool), expected
                )
                assert ann["areas"][f] == int(expected.sum())
    assert data["annotations"][2]["segmentations"][2] is None  # the ball was lost on frame 2
    assert {c["name"] for c in data["categories"]} == {"dog", "ball"}


def test_ytvis_round_trip_is_exact(store, tmp_path):
    imported = read_ytvis(write_ytvis(store, INFO, OBJECTS, tmp_path / "ytvis.json"))
    assert_same_masks(imported.masks, visible_truth())
    assert imported.names == {1: "dog", 2: "dog", 3: "ball"}
    assert imported.num_frames == N


def test_read_ytvis_results_format(store, tmp_path):
    data = json.loads(write_ytvis(store, INFO, OBJECTS, tmp_path / "ytvis.json").read_text())
    results = [
        {"video_id": 1, "category_id": a["category_id"], "score": 0.9, "segmentations": a["segmentations"]}
        for a in data["annotations"]
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    imported = read_ytvis(path)
    assert_same_masks(imported.masks, visible_truth())


# -- MOT, trajectories, retrieval -------------------------------------------------------------


def test_mot(store, tmp_path):
    lines = write_mot(store, INFO, tmp_path / "mot.txt").read_text().splitlines()
    rows = [line.split(",") for line in lines]
    assert all(len(row) == 10 and row[7:] == ["-1", "-1", "-1"] for row in rows)
    keys = [(int(r[0]), int(r[1])) for r in rows]
    assert keys == sorted(keys)
    assert keys == sorted((f + 1, o) for f, objs in visible_truth().items() for o in objs)  # 1-based
    first = rows[0]  # frame 0 object 1: disc at (8, 10) r 5 → columns 3..13, rows 5..15
    assert first[:7] == ["1", "1", "3", "5", "11", "11", "0.6000"]


def test_trajectories_csv(store, tmp_path):
    points = compute_trajectories(store, INFO, OBJECTS)
    path = write_trajectories_csv(points, tmp_path / "t.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["object_id", "frame", "time", "cx", "cy", "x", "y", "w", "h", "area", "visible"]
    assert len(rows) == 3 * 6
    ball_lost = next(r for r in rows if r["object_id"] == "3" and r["frame"] == "2")
    assert ball_lost == {"object_id": "3", "frame": "2", "time": "0.2", "cx": "", "cy": "", "x": "", "y": "",
                         "w": "", "h": "", "area": "0", "visible": "0"}  # fmt: skip
    dog = next(r for r in rows if r["object_id"] == "1" and r["frame"] == "0")
    assert (float(dog["cx"]), float(dog["cy"]), dog["x"], dog["w"], dog["visible"]) == (
        8.0,
        10.0,
        "3.0",
        "11.0",
        "1",
    )


def _candidates() -> list[Candidate]:
    return [
        Candidate(3, 0.3, rect(0, 0, 4, 4), (0.0, 0.0, 4.0, 4.0), 31.234567, 25.0, None),
        Candidate(1, 0.1, rect(2, 2, 5, 5), (2.0, 2.0, 5.0, 5.0), 28.0, 20.0, 3.5),
    ]


@pytest.mark.parametrize("candidates", [_candidates(), []], ids=["two", "none"])
def test_retrieval_table(tmp_path, candidates):
    json_path, csv_path = write_retrieval_table(candidates, "a dog", tmp_path / "c.json", tmp_path / "c.csv")
    rows = json.loads(json_path.read_text())
    assert rows == [c.to_row("a dog") for c in candidates]
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == list(export.RETRIEVAL_COLUMNS)
        csv_rows = list(reader)
    assert len(csv_rows) == len(candidates)
    if candidates:
        assert csv_rows[0]["negative_score"] == "" and csv_rows[1]["negative_score"] == "3.5"
        assert csv_rows[0]["score"] == "31.2346" and csv_rows[0]["query"] == "a dog"


def test_retrieval_columns_match_candidate_rows():
    assert tuple(_candidates()[0].to_row("q")) == export.RETRIEVAL_COLUMNS


# -- export_all, zip, atomicity ---------------------------------------------------------------


def test_export_all(store, tmp_path):
    overlay = tmp_path / "work" / "overlay.mp4"
    overlay.parent.mkdir()
    overlay.write_bytes(b"\x00\x00\x00\x18ftypmp42 fake video")
    manifest = {"format_version": 1, "video": {"name": "clip.mp4"}}
    out = tmp_path / "out"
    flags = [Flag(3, 1, "too_fast", 12.5, "object 1 jumped 12.5 px")]
    written = export_all(
        store, INFO, OBJECTS, out, candidates=_candidates(), query="a dog", manifest=manifest, overlay_path=overlay,
        flags=flags,
    )  # fmt: skip
    assert list(written) == [
        "masks", "coco", "ytvis", "mot", "trajectories", "candidates_json", "candidates_csv", "flags_json",
        "flags_csv", "manifest", "overlay", "zip",
    ]  # fmt: skip
    assert read_flags_json(out / "flags.json") == flags
    assert all(path.exists() and path.parent == out for path in written.values())
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert (out / "overlay.mp4").read_bytes() == overlay.read_bytes()
    with zipfile.ZipFile(written["zip"]) as archive:
        names = set(archive.namelist())
        assert archive.getinfo("masks/00000.png").compress_type == zipfile.ZIP_STORED
        assert archive.getinfo("coco.json").compress_type == zipfile.ZIP_DEFLATED
        assert archive.read("mot.txt") == (out / "mot.txt").read_bytes()
    expected = {f"masks/{f:05d}.png" for f in range(N)} | {
        "coco.json", "ytvis.json", "mot.txt", "trajectories.csv", "candidates.json", "candidates.csv",
        "flags.json", "flags.csv", "manifest.json", "overlay.mp4",
    }  # fmt: skip
    assert names == expected
    assert_same_masks(read_png_masks(written["zip"]), visible_truth())
    assert no_temp_files(out)


def test_export_subset_without_optional_inputs(store, tmp_path):
    written = export_all(
        store, INFO, None, tmp_path, formats=["coco", "mot", "candidates", "flags", "manifest"]
    )
    assert list(written) == ["coco", "mot", "zip"]
    with zipfile.ZipFile(written["zip"]) as archive:
        assert sorted(archive.namelist()) == ["coco.json", "mot.txt"]
    names = {c["name"] for c in json.loads((tmp_path / "coco.json").read_text())["categories"]}
    assert names == {"object 1", "object 2", "object 3"}


@pytest.mark.parametrize(
    "kwargs, message",
    [({"formats": ["coco", "gif"]}, "Unknown export format 'gif'"),
     ({"overlay_path": "/nonexistent/overlay.mp4", "formats": ["overlay"]}, "does not exist")],
)  # fmt: skip
def test_export_all_rejects(store, tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        export_all(store, INFO, OBJECTS, tmp_path, **kwargs)


def test_formats_registry():
    assert list(FORMATS) == [
        "masks",
        "coco",
        "ytvis",
        "mot",
        "trajectories",
        "candidates",
        "flags",
        "manifest",
        "overlay",
    ]
    assert all(fmt.description and callable(fmt.write) for fmt in FORMATS.values())


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_one(store, tmp_path, monkeypatch):
    path = write_coco(store, INFO, OBJECTS, tmp_path / "coco.json")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export.json, "dump", broken)
    with pytest.raises(OSError):
        write_coco(store, INFO, OBJECTS, path)
    with pytest.raises(OSError):
        write_manifest({"a": 1}, tmp_path / "manifest.json")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["coco.json"]


def test_size_mismatch_is_a_bug(store, tmp_path):
    other = VideoInfo(Path("clip.mp4"), W * 2, H, 10.0, N, W * 2, H)
    with pytest.raises(ValueError, match="results are 40×30 but the video is 80×30"):
        write_mot(store, other, tmp_path / "mot.txt")
