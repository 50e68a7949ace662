"""A few sentences saying what an export holds, for people and AI agents that get only the zip.

:func:`describe_annotations` reads an ``annotations.zip`` written by
:meth:`tracker.workspace.Workspace.export` (the manifest, ``trajectories.csv`` and, when present,
``flags.json``) and says which objects were tracked, on how many of the frames each was found,
how many frames are flagged for review, and what the zip contains. Every part is optional: a zip
without a manifest still gets a summary from what it has.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# What people call the files of an export, in the order the summary lists them.
_CONTENTS = (
    ("masks/", "PNG masks (one per frame, pixel value = object id)"),
    ("coco.json", "COCO"),
    ("ytvis.json", "YouTube-VIS"),
    ("mot.txt", "MOT boxes"),
    ("trajectories.csv", "trajectories"),
    ("candidates.json", "the ranked candidates"),
    ("flags.json", "the flagged frames"),
    ("manifest.json", "the manifest (settings, models, clicks; also a project file)"),
)


@dataclass
class AnnotationsSummary:
    """What :func:`describe_annotations` found; ``str()`` is the text."""

    prompt: str | None = None
    num_frames: int | None = None  # frames of the (working) video
    fps: float | None = None
    size: tuple[int, int] | None = None  # working width, height
    objects: dict[int, str] = field(default_factory=dict)  # object id → name
    found: dict[int, int] = field(default_factory=dict)  # object id → frames where it was found
    num_flags: int | None = None
    random_weights: bool = False
    contents: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        ids = sorted(set(self.objects) | set(self.found))
        parts = []
        what = f" for {self.prompt!r}" if self.prompt else ""
        video = ""
        if self.num_frames:
            video = f" through {self.num_frames} frames"
            if self.fps:
                video += f" ({self.num_frames / self.fps:.1f} s at {self.fps:.3g} fps"
                video += f", {self.size[0]}×{self.size[1]})" if self.size else ")"
        parts.append(f"Tracked {len(ids)} object{'s' if len(ids) != 1 else ''}{what}{video}.")
        for object_id in ids:
            name = self.objects.get(object_id) or f"object {object_id}"
            count = self.found.get(object_id, 0)
            of = f" of {self.num_frames} frames" if self.num_frames else f" frame{'s' if count != 1 else ''}"
            parts.append(f"Object {object_id} ({name}): found in {count}{of}.")
        if self.num_flags is not None:
            parts.append(
                "No frames are flagged for review."
                if not self.num_flags
                else f"{self.num_flags} doubtful frame{'s are' if self.num_flags != 1 else ' is'} "
                "flagged for review (flags.json)."
            )
        if self.random_weights:
            parts.append("The models had untrained (random) weights: the masks are meaningless.")
        if self.contents:
            parts.append("The zip holds " + ", ".join(self.contents) + ".")
        return " ".join(parts)


def summarize_annotations(path: str | os.PathLike[str]) -> AnnotationsSummary:
    """Read the export zip at ``path``; unreadable parts are left out (logged at DEBUG)."""
    summary = AnnotationsSummary()
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        manifest = _json(archive, "manifest.json")
        if isinstance(manifest, dict):
            _read_manifest(summary, manifest)
        if "trajectories.csv" in names:
            summary.found = _frames_found(archive.read("trajectories.csv").decode("utf-8"))
        flags = _json(archive, "flags.json")
        if isinstance(flags, dict) and isinstance(flags.get("flags"), list):
            summary.num_flags = len(flags["flags"])
    summary.contents = [
        label for prefix, label in _CONTENTS if any(n == prefix or n.startswith(prefix) for n in names)
    ]
    return summary


def describe_annotations(path: str | os.PathLike[str]) -> str:
    """The summary of the export zip at ``path`` as a few sentences."""
    return str(summarize_annotations(Path(path)))


def _read_manifest(summary: AnnotationsSummary, manifest: dict[str, Any]) -> None:
    video = manifest.get("video")
    if not isinstance(video, dict):
        video = {}
    summary.prompt = manifest.get("prompt") or None
    summary.num_frames = _int(video.get("num_frames"))
    summary.fps = _float(video.get("fps"))
    width, height = _int(video.get("width")), _int(video.get("height"))
    summary.size = (width, height) if width and height else None
    summary.random_weights = bool(manifest.get("random_weights"))
    for item in manifest.get("objects") or []:
        if isinstance(item, dict) and _int(item.get("id")) is not None:
            summary.objects[int(item["id"])] = str(item.get("name") or "")


def _frames_found(text: str) -> dict[int, int]:
    """Frames per object where it is visible (``visible`` 1, or a positive ``area`` without that column)."""
    found: Counter[int] = Counter()
    for row in csv.DictReader(io.StringIO(text)):
        object_id = _int(row.get("object_id"))
        if object_id is None:
            continue
        visible = row.get("visible")
        seen = visible in ("1", "True", "true") if visible is not None else (_float(row.get("area")) or 0) > 0
        found[object_id] += bool(seen)
    return dict(found)


def _json(archive: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(archive.read(name))
    except KeyError:
        return None
    except (ValueError, UnicodeDecodeError):
        logger.debug("%s in the export is not JSON", name, exc_info=True)
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


__all__ = ["AnnotationsSummary", "describe_annotations", "summarize_annotations"]
