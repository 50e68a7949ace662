"""Cutting the tracked overlay into short mp4 segments for ``gr.Video(streaming=True)``.

Gradio 6 streams a video output from the mp4 (or .ts) files a generator yields: it probes each
with ``ffprobe``, remuxes it into an HLS segment with ``ffmpeg`` and the browser plays them in
order (hls.js). So a segment is cut when enough frames for a smooth second have arrived, or when
the person has waited long enough to deserve to see something (tracking on a CPU is slower than
real time). The mp4 writing itself is the library's (:class:`tracker.render.OverlayWriter`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .services import OpenSegmentWriter

logger = logging.getLogger(__name__)


class SegmentStream:
    """Feed overlay frames in display order; :meth:`add` returns a finished segment when one is due."""

    def __init__(
        self,
        folder: Path,
        fps: float,
        size: tuple[int, int],
        open_writer: OpenSegmentWriter,
        max_frames: int | None = None,
        max_wait: float = 2.5,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fps = fps if fps > 0 else 25.0
        self.size = size
        self.open_writer = open_writer
        self.max_frames = max_frames or max(1, round(self.fps))
        self.max_wait = max_wait
        self.segments: list[Path] = []
        self._writer = None
        self._path: Path | None = None
        self._frames = 0
        self._opened_at = 0.0

    def add(self, frame: np.ndarray) -> Path | None:
        if self._writer is None:
            self._path = self.folder / f"segment-{len(self.segments):05d}.mp4"
            self._writer = self.open_writer(self._path, self.fps, self.size)
            self._frames = 0
            self._opened_at = time.monotonic()
        self._writer.write(frame)
        self._frames += 1
        if self._frames >= self.max_frames or time.monotonic() - self._opened_at >= self.max_wait:
            return self.flush()
        return None

    def flush(self) -> Path | None:
        """Close the segment in progress (if it has frames) and return its path."""
        writer, path = self._writer, self._path
        self._writer, self._path = None, None
        if writer is None or path is None:
            return None
        writer.close()
        if self._frames == 0:
            return None
        self.segments.append(path)
        return path

    def abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:
                logger.debug("closing an aborted segment failed", exc_info=True)
