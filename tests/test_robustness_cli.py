"""Bad and odd input on the command line (issue #5): one line, a non-zero exit, no traceback.

Every input is generated here (tiny clips, ffmpeg from imageio-ffmpeg). Bad files and bad
project files fail while the video is opened, before any model loads; odd but valid videos
(one frame, 4K, variable frame rate, rotated, odd size, grayscale, a still image) and odd
prompts run end to end with random weights at 256 px, through one model hub shared by the
whole test session (``one_hub`` in ``tests/conftest.py``), so the models are built once.

The makers (``make_*``) are also used by ``tests/test_robustness_ui.py``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from tests.synthetic import make_video
from tracker.cli import main

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
ROOT = Path(__file__).resolve().parents[1]
FAST = ["--random-weights", "--device", "cpu", "--image-size", "256", "--max-size", "256",
        "--preset", "fast", "--top-frames", "1", "--offline"]  # fmt: skip


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", *args], check=True)


# -- inputs ------------------------------------------------------------------------------------
def make_clip(folder: Path, frames: int = 3, width: int = 128, height: int = 96, fps: float = 6) -> Path:
    path = folder / "clip.mp4"
    make_video(path, num_frames=frames, width=width, height=height, fps=fps)
    return path


def make_zero_bytes(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def make_text_as_mp4(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("this is not a video\n" * 40)
    return path


def make_truncated(folder: Path) -> Path:
    whole = make_clip(folder, frames=12)
    path = folder / "cut.mp4"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 5])  # the index (moov) is lost
    return path


def make_audio_only(folder: Path) -> Path:
    path = folder / "tone.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.3", "-vn", "-c:a", "aac", str(path))
    return path


def make_long(folder: Path) -> Path:
    """40 frames at 20 fps (2 s): "very long" against the low limits the tests set."""
    return make_clip(folder, frames=40, width=64, height=48, fps=20)


def make_one_frame(folder: Path) -> Path:
    return make_clip(folder, frames=1)


def make_uhd(folder: Path) -> Path:
    path = folder / "uhd.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=24", "-frames:v", "3",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def make_vfr(folder: Path) -> Path:
    """3 frames at 24 fps, then 2 at 12 fps, in one file (concat keeps each part's timing)."""
    fast, slow = folder / "part24.mp4", folder / "part12.mp4"
    make_video(fast, num_frames=3, width=128, height=96, fps=24)
    make_video(slow, num_frames=2, width=128, height=96, fps=12)
    listing = folder / "parts.txt"
    listing.write_text(f"file '{fast}'\nfile '{slow}'\n")
    path = folder / "vfr.mkv"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(path))
    return path


def make_rotated(folder: Path) -> Path:
    """A 128×96 landscape stream a player shows as 96×128 portrait (phone rotation metadata)."""
    path = folder / "phone.mp4"
    make_video(path, num_frames=3, width=128, height=96, rotation=90)
    return path


def make_odd_size(folder: Path) -> Path:
    path = folder / "odd.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=129x97:rate=10", "-frames:v", "3",
           "-c:v", "libx264", "-pix_fmt", "yuv444p", str(path))  # fmt: skip
    return path


def make_grayscale(folder: Path) -> Path:
    path = folder / "gray.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=128x96:rate=10", "-frames:v", "3",
           "-c:v", "libx264", "-pix_fmt", "gray", str(path))  # fmt: skip
    return path


def make_still(folder: Path) -> Path:
    """A JPEG photo uploaded under a video's name."""
    path = folder / "photo.mp4"
    Image.new("RGB", (160, 120), (200, 30, 30)).save(path, format="JPEG")
    return path


# (maker, fragment of the one-line message, extra CLI arguments)
BAD_VIDEOS = [
    pytest.param(make_zero_bytes, "is empty (0 bytes)", [], id="zero-bytes"),
    pytest.param(make_text_as_mp4, "not a video FFmpeg can read", [], id="text-named-mp4"),
    pytest.param(make_truncated, "incomplete", [], id="truncated"),
    pytest.param(make_audio_only, "audio only", [], id="audio-only"),
    pytest.param(make_long, "more than the limit of 30 frames", ["--max-frames", "30"], id="too-long"),
    pytest.param(lambda folder: folder / "missing.mp4", "does not exist", [], id="missing"),
]
# (maker, working width, height, frames) with --max-size 256
ODD_VIDEOS = [
    pytest.param(make_one_frame, 128, 96, 1, id="one-frame"),
    pytest.param(make_still, 160, 120, 1, id="still-image"),
    pytest.param(make_uhd, 256, 144, 3, id="4k-downscaled"),
    pytest.param(make_vfr, 128, 96, 5, id="variable-frame-rate"),
    pytest.param(make_rotated, 96, 128, 3, id="rotated-phone"),
    pytest.param(make_odd_size, 128, 96, 3, id="odd-size"),
]
# decoding a grayscale stream is the only new thing about it: opened (not tracked) in the UI tests
GRAYSCALE = pytest.param(make_grayscale, 128, 96, 3, id="grayscale")


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def assert_one_line(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    (line,) = error_lines(err)
    assert fragment in line, line


# -- bad videos --------------------------------------------------------------------------------
@pytest.mark.parametrize(("maker", "fragment", "extra"), BAD_VIDEOS)
@pytest.mark.parametrize("command", ["track", "candidates"])
def test_bad_video_is_one_line(tmp_path, capsys, maker, fragment, extra, command):
    video = maker(tmp_path)
    out = ["--out", str(tmp_path / "out")] if command == "track" else []
    code = main([command, str(video), "--prompt", "a red disc", *out, *extra, *FAST])
    assert_one_line(code, capsys.readouterr().err, fragment)


def test_frame_limit_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRACKER_MAX_FRAMES", "10")
    code = main(["candidates", str(make_long(tmp_path)), "--prompt", "x", *FAST])
    err = capsys.readouterr().err
    assert_one_line(code, err, "has 40 frames (2 s), more than the limit of 10 frames")
    assert "--start/--end" in err  # what to do: track a part of it


def test_a_part_of_a_long_video_passes_the_limit(tmp_path, capsys):
    code = main(["candidates", str(make_long(tmp_path)), "--prompt", " ", "--max-frames", "30",
                 "--start", "0.5", "--end", "1.0", *FAST])  # fmt: skip
    # past the length check (10 frames): what stops it now is the empty prompt
    assert_one_line(code, capsys.readouterr().err, "Type what to follow")


@pytest.mark.parametrize(
    ("maker", "fragment"),
    [(make_text_as_mp4, "not a video FFmpeg can read"), (make_audio_only, "audio only")],
    ids=["text-named-mp4", "audio-only"],
)
def test_no_traceback_in_a_real_process(tmp_path, maker, fragment):
    proc = subprocess.run(
        [sys.executable, "-m", "tracker", "track", str(maker(tmp_path)), "--prompt", "x",
         "--out", str(tmp_path / "out"), *FAST],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert_one_line(proc.returncode, proc.stderr, fragment)
    assert proc.stdout == ""


def test_output_folder_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    code = main(["track", str(make_one_frame(tmp_path)), "--prompt", "x", "--out", str(blocker), *FAST])
    assert_one_line(code, capsys.readouterr().err, "choose another --out")


# -- odd but valid videos ----------------------------------------------------------------------
@pytest.mark.parametrize(("maker", "width", "height", "frames"), ODD_VIDEOS)
def test_odd_video_tracks_end_to_end(tmp_path, capsys, one_hub, maker, width, height, frames):
    """Decode, track (SAM 2 from a click in the project: no CLIP run) and export every output."""
    video = maker(tmp_path)
    project = _project(video, tmp_path / "start.json", [_prompt(points=[[width / 2, height / 2]])])
    out = tmp_path / "out"
    code = main(["-q", "track", str(video), "--project", str(project), "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())["video"]
    assert (manifest["width"], manifest["height"], manifest["num_frames"]) == (width, height, frames)
    assert (out / "overlay.mp4").stat().st_size > 0
    assert len(list((out / "masks").glob("*.png"))) == frames
    if maker is make_uhd:
        assert "downscaled from 3840×2160" in err


# -- prompts -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [("", "Type what to follow"), ("   \t ", "Type what to follow"), ("\x00\x1b", "Type what to follow")],
    ids=["empty", "whitespace", "control-characters"],
)
def test_unusable_prompt_is_one_line(tmp_path, capsys, prompt, fragment):
    code = main(["candidates", str(make_one_frame(tmp_path)), "--prompt", prompt, *FAST])
    assert_one_line(code, capsys.readouterr().err, fragment)


def test_long_non_english_prompt_works_and_says_why_it_may_not(tmp_path, capsys, caplog, one_hub):
    prompt = "赤いボール " * 2000  # 12,000 characters of Japanese ("red ball")
    with caplog.at_level(logging.INFO):
        code = main(["candidates", str(make_one_frame(tmp_path)), "--prompt", prompt, *FAST])
    assert code == 0, capsys.readouterr().err
    notes = " ".join(r.getMessage() for r in caplog.records if r.name == "tracker.candidates")
    assert "characters; CLIP reads about 300" in notes  # cut to what CLIP reads
    assert "may match less reliably" in notes  # CLIP was trained on English captions


# -- project files -----------------------------------------------------------------------------
def _project(video: Path, path: Path, history: list[dict] | None = None) -> Path:
    from tracker.project import Project
    from tracker.settings import Settings
    from tracker.video import probe

    info = probe(video, max_size=256)
    objects = [{"kind": "object", "object_id": 1, "name": "disc", "color": [230, 25, 75]}]
    Project.create(info, Settings(random_weights=True), history=objects + (history or [])).save(path)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _prompt(**changes) -> dict:
    edit = {"kind": "prompt", "object_id": 1, "frame_idx": 0, "points": [[40.0, 40.0]], "labels": [1],
            "box": None, "mask": None}  # fmt: skip
    return {**edit, **changes}


BAD_PROJECTS = [
    pytest.param(lambda v, p: _write(p, b"{ not json"), "not a project file", id="corrupt-json"),
    pytest.param(lambda v, p: _write(p, b"\x89PNG\r\n\x1a\n" + b"\0" * 64), "not a project file", id="binary"),
    pytest.param(lambda v, p: _project(make_odd_size(p.parent), p), "made for odd.mp4", id="other-video"),
    pytest.param(lambda v, p: _project(v, p, [_prompt(frame_idx=999)]), "Frame 999 is outside", id="frame"),
    pytest.param(lambda v, p: _project(v, p, [_prompt(points=[[900.0, 5.0]])]), "outside the 128×96 frame",
                 id="click-outside"),
    pytest.param(lambda v, p: _project(v, p, [_prompt(points=[], labels=[], box=[9, 9, 9, 30])]),
                 "box has no area", id="zero-area-box"),
    pytest.param(lambda v, p: _project(v, p, [_prompt(labels=[0])]), "Only negative clicks", id="negative-only"),
    pytest.param(lambda v, p: _project(v, p, [{"kind": "teleport", "object_id": 1}]), "unknown kind",
                 id="unknown-edit"),
    pytest.param(lambda v, p: _project(v, p, [{"kind": "rename", "object_id": 7, "name": "x"}]),
                 "renames object 7", id="rename-unknown-object"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "fragment"), BAD_PROJECTS)
def test_bad_project_is_one_line(tmp_path, capsys, make, fragment):
    video = make_clip(tmp_path)
    project = make(video, tmp_path / "project.json")
    code = main(["track", str(video), "--project", str(project), "--out", str(tmp_path / "out"), *FAST])
    assert_one_line(code, capsys.readouterr().err, fragment)
