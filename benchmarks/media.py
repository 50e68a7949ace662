"""The benchmark's inputs: which clips, the clip looped to any length, JPEG folders for plain SAM 2."""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def shared_clip(name: str, start: Path = ROOT) -> Path:
    """``shared/videos/<name>`` beside the checkout (``../shared``) or beside a folder above it.

    A checkout at ``/work/main`` finds ``/work/shared/videos``, and so does a worktree at
    ``/work/wt/<branch>``. When none exists, the path beside the checkout is returned (and
    reported as missing when a section needs it).
    """
    for folder in start.parents:
        candidate = folder / "shared" / "videos" / name
        if candidate.is_file():
            return candidate
    return start.parent / "shared" / "videos" / name


DEFAULT_VIDEO = shared_clip("bedroom.mp4")
DEFAULT_FIND_VIDEO = shared_clip("01_dog.mp4")


def looped_video(clip: Path, length: int, folder: Path) -> tuple[Path, float | None]:
    """An mp4 of at least ``length`` frames: ``clip`` repeated by ffmpeg's concat demuxer, stream copy.

    Returns the file and the ``end_time`` that trims it to exactly ``length`` frames (None when
    the clip is exactly that long). Nothing is decoded or held in memory.
    """
    from tracker.video import probe

    info = probe(clip)
    repeats = max(1, math.ceil(length / info.num_frames))
    target = clip
    if repeats > 1:
        target = folder / f"{clip.stem}-x{repeats}.mp4"
        if not target.exists():
            listing = folder / f"{clip.stem}-x{repeats}.txt"
            listing.write_text("".join(f"file '{clip.resolve()}'\n" for _ in range(repeats)))
            _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", "-an", str(target)])
        info = probe(target)
    if info.num_frames < length:
        raise RuntimeError(f"{target.name} has {info.num_frames} frames, fewer than {length}")
    if info.num_frames == length:
        return target, None
    times = info.timestamps
    return target, (times[length - 1] + times[length]) / 2


def _ffmpeg(arguments: list[str]) -> None:
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *arguments]
    subprocess.run(command, check=True)


def write_jpegs(video: Path, folder: Path, num_frames: int, max_size: int | None) -> dict[str, Any]:
    """Frames ``0 … num_frames-1`` of ``video`` as ``00000.jpg …`` (SAM 2's layout), timed.

    Frames are decoded once per clip frame; a ``num_frames`` longer than the clip links
    ``i.jpg`` to the file of clip frame ``i mod n`` (plain SAM 2 reads them all the same).
    """
    from PIL import Image

    from tracker.video import VideoReader, probe

    folder.mkdir(parents=True, exist_ok=True)
    info = probe(video, max_size=max_size)
    clip_frames = min(num_frames, info.num_frames)
    started = time.perf_counter()
    reader = VideoReader(info)
    try:
        for frame_idx, frame in reader.iter_frames(0, clip_frames):
            Image.fromarray(frame).save(folder / f"{frame_idx:05d}.jpg", quality=95)
    finally:
        reader.close()
    seconds = time.perf_counter() - started
    for frame_idx in range(clip_frames, num_frames):
        link = folder / f"{frame_idx:05d}.jpg"
        if not link.exists():
            link.symlink_to(folder / f"{frame_idx % clip_frames:05d}.jpg")
    return {
        "frames": num_frames,
        "written": clip_frames,
        "size": f"{info.width}x{info.height}",
        "seconds": seconds,
        "s_per_frame": seconds / max(clip_frames, 1),
    }
