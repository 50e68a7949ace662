"""Discovery on the real path: SAM 2 tiny at 256 with random weights (CPU, small generated clips).

Random weights make masks meaningless, so these tests check the plumbing and the contracts:
the session adds an object mid-run and tracks it back exactly as plain SAM 2 would, a check reuses
the frame's backbone features, the workspace adopts what discovery found (objects, edits, flags,
manifest, reopening), and the command line runs end to end listing what it found. The decisions
themselves are tested with stand-ins in test_discovery.py; here a stand-in detector
(``StandInComponentDetector``) stands in for CLIP where random weights cannot score anything.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from tests.standins_discovery import BLUE, RED, Disc, StandInComponentDetector, render_scene
from tests.synthetic import ListFrames
from tracker.cli import main
from tracker.discovery import DiscoveryConfig
from tracker.session import TrackingSession
from tracker.types import FramePrompt

pytestmark = pytest.mark.slow

NUM_FRAMES = 16
FAST = ["--random-weights", "--device", "cpu", "--image-size", "256", "--top-frames", "1", "--offline"]


def scene():
    """A blue disc all along, a red disc entering from the left on frame 4 (128×96)."""
    return [
        Disc(BLUE, 12, lambda f: (90, 30)),
        Disc(RED, 12, lambda f: None if f < 4 else (-11 + 4 * (f - 4), 60)),
    ]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory) -> Path:
    frames, _ = render_scene(scene(), NUM_FRAMES)
    path = tmp_path_factory.mktemp("clip") / "entering.mp4"
    writer = imageio_ffmpeg.write_frames(
        str(path), (128, 96), fps=8, codec="libx264", quality=None, bitrate=None,
        output_params=["-crf", "12", "-pix_fmt", "yuv420p"], macro_block_size=1, ffmpeg_log_level="error",
    )  # fmt: skip
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def test_adding_an_object_mid_run_tracks_it_back_and_on_like_plain_sam2(predictor):
    frames, truth = render_scene(scene(), NUM_FRAMES)
    source, added_at = ListFrames(frames), 8
    red = truth[added_at][1]
    with TrackingSession(predictor, source) as reference:
        reference.add_prompt(FramePrompt(2, added_at, mask=red))
        back_ref = {r.frame_idx: r.mask_of(2) for r in reference.propagate(added_at, 0, "backward")}
        on_ref = {r.frame_idx: r.mask_of(2) for r in reference.propagate(added_at, None, "forward")}

    with TrackingSession(predictor, source) as session:
        session.add_prompt(FramePrompt(1, 0, mask=truth[0][0]))
        run = session.propagate(0, None, "forward")
        results = {}
        for result in run:
            results[result.frame_idx] = result
            if result.frame_idx == added_at:
                assert session.frame_features(added_at) is not None  # the frame the run just encoded
                assert session.frame_features(added_at - 1) is None
                now = session.add_mask_mid_run(2, added_at, red)
                assert now.object_ids == (1, 2) and now.mask_of(2).any()
                back = list(session.track_object(2, added_at, 0))
                assert [r.frame_idx for r in back] == list(range(added_at - 1, -1, -1))
                assert all(r.object_ids == (2,) for r in back)
                for r in back:
                    assert np.array_equal(r.mask_of(2), back_ref[r.frame_idx]), r.frame_idx
        assert not session.running
    for frame_idx in range(added_at + 1, NUM_FRAMES):
        mine, theirs = results[frame_idx], on_ref[frame_idx]
        assert mine.object_ids == (1, 2)
        # the same logits: object 2's mask is SAM 2's alone, minus pixels object 1 wins
        assert not (mine.mask_of(2) & ~theirs).any()
        assert not (theirs & ~(mine.mask_of(2) | mine.mask_of(1))).any()


def test_an_object_added_mid_run_can_be_dropped(predictor):
    frames, truth = render_scene(scene(), 8)
    with TrackingSession(predictor, ListFrames(frames)) as session:
        session.add_prompt(FramePrompt(1, 0, mask=truth[0][0]))
        seen = []
        for result in session.propagate(0, None, "forward"):
            seen.append(result.object_ids)
            if result.frame_idx == 4:
                session.add_mask_mid_run(2, 4, truth[4][1])
                session.remove_object_mid_run(2)
        assert set(seen) == {(1,)}
        assert session.object_ids == (1,)


def test_workspace_adopts_what_discovery_finds_and_a_project_reproduces_it(clip_path, tmp_path, one_hub):
    from tracker.settings import Settings
    from tracker.workspace import Workspace

    settings = Settings(device="cpu", random_weights=True, image_size=256, offline=True)
    ws = Workspace.open(clip_path, one_hub, settings, tmp_path / "work")
    ws.prompt_text, ws.negative_text = "red", "blue"
    _, truth = render_scene(scene(), NUM_FRAMES)
    ws.set_mask(ws.add_object("blue one").object_id, 0, truth[0][0])
    ws.discovery_detector = lambda workspace: StandInComponentDetector("red", "blue")
    # random SAM 2 masks go anywhere: landing on the first sighting is not asked for here
    config = DiscoveryConfig(every=4, confirm_iou=0.0, match_cover=1.1, match_iou=0.9)
    events = list(ws.track(discover=config))

    assert len([e for e in events if not e.replay]) == NUM_FRAMES
    discovered = [r for r in ws.found if r.kind == "discovered"]
    assert discovered, ws.last_discovery.reports
    new_id = discovered[0].object_id
    assert new_id == 2 and ws.objects[2].name == "red 2"
    assert (2, discovered[0].frame) in {(p.object_id, p.frame_idx) for p in ws.prompts()}
    assert 2 in ws.store.get(NUM_FRAMES - 1).object_ids
    marked = [(f.frame, f.object_id) for f in ws.flags(with_clip=False) if f.reason == "discovered"]
    assert marked == [(discovered[0].frame, 2)]
    manifest = ws.manifest()
    assert {"object_id": 2, "kind": "discovered"}.items() <= manifest["found"][0].items()

    project = ws.save_project(tmp_path / "project.json")
    again = Workspace.open(clip_path, one_hub, settings, tmp_path / "again")
    again.load_project(project)
    assert sorted(again.objects) == sorted(ws.objects) == [1, 2]
    assert again.found == ws.found_records()
    assert again.session.object_ids == (1, 2)  # its prompts replayed into SAM 2

    look = ws.exemplars.exemplars(2)[0]  # what discovery learnt object 2 looks like
    ws.remove_object(2)
    assert 2 not in ws.exemplars.object_ids
    assert ws.exemplars.negative_similarity(look) == pytest.approx(100.0, abs=1e-3)  # now "not this"
    ws.close()
    again.close()


def test_cli_track_with_discovery_runs_end_to_end_and_lists_what_it_found(
    clip_path, tmp_path, capsys, one_hub
):
    out = tmp_path / "out"
    code = main(
        ["track", str(clip_path), "--prompt", "a red disc", "--negative", "blue", "--out", str(out),
         "--discover-every", "2", "--max-objects", "3", *FAST]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    line = next(line for line in printed.splitlines() if line.startswith("discovery: "))
    checks = int(re.search(r"(\d+) checks", line).group(1))
    reused = int(re.search(r"features on (\d+)", line).group(1))
    assert checks >= 1 and "every 2 frames" in line
    assert reused >= checks - 1  # all but a check on a prompted frame (SAM 2 encodes nothing there)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["discover"] is True and manifest["settings"]["discover_every"] == 2
    kinds = [row["kind"] for row in manifest["found"]]
    assert kinds[0] == "accepted" and len(manifest["objects"]) <= 3
    ids = {obj["id"] for obj in manifest["objects"]}
    with zipfile.ZipFile(out / "annotations.zip") as bundle:
        tracks = {row.split(",")[1] for row in bundle.read("mot.txt").decode().splitlines()}
    assert {int(t) for t in tracks} <= ids


def test_the_real_proposer_decodes_no_grid_point_inside_a_tracked_mask_but_one(predictor):
    """ClipDetector with SAM 2's point proposer: the decoder sees 14 points, not 16, when a tracked
    disc holds three grid points (one kept for the object itself); all 16 without ``covered``."""
    from tests.standins_discovery import StandInCropEncoder
    from tracker.candidates import PointPromptProposer
    from tracker.discovery.detector import ClipDetector
    from tracker.models import sam2_image_predictor

    frames, truth = render_scene([Disc(BLUE, 30, lambda f: (48, 36)), Disc(RED, 14, lambda f: (112, 60))], 1)
    frame, blue = frames[0], truth[0][0]
    proposer = PointPromptProposer(sam2_image_predictor(predictor), grid=4, random_weights=True)
    detector = ClipDetector(StandInCropEncoder(), proposer, "red")
    detector.detect(0, frame, covered=blue[None])
    assert proposer.last_prompts == 14 and (detector.points, detector.skipped_points) == (14, 2)
    detector.detect(0, frame)
    assert proposer.last_prompts == 16 and detector.skipped_points == 2
