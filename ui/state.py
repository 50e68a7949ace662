"""Per-browser-session state: one workspace, one private temp folder, one cancel flag.

A :class:`UISession` lives in a ``gr.State`` (so Gradio hands it back to every handler of the
same tab) and is also registered in the :class:`SessionStore` under Gradio's session hash.

* The tab's folder is named from a random id (``secrets.token_hex``), never from anything the
  client sends (the session hash is only a dictionary key); it is made on first use, owner-only
  (0700), and checked to lie directly under the temp root.
* ``demo.unload`` fires whenever the page's heartbeat connection ends (a proxy timeout, a laptop
  sleeping), not only when the tab closes, so it only *marks* the tab. The work goes when Gradio
  drops the tab's state (``delete_callback``: an hour after the connection ended, unless the tab
  came back and used it) or, when Gradio never does, ``UNLOAD_GRACE_SECONDS`` after the mark
  with no use since. A marked tab that is used again is unmarked.
* The temp root is private: made 0700, refused when another user owns it or others may write to
  it. Clean-up never follows a link (a link is removed, never its target). The disk cap is
  checked at most every ``SWEEP_INTERVAL_SECONDS`` on new tabs, with folder sizes kept between
  sweeps (only folders used since are measured again), and counts Gradio's upload cache when
  that lives under the temp root (``app.py`` puts it there).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import threading
import time
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
# A tab whose page connection ended keeps its work this long without use (Gradio keeps its state
# an hour after the connection ends).
UNLOAD_GRACE_SECONDS = 3600
# New tabs sweep the temp root at most this often.
SWEEP_INTERVAL_SECONDS = 30
# Gradio's upload cache, when it lives under the temp root (app.py sets GRADIO_TEMP_DIR there).
UPLOAD_CACHE_NAME = "gradio-cache"


def ensure_private_root(root: Path) -> Path:
    """Make ``root`` (0700) if needed; refuse, with one sentence, a root that is not this user's alone.

    A root another local user created first (the default name sits in the world-writable system
    temp folder), or one others may write to, could be used to read or swap a tab's files.
    """
    from tracker.errors import InputError

    root = Path(root)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(root)
    except OSError as exc:
        raise InputError(f"Cannot create the temp folder {root} ({exc.strerror or exc}).") from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise InputError(f"The temp folder {root} is a link or not a folder; pick another with --temp-dir.")
    if info.st_uid != os.getuid():
        raise InputError(
            f"The temp folder {root} belongs to another user (uid {info.st_uid}); pick another with --temp-dir."
        )
    if info.st_mode & 0o022:
        raise InputError(
            f"The temp folder {root} can be written by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run chmod 700 {root} or pick another with --temp-dir."
        )
    return root


def remove_entry(path: Path) -> None:
    """Remove a folder, file or link under the temp root without ever following a link."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path, ignore_errors=True)  # rmtree removes links inside, never their targets
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


@dataclass
class UISession:
    """What one browser tab is working on. Only ``ui/`` reads these fields."""

    session_id: str
    folder: Path  # the tab's folder: temp root / "session-<random id>", made on first use
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
    unloaded_at: float | None = None  # when the page's connection last ended (None: connected)
    _made: bool = field(default=False, repr=False)

    @property
    def workdir(self) -> Path:
        """The tab's private folder, made (0700, directly under the temp root) on first use."""
        if not self._made and not self.closed:
            make_private_folder(self.folder)
            self._made = True
        return self.folder

    def touch(self) -> None:
        self.last_used = time.time()
        self.unloaded_at = None

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
        remove_entry(self.folder)
        logger.info("a session closed, %s removed", self.folder)


def make_private_folder(path: Path) -> None:
    """``path`` as a new owner-only folder, refused unless it is a plain folder of ours."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{path} is not a folder of this server's")


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
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


class SessionStore:
    """All live sessions of one server, keyed by Gradio's session hash, under one private temp root."""

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
        self._in_use: set[str] = set()  # names of batch runs' folders still working (never swept)
        self._lock = threading.Lock()
        self._root_ready = False
        self._last_sweep = float("-inf")
        self._sizes: dict[str, tuple[int, float]] = {}  # folder name → (bytes, when measured)

    def root(self) -> Path:
        """The temp root, made private on first use (:func:`ensure_private_root`)."""
        if not self._root_ready:
            ensure_private_root(self.temp_root)
            self._root_ready = True
        return self.temp_root

    def _new_path(self, prefix: str) -> Path:
        path = self.root() / f"{prefix}-{secrets.token_hex(8)}"
        if path.parent != self.temp_root:  # the name is ours alone, so this cannot fail; kept as a guard
            raise RuntimeError(f"{path} is not directly under {self.temp_root}")
        return path

    def get(self, session: UISession | None, session_hash: str | None) -> UISession:
        """The tab's session: the one Gradio handed back, else the registered one, else a new one.

        A new session gets a folder name but no folder (made on first use), so unseen session
        hashes cost no disk.
        """
        if session is not None and not session.closed:
            session.touch()
            return session
        key = session_hash or secrets.token_hex(16)
        with self._lock:
            existing = self._sessions.get(key)
            if existing is not None and not existing.closed:
                existing.touch()
                return existing
            created = UISession(session_id=key, folder=self._new_path("session"))
            self._sessions[key] = created
        self.maybe_sweep()
        return created

    def close(self, session_hash: str | None) -> None:
        """Close the tab's session now (its workspace and folder go)."""
        if not session_hash:
            return
        with self._lock:
            session = self._sessions.pop(session_hash, None)
        if session is not None:
            session.close()

    def unload(self, session_hash: str | None) -> None:
        """``demo.unload``: the page's connection ended. Mark the tab; its work stays (see the module doc)."""
        with self._lock:
            session = self._sessions.get(session_hash or "")
        if session is not None:
            session.unloaded_at = time.time()

    def discard(self, session: UISession | None) -> None:
        """``gr.State`` delete callback: Gradio dropped the tab's state (expired, or long disconnected)."""
        if session is None:
            return
        with self._lock:
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]
        session.close()

    def new_folder(self, prefix: str) -> Path:
        """A private folder for work outside any tab (the batch API); swept by age after :meth:`release`."""
        path = self._new_path(prefix)
        make_private_folder(path)
        with self._lock:
            self._in_use.add(path.name)
        return path

    def release(self, path: Path) -> None:
        """The run in ``path`` (from :meth:`new_folder`) is over; its folder may be swept from now on."""
        with self._lock:
            self._in_use.discard(Path(path).name)

    def __len__(self) -> int:
        return len(self._sessions)

    def live(self) -> list[UISession]:
        with self._lock:
            return list(self._sessions.values())

    def maybe_sweep(self, now: float | None = None) -> list[Path]:
        """:meth:`sweep`, at most every ``SWEEP_INTERVAL_SECONDS`` (what a new tab runs)."""
        now = time.time() if now is None else now
        if now - self._last_sweep < SWEEP_INTERVAL_SECONDS:
            return []
        return self.sweep(now)

    def _expired(self, session: UISession, now: float) -> bool:
        if session.tracking:
            return False
        idle = now - session.last_used
        if session.unloaded_at is not None and now - session.unloaded_at > UNLOAD_GRACE_SECONDS:
            return idle > UNLOAD_GRACE_SECONDS
        return idle > SESSION_TTL_SECONDS

    def sweep(self, now: float | None = None) -> list[Path]:
        """Close expired sessions; remove stray entries older than ``stray_age``; apply the disk cap.

        Entries of the temp root are looked at without following links: a link is removed as a
        link, and nothing outside the root is ever measured or deleted.
        """
        now = time.time() if now is None else now
        self._last_sweep = now
        with self._lock:
            expired = [key for key, s in self._sessions.items() if self._expired(s, now)]
            closing = [self._sessions.pop(key) for key in expired]
        for session in closing:
            session.close()
        removed: list[Path] = []
        if not self.temp_root.is_dir():
            return removed
        keep = self._owned_names() | {UPLOAD_CACHE_NAME}
        for entry in self._entries():
            if entry.name in keep:
                continue
            age = now - _mtime(entry)
            # batch API results are copied into Gradio's cache on return; an hour is plenty
            limit = (
                min(self.stray_age, API_FOLDER_AGE_SECONDS)
                if entry.name.startswith("api-")
                else self.stray_age
            )
            if age > limit:
                remove_entry(entry)
                self._sizes.pop(entry.name, None)
                removed.append(entry)
        if self.max_bytes:
            removed += self._shrink(now)
        if removed:
            logger.info("removed %d stale temp entries from %s", len(removed), self.temp_root)
        return removed

    def _entries(self) -> list[Path]:
        try:
            return [Path(entry.path) for entry in os.scandir(self.temp_root)]
        except OSError:
            return []

    def _owned_names(self) -> set[str]:
        with self._lock:
            return {s.folder.name for s in self._sessions.values()} | set(self._in_use)

    def _size(self, path: Path, now: float, used: float) -> int:
        """Bytes under ``path`` (no link followed), measured again only when used since the last time."""
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return os.lstat(path).st_size
        cached = self._sizes.get(path.name)
        if cached is not None and cached[1] >= used and path.name != UPLOAD_CACHE_NAME:
            return cached[0]
        size = folder_size(path)
        self._sizes[path.name] = (size, now)
        return size

    def _shrink(self, now: float) -> list[Path]:
        """Over ``max_bytes``: remove strays, then Gradio's old cached files, then the longest-idle tabs.

        A tab that is tracking, or was used in the last ``MIN_IDLE_BEFORE_EVICTION_SECONDS``, is
        never closed for space; when only such tabs remain the root stays over the cap (logged).
        """
        assert self.max_bytes is not None
        with self._lock:
            owners = {s.folder.name: s for s in self._sessions.values()}
            busy = set(self._in_use)
        entries = [p for p in self._entries() if p.exists() or p.is_symlink()]
        sizes = {}
        for path in entries:
            owner = owners.get(path.name)
            try:
                sizes[path.name] = self._size(path, now, owner.last_used if owner else 0.0)
            except OSError:
                sizes[path.name] = 0
        total = sum(sizes.values())
        if total <= self.max_bytes:
            return []
        keep = set(owners) | busy | {UPLOAD_CACHE_NAME}
        strays = sorted((p for p in entries if p.name not in keep), key=_mtime)
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
            remove_entry(path)
            total -= sizes.get(path.name, 0)
            self._sizes.pop(path.name, None)
            removed.append(path)
        if total > self.max_bytes:
            total -= self._trim_upload_cache(now, total - self.max_bytes, removed)
        for session in idle:
            if total <= self.max_bytes:
                break
            with self._lock:
                if self._sessions.get(session.session_id) is session:
                    del self._sessions[session.session_id]
            session.close()
            logger.warning("temp folder over its cap: closed an idle session")
            total -= sizes.get(session.folder.name, 0)
            self._sizes.pop(session.folder.name, None)
            removed.append(session.folder)
        if total > self.max_bytes:
            logger.warning(
                "temp folder %s holds %.1f MB, over its cap of %.1f MB, and every tab in it is busy",
                self.temp_root,
                total / 1e6,
                self.max_bytes / 1e6,
            )
        return removed

    def _trim_upload_cache(self, now: float, excess: int, removed: list[Path]) -> int:
        """Remove Gradio's cached uploads and results idle for ``MIN_IDLE_BEFORE_EVICTION_SECONDS``, oldest first."""
        cache = self.temp_root / UPLOAD_CACHE_NAME
        if not stat.S_ISDIR(_lstat_mode(cache)):
            return 0
        freed = 0
        candidates = sorted(
            (
                p
                for p in (Path(e.path) for e in os.scandir(cache))
                if now - _mtime(p) >= MIN_IDLE_BEFORE_EVICTION_SECONDS
            ),
            key=_mtime,
        )
        for path in candidates:
            if freed >= excess:
                break
            size = folder_size(path) if stat.S_ISDIR(_lstat_mode(path)) else os.lstat(path).st_size
            remove_entry(path)
            freed += size
            removed.append(path)
        return freed

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()


def _lstat_mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0
