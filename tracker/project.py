"""The project file: everything needed to reproduce (and continue) one person's work on a video.

A :class:`Project` is also the manifest written next to every export (``manifest.json``). It
records the video's identity (its *file name*, never a path the user typed, and a
fingerprint), the settings, the models and their checkpoints, the prompt, the objects, the
ordered edit history (clicks, boxes, brushed masks as RLE…), the thresholds and the installed
package versions; optionally the tracked results.

Two containers, chosen by :meth:`Project.save` from the file name:

* ``*.tvt`` — a zip::

      project.tvt
        manifest.json      the manifest below, with "results": {"file": "results.jsonl"}
        results.jsonl      the tracked masks (:meth:`tracker.results.ResultStore.dump` format)

* anything else (``*.json``) — the manifest as one JSON file; tracked results, when saved,
  are inline under ``"results": {"inline": {...}}`` (:meth:`ResultStore.to_dict`).

:meth:`Project.load` reads either (it sniffs for a zip), and ``manifest.json`` from an export
folder is a valid project without results. The manifest (format version 1)::

    {
      "format": "text-prompted-video-tracker/project", "format_version": 1,
      "created": "2026-01-01T12:00:00+00:00", "tool_version": "0.1.0",
      "video": {"name", "size_bytes", "fingerprint", "fps", "num_frames", "width", "height",
                "source_width", "source_height", "rotation", "start_frame"},
      "settings": {...Settings.to_dict()...},
      "models": {"sam2": {"name", "checkpoint_sha256"}, "clip": {...}, "mask_generator": "..."},
      "random_weights": false,
      "prompt": "red shoes", "negative_prompt": null,
      "objects": [{"id": 1, "name": "red shoes", "color": [230, 25, 75]}],
      "history": [{"kind": "object", "object_id": 1, "name": "...", "color": [...]},
                  {"kind": "prompt", "object_id": 1, "frame_idx": 12, "points": [[x, y]],
                   "labels": [1], "box": [x0, y0, x1, y1] | null,
                   "mask": {"size": [h, w], "counts": "..."} | null}, ...],
      "thresholds": {"threshold": 20.0, "overlap_iou": 0.5, "take_best": false},
      "found": [{"object_id": 2, "kind": "discovered", "frame": 60, "score": 27.4,
                 "first_frame": 31}, ...],   # how each object was found (accepted /
                                            # discovered / reacquired); optional
      "packages": {"torch": "2.4.0", "sam2": "1.1.0", "open_clip_torch": "...", "numpy": "..."},
      "results": null | {"file": "results.jsonl"} | {"inline": {...}}
    }

``checkpoint_sha256`` is ``"random"`` for untrained weights and None when the checkpoint file
could not be found. Frames are 0-based; points ``(x, y)`` and boxes ``xyxy`` in working-video
pixels. Problems reading a file raise :class:`ProjectError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from .errors import InputError, ProjectError
from .masks import mask_to_json
from .results import ResultStore, atomic_write, decode_rle
from .settings import Settings
from .types import Box, FramePrompt, TrackedObject, VideoInfo, color_for
from .untrusted import (
    DEFAULT_LIMITS,
    Limits,
    UntrustedInput,
    check_rle,
    check_rle_within,
    open_zip,
    read_file,
    read_member,
)

#: A run's settings: the dataclass, or its ``to_dict()`` form as a manifest stores it.
SettingsLike = Settings | dict[str, Any]

logger = logging.getLogger(__name__)

FORMAT_NAME = "text-prompted-video-tracker/project"
FORMAT_VERSION = 1
FINGERPRINT_HEAD_BYTES = 4 * 1024 * 1024
MANIFEST_NAME = "manifest.json"
RESULTS_NAME = "results.jsonl"
REQUIRED_FIELDS = ("format_version", "video", "settings", "objects", "history")
EDIT_KINDS = ("object", "prompt", "clear", "remove", "rename")
# package → distribution names to try (the import name is not always the distribution's)
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "sam2": ("sam2", "SAM-2", "SAM_2"),
    "open_clip_torch": ("open_clip_torch", "open-clip-torch"),
    "numpy": ("numpy",),
    "pillow": ("pillow", "Pillow"),
    "pycocotools": ("pycocotools",),
    "gradio": ("gradio",),
}


# -- fingerprints and versions ---------------------------------------------------------------


def video_fingerprint(path: str | os.PathLike, head_bytes: int = FINGERPRINT_HEAD_BYTES) -> str:
    """``"<size>:<sha256 of the first head_bytes>"`` — cheap, and enough to tell videos apart.

    Reading only the head keeps this fast on long videos; the size catches files that share a
    head (a trimmed copy). Raises :class:`ProjectError` when the file cannot be read.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            digest.update(handle.read(head_bytes))
    except OSError as exc:
        raise ProjectError(
            f"Cannot read the video {path.name} to fingerprint it ({exc.strerror or exc})."
        ) from exc
    return f"{size}:{digest.hexdigest()}"


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a whole file (checkpoints), cached by path, size and modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    with _hash_lock:
        _hash_cache[key] = digest.hexdigest()
    return digest.hexdigest()


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results, read from metadata (nothing imported)."""
    versions: dict[str, str | None] = {}
    for package, distributions in PACKAGES.items():
        versions[package] = None
        for distribution in distributions:
            try:
                versions[package] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def tool_version() -> str:
    try:
        return metadata.version("text-prompted-video-tracker")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def model_record(
    name: str | None, checkpoint: str | os.PathLike | None, random_weights: bool
) -> dict[str, Any]:
    """``{"name", "checkpoint_sha256"}``: "random" for untrained weights, None if the file is unknown."""
    if random_weights:
        digest: str | None = "random"
    elif checkpoint is not None and Path(checkpoint).is_file():
        digest = file_sha256(checkpoint)
    else:
        digest = None
    return {"name": name, "checkpoint_sha256": digest}


def _find_checkpoint(kind: str, name: str | None, settings: SettingsLike | None) -> Path | None:
    """The checkpoint a model was (or would be) loaded from, without downloading; None if unknown."""

    def setting(key: str) -> Any:
        return settings.get(key) if isinstance(settings, dict) else getattr(settings, key, None)

    explicit = setting(f"{kind}_checkpoint")
    if explicit:
        return Path(explicit)
    if not name:
        return None
    try:
        from .registry import clip_spec, sam2_spec
        from .weights import resolve_checkpoint

        spec = sam2_spec(name) if kind == "sam2" else clip_spec(name)
        return Path(
            resolve_checkpoint(spec, checkpoints_dir=setting("checkpoints_dir"), offline=True, download=False)
        )
    except Exception:  # unknown model, not downloaded, or weights module absent: record None
        logger.debug("no checkpoint found for %s %s", kind, name, exc_info=True)
        return None


# -- edits -----------------------------------------------------------------------------------


def prompt_to_dict(prompt: FramePrompt) -> dict[str, Any]:
    """A :class:`FramePrompt` as JSON-ready fields (mask as compressed RLE)."""
    return {
        "object_id": prompt.object_id,
        "frame_idx": prompt.frame_idx,
        "points": [[float(x), float(y)] for x, y in prompt.points],
        "labels": [int(label) for label in prompt.labels],
        "box": None if prompt.box is None else [float(v) for v in prompt.box],
        "mask": None if prompt.mask is None else mask_to_json(prompt.mask),
    }


def prompt_from_dict(data: dict[str, Any]) -> FramePrompt:
    """Inverse of :func:`prompt_to_dict`."""
    mask = data.get("mask")
    box = data.get("box")
    if mask is not None:  # never decode a size or runs the file made up
        check_rle_within(mask, DEFAULT_LIMITS.max_pixels, "the project")
    return FramePrompt(
        int(data["object_id"]),
        int(data["frame_idx"]),
        points=[(float(x), float(y)) for x, y in data.get("points") or []],
        labels=[int(label) for label in data.get("labels") or []],
        box=None if box is None else cast(Box, tuple(float(v) for v in box)),  # FramePrompt.validate checks 4
        mask=None if mask is None else decode_rle(mask),
    )


def edit_to_dict(edit: Any) -> dict[str, Any]:
    """A workspace edit (``kind``, ``object_id``, ``frame_idx``, ``prompt``, ``name``, ``color``) as JSON."""
    out: dict[str, Any] = {"kind": edit.kind, "object_id": int(edit.object_id)}
    if edit.kind == "prompt" and edit.prompt is not None:
        out.update(prompt_to_dict(edit.prompt))
    elif edit.frame_idx is not None:
        out["frame_idx"] = int(edit.frame_idx)
    if edit.name is not None:
        out["name"] = edit.name
    if edit.color is not None:
        out["color"] = [int(c) for c in edit.color]
    return out


# -- the project -----------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def video_record(info: VideoInfo, fingerprint: str | None = None) -> dict[str, Any]:
    """What the manifest keeps about a video: its file name (not its path), size and identity."""
    path = Path(info.path)
    try:
        size = path.stat().st_size
    except OSError:
        size = None
    if fingerprint is None and size is not None:
        fingerprint = video_fingerprint(path)
    return {
        "name": path.name,
        "size_bytes": size,
        "fingerprint": fingerprint,
        "fps": info.fps,
        "num_frames": info.num_frames,
        "width": info.width,
        "height": info.height,
        "source_width": info.source_width,
        "source_height": info.source_height,
        "rotation": info.rotation,
        "start_frame": info.start_frame,
    }


def _settings_dict(settings: SettingsLike | None) -> dict[str, Any]:
    if settings is None:
        return {}
    if hasattr(settings, "to_dict"):
        data = settings.to_dict()
    elif dataclasses.is_dataclass(settings):
        data = dataclasses.asdict(settings)
    else:
        data = dict(settings)
    return {key: str(value) if isinstance(value, Path) else value for key, value in data.items()}


@dataclass
class Project:
    """The manifest / project file (see the module docstring for the layout)."""

    video: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    random_weights: bool = False
    prompt: str = ""
    negative_prompt: str | None = None
    objects: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    found: list[dict[str, Any]] = field(default_factory=list)  # tracker.discovery.FoundRecord dicts
    packages: dict[str, str | None] = field(default_factory=package_versions)
    created: str = field(default_factory=_now)
    tool_version: str = field(default_factory=tool_version)
    format_version: int = FORMAT_VERSION
    _store: ResultStore | None = field(default=None, repr=False, compare=False)

    # -- building ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        info: VideoInfo,
        settings: SettingsLike | None = None,
        objects: Any = (),
        history: Any = (),
        prompt: str = "",
        negative_prompt: str | None = None,
        fingerprint: str | None = None,
        models: dict[str, Any] | None = None,
        found: Any = (),
    ) -> Project:
        """A project for ``info`` from plain values.

        ``settings`` is a :class:`tracker.settings.Settings` (or dict); ``objects``
        :class:`TrackedObject` s (or a mapping of them); ``history`` workspace edits (objects
        with ``kind``, ``object_id``, …) or already-serialised dicts. ``models`` defaults to
        the settings' model names with their checkpoints' sha256.
        """
        settings_dict = _settings_dict(settings)
        random_weights = bool(settings_dict.get("random_weights", False))
        if models is None:
            models = {
                kind: model_record(
                    settings_dict.get(f"{kind}_model"),
                    None
                    if random_weights
                    else _find_checkpoint(kind, settings_dict.get(f"{kind}_model"), settings),
                    random_weights,
                )
                for kind in ("sam2", "clip")
            }
            models["mask_generator"] = settings_dict.get("mask_generator")
        if isinstance(objects, dict):
            objects = list(objects.values())
        return cls(
            video=video_record(info, fingerprint),
            settings=settings_dict,
            models=models,
            random_weights=random_weights,
            prompt=prompt or "",
            negative_prompt=negative_prompt,
            objects=[
                {"id": o.object_id, "name": o.name, "color": [int(c) for c in o.color]} for o in objects
            ],
            history=[edit if isinstance(edit, dict) else edit_to_dict(edit) for edit in history],
            found=[record if isinstance(record, dict) else record.to_dict() for record in found],
            thresholds={
                key: settings_dict[key]
                for key in ("threshold", "overlap_iou", "take_best")
                if key in settings_dict
            },
        )

    @classmethod
    def from_workspace(cls, workspace: Any) -> Project:
        """The project of a :class:`tracker.workspace.Workspace` (its history, objects, prompt…)."""
        return cls.create(
            workspace.info,
            workspace.settings,
            workspace.objects,
            workspace.history(),
            prompt=workspace.prompt_text,
            negative_prompt=workspace.negative_text,
            found=workspace.found_records() if hasattr(workspace, "found_records") else (),
        )

    # -- reading the parts ---------------------------------------------------------------

    def tracked_objects(self) -> list[TrackedObject]:
        return [
            TrackedObject(int(o["id"]), str(o["name"]), tuple(o.get("color") or color_for(int(o["id"]))))
            for o in self.objects
        ]

    def edits(self) -> list[dict[str, Any]]:
        """The history as dicts with ``kind``, ``object_id``, ``frame_idx``, ``name``, ``color`` and,
        for prompts, ``prompt`` rebuilt as a :class:`FramePrompt` (mask decoded)."""
        out = []
        for number, edit in enumerate(self.history, start=1):
            try:
                decoded = {
                    "kind": str(edit["kind"]),
                    "object_id": int(edit["object_id"]),
                    "frame_idx": None if edit.get("frame_idx") is None else int(edit["frame_idx"]),
                    "name": edit.get("name"),
                    "color": edit.get("color"),
                    "prompt": prompt_from_dict(edit) if edit["kind"] == "prompt" else None,
                }
            except (KeyError, TypeError, ValueError) as exc:
                raise ProjectError(
                    f"Edit {number} of the project history is damaged ({type(exc).__name__}: {exc})."
                ) from exc
            out.append(decoded)
        return out

    def found_records(self) -> list[Any]:
        """How each object was found (:class:`tracker.discovery.FoundRecord` s); damaged rows are skipped."""
        from .discovery.records import FoundRecord

        records = []
        for row in self.found:
            try:
                records.append(FoundRecord.from_dict(row))
            except (KeyError, TypeError, ValueError):
                logger.warning("skipping a damaged 'found' record in the project: %r", row)
        return records

    def frame_prompts(self) -> list[FramePrompt]:
        """Every prompt of the history, in order."""
        return [edit["prompt"] for edit in self.edits() if edit["prompt"] is not None]

    def results(self) -> ResultStore | None:
        """The tracked results saved with the project, or None."""
        return self._store

    # -- checking ------------------------------------------------------------------------

    def check_video(self, info: VideoInfo, fingerprint: str | None = None) -> None:
        """Raise :class:`ProjectError` unless ``info`` is the video (and working size) this project is for.

        ``fingerprint`` defaults to :func:`video_fingerprint` of ``info.path`` (when the project
        has one to compare with). Frame count, working size and start frame must match too, since
        masks and frame indices only mean something for the same decoded frames.
        """
        video = self.video
        name = video.get("name") or "another video"
        if fingerprint is None and video.get("fingerprint") and Path(info.path).is_file():
            fingerprint = video_fingerprint(info.path)
        if video.get("fingerprint") and fingerprint and fingerprint != video["fingerprint"]:
            this = Path(info.path).name
            which = f"another file called {name}" if name == this else f"{name}, not for {this}"
            raise ProjectError(
                f"This project was made for {which} (the files differ); open the video it was made for."
            )
        differences = []
        if video.get("num_frames") is not None and int(video["num_frames"]) != info.num_frames:
            differences.append(f"{video['num_frames']} frames, this one has {info.num_frames}")
        if video.get("width") is not None and (int(video["width"]), int(video["height"])) != (
            info.width,
            info.height,
        ):
            differences.append(
                f"{video['width']}×{video['height']} working size, this one is {info.width}×{info.height}"
            )
        if int(video.get("start_frame") or 0) != info.start_frame:
            differences.append(
                f"start frame {video.get('start_frame') or 0}, this one starts at {info.start_frame}"
            )
        if differences:
            raise ProjectError(
                f"This project was made for {name} with {'; '.join(differences)}; "
                "open the same video with the same size and trim settings."
            )
        self._check_edits(info)

    def _check_edits(self, info: VideoInfo) -> None:
        """Every recorded frame, click, box and mask must fit ``info``'s frames (checked before replay)."""
        _check_prompt_masks(self.history, (info.height, info.width), "the project", DEFAULT_LIMITS)
        for number, edit in enumerate(self.edits(), start=1):
            frame_idx = edit["frame_idx"]
            try:
                if frame_idx is not None:
                    info.check_frame(frame_idx)
                if edit["prompt"] is not None:
                    edit["prompt"].validate(info.width, info.height)
            except InputError as exc:
                raise ProjectError(
                    f"Edit {number} of the project does not fit this video ({exc}); "
                    "the file is damaged or was made for another video."
                ) from None

    # -- files ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The manifest (without results) as a JSON-ready dict."""
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "created": self.created,
            "tool_version": self.tool_version,
            "video": self.video,
            "settings": self.settings,
            "models": self.models,
            "random_weights": self.random_weights,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "objects": self.objects,
            "history": self.history,
            "thresholds": self.thresholds,
            "found": self.found,
            "packages": self.packages,
            "results": None,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "the project") -> Project:
        """Validate and build; any problem raises :class:`ProjectError` naming ``source``."""
        if not isinstance(data, dict):
            raise ProjectError(f"{source} is not a project file (expected a JSON object).")
        if data.get("format") not in (None, FORMAT_NAME):
            raise ProjectError(f"{source} is not a project file (its format is {data.get('format')!r}).")
        missing = [name for name in REQUIRED_FIELDS if name not in data]
        if missing:
            raise ProjectError(
                f"{source} is not a complete project file: missing {', '.join(missing)} "
                "(it may be truncated or from another tool)."
            )
        version = data["format_version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ProjectError(f"{source} has an invalid format_version {version!r}.")
        if version > FORMAT_VERSION:
            raise ProjectError(
                f"{source} was saved by a newer version of the tracker (project format {version}, "
                f"this one reads up to {FORMAT_VERSION}); update the tracker to open it."
            )
        types = {"video": dict, "settings": dict, "objects": list, "history": list}
        wrong = [name for name, kind in types.items() if not isinstance(data[name], kind)]
        if wrong:
            raise ProjectError(f"{source} is damaged: {', '.join(wrong)} has the wrong type.")
        for number, obj in enumerate(data["objects"], start=1):
            if not isinstance(obj, dict) or not {"id", "name"} <= obj.keys():
                raise ProjectError(f"{source} is damaged: object {number} needs an id and a name.")
        alive: set[int] = set()
        for number, edit in enumerate(data["history"], start=1):
            if not isinstance(edit, dict) or not {"kind", "object_id"} <= edit.keys():
                raise ProjectError(f"{source} is damaged: edit {number} needs a kind and an object_id.")
            kind, object_id = edit["kind"], edit["object_id"]
            if kind not in EDIT_KINDS:
                raise ProjectError(f"{source} is damaged: edit {number} has an unknown kind {kind!r}.")
            if not isinstance(object_id, int) or isinstance(object_id, bool) or object_id < 1:
                raise ProjectError(
                    f"{source} is damaged: edit {number} has an invalid object id {object_id!r}."
                )
            if kind == "object":
                alive.add(object_id)
            elif kind == "remove":
                alive.discard(object_id)
            elif kind == "rename" and object_id not in alive:
                raise ProjectError(
                    f"{source} is damaged: edit {number} renames object {object_id}, which does not exist there."
                )
        return cls(
            video=data["video"],
            settings=data["settings"],
            models=data.get("models") or {},
            random_weights=bool(data.get("random_weights", False)),
            prompt=data.get("prompt") or "",
            negative_prompt=data.get("negative_prompt"),
            objects=data["objects"],
            history=data["history"],
            thresholds=data.get("thresholds") or {},
            found=[row for row in data.get("found") or [] if isinstance(row, dict)],
            packages=data.get("packages") or {},
            created=str(data.get("created", "")),
            tool_version=str(data.get("tool_version", "")),
            format_version=version,
        )

    def save(self, path: str | os.PathLike, store: ResultStore | None = None) -> Path:
        """Write atomically: a ``.tvt`` zip (manifest + results.jsonl) or a JSON file (results inline).

        ``store`` (or the results this project was loaded with) is saved along when given.
        """
        path = Path(path)
        store = store if store is not None else self._store
        manifest = self.to_dict()
        if path.suffix.lower() == ".tvt":
            if store is not None:
                manifest["results"] = {"file": RESULTS_NAME}
            with (
                atomic_write(path, "wb") as handle,
                zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive,
            ):
                archive.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, ensure_ascii=False))
                if store is not None:
                    text = io.StringIO()
                    store.dump(text)
                    archive.writestr(RESULTS_NAME, text.getvalue())
        else:
            if store is not None:
                manifest["results"] = {"inline": store.to_dict()}
            with atomic_write(path, "w", encoding="utf-8") as handle:
                json.dump(manifest, handle, indent=None if store is not None else 2, ensure_ascii=False)
                handle.write("\n")
        logger.info("saved project to %s%s", path, " with results" if store is not None else "")
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike, info: VideoInfo | None = None, limits: Limits | None = None
    ) -> Project:
        """Read a project saved by :meth:`save` (or an export's ``manifest.json``), validated.

        ``info`` is the open video the project is for: the saved results must have its size and
        frame count, and every brushed mask its size, checked before anything is decoded (never
        against what the file claims about itself). Without ``info`` they are checked against
        the project's own ``video`` entry and the fixed caps of ``limits``. Sizes are capped
        before reading (``limits``: manifest, zip members, JSON file). Any problem raises
        :class:`ProjectError` with one sentence; nothing else is touched.
        """
        path = Path(path)
        source = path.name
        limits = limits or DEFAULT_LIMITS
        if not path.is_file():
            raise ProjectError(f"The project file {source} does not exist.")
        try:
            if zipfile.is_zipfile(path):
                data, store = _read_zip(path, source, info, limits)
            else:
                if path.suffix.lower() == ".tvt":
                    raise ProjectError(
                        f"{source} is not a project file (a .tvt must be a zip; it is damaged)."
                    )
                data = _parse_json(read_file(path, limits.max_json_bytes, "project file"), source)
                results_ref = data.get("results") if isinstance(data, dict) else None
                store = None
                if isinstance(results_ref, dict) and "inline" in results_ref:
                    expect = _expected_results(data, info)
                    store = ResultStore.from_dict(results_ref["inline"], f"{source} (results)", expect)
        except UntrustedInput as exc:
            raise ProjectError(str(exc)) from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{source} is not a readable project file (damaged: {exc}).") from exc
        project = cls.from_dict(data, source)
        video = project.video
        size = (info.height, info.width) if info is not None else _entry_size(video)
        _check_prompt_masks(project.history, size, source, limits)
        if store is not None and info is None:
            found = {"width": store.width, "height": store.height, "num_frames": store.num_frames}
            if any(video.get(key) is not None and video[key] != value for key, value in found.items()):
                raise ProjectError(
                    f"{source} is damaged: its results do not match its video's size or length."
                )
        project._store = store
        return project


def _entry_size(video: dict[str, Any]) -> tuple[int, int] | None:
    try:
        return int(video["height"]), int(video["width"])
    except (KeyError, TypeError, ValueError):
        return None


def _expected_results(data: Any, info: VideoInfo | None) -> tuple[int, int, int] | None:
    """``(width, height, num_frames)`` the saved results must have: the open video's when known."""
    if info is not None:
        return info.width, info.height, info.num_frames
    video = data.get("video") if isinstance(data, dict) else None
    if isinstance(video, dict):
        try:
            return int(video["width"]), int(video["height"]), int(video["num_frames"])
        except (KeyError, TypeError, ValueError):
            return None
    return None


def _read_zip(
    path: Path, source: str, info: VideoInfo | None, limits: Limits
) -> tuple[Any, ResultStore | None]:
    """The manifest and results of a ``.tvt``, each member read with its byte cap."""
    with open_zip(path, limits) as archive:
        try:
            raw = read_member(archive, MANIFEST_NAME, limits.max_manifest_bytes, limits)
        except KeyError:
            raise ProjectError(f"{source} is a zip but not a project: it has no {MANIFEST_NAME}.") from None
        data = _parse_json(raw, source)
        results_ref = data.get("results") if isinstance(data, dict) else None
        if not (isinstance(results_ref, dict) and "file" in results_ref):
            return data, None
        name = str(results_ref["file"])
        try:
            text = read_member(archive, name, limits.max_member_bytes, limits).decode("ascii")
        except KeyError:
            raise ProjectError(f"{source} is damaged: its results file {name} is missing.") from None
        expect = _expected_results(data, info)
        return data, ResultStore.read(io.StringIO(text), source=f"{source}:{name}", expect=expect)


def _check_prompt_masks(
    history: list[dict[str, Any]], size: tuple[int, int] | None, source: str, limits: Limits
) -> None:
    """Every brushed mask of the history has the video's size and runs that cover it (not decoded)."""
    for number, edit in enumerate(history, start=1):
        mask = edit.get("mask")
        if mask is None:
            continue
        where = f"{source} (edit {number})"
        try:
            if size is None:
                check_rle_within(mask, limits.max_pixels, where)
            elif not isinstance(mask, dict):
                raise UntrustedInput(f"A mask in {where} is not an RLE mask.")
            else:
                check_rle(mask, size, where)
        except UntrustedInput as exc:
            raise ProjectError(f"{exc} The project is damaged or was made for another video.") from None


def _parse_json(raw: bytes, source: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ProjectError(f"{source} is not a project file (its JSON nests too deeply).") from None
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{source} is not a project file (not text: it is binary or damaged).") from exc
    except json.JSONDecodeError as exc:
        raise ProjectError(
            f"{source} is not a project file (not valid JSON at line {exc.lineno}, column {exc.colno})."
        ) from exc
