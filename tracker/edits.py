"""The edit log of a workspace: every change a person makes, in order, with undo and redo.

An :class:`Edit` is one change (a new object, a prompt on a frame, clearing a frame, removing or
renaming an object). :class:`EditLog` keeps the ordered history and a redo stack and knows
nothing of what an edit does: its owner (a :class:`tracker.workspace.Workspace`) gives it two
hooks, ``apply`` (one edit onto the live state) and ``reset`` (forget the live state).

Undo and redo rebuild the live state by replaying the whole history (``reset``, then ``apply``
for each edit in order): SAM 2's answer to a click depends on everything it was given before,
so replaying is the exact way back. The history is also what a project file stores
(:func:`tracker.project.edit_to_dict`, :meth:`tracker.project.Project.edits`), so reopening a
project replays the same edits and reproduces the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .types import FramePrompt, FrameResult

EDIT_KINDS: tuple[str, ...] = ("object", "prompt", "clear", "remove", "rename")


@dataclass
class Edit:
    """One recorded change; replaying the history of them rebuilds the state.

    ``kind`` is one of :data:`EDIT_KINDS`: ``"object"`` (a new object, with ``name`` and
    ``color``), ``"prompt"`` (``prompt`` is the object's whole prompt on ``prompt.frame_idx``),
    ``"clear"`` (forget the object's prompts on ``frame_idx``), ``"remove"`` and ``"rename"``
    (with ``name``). Frames are 0-based.
    """

    kind: str
    object_id: int
    frame_idx: int | None = None
    prompt: FramePrompt | None = None
    name: str | None = None
    color: tuple[int, int, int] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Edit:
        """An edit from a history entry as :meth:`tracker.project.Project.edits` decodes it
        (``prompt`` already a :class:`FramePrompt`, ``color`` a list or ``None``)."""
        color = data.get("color")
        return cls(
            str(data["kind"]),
            int(data["object_id"]),
            frame_idx=data.get("frame_idx"),
            prompt=data.get("prompt"),
            name=data.get("name"),
            color=tuple(color) if color else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a project file stores (:func:`tracker.project.edit_to_dict`)."""
        from .project import edit_to_dict

        return edit_to_dict(self)


class EditLog:
    """The ordered history of :class:`Edit` s, with undo, redo and replay.

    ``apply(edit)`` changes the owner's live state and returns what it returns for that edit
    (a prompt's :class:`FrameResult`, else ``None``); it may raise, and then the edit is not
    recorded. ``reset()`` forgets the live state (before a replay). The log holds no lock: its
    owner calls it under its own.
    """

    def __init__(self, apply: Callable[[Edit], FrameResult | None], reset: Callable[[], None]) -> None:
        self._apply = apply
        self._reset = reset
        self._history: list[Edit] = []
        self._redo: list[Edit] = []

    def __len__(self) -> int:
        return len(self._history)

    def edits(self) -> list[Edit]:
        """The history, oldest first (a copy)."""
        return list(self._history)

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def record(self, edit: Edit) -> FrameResult | None:
        """Apply ``edit``, then append it to the history (a new edit clears the redo stack)."""
        result = self._apply(edit)
        self._history.append(edit)
        self._redo.clear()
        return result

    def undo(self) -> bool:
        """Take back the last edit (and rebuild); False when there is nothing to undo."""
        if not self._history:
            return False
        self._redo.append(self._history.pop())
        self.replay()
        return True

    def redo(self) -> bool:
        """Put back the last undone edit (and rebuild); False when there is nothing to redo."""
        if not self._redo:
            return False
        self._history.append(self._redo.pop())
        self.replay()
        return True

    def replay(self) -> None:
        """Rebuild the live state: ``reset``, then ``apply`` every edit of the history in order."""
        self._reset()
        for edit in self._history:
            self._apply(edit)

    def load(self, edits: Iterable[Edit]) -> None:
        """Replace the history with ``edits`` (no redo) and replay it.

        If the replay fails, the previous history and redo stack are put back and replayed, so
        the work that was open is not lost, and the error is raised again.
        """
        kept = self._history, self._redo
        self._history, self._redo = list(edits), []
        try:
            self.replay()
        except BaseException:
            self._history, self._redo = kept
            self.replay()
            raise


__all__ = ["EDIT_KINDS", "Edit", "EditLog"]
