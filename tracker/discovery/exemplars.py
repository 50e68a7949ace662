"""Appearance exemplars: what each object looks like, and what the person said it is not.

Each object keeps a few CLIP image embeddings of its own crops (unit vectors): the accepted
candidate (or corrected mask) first, then crops from frames where it was tracked confidently.
Rejected candidates and removed objects become *negative* exemplars. A candidate is then scored
with the text and the exemplars together::

    score = s + w⁺ · max(0, p − max(n, floor)) − w⁻ · max(0, n − max(p, floor))

``s`` is the text crop score (``100·crop·text``, the negative prompt applied, as Find scores);
``p`` / ``n`` are the best similarities (``100·crop·exemplar``) to any positive / negative
exemplar; ``w⁺ = 0.5``, ``w⁻ = 1.0``, ``floor = 80``. Why this shape: CLIP similarities between
two crops of the same *kind* of thing sit around 70-85, so only similarities above the floor say
"this very one" (or "that very one"); a candidate gains only as far as it looks more like a
chosen object than like a rejected one (and more than the floor), and loses only as far as it
looks more like a rejected one. Losses weigh double: a person who removed something meant it.
Without exemplars (``p`` and ``n`` None) the score is ``s``.

Find uses the same formula (:func:`exemplar_ranking`, :meth:`tracker.workspace.Workspace.find_candidates`):
each candidate keeps its text score in ``Candidate.text_score`` and its crop embedding in
``Candidate.embedding``; ``Candidate.score``, what the list is sorted by, becomes
``exemplar_score(text_score, p, n)`` with ``p`` over the exemplars of the objects the workspace
has now and ``n`` over every negative one. A rejected candidate
(:meth:`~tracker.workspace.Workspace.reject_candidate`) becomes a negative exemplar, so Find,
the next Find and discovery (which use one bank, ``Workspace.exemplars``) all rank its look down.
"Find more like this" (:meth:`~tracker.workspace.Workspace.more_like`, :func:`likeness_ranking`)
sorts by a different key: ``p`` over that one object's exemplars alone (its look, whatever the
text says), ties by ``score``; candidates without an embedding last. Scores are not changed
by it.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..types import Candidate

POSITIVE_WEIGHT = 0.5
NEGATIVE_WEIGHT = 1.0
SIMILARITY_FLOOR = 80.0
#: Exemplars kept per object (the accepted one plus the most recent confident ones).
PER_OBJECT = 8
#: Negative exemplars kept (the most recent).
NEGATIVES = 32


def exemplar_score(
    text_score: float,
    positive: float | None,
    negative: float | None,
    *,
    positive_weight: float = POSITIVE_WEIGHT,
    negative_weight: float = NEGATIVE_WEIGHT,
    floor: float = SIMILARITY_FLOOR,
) -> float:
    """The module docstring's formula; ``positive`` / ``negative`` None when there are none."""
    p = -np.inf if positive is None else float(positive)
    n = -np.inf if negative is None else float(negative)
    score = float(text_score)
    if positive is not None:
        score += positive_weight * max(0.0, p - max(n, floor))
    if negative is not None:
        score -= negative_weight * max(0.0, n - max(p, floor))
    return score


class ExemplarBank:
    """Per-object positive exemplars and shared negative exemplars (unit ``(D,)`` float32)."""

    def __init__(self, per_object: int = PER_OBJECT, negatives: int = NEGATIVES) -> None:
        self.per_object = per_object
        self._first: dict[int, np.ndarray] = {}  # the accepted crop: never pushed out
        self._recent: dict[int, deque[np.ndarray]] = {}
        self._negatives: deque[np.ndarray] = deque(maxlen=negatives)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._first)

    def add(self, object_id: int, embedding: np.ndarray) -> None:
        """One more crop of ``object_id`` (its first is kept for good, later ones rotate)."""
        vector = _unit(embedding)
        if object_id not in self._first:
            self._first[object_id] = vector
            self._recent[object_id] = deque(maxlen=max(1, self.per_object - 1))
        else:
            self._recent[object_id].append(vector)

    def add_negative(self, embedding: np.ndarray) -> None:
        """One more look that is not wanted (the same vector twice is kept once)."""
        vector = _unit(embedding)
        if not any(np.array_equal(vector, known) for known in self._negatives):
            self._negatives.append(vector)

    def reject_object(self, object_id: int) -> None:
        """``object_id`` was removed: its exemplars become negative ones."""
        for vector in self.exemplars(object_id):
            self.add_negative(vector)
        self._first.pop(object_id, None)
        self._recent.pop(object_id, None)

    def discard(self, object_id: int) -> None:
        """Forget ``object_id``'s exemplars without making them negative (its id starts afresh)."""
        self._first.pop(object_id, None)
        self._recent.pop(object_id, None)

    @property
    def negative_count(self) -> int:
        return len(self._negatives)

    def exemplars(self, object_id: int) -> list[np.ndarray]:
        if object_id not in self._first:
            return []
        return [self._first[object_id], *self._recent[object_id]]

    def similarity(
        self, embedding: np.ndarray | None, object_ids: Iterable[int] | None = None
    ) -> float | None:
        """Best ``100·cos`` to the positive exemplars of ``object_ids`` (default all); None if none."""
        ids = self.object_ids if object_ids is None else list(object_ids)
        vectors = [v for oid in ids for v in self.exemplars(oid)]
        return _best(embedding, vectors)

    def negative_similarity(self, embedding: np.ndarray | None) -> float | None:
        return _best(embedding, list(self._negatives))

    def score(
        self, text_score: float, embedding: np.ndarray | None, object_ids: Iterable[int] | None = None
    ) -> float:
        """``text_score`` with the exemplar terms (:func:`exemplar_score`); positives of
        ``object_ids`` (default all)."""
        return exemplar_score(
            text_score, self.similarity(embedding, object_ids), self.negative_similarity(embedding)
        )


def exemplar_ranking(
    candidates: Sequence[Candidate], bank: ExemplarBank, object_ids: Iterable[int] | None = None
) -> tuple[list[Candidate], list[int]]:
    """``candidates`` re-scored and sorted best first, and the order (old index of each new one).

    Each copy's ``score`` is ``bank.score(text_score, embedding, object_ids)`` (the module
    docstring's formula; the text score alone where the candidate has no embedding or the bank
    nothing to say); ``text_score`` is kept. The sort is stable.
    """
    ids = None if object_ids is None else list(object_ids)
    rescored = [
        dataclasses.replace(c, score=bank.score(_text_score(c), c.embedding, ids)) for c in candidates
    ]
    order = sorted(range(len(rescored)), key=lambda i: -rescored[i].score)
    return [rescored[i] for i in order], order


def likeness_ranking(candidates: Sequence[Candidate], bank: ExemplarBank, object_id: int) -> list[int]:
    """The order (old index of each new position) of ``candidates`` by their likeness to
    ``object_id``: best similarity to its exemplars first, ties by ``score``; candidates
    without an embedding last, in their order."""

    def key(i: int) -> tuple[float, float]:
        likeness = bank.similarity(candidates[i].embedding, [object_id])
        return (np.inf if likeness is None else -likeness, -candidates[i].score)

    return sorted(range(len(candidates)), key=key)


def _text_score(candidate: Candidate) -> float:
    return float(candidate.score if candidate.text_score is None else candidate.text_score)


def _unit(embedding: np.ndarray) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _best(embedding: np.ndarray | None, vectors: list[np.ndarray]) -> float | None:
    """Best ``100·cos`` of ``embedding`` to ``vectors``; looks of another size (another encoder's:
    a detector that embeds differently from Find) cannot be compared and are left out."""
    if embedding is None:
        return None
    unit = _unit(embedding)
    comparable = [v for v in vectors if v.shape == unit.shape]
    if not comparable:
        return None
    return float(100.0 * np.max(np.stack(comparable) @ unit))
