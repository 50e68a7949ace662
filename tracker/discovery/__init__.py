"""Discovery: every instance of the prompt through the whole video, found while tracking.

``config`` (:class:`DiscoveryConfig`), ``records`` (:class:`FoundRecord`: how each object was
found), ``exemplars`` (:class:`ExemplarBank`, :func:`exemplar_score`, :func:`exemplar_ranking`,
:func:`likeness_ranking`), ``matching``
(:func:`match_tracked`, :func:`assign_exclusive`), ``protocols`` (:class:`Detection`,
:class:`Detector`, :class:`ObjectTracker`), ``controller`` (:class:`Discovery`, the decisions).
The real detector (SAM 2 proposals + CLIP crop scores) is :mod:`tracker.discovery.detector`,
imported on its own (it needs torch).
"""

from __future__ import annotations

from .config import DEFAULT_EVERY, DiscoveryConfig, on_by_default
from .controller import CheckReport, Discovery, Sighting
from .exemplars import ExemplarBank, exemplar_ranking, exemplar_score, likeness_ranking
from .matching import assign_exclusive, covered, match_tracked
from .protocols import Detection, Detector, ObjectTracker
from .records import KINDS, FoundRecord, clock

__all__ = [
    "DEFAULT_EVERY",
    "KINDS",
    "CheckReport",
    "Detection",
    "Detector",
    "Discovery",
    "DiscoveryConfig",
    "ExemplarBank",
    "FoundRecord",
    "ObjectTracker",
    "Sighting",
    "assign_exclusive",
    "clock",
    "covered",
    "exemplar_ranking",
    "exemplar_score",
    "likeness_ranking",
    "match_tracked",
    "on_by_default",
]
