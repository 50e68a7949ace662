"""The app's public endpoints: the batch API for ``gradio_client`` and, with ``--mcp``, the MCP tools.

Two endpoints are public, every other event of the page is private:

* ``/track`` → :meth:`PublicAPI.track_video`: the overlay video, the annotations zip and a
  summary of what was tracked;
* ``/candidates`` → :meth:`PublicAPI.find_candidates`: the ranked candidates for a prompt (a
  table, the best one drawn on its frame, and a summary), without tracking.

Gradio's MCP server (``launch(mcp_server=True)``) turns public endpoints into tools named after
these methods (``track_video``, ``find_candidates``; on a Space prefixed with the Space's name)
and takes each tool's description and argument descriptions from the docstrings below, one
line per argument. Keep them accurate: they are what an AI agent reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from tracker.errors import InputError, PackageUnavailable

from . import text
from .guard import guarded
from .handlers import Handlers, private_copy

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 50  # rows a /candidates call returns at most


class PublicAPI:
    """The public endpoints, built on the page's :class:`~ui.handlers.Handlers` (same services)."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers

    def _check_ready(self) -> None:
        problems = self.handlers.services.missing_packages
        if problems:
            raise PackageUnavailable(str(problems[0]))

    @guarded
    def track_video(
        self,
        video: str,
        prompt: str,
        negative_prompt: str | None = None,
        preset: str | None = None,
        max_objects: float | None = 1,
        discover: bool | None = None,
        discover_every: float | None = None,
    ) -> tuple[str, str, str]:
        """Find what the prompt describes in a video and track it through every frame with SAM 2; returns the overlay video, a zip of all annotations and a summary.

        CLIP ranks the frames and candidate masks against the prompt, the best match (or the max_objects best distinct matches on the best frame) becomes the object(s), and SAM 2 follows them backward and forward through the whole video. Masks, boxes and coordinates are in the working video's pixels (frames 0-based).

        Args:
            video: the video file to track in (mp4, mov, webm, mkv, …); a URL or an uploaded file. Longer videos take longer: a few seconds of video is best on a CPU.
            prompt: what to follow, in a few specific words, e.g. "red sneaker" or "the brown dog".
            negative_prompt: what not to pick when something similar is also in view, e.g. "white sneaker" (optional, empty for none).
            preset: speed/quality trade-off: "fast", "balanced", "quality" or "best" (optional; empty for this server's default).
            max_objects: how many distinct matches on the best frame to follow, from 1 to 10 (default 1).
            discover: also find new objects while tracking (default: this server's, which is on unless it runs on random weights or ZeroGPU): every discover_every frames the prompt is searched for again; a match that no tracked object covers and is found again at the next check becomes a new object (tracked back to where it entered), and a lost object that reappears gets its old id back. max_objects then caps the total. Costs extra time per check.
            discover_every: frames between two discovery checks when discover is on, from 1 to 10000 (optional; empty for this server's default, 20). Smaller finds newcomers sooner but costs more.
        Returns:
            overlay: the video with each object's mask, id and trail drawn (mp4).
            annotations: a zip with PNG masks, COCO and YouTube-VIS JSON, MOT boxes, trajectories CSV, the ranked candidates and the manifest.
            summary: a few sentences saying which objects were tracked, on how many frames each was found, with discovery on which objects it found (frame, score) or found again, and what the zip holds.
        """
        from tracker.summary import describe_annotations

        self._check_ready()
        overlay, annotations = self.handlers.api_track(
            video, prompt, negative_prompt, preset, max_objects, discover, discover_every
        )
        try:
            summary = describe_annotations(annotations)
        except Exception:  # the files are what matters; a summary that fails must not lose them
            logger.warning("could not summarise %s", annotations, exc_info=True)
            summary = "Tracking finished; see the annotations zip."
        return overlay, annotations, summary

    @guarded
    def find_candidates(
        self,
        video: str,
        prompt: str,
        negative_prompt: str | None = None,
        preset: str | None = None,
        max_candidates: float | None = 10,
    ) -> tuple[str, list[dict[str, Any]], np.ndarray | None]:
        """List the places in a video that best match a prompt, ranked by CLIP, without tracking anything; returns a summary, the candidates table and the best candidate drawn on its frame.

        Use it to check that a prompt finds the right thing before tracking (track_video tracks the best of these), or to search a video for moments that match a description.

        Args:
            video: the video file to search (mp4, mov, webm, mkv, …); a URL or an uploaded file.
            prompt: what to look for, in a few specific words, e.g. "red sneaker" or "the brown dog".
            negative_prompt: what not to pick when something similar is also in view (optional, empty for none).
            preset: speed/quality trade-off: "fast", "balanced", "quality" or "best" (optional; empty for this server's default).
            max_candidates: how many candidates to return at most, best first, from 1 to 50 (default 10).
        Returns:
            summary: one or two sentences: how many candidates, and where the best one is.
            candidates: one row per candidate, best first: rank (1 = best), frame (0-based), timestamp (seconds), score (higher is better; about 20 or more is a good match), box x0, y0, x1, y1 (pixels of the working video) and area (pixels of the mask).
            best_candidate: the best candidate's frame with its mask drawn.
        """
        self._check_ready()
        if not video:
            raise InputError("Pass a video file.")
        if not (prompt or "").strip():
            raise InputError(text.NO_PROMPT)
        try:
            limit = min(max(int(max_candidates or 10), 1), MAX_CANDIDATES)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"max_candidates must be a whole number from 1 to {MAX_CANDIDATES}.") from None
        handlers = self.handlers
        folder = handlers.store.new_folder("api")
        try:
            ws = handlers.services.open_workspace(
                private_copy(Path(video), folder),
                handlers.services.settings_for(preset or None),
                folder / "work",
            )
            try:
                handlers._check_length(ws)
                for _ in ws.find_candidates(prompt, negative_prompt or None):
                    pass
                found = ws.candidates
                rows = [
                    {"rank": rank, **candidate.to_row(prompt.strip())}
                    for rank, candidate in enumerate(found[:limit], start=1)
                ]
                best = None
                if found:
                    best = handlers.services.draw_candidate(ws.frame(found[0].frame_idx), found[0].mask, 1)
                frames = len({candidate.frame_idx for candidate in found})
                summary = candidates_summary(
                    prompt.strip(), rows, len(found), frames, ws.info, handlers.services.random_weights
                )
            finally:
                ws.close()
        finally:
            handlers.store.release(folder)
        return summary, rows, best


def candidates_summary(
    prompt: str, rows: list[dict[str, Any]], total: int, frames: int, info: Any, random_weights: bool
) -> str:
    """The summary of :meth:`PublicAPI.find_candidates`: ``total`` found on ``frames`` frames, the best one.

    E.g. "12 candidates for 'red disc' on 4 frames, the best 10 listed. Best: score 23.1 on …".
    """
    if not rows:
        return f"Nothing in the video matched {prompt!r}; try a more specific prompt."
    shown = f", the best {len(rows)} listed" if len(rows) < total else ""
    best = rows[0]
    line = (
        f"{total} candidate{'s' if total != 1 else ''} for {prompt!r} on {frames} frame{'s' if frames != 1 else ''}"
        f"{shown}. Best: score {best['score']:.1f} on frame {best['frame']} ({best['timestamp']:.2f} s), "
        f"box ({best['x0']:.0f}, {best['y0']:.0f}, {best['x1']:.0f}, {best['y1']:.0f}) "
        f"in the {info.width}×{info.height} working video."
    )
    if random_weights:
        line += " The models have untrained (random) weights: scores and masks are meaningless."
    return line


__all__ = ["MAX_CANDIDATES", "PublicAPI", "candidates_summary"]
