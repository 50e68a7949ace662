"""Decoding videos with PyAV: :func:`probe` a file, then read frames as they are needed.

Frame numbering. A file's frames are numbered in presentation order (the order a player shows
them), found by demuxing packet timestamps without decoding. :func:`probe` picks the working
range (``start``/``end`` trim): working frame ``i`` is file frame ``info.start_frame + i``.
Frames the decoder cannot produce (leading frames of a cut stream, a truncated tail) are left out
of the numbering, so ``info.num_frames`` counts frames that really decode.

Working frames are ``H×W×3`` ``uint8`` RGB at ``info.width × info.height``: the file's display
rotation applied (the way ffmpeg's autorotate shows it), then scaled down so the longest side is at
most ``max_size``. The working size is always even (rounded down) so H.264 can encode it; a source
with an odd side is therefore scaled by one pixel even without ``max_size``. Non-square pixels
(sample aspect ratio) and mirrored display matrices are not applied.

Nothing holds the whole video: :class:`VideoReader` decodes chunks around the frames asked for and
keeps a few of them in an LRU cache.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from . import timing
from .errors import InputError, VideoError
from .types import VideoInfo

logger = logging.getLogger(__name__)

# A tolerance for comparing trim times (seconds) with frame timestamps.
_TIME_EPS = 1e-4
_SCAN_CACHE_SIZE = 16


# ---------------------------------------------------------------------------------- scanning


@dataclass(frozen=True)
class _Scan:
    """What demuxing (plus decoding the first frame) tells about one file's video stream.

    ``pts`` holds every decodable frame's timestamp in stream ``time_base`` units, ascending
    (presentation order); ``None`` when the stream has no usable timestamps (a raw ``.h264``
    file), in which case frames are numbered in decode order and cannot be sought.
    ``keyframes`` are file frame indices, ascending. ``times`` are seconds from the first frame.
    ``rotation`` is the clockwise rotation (0/90/180/270) a player applies; ``width``/``height``
    are the coded size, before rotation.
    """

    path: str
    stream_index: int
    num_frames: int
    pts: tuple[int, ...] | None
    keyframes: tuple[int, ...]
    times: tuple[float, ...]
    fps: float
    codec: str
    has_audio: bool
    rotation: int
    width: int
    height: int

    @cached_property
    def index_of_pts(self) -> dict[int, int]:
        return {} if self.pts is None else {p: i for i, p in enumerate(self.pts)}

    def keyframe_before(self, file_idx: int) -> int:
        """The last keyframe at or before ``file_idx`` (0 when there is none or no index)."""
        pos = bisect.bisect_right(self.keyframes, file_idx) - 1
        return self.keyframes[pos] if pos >= 0 else 0


_scans: OrderedDict[tuple[str, int, int], _Scan] = OrderedDict()
_scans_lock = threading.Lock()


def _check_file(path: Path) -> os.stat_result:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise VideoError(f"The video file {path} does not exist; check the path.") from None
    except OSError as exc:
        raise VideoError(
            f"The video file {path} cannot be read ({exc.strerror}); check its permissions."
        ) from None
    if path.is_dir():
        raise VideoError(f"{path} is a folder, not a video file; give the path of a video.")
    if stat.st_size == 0:
        raise VideoError(f"The video file {path.name} is empty (0 bytes); upload or copy it again.")
    return stat


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise VideoError(
            f"{path.name} is not a video FFmpeg can read, or it is incomplete ({reason}); "
            "check that the upload finished, or convert it to MP4 (H.264)."
        ) from None
    except OSError as exc:
        raise VideoError(
            f"The video file {path.name} cannot be read ({exc.strerror}); check the file."
        ) from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        what = "it is audio only" if container.streams.audio else "it has no video stream"
        raise VideoError(f"{path.name} cannot be tracked because {what}; choose a video file.")
    return streams[0]


def _decoded_frames(container: av.container.InputContainer, stream: av.VideoStream, name: str) -> Iterator:
    """Decode ``stream`` forward from the container's position, skipping damaged packets.

    A damaged packet is logged and skipped (the decoder conceals what it can); a read error ends
    the stream after flushing the frames the decoder still holds.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            logger.warning("%s: reading stopped early (%s); the rest of the file is unreadable", name, exc)
            try:
                yield from stream.codec_context.decode(None)
            except av.FFmpegError:
                pass
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            logger.warning("%s: skipping a damaged packet at pts %s (%s)", name, packet.pts, exc)
            continue
        yield from frames


def _clockwise_rotation(frame: av.VideoFrame, name: str) -> int:
    """The display matrix's rotation as the clockwise turn a player applies: 0/90/180/270."""
    counterclockwise = float(getattr(frame, "rotation", 0) or 0)  # PyAV: counterclockwise, -180..180
    quarter = round(counterclockwise / 90.0)
    if abs(counterclockwise - 90.0 * quarter) > 1.0:
        logger.warning(
            "%s: display rotation %.1f° is not a multiple of 90°; using %d°",
            name,
            counterclockwise,
            90 * quarter,
        )
    return (-90 * quarter) % 360


@dataclass(frozen=True)
class _Demuxed:
    """One pass over the video stream's packets (no decoding)."""

    stream_index: int
    codec: str
    has_audio: bool
    time_base: Fraction
    average_rate: Fraction | None
    packets: list[tuple[int | None, bool, bool]]  # (pts, keyframe, corrupt) of each non-empty packet
    damaged: bool  # the demuxer stopped early


def _demux(path: Path) -> _Demuxed:
    name = path.name
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        packets: list[tuple[int | None, bool, bool]] = []
        damaged = False
        demux = container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                logger.warning("%s: demuxing stopped early (%s)", name, exc)
                damaged = True
                break
            if packet.size:
                packets.append((packet.pts, bool(packet.is_keyframe), bool(packet.is_corrupt)))
        demuxed = _Demuxed(
            stream_index=stream.index,
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
            time_base=stream.time_base or Fraction(1, 1),
            average_rate=stream.average_rate,
            packets=packets,
            damaged=damaged,
        )
    if not packets:
        raise VideoError(f"{name} contains no video frames (it is empty or truncated); upload it again.")
    return demuxed


def _scan(path: Path) -> _Scan:
    """Demux every packet of the video stream (reads the file once, no decoding) and decode frame 0.

    When the demuxer reports damage (a short read, a corrupt packet), the tail from the keyframe
    before the damage is decoded too, so ``num_frames`` counts only frames that really decode.
    """
    name = path.name
    demuxed = _demux(path)
    packets = demuxed.packets
    pts_list = [p for p, _, _ in packets if p is not None]
    indexed = len(pts_list) == len(packets) and len(set(pts_list)) == len(pts_list)
    if not indexed:
        logger.info("%s: the video stream has no usable timestamps; frames are read in decode order", name)
    order = sorted(pts_list) if indexed else list(range(len(packets)))
    keyframe_pts = {p for p, key, _ in packets if key and p is not None} if indexed else {0}
    corrupt_pts = [p for p, _, bad in packets if bad and p is not None] if indexed else []
    damaged = demuxed.damaged or any(bad for _, _, bad in packets)

    # Decode the first frame: proves the stream decodes and carries the display rotation.
    with _open_container(path) as container:
        stream = container.streams[demuxed.stream_index]
        first = next(_decoded_frames(container, stream, name), None)
        if first is None:
            raise VideoError(
                f"No frame of {name} could be decoded (the file is truncated or damaged); "
                "upload it again or re-encode it."
            )
        if indexed and first.pts not in set(order):
            logger.info(
                "%s: decoded timestamps do not match the packets; frames are read in decode order", name
            )
            indexed = False
            order = list(range(len(packets)))
            keyframe_pts = {0}
        if indexed:
            # Frames before the first decodable one (a stream cut mid-GOP) are never shown.
            order = order[bisect.bisect_left(order, first.pts) :]
    scan = _build_scan(path, demuxed, order, first, indexed, keyframe_pts)

    if damaged:
        scan = _drop_undecodable_tail(scan, corrupt_pts)
    return scan


def _build_scan(
    path: Path,
    demuxed: _Demuxed,
    frame_pts: list[int],
    first_frame: av.VideoFrame,
    indexed: bool,
    keyframe_pts: set[int],
) -> _Scan:
    """The scan of frames ``frame_pts`` (timestamps when ``indexed``, else decode positions)."""
    average_rate = demuxed.average_rate
    keyframes = tuple(i for i, p in enumerate(frame_pts) if p in keyframe_pts) if indexed else (0,)
    if indexed:
        times = tuple(float((p - frame_pts[0]) * demuxed.time_base) for p in frame_pts)
    else:
        rate = float(average_rate) if average_rate else 25.0
        times = tuple(i / rate for i in range(len(frame_pts)))
    fps = float(average_rate) if average_rate and average_rate > 0 else 0.0
    if fps <= 0 and len(times) > 1 and times[-1] > times[0]:
        fps = (len(times) - 1) / (times[-1] - times[0])
    return _Scan(
        path=str(path),
        stream_index=demuxed.stream_index,
        num_frames=len(frame_pts),
        pts=tuple(frame_pts) if indexed else None,
        keyframes=keyframes or (0,),
        times=times,
        fps=fps if fps > 0 else 25.0,
        codec=demuxed.codec,
        has_audio=demuxed.has_audio,
        rotation=_clockwise_rotation(first_frame, path.name),
        width=first_frame.width,
        height=first_frame.height,
    )


def _drop_undecodable_tail(scan: _Scan, corrupt_pts: list[int]) -> _Scan:
    """Decode from the keyframe before the first damaged packet to the end; keep what decodes."""
    if scan.pts is not None and corrupt_pts:
        first_bad = min(scan.index_of_pts.get(p, scan.num_frames - 1) for p in corrupt_pts)
    else:
        first_bad = scan.num_frames - 1
    from_frame = scan.keyframe_before(first_bad) if scan.pts is not None else 0
    decoder = _Decoder(scan, 0, 0)
    decoded: set[int] = set()
    try:
        decoder.seek(from_frame)
        while (item := decoder.next()) is not None:
            decoded.add(item[0])
    finally:
        decoder.close()
    keep = [i for i in range(scan.num_frames) if i < from_frame or i in decoded]
    if len(keep) == scan.num_frames:
        return scan
    logger.warning(
        "%s: %d of %d frames are damaged and cannot be decoded; they are left out",
        Path(scan.path).name,
        scan.num_frames - len(keep),
        scan.num_frames,
    )
    keep_set = set(keep)
    renumber = {old: new for new, old in enumerate(keep)}
    return dataclasses.replace(
        scan,
        num_frames=len(keep),
        pts=tuple(scan.pts[i] for i in keep) if scan.pts is not None else None,
        keyframes=tuple(renumber[k] for k in scan.keyframes if k in keep_set) or (0,),
        times=tuple(scan.times[i] for i in keep),
    )


def _scan_cached(path: Path) -> _Scan:
    """:func:`_scan`, remembered per (file, size, mtime) so a reader does not demux again."""
    stat = _check_file(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    with _scans_lock:
        scan = _scans.get(key)
        if scan is not None:
            _scans.move_to_end(key)
            return scan
    scan = _scan(path)
    with _scans_lock:
        _scans[key] = scan
        while len(_scans) > _SCAN_CACHE_SIZE:
            _scans.popitem(last=False)
    return scan


# ---------------------------------------------------------------------------------- probe


def _working_size(source_width: int, source_height: int, max_size: int | None) -> tuple[int, int]:
    scale = 1.0
    if max_size is not None and max(source_width, source_height) > max_size:
        scale = max_size / max(source_width, source_height)
    width = max(2, int(source_width * scale + 1e-6) // 2 * 2)
    height = max(2, int(source_height * scale + 1e-6) // 2 * 2)
    return width, height


def _trim(times: tuple[float, ...], start: float | None, end: float | None, name: str) -> tuple[int, int]:
    """``(start_frame, num_frames)`` of the frames whose time t satisfies ``start <= t < end``."""
    length = times[-1] if times else 0.0
    if start is not None and (start < 0 or not math.isfinite(start)):
        raise VideoError(f"The start time must be 0 s or later, got {start} s.")
    if end is not None and (end <= 0 or not math.isfinite(end)):
        raise VideoError(f"The end time must be after 0 s, got {end} s.")
    if start is not None and end is not None and start >= end:
        raise VideoError(
            f"The start time ({start:g} s) must be before the end time ({end:g} s); fix the trim."
        )
    first = 0 if start is None else bisect.bisect_left(times, start - _TIME_EPS)
    stop = len(times) if end is None else bisect.bisect_left(times, end - _TIME_EPS)
    if first >= len(times):
        raise VideoError(
            f"The start time {start:g} s is past the last frame of {name} (at {length:.2f} s); choose an earlier start."
        )
    if stop <= first:
        raise VideoError(f"No frame of {name} lies between {start or 0:g} s and {end:g} s; widen the trim.")
    return first, stop - first


def probe(
    path: str | os.PathLike[str],
    max_size: int | None = None,
    start: float | None = None,
    end: float | None = None,
) -> VideoInfo:
    """Describe the video at ``path`` (demuxes every packet and decodes one frame; no full decode).

    ``max_size`` caps the longest side of the working frames (aspect kept, both sides rounded
    down to even). ``start``/``end`` trim in seconds from the file's first frame: working frames
    are those shown at ``start <= t < end``. ``timestamps`` are the working frames' presentation
    times in seconds from the file's first frame. ``rotation`` is the clockwise turn a player
    applies (0/90/180/270); ``source_width``/``source_height`` are after it. A still image
    (png/jpg) opens as a one-frame video.

    Raises :class:`VideoError` for a missing, empty, unreadable, audio-only or undecodable file and
    for a trim that selects no frame; :class:`InputError` for a ``max_size`` below 2.
    """
    path = Path(os.path.abspath(path))
    if max_size is not None and max_size < 2:
        raise InputError(f"max_size must be at least 2 pixels, got {max_size}.")
    scan = _scan_cached(path)
    source_width, source_height = (
        (scan.height, scan.width) if scan.rotation in (90, 270) else (scan.width, scan.height)
    )
    width, height = _working_size(source_width, source_height, max_size)
    start_frame, num_frames = _trim(scan.times, start, end, path.name)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=scan.fps,
        num_frames=num_frames,
        source_width=source_width,
        source_height=source_height,
        rotation=scan.rotation,
        codec=scan.codec,
        has_audio=scan.has_audio,
        timestamps=scan.times[start_frame : start_frame + num_frames],
        start_frame=start_frame,
    )


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}:{rest:02d}" if minutes else f"{rest} s"


def check_length(
    info: VideoInfo,
    max_frames: int | None = None,
    max_seconds: float | None = None,
    fix: str = "trim it to the part you need",
) -> None:
    """Refuse a video (working range) longer than ``max_frames`` frames or ``max_seconds`` seconds.

    ``None`` (or 0) means no limit. The length in seconds is the later of ``num_frames / fps`` and
    the last frame's timestamp plus one frame, so variable frame rate videos are not undercounted.
    ``fix`` ends the message (what to do). Raises :class:`VideoError`.
    """
    name = Path(info.path).name
    frame_time = 1.0 / info.fps if info.fps > 0 else 0.0
    seconds = max(info.duration, info.time_of(info.num_frames - 1) + frame_time)
    if max_frames and info.num_frames > max_frames:
        raise VideoError(
            f"{name} has {info.num_frames} frames ({_clock(seconds)}), more than the limit of "
            f"{max_frames} frames; {fix}."
        )
    if max_seconds and seconds > max_seconds + 1e-6:
        raise VideoError(
            f"{name} is {_clock(seconds)} long, more than the limit of {_clock(max_seconds)}; {fix}."
        )


# ---------------------------------------------------------------------------------- decoding


class _Decoder:
    """One open container decoding forward, with keyframe seeks; not thread-safe.

    :meth:`next` returns ``(file_frame_index, av.VideoFrame)`` in presentation order, or None at
    the end. Frames decoded but not returned (before a seek's keyframe) are still counted in
    ``decoded``.
    """

    def __init__(self, scan: _Scan, width: int, height: int) -> None:
        self.scan = scan
        self.width = width
        self.height = height
        self.decoded = 0
        self.converted = 0
        self.seeks = 0
        self._name = Path(scan.path).name
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._frames: Iterator | None = None
        self._pending: tuple[int, av.VideoFrame] | None = None
        self._min_index = 0
        self._counter = 0
        self._last = -1
        self._first_decoded: int | None = None
        self._reformatter = VideoReformatter()

    @property
    def fresh(self) -> bool:
        """Nothing opened yet: the first :meth:`seek` decides where decoding starts."""
        return self._container is None

    @property
    def position(self) -> int:
        """File index of the next frame :meth:`next` should return."""
        return self._pending[0] if self._pending is not None else self._last + 1

    def _restart(self) -> None:
        self._close_container()
        self._container = _open_container(Path(self.scan.path))
        # the scan chose this stream because it is video
        stream = cast(av.VideoStream, self._container.streams[self.scan.stream_index])
        stream.thread_type = "AUTO"
        self._stream = stream
        self._frames = _decoded_frames(self._container, stream, self._name)
        self._pending = None
        self._min_index = 0
        self._counter = 0
        self._last = -1

    def seek(self, file_idx: int) -> None:
        """Position so that the next frame returned is at or before ``file_idx``.

        Seeks to the keyframe before ``file_idx``; if the container lands after it (imprecise
        indexes in some formats), tries earlier keyframes, and finally decodes from the start.
        """
        scan = self.scan
        pos = bisect.bisect_right(scan.keyframes, file_idx) - 1
        step = 1
        while scan.pts is not None and pos >= 0 and scan.keyframes[pos] > 0:
            keyframe = scan.keyframes[pos]
            if self._container is None:
                self._restart()
            assert self._container is not None and self._stream is not None
            self._container.seek(scan.pts[keyframe], stream=self._stream, backward=True, any_frame=False)
            self.seeks += 1
            self._frames = _decoded_frames(self._container, self._stream, self._name)
            self._pending = None
            self._min_index = keyframe  # leading pictures of an open GOP decode wrong after a seek
            self._last = keyframe - 1
            self._first_decoded = None
            first = self.next()
            if first is not None and first[0] <= file_idx:
                self.push_back(first)
                return
            if self._first_decoded is not None and self._first_decoded <= keyframe:
                # Landed right; the frames up to file_idx are damaged, an earlier keyframe won't help.
                if first is not None:
                    self.push_back(first)
                return
            logger.debug(
                "%s: seek to frame %d landed at %s; trying an earlier keyframe",
                self._name,
                keyframe,
                self._first_decoded,
            )
            pos -= step
            step *= 2
        if self._container is None or self.position != 0:
            self._restart()

    def next(self) -> tuple[int, av.VideoFrame] | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            self._last = item[0]
            return item
        if self._frames is None:
            self._restart()
        assert self._frames is not None
        for frame in self._frames:
            self.decoded += 1
            if self.scan.pts is None:
                index: int | None = self._counter
                self._counter += 1
            else:
                index = self.scan.index_of_pts.get(frame.pts) if frame.pts is not None else None
            if self._first_decoded is None:
                self._first_decoded = index
            if index is None or index < self._min_index:
                continue
            self._last = index
            return index, frame
        return None

    def push_back(self, item: tuple[int, av.VideoFrame]) -> None:
        self._pending = item
        self._last = item[0] - 1

    def convert(self, frame: av.VideoFrame) -> np.ndarray:
        """The frame as working-size ``H×W×3`` uint8 RGB, rotation applied (swscale does the scaling)."""
        rotation = self.scan.rotation
        width, height = (self.height, self.width) if rotation in (90, 270) else (self.width, self.height)
        shrink = frame.width > width or frame.height > height
        rgb = self._reformatter.reformat(
            frame, width=width, height=height, format="rgb24", interpolation="AREA" if shrink else "BILINEAR"
        ).to_ndarray()
        if rotation:
            rgb = np.rot90(rgb, k=-rotation // 90)  # np.rot90 turns counterclockwise for k > 0
        self.converted += 1
        return np.ascontiguousarray(rgb)

    def _close_container(self) -> None:
        self._frames = None
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:  # closing must never mask the real error
                logger.debug("closing %s failed", self._name, exc_info=True)
        self._container = None
        self._stream = None

    def close(self) -> None:
        self._close_container()
        self._pending = None


@dataclass
class ReaderStats:
    """Work a :class:`VideoReader` did: frames decoded, frames converted to RGB, seeks."""

    decoded: int = 0
    converted: int = 0
    seeks: int = 0


class VideoReader:
    """Random and sequential access to a probed video's working frames, decoded on demand.

    ``get(i)`` decodes a chunk around ``i`` and keeps recent frames in an LRU cache of
    ``chunk_size × cache_chunks`` frames (memory: that many ``width × height × 3`` bytes, about
    350 MB for 128 frames of 1280×720). Forward sequential access decodes each frame once;
    backward sequential access (SAM 2 propagating in reverse) seeks to the keyframe before a span
    of ``(cache_chunks - 1) × chunk_size`` frames, decodes it once and serves it from the cache.
    ``iter_frames`` streams with its own decoder and does not touch the cache.

    Safe to share between threads (one lock around the cache and decoder).
    """

    def __init__(self, info: VideoInfo, chunk_size: int = 32, cache_chunks: int = 4) -> None:
        if chunk_size < 1 or cache_chunks < 2:
            raise ValueError("chunk_size must be ≥ 1 and cache_chunks ≥ 2")
        self.info = info
        self.chunk_size = int(chunk_size)
        self._capacity = self.chunk_size * int(cache_chunks)
        self._backward_span = self.chunk_size * (int(cache_chunks) - 1)
        self._scan = _scan_cached(Path(info.path))
        if self._scan.num_frames < info.start_frame + info.num_frames:
            raise VideoError(f"{Path(info.path).name} changed since it was opened; open it again.")
        self._lock = threading.RLock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._decoder: _Decoder | None = None
        self._last_request: int | None = None
        self._closed = False
        self._stats = ReaderStats()

    def __len__(self) -> int:
        return self.info.num_frames

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> ReaderStats:
        with self._lock:
            stats = ReaderStats(self._stats.decoded, self._stats.converted, self._stats.seeks)
            if self._decoder is not None:
                stats.decoded += self._decoder.decoded
                stats.converted += self._decoder.converted
                stats.seeks += self._decoder.seeks
            return stats

    @property
    def cached_frames(self) -> int:
        """Decoded frames held in the cache right now (each ``width × height × 3`` bytes)."""
        with self._lock:
            return len(self._cache)

    def close(self) -> None:
        """Release the decoder and the cache; ``get`` afterwards raises."""
        with self._lock:
            self._closed = True
            self._drop_decoder()
            self._cache.clear()

    def _drop_decoder(self) -> None:
        if self._decoder is not None:
            self._stats.decoded += self._decoder.decoded
            self._stats.converted += self._decoder.converted
            self._stats.seeks += self._decoder.seeks
            self._decoder.close()
            self._decoder = None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this VideoReader is closed; open a new one")

    @timing.stage("decode")
    def get(self, frame_idx: int) -> np.ndarray:
        """Working frame ``frame_idx`` (0-based in the trimmed range): ``H×W×3`` uint8 RGB.

        The array is shared with the cache and read-only; copy it before changing it. Raises
        :class:`InputError` for an index outside the video, :class:`VideoError` when the frame
        cannot be decoded at all (a frame the decoder drops mid-stream is replaced by its nearest
        neighbour, with a warning).
        """
        with self._lock:
            self._check_open()
            frame_idx = self.info.check_frame(int(frame_idx))
            frame = self._cache.get(frame_idx)
            if frame is None:
                self._fill(frame_idx)
                frame = self._cache.get(frame_idx)
                if frame is None:
                    raise VideoError(
                        f"Frame {frame_idx} of {Path(self.info.path).name} cannot be decoded (the file is damaged); "
                        "re-encode the video and open it again."
                    )
            self._cache.move_to_end(frame_idx)
            self._last_request = frame_idx
            return frame

    def _store(self, frame_idx: int, frame: np.ndarray) -> None:
        frame.flags.writeable = False
        self._cache[frame_idx] = frame
        self._cache.move_to_end(frame_idx)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    def _fill(self, frame_idx: int) -> None:
        """Decode the span around ``frame_idx`` that the access pattern says comes next."""
        info = self.info
        offset = info.start_frame
        if self._decoder is None:
            self._decoder = _Decoder(self._scan, info.width, info.height)
        decoder = self._decoder
        last = self._last_request
        if last is not None and last - 2 * self.chunk_size <= frame_idx < last:
            lo, hi = max(0, frame_idx - self._backward_span + 1), frame_idx + 1
        else:
            lo, hi = frame_idx, min(info.num_frames, frame_idx + self.chunk_size)
            if hi - lo < self.chunk_size and self._needs_seek(lo + offset):
                lo = max(0, hi - self.chunk_size)  # a jump near the end: take a full chunk before it
        if self._needs_seek(lo + offset):
            decoder.seek(lo + offset)
        file_lo, file_hi = lo + offset, hi + offset
        seen: set[int] = set()
        while (item := decoder.next()) is not None:
            file_idx, av_frame = item
            if file_idx < file_lo:
                continue
            if file_idx >= file_hi:
                decoder.push_back(item)
                break
            frame_idx = file_idx - offset
            seen.add(frame_idx)
            if frame_idx in self._cache:
                self._cache.move_to_end(frame_idx)  # part of this span: not to be evicted by it
            else:
                self._store(frame_idx, decoder.convert(av_frame))
        if len(seen) < hi - lo:
            self._fill_gaps(lo, hi, seen)

    def _needs_seek(self, file_idx: int) -> bool:
        """Whether reaching ``file_idx`` by seeking beats decoding on from where the decoder is."""
        assert self._decoder is not None
        position = self._decoder.position
        if position > file_idx or self._decoder.fresh:
            return True
        return file_idx - position > self.chunk_size and self._scan.keyframe_before(file_idx) > position

    def _fill_gaps(self, lo: int, hi: int, seen: set[int]) -> None:
        """Frames the decoder did not produce inside ``[lo, hi)`` take their nearest decoded neighbour."""
        name = Path(self.info.path).name
        for i in range(lo, hi):
            if i in seen:
                continue
            neighbour = next((j for j in (i - 1, *range(i + 1, hi)) if j in seen and j in self._cache), None)
            if neighbour is None:
                continue
            logger.warning("%s: frame %d could not be decoded; showing frame %d instead", name, i, neighbour)
            self._store(i, self._cache[neighbour])
            seen.add(i)

    def iter_frames(
        self, start: int = 0, stop: int | None = None, step: int = 1
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_idx, frame)`` for ``range(start, stop, step)`` in order, streaming.

        Frames are ``H×W×3`` uint8 RGB (fresh, writable arrays). Frames in between are decoded but
        not converted, and long gaps are skipped with a keyframe seek, so a large ``step`` is
        cheap. A frame that cannot be decoded is skipped with a warning. Uses its own decoder:
        other threads can call :meth:`get` meanwhile.
        """
        self._check_open()
        if step < 1:
            raise InputError(f"step must be 1 or more, got {step}.")
        stop = self.info.num_frames if stop is None else min(int(stop), self.info.num_frames)
        start = max(0, int(start))
        return self._iter(start, stop, int(step))

    def _iter(self, start: int, stop: int, step: int) -> Iterator[tuple[int, np.ndarray]]:
        wanted = iter(range(start, stop, step))
        target = next(wanted, None)
        if target is None:
            return
        offset = self.info.start_frame
        decoder = _Decoder(self._scan, self.info.width, self.info.height)
        name = Path(self.info.path).name
        try:
            decoder.seek(target + offset)
            while target is not None:
                item = decoder.next()
                if item is None:
                    logger.warning(
                        "%s: frames %d to %d could not be decoded; skipped", name, target, stop - 1
                    )
                    return
                file_idx, av_frame = item
                frame_idx = file_idx - offset
                if frame_idx < target:
                    continue
                while target is not None and target < frame_idx:
                    logger.warning("%s: frame %d could not be decoded; skipped", name, target)
                    target = next(wanted, None)
                if target != frame_idx:
                    continue
                yield frame_idx, decoder.convert(av_frame)
                target = next(wanted, None)
                if target is not None:
                    file_target = target + offset
                    if (
                        file_target - file_idx > self.chunk_size
                        and self._scan.keyframe_before(file_target) > file_idx
                    ):
                        decoder.seek(file_target)
        finally:
            decoder.close()
            with self._lock:
                self._stats.decoded += decoder.decoded
                self._stats.converted += decoder.converted
                self._stats.seeks += decoder.seeks
