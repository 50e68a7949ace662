"""tracker.video: probing, trimming, rotation, chunked random access and bad files."""

from __future__ import annotations

import random
import subprocess
import threading
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from tests.synthetic import make_video
from tracker.errors import InputError, VideoError
from tracker.video import VideoReader, probe

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FRAMES, WIDTH, HEIGHT, FPS = 48, 320, 240, 24.0


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", *args], check=True)


def has_encoder(name: str) -> bool:
    listing = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return f" {name} " in listing


@pytest.fixture(scope="module")
def base_video(tmp_path_factory) -> tuple[Path, list[list[np.ndarray]]]:
    """The synthetic clip as an H.264 mp4, with its ground-truth masks ``[frame][shape]``."""
    path = tmp_path_factory.mktemp("clip") / "base.mp4"
    truth = make_video(path, num_frames=FRAMES, width=WIDTH, height=HEIGHT, fps=FPS)
    return path, truth


@pytest.fixture(scope="module")
def truth(base_video) -> list[list[np.ndarray]]:
    return base_video[1]


@pytest.fixture(scope="module")
def videos(base_video) -> dict[str, Path]:
    """The same clip in several containers, plus a short-GOP version."""
    base = base_video[0]
    root = base.parent
    out = {"mp4": base}
    for kind, codec_args in [
        ("mkv", ["-c", "copy"]),
        ("mov", ["-c", "copy"]),
        ("avi", ["-c:v", "mpeg4", "-q:v", "2"]),
    ]:
        out[kind] = root / f"base.{kind}"
        ffmpeg("-i", str(base), *codec_args, str(out[kind]))
    if has_encoder("libvpx-vp9"):
        out["webm"] = root / "base.webm"
        ffmpeg(
            "-i", str(base), "-c:v", "libvpx-vp9", "-b:v", "400k", "-deadline", "realtime", str(out["webm"])
        )
    # short GOPs and B-frames, so chunked access has to seek and reorder
    out["gop"] = root / "gop.mp4"
    ffmpeg("-i", str(base), "-c:v", "libx264", "-g", "8", "-bf", "2", "-crf", "12", str(out["gop"]))
    return out


def red_centroid(frame: np.ndarray) -> tuple[float, float]:
    """Centroid (x, y) of the clearly red pixels (the disc shape)."""
    red = (frame[..., 0] > 170) & (frame[..., 1] < 90) & (frame[..., 2] < 90)
    ys, xs = np.nonzero(red)
    assert xs.size > 50, "the red disc should be visible"
    return float(xs.mean()), float(ys.mean())


def truth_centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


# ---------------------------------------------------------------------------------- probe


@pytest.mark.parametrize(
    ("kind", "codec", "time_tolerance"),
    [
        ("mp4", "h264", 1e-6),
        ("mkv", "h264", 1e-3),  # Matroska stores milliseconds
        ("mov", "h264", 1e-6),
        ("avi", "mpeg4", 1e-6),
        ("webm", "vp9", 1e-3),
    ],
)
def test_probe_containers(videos, truth, kind, codec, time_tolerance):
    if kind not in videos:
        pytest.skip(f"the bundled ffmpeg cannot write {kind}")
    info = probe(videos[kind])
    assert (info.num_frames, info.width, info.height) == (FRAMES, WIDTH, HEIGHT)
    assert (info.source_width, info.source_height, info.rotation) == (WIDTH, HEIGHT, 0)
    assert info.fps == pytest.approx(FPS, abs=0.01)
    assert info.codec == codec
    assert info.has_audio is False
    assert info.start_frame == 0
    assert len(info.timestamps) == FRAMES
    assert np.allclose(info.timestamps, np.arange(FRAMES) / FPS, atol=time_tolerance)
    with VideoReader(info) as reader:
        frames = list(reader.iter_frames())
        assert [i for i, _ in frames] == list(range(FRAMES))
        for i in (0, FRAMES // 2, FRAMES - 1):
            frame = reader.get(i)
            assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.uint8
            assert np.array_equal(frame, frames[i][1])
            assert red_centroid(frame) == pytest.approx(truth_centroid(truth[i][0]), abs=1.5)


def test_variable_frame_rate(videos, truth, tmp_path):
    vfr = tmp_path / "vfr.mkv"
    # first half at 24 fps, second half at 12 fps
    ffmpeg(
        "-i",
        str(videos["mp4"]),
        "-vf",
        "setpts='if(lt(N,24),N,24+2*(N-24))/24/TB'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        str(vfr),
    )
    info = probe(vfr)
    assert info.num_frames == FRAMES
    gaps = np.diff(info.timestamps)
    assert np.allclose(gaps[:23], 1 / 24, atol=2e-3) and np.allclose(gaps[24:], 2 / 24, atol=2e-3)
    assert info.time_of(30) == pytest.approx(info.timestamps[30] - info.timestamps[0])
    with VideoReader(info) as reader:
        assert red_centroid(reader.get(40)) == pytest.approx(truth_centroid(truth[40][0]), abs=1.5)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_matches_ffmpeg_autorotate(tmp_path, rotation):
    path = tmp_path / f"rot{rotation}.mp4"
    truth = make_video(path, num_frames=4, width=160, height=96, rotation=rotation)
    info = probe(path)
    # make_video writes ffmpeg's -display_rotation, which is counterclockwise; probe reports clockwise
    assert info.rotation == (360 - rotation) % 360
    turned = rotation in (90, 270)
    assert (info.source_width, info.source_height) == ((96, 160) if turned else (160, 96))
    assert (info.width, info.height) == (info.source_width, info.source_height)

    reader_ffmpeg = imageio_ffmpeg.read_frames(str(path))  # autorotates, like a player
    meta = next(reader_ffmpeg)
    width, height = meta["size"]
    expected = np.frombuffer(next(reader_ffmpeg), np.uint8).reshape(height, width, 3)
    reader_ffmpeg.close()
    with VideoReader(info) as reader:
        frame = reader.get(0)
    assert frame.shape == expected.shape
    assert np.abs(frame.astype(int) - expected).mean() < 1.0
    # and the disc is where a counterclockwise turn of the unrotated picture puts it
    assert red_centroid(frame) == pytest.approx(
        truth_centroid(np.rot90(truth[0][0], rotation // 90)), abs=1.5
    )


@pytest.mark.parametrize(
    ("max_size", "expected"),
    [
        (None, (320, 240)),
        (1000, (320, 240)),
        (320, (320, 240)),
        (160, (160, 120)),
        (101, (100, 74)),  # 101 × 75.75, each rounded down to even
    ],
)
def test_max_size(videos, truth, max_size, expected):
    info = probe(videos["mp4"], max_size=max_size)
    assert (info.width, info.height) == expected
    assert (info.source_width, info.source_height) == (WIDTH, HEIGHT)
    assert info.scale == pytest.approx(expected[0] / WIDTH)
    with VideoReader(info) as reader:
        frame = reader.get(5)
    assert frame.shape == (expected[1], expected[0], 3)
    cx, cy = truth_centroid(truth[5][0])
    assert red_centroid(frame) == pytest.approx((cx * info.scale, cy * info.scale), abs=1.5)


def test_max_size_rotated(tmp_path):
    path = tmp_path / "rot.mp4"
    make_video(path, num_frames=2, width=160, height=96, rotation=90)
    info = probe(path, max_size=80)
    assert (info.width, info.height) == (48, 80)
    with VideoReader(info) as reader:
        assert reader.get(1).shape == (80, 48, 3)


@pytest.mark.parametrize(
    ("start", "end", "start_frame", "num_frames"),
    [
        (None, None, 0, 48),
        (0.5, None, 12, 36),
        (None, 1.0, 0, 24),
        (0.5, 1.0, 12, 12),
        (0.51, 1.0, 13, 11),
        (0.0, 100.0, 0, 48),
    ],
)
def test_trim(videos, start, end, start_frame, num_frames):
    info = probe(videos["gop"], start=start, end=end)
    assert (info.start_frame, info.num_frames) == (start_frame, num_frames)
    assert info.timestamps[0] == pytest.approx(start_frame / FPS)
    assert info.time_of(0) == 0.0
    full = probe(videos["gop"])
    with VideoReader(info, chunk_size=8, cache_chunks=2) as trimmed, VideoReader(full) as reader:
        for i in (0, num_frames - 1, num_frames // 2):
            assert np.array_equal(trimmed.get(i), reader.get(start_frame + i))
        assert [i for i, _ in trimmed.iter_frames()] == list(range(num_frames))
        with pytest.raises(InputError):
            trimmed.get(num_frames)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (1.0, 0.5, "before the end time"),
        (1.0, 1.0, "before the end time"),
        (5.0, None, "past the last frame"),
        (-1.0, None, "0 s or later"),
        (0.501, 0.52, "No frame"),
    ],
)
def test_trim_errors(videos, start, end, message):
    with pytest.raises(VideoError, match=message):
        probe(videos["mp4"], start=start, end=end)


# ---------------------------------------------------------------------------------- reading


@pytest.fixture(scope="module")
def gop_reference(videos) -> list[np.ndarray]:
    """Every frame of the short-GOP clip from one straight sequential decode."""
    with VideoReader(probe(videos["gop"])) as reader:
        return [frame for _, frame in reader.iter_frames()]


def _order(pattern: str) -> list[int]:
    if pattern == "forward":
        return list(range(FRAMES))
    if pattern == "backward":
        return list(range(FRAMES - 1, -1, -1))
    if pattern == "random":
        order = list(range(FRAMES)) * 2
        random.Random(7).shuffle(order)
        return order
    if pattern == "zigzag":  # what a UI scrubber or a both-ways propagation does
        return [*range(20, 40), *range(39, 5, -1), *range(30, FRAMES)]
    raise ValueError(pattern)


@pytest.mark.parametrize("pattern", ["forward", "backward", "random", "zigzag"])
def test_get_matches_sequential_decode(videos, gop_reference, pattern):
    with VideoReader(probe(videos["gop"]), chunk_size=8, cache_chunks=3) as reader:
        for i in _order(pattern):
            frame = reader.get(i)
            assert np.array_equal(frame, gop_reference[i]), f"frame {i} ({pattern})"
            assert not frame.flags.writeable
        stats = reader.stats
    if pattern == "forward":
        assert stats.decoded == FRAMES and stats.converted == FRAMES and stats.seeks == 0
    if pattern == "backward":
        assert stats.converted == FRAMES  # each frame converted once
        assert stats.decoded <= 2 * FRAMES


def test_concurrent_get(videos, gop_reference):
    errors: list[BaseException] = []
    with VideoReader(probe(videos["gop"]), chunk_size=8, cache_chunks=3) as reader:

        def work(order: list[int]) -> None:
            try:
                for i in order:
                    assert np.array_equal(reader.get(i), gop_reference[i])
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [
            threading.Thread(target=work, args=(_order(p),)) for p in ("forward", "backward", "random")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors


@pytest.mark.parametrize(
    ("start", "stop", "step"),
    [(0, None, 1), (0, None, 5), (3, 40, 7), (10, 11, 1), (40, None, 100), (20, 10, 1)],
)
def test_iter_frames(videos, gop_reference, start, stop, step):
    with VideoReader(probe(videos["gop"]), chunk_size=8) as reader:
        got = list(reader.iter_frames(start, stop, step))
        expected = list(range(start, FRAMES if stop is None else stop, step))
        assert [i for i, _ in got] == expected
        for i, frame in got:
            assert np.array_equal(frame, gop_reference[i])
        if step > 1:
            assert reader.stats.converted == len(expected)  # skipped frames are never converted


def test_iter_frames_rejects_bad_step(videos):
    with VideoReader(probe(videos["mp4"])) as reader, pytest.raises(InputError):
        reader.iter_frames(step=0)


def test_reader_bounds_and_close(videos):
    reader = VideoReader(probe(videos["mp4"]))
    assert len(reader) == FRAMES
    for bad in (-1, FRAMES):
        with pytest.raises(InputError):
            reader.get(bad)
    reader.close()
    with pytest.raises(RuntimeError):
        reader.get(0)


# ---------------------------------------------------------------------------------- bad and odd files


def _zero_bytes(path: Path) -> Path:
    path = path / "empty.mp4"
    path.write_bytes(b"")
    return path


def _text_as_mp4(path: Path) -> Path:
    path = path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    return path


def _truncated(path: Path, videos) -> Path:
    data = videos["mp4"].read_bytes()  # index (moov) at the end: cutting it loses the index
    path = path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.4)])
    return path


def _audio_only(path: Path) -> Path:
    path = path / "tone.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-vn", "-c:a", "aac", str(path))
    return path


@pytest.mark.parametrize(
    ("maker", "message"),
    [
        (lambda tmp, videos: tmp / "missing.mp4", "does not exist"),
        (lambda tmp, videos: tmp, "is a folder"),
        (lambda tmp, videos: _zero_bytes(tmp), "empty"),
        (lambda tmp, videos: _text_as_mp4(tmp), "not a video"),
        (_truncated, "incomplete"),
        (lambda tmp, videos: _audio_only(tmp), "audio only"),
    ],
    ids=["missing", "folder", "zero-bytes", "text-as-mp4", "truncated-40%", "audio-only"],
)
def test_bad_files(tmp_path, videos, maker, message):
    path = maker(tmp_path, videos)
    with pytest.raises(VideoError, match=message) as caught:
        probe(path)
    assert "\n" not in str(caught.value)


def test_truncated_tail_counts_decodable_frames(tmp_path, videos, truth):
    # index at the front (+faststart): the demuxer lists packets whose data is missing
    faststart = tmp_path / "fs.mp4"
    ffmpeg("-i", str(videos["gop"]), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    cut = tmp_path / "fs_cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    info = probe(cut)
    assert 5 < info.num_frames < FRAMES
    with VideoReader(info, chunk_size=8) as reader:
        assert [i for i, _ in reader.iter_frames()] == list(range(info.num_frames))
        last = reader.get(info.num_frames - 1)
    assert red_centroid(last) == pytest.approx(truth_centroid(truth[info.num_frames - 1][0]), abs=1.5)


def test_damaged_middle_does_not_crash(tmp_path, videos):
    data = bytearray(videos["gop"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1500] = np.random.default_rng(0).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    info = probe(damaged)
    with VideoReader(info, chunk_size=8) as reader:
        assert len(list(reader.iter_frames())) <= info.num_frames
        for i in range(info.num_frames - 1, -1, -1):
            assert reader.get(i).shape == (HEIGHT, WIDTH, 3)


@pytest.mark.parametrize(
    ("mode", "size", "working"),
    [("RGB", (161, 121), (160, 120)), ("L", (64, 48), (64, 48))],
    ids=["odd-rgb-png", "grayscale-png"],
)
def test_still_image_is_a_one_frame_video(tmp_path, mode, size, working):
    path = tmp_path / "still.png"
    Image.new(mode, size, 200 if mode == "L" else (200, 30, 30)).save(path)
    info = probe(path)
    assert info.num_frames == 1 and info.codec == "png"
    assert (info.width, info.height) == working
    with VideoReader(info) as reader:
        frame = reader.get(0)
        assert frame.shape == (working[1], working[0], 3)
        assert [i for i, _ in reader.iter_frames()] == [0]
    expected = (200, 200, 200) if mode == "L" else (200, 30, 30)
    assert np.abs(frame[5, 5].astype(int) - expected).max() <= 3


def test_probe_with_audio(tmp_path, videos):
    path = tmp_path / "with_audio.mp4"
    ffmpeg(
        "-i",
        str(videos["mp4"]),
        "-f",
        "lavfi",
        "-i",
        "sine=duration=3",
        "-c:v",
        "copy",
        "-c:a",
        "aac",
        "-shortest",
        str(path),
    )
    info = probe(path)
    assert info.has_audio is True
    assert info.num_frames == FRAMES
