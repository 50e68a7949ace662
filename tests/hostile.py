"""Generators of hostile inputs (issue 9) and a probe that opens one under a memory limit.

Every generator writes a small file into ``folder`` and returns its path; nothing large is
committed. ``VIDEO`` is the open video each file is thrown at (the files that need a bigger
frame to allocate much say so with their own video in :data:`CORPUS`).

``python -m tests.hostile probe KIND PATH W H N LIMIT_MB`` opens one file the way the app does
(annotation import, or "Open project…" then a view of the first stored frame) in this process
under ``RLIMIT_AS = LIMIT_MB`` and prints one JSON line: ``{"outcome": "ok" | "refused" |
"error", "message", "peak_mb"}``. A crash (segfault, out of memory) prints nothing; the
caller sees the signal in the return code. It runs against whichever ``tracker`` is importable,
so the same probe measures the code before and after a change.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


class Video(NamedTuple):
    width: int
    height: int
    num_frames: int


VIDEO = Video(64, 48, 10)
BIG_VIDEO = Video(640, 480, 10)  # for the files whose masks must be large to hurt
HUGE = 300_000  # a side that makes pycocotools ask for 90 GB


# ---------------------------------------------------------------------------- PNGs by hand
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(
    width: int, height: int, bit_depth: int = 8, colour: int = 0, rows: Callable | None = None
) -> bytes:
    """A PNG written row by row (``rows(y) -> bytes`` of one unfiltered row), never whole in memory."""
    bytes_per_pixel = max(1, bit_depth // 8)
    blank = bytes(width * bytes_per_pixel)
    packer = zlib.compressobj(9)
    data = io.BytesIO()
    for y in range(height):
        data.write(packer.compress(b"\x00" + (rows(y) if rows else blank)))
    data.write(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data.getvalue()) + _chunk(b"IEND", b"")
    )


def ids_png(width: int, height: int, ids: int) -> bytes:
    """A 16-bit grey PNG holding ``ids`` object ids (one pixel each, then background)."""
    values = np.zeros(width * height, dtype=">u2")
    values[:ids] = np.arange(1, ids + 1)
    raw = values.tobytes()
    row = width * 2
    return png_bytes(width, height, 16, 0, rows=lambda y: raw[y * row : (y + 1) * row])


def one_id_png(width: int, height: int) -> bytes:
    row = bytes([1]) + bytes(width - 1)
    return png_bytes(width, height, 8, 0, rows=lambda y: row if y == 0 else bytes(width))


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


# ---------------------------------------------------------------------------- the corpus
def _rle_counts(runs: list[int]) -> str:
    """COCO's compressed counts string of ``runs`` (pycocotools' rleToString, in Python)."""
    out = []
    for index, value in enumerate(runs):
        x = value - runs[index - 2] if index > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def coco_huge_rle(folder: Path, video: Video = VIDEO) -> Path:
    data = {
        "images": [{"id": 1, "width": video.width, "height": video.height, "frame_index": 0}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                         "segmentation": {"size": [HUGE, HUGE], "counts": "0"}}],
        "categories": [{"id": 1, "name": "x"}],
    }  # fmt: skip
    return _write_json(folder / "coco_huge_rle.json", data)


def coco_rle_overflow(folder: Path, video: Video = VIDEO) -> Path:
    """Right size, but runs that add up to far more pixels than the mask has (a heap overflow)."""
    counts = _rle_counts([0, 2_000_000_000])
    data = {
        "images": [{"id": 1, "width": video.width, "height": video.height, "frame_index": 0}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                         "segmentation": {"size": [video.height, video.width], "counts": counts}}],
        "categories": [{"id": 1, "name": "x"}],
    }  # fmt: skip
    return _write_json(folder / "coco_rle_overflow.json", data)


def coco_polygon_far(folder: Path, video: Video = VIDEO) -> Path:
    """A polygon on a 20000×20000 "image"."""
    side = 20_000
    data = {
        "images": [{"id": 1, "width": side, "height": side, "frame_index": 0}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                         "segmentation": [[0, 0, side, 0, side, side, 0, side]]}],
        "categories": [{"id": 1, "name": "x"}],
    }  # fmt: skip
    return _write_json(folder / "coco_polygon_far.json", data)


def coco_polygon_outside(folder: Path, video: Video = VIDEO) -> Path:
    """The video's own size, but a polygon a billion pixels away."""
    far = 1e9
    data = {
        "images": [{"id": 1, "width": video.width, "height": video.height, "frame_index": 0}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                         "segmentation": [[0, 0, far, 0, far, far, 0, far]]}],
        "categories": [{"id": 1, "name": "x"}],
    }  # fmt: skip
    return _write_json(folder / "coco_polygon_outside.json", data)


def ytvis_huge_rle(folder: Path, video: Video = VIDEO) -> Path:
    data = {
        "videos": [{"id": 1, "width": video.width, "height": video.height, "length": video.num_frames}],
        "annotations": [{"id": 1, "video_id": 1, "category_id": 1,
                         "segmentations": [{"size": [HUGE, HUGE], "counts": "0"}]}],
        "categories": [{"id": 1, "name": "x"}],
    }  # fmt: skip
    return _write_json(folder / "ytvis_huge_rle.json", data)


def ytvis_length(folder: Path, video: Video = VIDEO) -> Path:
    data = {
        "videos": [{"id": 1, "width": video.width, "height": video.height, "length": 5_000_000}],
        "annotations": [],
        "categories": [],
    }
    return _write_json(folder / "ytvis_length.json", data)


def _project(video_entry: dict[str, Any], history: list | None = None, results: Any = None) -> dict:
    return {
        "format": "text-prompted-video-tracker/project", "format_version": 1,
        "video": video_entry, "settings": {}, "objects": [{"id": 1, "name": "x"}],
        "history": history if history is not None else [{"kind": "object", "object_id": 1, "name": "x"}],
        "results": results,
    }  # fmt: skip


def project_huge_rle(folder: Path, video: Video = VIDEO) -> Path:
    """Under 500 bytes: one brushed mask that claims 300000×300000."""
    prompt = {"kind": "prompt", "object_id": 1, "frame_idx": 0, "points": [], "labels": [], "box": None,
              "mask": {"size": [HUGE, HUGE], "counts": "0"}}  # fmt: skip
    data = _project({"name": "clip.mp4"}, [{"kind": "object", "object_id": 1, "name": "x"}, prompt])
    return _write_json(folder / "project_huge_rle.json", data)


def _results_jsonl(width: int, height: int, frames: int, counts: str) -> str:
    header = {"format": "tvt-results", "version": 1, "width": width, "height": height, "num_frames": frames}
    record = {"frame": 0, "objects": [{"id": 1, "score": 1.0, "area": 1, "box": [0, 0, 1, 1],
                                       "centroid": [0, 0], "counts": counts}]}  # fmt: skip
    return json.dumps(header) + "\n" + json.dumps(record) + "\n"


def project_forged_video(folder: Path, video: Video = VIDEO) -> Path:
    """A .tvt whose video entry leaves out the size and whose results claim 300000×300000."""
    manifest = _project({"name": "clip.mp4"}, results={"file": "results.jsonl"})
    return _zip(folder / "project_forged_video.tvt", {
        "manifest.json": json.dumps(manifest).encode(),
        "results.jsonl": _results_jsonl(HUGE, HUGE, video.num_frames, "0").encode(),
    })  # fmt: skip


def project_forged_small(folder: Path, video: Video = VIDEO) -> Path:
    """Inline results at another (small) size than the open video, the video entry silent about it."""
    header = {"format": "tvt-results", "version": 1, "width": video.width * 3, "height": video.height * 3,
              "num_frames": video.num_frames, "frames": []}  # fmt: skip
    return _write_json(
        folder / "project_forged_small.json", _project({"name": "clip.mp4"}, results={"inline": header})
    )


def _deflated_member(
    archive: zipfile.ZipFile, name: str, head: bytes, filler: bytes, size: int, tail: bytes
) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as member:
        member.write(head)
        block = filler * (1 << 20)
        for _ in range(size >> 20):
            member.write(block)
        member.write(tail)


def project_zip_bomb(folder: Path, video: Video = VIDEO, size: int = 1 << 30) -> Path:
    """A .tvt whose results member inflates ~1000-fold (1 GB of blank lines)."""
    path = folder / "project_zip_bomb.tvt"
    manifest = _project(dict(name="clip.mp4", width=video.width, height=video.height, num_frames=video.num_frames),
                        results={"file": "results.jsonl"})  # fmt: skip
    header = _results_jsonl(video.width, video.height, video.num_frames, "0").splitlines()[0] + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        _deflated_member(archive, "results.jsonl", header.encode(), b"\n", size, b"")
    return path


def project_manifest_bomb(folder: Path, video: Video = VIDEO, size: int = 1 << 29) -> Path:
    """A .tvt whose manifest.json is 512 MB of spaces around a tiny project."""
    path = folder / "project_manifest_bomb.tvt"
    manifest = json.dumps(_project({"name": "clip.mp4"})).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        _deflated_member(archive, "manifest.json", b"", b" ", size, manifest)
    return path


def project_deep_json(folder: Path, video: Video = VIDEO) -> Path:
    """100000 nested lists: a parser that recurses runs out of stack."""
    path = folder / "project_deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def davis_many_ids(folder: Path, video: Video = BIG_VIDEO) -> Path:
    """One 16-bit PNG holding 4000 ids: one full-frame mask each."""
    return _zip(folder / "davis_many_ids.zip", {"masks/00000.png": ids_png(video.width, video.height, 4000)})


def png_8000(folder: Path, video: Video = VIDEO) -> Path:
    """One 8000×8000 16-bit PNG with two ids."""
    side = 8000
    row = b"\x00\x01" + bytes(2 * side - 4) + b"\x00\x02"
    return _zip(
        folder / "png_8000.zip", {"masks/00000.png": png_bytes(side, side, 16, 0, rows=lambda y: row)}
    )


def many_pngs(folder: Path, video: Video = BIG_VIDEO, count: int = 5000) -> Path:
    """5000 PNGs at the video's size for a 10-frame video: each decoded before the frame count was checked."""
    frame = one_id_png(video.width, video.height)
    with zipfile.ZipFile(folder / "many_pngs.zip", "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(f"masks/{index:05d}.png", frame)
    return folder / "many_pngs.zip"


def png_bomb(folder: Path, video: Video = VIDEO) -> Path:
    """A 100 kB PNG that decodes to 144 megapixels (12000×12000, 8-bit, one id)."""
    side = 12_000
    return _zip(folder / "png_bomb.zip", {"masks/00000.png": one_id_png(side, side)})


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


class Case(NamedTuple):
    make: Callable[..., Path]
    kind: str  # "annotations" or "project"
    video: Video


CORPUS: dict[str, Case] = {
    "coco_huge_rle": Case(coco_huge_rle, "annotations", VIDEO),
    "coco_rle_overflow": Case(coco_rle_overflow, "annotations", VIDEO),
    "coco_polygon_far": Case(coco_polygon_far, "annotations", VIDEO),
    "coco_polygon_outside": Case(coco_polygon_outside, "annotations", VIDEO),
    "ytvis_huge_rle": Case(ytvis_huge_rle, "annotations", VIDEO),
    "ytvis_length": Case(ytvis_length, "annotations", VIDEO),
    "davis_many_ids": Case(davis_many_ids, "annotations", BIG_VIDEO),
    "png_8000": Case(png_8000, "annotations", VIDEO),
    "many_pngs": Case(many_pngs, "annotations", BIG_VIDEO),
    "png_bomb": Case(png_bomb, "annotations", VIDEO),
    "project_huge_rle": Case(project_huge_rle, "project", VIDEO),
    "project_forged_video": Case(project_forged_video, "project", VIDEO),
    "project_forged_small": Case(project_forged_small, "project", VIDEO),
    "project_zip_bomb": Case(project_zip_bomb, "project", VIDEO),
    "project_manifest_bomb": Case(project_manifest_bomb, "project", VIDEO),
    "project_deep_json": Case(project_deep_json, "project", VIDEO),
}


def make(name: str, folder: Path) -> Path:
    case = CORPUS[name]
    return case.make(Path(folder), case.video)


# ---------------------------------------------------------------------------- the probe
def _info(path: Path, video: Video):
    from tracker.types import VideoInfo

    return VideoInfo(Path(path), video.width, video.height, 25.0, video.num_frames, video.width, video.height)


def _open_annotations(path: Path, info) -> str:
    try:
        from tracker.annotations import read_annotations
    except ImportError:  # the code before issue 9: the readers, then the workspace's fitting
        return _open_annotations_before(path, info)
    imported = read_annotations(path, info)
    return f"{len(imported.object_ids)} object(s)"


def _open_annotations_before(path: Path, info) -> str:
    from tracker.export import read_coco, read_png_masks, read_ytvis
    from tracker.masks import resize_mask

    if path.suffix == ".json":
        head = json.loads(path.read_text())
        masks = (read_ytvis if isinstance(head, dict) and "videos" in head else read_coco)(path).masks
    else:
        masks = read_png_masks(path)
    for objects in masks.values():
        for object_id, mask in objects.items():
            objects[object_id] = resize_mask(mask, info.width, info.height)
    return f"{len({o for objs in masks.values() for o in objs})} object(s)"


def _open_project(path: Path, info) -> str:
    import inspect

    from tracker.project import Project

    if "info" in inspect.signature(Project.load).parameters:
        project = Project.load(path, info)
    else:
        project = Project.load(path)
    project.check_video(info)
    store = project.results()
    if store is not None and store.frames():
        store.get(store.frames()[0])  # what the next view of that frame decodes
    return "opened"


def probe(kind: str, path: Path, video: Video, limit_mb: int) -> dict[str, Any]:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))
    from tracker.errors import TrackerError

    info = _info(path, video)
    opener = _open_annotations if kind == "annotations" else _open_project
    try:
        outcome, message = "ok", opener(path, info)
    except TrackerError as error:
        outcome, message = "refused", str(error)
    except BaseException as error:  # noqa: BLE001 - the probe reports whatever escaped
        outcome, message = "error", f"{type(error).__name__}: {str(error)[:200]}"
    return {"outcome": outcome, "message": message, "peak_mb": _peak_mb("self")}


def _peak_mb(pid: str | int) -> float | None:
    """A process's peak resident size (VmHWM) in MB, or None once it is gone.

    Not ``ru_maxrss``: Linux carries the parent's peak over ``exec`` into it (a child started
    from a 5 GB pytest process reports 5 GB), while VmHWM belongs to the new address space.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return None
    return round(kb / 1024, 1)


def run_probe(
    name: str, path: Path, limit_mb: int, cwd: Path | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Run :func:`probe` in a child process (``cwd``'s ``tracker``); a crash → ``outcome: "crashed"``.

    ``peak_mb`` is the child's own peak resident size (VmHWM): reported by the child, or for a
    child that crashed, the last value read while it ran (polled every 50 ms).
    """
    import os
    import signal
    import subprocess
    import tempfile

    case = CORPUS[name]
    root = Path(cwd) if cwd else Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    command = [sys.executable, str(Path(__file__).resolve()), "probe", case.kind, str(path),
               *map(str, case.video), str(limit_mb)]  # fmt: skip
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        seen_mb = 0.0  # the child's peak as last read, for a child that dies without reporting
        while True:
            pid, status, _usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            seen_mb = max(seen_mb, _peak_mb(child.pid) or 0.0)
            if time.monotonic() > deadline:
                child.kill()
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        tail = err.read().strip().splitlines()[-1:]
    if child.returncode == 0 and lines:
        return json.loads(lines[-1])
    peak_mb = seen_mb
    code = child.returncode
    why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
    return {
        "outcome": "crashed",
        "message": f"{why} {tail[0][:150] if tail else ''}".strip(),
        "peak_mb": peak_mb,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"]:
        kind, path, width, height, frames, limit = sys.argv[2:8]
        print(json.dumps(probe(kind, Path(path), Video(int(width), int(height), int(frames)), int(limit))))  # noqa: T201
    elif sys.argv[1:2] == ["table"]:  # python -m tests.hostile table FOLDER LIMIT_MB [CODE_ROOT]
        folder, limit = Path(sys.argv[2]), int(sys.argv[3])
        root = Path(sys.argv[4]) if len(sys.argv) > 4 else None
        folder.mkdir(parents=True, exist_ok=True)
        for name in CORPUS:
            file = make(name, folder)
            result = run_probe(name, file, limit, cwd=root, timeout=300)
            size = file.stat().st_size
            print(
                f"| {name} | {size} | {result['peak_mb']} | {result['outcome']} | {result['message'][:110]} |"
            )  # noqa: T201
            sys.stdout.flush()
