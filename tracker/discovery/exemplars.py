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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

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
        self._negatives.append(_unit(embedding))

    def reject_object(self, object_id: int) -> None:
        """``object_id`` was removed: its exemplars become negative ones."""
        for vector in self.exemplars(object_id):
            self._negatives.append(vector)
        self._first.pop(object_id, None)
        self._recent.pop(object_id, None)

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

    def score(self, text_score: float, embedding: np.ndarray | None) -> float:
        """``text_score`` with the exemplar terms (:func:`exemplar_score`)."""
        return exemplar_score(text_score, self.similarity(embedding), self.negative_similarity(embedding))


def _unit(embedding: np.ndarray) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _best(embedding: np.ndarray | None, vectors: list[np.ndarray]) -> float | None:
    if embedding is None or not vectors:
        return None
    return float(100.0 * np.max(np.stack(vectors) @ _unit(embedding)))
