"""The project's exceptions.

Every error a person can cause or fix (a bad file, a missing checkpoint, an empty prompt) is a
:class:`TrackerError` whose message is one sentence saying what is wrong and what to do. The
command line prints that message without a traceback and exits non-zero; the web app shows it
as a toast. Anything else is a bug.
"""

from __future__ import annotations


class TrackerError(Exception):
    """A problem the user can understand and act on; ``str(error)`` is the whole message."""

    exit_code: int = 2


class InputError(TrackerError, ValueError):
    """An argument or prompt is unusable (empty prompt, click outside the frame, zero-area box)."""


class VideoError(TrackerError):
    """A file that is not a readable video (empty, truncated, audio-only, not a video)."""


class WeightsUnavailable(TrackerError):
    """A checkpoint could not be found or fetched.

    The message names the model, the file, every place that was searched and the exact command
    that fixes it.
    """

    exit_code = 3

    def __init__(
        self,
        model: str,
        filename: str,
        searched: list[str],
        fix: str,
        reason: str | None = None,
    ) -> None:
        self.model = model
        self.filename = filename
        self.searched = list(searched)
        self.fix = fix
        self.reason = reason
        where = "; ".join(self.searched) if self.searched else "nowhere"
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"Weights for {model} are missing: {filename} was not found in {where}{why}. "
            f"Fix: {fix}  (or pass --random-weights to try the tool with untrained weights)"
        )


class PackageUnavailable(TrackerError):
    """A model package (torch, torchvision, open_clip, sam2, …) is missing or does not import.

    The message names the package and the command that installs it (see :mod:`tracker.packages`).
    """

    exit_code = 3


class CheckpointError(TrackerError):
    """A checkpoint file exists but cannot be used: damaged, or made for another model."""

    exit_code = 3


class NoCandidates(TrackerError):
    """Nothing scored above the threshold for the prompt."""

    def __init__(self, prompt: str, best_score: float | None, threshold: float) -> None:
        self.prompt = prompt
        self.best_score = best_score
        self.threshold = threshold
        best = "no masks were found at all" if best_score is None else f"best score {best_score:.1f}"
        super().__init__(
            f"Nothing matched {prompt!r} above the threshold {threshold:.1f} ({best}). "
            "Try a more specific prompt ('red sneaker' beats 'shoe'), lower --threshold, "
            "rank more frames (--stride), or pass --take-best to use the best match anyway."
        )


class Cancelled(TrackerError):
    """Work was stopped on request; what was done before the stop is kept."""

    exit_code = 130


class ProjectError(TrackerError):
    """A project file that is corrupt, from a newer version, or made for another video."""
