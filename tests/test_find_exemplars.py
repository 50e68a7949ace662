"""Find with the text *and* the exemplars: accepted looks first, rejected looks last (issue 11).

A real :class:`tracker.workspace.Workspace` without models: Find's finder is a stand-in that
returns fixed candidates embedded by the colour stand-in for CLIP (tests/standins_discovery.py,
with a wider colour sharpness so shades of red differ), and SAM 2's session is a stand-in whose
mask for a mask prompt is that mask. The looks are mixes of red and yellow: the more yellow,
the lower the text score for "red".
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from tests.standins_discovery import BLUE, COLOURS, RED, Disc, StandInColourEncoder
from tests.synthetic import ListFrames
from tests.test_discovery import entering_at, run_scene
from tracker.candidates.finder import FinderEvent
from tracker.discovery import DiscoveryConfig, ExemplarBank, exemplar_ranking, likeness_ranking
from tracker.errors import InputError
from tracker.masks import mask_box
from tracker.settings import Settings
from tracker.types import Candidate, FrameResult, VideoInfo
from tracker.workspace import Workspace

WIDTH, HEIGHT = 128, 96
ENCODER = StandInColourEncoder(sharpness=100.0)  # shades of red differ (at 40 every red is (1, 0, 0))


def shade(yellow: float) -> tuple[int, int, int]:
    red, other = np.array(COLOURS["red"], float), np.array(COLOURS["yellow"], float)
    return tuple(int(round(v)) for v in (1 - yellow) * red + yellow * other)  # type: ignore[return-value]


# name → (colour, x of its disc): A is chosen, B rejected, C looks like A, D like B, E is blue
LOOKS = {
    "A": (shade(0.45), 10),
    "B": (RED, 30),
    "C": (shade(0.42), 50),
    "D": (shade(0.10), 70),
    "E": (BLUE, 90),
}


def look(name: str) -> np.ndarray:
    colour, _ = LOOKS[name]
    return ENCODER.embed_pixels(np.array([colour], np.uint8))


def candidate(name: str) -> Candidate:
    _, x = LOOKS[name]
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[40:56, x : x + 16] = True
    embedding = look(name)
    score = float(100.0 * embedding @ ENCODER.text("red"))
    return Candidate(0, 0.0, mask, mask_box(mask), score, embedding=embedding)


def names(candidates: list[Candidate]) -> list[str]:
    by_x = {x: name for name, (_, x) in LOOKS.items()}
    return [by_x[int(c.box[0])] for c in candidates]


class StandInFinder:
    """Find's finder, found in a moment: the five looks, best text score first."""

    def find(self, reader, prompt, negative_prompt=None, cancel=None):
        found = sorted((candidate(name) for name in LOOKS), key=lambda c: -c.score)
        yield FinderEvent("done", 1.0, "done", found, new_frame=0)


class StandInSession:
    """What the workspace asks of SAM 2's session to accept, remove and start discovery."""

    running = False

    def __init__(self) -> None:
        self.masks: dict[int, tuple[int, np.ndarray]] = {}

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(self.masks)

    def add_prompt(self, prompt) -> FrameResult:
        self.masks[prompt.object_id] = (prompt.frame_idx, prompt.mask)
        ids = tuple(o for o, (f, _) in self.masks.items() if f == prompt.frame_idx)
        stack = np.stack([self.masks[o][1] for o in ids])
        return FrameResult(prompt.frame_idx, ids, stack, np.ones(len(ids), np.float32))

    def remove_object(self, object_id: int) -> None:
        self.masks.pop(object_id, None)

    def reset(self) -> None:
        self.masks.clear()

    def frame_features(self, frame_idx: int):
        return None

    def add_mask_mid_run(self, *args):  # discovery's hook; never reached here
        raise AssertionError("not tracking")


@pytest.fixture
def ws(tmp_path, monkeypatch):
    import tracker.engine

    monkeypatch.setattr(tracker.engine, "build_finder", lambda *args: StandInFinder())
    frames = [np.zeros((HEIGHT, WIDTH, 3), np.uint8) for _ in range(4)]
    info = VideoInfo(tmp_path / "clip.mp4", WIDTH, HEIGHT, 8.0, len(frames), WIDTH, HEIGHT)
    hub = SimpleNamespace(sam2=lambda *args, **kwargs: None)
    workspace = Workspace(info, ListFrames(frames), hub, Settings(device="cpu"), tmp_path / "work")
    workspace._session = StandInSession()  # type: ignore[assignment]
    yield workspace
    workspace.close()


def find(ws: Workspace) -> list[str]:
    list(ws.find_candidates("red"))
    return names(ws.candidates)


def test_find_ranks_by_text_until_something_is_chosen_or_rejected(ws):
    assert find(ws) == ["B", "D", "C", "A", "E"]
    assert ws.exemplars is None
    assert all(c.text_score == c.score and c.embedding is not None for c in ws.candidates)


def test_accepting_one_and_rejecting_another_reranks_like_the_chosen_first(ws):
    find(ws)
    ws.accept_candidate(3)  # A, the more orange red
    assert ws.exemplars is not None and ws.exemplars.object_ids == [1]
    assert names(ws.candidates) == ["B", "D", "C", "A", "E"]  # accepting does not shuffle the list

    order = ws.reject_candidate(0)  # "not this one": B, the pure red
    assert order == [2, 3, 1, 4]  # the old index of each remaining one, in the new order
    assert names(ws.candidates) == ["C", "A", "D", "E"]  # B gone; D, like B, last of the reds
    d = ws.candidates[2]
    assert d.score < d.text_score - 10  # penalised, and its text score still shown
    assert ws.candidates[0].score > ws.candidates[0].text_score


def test_a_rejected_look_is_penalised_in_the_next_find(ws):
    find(ws)
    ws.accept_candidate(3)  # A
    ws.reject_candidate(0)  # B
    assert find(ws) == ["C", "A", "D", "B", "E"]  # B is back (a new search) but ranked last of the reds
    b = ws.candidates[3]
    assert b.text_score == pytest.approx(99.96, abs=0.05) and b.score < 85


def test_more_like_this_ranks_by_the_objects_look(ws):
    find(ws)
    ws.accept_candidate(3)  # A → object 1
    ws.reject_candidate(0)  # B
    before = names(ws.candidates)
    scores = {n: c.score for n, c in zip(before, ws.candidates, strict=True)}
    order = ws.more_like(1)
    assert names(ws.candidates) == ["A", "C", "D", "E"]
    assert [before[i] for i in order] == names(ws.candidates)
    assert {n: c.score for n, c in zip(names(ws.candidates), ws.candidates, strict=True)} == scores


def test_more_like_and_reject_refuse_bad_input_in_one_sentence(ws):
    with pytest.raises(InputError, match="no candidates yet"):
        ws.reject_candidate(0)
    with pytest.raises(InputError, match="no candidates yet"):
        ws.more_like(1)
    find(ws)
    with pytest.raises(InputError, match="There is no candidate 9"):
        ws.reject_candidate(8)
    with pytest.raises(InputError, match="There is no object 4"):
        ws.more_like(4)
    clicked = ws.add_object("clicked").object_id  # made by clicks: no look yet
    with pytest.raises(InputError, match="clicked has no look"):
        ws.more_like(clicked)
    assert names(ws.candidates) == ["B", "D", "C", "A", "E"]  # nothing changed


def test_an_undone_object_no_longer_lifts_its_look_and_its_id_starts_afresh(ws):
    find(ws)
    ws.accept_candidate(3)  # A → object 1
    ws.undo()
    ws.undo()  # the prompt, then the object
    assert 1 not in ws.objects
    assert find(ws) == ["B", "D", "C", "A", "E"]  # text order again
    ws.accept_candidate(0)  # B → object 1 again
    (only,) = ws.exemplars.exemplars(1)  # B's look alone, not A's from before
    assert np.allclose(only, look("B"), atol=1e-6)


def test_a_rejected_look_is_shared_with_discovery_and_keeps_it_from_becoming_an_object(ws):
    find(ws)
    ws.accept_candidate(3)  # A
    ws.reject_candidate(0)  # B, pure red
    ws.discovery_detector = lambda workspace: None  # the check never runs here
    discovery = ws._start_discovery(DiscoveryConfig(), 0, threading.Event())
    assert discovery.exemplars is ws.exemplars  # one bank: what Find learnt, discovery knows

    # a pure red disc entering: on the colour scale it scores ~100 for "red"; without the rejection
    # it becomes an object, with the workspace's bank (B rejected) it scores below the threshold
    discs = [Disc(RED, 10, entering_at(10, 50))]
    fresh = run_scene(discs, 60, encoder=ENCODER, threshold=90.0)
    shared = run_scene(discs, 60, encoder=ENCODER, threshold=90.0, exemplars=ws.exemplars)
    assert [kind for _, kind in fresh.kinds()] == ["discovered"]
    assert shared.kinds() == []


def test_exemplar_ranking_and_likeness_ranking_without_a_workspace():
    bank = ExemplarBank()
    bank.add(1, look("A"))
    bank.add_negative(look("B"))
    bank.add_negative(look("B"))  # the same look twice is kept once
    assert bank.negative_count == 1
    found = sorted((candidate(n) for n in LOOKS), key=lambda c: -c.score)
    ranked, order = exemplar_ranking(found, bank)
    assert names(ranked) == ["C", "A", "D", "B", "E"]
    assert [names(found)[i] for i in order] == names(ranked)
    assert all(c.text_score == f.score for c, f in zip(ranked, [found[i] for i in order], strict=True))
    no_look = candidate("E")
    no_look.embedding = None
    assert names([(found + [no_look])[i] for i in likeness_ranking(found + [no_look], bank, 1)]) == [
        "A", "C", "D", "B", "E", "E",
    ]  # fmt: skip


def test_looks_from_another_encoder_are_left_out_not_compared():
    """Find's CLIP looks (512-d) next to a detector that embeds in 3-d (a stand-in): no crash,
    only comparable looks count."""
    import numpy as np

    from tracker.discovery.exemplars import ExemplarBank

    bank = ExemplarBank()
    bank.add(1, np.ones(512, np.float32))
    bank.add_negative(np.ones(512, np.float32))
    assert bank.similarity(np.array([1.0, 0.0, 0.0])) is None
    assert bank.negative_similarity(np.array([1.0, 0.0, 0.0])) is None
    assert bank.score(30.0, np.array([1.0, 0.0, 0.0])) == 30.0
    bank.add(2, np.array([1.0, 0.0, 0.0]))
    assert bank.similarity(np.array([1.0, 0.0, 0.0])) == 100.0
    assert abs(bank.similarity(np.ones(512, np.float32)) - 100.0) < 1e-3
