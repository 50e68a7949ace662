"""The CLIP side of the Find step: prompt checks, the encoder protocol, features and scores.

:func:`check_prompt` rejects an empty prompt and shortens a very long one; the encoder turns it
into one unit vector (:func:`encode_prompt`: mean of the normalised template embeddings,
renormalised). :func:`encode_images` turns images into unit rows, batch by batch, and
:func:`combine_scores` turns unit features into the candidate score (``100·f·text``, lowered by a
negative prompt). Nothing here imports torch; tensors handed back by an encoder are converted.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError

#: One logger for the whole Find step, whichever module of this package logs: people and the
#: benchmarks filter on this name.
logger = logging.getLogger("tracker.candidates")

#: Longer prompts are cut at a word boundary. CLIP reads at most 77 tokens (its context length,
#: start and end tokens and the template's words included), about 300 characters of English.
MAX_PROMPT_CHARS = 300
EMPTY_PROMPT_MESSAGE = "Type what to follow, e.g. 'red shoes'."


@runtime_checkable
class TextImageEncoder(Protocol):
    """What the finder needs from CLIP.

    ``encode_prompt(prompt)`` returns a ``(D,)`` unit vector (the mean of the prompt's template
    embeddings, renormalised). ``encode_images(images)`` takes ``H×W×3 uint8 RGB`` images of any
    size (the encoder does its own resize / crop / normalise) and returns ``N×D`` unit rows.
    numpy arrays or CPU torch tensors are both accepted back.
    """

    def encode_prompt(self, prompt: str) -> Any: ...

    def encode_images(self, images: Sequence[np.ndarray]) -> Any: ...


def check_prompt(prompt: str | None, *, what: str = "prompt") -> str:
    """Collapse whitespace; refuse an empty prompt; shorten one over :data:`MAX_PROMPT_CHARS`.

    Long prompts are cut at the last word boundary before the limit (a warning is logged): CLIP
    could not read the rest anyway, its tokenizer stops at 77 tokens. Any Unicode text is
    accepted (CLIP's byte-level BPE encodes every character), but CLIP was trained on mostly
    English captions, so other languages match less reliably; that is logged at info level.
    Raises :class:`InputError` for ``None``, empty or whitespace-only prompts.
    """
    text = " ".join((prompt or "").split())
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    if not text:
        raise InputError(EMPTY_PROMPT_MESSAGE)
    if len(text) > MAX_PROMPT_CHARS:
        cut = text[:MAX_PROMPT_CHARS]
        if " " in cut:
            cut = cut[: cut.rindex(" ")]
        logger.warning(
            "The %s is %d characters; CLIP reads about %d (77 tokens), so only %r is used.",
            what,
            len(text),
            MAX_PROMPT_CHARS,
            cut[:60] + "…",
        )
        text = cut
    if any(ord(ch) > 127 and ch.isalpha() for ch in text):
        logger.info("CLIP was trained on mostly English captions; %r may match less reliably.", text)
    return text


def prompt_notes(prompt: str | None) -> list[str]:
    """One-sentence notes a person should see about ``prompt`` (it still works): too long, not English.

    The same conditions :func:`check_prompt` logs; a front end shows these next to the results.
    """
    text = " ".join((prompt or "").split())
    notes = []
    if len(text) > MAX_PROMPT_CHARS:
        notes.append(
            f"The prompt is {len(text)} characters long; CLIP reads about {MAX_PROMPT_CHARS} "
            "(77 tokens), so only its beginning is used. A few specific words work best."
        )
    if any(ord(ch) > 127 and ch.isalpha() for ch in text):
        notes.append(
            "CLIP was trained on mostly English captions, so this prompt may match less reliably; "
            "if the candidates look wrong, try it in English."
        )
    return notes


def encode_prompt(encoder: TextImageEncoder, prompt: str) -> np.ndarray:
    """The prompt's ``(D,)`` float32 unit vector (renormalised, whatever the encoder returned)."""
    return _unit(to_numpy(encoder.encode_prompt(prompt)).reshape(-1))


def to_numpy(values: Any) -> np.ndarray:
    """A float32 numpy array from a numpy array or a (CPU or GPU) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def encode_images(
    encoder: TextImageEncoder, images: Sequence[np.ndarray], batch_size: int = 32
) -> np.ndarray:
    """``N×D`` float32 unit rows for ``images``, encoded ``batch_size`` at a time."""
    rows = []
    for start in range(0, len(images), max(1, batch_size)):
        rows.append(to_numpy(encoder.encode_images(list(images[start : start + batch_size]))))
    features = np.concatenate(rows, axis=0) if rows else np.zeros((0, 0), np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def combine_scores(
    features: np.ndarray,
    text_features: np.ndarray,
    negative_features: np.ndarray | None = None,
    negative_weight: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores of unit image ``features`` (N×D) for the prompt, and the negative prompt's raw scores.

    ``s_pos = 100·f·text``. Without a negative prompt that is the score. With one,
    ``s_neg = 100·f·neg`` and ``score = s_pos − w·softplus(s_neg − s_pos)``: ``s_pos`` plus ``w``
    times ``log P(prompt | image, {prompt, negative})`` under CLIP's zero-shot classifier (a
    softmax over the two logits at CLIP's logit scale of 100). A crop the negative describes
    much better loses about ``s_neg − s_pos``; one it clearly does not describe loses nearly
    nothing (at most ``w·log 2`` when the two tie).
    """
    positive = 100.0 * features @ text_features
    if negative_features is None:
        return positive, None
    negative = 100.0 * features @ negative_features
    return positive - negative_weight * np.logaddexp(0.0, negative - positive), negative


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (``H×W×3 uint8``) resized to ``width×height`` (bicubic, as CLIP's preprocessing)."""
    from PIL import Image

    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.array(
        Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.Resampling.BICUBIC)
    )
