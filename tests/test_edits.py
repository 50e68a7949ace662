"""The edit log (tracker/edits.py) with a stand-in owner: a list the edits are applied to."""

from __future__ import annotations

import numpy as np
import pytest

from tracker.edits import Edit, EditLog
from tracker.project import edit_to_dict, prompt_from_dict
from tracker.types import FramePrompt


class Owner:
    """Stand-in live state: the names of the objects, rebuilt by the log's replays."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.resets = 0
        self.log = EditLog(self.apply, self.reset)

    def apply(self, edit: Edit):
        if edit.kind == "object":
            self.names[edit.object_id] = edit.name or ""
        elif edit.kind == "rename":
            if edit.name == "boom":
                raise ValueError("boom")
            self.names[edit.object_id] = edit.name or ""
        elif edit.kind == "remove":
            self.names.pop(edit.object_id)
        return None

    def reset(self) -> None:
        self.names.clear()
        self.resets += 1


@pytest.mark.parametrize(
    ("steps", "names", "can_undo", "can_redo"),
    [
        ([], {}, False, False),
        (["add"], {1: "a"}, True, False),
        (["add", "rename"], {1: "b"}, True, False),
        (["add", "rename", "undo"], {1: "a"}, True, True),
        (["add", "rename", "undo", "undo"], {}, False, True),
        (["add", "rename", "undo", "redo"], {1: "b"}, True, False),
        (["add", "rename", "undo", "remove"], {}, True, False),  # a new edit clears the redo stack
    ],
)
def test_record_undo_redo(steps, names, can_undo, can_redo):
    owner = Owner()
    edits = {
        "add": Edit("object", 1, name="a"),
        "rename": Edit("rename", 1, name="b"),
        "remove": Edit("remove", 1),
    }
    for step in steps:
        if step in edits:
            owner.log.record(edits[step])
        else:
            getattr(owner.log, step)()
    assert owner.names == names
    assert (owner.log.can_undo, owner.log.can_redo) == (can_undo, can_redo)


def test_nothing_to_undo_or_redo_changes_nothing():
    owner = Owner()
    assert owner.log.undo() is False and owner.log.redo() is False and owner.resets == 0


def test_an_edit_that_fails_is_not_recorded():
    owner = Owner()
    owner.log.record(Edit("object", 1, name="a"))
    with pytest.raises(ValueError):
        owner.log.record(Edit("rename", 1, name="boom"))
    assert [e.kind for e in owner.log.edits()] == ["object"]


def test_load_replays_and_a_failed_load_keeps_the_work_that_was_open():
    owner = Owner()
    owner.log.record(Edit("object", 1, name="open work"))
    owner.log.load([Edit("object", 7, name="loaded")])
    assert owner.names == {7: "loaded"} and not owner.log.can_redo
    with pytest.raises(ValueError):
        owner.log.load([Edit("object", 2, name="x"), Edit("rename", 2, name="boom")])
    assert owner.names == {7: "loaded"} and len(owner.log) == 1


def test_edits_round_trip_through_the_project_form():
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:5] = True
    edits = [
        Edit("object", 1, name="disc", color=(230, 25, 75)),
        Edit("prompt", 1, frame_idx=3, prompt=FramePrompt(1, 3, [(2.0, 3.0)], [1], box=(1.0, 1.0, 6.0, 5.0))),
        Edit("prompt", 1, frame_idx=4, prompt=FramePrompt(1, 4, mask=mask)),
        Edit("clear", 1, frame_idx=3),
        Edit("rename", 1, name="red disc"),
    ]
    for edit in edits:
        data = edit.to_dict()
        assert data == edit_to_dict(edit)
        decoded = {**data, "prompt": prompt_from_dict(data) if data["kind"] == "prompt" else None}
        again = Edit.from_dict(decoded)
        assert (again.kind, again.object_id, again.name, again.color) == (
            edit.kind, edit.object_id, edit.name, edit.color,
        )  # fmt: skip
        if edit.prompt is not None:
            assert again.prompt.points == edit.prompt.points and again.prompt.box == edit.prompt.box
            assert (again.prompt.mask is None) == (edit.prompt.mask is None)
            if edit.prompt.mask is not None:
                assert np.array_equal(again.prompt.mask, edit.prompt.mask)
