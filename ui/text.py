"""Every sentence the web app shows a person, in one place (headings, help, banners, hints)."""

from __future__ import annotations

import re
from html import escape

TITLE = "Text-Prompted Video Tracker"
TAGLINE = (
    "Upload a video, type what to follow, pick the right match, and let SAM 2 track it through "
    "every frame. Then download the masks, boxes and trajectories."
)

STEP_INPUT = "1 · Video and prompt"
STEP_FIND = "2 · Find it"
STEP_REFINE = "3 · Check and fix the start"
STEP_TRACK = "4 · Track"
STEP_REVIEW = "5 · Review"
STEP_DOWNLOAD = "6 · Download"

HELP_INPUT = "Any video your browser plays (mp4, mov, webm). Short clips are fastest."
PROMPT_PLACEHOLDER = "e.g. red sneaker, the brown dog, the yellow car"
PROMPT_INFO = "Be specific: 'red sneaker' beats 'shoe'."
NEGATIVE_PLACEHOLDER = "optional, e.g. white sneaker"
NEGATIVE_INFO = "What not to pick, when something similar is also in view."
PRESET_INFO = "Faster presets work on a smaller picture; masks get coarser at the edges."

HELP_FIND = (
    "The best-matching frames are searched first; candidates appear as soon as each frame is done. "
    "Click a candidate to follow it as a new object (click several to follow several). "
    "**Not this one** drops the clicked candidate (and its object) and ranks look-alikes lower; "
    "**Find more like this** ranks first the candidates that look like the current object."
)
HELP_REFINE = (
    "Click on the picture to fix the mask: **+ object** adds what you click, **− not object** "
    "removes it, **box** takes two clicks (opposite corners). Move the slider to prompt on "
    "another frame. The mask updates after every click."
)
FOUND_FLAGGED = "Each is flagged in 5 · Review: pick its flags there, then **Next flagged** to check it."
HELP_BRUSH = (
    "Paint over the object on the current frame, then press **Use brushed mask**. "
    "The picture shows the current masks to help you aim."
)
HELP_TRACK = (
    "SAM 2 follows every object backward to the start and forward to the end. "
    "The overlay plays here while it works; **Stop** keeps what is done."
)
HELP_REVIEW = (
    "Scrub through the result, or let the flags take you to the doubtful frames: the timeline "
    "shows where each object is found (colour), missing (grey) and flagged (red)."
)
HELP_DOWNLOAD = (
    "Masks (PNG, COCO, YouTube-VIS), boxes (MOT), trajectories (CSV), the overlay video, "
    "and a project file to continue later."
)
HELP_OPEN_PROJECT = "Continue earlier work: upload the same video in step 1, then its project file here."

MODE_CHOICES = [("+ object", "positive"), ("− not object", "negative"), ("box (2 clicks)", "box")]
BRUSH_CHOICES = [
    ("replace the mask", "replace"),
    ("add to the mask", "add"),
    ("erase from the mask", "erase"),
]

NO_VIDEO = "Upload a video (or pick an example) first."
NO_PROMPT = "Type what to follow first, e.g. 'red sneaker'."
NO_CANDIDATES_YET = "Press **Find** to see candidates here."
NOTHING_TRACKED = "Nothing has been tracked yet: press **Track** first."
GENERIC_ERROR = "Something went wrong on our side ({ref}). Please try again; if it keeps happening, report it with this reference."

RANDOM_WEIGHTS_BANNER = (
    "<b>Untrained weights — masks are meaningless.</b> This app was started with "
    "<code>--random-weights</code> to try the workflow without downloading models."
)


def missing_weights_banner(missing: list[tuple[str, str]]) -> str:
    """HTML naming every missing model and the command that fetches it."""
    items = "".join(f"<li><b>{escape(name)}</b>: {_code_spans(fix)}</li>" for name, fix in missing)
    return (
        "<b>Model weights are missing, so Find and Track are turned off.</b>"
        f"<ul>{items}</ul>"
        "Run the command, then restart the app. Or start it with <code>--random-weights</code> "
        "to try the workflow with untrained models."
    )


def missing_packages_banner(problems: list[tuple[str, str, str]]) -> str:
    """HTML naming every missing or broken model package (name, what is wrong, the fix)."""
    items = "".join(
        f"<li><b>{escape(name)}</b> {escape(state)}: {_code_spans(fix)}</li>" for name, state, fix in problems
    )
    return f"<b>A model package is missing or broken, so Find and Track are turned off.</b><ul>{items}</ul>"


def _code_spans(sentence: str) -> str:
    """Escape ``sentence``; `backticked` parts become <code>, a bare command is code as a whole."""
    if "`" not in sentence:
        return f"<code>{escape(sentence)}</code>"
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(sentence))


def format_seconds(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def time_left(seconds: float) -> str:
    return "less than a second left" if seconds < 1 else f"about {format_seconds(seconds)} left"


def format_time(seconds: float) -> str:
    """0:01.5 style video time."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


DISCOVER_INFO = (
    "Look for more of the prompt every few frames: things that enter later get their own id, "
    "lost ones get theirs back. About 5 % more tracking time on a 2-core CPU at every 20 frames."
)
DISCOVER_NO_PROMPT = "New objects were not looked for: there is no prompt (run Find to set one)."
DISCOVER_UNAVAILABLE = "Not available on ZeroGPU yet: add objects that enter later by hand."
