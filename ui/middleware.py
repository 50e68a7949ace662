"""An ASGI middleware in front of the Gradio app: request limits and logins Gradio leaves out.

Gradio's ``max_file_size`` bounds file parts only: a multipart request may carry a non-file
field of any size (held in memory) and any number of files. :class:`RequestGuard` reads the
body as it streams in, without buffering it, and answers **413** as soon as

* the body passes ``max_body_bytes`` (multipart) or ``max_json_bytes`` (anything else),
* a multipart request carries more than ``max_files`` files, or
* its non-file fields add up to more than ``max_field_bytes``.

With ``--auth`` it also asks for the login on the routes Gradio serves without one (the page's
heartbeat, which ends a tab's connection, plus cancel, stream and reset), and it answers
**422** when a public API endpoint (``/track``, ``/candidates``) is called with more arguments
than it takes, instead of silently dropping them.

Install it with ``demo.launch(app_kwargs=app_kwargs(limits))``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KB = 1024
MB = 1024 * KB
# routes Gradio serves without its login check
LOGIN_ROUTES = re.compile(r"/gradio_api/(heartbeat|cancel|stream|reset)(/|$)")
# routes that run an event with a JSON body {"data": [...], "fn_index"?: n}
CALL_ROUTES = re.compile(r"/gradio_api/(?:(?:call|run|api)/(?P<name>[^/]+)|queue/join)/?$")


@dataclass(frozen=True)
class RequestLimits:
    """Bounds on one HTTP request (README "Limits")."""

    max_body_bytes: int | None = None  # a multipart body (files included); None: no cap on files' total
    max_files: int = 8  # files in one multipart request
    max_field_bytes: int = 64 * KB  # non-file form fields of one multipart request, together
    max_json_bytes: int = 32 * MB  # any other body (JSON event calls)

    @classmethod
    def for_upload(cls, max_upload_bytes: int | None, **changes: Any) -> RequestLimits:
        """Limits for a server whose largest file is ``max_upload_bytes`` (None: no cap)."""
        files = changes.pop("max_files", cls.max_files)
        body = None if max_upload_bytes is None else files * max_upload_bytes + MB
        return cls(max_body_bytes=body, max_files=files, **changes)


class _TooLarge(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _respond(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _MultipartWatch:
    """Follows a multipart body chunk by chunk (python-multipart's streaming parser), counting
    files and non-file bytes; raises :class:`_TooLarge` past the limits. Holds no data."""

    def __init__(self, boundary: bytes, limits: RequestLimits) -> None:
        from python_multipart.multipart import MultipartParser

        self.limits = limits
        self.files = 0
        self.field_bytes = 0
        self._header = b""
        self._disposition = b""
        self._is_file = False
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
        }
        self.parser = MultipartParser(boundary, callbacks)

    def _part_begin(self) -> None:
        self._disposition = b""
        self._header = b""
        self._is_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]
        self._value = b""

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value = getattr(self, "_value", b"") + data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header = b""
        self._value = b""

    def _headers_finished(self) -> None:
        self._is_file = b"filename=" in self._disposition.lower()
        if self._is_file:
            self.files += 1
            if self.files > self.limits.max_files:
                raise _TooLarge(f"One request may carry at most {self.limits.max_files} files.")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._is_file:
            self.field_bytes += end - start
            if self.field_bytes > self.limits.max_field_bytes:
                raise _TooLarge(
                    f"Form fields other than files may hold at most {self.limits.max_field_bytes // KB} KB."
                )

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self.parser.write(chunk)


def _boundary(content_type: str) -> bytes | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    return match.group(1).encode("latin-1") if match else None


def _cookies(headers: dict[bytes, bytes]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # a malformed cookie header: treated as no cookies
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def logged_in(app: Any, headers: dict[bytes, bytes]) -> bool:
    """True when ``app`` (Gradio's App) asks for no login, or the request carries a valid login cookie."""
    if app is None or (getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None):
        return True
    if getattr(app, "auth_dependency", None) is not None:
        return True  # an embedding app's own login: Gradio's routes check it themselves
    cookies = _cookies(headers)
    cookie_id = getattr(app, "cookie_id", "")
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return token is not None and app.tokens.get(token) is not None


def extra_arguments(app: Any, path: str, body: bytes) -> str | None:
    """The 422 message when ``body`` calls a public endpoint with more arguments than it takes."""
    match = CALL_ROUTES.search(path)
    if match is None or app is None or not hasattr(app, "get_blocks"):
        return None
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return None  # Gradio answers malformed JSON itself
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        return None
    fns = app.get_blocks().fns
    name = match.group("name")
    if name is not None:
        fn = next((f for f in fns.values() if f.api_name == name), None)
    else:
        fn = fns.get(payload.get("fn_index")) if isinstance(payload.get("fn_index"), int) else None
    if fn is None or getattr(fn, "api_visibility", "public") != "public":
        return None
    if len(payload["data"]) <= len(fn.inputs):
        return None
    names = ", ".join(str(getattr(c, "label", None) or type(c).__name__) for c in fn.inputs)
    return f"/{fn.api_name} takes {len(fn.inputs)} arguments ({names}) but was given {len(payload['data'])}."


class RequestGuard:
    """The ASGI middleware (see the module docstring)."""

    def __init__(self, app: Callable, limits: RequestLimits | None = None) -> None:
        self.app = app
        self.limits = limits or RequestLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        path = scope.get("path", "")
        gradio_app = scope.get("app")
        if LOGIN_ROUTES.search(path) and not logged_in(gradio_app, headers):
            await _respond(send, 401, "Not authenticated: log in first.")
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        multipart = content_type.lower().startswith("multipart/")
        cap = self.limits.max_body_bytes if multipart else self.limits.max_json_bytes
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        if cap is not None and declared > cap:
            await _respond(send, 413, f"The request is {declared} bytes, over the {cap} allowed.")
            return
        if scope.get("method") == "POST" and not multipart and CALL_ROUTES.search(path):
            await self._call(scope, receive, send, gradio_app, cap)
            return
        boundary = _boundary(content_type) if multipart else None
        watch = _MultipartWatch(boundary, self.limits) if boundary else None
        await self._stream(scope, receive, send, cap, watch)

    async def _call(self, scope: Scope, receive: Receive, send: Send, app: Any, cap: int | None) -> None:
        """A JSON event call: read it (bounded), refuse extra arguments, hand the same body on."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if cap is not None and size > cap:
                await _respond(send, 413, f"The request is over the {cap} bytes allowed.")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = extra_arguments(app, scope.get("path", ""), body)
        if problem:
            await _respond(send, 422, problem)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, cap: int | None, watch: _MultipartWatch | None
    ) -> None:
        """Pass the body through as it comes, counting; past a limit the app sees a disconnect and
        the client gets 413 (whatever the app would have answered to the cut-off body is dropped)."""
        state: dict[str, Any] = {"size": 0, "refused": None, "started": False, "watch": watch}

        async def counted() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            state["size"] += len(chunk)
            try:
                if cap is not None and state["size"] > cap:
                    raise _TooLarge(f"The request is over the {cap} bytes allowed.")
                if state["watch"] is not None:
                    state["watch"].feed(chunk)
            except _TooLarge as refusal:
                state["refused"] = refusal.message
                return {"type": "http.disconnect"}
            except Exception:  # a body the parser cannot follow: Gradio's own parser answers it
                logger.debug("multipart watch gave up", exc_info=True)
                state["watch"] = None
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return  # the 413 below replaces whatever the app makes of the cut-off body
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not state["refused"]:
                raise
        if state["refused"] and not state["started"]:
            logger.warning("refused a request to %s: %s", scope.get("path"), state["refused"])
            await _respond(send, 413, state["refused"])


def app_kwargs(limits: RequestLimits) -> dict[str, Any]:
    """``demo.launch(app_kwargs=...)``: the FastAPI app with :class:`RequestGuard` in front."""
    from starlette.middleware import Middleware

    return {"middleware": [Middleware(RequestGuard, limits=limits)]}


__all__ = ["RequestGuard", "RequestLimits", "app_kwargs", "extra_arguments", "logged_in"]
