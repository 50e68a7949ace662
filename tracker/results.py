"""Tracked results for a whole video, kept compact.

A :class:`ResultStore` holds, per ``(frame, object)``, the mask as a COCO *compressed* RLE
(``pycocotools.mask.encode`` of the Fortran-ordered ``uint8`` mask), SAM 2's object score and a
few statistics computed once at :meth:`ResultStore.put` time (area, tight box, centroid), so
trajectories, flags and the COCO / MOT writers never have to decode a mask. Memory is the RLE
(~400 bytes for a 180 px blob at 720p) plus ~100 bytes per entry and ~250 per frame: about
0.7 KB per frame for one object, so a 10-minute 30 fps 720p video (18 000 frames) with two
objects holds ~20 MB instead of the 16 GB its raw masks would take.

Conventions (see :mod:`tracker.types`):

* frames are 0-based indices into the working video, ``0 <= frame < num_frames``;
* masks are ``H×W`` bool at working resolution (``height × width`` of the store);
* ``box`` is ``xyxy`` with pixel edges (``x1`` = last column + 1), as :func:`tracker.masks.mask_box`;
* ``centroid`` is ``(cx, cy)`` = the mean *column index* and mean *row index* of the mask's
  pixels: a single pixel at column 3, row 5 has centroid ``(3.0, 5.0)``. Add 0.5 for the
  geometric centre in pixel-edge coordinates;
* an object whose mask is empty on a frame is stored (area 0, ``box`` and ``centroid`` None):
  "tracked but not visible" differs from "not tracked on this frame".

A frame is in the store once it has been :meth:`~ResultStore.put` (even with no objects) until
:meth:`~ResultStore.drop_frames` removes it. Every method takes the store's lock, so one store
can be shared by a tracking thread and a rendering/exporting thread.

The file written by :meth:`ResultStore.save` is JSON lines (gzip-compressed when the name ends
in ``.gz``): a header line ``{"format": "tvt-results", "version": 1, "width", "height",
"num_frames"}`` then one line per frame ``{"frame": f, "objects": [{"id", "score", "area",
"box", "centroid", "counts"}]}`` where ``counts`` is the RLE counts string. Loading restores the
store exactly (masks, scores and statistics) without decoding any mask.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from pycocotools import mask as mask_utils

from . import timing
from .errors import ProjectError
from .masks import MaskStats, decode_rle, encode_mask, mask_stats, stack_stats
from .types import Box, FrameResult
from .untrusted import DEFAULT_LIMITS, rle_runs

logger = logging.getLogger(__name__)

RESULTS_FORMAT = "tvt-results"
MAX_PIXELS = DEFAULT_LIMITS.max_pixels  # a results file's width × height when no video is given
RESULTS_VERSION = 1

# Python-object cost of an entry besides its packed bytes (bytes header, dict slot, int key) and
# of a stored frame (its dict), measured with tracemalloc on CPython 3.11.
_ENTRY_OVERHEAD = 60
_FRAME_OVERHEAD = 250


# One (frame, object) entry is a single bytes object: the statistics packed with struct, then the
# RLE counts. Python objects per entry (tuples of floats, dataclasses) cost ~500 bytes, more
# than the RLE of a typical mask; packed, the overhead is ~75 bytes.
_STATS = struct.Struct("<iiiiiddf")  # area, x0, y0, x1, y1, cx, cy, score


def _pack(stats: MaskStats, counts: bytes) -> bytes:
    if stats.area and stats.box is not None and stats.centroid is not None:
        x0, y0, x1, y1 = (int(v) for v in stats.box)
        packed = _STATS.pack(stats.area, x0, y0, x1, y1, stats.centroid[0], stats.centroid[1], stats.score)
    else:
        packed = _STATS.pack(0, 0, 0, 0, 0, 0.0, 0.0, stats.score)
    return packed + counts


def _unpack(entry: bytes) -> MaskStats:
    area, x0, y0, x1, y1, cx, cy, score = _STATS.unpack_from(entry)
    if area == 0:
        return MaskStats(0, None, None, score)
    return MaskStats(area, (float(x0), float(y0), float(x1), float(y1)), (cx, cy), score)


def _box_from(values: Iterable[Any]) -> Box:
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1


def _counts(entry: bytes) -> bytes:
    return entry[_STATS.size :]


class ResultStore:
    """Per-frame, per-object tracked masks for one video, stored as compressed RLE.

    ``width``/``height`` are the working-video size every mask must have; ``num_frames`` bounds
    the frame indices. See the module docstring for the conventions and the file format.
    """

    def __init__(self, width: int, height: int, num_frames: int) -> None:
        if width < 1 or height < 1 or num_frames < 0:
            raise ValueError(f"bad ResultStore size {width}×{height}, {num_frames} frames")
        self.width = int(width)
        self.height = int(height)
        self.num_frames = int(num_frames)
        self._frames: dict[int, dict[int, bytes]] = {}  # frame → object → packed entry
        self._lock = threading.RLock()

    # -- writing ---------------------------------------------------------------------------

    @timing.stage("store")
    def put(self, result: FrameResult, stats: list[MaskStats] | None = None) -> None:
        """Store ``result``: replaces this frame's entries for the objects in it, keeps the others.

        ``stats``: :func:`tracker.masks.stack_stats` of ``result`` when the caller has it already.
        """
        if (result.height, result.width) != (self.height, self.width):
            raise ValueError(
                f"FrameResult is {result.width}×{result.height} but the store holds {self.width}×{self.height} masks"
            )
        self._check_frame(result.frame_idx)
        entries = {}
        all_stats = stack_stats(result.masks, result.scores) if stats is None else stats
        for object_id, mask, one in zip(result.object_ids, result.masks, all_stats, strict=True):
            entries[int(object_id)] = _pack(one, encode_mask(mask)["counts"])
        with self._lock:
            self._frames.setdefault(int(result.frame_idx), {}).update(entries)

    def put_rle(self, frame_idx: int, object_id: int, rle: dict, score: float = 1.0) -> None:
        """Store one object's mask given as a COCO RLE (compressed or not) on ``frame_idx``."""
        self._check_frame(frame_idx)
        if list(rle.get("size", ())) != [self.height, self.width]:
            raise ValueError(f"RLE size {rle.get('size')} is not [{self.height}, {self.width}]")
        if not isinstance(rle["counts"], (bytes, str)):
            rle = mask_utils.frPyObjects(rle, self.height, self.width)
        counts = rle["counts"].encode("ascii") if isinstance(rle["counts"], str) else rle["counts"]
        rle = {"size": [self.height, self.width], "counts": counts}
        stats = mask_stats(decode_rle(rle), float(np.float32(score)))
        with self._lock:
            self._frames.setdefault(int(frame_idx), {})[int(object_id)] = _pack(stats, counts)

    def remove_object(self, object_id: int) -> int:
        """Forget ``object_id`` on every frame; returns how many entries went."""
        removed = 0
        with self._lock:
            for entries in self._frames.values():
                if entries.pop(int(object_id), None) is not None:
                    removed += 1
        return removed

    def drop_frames(self, frames: Iterable[int]) -> int:
        """Forget whole frames (e.g. before re-tracking them); returns how many were stored."""
        dropped = 0
        with self._lock:
            for frame_idx in frames:
                if self._frames.pop(int(frame_idx), None) is not None:
                    dropped += 1
        return dropped

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    # -- reading ---------------------------------------------------------------------------

    def get(self, frame_idx: int) -> FrameResult | None:
        """The decoded frame (object ids ascending), or None if the frame was never stored."""
        with self._lock:
            entries = self._frames.get(int(frame_idx))
            if entries is None:
                return None
            items = sorted(entries.items())
        object_ids = tuple(object_id for object_id, _ in items)
        if not items:
            masks = np.zeros((0, self.height, self.width), dtype=bool)
        else:
            rles = [self._rle(entry) for _, entry in items]
            # decode gives H×W×N Fortran order; moving N first keeps each mask contiguous-ish
            masks = np.ascontiguousarray(np.moveaxis(mask_utils.decode(rles), -1, 0)).view(bool)
        scores = np.array([_unpack(entry).score for _, entry in items], dtype=np.float32)
        return FrameResult(int(frame_idx), object_ids, masks, scores)

    def mask(self, frame_idx: int, object_id: int) -> np.ndarray | None:
        """``H×W`` bool mask of one object on one frame, or None when not stored."""
        rle = self.rle(frame_idx, object_id)
        return None if rle is None else decode_rle(rle)

    def rle(self, frame_idx: int, object_id: int) -> dict | None:
        """The stored COCO RLE ``{"size": [h, w], "counts": bytes}`` without decoding, or None."""
        entry = self._entry(frame_idx, object_id)
        return None if entry is None else self._rle(entry)

    def stats(self, frame_idx: int, object_id: int) -> MaskStats | None:
        entry = self._entry(frame_idx, object_id)
        return None if entry is None else _unpack(entry)

    def frames(self) -> list[int]:
        """Stored frame indices, ascending."""
        with self._lock:
            return sorted(self._frames)

    def objects_on(self, frame_idx: int) -> list[int]:
        """Object ids stored on ``frame_idx``, ascending (empty if the frame is not stored)."""
        with self._lock:
            return sorted(self._frames.get(int(frame_idx), ()))

    @property
    def object_ids(self) -> list[int]:
        """Every object id stored on any frame, ascending."""
        with self._lock:
            ids: set[int] = set()
            for entries in self._frames.values():
                ids.update(entries)
        return sorted(ids)

    def items(self) -> Iterator[tuple[int, int, dict, MaskStats]]:
        """``(frame, object_id, rle, stats)`` in frame then object order, from a snapshot."""
        with self._lock:
            snapshot = sorted(
                (frame_idx, object_id, entry)
                for frame_idx, entries in self._frames.items()
                for object_id, entry in entries.items()
            )
        for frame_idx, object_id, entry in snapshot:
            yield frame_idx, object_id, self._rle(entry), _unpack(entry)

    def __len__(self) -> int:
        """Number of stored frames."""
        with self._lock:
            return len(self._frames)

    def __contains__(self, frame_idx: object) -> bool:
        with self._lock:
            return frame_idx in self._frames

    def nbytes(self) -> int:
        """Approximate memory held by the stored results, in bytes."""
        with self._lock:
            total = len(self._frames) * _FRAME_OVERHEAD
            for entries in self._frames.values():
                for entry in entries.values():
                    total += len(entry) + _ENTRY_OVERHEAD
        return total

    def copy(self) -> ResultStore:
        """An independent store with the same entries (entries are immutable, so this is cheap)."""
        other = ResultStore(self.width, self.height, self.num_frames)
        with self._lock:
            other._frames = {frame_idx: dict(entries) for frame_idx, entries in self._frames.items()}
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResultStore):
            return NotImplemented
        if (self.width, self.height, self.num_frames) != (other.width, other.height, other.num_frames):
            return False
        with self._lock:
            mine = {f: dict(e) for f, e in self._frames.items()}
        with other._lock:
            theirs = {f: dict(e) for f, e in other._frames.items()}
        return mine == theirs

    # Defining __eq__ leaves __hash__ None: a store is mutable, so it is not hashable.

    def __repr__(self) -> str:
        return (
            f"ResultStore({self.width}×{self.height}, {len(self)}/{self.num_frames} frames, "
            f"objects={self.object_ids}, ~{self.nbytes() / 1e6:.2f} MB)"
        )

    # -- files -----------------------------------------------------------------------------

    def _header(self) -> dict:
        return {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "width": self.width,
            "height": self.height,
            "num_frames": self.num_frames,
        }

    def _records(self) -> list[dict]:
        """One JSON-ready record per stored frame, in frame order, from a snapshot."""
        with self._lock:
            snapshot = sorted((f, sorted(e.items())) for f, e in self._frames.items())
        return [
            {
                "frame": frame_idx,
                "objects": [
                    {
                        "id": object_id,
                        "score": stats.score,
                        "area": stats.area,
                        "box": stats.box,
                        "centroid": stats.centroid,
                        "counts": _counts(entry).decode("ascii"),
                    }
                    for object_id, entry in entries
                    for stats in (_unpack(entry),)
                ],
            }
            for frame_idx, entries in snapshot
        ]

    @classmethod
    def _from_parts(
        cls, header: object, records: Iterable[Any], source: str, expect: tuple[int, int, int] | None = None
    ) -> ResultStore:
        """Build a store from a header and frame records; anything malformed → :class:`ProjectError`.

        ``expect`` = ``(width, height, num_frames)`` of the video the results must be for (checked
        before any record is read); without it the size is capped at ``MAX_PIXELS``. Every
        mask's runs must cover exactly ``width × height`` pixels (checked without decoding), so
        no later view decodes past a mask's end.
        """
        position = "header"
        try:
            if not isinstance(header, dict) or header.get("format") != RESULTS_FORMAT:
                raise ProjectError(f"{source} is not a tracked-results file (no '{RESULTS_FORMAT}' header).")
            if int(header.get("version", 0)) > RESULTS_VERSION:
                raise ProjectError(
                    f"{source} was written by a newer version of the tracker (results format "
                    f"{header['version']}, this one reads up to {RESULTS_VERSION}); update the tracker."
                )
            store = cls(int(header["width"]), int(header["height"]), int(header["num_frames"]))
            _check_size(store, expect, source)
            pixels = store.width * store.height
            frames: dict[int, dict[int, bytes]] = {}
            for number, record in enumerate(records, start=1):
                position = f"frame record {number}"
                frame_idx = store._check_frame(int(record["frame"]))
                entries = frames.setdefault(frame_idx, {})
                for obj in record["objects"]:
                    box = obj["box"]
                    centroid = obj["centroid"]
                    stats = MaskStats(
                        int(obj["area"]),
                        None if box is None else _box_from(box),
                        None if centroid is None else (float(centroid[0]), float(centroid[1])),
                        float(obj["score"]),
                    )
                    counts = obj["counts"].encode("ascii")
                    if int(rle_runs(counts).sum()) != pixels:
                        raise ValueError(
                            f"object {obj['id']}'s mask does not cover {store.width}×{store.height}"
                        )
                    entries[int(obj["id"])] = _pack(stats, counts)
        except ProjectError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, EOFError, OSError, OverflowError) as exc:
            raise ProjectError(
                f"{source} is corrupt ({position}: {type(exc).__name__}: {exc}); track the video again."
            ) from exc
        store._frames = frames
        return store

    def to_dict(self) -> dict:
        """The whole store as one JSON-ready dict: the header fields plus ``"frames": [records]``."""
        return {**self._header(), "frames": self._records()}

    @classmethod
    def from_dict(
        cls, data: object, source: str = "results", expect: tuple[int, int, int] | None = None
    ) -> ResultStore:
        """Inverse of :meth:`to_dict`; malformed data raises :class:`ProjectError` (``expect``: see ``read``)."""
        frames = data.get("frames", []) if isinstance(data, dict) else []
        if not isinstance(frames, list):
            frames = [None]  # reported as a corrupt record
        return cls._from_parts(data, frames, source, expect)

    def dump(self, stream: IO[str]) -> None:
        """Write the JSON-lines form (see module docstring) to a text stream."""
        stream.write(json.dumps(self._header()) + "\n")
        for record in self._records():
            stream.write(json.dumps(record, separators=(",", ":")) + "\n")

    @classmethod
    def read(
        cls, stream: IO[str], source: str = "results", expect: tuple[int, int, int] | None = None
    ) -> ResultStore:
        """Parse what :meth:`dump` wrote; a malformed stream raises :class:`ProjectError`.

        ``expect`` = ``(width, height, num_frames)`` of the open video: results of another size or
        length are refused before any record is read.
        """

        def records() -> Iterator[object]:
            for line in stream:
                if line.strip():
                    yield json.loads(line)

        try:
            header = json.loads(stream.readline() or "null")
        except ValueError as exc:
            raise ProjectError(f"{source} is not a tracked-results file (not JSON lines: {exc}).") from exc
        return cls._from_parts(header, records(), source, expect)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the store to ``path`` atomically (gzip when the name ends in ``.gz``)."""
        path = Path(path)
        with atomic_write(path, "wb") as raw:
            if path.suffix == ".gz":
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped:
                    with io.TextIOWrapper(zipped, encoding="ascii") as text:
                        self.dump(text)
            else:
                plain = io.TextIOWrapper(raw, encoding="ascii")
                self.dump(plain)
                plain.flush()
                plain.detach()  # leave ``raw`` open for atomic_write to fsync and close
        logger.debug("saved %d frames of results to %s", len(self), path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ResultStore:
        """Read a file written by :meth:`save`; a missing or corrupt file raises :class:`ProjectError`."""
        path = Path(path)
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rt", encoding="ascii") as text:
                    return cls.read(text, source=path.name)
            with open(path, encoding="ascii") as text:
                return cls.read(text, source=path.name)
        except FileNotFoundError as exc:
            raise ProjectError(f"The results file {path.name} does not exist.") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError(f"The results file {path.name} is unreadable ({exc}).") from exc

    # -- helpers ---------------------------------------------------------------------------

    def _check_frame(self, frame_idx: int) -> int:
        if not 0 <= int(frame_idx) < self.num_frames:
            raise ValueError(f"frame {frame_idx} is outside 0..{self.num_frames - 1}")
        return int(frame_idx)

    def _entry(self, frame_idx: int, object_id: int) -> bytes | None:
        with self._lock:
            return self._frames.get(int(frame_idx), {}).get(int(object_id))

    def _rle(self, entry: bytes) -> dict:
        return {"size": [self.height, self.width], "counts": _counts(entry)}


def _umask() -> int:
    """The process umask, read without changing it (Linux); 0o022 where it cannot be read."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _check_size(store: ResultStore, expect: tuple[int, int, int] | None, source: str) -> None:
    """The header's size and length against the open video (or, without one, the pixel cap)."""
    found = (store.width, store.height, store.num_frames)
    if expect is not None and found != tuple(expect):
        raise ProjectError(
            f"{source} holds results that do not match the video ({store.width}×{store.height}, "
            f"{store.num_frames} frames; the video is {expect[0]}×{expect[1]}, {expect[2]} frames): "
            "the file is damaged or for another video."
        )
    if store.width * store.height > MAX_PIXELS:
        raise ProjectError(
            f"{source} holds results of {store.width}×{store.height} pixels, over the {MAX_PIXELS} allowed."
        )


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success ``os.replace`` it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; results follow the umask
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


# MaskStats, encode_mask and decode_rle live in tracker.masks; re-exported for the readers of
# stored results (project files, exports) that import them from here.
__all__ = ["MaskStats", "ResultStore", "atomic_write", "decode_rle", "encode_mask"]
