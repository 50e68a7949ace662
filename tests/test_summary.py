"""The summary of an export zip that /track (and the track_video MCP tool) returns."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tracker.summary import describe_annotations, summarize_annotations

MANIFEST = {
    "prompt": "red disc",
    "random_weights": True,
    "video": {"num_frames": 10, "fps": 8.0, "width": 192, "height": 144},
    "objects": [{"id": 1, "name": "red disc", "color": [1, 2, 3]}, {"id": 2, "name": "", "color": [4, 5, 6]}],
}
TRAJECTORIES = "object_id,frame,time,cx,cy,x,y,w,h,area,visible\n" + "".join(
    f"{oid},{f},{f / 8},1,1,0,0,2,2,{4 if visible else 0},{int(visible)}\n"
    for oid in (1, 2)
    for f in range(10)
    for visible in [oid == 1 or f < 3]
)


def make_zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


@pytest.mark.parametrize(
    ("files", "expected", "absent"),
    [
        (
            {
                "manifest.json": json.dumps(MANIFEST),
                "trajectories.csv": TRAJECTORIES,
                "flags.json": json.dumps({"version": 1, "flags": [{"frame": 3}, {"frame": 4}]}),
                "coco.json": "{}",
                "masks/00000.png": "",
            },
            [
                "Tracked 2 objects for 'red disc' through 10 frames (1.2 s at 8 fps, 192×144).",
                "Object 1 (red disc): found in 10 of 10 frames.",
                "Object 2 (object 2): found in 3 of 10 frames.",
                "2 doubtful frames are flagged for review (flags.json).",
                "untrained (random) weights",
                "The zip holds PNG masks (one per frame, pixel value = object id), COCO, trajectories, "
                "the flagged frames, the manifest",
            ],
            [],
        ),
        (  # the stand-in workspace's export: no manifest, an area column instead of visible
            {"trajectories.csv": "frame,object_id,area\n0,1,5\n1,1,0\n", "coco.json": "{}"},
            [
                "Tracked 1 object.",
                "Object 1 (object 1): found in 1 frame.",
                "The zip holds COCO, trajectories.",
            ],
            ["flagged", "untrained"],
        ),
        ({"manifest.json": "not json"}, ["Tracked 0 objects."], ["flagged"]),
        (
            {"flags.json": json.dumps({"flags": []})},
            ["No frames are flagged for review.", "the flagged frames"],
            [],
        ),
    ],
)
def test_describe_annotations(tmp_path, files, expected, absent):
    text = describe_annotations(make_zip(tmp_path / "annotations.zip", files))
    for part in expected:
        assert part in text, text
    for part in absent:
        assert part not in text, text


def test_summary_fields(tmp_path):
    summary = summarize_annotations(
        make_zip(
            tmp_path / "a.zip", {"manifest.json": json.dumps(MANIFEST), "trajectories.csv": TRAJECTORIES}
        )
    )
    assert summary.objects == {1: "red disc", 2: ""} and summary.found == {1: 10, 2: 3}
    assert summary.num_frames == 10 and summary.size == (192, 144) and summary.num_flags is None


def test_summary_says_what_discovery_found(tmp_path):
    found = [
        {"object_id": 1, "kind": "accepted", "frame": 0, "score": 25.0},
        {"object_id": 2, "kind": "discovered", "frame": 6, "score": 27.44, "first_frame": 3},
        {"object_id": 1, "kind": "reacquired", "frame": 8, "score": None, "similarity": 91.0},
    ]
    on = {**MANIFEST, "settings": {"discover": True, "discover_every": 4}}
    text = describe_annotations(
        make_zip(tmp_path / "a.zip", {"manifest.json": json.dumps({**on, "found": found})})
    )
    assert (
        "Discovery (a check every 4 frames) found object 2 at frame 6 (score 27.4), object 1 again at frame 8."
        in text
    ), text
    text = describe_annotations(
        make_zip(tmp_path / "b.zip", {"manifest.json": json.dumps({**on, "found": found[:1]})})
    )
    assert "Discovery (a check every 4 frames) found no new objects." in text, text
    off = {**MANIFEST, "settings": {"discover": False, "discover_every": 4}}
    text = describe_annotations(make_zip(tmp_path / "c.zip", {"manifest.json": json.dumps(off)}))
    assert "Discovery" not in text, text
