"""A stand-in for :class:`tracker.workspace.Workspace` for fast UI tests: numpy-only fake masks.

It implements the public interface the web app uses with the same signatures and the same
conventions (frames 0-based, ``(x, y)`` working pixels, masks ``H×W bool``), decodes the small
test clips with imageio-ffmpeg, and never loads a model: a click makes a disc, a box a
rectangle, and "tracking" slides each object's mask along with the frame index. It exists so
the handlers can be tested in milliseconds; the integration tests use the real workspace.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from tracker.discovery import (
    Discovery,
    DiscoveryConfig,
    ExemplarBank,
    FoundRecord,
    exemplar_ranking,
    likeness_ranking,
)
from tracker.errors import InputError, VideoError
from tracker.flags import Flag
from tracker.masks import mask_box
from tracker.settings import Settings
from tracker.types import Box, Candidate, FramePrompt, FrameResult, TrackedObject, VideoInfo, color_for
from tracker.workspace import FindEvent, TrackEvent

PRESET_NAMES = ("fast", "balanced", "quality")


class _Store:
    """The slice of ``ResultStore`` the UI reads: ``len``, ``get``, ``frames``, ``mask``, ``object_ids``.

    Like the real store, ``put`` replaces a frame's entries for the objects in the result and
    keeps the others.
    """

    def __init__(self) -> None:
        self.masks: dict[int, dict[int, np.ndarray]] = {}  # frame → object → H×W bool

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def results(self) -> dict[int, FrameResult]:
        return {f: self.get(f) for f in sorted(self.masks)}

    def get(self, frame_idx: int) -> FrameResult | None:
        entries = self.masks.get(frame_idx)
        if entries is None:
            return None
        ids = tuple(sorted(entries))
        return FrameResult(frame_idx, ids, np.stack([entries[i] for i in ids]), np.ones(len(ids), np.float32))

    def put(self, result: FrameResult) -> None:
        entries = self.masks.setdefault(result.frame_idx, {})
        for object_id, mask in zip(result.object_ids, result.masks, strict=True):
            entries[object_id] = mask

    def frames(self) -> list[int]:
        return sorted(self.masks)

    def mask(self, frame_idx: int, object_id: int) -> np.ndarray | None:
        return self.masks.get(frame_idx, {}).get(object_id)

    @property
    def object_ids(self) -> list[int]:
        return sorted({o for entries in self.masks.values() for o in entries})

    def remove_object(self, object_id: int) -> None:
        for entries in self.masks.values():
            entries.pop(object_id, None)


def read_frames(path: Path, max_size: int | None = None) -> tuple[list[np.ndarray], float]:
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = reader.__next__()
    except Exception as error:  # imageio raises OSError/RuntimeError for non-videos
        raise VideoError(f"{Path(path).name} is not a readable video.") from error
    width, height = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(height, width, 3).copy() for buf in reader]
    if not frames:
        raise VideoError(f"{Path(path).name} has no video frames.")
    if max_size and max(width, height) > max_size:
        step = int(np.ceil(max(width, height) / max_size))
        frames = [np.ascontiguousarray(f[::step, ::step]) for f in frames]
    return frames, float(meta.get("fps") or 25.0)


def blend(frame: np.ndarray, result: FrameResult | None, objects: dict[int, TrackedObject]) -> np.ndarray:
    out = frame.astype(np.float32)
    if result is not None:
        for object_id, mask in zip(result.object_ids, result.masks, strict=True):
            color = objects[object_id].color if object_id in objects else color_for(object_id)
            out[mask] = out[mask] * 0.45 + np.array(color, np.float32) * 0.55
    return out.clip(0, 255).astype(np.uint8)


class Mp4Writer:
    """write(frame) / close() around imageio-ffmpeg, like tracker.render.OverlayWriter."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self._gen = imageio_ffmpeg.write_frames(
            str(path), size, fps=fps, codec="libx264", quality=None, bitrate=None,
            output_params=["-crf", "28", "-pix_fmt", "yuv420p", "-preset", "ultrafast"],
            macro_block_size=1, ffmpeg_log_level="error",
        )  # fmt: skip
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        self._gen.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StandInWorkspace:
    """Same interface as :class:`tracker.workspace.Workspace`; fake masks, no models.

    ``tests/test_workspace_protocol.py`` holds it to ``ui.protocols.WorkspaceLike``: the same
    signatures, written the same way, for every member the UI uses.
    """

    find_delay = 0.0  # seconds per ranked frame, to exercise streaming
    track_delay = 0.0  # seconds per tracked frame, to exercise Stop

    def __init__(
        self, frames: list[np.ndarray], fps: float, path: Path, settings: Settings, workdir: Path
    ) -> None:
        height, width = frames[0].shape[:2]
        self.frames = frames
        self.info = VideoInfo(path, width, height, fps, len(frames), width, height)
        self.settings = settings
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.objects: dict[int, TrackedObject] = {}
        self.candidates: list[Candidate] = []
        self.prompt_text = ""
        self.store = _Store()
        self.last_overlay: Path | None = None
        self.last_retrack_frames: list[int] = []
        self.found: list[FoundRecord] = []
        self.last_discovery: Discovery | None = None
        self.exemplars = ExemplarBank()
        self.cancel_event = threading.Event()
        self._stale: set[int] = set()  # objects edited since the last run
        self._prompts: dict[tuple[int, int], FramePrompt] = {}
        self._history: list[tuple] = []
        self._redo: list[tuple] = []
        self._lock = threading.RLock()
        self.closed = False

    @classmethod
    def open(cls, video: Path, hub, settings: Settings, workdir: Path) -> StandInWorkspace:
        preset = settings.preset or "balanced"
        if preset not in PRESET_NAMES:
            raise InputError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}.")
        settings = dataclasses.replace(settings, preset=preset)
        frames, fps = read_frames(Path(video), settings.max_size)
        return cls(frames, fps, Path(video), settings, workdir)

    def close(self) -> None:
        self.cancel_event.set()
        self.closed = True

    # -- frames and candidates
    def frame(self, frame_idx: int) -> np.ndarray:
        return self.frames[self.info.check_frame(int(frame_idx))]

    def _disc(self, x: float, y: float, radius: float | None = None) -> np.ndarray:
        h, w = self.info.height, self.info.width
        radius = radius or min(w, h) / 8
        yy, xx = np.mgrid[0:h, 0:w]
        return (xx - x) ** 2 + (yy - y) ** 2 <= radius**2

    def find_candidates(
        self, prompt: str, negative_prompt: str | None = None, cancel: threading.Event | None = None
    ) -> Iterator[FindEvent]:
        if not (prompt or "").strip():
            raise InputError("Type what to follow first.")
        cancel = cancel or self.cancel_event
        cancel.clear()
        n = self.info.num_frames
        picked = sorted({0, n // 2, n - 1})
        found: list[Candidate] = []
        yield FindEvent("load", 0.0, "Loading models…")
        for rank, frame_idx in enumerate(picked):
            if cancel.is_set():
                break
            time.sleep(self.find_delay)
            for k in range(2):
                x = self.info.width * (0.3 + 0.4 * k)
                mask = self._disc(x, self.info.height / 2)
                # a left disc and a right disc: two looks, a little different on each frame
                look = np.array([1.0, 0.1 * rank, 0.0] if k == 0 else [0.1 * rank, 1.0, 0.0], np.float32)
                found.append(
                    Candidate(
                        frame_idx,
                        self.info.time_of(frame_idx),
                        mask,
                        mask_box(mask),
                        30.0 - rank - k * 0.5,
                        embedding=look / np.linalg.norm(look),
                    )
                )
            found.sort(key=lambda c: -c.score)
            self.candidates = self._ranked(found)
            yield FindEvent(
                "masks", (rank + 1) / len(picked), f"Frame {frame_idx} done", list(found), frame_idx
            )
        self.prompt_text = prompt.strip()
        yield FindEvent("done", 1.0, "Done", list(found), None)

    # -- objects and prompts (an edit history of snapshots makes undo/redo trivial)
    def _snapshot(self) -> None:
        self._history.append((copy.deepcopy(self.objects), copy.deepcopy(self._prompts)))
        self._redo.clear()

    def add_object(self, name: str | None = None, color: tuple[int, int, int] | None = None) -> TrackedObject:
        with self._lock:
            self._snapshot()
            object_id = max(self.objects, default=0) + 1
            obj = TrackedObject(
                object_id, (name or "").strip() or f"object {object_id}", color or color_for(object_id)
            )
            self.objects[object_id] = obj
            return obj

    def _check(self, object_id: int, frame_idx: int) -> None:
        if object_id not in self.objects:
            raise InputError(f"There is no object {object_id}; add an object first.")
        self.info.check_frame(frame_idx)

    def _set_prompt(self, prompt: FramePrompt) -> FrameResult:
        prompt.validate(self.info.width, self.info.height)
        self._snapshot()
        self._prompts[(prompt.object_id, prompt.frame_idx)] = prompt
        self._stale.add(prompt.object_id)
        return self._prompt_result(prompt.frame_idx)

    def _mask_of(self, prompt: FramePrompt) -> np.ndarray:
        if prompt.mask is not None:
            return prompt.mask.copy()
        mask = np.zeros((self.info.height, self.info.width), bool)
        if prompt.box is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
            mask[y0:y1, x0:x1] = True
        for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
            if label:
                mask |= self._disc(x, y)
        for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
            if not label:
                mask &= ~self._disc(x, y, min(self.info.width, self.info.height) / 16)
        return mask

    def _prompt_result(self, frame_idx: int) -> FrameResult:
        ids, masks = [], []
        for (object_id, f), prompt in sorted(self._prompts.items()):
            if f == frame_idx and object_id in self.objects:
                ids.append(object_id)
                masks.append(self._mask_of(prompt))
        h, w = self.info.height, self.info.width
        stack = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        return FrameResult(frame_idx, tuple(ids), stack, np.ones(len(ids), np.float32))

    def accept_candidate(self, index: int, object_id: int | None = None) -> FrameResult:
        with self._lock:
            if not 0 <= index < len(self.candidates):
                raise InputError(f"There is no candidate {index + 1}; pick one from the list.")
            candidate = self.candidates[index]
            if object_id is None:
                object_id = self.add_object(self.prompt_text or None).object_id
                self.exemplars.discard(object_id)
            if candidate.embedding is not None:
                self.exemplars.add(object_id, candidate.embedding)
            return self._set_prompt(FramePrompt(object_id, candidate.frame_idx, mask=candidate.mask.copy()))

    # the exemplar logic is the library's (numpy only), as the workspace uses it
    def _ranked(self, candidates: list[Candidate]) -> list[Candidate]:
        looks = [oid for oid in self.exemplars.object_ids if oid in self.objects]
        return exemplar_ranking(candidates, self.exemplars, looks)[0]

    def reject_candidate(self, index: int) -> list[int]:
        with self._lock:
            if not self.candidates:
                raise InputError("There are no candidates yet: run Find first.")
            if not 0 <= index < len(self.candidates):
                raise InputError(f"There is no candidate {index + 1}; pick one from the list.")
            candidate = self.candidates[index]
            if candidate.embedding is not None:
                self.exemplars.add_negative(candidate.embedding)
            kept = [i for i in range(len(self.candidates)) if i != index]
            looks = [oid for oid in self.exemplars.object_ids if oid in self.objects]
            self.candidates, order = exemplar_ranking(
                [self.candidates[i] for i in kept], self.exemplars, looks
            )
            return [kept[i] for i in order]

    def more_like(self, object_id: int) -> list[int]:
        with self._lock:
            if not self.candidates:
                raise InputError("There are no candidates yet: run Find first.")
            self._check(object_id, 0)
            if not self.exemplars.exemplars(object_id):
                raise InputError(f"{self.objects[object_id].name} has no look to compare with yet.")
            order = likeness_ranking(self.candidates, self.exemplars, object_id)
            self.candidates = [self.candidates[i] for i in order]
            return order

    def best_candidates(self, max_objects: int = 1) -> list[int]:
        with self._lock:
            if not self.candidates:
                raise InputError("There are no candidates yet: run Find first, or click on the object.")
            best_frame = self.candidates[0].frame_idx
            return [i for i, c in enumerate(self.candidates) if c.frame_idx == best_frame][
                : max(1, max_objects)
            ]

    def accept_best(self, max_objects: int = 1) -> list[TrackedObject]:
        with self._lock:
            chosen = self.best_candidates(max_objects)
            before = set(self.objects)
            for index in chosen:
                self.accept_candidate(index)
            return [obj for oid, obj in self.objects.items() if oid not in before]

    def add_click(
        self, object_id: int, frame_idx: int, x: float, y: float, positive: bool = True
    ) -> FrameResult:
        with self._lock:
            self._check(object_id, frame_idx)
            current = self._prompts.get((object_id, frame_idx))
            points = list(current.points) if current and current.mask is None else []
            labels = list(current.labels) if current and current.mask is None else []
            box = current.box if current and current.mask is None else None
            points.append((float(x), float(y)))
            labels.append(1 if positive else 0)
            return self._set_prompt(FramePrompt(object_id, frame_idx, points, labels, box=box))

    def set_box(self, object_id: int, frame_idx: int, box: Box) -> FrameResult:
        with self._lock:
            self._check(object_id, frame_idx)
            x0, y0, x1, y1 = (float(v) for v in box)
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            return self._set_prompt(FramePrompt(object_id, frame_idx, box=box))

    def set_mask(self, object_id: int, frame_idx: int, mask: np.ndarray) -> FrameResult:
        with self._lock:
            self._check(object_id, frame_idx)
            return self._set_prompt(FramePrompt(object_id, frame_idx, mask=np.asarray(mask).astype(bool)))

    def clear_frame(self, frame_idx: int, object_id: int | None = None) -> FrameResult:
        with self._lock:
            self._snapshot()
            for key in [
                k for k in self._prompts if k[1] == frame_idx and (object_id is None or k[0] == object_id)
            ]:
                del self._prompts[key]
            return self._prompt_result(frame_idx)

    def remove_object(self, object_id: int) -> None:
        with self._lock:
            self._check(object_id, 0)
            self._snapshot()
            del self.objects[object_id]
            self.exemplars.reject_object(object_id)
            for key in [k for k in self._prompts if k[0] == object_id]:
                del self._prompts[key]
            self.store.remove_object(object_id)

    def rename_object(self, object_id: int, name: str) -> None:
        with self._lock:
            self._check(object_id, 0)
            if not (name or "").strip():
                raise InputError("An object's name can't be empty.")
            self._snapshot()
            self.objects[object_id] = dataclasses.replace(self.objects[object_id], name=name.strip())

    def undo(self) -> bool:
        with self._lock:
            if not self._history:
                return False
            self._redo.append((copy.deepcopy(self.objects), copy.deepcopy(self._prompts)))
            self.objects, self._prompts = self._history.pop()
            return True

    def redo(self) -> bool:
        with self._lock:
            if not self._redo:
                return False
            self._history.append((copy.deepcopy(self.objects), copy.deepcopy(self._prompts)))
            self.objects, self._prompts = self._redo.pop()
            return True

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def prompts(self) -> list[FramePrompt]:
        return [self._prompts[k] for k in sorted(self._prompts, key=lambda k: (k[1], k[0]))]

    def prompted_frames(self) -> list[int]:
        return sorted({f for (_, f) in self._prompts})

    # -- viewing and tracking
    def result_at(self, frame_idx: int) -> FrameResult | None:
        if any(f == frame_idx for (_, f) in self._prompts):
            return self._prompt_result(frame_idx)
        return self.store.get(frame_idx)

    def preview(self, frame_idx: int, with_trails: bool = True) -> np.ndarray:
        return blend(self.frame(frame_idx), self.result_at(frame_idx), self.objects)

    def _tracked(self, frame_idx: int, object_ids=None) -> FrameResult:
        ids, masks = [], []
        for object_id in self.objects if object_ids is None else object_ids:
            prompts = [p for (o, _), p in self._prompts.items() if o == object_id]
            nearest = min(prompts, key=lambda p: abs(p.frame_idx - frame_idx))
            ids.append(object_id)
            masks.append(np.roll(self._mask_of(nearest), frame_idx - nearest.frame_idx, axis=1))
        return FrameResult(frame_idx, tuple(ids), np.stack(masks), np.ones(len(ids), np.float32))

    def found_records(self) -> list[FoundRecord]:
        return [r for r in self.found if r.object_id in self.objects]

    def _discover_at(self, frame_idx: int) -> None:
        """Stand-in discovery: a new object (a disc in the top-left quarter) confirmed on ``frame_idx``."""
        height, width = self.info.height, self.info.width
        yy, xx = np.mgrid[0:height, 0:width]
        disc = (xx - width / 4) ** 2 + (yy - height / 4) ** 2 <= (min(width, height) / 10) ** 2
        obj = self.add_object(f"{self.prompt_text or 'object'} {max(self.objects, default=0) + 1}")
        self.set_mask(obj.object_id, frame_idx, disc)
        self.found.append(FoundRecord(obj.object_id, "discovered", frame_idx, 27.4, first_frame=frame_idx))

    def track(
        self,
        start_frame: int | None = None,
        end_frame: int | None = None,
        direction: str = "both",
        cancel: threading.Event | None = None,
        overlay_path: Path | None = None,
        discover: DiscoveryConfig | None = None,
    ) -> Iterator[TrackEvent]:
        with self._lock:
            if not self.objects:
                raise InputError("Nothing to track yet: pick a candidate or click on an object first.")
            unprompted = [
                o.name for o in self.objects.values() if not any(k[0] == o.object_id for k in self._prompts)
            ]
            if unprompted:
                raise InputError(
                    f"{', '.join(unprompted)} has no clicks or mask yet: click on it, or remove it, then track."
                )
            cancel = cancel or self.cancel_event
            cancel.clear()
            first = min(self.prompted_frames())
            n = self.info.num_frames
            order = (
                [("backward", f) for f in range(first - 1, -1, -1)]
                if direction in ("both", "backward")
                else []
            )
            if direction in ("both", "forward"):
                order += [("forward", f) for f in range(first, n)]
            overlay_path = Path(overlay_path) if overlay_path else self.workdir / "overlay.mp4"
        writer = None
        started = time.perf_counter()
        try:
            for done, (leg, frame_idx) in enumerate(order, 1):
                if cancel.is_set():
                    break
                if leg == "forward" and direction == "both" and writer is None:
                    # like the real one: the backward leg's frames again, in frame order, as replays
                    writer = Mp4Writer(overlay_path, self.info.fps, (self.info.width, self.info.height))
                    for f in range(0, frame_idx):
                        drawn = blend(self.frame(f), self.store.get(f), self.objects)
                        writer.write(drawn)
                        yield TrackEvent(
                            self.store.get(f), drawn, done - 1, len(order), None, "backward", True
                        )
                time.sleep(self.track_delay)
                if discover is not None and leg == "forward" and frame_idx == first + discover.every:
                    self._discover_at(frame_idx)
                result = self._tracked(frame_idx)
                self.store.put(result)
                overlay = blend(self.frame(frame_idx), result, self.objects)
                if writer is not None:
                    writer.write(overlay)
                elapsed = time.perf_counter() - started
                yield TrackEvent(result, overlay, done, len(order), elapsed / done * (len(order) - done), leg)
            if not cancel.is_set():
                self._stale.clear()
        finally:
            if writer is not None:
                writer.close()
                self.last_overlay = overlay_path

    def retrack(
        self,
        frame_idx: int,
        object_ids: list[int] | None = None,
        *,
        agree_iou: float = 0.9,
        agree_frames: int = 8,
        max_frames: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[TrackEvent]:
        """Forward from ``frame_idx``, backward from the frame before, each way until the new
        masks of the edited objects agree with the old ones for ``agree_frames`` frames."""
        with self._lock:
            self.info.check_frame(frame_idx)
            targets = sorted(object_ids if object_ids is not None else (self._stale or self.objects))
            for object_id in targets:
                self._check(object_id, frame_idx)
            if not targets:
                raise InputError(
                    "Nothing changed since the last run: correct an object first, then re-track."
                )
            cancel = cancel or self.cancel_event
            cancel.clear()
            n = self.info.num_frames
            legs = [("forward", range(frame_idx, n))]
            if frame_idx > 0:
                legs.append(("backward", range(frame_idx - 1, -1, -1)))
            total = sum(
                len(frames) if max_frames is None else min(len(frames), max_frames) for _, frames in legs
            )
        self.last_retrack_frames = []
        done = 0
        for direction, frames in legs:
            streak = 0
            for count, f in enumerate(frames, 1):
                if cancel.is_set() or (max_frames is not None and count > max_frames):
                    break
                time.sleep(self.track_delay)
                result = self._tracked(f, targets)
                agrees = all(
                    _iou(self.store.mask(f, oid), result.mask_of(oid)) >= agree_iou for oid in targets
                )
                self.store.put(result)
                self.last_retrack_frames.append(f)
                streak = streak + 1 if agrees and f != frame_idx else 0
                done += 1
                merged = self.store.get(f)
                yield TrackEvent(
                    merged, blend(self.frame(f), merged, self.objects), done, total, None, direction
                )
                if streak >= agree_frames:
                    break
        if not cancel.is_set():
            self._stale.difference_update(targets)
        self.last_overlay = None

    def flags(self, with_clip: bool = True, every_seconds: float = 0.5) -> list[Flag]:
        """The real detectors over the stand-in's masks (no CLIP here)."""
        from tracker.flags import flags_from_store

        return flags_from_store(self.store)

    def import_annotations(self, path: Path) -> list[TrackedObject]:
        """PNG folder / zip, COCO or YouTube-VIS JSON, read and checked by the library's import."""
        from tracker.annotations import read_annotations
        from tracker.masks import decode_rle

        imported = read_annotations(Path(path), self.info)
        shape = (self.info.height, self.info.width)
        with self._lock:
            created = []
            id_map: dict[int, int] = {}
            for source_id in imported.object_ids:
                obj = self.add_object(imported.names.get(source_id) or f"imported {source_id}")
                id_map[source_id] = obj.object_id
                created.append(obj)
            empty = np.zeros(shape, bool)
            for frame_idx, objs in sorted(imported.rles.items()):
                ids = tuple(id_map.values())
                stack = np.stack([decode_rle(objs[s]) if s in objs else empty for s in id_map])
                self.store.put(FrameResult(frame_idx, ids, stack, np.ones(len(ids), np.float32)))
            for source_id, object_id in id_map.items():
                first = imported.first_frame(source_id)
                self._set_prompt(
                    FramePrompt(object_id, first, mask=decode_rle(imported.rles[first][source_id]))
                )
            self._stale.difference_update(id_map.values())
            return created

    def render_overlay(self, path: Path | None = None) -> Path:
        path = Path(path) if path else self.workdir / "overlay.mp4"
        with Mp4Writer(path, self.info.fps, (self.info.width, self.info.height)) as writer:
            for f in range(self.info.num_frames):
                writer.write(blend(self.frame(f), self.store.get(f), self.objects))
        self.last_overlay = path
        return path

    # -- outputs
    def export(
        self, out_dir: Path, formats: list[str] | None = None, *, flags: list[Flag] | None = None
    ) -> dict[str, Path]:
        """Fake files under the real names, plus the real flags files (as the real export)."""
        from tracker.flags import write_flags_csv, write_flags_json

        if len(self.store) == 0:
            raise InputError("Nothing has been tracked yet: track first, then download.")
        out_dir = Path(out_dir)
        (out_dir / "masks").mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {"masks": out_dir / "masks"}
        rows = [
            {"frame": f, "object_id": oid, "area": int(m.sum())}
            for f, r in sorted(self.store.results.items())
            for oid, m in zip(r.object_ids, r.masks, strict=True)
        ]
        written["trajectories"] = out_dir / "trajectories.csv"
        written["trajectories"].write_text(
            "frame,object_id,area\n" + "".join(f"{r['frame']},{r['object_id']},{r['area']}\n" for r in rows)
        )
        written["coco"] = out_dir / "coco.json"
        written["coco"].write_text(json.dumps({"annotations": rows}))
        if self.last_overlay is None or not self.last_overlay.exists():
            self.render_overlay()  # like the real export: a re-track leaves no overlay behind
        if self.last_overlay is not None and self.last_overlay.exists():
            written["overlay"] = out_dir / "overlay.mp4"
            written["overlay"].write_bytes(self.last_overlay.read_bytes())
        if formats is None or "flags" in formats:
            flags = self.flags() if flags is None else flags
            written["flags_json"] = write_flags_json(flags, out_dir / "flags.json")
            written["flags_csv"] = write_flags_csv(flags, out_dir / "flags.csv")
        written["zip"] = out_dir / "annotations.zip"
        with zipfile.ZipFile(written["zip"], "w") as archive:
            for name, path in written.items():
                if name != "zip" and path.is_file():
                    archive.write(path, path.name)
        return written

    def save_project(self, path: Path) -> Path:
        data = {
            "video": self.info.path.name,
            "num_frames": self.info.num_frames,
            "objects": [[o.object_id, o.name] for o in self.objects.values()],
            "prompts": [
                [p.object_id, p.frame_idx, p.points, p.labels, p.box]
                for p in self.prompts()
                if p.mask is None
            ],
        }
        Path(path).write_text(json.dumps(data))
        return Path(path)

    def load_project(self, path: Path) -> None:
        """The stand-in's own JSON; a real project file (a zip, or JSON with a ``format_version``)
        goes through the library's checked :meth:`tracker.project.Project.load` first."""
        from tracker.project import Project

        if zipfile.is_zipfile(path) or '"format_version"' in _head(Path(path)):
            Project.load(Path(path), self.info).check_video(self.info)
        try:
            data = json.loads(Path(path).read_text())
            objects = data["objects"]
            prompts = data["prompts"]
        except (OSError, ValueError, KeyError) as error:
            from tracker.errors import ProjectError

            raise ProjectError(f"{Path(path).name} is not a project file of this tool.") from error
        self.objects = {oid: TrackedObject(oid, name, color_for(oid)) for oid, name in objects}
        self._prompts = {}
        for object_id, frame_idx, points, labels, box in prompts:
            self._prompts[(object_id, frame_idx)] = FramePrompt(
                object_id, frame_idx, [tuple(p) for p in points], labels, box=tuple(box) if box else None
            )


def _head(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.read(100_000).decode("utf-8", errors="replace")


def _iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    a_any = a is not None and a.any()
    b_any = b is not None and b.any()
    if not a_any or not b_any:
        return 1.0 if a_any == b_any else 0.0
    return float((a & b).sum() / (a | b).sum())


def standin_services(temp_root: Path, streaming: bool = False, **overrides):
    """Services around the stand-in workspace (no ModelHub, no tracker.render)."""
    from ui.services import PresetChoice, Services

    def draw_candidate(frame, mask, rank):
        result = FrameResult(0, (rank,), mask[None], np.ones(1, np.float32))
        return blend(frame, result, {rank: TrackedObject(rank, "", (255, 196, 0))})

    values = dict(
        # discovery off: the stand-in's own discovery adds an object, which only the tests that
        # ask for it expect (the default, on, is tested in tests/test_discovery_default.py)
        settings=Settings(discover=False),
        open_workspace=lambda video, settings, workdir: StandInWorkspace.open(video, None, settings, workdir),
        presets=[PresetChoice(name, name.capitalize()) for name in PRESET_NAMES],
        default_preset="balanced",
        estimate_seconds=lambda preset, frames: (
            frames * {"fast": 0.2, "balanced": 0.5, "quality": 2.0}[preset]
        ),
        draw_candidate=draw_candidate,
        open_segment_writer=lambda path, fps, size: Mp4Writer(path, fps, size),
        temp_root=Path(temp_root),
        streaming=streaming,
    )
    values.update(overrides)
    return Services(**values)
