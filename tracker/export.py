"""Every output format, the zip that bundles them, and readers to import annotations back.

Conventions: frames are 0-based everywhere except MOT files (1-based ``frame`` column) and
COCO image ids (``frame + 1``; the 0-based index is kept as ``frame_index``); boxes are
``xyxy`` inside and become ``xywh`` (pixel edges: ``x`` = first column, ``w`` = columns
spanned) only in the COCO, YouTube-VIS, MOT and trajectory writers. Masks are ``H×W`` bool at
working resolution; RLEs are COCO *compressed* RLE with ``counts`` as an ASCII string in JSON.

Every writer is atomic: it writes a temporary file (or folder) next to the target and
``os.replace``-s it into place, so a crash or a concurrent reader never sees half a file.

An export folder made by :func:`export_all` (all formats)::

    out_dir/
      masks/00000.png …     DAVIS-style indexed PNG per video frame, pixel = object id (0 = background)
      coco.json             COCO instance segmentation, one image per frame, RLE masks, track_id
      ytvis.json            YouTube-VIS: one video, one annotation per object with per-frame RLEs
      mot.txt               MOTChallenge: frame(1-based),id,x,y,w,h,conf,-1,-1,-1
      trajectories.csv      object_id,frame,time,cx,cy,x,y,w,h,area,visible (gaps = empty cells)
      candidates.json/.csv  the retrieval table (only when candidates are given)
      flags.json/.csv       doubtful frames (only when flags are given; :mod:`tracker.flags`)
      manifest.json         the project manifest (only when given)
      overlay.mp4           the rendered overlay (only when given)
      annotations.zip       everything above, same relative paths
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .errors import InputError
from .flags import Flag, write_flags_csv, write_flags_json
from .masks import rle_to_json
from .results import ResultStore, atomic_write
from .trajectories import TrajectoryPoint, compute_trajectories
from .types import Candidate, TrackedObject, VideoInfo, color_for

logger = logging.getLogger(__name__)

PNG_MAX_OBJECT_ID = 255
TRAJECTORY_COLUMNS = ("object_id", "frame", "time", "cx", "cy", "x", "y", "w", "h", "area", "visible")
RETRIEVAL_COLUMNS = (
    "query", "frame", "timestamp", "score", "text_score", "frame_score", "negative_score",
    "x0", "y0", "x1", "y1", "area",
)  # fmt: skip
# Already-compressed files go into the zip stored, not deflated again.
_STORED_SUFFIXES = {".png", ".mp4", ".jpg", ".jpeg", ".zip", ".gz"}

Objects = Sequence[TrackedObject] | Mapping[int, TrackedObject] | None


def frame_name(frame_idx: int, ext: str = "png") -> str:
    """File name of a 0-based frame in DAVIS / YouTube-VIS style: ``00000.png``."""
    return f"{frame_idx:05d}.{ext}"


@lru_cache(maxsize=1)
def davis_palette() -> tuple[int, ...]:
    """The 256-colour DAVIS / PASCAL VOC palette as 768 ints: index 1 = (128, 0, 0), 2 = (0, 128, 0)…

    Built by spreading the bits of the index over the three channels, high bit first.
    """
    palette: list[int] = []
    for index in range(256):
        r = g = b = 0
        value = index
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette.extend((r, g, b))
    return tuple(palette)


# -- small helpers ---------------------------------------------------------------------------


def _objects_by_id(store: ResultStore, objects: Objects) -> dict[int, TrackedObject]:
    """Every object to export: the given ones, plus any id only the store knows (default name)."""
    if objects is None:
        given: list[TrackedObject] = []
    elif isinstance(objects, Mapping):
        given = list(objects.values())
    else:
        given = list(objects)
    by_id = {obj.object_id: obj for obj in given}
    for object_id in store.object_ids:
        by_id.setdefault(object_id, TrackedObject(object_id, f"object {object_id}", color_for(object_id)))
    return dict(sorted(by_id.items()))


def _categories(
    objects: Mapping[int, TrackedObject], categories: Mapping[int, str] | None
) -> tuple[list[dict], dict[int, int]]:
    """COCO categories (one per distinct name, ids from 1) and object id → category id."""
    names = {object_id: (categories or {}).get(object_id, obj.name) for object_id, obj in objects.items()}
    category_ids: dict[str, int] = {}
    for name in names.values():
        category_ids.setdefault(name, len(category_ids) + 1)
    table = [{"id": cid, "name": name, "supercategory": "object"} for name, cid in category_ids.items()]
    return table, {object_id: category_ids[name] for object_id, name in names.items()}


def _check_size(store: ResultStore, info: VideoInfo) -> None:
    if (store.width, store.height) != (info.width, info.height):
        raise ValueError(
            f"the results are {store.width}×{store.height} but the video is {info.width}×{info.height}"
        )


def _number(value: float) -> int | float:
    """Integral floats as ints (boxes from masks), others rounded for readable files."""
    return int(value) if float(value).is_integer() else round(float(value), 4)


def _xywh(box) -> list[int | float]:
    x0, y0, x1, y1 = box
    return [_number(x0), _number(y0), _number(x1 - x0), _number(y1 - y0)]


def _write_json(data: Any, path: Path, indent: int | None = None) -> Path:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=indent, ensure_ascii=False)
        handle.write("\n")
    return path


@contextlib.contextmanager
def _atomic_dir(path: Path):
    """Yield a fresh temporary folder next to ``path``; on success it replaces ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- writers ---------------------------------------------------------------------------------


def _png_bytes(labels: np.ndarray) -> bytes:
    height, width = labels.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    image.putpalette(davis_palette())
    buffer = io.BytesIO()
    # Label maps are long runs of one value: zlib's RLE strategy is ~3× faster than the default
    # and smaller too.
    image.save(buffer, format="PNG", compress_level=6, compress_type=zlib.Z_RLE)
    return buffer.getvalue()


def label_map(store: ResultStore, frame_idx: int) -> np.ndarray:
    """``H×W`` uint8 object id per pixel on ``frame_idx`` (0 = background; higher id wins overlaps)."""
    labels = np.zeros((store.height, store.width), dtype=np.uint8)
    for object_id in store.objects_on(frame_idx):
        stats = store.stats(frame_idx, object_id)
        rle = store.rle(frame_idx, object_id)
        if stats is None or rle is None or not stats.visible or stats.box is None:
            continue
        x0, y0, x1, y1 = (int(v) for v in stats.box)
        # only the box is touched: most of a frame is background
        inside = mask_utils.decode(rle)[y0:y1, x0:x1].view(bool)
        np.putmask(labels[y0:y1, x0:x1], inside, object_id)
    return labels


def _anything_visible(store: ResultStore, frame_idx: int) -> bool:
    for object_id in store.objects_on(frame_idx):
        stats = store.stats(frame_idx, object_id)
        if stats is not None and stats.visible:
            return True
    return False


def _png_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def write_png_masks(store: ResultStore, out_dir: str | os.PathLike, num_frames: int | None = None) -> Path:
    """DAVIS-style masks: ``out_dir/00000.png`` … one per video frame (``num_frames``, default the store's).

    Each PNG is ``P`` mode (8-bit indexed) with the DAVIS palette; the pixel value is the object
    id, 0 the background; frames with nothing tracked are all zero. Object ids above 255 do not
    fit in a palette image and raise :class:`InputError`. The folder is replaced as a whole.
    """
    out_dir = Path(out_dir)
    too_big = [object_id for object_id in store.object_ids if object_id > PNG_MAX_OBJECT_ID]
    if too_big:
        raise InputError(
            f"PNG masks can hold object ids 1 to {PNG_MAX_OBJECT_ID}, but object {too_big[0]} is above that; "
            "export COCO or YouTube-VIS instead (formats coco, ytvis)."
        )
    count = store.num_frames if num_frames is None else int(num_frames)
    empty = _png_bytes(np.zeros((store.height, store.width), dtype=np.uint8))
    drawn = [
        frame_idx for frame_idx in store.frames() if frame_idx < count and _anything_visible(store, frame_idx)
    ]
    with _atomic_dir(out_dir) as tmp:
        drawn_set = set(drawn)
        for frame_idx in range(count):
            if frame_idx not in drawn_set:
                (tmp / frame_name(frame_idx)).write_bytes(empty)

        def draw(frame_idx: int) -> None:
            (tmp / frame_name(frame_idx)).write_bytes(_png_bytes(label_map(store, frame_idx)))

        # zlib and file writes release the GIL, so a few threads help even on small machines
        with ThreadPoolExecutor(max_workers=_png_workers(), thread_name_prefix="png-masks") as pool:
            for _ in pool.map(draw, drawn):
                pass
    logger.info("wrote %d PNG masks (%d with objects) to %s", count, len(drawn), out_dir)
    return out_dir


def write_coco(
    store: ResultStore,
    info: VideoInfo,
    objects: Objects,
    path: str | os.PathLike,
    categories: Mapping[int, str] | None = None,
) -> Path:
    """COCO instance segmentation JSON for the whole video.

    * ``images``: one per video frame, ``id = frame + 1``, ``file_name`` ``00000.jpg``…,
      ``width``, ``height``, ``frame_index`` (0-based), ``timestamp`` (seconds);
    * ``annotations``: one per visible (non-empty) object mask, ``segmentation`` =
      ``{"size": [h, w], "counts": str}`` compressed RLE, ``area``, ``bbox`` ``xywh``,
      ``iscrowd`` 0, ``category_id``, ``track_id`` (= object id), ``score``;
    * ``categories``: one per distinct name, where an object's name is ``categories[object_id]``
      (e.g. the prompt) or else the object's own name;
    * ``tracks`` (an extension other tools ignore): ``{"id", "name", "color", "category_id"}``
      per object, so :func:`read_coco` restores names exactly.
    """
    _check_size(store, info)
    by_id = _objects_by_id(store, objects)
    category_table, category_of = _categories(by_id, categories)
    images = [
        {
            "id": frame_idx + 1,
            "file_name": frame_name(frame_idx, "jpg"),
            "width": info.width,
            "height": info.height,
            "frame_index": frame_idx,
            "timestamp": round(info.time_of(frame_idx), 6),
        }
        for frame_idx in range(store.num_frames)
    ]
    annotations: list[dict[str, Any]] = []
    for frame_idx, object_id, rle, stats in store.items():
        if not stats.visible:
            continue
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": frame_idx + 1,
                "category_id": category_of[object_id],
                "segmentation": rle_to_json(rle),
                "area": stats.area,
                "bbox": _xywh(stats.box),
                "iscrowd": 0,
                "track_id": object_id,
                "score": round(stats.score, 6),
            }
        )
    data = {
        "info": {
            "description": "Text-Prompted Video Tracker export",
            "video": Path(info.path).name,
            "fps": info.fps,
            "num_frames": store.num_frames,
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": category_table,
        "tracks": [
            {
                "id": object_id,
                "name": obj.name,
                "color": list(obj.color),
                "category_id": category_of[object_id],
            }
            for object_id, obj in by_id.items()
        ],
    }
    logger.info("wrote %d COCO annotations to %s", len(annotations), path)
    return _write_json(data, Path(path))


def write_ytvis(
    store: ResultStore,
    info: VideoInfo,
    objects: Objects,
    path: str | os.PathLike,
    categories: Mapping[int, str] | None = None,
) -> Path:
    """YouTube-VIS style JSON: one video (``id`` 1), one annotation per object.

    ``videos``: ``[{id, width, height, length, file_names}]``; ``annotations``: ``[{id (= object
    id), video_id, category_id, track_id, segmentations, bboxes, areas, iscrowd, score}]`` where
    the three lists have one entry per video frame: compressed RLE / ``xywh`` / area, or None
    where the object is absent or empty; ``score`` is the mean score over visible frames.
    """
    _check_size(store, info)
    by_id = _objects_by_id(store, objects)
    category_table, category_of = _categories(by_id, categories)
    length = store.num_frames
    per_object: dict[int, dict[str, list]] = {
        object_id: {"segmentations": [None] * length, "bboxes": [None] * length, "areas": [None] * length}
        for object_id in by_id
    }
    scores: dict[int, list[float]] = {object_id: [] for object_id in by_id}
    for frame_idx, object_id, rle, stats in store.items():
        if not stats.visible:
            continue
        lists = per_object[object_id]
        lists["segmentations"][frame_idx] = rle_to_json(rle)
        lists["bboxes"][frame_idx] = _xywh(stats.box)
        lists["areas"][frame_idx] = stats.area
        scores[object_id].append(stats.score)
    annotations = [
        {
            "id": object_id,
            "video_id": 1,
            "category_id": category_of[object_id],
            "track_id": object_id,
            "name": by_id[object_id].name,
            **per_object[object_id],
            "iscrowd": 0,
            "score": round(float(np.mean(scores[object_id])), 6) if scores[object_id] else 0.0,
        }
        for object_id in by_id
    ]
    data = {
        "info": {"description": "Text-Prompted Video Tracker export", "fps": info.fps},
        "videos": [
            {
                "id": 1,
                "name": Path(info.path).stem,
                "width": info.width,
                "height": info.height,
                "length": length,
                "file_names": [frame_name(i, "jpg") for i in range(length)],
            }
        ],
        "annotations": annotations,
        "categories": category_table,
    }
    return _write_json(data, Path(path))


def write_mot(store: ResultStore, info: VideoInfo, path: str | os.PathLike) -> Path:
    """MOTChallenge text: ``frame,id,x,y,w,h,conf,-1,-1,-1`` per visible object and frame.

    ``frame`` is **1-based** (working frame 0 → 1); ``x, y, w, h`` is the mask's tight box
    (top-left pixel edge and size); ``conf`` is SAM 2's score. Sorted by frame, then id.
    """
    _check_size(store, info)
    with atomic_write(Path(path), "w", encoding="ascii") as handle:
        for frame_idx, object_id, _, stats in store.items():
            if not stats.visible:
                continue
            x, y, w, h = _xywh(stats.box)
            handle.write(f"{frame_idx + 1},{object_id},{x},{y},{w},{h},{stats.score:.4f},-1,-1,-1\n")
    return Path(path)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return round(value, 4)
    return value


def write_trajectories_csv(points: Iterable[TrajectoryPoint], path: str | os.PathLike) -> Path:
    """CSV with :data:`TRAJECTORY_COLUMNS`; gaps (not visible) have empty coordinate cells, visible 0/1."""
    with atomic_write(Path(path), "w", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRAJECTORY_COLUMNS)
        for point in points:
            writer.writerow([_cell(getattr(point, column)) for column in TRAJECTORY_COLUMNS])
    return Path(path)


def write_retrieval_table(
    candidates: Iterable[Candidate], query: str, json_path: str | os.PathLike, csv_path: str | os.PathLike
) -> tuple[Path, Path]:
    """The ranked candidates as a JSON list of :meth:`Candidate.to_row` dicts and the same rows as CSV."""
    rows = [candidate.to_row(query) for candidate in candidates]
    columns = list(rows[0]) if rows else list(RETRIEVAL_COLUMNS)
    _write_json(rows, Path(json_path), indent=1)
    with atomic_write(Path(csv_path), "w", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return Path(json_path), Path(csv_path)


def write_manifest(manifest: Mapping[str, Any] | Any, path: str | os.PathLike) -> Path:
    """The project manifest as indented JSON (a mapping, or anything with ``to_dict()``)."""
    data = manifest.to_dict() if hasattr(manifest, "to_dict") else dict(manifest)
    return _write_json(data, Path(path), indent=2)


def write_zip(
    root: str | os.PathLike, paths: Iterable[str | os.PathLike], zip_path: str | os.PathLike
) -> Path:
    """Zip ``paths`` (files, or folders taken whole) under names relative to ``root``; atomic."""
    root = Path(root)
    files: list[Path] = []
    for item in paths:
        item = Path(item)
        files.extend(sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item])
    with atomic_write(Path(zip_path), "wb") as handle:
        with zipfile.ZipFile(handle, "w") as archive:
            for file in files:
                compression = (
                    zipfile.ZIP_STORED if file.suffix.lower() in _STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                )
                archive.write(file, file.relative_to(root).as_posix(), compress_type=compression)
    return Path(zip_path)


# -- export_all and its registry -------------------------------------------------------------


@dataclass
class ExportJob:
    """Everything one export needs; the registry's writers take one of these."""

    store: ResultStore
    info: VideoInfo
    objects: Objects
    out_dir: Path
    candidates: Sequence[Candidate] = ()
    query: str = ""
    manifest: Mapping[str, Any] | Any | None = None
    overlay_path: Path | None = None
    categories: Mapping[int, str] | None = None
    flags: Sequence[Flag] | None = None  # None: no flags files (an empty list writes empty ones)


@dataclass(frozen=True)
class ExportFormat:
    """A named output: what it is and how to write it into ``job.out_dir`` (returns name → path)."""

    name: str
    description: str
    write: Callable[[ExportJob], dict[str, Path]] = field(repr=False)


def _export_masks(job: ExportJob) -> dict[str, Path]:
    return {"masks": write_png_masks(job.store, job.out_dir / "masks", job.info.num_frames)}


def _export_coco(job: ExportJob) -> dict[str, Path]:
    return {"coco": write_coco(job.store, job.info, job.objects, job.out_dir / "coco.json", job.categories)}


def _export_ytvis(job: ExportJob) -> dict[str, Path]:
    return {
        "ytvis": write_ytvis(job.store, job.info, job.objects, job.out_dir / "ytvis.json", job.categories)
    }


def _export_mot(job: ExportJob) -> dict[str, Path]:
    return {"mot": write_mot(job.store, job.info, job.out_dir / "mot.txt")}


def _export_trajectories(job: ExportJob) -> dict[str, Path]:
    points = compute_trajectories(job.store, job.info, list(_objects_by_id(job.store, job.objects)))
    return {"trajectories": write_trajectories_csv(points, job.out_dir / "trajectories.csv")}


def _export_candidates(job: ExportJob) -> dict[str, Path]:
    if not job.candidates:
        return {}
    json_path, csv_path = write_retrieval_table(
        job.candidates, job.query, job.out_dir / "candidates.json", job.out_dir / "candidates.csv"
    )
    return {"candidates_json": json_path, "candidates_csv": csv_path}


def _export_flags(job: ExportJob) -> dict[str, Path]:
    if job.flags is None:
        return {}
    return {
        "flags_json": write_flags_json(job.flags, job.out_dir / "flags.json"),
        "flags_csv": write_flags_csv(job.flags, job.out_dir / "flags.csv"),
    }


def _export_manifest(job: ExportJob) -> dict[str, Path]:
    if job.manifest is None:
        return {}
    return {"manifest": write_manifest(job.manifest, job.out_dir / "manifest.json")}


def _export_overlay(job: ExportJob) -> dict[str, Path]:
    if job.overlay_path is None:
        return {}
    source = Path(job.overlay_path)
    target = job.out_dir / "overlay.mp4"
    if not source.is_file():
        raise InputError(
            f"The overlay video {source.name} does not exist; track the video again to render it."
        )
    if source.resolve() != target.resolve():
        with atomic_write(target, "wb") as handle, open(source, "rb") as original:
            shutil.copyfileobj(original, handle, length=1 << 20)
    return {"overlay": target}


FORMATS: dict[str, ExportFormat] = {
    fmt.name: fmt
    for fmt in (
        ExportFormat("masks", "DAVIS-style indexed PNG per frame (masks/00000.png…)", _export_masks),
        ExportFormat("coco", "COCO instance segmentation JSON with RLE masks (coco.json)", _export_coco),
        ExportFormat("ytvis", "YouTube-VIS video instance segmentation JSON (ytvis.json)", _export_ytvis),
        ExportFormat("mot", "MOTChallenge boxes, 1-based frames (mot.txt)", _export_mot),
        ExportFormat(
            "trajectories",
            "centroid / box / area per object and frame (trajectories.csv)",
            _export_trajectories,
        ),
        ExportFormat(
            "candidates", "CLIP retrieval table (candidates.json, candidates.csv)", _export_candidates
        ),
        ExportFormat("flags", "doubtful frames to check (flags.json, flags.csv)", _export_flags),
        ExportFormat("manifest", "project manifest (manifest.json)", _export_manifest),
        ExportFormat("overlay", "overlay video (overlay.mp4)", _export_overlay),
    )
}


def export_all(
    store: ResultStore,
    info: VideoInfo,
    objects: Objects,
    out_dir: str | os.PathLike,
    *,
    candidates: Sequence[Candidate] = (),
    query: str = "",
    manifest: Mapping[str, Any] | Any | None = None,
    overlay_path: str | os.PathLike | None = None,
    formats: Iterable[str] | None = None,
    zip_name: str | None = "annotations.zip",
    categories: Mapping[int, str] | None = None,
    flags: Sequence[Flag] | None = None,
) -> dict[str, Path]:
    """Write the chosen ``formats`` (default: all of :data:`FORMATS`) into ``out_dir``, then zip them.

    Formats without input (no candidates, no manifest, no overlay, ``flags=None``) are skipped
    silently. Returns output name → path, e.g. ``{"masks": …/masks, "coco": …/coco.json, …,
    "flags_json": …, "flags_csv": …, "zip": …}`` in :data:`FORMATS` order, the zip last;
    ``zip_name=None`` skips the zip. Unknown format names raise :class:`InputError`.
    """
    names = list(FORMATS) if formats is None else list(dict.fromkeys(formats))
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise InputError(f"Unknown export format {unknown[0]!r}; choose from {', '.join(FORMATS)}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = ExportJob(
        store, info, objects, out_dir, tuple(candidates), query, manifest,
        None if overlay_path is None else Path(overlay_path), categories,
        None if flags is None else tuple(flags),
    )  # fmt: skip
    written: dict[str, Path] = {}
    for name in names:
        written.update(FORMATS[name].write(job))
    if zip_name:
        written["zip"] = write_zip(out_dir, list(written.values()), out_dir / zip_name)
    logger.info("exported %s to %s", ", ".join(written), out_dir)
    return written


# The readers moved to tracker.annotations (next to the import they serve); these names stay
# importable from here. Imported last: tracker.annotations reads davis_palette from this module.
from .annotations import (  # noqa: E402, F401
    ImportedAnnotations,
    read_coco,
    read_png_masks,
    read_ytvis,
    segmentation_mask,
)
