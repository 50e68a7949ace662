from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tracker.errors import ProjectError
from tracker.project import (
    FORMAT_VERSION,
    Project,
    edit_to_dict,
    model_record,
    package_versions,
    prompt_from_dict,
    prompt_to_dict,
    video_fingerprint,
)
from tracker.results import ResultStore
from tracker.settings import Settings
from tracker.types import FramePrompt, FrameResult, TrackedObject, VideoInfo

W, H, N = 32, 24, 6


@dataclasses.dataclass
class FakeEdit:
    """Shaped like tracker.workspace.Edit."""

    kind: str
    object_id: int
    frame_idx: int | None = None
    prompt: FramePrompt | None = None
    name: str | None = None
    color: tuple[int, int, int] | None = None


def brushed() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[3:9, 4:15] = True
    mask[5, 20] = True
    return mask


HISTORY = [
    FakeEdit("object", 1, name="red shoe", color=(230, 25, 75)),
    FakeEdit(
        "prompt", 1, 2, FramePrompt(1, 2, [(10.5, 4.0), (3.0, 20.25)], [1, 0], box=(1.0, 2.0, 30.0, 20.0))
    ),
    FakeEdit("object", 2, name="ball", color=(0, 130, 200)),
    FakeEdit("prompt", 2, 4, FramePrompt(2, 4, mask=brushed())),
    FakeEdit("rename", 1, name="left shoe"),
    FakeEdit("clear", 1, 2),
]


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(50_000))
    return path


def info_for(path: Path, **changes) -> VideoInfo:
    base = VideoInfo(path, W, H, 25.0, N, W * 2, H * 2)
    return dataclasses.replace(base, **changes)


@pytest.fixture
def workspace(video):
    return SimpleNamespace(
        info=info_for(video),
        settings=Settings(
            sam2_model="tiny", image_size=512, random_weights=True, checkpoints_dir=Path("/ckpt")
        ),
        objects={1: TrackedObject(1, "left shoe", (230, 25, 75)), 2: TrackedObject(2, "ball", (0, 130, 200))},
        history=lambda: list(HISTORY),
        prompt_text="red shoe",
        negative_text="a sock",
    )


@pytest.fixture
def store() -> ResultStore:
    s = ResultStore(W, H, N)
    for f in range(N):
        masks = np.zeros((2, H, W), bool)
        masks[0, f : f + 5, 2:9] = True
        masks[1, 10:12, f : f + 3] = f != 3
        s.put(FrameResult(f, (1, 2), masks, np.asarray([0.9, 0.4], np.float32)))
    return s


def test_manifest_contents(workspace):
    project = Project.from_workspace(workspace)
    data = json.loads(json.dumps(project.to_dict()))  # JSON-ready
    assert data["format_version"] == FORMAT_VERSION
    assert data["video"]["name"] == "clip.mp4"  # the file name, not the path
    assert str(workspace.info.path.parent) not in json.dumps(data["video"])
    assert data["video"]["fingerprint"] == video_fingerprint(workspace.info.path)
    assert data["video"]["size_bytes"] == 50_000
    assert (data["video"]["num_frames"], data["video"]["width"], data["video"]["height"]) == (N, W, H)
    assert data["settings"]["image_size"] == 512 and data["settings"]["checkpoints_dir"] == "/ckpt"
    assert data["models"]["sam2"] == {"name": "tiny", "checkpoint_sha256": "random"}
    assert data["random_weights"] is True
    assert (data["prompt"], data["negative_prompt"]) == ("red shoe", "a sock")
    assert data["objects"] == [
        {"id": 1, "name": "left shoe", "color": [230, 25, 75]},
        {"id": 2, "name": "ball", "color": [0, 130, 200]},
    ]
    assert [e["kind"] for e in data["history"]] == ["object", "prompt", "object", "prompt", "rename", "clear"]
    assert data["history"][1] == {
        "kind": "prompt", "object_id": 1, "frame_idx": 2, "points": [[10.5, 4.0], [3.0, 20.25]], "labels": [1, 0],
        "box": [1.0, 2.0, 30.0, 20.0], "mask": None,
    }  # fmt: skip
    assert data["history"][3]["mask"]["size"] == [H, W] and isinstance(
        data["history"][3]["mask"]["counts"], str
    )
    assert data["thresholds"] == {"threshold": 20.0, "overlap_iou": 0.5, "take_best": False}
    assert data["packages"]["numpy"] == np.__version__
    assert set(data["packages"]) >= {"torch", "sam2", "open_clip_torch", "numpy"}
    assert data["created"].endswith("+00:00") and data["tool_version"]


@pytest.mark.parametrize(
    "name, with_results", [("p.json", False), ("p.json", True), ("p.tvt", False), ("p.tvt", True)]
)
def test_save_load_round_trip(workspace, store, tmp_path, name, with_results):
    project = Project.from_workspace(workspace)
    path = project.save(tmp_path / "saved" / name, store=store if with_results else None)
    assert [p.name for p in path.parent.iterdir()] == [name]  # atomic: no temporary files left
    loaded = Project.load(path)
    assert loaded == project
    assert loaded.to_dict() == project.to_dict()
    if with_results:
        assert loaded.results() == store
        for f in range(N):
            np.testing.assert_array_equal(loaded.results().get(f).masks, store.get(f).masks)
    else:
        assert loaded.results() is None
    if name.endswith(".tvt"):
        with zipfile.ZipFile(path) as archive:
            assert sorted(archive.namelist()) == (
                ["manifest.json", "results.jsonl"] if with_results else ["manifest.json"]
            )


def test_edits_decode_back_to_prompts(workspace):
    project = Project.from_dict(json.loads(json.dumps(Project.from_workspace(workspace).to_dict())))
    edits = project.edits()
    assert [(e["kind"], e["object_id"], e["frame_idx"]) for e in edits] == [
        ("object", 1, None), ("prompt", 1, 2), ("object", 2, None), ("prompt", 2, 4), ("rename", 1, None),
        ("clear", 1, 2),
    ]  # fmt: skip
    assert edits[0]["name"] == "red shoe" and edits[0]["color"] == [230, 25, 75]
    first, second = edits[1]["prompt"], edits[3]["prompt"]
    assert (first.points, first.labels, first.box, first.mask) == (
        [(10.5, 4.0), (3.0, 20.25)], [1, 0], (1.0, 2.0, 30.0, 20.0), None,
    )  # fmt: skip
    assert second.mask.dtype == bool
    np.testing.assert_array_equal(second.mask, brushed())


@pytest.mark.parametrize(
    "prompt",
    [
        FramePrompt(1, 0, [(1.0, 2.0)], [1]),
        FramePrompt(3, 5, box=(0.0, 0.0, 5.5, 6.5)),
        FramePrompt(2, 1, mask=brushed()),
    ],
    ids=["click", "box", "mask"],
)
def test_prompt_round_trip(prompt):
    back = prompt_from_dict(json.loads(json.dumps(prompt_to_dict(prompt))))
    assert (back.object_id, back.frame_idx, back.points, back.labels, back.box) == (
        prompt.object_id, prompt.frame_idx, prompt.points, prompt.labels, prompt.box,
    )  # fmt: skip
    if prompt.mask is None:
        assert back.mask is None
    else:
        np.testing.assert_array_equal(back.mask, prompt.mask)
    assert edit_to_dict(FakeEdit("prompt", prompt.object_id, prompt.frame_idx, prompt))["kind"] == "prompt"


def test_tracked_objects_and_frame_prompts(workspace):
    project = Project.from_workspace(workspace)
    assert project.tracked_objects() == list(workspace.objects.values())
    assert [p.frame_idx for p in project.frame_prompts()] == [2, 4]


def _valid(workspace) -> dict:
    return Project.from_workspace(workspace).to_dict()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, d: p.write_text("{ not json"), r"p\.json is not a project file \(not valid JSON at line 1"),
        (lambda p, d: p.write_bytes(b"\xff\xfe\x00garbage"), "not a project file"),
        (lambda p, d: p.write_text("[1, 2]"), "expected a JSON object"),
        (lambda p, d: p.write_text(json.dumps({k: v for k, v in d.items() if k not in ("video", "history")})),
         "missing video, history"),
        (lambda p, d: p.write_text(json.dumps({**d, "format_version": FORMAT_VERSION + 1})),
         f"newer version of the tracker \\(project format {FORMAT_VERSION + 1}, this one reads up to {FORMAT_VERSION}\\)"),
        (lambda p, d: p.write_text(json.dumps({**d, "format_version": "one"})), "invalid format_version"),
        (lambda p, d: p.write_text(json.dumps({**d, "objects": {"1": "x"}})), "objects has the wrong type"),
        (lambda p, d: p.write_text(json.dumps({**d, "objects": [{"name": "x"}]})), "object 1 needs an id"),
        (lambda p, d: p.write_text(json.dumps({**d, "format": "labelme"})), "its format is 'labelme'"),
        (lambda p, d: p.write_text(json.dumps({**d, "results": {"inline": {"format": "tvt-results"}}})), "corrupt"),
    ],
    ids=["not-json", "binary", "not-object", "missing", "newer", "bad-version", "wrong-type", "bad-object",
         "other-format", "bad-inline-results"],
)  # fmt: skip
def test_load_rejects_bad_json(workspace, tmp_path, make, message):
    path = tmp_path / "p.json"
    make(path, _valid(workspace))
    with pytest.raises(ProjectError, match=message) as info:
        Project.load(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, d: p.write_bytes(b"PK\x03\x04 truncated zip"), "damaged"),
        (lambda p, d: _zip(p, {"other.txt": "x"}), "has no manifest.json"),
        (lambda p, d: _zip(p, {"manifest.json": "{"}), "not valid JSON"),
        (lambda p, d: _zip(p, {"manifest.json": json.dumps({**d, "results": {"file": "results.jsonl"}})}),
         "results file results.jsonl is missing"),
        (lambda p, d: _zip(p, {"manifest.json": json.dumps({**d, "results": {"file": "r"}}), "r": "junk"}),
         "not a tracked-results file"),
        (lambda p, d: _zip(p, {"manifest.json": json.dumps({**d, "format_version": 99})}), "newer version"),
    ],
    ids=["truncated", "no-manifest", "bad-manifest", "missing-results", "bad-results", "newer"],
)  # fmt: skip
def test_load_rejects_bad_zip(workspace, tmp_path, make, message):
    path = tmp_path / "p.tvt"
    make(path, _valid(workspace))
    with pytest.raises(ProjectError, match=message):
        Project.load(path)


def _zip(path: Path, members: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)


def test_load_missing_file(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        Project.load(tmp_path / "nope.tvt")


def test_results_must_fit_the_video(workspace, tmp_path):
    path = Project.from_workspace(workspace).save(tmp_path / "p.tvt", store=ResultStore(W + 1, H, N))
    with pytest.raises(ProjectError, match="do not match"):
        Project.load(path)


def test_check_video(workspace, video, tmp_path):
    project = Project.from_workspace(workspace)
    project.check_video(info_for(video))  # the same file: fine
    project.check_video(info_for(tmp_path / "moved.mp4"), fingerprint=video_fingerprint(video))
    other = tmp_path / "other.mp4"
    other.write_bytes(b"another video" * 100)
    with pytest.raises(ProjectError, match="made for clip.mp4, not for other.mp4"):
        project.check_video(info_for(other))


@pytest.mark.parametrize(
    "changes, message",
    [({"num_frames": N + 1}, f"{N} frames, this one has {N + 1}"),
     ({"width": W // 2, "height": H // 2}, f"{W}×{H} working size, this one is {W // 2}×{H // 2}"),
     ({"start_frame": 10}, "start frame 0, this one starts at 10")],
)  # fmt: skip
def test_check_video_rejects_other_decodes(workspace, video, changes, message):
    project = Project.from_workspace(workspace)
    with pytest.raises(ProjectError, match=message):
        project.check_video(info_for(video, **changes))


def test_video_fingerprint(tmp_path):
    head = b"x" * 100
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(head + b"tail one")
    b.write_bytes(head + b"tail two")  # same head and size: same fingerprint (by design, cheap)
    c.write_bytes(head + b"longer tail")
    assert video_fingerprint(a, head_bytes=50) == video_fingerprint(b, head_bytes=50)
    assert video_fingerprint(a, head_bytes=50) != video_fingerprint(c, head_bytes=50)
    assert video_fingerprint(a) != video_fingerprint(b)
    assert video_fingerprint(a).startswith(f"{a.stat().st_size}:")
    with pytest.raises(ProjectError, match="Cannot read the video"):
        video_fingerprint(tmp_path / "missing.mp4")


def test_model_record(tmp_path):
    checkpoint = tmp_path / "sam2.pt"
    checkpoint.write_bytes(b"weights")
    assert model_record("tiny", checkpoint, random_weights=True) == {
        "name": "tiny",
        "checkpoint_sha256": "random",
    }
    import hashlib

    expected = hashlib.sha256(b"weights").hexdigest()
    assert model_record("tiny", checkpoint, random_weights=False)["checkpoint_sha256"] == expected
    assert model_record("tiny", tmp_path / "missing.pt", random_weights=False)["checkpoint_sha256"] is None


def test_versions_never_import_torch():
    code = (
        "import sys, tracker.project as p; v = p.package_versions(); "
        "assert 'torch' not in sys.modules, 'torch imported'; print(v['numpy'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == package_versions()["numpy"]


def test_export_manifest_is_a_project(workspace, tmp_path):
    from tracker.export import write_manifest

    project = Project.from_workspace(workspace)
    path = write_manifest(project, tmp_path / "manifest.json")
    assert Project.load(path) == project


def test_real_video_export_and_project_round_trip(tmp_path):
    """An mp4 from tests/synthetic.py: exports read back exactly, projects check the real file."""
    video_module = pytest.importorskip("tracker.video")
    from tests.synthetic import make_video
    from tracker.export import export_all, read_coco, read_png_masks, read_ytvis

    truth = make_video(tmp_path / "shapes.mp4", num_frames=8, width=96, height=64)
    info = video_module.probe(tmp_path / "shapes.mp4")
    store = ResultStore(info.width, info.height, info.num_frames)
    for frame_idx, masks in enumerate(truth):
        store.put(FrameResult(frame_idx, (1, 2), np.stack(masks), np.asarray([0.9, 0.8], np.float32)))
    objects = {1: TrackedObject(1, "disc", (1, 2, 3)), 2: TrackedObject(2, "square", (4, 5, 6))}
    project = Project.create(info, Settings(random_weights=True), objects, prompt="a disc")
    written = export_all(store, info, objects, tmp_path / "out", manifest=project)
    for masks in (
        read_png_masks(written["zip"]),
        read_coco(written["coco"]).masks,
        read_ytvis(written["ytvis"]).masks,
    ):
        for frame_idx, frame_truth in enumerate(truth):
            for index, mask in enumerate(frame_truth):
                np.testing.assert_array_equal(masks[frame_idx][index + 1], mask)
    Project.load(written["manifest"]).check_video(info)
    loaded = Project.load(project.save(tmp_path / "shapes.tvt", store=store))
    loaded.check_video(video_module.probe(tmp_path / "shapes.mp4"))
    assert loaded.results() == store
    make_video(tmp_path / "other.mp4", num_frames=8, width=96, height=64, shapes=())
    with pytest.raises(ProjectError, match="made for shapes.mp4, not for other.mp4"):
        loaded.check_video(video_module.probe(tmp_path / "other.mp4"))
