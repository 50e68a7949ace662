"""Hostile requests against the running app (issue 9): raw HTTP (httpx) and the queue's own protocol.

One app per module (the stand-in workspace, ``--max-upload 1mb`` and the request guard as
``app.py`` installs them), plus one with ``--auth`` for the login checks. Each attack must be
answered with one clear line and leave the server up; the tabs' work must survive a dropped
connection and stay inside the temp root.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import hostile
from tests.standin_workspace import standin_services
from ui.app import build_demo
from ui.launch import guard_options, launch_options
from ui.state import SessionStore

MAX_UPLOAD = "1mb"
GUARDED = os.environ.get("HOSTILE_WITHOUT_GUARD") != "1"  # =1 shows what the guard stops (tests fail)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(root: Path, *extra: str):
    from ui.launch import build_parser

    args = build_parser().parse_args(["--max-upload", MAX_UPLOAD, *extra])
    options = {**launch_options(args), **(guard_options(args) if GUARDED else {})}
    options.update(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    services = standin_services(root)
    store = SessionStore(root, max_bytes=10**9)
    demo = build_demo(services, store)
    demo.launch(**options)
    return demo, f"http://127.0.0.1:{options['server_port']}"


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[tuple]:
    root = tmp_path_factory.mktemp("hostile-app") / "root"
    demo, url = _launch(root)
    with httpx.Client(base_url=url, timeout=60) as http:
        yield demo, http, root
    demo.close()


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory) -> Iterator[tuple]:
    root = tmp_path_factory.mktemp("hostile-auth") / "root"
    demo, url = _launch(root, "--auth", "alice:s3cret")
    with httpx.Client(base_url=url, timeout=60) as http:
        yield demo, http
    demo.close()


def alive(http: httpx.Client) -> bool:
    return http.get("/config").status_code == 200


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def fn_index(demo, name: str) -> int:
    return next(index for index, fn in demo.fns.items() if getattr(fn, "name", "") == name)


def run_event(http: httpx.Client, index: int, data: list, session_hash: str) -> dict:
    """The page's own protocol: join the queue, then read the event's stream to its end."""
    joined = http.post("/gradio_api/queue/join", json={
        "data": data, "fn_index": index, "session_hash": session_hash, "event_data": None, "trigger_id": None,
    })  # fmt: skip
    assert joined.status_code == 200, joined.text
    event_id = joined.json()["event_id"]
    with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                return message
    raise AssertionError("the event never completed")


def upload(http: httpx.Client, path: Path) -> dict:
    with open(path, "rb") as handle:
        response = http.post("/gradio_api/upload", files=[("files", (path.name, handle))])
    assert response.status_code == 200, response.text
    (server_path,) = response.json()
    return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def opened_tab(demo, session_hash: str, video: Path):
    """A tab with a video open and one object (its work), as the page would leave it."""
    session = demo.session_store.get(None, session_hash)
    session, _ = demo.handlers.on_video(session, str(video), "balanced")
    ws = session.workspace
    obj = ws.add_object("disc")
    ws.add_click(obj.object_id, 1, 30.0, 30.0)
    return session


def work_of(session) -> tuple:
    ws = session.workspace
    return (sorted(ws.objects), [(p.object_id, p.frame_idx) for p in ws.prompts()], len(ws.store))


# -- hostile files through the page --------------------------------------------------------------------
ANNOTATIONS = [
    "coco_huge_rle",
    "coco_rle_overflow",
    "coco_polygon_outside",
    "ytvis_huge_rle",
    "ytvis_length",
    "png_bomb",
]
PROJECTS = ["project_huge_rle", "project_forged_video", "project_forged_small", "project_deep_json"]


@pytest.mark.parametrize("name", ANNOTATIONS + PROJECTS)
def test_hostile_files_through_the_page_are_refused_and_the_server_stays_up(app, name, tmp_path, small_video):
    demo, http, _ = app
    session_hash = f"hostile-{name}"
    session = opened_tab(demo, session_hash, small_video)
    before = work_of(session)
    case = hostile.CORPUS[name]
    path = case.make(tmp_path, hostile.Video(session.workspace.info.width, session.workspace.info.height, 12))
    handler = "import_annotations" if case.kind == "annotations" else "open_project"
    result = run_event(http, fn_index(demo, handler), [None, upload(http, path)], session_hash)
    assert result["success"] is False
    message = result["output"]["error"]
    assert message and "\n" not in message.strip() and "Traceback" not in message, message
    assert alive(http)
    assert work_of(session) == before


# -- request limits -------------------------------------------------------------------------------------
def _multipart(boundary: str, field_bytes: int) -> Iterator[bytes]:
    yield f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
    block = b"x" * (1 << 20)
    for _ in range(field_bytes >> 20):
        yield block
    yield f"\r\n--{boundary}--\r\n".encode()


def test_a_huge_non_file_form_field_is_refused_while_it_streams(app):
    _, http, _ = app
    before = rss_mb()
    boundary = "hostileboundary"
    try:
        response = http.post(
            "/gradio_api/upload",
            content=_multipart(boundary, 200 << 20),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413 and "64 KB" in response.json()["error"], response.text
    except httpx.TransportError:
        pass  # the server answered 413 and closed before the client finished sending: also a refusal
    assert rss_mb() - before < 60  # nothing of the 200 MB was held
    assert alive(http)


def test_a_declared_oversize_body_is_refused_before_it_is_read(app):
    _, http, _ = app
    host, port = str(http.base_url.host), int(http.base_url.port)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10000000000\r\n\r\n--b\r\n"
        )
        head = sock.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head
    assert alive(http)


def test_files_per_request_are_capped(app, tmp_path):
    _, http, _ = app
    files = [("files", (f"f{i}.txt", b"x")) for i in range(9)]
    response = http.post("/gradio_api/upload", files=files)
    assert response.status_code == 413 and "at most 8 files" in response.json()["error"], response.text
    response = http.post("/gradio_api/upload", files=files[:8])
    assert response.status_code == 200 and len(response.json()) == 8
    assert alive(http)


def test_extra_arguments_to_track_are_refused(app):
    _, http, _ = app
    response = http.post(
        "/gradio_api/call/track", json={"data": [None, "red", "", "fast", 1, False, None, "extra"]}
    )
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert message.startswith("/track takes 7 arguments") and "given 8" in message, message
    assert alive(http)


# -- tabs: dropped connections, traversal hashes, planted links -------------------------------------------
def _drop_heartbeat(http: httpx.Client, session_hash: str) -> None:
    with http.stream("GET", f"/gradio_api/heartbeat/{session_hash}") as stream:
        assert stream.status_code == 200
        next(stream.iter_lines())  # connected; leaving the block drops the connection


def test_a_dropped_connection_keeps_the_tab_and_further_use_finds_its_work(app, small_video):
    demo, http, _ = app
    session = opened_tab(demo, "flaky-network", small_video)
    before = work_of(session)
    _drop_heartbeat(http, "flaky-network")
    deadline = time.time() + 10
    while session.unloaded_at is None and time.time() < deadline:  # Gradio runs unload in the background
        time.sleep(0.05)
    assert session.unloaded_at is not None and not session.closed and session.workdir.exists()
    result = run_event(http, fn_index(demo, "refine"), [None], "flaky-network")  # the tab goes on
    assert result["success"] is True, result
    assert session.unloaded_at is None and work_of(session) == before
    demo.session_store.sweep(now=time.time() + 2 * 3600)  # an hour on: still used, still kept
    assert not session.closed


def test_a_traversal_session_hash_stays_inside_the_temp_root(app, small_video, tmp_path):
    demo, http, root = app
    traversal = "/../../../" + tmp_path.name + "-escaped/"
    result = run_event(http, fn_index(demo, "refine"), [None], traversal)
    assert alive(http) and "success" in result
    session = demo.session_store.get(None, traversal)
    session.workdir  # noqa: B018 - the folder the tab would use
    assert session.folder.parent == root and os.path.realpath(session.folder).startswith(str(root) + os.sep)
    assert not list(root.parent.glob("*escaped*")) and not list(root.parent.parent.glob("*escaped*"))


def test_a_planted_link_in_the_temp_root_keeps_its_target(app, tmp_path):
    demo, _, root = app
    target = tmp_path / "someone-elses"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    (root / "session-planted").symlink_to(target)
    old = time.time() - 48 * 3600
    os.utime(root / "session-planted", (old, old), follow_symlinks=False)
    demo.session_store.sweep()
    assert (target / "keep.txt").read_text() == "mine"
    assert not os.path.lexists(root / "session-planted")


# -- logins -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "route"),
    [("GET", "/gradio_api/heartbeat/abc"), ("POST", "/gradio_api/cancel"), ("POST", "/gradio_api/reset"),
     ("POST", "/gradio_api/stream/abc/close")],
)  # fmt: skip
def test_routes_that_end_a_tab_need_the_login(auth_app, method, route):
    _, http = auth_app
    http.cookies.clear()
    body = {"session_hash": "abc", "event_id": "x", "fn_index": 0}
    with http.stream(method, route, json=body) as response:  # a heartbeat would stream forever
        assert response.status_code == 401


def test_the_heartbeat_works_once_logged_in(auth_app):
    _, http = auth_app
    assert http.post("/login", data={"username": "alice", "password": "s3cret"}).status_code == 200
    with http.stream("GET", "/gradio_api/heartbeat/abc") as stream:
        assert stream.status_code == 200
