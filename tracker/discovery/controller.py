"""The discovery controller: looks for the prompt every few frames of a forward run and decides.

:class:`Discovery` is driven by whoever runs the forward tracking (the workspace, or a test with
stand-ins): after each tracked frame, call :meth:`Discovery.after_frame` with the frame's result.
On a check frame (every ``config.every`` frames, and the frame an object has been empty for
``config.lost_after`` frames) it asks the :class:`~tracker.discovery.protocols.Detector` for
candidates — handing it the frame's tracked masks (``covered``, unless
``config.skip_covered`` is off), so the detector can skip work inside them — and, in this
order:

1. **Matching.** Candidates that a tracked mask already explains (IoU or cover,
   :func:`~tracker.discovery.matching.match_tracked`) are nothing new; a confident match
   teaches that object's exemplars.
2. **Lost and found.** Each lost object (empty for ``lost_after`` frames, last seen at most
   ``keep_alive`` frames ago) may take back one free candidate whose appearance matches its own
   exemplars (``reacquire_similarity``); pairs are assigned greedily, best similarity first, each
   object and candidate used once (:func:`~tracker.discovery.matching.assign_exclusive`), ties
   broken by distance to where the object was last seen, so two objects never swap ids. The
   object is prompted there with its old id and tracked back over the frames it was missed.
3. **Sightings and confirmation.** Other candidates whose score (text + exemplars,
   :func:`~tracker.discovery.exemplars.exemplar_score`) reaches ``threshold`` are sightings. A
   sighting is confirmed when, at the next check, a candidate is found again that, added as an
   object and tracked back, lands on that sighting (IoU ``confirm_iou`` on the earlier check's
   frame). It then gets a new id and keeps being tracked back until it has been empty for
   ``entry_gap`` frames, so its masks start where it entered the video. Why this rule rather
   than "tracked stably for k frames": it needs no hidden objects carried through every
   frame (a tentative object would cost tracking time on every frame until confirmed or
   dropped), a one-frame flash is never seen twice, and the backward test rejects two
   unrelated hits at two checks. The cost: a new object is shown one check after it is first
   seen (its masks still start where it entered).
4. **The cap.** With ``max_objects`` objects, no sighting is confirmed any more; the report
   says so (once logged as a warning).

Everything the tracker is asked goes through :class:`~tracker.discovery.protocols.ObjectTracker`;
the frames tracked back are handed to ``on_backfill`` (e.g. a result store's ``put``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np

from ..masks import mask_centroid, mask_iou
from ..types import FrameResult
from .config import DiscoveryConfig
from .exemplars import ExemplarBank
from .matching import assign_exclusive, match_tracked
from .protocols import Detection, Detector, ObjectTracker
from .records import FoundRecord

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Sighting:
    """An unmatched candidate above the threshold, waiting for the next check to be confirmed."""

    frame: int
    mask: np.ndarray
    score: float
    embedding: np.ndarray | None


@dataclass
class CheckReport:
    """One check: its frame, the frame's result after discovery's changes, what it found.

    ``seconds`` is the whole check (detection, decisions, tracking back); ``detect_seconds``
    the detector alone. ``capped`` says a sighting was left out because of ``max_objects``.
    ``result`` holds the frame's masks until the next check; then only its ids and scores stay
    (:meth:`release`), so the reports of a long run hold no masks (memory flat in video length).
    """

    frame: int
    result: FrameResult
    found: list[FoundRecord] = field(default_factory=list)
    candidates: int = 0
    sightings: int = 0
    capped: bool = False
    seconds: float = 0.0
    detect_seconds: float = 0.0

    def release(self) -> None:
        """Drop ``result``'s masks (``N×0×0``), keeping its frame, ids and scores."""
        r = self.result
        self.result = FrameResult(r.frame_idx, r.object_ids, np.zeros((len(r.object_ids), 0, 0), bool), r.scores)


class Discovery:
    """See the module docstring.

    ``known`` are the objects already tracked; ``start_frame`` the run's first frame (checks
    fall on ``start_frame + k·every``; :meth:`begin_leg` starts another leg, e.g. a backward one). ``new_id()`` hands out a fresh object id
    (default: one more than the largest known). ``on_backfill(result)`` receives each frame
    tracked back (results holding one object). ``frame_of(frame_idx)`` returns a frame image
    (``H×W×3 uint8``), read only on check frames.
    """

    def __init__(
        self,
        config: DiscoveryConfig,
        detector: Detector,
        tracker: ObjectTracker,
        frame_of: Callable[[int], np.ndarray],
        *,
        known: Iterable[int] = (),
        start_frame: int = 0,
        exemplars: ExemplarBank | None = None,
        on_backfill: Callable[[FrameResult], None] | None = None,
        new_id: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.detector = detector
        self.tracker = tracker
        self.frame_of = frame_of
        self.known: set[int] = {int(i) for i in known}
        self.start_frame, self.step, self.behind_limit = int(start_frame), 1, 0
        self.exemplars = exemplars if exemplars is not None else ExemplarBank()
        self.on_backfill = on_backfill or (lambda result: None)
        self._new_id = new_id
        self.records: list[FoundRecord] = []
        self.reports: list[CheckReport] = []
        self.last_seen: dict[int, int] = {}
        self.last_centroid: dict[int, tuple[float, float]] = {}
        self._sightings: list[Sighting] = []
        self._warned_cap = False

    def begin_leg(self, start_frame: int, step: int, behind_limit: int) -> None:
        """A new leg from ``start_frame`` in direction ``step`` (+1 / −1): checks count from there;
        new objects are tracked *behind* (against ``step``) no further than ``behind_limit``
        (0 for a forward leg; for the backward leg of a ``"both"`` run, the frame before the
        forward leg's start, which that leg tracks itself). Exemplars, records and objects stay;
        what was seen when, and the sightings, start afresh."""
        self.start_frame, self.step, self.behind_limit = (
            int(start_frame),
            1 if step > 0 else -1,
            int(behind_limit),
        )
        self.last_seen.clear()
        self.last_centroid.clear()
        self._sightings = []

    # ------------------------------------------------------------------ public
    def seed(self, object_id: int, frame: np.ndarray, mask: np.ndarray) -> None:
        """Start ``object_id``'s exemplars from its accepted mask on ``frame``."""
        self.known.add(int(object_id))
        if np.asarray(mask).any():
            self.exemplars.add(int(object_id), self.detector.embed(frame, [mask])[0])

    def is_check(self, frame_idx: int) -> bool:
        """Whether ``frame_idx`` is a regular check frame of this run."""
        ahead = (frame_idx - self.start_frame) * self.step
        return ahead >= 0 and ahead % self.config.every == 0

    @property
    def capped(self) -> bool:
        cap = self.config.max_objects
        return cap is not None and len(self.known) >= int(cap)

    def after_frame(self, result: FrameResult) -> CheckReport | None:
        """Note ``result`` (a forward frame); run a check when one is due; None when none ran."""
        frame_idx = result.frame_idx
        self.known.update(int(i) for i in result.object_ids)
        self._note(result)
        newly_lost = [
            oid
            for oid, seen in self.last_seen.items()
            if (frame_idx - seen) * self.step == self.config.lost_after
        ]
        if not self.is_check(frame_idx) and not newly_lost:
            return None
        return self._check(result)

    # ------------------------------------------------------------------ the check
    def _check(self, result: FrameResult) -> CheckReport:
        if self.reports:
            self.reports[-1].release()  # its frame has been handed on: keep no masks per check
        started = time.perf_counter()
        frame_idx = result.frame_idx
        frame = self.frame_of(frame_idx)
        covered = result.masks if self.config.skip_covered else None
        detections = list(self.detector.detect(frame_idx, frame, covered=covered))
        report = CheckReport(frame_idx, result, candidates=len(detections))
        report.detect_seconds = time.perf_counter() - started
        cfg = self.config
        matched, unmatched = match_tracked(detections, result, iou=cfg.match_iou, cover=cfg.match_cover)
        self._teach(result, detections, matched)
        scores = {i: self.exemplars.score(detections[i].score, detections[i].embedding) for i in unmatched}
        free = self._reacquire(report, detections, unmatched)
        pool = sorted((i for i in free if scores[i] >= cfg.threshold), key=lambda i: -scores[i])
        previous, sightings, verified = self._sightings, [], 0
        for index in pool:
            detection = detections[index]
            if self.capped:
                report.capped = True
                continue
            if previous and verified < cfg.max_verify:
                verified += 1
                if self._confirm(report, detection, scores[index], previous):
                    continue
            sightings.append(Sighting(frame_idx, detection.mask, scores[index], detection.embedding))
        self._sightings = sightings
        report.sightings = len(sightings)
        if report.capped and not self._warned_cap:
            self._warned_cap = True
            logger.warning(
                "discovery: %d objects, the most allowed (max_objects); new ones are no longer added",
                len(self.known),
            )
        report.seconds = time.perf_counter() - started
        self.reports.append(report)
        return report

    def _note(self, result: FrameResult) -> None:
        for oid, mask in zip(result.object_ids, result.masks, strict=True):
            if mask.any():
                self.last_seen[int(oid)] = result.frame_idx
                self.last_centroid[int(oid)] = mask_centroid(mask) or (0.0, 0.0)

    def _teach(
        self, result: FrameResult, detections: list[Detection], matched: dict[int, tuple[int, float]]
    ) -> None:
        """Confidently tracked objects learn their look from the candidate that matches them."""
        for oid, (index, overlap) in matched.items():
            embedding = detections[index].embedding
            if embedding is None or overlap < self.config.exemplar_iou:
                continue
            position = result.object_ids.index(oid)
            if float(result.scores[position]) >= self.config.confident_score:
                self.exemplars.add(oid, embedding)

    # ------------------------------------------------------------------ lost and found
    def _lost(self, frame_idx: int) -> list[int]:
        cfg = self.config
        return sorted(
            oid
            for oid, seen in self.last_seen.items()
            if cfg.lost_after <= (frame_idx - seen) * self.step <= cfg.keep_alive
            and self.exemplars.exemplars(oid)
        )

    def _reacquire(self, report: CheckReport, detections: list[Detection], unmatched: list[int]) -> list[int]:
        """Give lost objects their candidates back; returns the candidates still free."""
        frame_idx = report.frame
        lost = self._lost(frame_idx)
        if not lost or not unmatched:
            return list(unmatched)
        similarity: dict[tuple[int, int], float] = {}
        for oid in lost:
            for index in unmatched:
                value = self.exemplars.similarity(detections[index].embedding, [oid])
                if value is not None:
                    # nearer to where the object was last seen wins a tie (a tiny tie-breaker)
                    similarity[(oid, index)] = value - 1e-6 * self._distance(oid, detections[index])
        pairs = assign_exclusive(similarity, minimum=self.config.reacquire_similarity)
        taken = set()
        for oid, index, value in pairs:
            detection = detections[index]
            report.result = self.tracker.add_object(oid, frame_idx, detection.mask)
            first = self._track_back(oid, frame_idx, self.last_seen[oid] + self.step)[1]
            self.last_seen[oid] = frame_idx
            record = FoundRecord(
                oid, "reacquired", frame_idx, round(detection.score, 2), first, round(value, 2)
            )
            self.records.append(record)
            report.found.append(record)
            taken.add(index)
            logger.info(
                "discovery: object %d found again on frame %d (similarity %.1f)", oid, frame_idx, value
            )
        return [index for index in unmatched if index not in taken]

    def _distance(self, object_id: int, detection: Detection) -> float:
        where = self.last_centroid.get(object_id)
        if where is None or not detection.mask.any():
            return 0.0
        x, y = mask_centroid(detection.mask) or where
        return float(np.hypot(x - where[0], y - where[1]))

    # ------------------------------------------------------------------ confirmation
    def _confirm(
        self, report: CheckReport, detection: Detection, score: float, previous: list[Sighting]
    ) -> bool:
        """Add ``detection`` as an object; keep it if, tracked back, it lands on a sighting."""
        frame_idx = report.frame
        object_id = self._next_id()
        before = report.result
        report.result = self.tracker.add_object(object_id, frame_idx, detection.mask)
        landed, first = self._track_back(object_id, frame_idx, self.behind_limit, previous)
        if landed is None:
            self.tracker.remove_object(object_id)
            report.result = before
            logger.debug("discovery: a candidate on frame %d did not track back onto a sighting", frame_idx)
            return False
        previous[:] = [sighting for sighting in previous if sighting is not landed]
        self.known.add(object_id)
        self.last_seen[object_id] = frame_idx
        self.last_centroid[object_id] = mask_centroid(detection.mask) or (0.0, 0.0)
        if detection.embedding is not None:
            self.exemplars.add(object_id, detection.embedding)
        if landed.embedding is not None:
            self.exemplars.add(object_id, landed.embedding)
        record = FoundRecord(object_id, "discovered", frame_idx, round(score, 2), first)
        self.records.append(record)
        report.found.append(record)
        logger.info(
            "discovery: new object %d on frame %d (score %.1f), tracked back to frame %s",
            object_id, frame_idx, score, first,
        )  # fmt: skip
        return True

    def _next_id(self) -> int:
        if self._new_id is not None:
            return int(self._new_id())
        return max(self.known, default=0) + 1

    def _track_back(
        self, object_id: int, frame_idx: int, last_frame: int, sightings: list[Sighting] | None = None
    ) -> tuple[Sighting | None, int | None]:
        """Track ``object_id`` behind ``frame_idx`` (against the leg) down to ``last_frame``; hand
        its frames to ``on_backfill``.

        With ``sightings``, the frames are held back until the track reaches the sightings'
        frame; if it does not land on one of them (mask IoU ``confirm_iou``) nothing is handed
        over and ``(None, None)`` comes back. Stops after ``entry_gap`` empty frames in a row
        (trailing empty frames are not handed over), at ``last_frame`` or after
        ``max_backfill`` frames. Returns the sighting it landed on and the earliest frame
        where the object is present (``frame_idx`` when none before it).
        """
        cfg = self.config
        if cfg.max_backfill is not None:
            reach = frame_idx - self.step * int(cfg.max_backfill)
            last_frame = max(last_frame, reach) if self.step > 0 else min(last_frame, reach)
        target = sightings[0].frame if sightings else None
        landed: Sighting | None = None
        held: list[FrameResult] = []  # before landing, or empty frames that may end the track
        first, empty_run = frame_idx, 0
        if (frame_idx - last_frame) * self.step <= 0:
            return (None, None) if sightings else (None, frame_idx)
        with closing(self.tracker.track_object(object_id, frame_idx, last_frame)) as back:
            for result in back:
                mask = _mask(result, object_id)
                present = bool(mask.any())
                held.append(result)
                empty_run = 0 if present else empty_run + 1
                if present:
                    first = result.frame_idx
                if target is not None and landed is None:
                    if result.frame_idx == target:
                        landed = self._landing(mask, sightings or [])
                        if landed is None:
                            return None, None
                    elif empty_run >= cfg.entry_gap:
                        return None, None
                    continue
                if empty_run >= cfg.entry_gap:
                    break
                if present:
                    for kept in held:
                        self.on_backfill(kept)
                    held = []
        if target is not None and landed is None:
            return None, None
        for kept in held:
            if (kept.frame_idx - first) * self.step >= 0:
                self.on_backfill(kept)
        return landed, first

    def _landing(self, mask: np.ndarray, sightings: list[Sighting]) -> Sighting | None:
        best, best_iou = None, self.config.confirm_iou
        for sighting in sightings:
            overlap = mask_iou(mask, sighting.mask, empty=0.0)
            if overlap >= best_iou:
                best, best_iou = sighting, overlap
        return best


def _mask(result: FrameResult, object_id: int) -> np.ndarray:
    mask = result.mask_of(object_id)
    return mask if mask is not None else np.zeros((result.height, result.width), bool)
