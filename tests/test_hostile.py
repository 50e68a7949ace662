"""Hostile files through the library (issue 9): refused before anything big is decoded.

Each crafted file (tests/hostile.py) is opened in a child process under an address-space limit
(``RLIMIT_AS``), so a regression that allocates what the file declares fails the test (the child
runs out of memory or crashes) instead of the machine. Each must be refused with one sentence,
with a peak resident size under ``PEAK_MB``.
"""

from __future__ import annotations

import os
import stat
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests import hostile
from tracker.annotations import read_annotations
from tracker.errors import InputError, ProjectError, TrackerError
from tracker.masks import encode_mask
from tracker.project import Project
from tracker.results import ResultStore
from tracker.types import FrameResult, VideoInfo
from tracker.untrusted import check_rle, rle_runs

LIMIT_MB = 1024  # address space of the child: numpy, Pillow and pycocotools fit in a third of it
PEAK_MB = 200  # resident peak allowed while refusing any file of the corpus (measured: under 45)

# the bombs at a size that still inflates 1000-fold but is quick to write
SMALLER = {
    "project_zip_bomb": lambda folder, video: hostile.project_zip_bomb(folder, video, size=300 << 20),
    "project_manifest_bomb": lambda folder, video: hostile.project_manifest_bomb(
        folder, video, size=64 << 20
    ),
    "many_pngs": lambda folder, video: hostile.many_pngs(folder, video, count=500),
}


@pytest.mark.parametrize("name", list(hostile.CORPUS))
def test_each_hostile_file_is_refused_in_one_sentence_within_bounds(name, tmp_path):
    case = hostile.CORPUS[name]
    path = SMALLER.get(name, case.make)(tmp_path, case.video)
    result = hostile.run_probe(name, path, LIMIT_MB)
    assert result["outcome"] == "refused", result
    message = result["message"]
    assert "\n" not in message and "Traceback" not in message and message.endswith("."), message
    assert path.name.split(".")[0] in message or "mask" in message or "manifest" in message, message
    assert result["peak_mb"] < PEAK_MB, result


def test_a_results_member_that_inflates_too_far_is_refused_by_its_ratio(tmp_path):
    path = hostile.project_zip_bomb(tmp_path, hostile.VIDEO, size=100 << 20)  # under the size cap
    with pytest.raises(ProjectError, match="fold"):
        Project.load(path, _info(hostile.VIDEO))


# -- the checks themselves ---------------------------------------------------------------------
def _info(video: hostile.Video, path: Path = Path("clip.mp4")) -> VideoInfo:
    return VideoInfo(path, video.width, video.height, 25.0, video.num_frames, video.width, video.height)


def test_rle_runs_match_pycocotools_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(100):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((height, width)) < rng.random()
        rle = encode_mask(mask)
        runs = rle_runs(rle["counts"])
        flat = mask.flatten(order="F").astype(np.int8)
        changes = np.flatnonzero(np.diff(flat)) + 1
        edges = np.concatenate(([0], changes, [flat.size]))
        expected = np.diff(edges).tolist()
        if flat[0]:
            expected = [0, *expected]
        assert runs.tolist() == expected
        check_rle(rle, (height, width), "random")


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ({"size": [48, 64], "counts": hostile._rle_counts([0, 2_000_000_000])}, "runs do not cover"),
        ({"size": [48, 64], "counts": hostile._rle_counts([10])}, "runs do not cover"),
        ({"size": [48, 64], "counts": "0" * 20 + "\x7f"}, "damaged"),
        ({"size": [48, 64], "counts": [3072, -5, 5]}, "runs do not cover"),
        ({"size": [300000, 300000], "counts": "0"}, "300000×300000"),
        ({"size": "big", "counts": "0"}, "no valid size"),
    ],
)  # fmt: skip
def test_rle_checks(segmentation, message):
    with pytest.raises(InputError, match=message):
        check_rle(segmentation, (48, 64), "a file")


def test_legitimate_annotations_still_import_and_rescale(tmp_path):
    from tracker.export import write_coco, write_png_masks

    video = hostile.Video(64, 48, 6)
    store = ResultStore(128, 96, video.num_frames)  # made at twice the size: rescaled
    mask = np.zeros((96, 128), bool)
    mask[20:60, 30:90] = True
    for frame_idx in range(video.num_frames):
        store.put(FrameResult(frame_idx, (1,), mask[None], np.ones(1, np.float32)))
    from tracker.types import TrackedObject

    objects = {1: TrackedObject(1, "box", (255, 0, 0))}
    coco = write_coco(store, _info(hostile.Video(128, 96, 6)), objects, tmp_path / "coco.json")
    for source in (coco, write_png_masks(store, tmp_path / "masks")):
        imported = read_annotations(source, _info(video))
        assert imported.object_ids == [1] and sorted(imported.rles) == list(range(video.num_frames))
        rle = imported.rles[3][1]
        assert list(rle["size"]) == [48, 64]
        from tracker.masks import decode_rle

        assert decode_rle(rle)[10:30, 15:45].all() and not decode_rle(rle)[:9].any()


def test_a_saved_project_opens_against_its_video_and_not_against_another(tmp_path):
    video = hostile.VIDEO
    store = ResultStore(video.width, video.height, video.num_frames)
    store.put(FrameResult(0, (1,), np.ones((1, video.height, video.width), bool), np.ones(1, np.float32)))
    project = Project({"name": "clip.mp4"}, objects=[{"id": 1, "name": "x"}])
    path = project.save(tmp_path / "p.tvt", store=store)
    assert Project.load(path, _info(video)).results() == store
    with pytest.raises(ProjectError, match="do not match"):
        Project.load(path, _info(hostile.Video(video.width, video.height, video.num_frames + 1)))


# -- the open work stays as it was (the real workspace) ---------------------------------------------
@pytest.mark.slow
def test_hostile_files_leave_the_open_work_unchanged(tmp_path, small_video):
    from tests.conftest import shared_hub
    from tracker.settings import Settings
    from tracker.workspace import Workspace

    settings = Settings(random_weights=True, device="cpu", image_size=256, top_frames=1, offline=True)
    with Workspace.open(small_video, shared_hub(), settings, tmp_path / "work") as ws:
        obj = ws.add_object("disc")
        ws.add_click(obj.object_id, 2, 40.0, 40.0)
        before = (ws.history(), dict(ws.objects), ws.store.copy())
        opened = hostile.Video(ws.info.width, ws.info.height, ws.info.num_frames)
        for name in ("coco_huge_rle", "ytvis_length", "davis_many_ids", "png_bomb", "coco_rle_overflow"):
            path = hostile.CORPUS[name].make(tmp_path, hostile.BIG_VIDEO if "davis" in name else opened)
            with pytest.raises(TrackerError):
                ws.import_annotations(path)
            assert (ws.history(), dict(ws.objects), ws.store) == before, name
        for name in ("project_huge_rle", "project_forged_video", "project_forged_small", "project_deep_json"):
            with pytest.raises(TrackerError):
                ws.load_project(hostile.CORPUS[name].make(tmp_path, opened))
            assert (ws.history(), dict(ws.objects), ws.store) == before, name


# -- the temp root and the tabs' folders ---------------------------------------------------------------
def test_traversal_session_hashes_stay_directly_under_the_temp_root(tmp_path):
    from ui.state import SessionStore

    store = SessionStore(tmp_path / "root")
    for hash_ in ("/../../../x/", "../../etc", "a/b", "\x00", "session-" + "a" * 300):
        session = store.get(None, hash_)
        assert not session.folder.exists()  # nothing made until the tab needs it
        folder = session.workdir
        assert folder.parent == tmp_path / "root" and folder.is_dir()
        assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
        assert hash_.strip("/") not in folder.name
    assert stat.S_IMODE(os.lstat(tmp_path / "root").st_mode) == 0o700
    store.close_all()


def test_clean_up_removes_a_planted_link_but_never_its_target(tmp_path):
    from ui.state import SessionStore

    target = tmp_path / "precious"
    target.mkdir()
    (target / "data.bin").write_bytes(b"\0" * 4096)
    root = tmp_path / "root"
    store = SessionStore(root, stray_age=0, max_bytes=1)
    store.get(None, "tab").workdir  # noqa: B018 - makes the root and one folder
    (root / "session-planted").symlink_to(target)
    (root / "file-link").symlink_to(target / "data.bin")
    time.sleep(0.01)
    store.sweep()
    assert (target / "data.bin").stat().st_size == 4096
    assert not os.path.lexists(root / "session-planted") and not os.path.lexists(root / "file-link")
    store.close_all()


def test_a_temp_root_others_can_write_to_is_refused(tmp_path):
    from ui.state import ensure_private_root

    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(InputError, match="other users"):
        ensure_private_root(root)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    with pytest.raises(InputError, match="link"):
        ensure_private_root(link)
    assert ensure_private_root(tmp_path / "fresh") == tmp_path / "fresh"


def test_unload_marks_the_tab_and_further_use_keeps_its_work(tmp_path):
    from ui.state import UNLOAD_GRACE_SECONDS, SessionStore

    store = SessionStore(tmp_path / "root")
    session = store.get(None, "tab")
    (session.workdir / "video.mp4").write_bytes(b"work")
    store.unload("tab")  # the heartbeat connection ended
    assert not session.closed and (session.workdir / "video.mp4").exists()
    assert store.get(None, "tab") is session and session.unloaded_at is None  # the tab came back
    store.sweep(now=time.time() + UNLOAD_GRACE_SECONDS + 60)
    assert not session.closed  # used after the drop: the unload mark is gone
    store.unload("tab")
    later = time.time() + UNLOAD_GRACE_SECONDS + 60
    session.last_used = time.time() - 10
    store.sweep(now=later)
    assert session.closed and not session.folder.exists()  # gone for an hour: the work goes


def test_sweeps_are_throttled_and_measure_only_what_changed(tmp_path, monkeypatch):
    import ui.state as state

    measured: list[str] = []
    real = state.folder_size
    monkeypatch.setattr(state, "folder_size", lambda path: measured.append(Path(path).name) or real(path))
    store = state.SessionStore(tmp_path / "root", max_bytes=10**9)
    sessions = [store.get(None, f"tab{i}") for i in range(50)]
    for session in sessions:
        session.workdir  # noqa: B018
    store.sweep()
    first = len(measured)
    assert first >= 50
    sessions[0].touch()
    store.sweep(now=time.time() + 1)
    assert len(measured) - first == 1  # only the tab used since
    started = time.perf_counter()
    for i in range(200):
        store.get(None, f"new{i}")  # new tabs: no folder, no sweep within the interval
    assert len(measured) - first == 1 and time.perf_counter() - started < 0.5
    store.close_all()


def test_results_follow_the_umask(tmp_path):
    from tracker.results import atomic_write

    old = os.umask(0o077)
    try:
        with atomic_write(tmp_path / "out.json") as handle:
            handle.write("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o600


def test_zip_member_count_is_capped(tmp_path):
    from tracker.untrusted import Limits

    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(30):
            archive.writestr(f"masks/{index:05d}.png", b"")
    with pytest.raises(InputError, match="30 files"):
        read_annotations(path, _info(hostile.Video(64, 48, 100)), Limits(max_members=20))
