"""Handlers never show a stack trace: the person sees one sentence, the server log the rest.

* :class:`tracker.errors.TrackerError` (a problem the person can fix) becomes a ``gr.Error``
  with the library's own one-sentence message;
* ``gr.Error`` raised on purpose passes through;
* anything else is logged with its traceback and shown as a short generic message with a
  reference to find it in the log. The server keeps running either way.
"""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from tracker.errors import TrackerError

from . import text

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def user_error(error: BaseException) -> gr.Error:
    """The ``gr.Error`` a person sees for ``error``."""
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, TrackerError):
        return gr.Error(str(error), title="Can't do that yet", print_exception=False)
    ref = uuid.uuid4().hex[:8]
    logger.error("unexpected error (ref %s)", ref, exc_info=error)
    return gr.Error(
        text.GENERIC_ERROR.format(ref=f"ref {ref}"), title="Something went wrong", print_exception=False
    )


def guarded(fn: F) -> F:
    """Wrap a handler (plain or generator) so every exception reaches the person as ``gr.Error``.

    ``functools.wraps`` keeps the signature and annotations visible to Gradio, which injects
    ``gr.Request``, ``gr.SelectData`` and ``gr.Progress`` by looking at them.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator_wrapper(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except GeneratorExit:
                raise
            except Exception as error:
                raise user_error(error) from None

        return generator_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise user_error(error) from None

    return wrapper  # type: ignore[return-value]
