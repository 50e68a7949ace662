"""Reading files a stranger made: every declared size is checked before anything is decoded.

Project files and annotation files come from uploads. A few hundred bytes can declare a mask of
300000×300000 pixels, a video of five million frames or a zip member that inflates a
thousand-fold, and the decoders (pycocotools, Pillow, zlib, json) allocate what they are told
before anything else looks. The helpers here read such inputs with limits *first*:

* :func:`read_file` / :func:`read_member` — bytes with a cap (a zip member's declared size is
  checked, then the bytes actually inflated are counted; compression ratios past
  :attr:`Limits.max_ratio` are refused);
* :func:`parse_json` — JSON with a byte cap, nesting bombs refused;
* :func:`png_header` / :func:`check_png` — a PNG's width, height and bit depth from its IHDR
  chunk, compared with the open video and :attr:`Limits.max_png_pixels` before decoding;
* :func:`check_rle` / :func:`check_polygons` — a COCO segmentation's size and runs (or
  coordinates) compared with the video's ``(height, width)`` before pycocotools sees it.

Everything refused raises :class:`UntrustedInput` (an :class:`~tracker.errors.InputError`)
whose message is one sentence naming the file and the bound.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

MB = 1 << 20


class UntrustedInput(InputError):
    """An uploaded file declares more than the open video (or a fixed cap) allows."""


@dataclass(frozen=True)
class Limits:
    """Caps on what one project or annotation file may make the server hold (README "Limits")."""

    max_json_bytes: int = 256 * MB  # a JSON file (annotations, a project with inline results)
    max_manifest_bytes: int = 16 * MB  # a project's manifest.json inside a .tvt
    max_member_bytes: int = 256 * MB  # any one zip member, inflated
    max_ratio: int = 200  # inflated / compressed, for members over 1 MB
    max_members: int = 20_000  # entries in a zip
    max_frames: int = 100_000  # frames (PNG masks) in one file (never more than the open video's)
    max_png_pixels: int = 40_000_000  # width × height of one PNG mask
    max_ids_per_png: int = 255  # objects in one PNG mask (and in one import)
    max_polygon_points: int = 100_000  # per annotation
    max_mask_bytes: int = 512 * MB  # the imported masks, kept as RLE
    max_pixels: int = 40_000_000  # any mask's height × width when no video is open to compare with


DEFAULT_LIMITS = Limits()


def _mb(value: int) -> str:
    return f"{value / MB:.0f} MB" if value >= MB else f"{value} bytes"


# ---------------------------------------------------------------------------- bytes
def read_file(path: Path, cap: int, what: str = "file") -> bytes:
    """The whole file, refused when it is larger than ``cap`` bytes (checked before reading)."""
    size = os.stat(path).st_size
    if size > cap:
        raise UntrustedInput(f"{path.name} is {_mb(size)}, over the {_mb(cap)} a {what} may have.")
    with open(path, "rb") as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:  # it grew meanwhile
        raise UntrustedInput(f"{path.name} is over the {_mb(cap)} a {what} may have.")
    return data


def open_zip(path: Path, limits: Limits = DEFAULT_LIMITS) -> zipfile.ZipFile:
    """A zip whose number of members is within :attr:`Limits.max_members`."""
    archive = zipfile.ZipFile(path)
    if len(archive.infolist()) > limits.max_members:
        count = len(archive.infolist())
        archive.close()
        raise UntrustedInput(f"{path.name} holds {count} files, over the {limits.max_members} allowed.")
    return archive


def read_member(archive: zipfile.ZipFile, name: str, cap: int, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """One member's bytes, inflated at most ``cap`` (+1) bytes far whatever its header claims."""
    info = archive.getinfo(name)
    source = Path(str(archive.filename or "the zip")).name
    if info.file_size > cap:
        raise UntrustedInput(
            f"{name} in {source} inflates to {_mb(info.file_size)}, over the {_mb(cap)} allowed."
        )
    if info.file_size > MB and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        raise UntrustedInput(
            f"{name} in {source} inflates {info.file_size // max(info.compress_size, 1)}-fold "
            f"(over {limits.max_ratio}-fold): it is a zip bomb or damaged."
        )
    with archive.open(info) as member:
        data = member.read(cap + 1)
    if len(data) > cap:  # the header lied about the size
        raise UntrustedInput(f"{name} in {source} inflates past the {_mb(cap)} allowed.")
    return data


def parse_json(raw: bytes, source: str) -> Any:
    """JSON from bytes; not-JSON and nesting too deep to parse raise :class:`UntrustedInput`."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise UntrustedInput(f"{source} nests too deeply to be a project or annotation file.") from None
    except UnicodeDecodeError as exc:
        raise UntrustedInput(f"{source} is not a JSON file (not text: it is binary or damaged).") from exc
    except json.JSONDecodeError as exc:
        raise UntrustedInput(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from exc


# ---------------------------------------------------------------------------- PNGs
@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    colour_type: int


def png_header(data: bytes, name: str) -> PngHeader:
    """Width, height, bit depth and colour type from the IHDR chunk (nothing decoded)."""
    if len(data) < 33 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise UntrustedInput(f"{name} is not a PNG file.")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    return PngHeader(width, height, bit_depth, colour_type)


def check_png(
    header: PngHeader, name: str, size: tuple[int, int] | None, limits: Limits = DEFAULT_LIMITS
) -> None:
    """Refuse a PNG over the pixel cap, or (``size`` = the video's ``(height, width)``) of another shape."""
    pixels = header.width * header.height
    if not pixels:
        raise UntrustedInput(f"{name} is an empty PNG (0 pixels).")
    if pixels > limits.max_png_pixels:
        raise UntrustedInput(
            f"{name} is {header.width}×{header.height}, over the {limits.max_png_pixels / 1e6:.0f} megapixels "
            "a mask may have."
        )
    if size is not None:
        check_shape(header.height, header.width, size, name)


def check_shape(height: int, width: int, size: tuple[int, int], source: str) -> None:
    """Masks must be the video's size, or the same shape no larger than 4× each way (rescaled)."""
    video_h, video_w = size
    if (height, width) == (video_h, video_w):
        return
    if height < 1 or width < 1 or abs(width / height - video_w / video_h) > 0.02 or width > 4 * video_w:
        raise UntrustedInput(
            f"The masks in {source} are {width}×{height} but the video is {video_w}×{video_h}: "
            "import annotations made for this video."
        )


def check_ids(labels: np.ndarray, name: str, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """The object ids (non-zero values) of a decoded label image, at most :attr:`Limits.max_ids_per_png`."""
    ids = np.unique(labels)
    ids = ids[ids != 0]
    if len(ids) > limits.max_ids_per_png:
        raise UntrustedInput(
            f"{name} holds {len(ids)} object ids, over the {limits.max_ids_per_png} one mask may have."
        )
    return ids


# ---------------------------------------------------------------------------- COCO segmentations
def rle_runs(counts: str | bytes) -> np.ndarray:
    """The runs of a COCO compressed RLE counts string (pycocotools' ``rleFrString``, checked).

    Raises ``ValueError`` for characters outside the alphabet or a truncated last run.
    """
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    if not data:
        return np.zeros(0, dtype=np.int64)
    codes = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    if codes.min() < 0 or codes.max() > 63:
        raise ValueError("characters outside the RLE alphabet")
    more = (codes & 0x20) != 0
    if more[-1]:
        raise ValueError("the last run is cut off")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    place = np.arange(len(codes)) - np.repeat(starts, ends - starts + 1)
    if place.max() > 11:
        raise ValueError("a run is too long")
    values = np.add.reduceat((codes & 0x1F) << (5 * place), starts)
    negative = (codes[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * (place[ends][negative] + 1))
    runs = values.copy()
    runs[2::2] = np.cumsum(values[2::2])  # from the third run on, each is stored as a difference
    runs[1::2] = np.cumsum(values[1::2])
    runs[0] = values[0]
    return runs


def check_rle(segmentation: dict, size: tuple[int, int], source: str) -> None:
    """A COCO RLE must declare exactly ``size`` (``(height, width)``) and its runs must cover it exactly.

    pycocotools allocates the declared size and writes the runs without bounds checks, so both
    are compared here first.
    """
    declared = segmentation.get("size")
    try:
        height, width = (int(v) for v in declared)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise UntrustedInput(f"A mask in {source} has no valid size ({declared!r}).") from None
    if (height, width) != tuple(size):
        raise UntrustedInput(
            f"A mask in {source} is {width}×{height} but the video is {size[1]}×{size[0]}: "
            "the file is damaged or was made for another video."
        )
    counts = segmentation.get("counts")
    try:
        if isinstance(counts, list):
            runs = np.asarray(counts, dtype=np.int64)
        elif isinstance(counts, (str, bytes)):
            runs = rle_runs(counts)
        else:
            raise ValueError(f"counts of type {type(counts).__name__}")
    except (ValueError, TypeError, OverflowError) as exc:
        raise UntrustedInput(f"A mask in {source} is damaged ({exc}).") from None
    if (
        runs.ndim != 1
        or (runs.size and (runs.min() < 0 or runs.max() >= 1 << 32))
        or int(runs.sum()) != height * width
    ):
        raise UntrustedInput(
            f"A mask in {source} is damaged: its runs do not cover its {width}×{height} pixels exactly."
        )


def check_rle_within(segmentation: Any, max_pixels: int, source: str) -> None:
    """A COCO RLE checked against its own declared size, which must be at most ``max_pixels``."""
    if not isinstance(segmentation, dict):
        raise UntrustedInput(f"A mask in {source} is not an RLE mask.")
    try:
        height, width = (int(v) for v in segmentation.get("size"))  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise UntrustedInput(
            f"A mask in {source} has no valid size ({segmentation.get('size')!r})."
        ) from None
    if height < 1 or width < 1 or height * width > max_pixels:
        raise UntrustedInput(
            f"A mask in {source} claims {width}×{height} pixels, over the {max_pixels} allowed."
        )
    check_rle(segmentation, (height, width), source)


def check_polygons(
    polygons: list, size: tuple[int, int], source: str, limits: Limits = DEFAULT_LIMITS
) -> None:
    """Polygon coordinates must lie within the frame (one pixel of slack) before rasterizing."""
    height, width = size
    points = 0
    for polygon in polygons:
        try:
            xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise UntrustedInput(f"A polygon in {source} is damaged (not pairs of numbers).") from None
        if len(xy) < 3:
            raise UntrustedInput(f"A polygon in {source} has fewer than 3 points.")
        points += len(xy)
        if points > limits.max_polygon_points:
            raise UntrustedInput(f"A polygon in {source} has over {limits.max_polygon_points} points.")
        if len(xy) and (
            not np.isfinite(xy).all()
            or xy[:, 0].min() < -1
            or xy[:, 1].min() < -1
            or xy[:, 0].max() > width + 1
            or xy[:, 1].max() > height + 1
        ):
            raise UntrustedInput(
                f"A polygon in {source} reaches outside the {width}×{height} frame: "
                "the file is damaged or was made for another video."
            )


def check_segmentation(
    segmentation: Any, size: tuple[int, int], source: str, limits: Limits = DEFAULT_LIMITS
) -> None:
    """:func:`check_rle` or :func:`check_polygons`, whichever ``segmentation`` is (None passes)."""
    if segmentation is None or (isinstance(segmentation, list) and not segmentation):
        return
    if isinstance(segmentation, list):
        check_polygons(segmentation, size, source, limits)
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        check_rle(segmentation, size, source)
    else:
        raise UntrustedInput(f"A segmentation in {source} is neither polygons nor an RLE mask.")


def check_frames(count: int, num_frames: int, source: str, what: str = "frames") -> None:
    """A declared frame count (or the last frame + 1) must fit the open video."""
    if count > num_frames:
        raise UntrustedInput(
            f"{source} has {count} {what} but this video has {num_frames} frames: "
            "import annotations made for this video."
        )


__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "PngHeader",
    "UntrustedInput",
    "check_frames",
    "check_ids",
    "check_png",
    "check_polygons",
    "check_rle",
    "check_rle_within",
    "check_segmentation",
    "check_shape",
    "open_zip",
    "parse_json",
    "png_header",
    "read_file",
    "read_member",
    "rle_runs",
]
