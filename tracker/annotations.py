"""Masks made elsewhere: the readers (DAVIS PNGs, COCO, YouTube-VIS) and the checked import.

:func:`read_annotations` is what "Import annotations…" (``Workspace.import_annotations``) runs
on an uploaded file: every declared size, frame count, id count and PNG header is compared with
the open video and with :class:`tracker.untrusted.Limits` *before* anything is decoded (see
:mod:`tracker.untrusted`), masks are decoded one at a time, fitted to the video and kept as COCO
RLE. A file that does not fit raises :class:`~tracker.untrusted.UntrustedInput` (an
:class:`~tracker.errors.InputError`) with one sentence; nothing is changed.

:func:`read_png_masks`, :func:`read_coco` and :func:`read_ytvis` return whole ``H×W`` bool masks
(:class:`ImportedAnnotations`) for evaluation and tests; they apply the fixed caps, and the
video's size and length when given ``expect``.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .errors import InputError
from .masks import decode_rle, encode_mask, resize_mask
from .results import ResultStore
from .types import FrameResult, VideoInfo
from .untrusted import (
    DEFAULT_LIMITS,
    Limits,
    UntrustedInput,
    check_frames,
    check_ids,
    check_png,
    check_segmentation,
    check_shape,
    open_zip,
    png_header,
    read_file,
    read_member,
)

logger = logging.getLogger(__name__)


class Expect(NamedTuple):
    """What the open video allows: masks ``height × width`` (or the same shape), ``num_frames`` frames."""

    height: int
    width: int
    num_frames: int

    @classmethod
    def of(cls, info: VideoInfo) -> Expect:
        return cls(info.height, info.width, info.num_frames)


@dataclass
class ImportedAnnotations:
    """Masks read from another file: ``masks[frame][object_id]`` = ``H×W`` bool (non-empty only).

    Every frame of the file is a key of ``masks`` (an empty dict where nothing is annotated).
    ``names`` maps object ids (≥ 1) to names (the category, or the track name when known).
    """

    masks: dict[int, dict[int, np.ndarray]]
    names: dict[int, str]
    width: int
    height: int
    num_frames: int

    @property
    def object_ids(self) -> list[int]:
        return sorted(
            {object_id for objects in self.masks.values() for object_id in objects} | set(self.names)
        )

    def frame_results(self) -> list[FrameResult]:
        """One :class:`FrameResult` per annotated frame (objects ascending, score 1.0)."""
        results = []
        for frame_idx, objects in sorted(self.masks.items()):
            if not objects:
                continue
            ids = tuple(sorted(objects))
            masks = np.stack([objects[object_id] for object_id in ids])
            results.append(FrameResult(frame_idx, ids, masks, np.ones(len(ids), dtype=np.float32)))
        return results

    def to_store(self, num_frames: int | None = None) -> ResultStore:
        """A :class:`ResultStore` holding the annotated frames."""
        store = ResultStore(self.width, self.height, self.num_frames if num_frames is None else num_frames)
        for result in self.frame_results():
            store.put(result)
        return store


# A reader's output before it is collected: the annotated frames, the names, the masks' size,
# and the masks themselves, decoded one at a time as the iterator is walked.
@dataclass
class _Parsed:
    frames: list[int]
    names: dict[int, str]
    width: int
    height: int
    num_frames: int
    items: Iterator[tuple[int, int, np.ndarray]] = field(default_factory=lambda: iter(()))


# ---------------------------------------------------------------------------- PNG masks
def _labels_from_image(image: Image.Image, name: str) -> np.ndarray:
    if image.mode in ("P", "L"):
        return np.asarray(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.int64)
    if image.mode == "1":
        return np.asarray(image).astype(np.uint8)
    if image.mode in ("RGB", "RGBA"):
        from .export import davis_palette

        # colour masks from other tools: map DAVIS palette colours back to their index
        rgb = np.asarray(image.convert("RGB")).astype(np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        palette = np.asarray(davis_palette(), dtype=np.int64).reshape(256, 3)
        palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
        lookup = {int(code): index for index, code in enumerate(palette_codes)}
        unique = np.unique(codes)
        unknown = [int(code) for code in unique if int(code) not in lookup]
        if unknown:
            raise InputError(
                f"{name} is a colour PNG with colours outside the DAVIS palette (e.g. #{unknown[0]:06x}); "
                "save masks as indexed (P mode) PNGs where the pixel value is the object id."
            )
        labels = np.zeros(codes.shape, dtype=np.int64)
        for code in unique:
            labels[codes == code] = lookup[int(code)]
        return labels
    raise InputError(f"{name} is a {image.mode} PNG; masks must be indexed, grey or 16-bit PNGs.")


def _frame_numbers(names: Sequence[str]) -> list[int]:
    """0-based frames from file names: the digits in the name when all have distinct ones, else the order."""
    numbers = []
    for name in names:
        digits = re.findall(r"\d+", Path(name).stem)
        numbers.append(int(digits[-1][-9:]) if digits else None)
    if None in numbers or len(set(numbers)) != len(numbers):
        return list(range(len(names)))
    return numbers  # type: ignore[return-value]


def _png_sources(source: Path, limits: Limits) -> tuple[list[tuple[str, Callable[[], bytes]]], Any]:
    """(name, read) per PNG of a folder or zip (its ``masks/`` folder if it has one), and the zip to close."""
    cap = limits.max_member_bytes
    if source.is_dir():
        files = sorted(source.glob("*.png"))
        if len(files) > limits.max_frames:
            raise UntrustedInput(
                f"{source.name} holds {len(files)} PNGs, over the {limits.max_frames} allowed."
            )
        return [(file.name, functools.partial(read_file, file, cap, "PNG mask")) for file in files], None
    if zipfile.is_zipfile(source):
        archive = open_zip(source, limits)
        pngs = sorted(
            n for n in archive.namelist() if n.lower().endswith(".png") and not n.startswith("__MACOSX")
        )
        in_masks = [n for n in pngs if n.startswith("masks/")]
        chosen = in_masks or pngs
        if len(chosen) > limits.max_frames:
            archive.close()
            raise UntrustedInput(
                f"{source.name} holds {len(chosen)} PNGs, over the {limits.max_frames} allowed."
            )
        return [
            (name, functools.partial(read_member, archive, name, cap, limits)) for name in chosen
        ], archive
    raise InputError(f"{source.name} is neither a folder of PNG masks nor a zip file.")


def _png_labels(name: str, data: bytes, expect: Expect | None, limits: Limits) -> np.ndarray:
    """One PNG's labels, its header checked against the caps (and ``expect``'s size) first."""
    header = png_header(data, name)
    check_png(header, name, None if expect is None else (expect.height, expect.width), limits)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _labels_from_image(image, name)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name} is not a readable PNG ({exc}).") from exc


def _parse_pngs(source: Path, expect: Expect | None, limits: Limits) -> tuple[_Parsed, Any]:
    blobs, archive = _png_sources(source, limits)
    if not blobs:
        if archive is not None:
            archive.close()
        raise InputError(f"{source.name} holds no PNG masks.")
    frames = _frame_numbers([name for name, _ in blobs])
    if expect is not None:
        check_frames(max(frames) + 1, expect.num_frames, source.name, "frames of masks")
    first = png_header(blobs[0][1](), blobs[0][0])

    def items() -> Iterator[tuple[int, int, np.ndarray]]:
        for frame_idx, (name, read) in zip(frames, blobs, strict=True):
            try:
                labels = _png_labels(name, read(), expect, limits)
            except zipfile.BadZipFile as exc:
                raise InputError(f"{name} is not a readable PNG ({exc}).") from exc
            for object_id in check_ids(labels, name, limits):
                yield frame_idx, int(object_id), labels == object_id

    parsed = _Parsed(frames, {}, first.width, first.height, max(frames) + 1, items())
    return parsed, archive


def read_png_masks(
    source: str | os.PathLike, *, expect: Expect | None = None, limits: Limits = DEFAULT_LIMITS
) -> dict[int, dict[int, np.ndarray]]:
    """Masks from a folder of PNGs or a zip (its ``masks/`` folder if it has one): frame → object → mask.

    The pixel value is the object id (0 = background), as :func:`tracker.export.write_png_masks`
    writes and DAVIS uses; grey, 16-bit and DAVIS-palette colour PNGs are read too. Frames come
    from the digits in the file names (``00012.png`` → 12) or, failing that, the sorted order.
    Every frame is a key; only non-empty masks are included.
    """
    parsed, archive = _parse_pngs(Path(source), expect, limits)
    try:
        return _collect(parsed).masks
    finally:
        if archive is not None:
            archive.close()


# ---------------------------------------------------------------------------- COCO and YouTube-VIS
def _load_json(path: Path, what: str, limits: Limits) -> Any:
    if not path.is_file():
        raise InputError(f"The {what or 'annotation'} file {path.name} does not exist.")
    try:
        raw = read_file(path, limits.max_json_bytes, f"{what or 'annotation'} file")
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise UntrustedInput(f"{path.name} nests too deeply to be an annotation file.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        kind = f"{what} JSON" if what else "JSON"
        raise InputError(f"{path.name} is not a readable {kind} file ({exc}).") from exc


def segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray | None:
    """``H×W`` bool mask of a COCO segmentation: polygons, uncompressed or compressed RLE.

    Returns None for an empty polygon list or a missing segmentation. The segmentation is
    checked against ``(height, width)`` first (:func:`tracker.untrusted.check_segmentation`).
    """
    if segmentation is None or (isinstance(segmentation, list) and not segmentation):
        return None
    check_segmentation(segmentation, (height, width), "the annotations")
    if isinstance(segmentation, list):  # polygons [[x0, y0, x1, y1, …], …]
        rles = mask_utils.frPyObjects(segmentation, height, width)
        return decode_rle(mask_utils.merge(rles))
    if isinstance(segmentation["counts"], list):  # uncompressed RLE
        return decode_rle(mask_utils.frPyObjects(segmentation, height, width))
    return decode_rle({"size": [height, width], "counts": segmentation["counts"]})


def _frame_size(height: int, width: int, source: str, expect: Expect | None, limits: Limits) -> None:
    """The size every mask of the file declares, checked before any of them is decoded."""
    if expect is not None:
        check_shape(height, width, (expect.height, expect.width), source)
    elif height < 1 or width < 1 or height * width > limits.max_pixels:
        raise UntrustedInput(
            f"{source} declares {width}×{height} frames, over the {limits.max_pixels} pixels allowed."
        )


def _parse_coco(data: Any, source: str, expect: Expect | None, limits: Limits) -> _Parsed:
    images = list(data["images"])
    annotations = list(data.get("annotations", []))
    category_names = {c["id"]: str(c.get("name", c["id"])) for c in data.get("categories", [])}
    if all("frame_index" in image for image in images):
        frame_of = {image["id"]: int(image["frame_index"]) for image in images}
    else:
        frame_of = {image["id"]: rank for rank, image in enumerate(sorted(images, key=lambda im: im["id"]))}
    if any(frame_idx < 0 for frame_idx in frame_of.values()):
        raise InputError(f"{source} has a negative frame_index.")
    sizes = {(int(image["height"]), int(image["width"])) for image in images}
    if len(sizes) > 1:
        raise InputError(f"{source} mixes images of different sizes; it is not one video's annotations.")
    height, width = sizes.pop() if sizes else (0, 0)
    num_frames = max(frame_of.values(), default=-1) + 1
    if expect is not None:
        check_frames(num_frames, expect.num_frames, source, "frames of annotations")
    if images:
        _frame_size(height, width, source, expect, limits)
    names: dict[int, str] = {}
    for ann in annotations:
        object_id = ann.get("track_id", (ann.get("attributes") or {}).get("track_id"))
        if object_id is None:
            object_id = ann.get("instance_id", ann.get("category_id"))
        names.setdefault(int(object_id), category_names.get(ann.get("category_id"), f"object {object_id}"))
        check_segmentation(ann.get("segmentation"), (height, width), source, limits)
        frame_of[ann["image_id"]]  # noqa: B018 - an unknown image fails here, before decoding
    for track in data.get("tracks", []):
        names[int(track["id"])] = str(track["name"])
    if len(names) > limits.max_ids_per_png:
        raise UntrustedInput(f"{source} has {len(names)} objects, over the {limits.max_ids_per_png} allowed.")

    def items() -> Iterator[tuple[int, int, np.ndarray]]:
        for ann in annotations:
            object_id = ann.get("track_id", (ann.get("attributes") or {}).get("track_id"))
            if object_id is None:
                object_id = ann.get("instance_id", ann.get("category_id"))
            mask = segmentation_mask(ann.get("segmentation"), height, width)
            if mask is None:
                logger.warning("%s: annotation %s has no segmentation; skipped", source, ann.get("id"))
                continue
            yield frame_of[ann["image_id"]], int(object_id), mask

    return _Parsed(sorted(set(frame_of.values())), names, width, height, num_frames, items())


def _parse_ytvis(
    data: Any, source: str, expect: Expect | None, limits: Limits, video_id: int | None
) -> _Parsed:
    if isinstance(data, list):  # results format: no videos, no ids
        annotations = [dict(ann, id=number) for number, ann in enumerate(data, start=1)]
        chosen = video_id if video_id is not None else (annotations[0]["video_id"] if annotations else None)
        annotations = [ann for ann in annotations if ann.get("video_id") == chosen]
        first = next((s for ann in annotations for s in ann["segmentations"] if s), None)
        if first is None or "size" not in first:
            raise InputError(f"{source} has no RLE masks to read the frame size from.")
        height, width = (int(v) for v in first["size"])
        length = max((len(ann["segmentations"]) for ann in annotations), default=0)
        category_names: dict[Any, str] = {}
    else:
        videos = list(data["videos"])
        if not videos:
            raise InputError(f"{source} lists no videos.")
        video = next((v for v in videos if v["id"] == video_id), None) if video_id is not None else videos[0]
        if video is None:
            raise InputError(f"{source} has no video with id {video_id}.")
        height, width = int(video["height"]), int(video["width"])
        length = int(video.get("length") or len(video.get("file_names", [])))
        annotations = [ann for ann in data.get("annotations", []) if ann.get("video_id") == video["id"]]
        category_names = {c["id"]: str(c.get("name", c["id"])) for c in data.get("categories", [])}
    length = max([length, *(len(ann["segmentations"]) for ann in annotations)])
    if expect is not None:
        check_frames(length, expect.num_frames, source, "frames of annotations")
    elif length > limits.max_frames:
        raise UntrustedInput(f"{source} declares {length} frames, over the {limits.max_frames} allowed.")
    _frame_size(height, width, source, expect, limits)
    names: dict[int, str] = {}
    for ann in annotations:
        object_id = int(ann.get("track_id", ann["id"]))
        names[object_id] = str(
            ann.get("name") or category_names.get(ann.get("category_id"), f"object {object_id}")
        )
        for segmentation in ann["segmentations"]:
            check_segmentation(segmentation, (height, width), source, limits)
    if len(names) > limits.max_ids_per_png:
        raise UntrustedInput(f"{source} has {len(names)} objects, over the {limits.max_ids_per_png} allowed.")

    def items() -> Iterator[tuple[int, int, np.ndarray]]:
        for ann in annotations:
            object_id = int(ann.get("track_id", ann["id"]))
            for frame_idx, segmentation in enumerate(ann["segmentations"]):
                mask = segmentation_mask(segmentation, height, width)
                if mask is not None and mask.any():
                    yield frame_idx, object_id, mask

    return _Parsed(list(range(length)), names, width, height, length, items())


_JSON_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def _parse_json_annotations(
    path: Path, expect: Expect | None, limits: Limits, kind: str | None = None
) -> _Parsed:
    data = _load_json(path, {"coco": "COCO", "ytvis": "YouTube-VIS"}.get(kind or "", ""), limits)
    if kind is None:
        kind = "ytvis" if isinstance(data, list) or (isinstance(data, dict) and "videos" in data) else "coco"
    what = "COCO" if kind == "coco" else "YouTube-VIS"
    try:
        if kind == "coco":
            return _parse_coco(data, path.name, expect, limits)
        return _parse_ytvis(data, path.name, expect, limits, None)
    except InputError:
        raise
    except _JSON_ERRORS as exc:
        raise InputError(
            f"{path.name} is not a {what} annotation file ({type(exc).__name__}: {exc})."
        ) from exc


def _collect(parsed: _Parsed) -> ImportedAnnotations:
    """Every mask of ``parsed`` as whole arrays (masks of one object on one frame merged)."""
    masks: dict[int, dict[int, np.ndarray]] = {frame_idx: {} for frame_idx in parsed.frames}
    for frame_idx, object_id, mask in parsed.items:
        objects = masks.setdefault(frame_idx, {})
        objects[object_id] = objects[object_id] | mask if object_id in objects else mask
    for objects in masks.values():
        for object_id in [oid for oid, mask in objects.items() if not mask.any()]:
            del objects[object_id]
    names = dict(parsed.names)
    _renumber(masks, names)
    num_frames = max(parsed.num_frames, max(masks, default=-1) + 1)
    return ImportedAnnotations(masks, names, parsed.width, parsed.height, num_frames)


def _renumber(masks: dict[int, dict[int, Any]], names: dict[int, str]) -> None:
    """Object ids must be ≥ 1 (0 is the PNG background): shift every id up when some are not."""
    ids = {object_id for objects in masks.values() for object_id in objects} | set(names)
    if not ids or min(ids) >= 1:
        return
    shift = 1 - min(ids)
    logger.info("object ids start at %d in the file; shifting them by %d", min(ids), shift)
    for frame_idx, objects in masks.items():
        masks[frame_idx] = {object_id + shift: mask for object_id, mask in objects.items()}
    shifted = {object_id + shift: name for object_id, name in names.items()}
    names.clear()
    names.update(shifted)


def read_coco(
    path: str | os.PathLike, *, expect: Expect | None = None, limits: Limits = DEFAULT_LIMITS
) -> ImportedAnnotations:
    """Masks from a COCO instance-segmentation JSON (ours or another tool's).

    Frames: each image's ``frame_index`` when every image has one, else the images' order by
    ``id``. Objects: the annotation's ``track_id`` (also looked for in ``attributes``), else its
    ``instance_id``, else its ``category_id`` (one object per category, masks of the same
    category on one frame merged). Segmentations may be polygons, uncompressed or compressed
    RLE; annotations without one are skipped. Names come from ``tracks`` (our extension) or the
    category's name.
    """
    path = Path(path)
    return _collect_checked(_parse_json_annotations(path, expect, limits, "coco"), path.name, "COCO")


def read_ytvis(
    path: str | os.PathLike,
    video_id: int | None = None,
    *,
    expect: Expect | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ImportedAnnotations:
    """Masks of one video (``video_id``, default the first) from a YouTube-VIS JSON.

    Object ids are each annotation's ``track_id`` or else its ``id``; names the category's name
    (or our ``name`` field). Also reads a YouTube-VIS *results* file (a bare list of
    ``{video_id, category_id, segmentations, score}``): objects are numbered 1, 2, … in order.
    """
    path = Path(path)
    data = _load_json(path, "YouTube-VIS", limits)
    try:
        parsed = _parse_ytvis(data, path.name, expect, limits, video_id)
    except InputError:
        raise
    except _JSON_ERRORS as exc:
        raise InputError(
            f"{path.name} is not a YouTube-VIS annotation file ({type(exc).__name__}: {exc})."
        ) from exc
    return _collect_checked(parsed, path.name, "YouTube-VIS")


def _collect_checked(parsed: _Parsed, source: str, what: str) -> ImportedAnnotations:
    try:
        return _collect(parsed)
    except InputError:
        raise
    except _JSON_ERRORS as exc:
        raise InputError(f"{source} is not a {what} annotation file ({type(exc).__name__}: {exc}).") from exc


# ---------------------------------------------------------------------------- the checked import
@dataclass
class Annotations:
    """An import fitted to the open video: ``rles[frame][source id]`` = COCO RLE at the video's size.

    Every frame of the file is a key of ``rles`` (an object missing from an annotated frame is
    absent there); ``names`` maps source ids (≥ 1) to names.
    """

    rles: dict[int, dict[int, dict]]
    names: dict[int, str]

    @property
    def object_ids(self) -> list[int]:
        return sorted({object_id for objects in self.rles.values() for object_id in objects})

    def first_frame(self, object_id: int) -> int:
        return min(frame_idx for frame_idx, objects in self.rles.items() if object_id in objects)


def read_annotations(path: str | os.PathLike, info: VideoInfo, limits: Limits | None = None) -> Annotations:
    """Read an uploaded DAVIS PNG folder / zip, COCO or YouTube-VIS JSON for the open video ``info``.

    Everything the file declares is checked against ``info`` and ``limits`` before it is
    decoded; masks made at another size with the same aspect ratio are rescaled (nearest
    neighbour). Raises :class:`~tracker.errors.InputError` (one sentence) when the file does not
    fit; no mask is then kept.
    """
    path = Path(path)
    limits = limits or DEFAULT_LIMITS
    if not path.exists():
        raise InputError(f"{path.name} does not exist.")
    expect = Expect.of(info)
    archive = None
    try:
        if path.suffix.lower() == ".json":
            parsed = _parse_json_annotations(path, expect, limits)
        else:
            parsed, archive = _parse_pngs(path, expect, limits)
        rles = _encode_fitted(parsed, path.name, info, limits)
    except InputError:
        raise
    except _JSON_ERRORS as exc:
        raise InputError(
            f"{path.name} is not an annotation file this tool reads ({type(exc).__name__}: {exc})."
        ) from exc
    finally:
        if archive is not None:
            archive.close()
    if not any(rles.values()):
        raise InputError(f"{path.name} holds no masks to import.")
    names = dict(parsed.names)
    _renumber(rles, names)
    return Annotations(rles, {oid: names.get(oid) or f"imported {oid}" for oid in names})


def _encode_fitted(
    parsed: _Parsed, source: str, info: VideoInfo, limits: Limits
) -> dict[int, dict[int, dict]]:
    """Walk ``parsed``'s masks one at a time: fit to the video, merge per (frame, object), keep RLE."""
    rles: dict[int, dict[int, dict]] = {frame_idx: {} for frame_idx in parsed.frames}
    held = 0
    seen: set[int] = set()
    for frame_idx, object_id, mask in parsed.items:
        info.check_frame(frame_idx)
        if not mask.any():
            continue
        if mask.shape != (info.height, info.width):
            check_shape(mask.shape[0], mask.shape[1], (info.height, info.width), source)
            mask = resize_mask(mask, info.width, info.height)
        objects = rles.setdefault(frame_idx, {})
        if object_id in objects:
            held -= len(objects[object_id]["counts"])
            mask = mask | decode_rle(objects[object_id])
        objects[object_id] = encode_mask(mask)
        held += len(objects[object_id]["counts"])
        if held > limits.max_mask_bytes:
            raise UntrustedInput(
                f"The masks in {source} take over {limits.max_mask_bytes >> 20} MB even compressed; "
                "import fewer frames or objects at a time."
            )
        seen.add(object_id)
        if len(seen) > limits.max_ids_per_png:
            raise UntrustedInput(f"{source} has over {limits.max_ids_per_png} objects.")
    return rles


__all__ = [
    "Annotations",
    "Expect",
    "ImportedAnnotations",
    "read_annotations",
    "read_coco",
    "read_png_masks",
    "read_ytvis",
    "segmentation_mask",
]
