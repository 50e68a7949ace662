"""Per-browser-session state: one workspace, one private temp folder, one cancel flag.

A :class:`UISession` lives in a ``gr.State`` (so Gradio hands it back to every handler of the
same tab) and is also registered in the :class:`SessionStore` under Gradio's session hash, so
closing the tab (``demo.unload``) or the state expiring (``delete_callback``) closes the
workspace and deletes the folder. Folders left behind by a crash are removed by age.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .protocols import WorkspaceLike

logger = logging.getLogger(__name__)

# How long an idle tab keeps its workspace, and how old a stray folder must be to be swept.
SESSION_TTL_SECONDS = 6 * 3600
STRAY_FOLDER_AGE_SECONDS = 24 * 3600
API_FOLDER_AGE_SECONDS = 3600
# Past the temp root's size cap, tabs idle for at least this long may be closed to make room.
MIN_IDLE_BEFORE_EVICTION_SECONDS = 15 * 60


@dataclass
class UISession:
    """What one browser tab is working on. Only ``ui/`` reads these fields."""

    session_id: str
    workdir: Path
    workspace: WorkspaceLike | None = None  # tracker.workspace.Workspace (or the tests' stand-in)
    video_path: Path | None = None  # the session's private copy of the video (a fixed, safe name)
    source: str | None = None  # the upload's path as Gradio gave it (only compared, never opened again)
    object_id: int | None = None  # the object clicks go to
    frame_idx: int = 0  # the frame shown in step 3
    mode: str = "positive"  # "positive" | "negative" | "box"
    box_start: tuple[float, float] | None = None  # first corner while drawing a box
    selected_candidate: int | None = None  # last candidate clicked in the gallery
    accepted: dict[int, int] = field(default_factory=dict)  # candidate index → object id
    thumbnails: dict[tuple, Any] = field(default_factory=dict)  # candidate key → gallery image
    cancel: threading.Event = field(default_factory=threading.Event)
    tracking: bool = False
    stopping: bool = False  # Stop was pressed and after_stop has not reported yet
    track_started: float = 0.0  # time.time() when the last run began
    runs: int = 0  # numbered folders for each track / export, so the browser never sees a stale file
    last_overlay: Path | None = None
    review: Any = None  # ui.review.ReviewState: the flags of the last run (and the workspace they are of)
    last_used: float = field(default_factory=time.time)
    closed: bool = False

    def touch(self) -> None:
        self.last_used = time.time()

    def new_run_dir(self, kind: str, keep: int = 2) -> Path:
        """A fresh numbered folder for one run; older runs of the same kind beyond ``keep`` go.

        The newest earlier run is kept because the browser may still be fetching its files.
        """
        self.runs += 1
        path = self.workdir / f"{kind}-{self.runs:03d}"
        path.mkdir(parents=True, exist_ok=True)
        earlier = sorted(p for p in self.workdir.glob(f"{kind}-*") if p.is_dir() and p != path)
        for old in earlier[: max(0, len(earlier) - (keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def reset_video(self) -> None:
        """Forget everything about the previous video (the caller opens the next one)."""
        self.close_workspace()
        self.video_path = None
        self.source = None
        self.object_id = None
        self.frame_idx = 0
        self.box_start = None
        self.selected_candidate = None
        self.accepted = {}
        self.thumbnails = {}
        self.last_overlay = None

    def close_workspace(self) -> None:
        workspace, self.workspace = self.workspace, None
        if workspace is not None:
            self.cancel.set()
            try:
                workspace.close()
            except Exception:
                logger.warning("closing a workspace failed", exc_info=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_workspace()
        shutil.rmtree(self.workdir, ignore_errors=True)
        logger.info("session %s closed, %s removed", self.session_id[:8], self.workdir)


def folder_size(path: Path) -> int:
    """Bytes in the files under ``path`` (files that vanish meanwhile count as 0)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class SessionStore:
    """All live sessions of one server, keyed by Gradio's session hash, under one temp root."""

    def __init__(
        self,
        temp_root: Path,
        stray_age: float = STRAY_FOLDER_AGE_SECONDS,
        max_bytes: int | None = None,
    ) -> None:
        self.temp_root = Path(temp_root)
        self.stray_age = stray_age
        self.max_bytes = max_bytes  # cap on everything under temp_root; None = no cap
        self._sessions: dict[str, UISession] = {}
        self._in_use: set[Path] = set()  # folders of batch runs still working (never swept)
        self._lock = threading.Lock()

    def get(self, session: UISession | None, session_hash: str | None) -> UISession:
        """The tab's session: the one Gradio handed back, else the registered one, else a new one."""
        if session is not None and not session.closed:
            session.touch()
            return session
        key = session_hash or uuid.uuid4().hex
        with self._lock:
            existing = self._sessions.get(key)
            if existing is not None and not existing.closed:
                existing.touch()
                return existing
            self.temp_root.mkdir(parents=True, exist_ok=True)
            workdir = self.temp_root / f"session-{key[:16]}-{uuid.uuid4().hex[:8]}"
            workdir.mkdir(parents=True)
            created = UISession(session_id=key, workdir=workdir)
            self._sessions[key] = created
        self.sweep()
        return created

    def close(self, session_hash: str | None) -> None:
        if not session_hash:
            return
        with self._lock:
            session = self._sessions.pop(session_hash, None)
        if session is not None:
            session.close()

    def discard(self, session: UISession | None) -> None:
        """``gr.State`` delete callback: the state expired or the tab is long gone."""
        if session is None:
            return
        with self._lock:
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]
        session.close()

    def new_folder(self, prefix: str) -> Path:
        """A private folder for work outside any tab (the batch API); swept by age after :meth:`release`."""
        self.temp_root.mkdir(parents=True, exist_ok=True)
        path = self.temp_root / f"{prefix}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        with self._lock:
            self._in_use.add(path.resolve())
        return path

    def release(self, path: Path) -> None:
        """The run in ``path`` (from :meth:`new_folder`) is over; its folder may be swept from now on."""
        with self._lock:
            self._in_use.discard(Path(path).resolve())

    def __len__(self) -> int:
        return len(self._sessions)

    def live(self) -> list[UISession]:
        with self._lock:
            return list(self._sessions.values())

    def sweep(self, now: float | None = None) -> list[Path]:
        """Close sessions idle for longer than the TTL; remove stray folders older than ``stray_age``."""
        now = time.time() if now is None else now
        with self._lock:
            idle = [
                key
                for key, s in self._sessions.items()
                if now - s.last_used > SESSION_TTL_SECONDS and not s.tracking
            ]
            expired = [self._sessions.pop(key) for key in idle]
            live = {s.workdir.resolve() for s in self._sessions.values()} | self._in_use
        for session in expired:
            session.close()
        removed: list[Path] = []
        if not self.temp_root.is_dir():
            return removed
        for path in self.temp_root.iterdir():
            if not path.is_dir() or path.resolve() in live:
                continue
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            # batch API results are copied into Gradio's cache on return; an hour is plenty
            limit = (
                min(self.stray_age, API_FOLDER_AGE_SECONDS)
                if path.name.startswith("api-")
                else self.stray_age
            )
            if age > limit:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        if self.max_bytes:
            removed += self._shrink(now)
        if removed:
            logger.info("removed %d stale temp folder(s) from %s", len(removed), self.temp_root)
        return removed

    def _shrink(self, now: float) -> list[Path]:
        """Over ``max_bytes``: remove stray folders, then close the longest-idle tabs, oldest first.

        A tab that is tracking, or was used in the last ``MIN_IDLE_BEFORE_EVICTION_SECONDS``, is
        never closed for space; when only such tabs remain the root stays over the cap (logged).
        """
        assert self.max_bytes is not None
        folders = [p.resolve() for p in self.temp_root.iterdir() if p.is_dir()]
        sizes = {p: folder_size(p) for p in folders}
        total = sum(sizes.values())
        if total <= self.max_bytes:
            return []
        with self._lock:
            owners = {s.workdir.resolve(): s for s in self._sessions.values()}
            busy = set(self._in_use)
        strays = sorted((p for p in folders if p not in owners and p not in busy), key=_mtime)
        idle = sorted(
            (
                s
                for s in owners.values()
                if not s.tracking and now - s.last_used >= MIN_IDLE_BEFORE_EVICTION_SECONDS
            ),
            key=lambda s: s.last_used,
        )
        removed: list[Path] = []
        for path in strays:
            if total <= self.max_bytes:
                break
            shutil.rmtree(path, ignore_errors=True)
            total -= sizes.get(path, 0)
            removed.append(path)
        for session in idle:
            if total <= self.max_bytes:
                break
            with self._lock:
                if self._sessions.get(session.session_id) is session:
                    del self._sessions[session.session_id]
            size = sizes.get(session.workdir.resolve(), 0)
            session.close()
            logger.warning("temp folder over its cap: closed idle session %s", session.session_id[:8])
            total -= size
            removed.append(session.workdir)
        if total > self.max_bytes:
            logger.warning(
                "temp folder %s holds %.1f MB, over its cap of %.1f MB, and every tab in it is busy",
                self.temp_root,
                total / 1e6,
                self.max_bytes / 1e6,
            )
        return removed

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()
