"""Where each tracked object is on each frame: centroid, box, area, visibility.

Everything is read from the statistics a :class:`tracker.results.ResultStore` computed when the
masks were stored, so no mask is decoded here.

Conventions:

* ``frame`` is 0-based; ``time`` is seconds from working frame 0 (``VideoInfo.time_of``);
* ``cx, cy`` are the mean column index and mean row index of the mask's pixels (a lone pixel at
  column 3, row 5 gives ``(3.0, 5.0)``; add 0.5 for its geometric centre);
* ``x, y, w, h`` is the tight box with pixel edges (``x`` = first column, ``w`` = number of
  columns spanned), i.e. the ``xyxy`` box of :func:`tracker.masks.mask_box` as top-left + size;
* a frame where the object's mask is empty, or where the object was not stored, is a *gap*:
  ``visible`` False, area 0 and every coordinate None.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .results import MaskStats, ResultStore
from .types import TrackedObject, VideoInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrajectoryPoint:
    """One object on one frame; see the module docstring for the conventions."""

    object_id: int
    frame: int
    time: float
    cx: float | None
    cy: float | None
    x: float | None
    y: float | None
    w: float | None
    h: float | None
    area: int
    visible: bool

    @classmethod
    def from_stats(cls, object_id: int, frame: int, time: float, stats: MaskStats | None) -> TrajectoryPoint:
        if stats is None or not stats.visible or stats.box is None or stats.centroid is None:
            return cls(object_id, frame, time, None, None, None, None, None, None, 0, False)
        x0, y0, x1, y1 = stats.box
        cx, cy = stats.centroid
        return cls(object_id, frame, time, cx, cy, x0, y0, x1 - x0, y1 - y0, stats.area, True)


def _object_ids(store: ResultStore, objects: Iterable[int | TrackedObject] | Mapping | None) -> list[int]:
    if objects is None:
        return store.object_ids
    if isinstance(objects, Mapping):
        objects = objects.values()
    return [obj.object_id if isinstance(obj, TrackedObject) else int(obj) for obj in objects]


def compute_trajectories(
    store: ResultStore,
    info: VideoInfo,
    objects: Iterable[int | TrackedObject] | Mapping | None = None,
) -> list[TrajectoryPoint]:
    """One point per object per stored frame, ordered by object id then frame.

    ``objects`` (ids, :class:`TrackedObject` s, or a mapping whose values are either) picks and
    orders the objects; None means every object in the store, ascending. An object asked for
    but absent from a stored frame gets a gap on that frame.
    """
    frames = store.frames()
    points = []
    for object_id in _object_ids(store, objects):
        for frame in frames:
            points.append(
                TrajectoryPoint.from_stats(
                    object_id, frame, info.time_of(frame), store.stats(frame, object_id)
                )
            )
    return points


def trajectories_by_object(
    store: ResultStore,
    info: VideoInfo,
    objects: Iterable[int | TrackedObject] | Mapping | None = None,
) -> dict[int, list[TrajectoryPoint]]:
    """:func:`compute_trajectories` grouped by object id (each list in frame order)."""
    grouped: dict[int, list[TrajectoryPoint]] = {}
    for object_id in _object_ids(store, objects):
        grouped.setdefault(object_id, [])
    for point in compute_trajectories(store, info, objects):
        grouped[point.object_id].append(point)
    return grouped
