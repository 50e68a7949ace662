"""``scripts/ffmpeg_pyav.py``, the ffmpeg stand-in the GPU machine uses (it has PyAV, no ffmpeg):
every command the tracker, its tests and its benchmark give ffmpeg works through it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import make_video

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ffmpeg_pyav.py"


@pytest.fixture
def standin(tmp_path, monkeypatch) -> Path:
    """``IMAGEIO_FFMPEG_EXE`` → a wrapper of the stand-in, as benchmarks/gpu.sh sets it."""
    import imageio_ffmpeg

    wrapper = tmp_path / "ffmpeg-pyav"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SCRIPT}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(wrapper))
    assert imageio_ffmpeg.get_ffmpeg_exe() == str(wrapper)
    return wrapper


def decoded(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_overlay_writer_through_the_standin(standin, tmp_path):
    from tracker.render import OverlayWriter

    frames = [np.full((61, 81, 3), 40 * i, dtype=np.uint8) for i in range(5)]  # odd sides: padded
    with OverlayWriter(tmp_path / "overlay.mp4", fps=12, size=(81, 61), threaded=True) as writer:
        for frame in frames:
            writer.write(frame)
    out = decoded(tmp_path / "overlay.mp4")
    assert len(out) == 5 and out[0].shape == (62, 82, 3)
    assert [int(frame[:61, :81].mean()) for frame in out] == pytest.approx([40 * i for i in range(5)], abs=3)


def test_generated_clip_and_loop_through_the_standin(standin, tmp_path):
    from benchmarks.media import looped_video
    from tracker.video import probe

    clip = tmp_path / "clip.mp4"
    truth = make_video(clip, num_frames=6, width=64, height=48, fps=6)
    assert len(decoded(clip)) == len(truth) == 6
    looped, end_time = looped_video(clip, 15, tmp_path)
    info = probe(looped)
    assert info.num_frames == 18 and end_time is not None
    assert list(info.timestamps) == sorted(info.timestamps) and len(set(info.timestamps)) == 18


def test_version_and_unknown_options(standin):
    ok = subprocess.run([str(standin), "-version"], capture_output=True, text=True)
    assert ok.returncode == 0 and "pyav" in ok.stdout
    refused = subprocess.run(
        [str(standin), "-i", "in.mkv", "-vf", "scale=2:2", "out.mp4"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "unsupported" in refused.stderr
