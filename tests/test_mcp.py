"""The MCP server (``--mcp``): a real MCP client lists the tools and calls them.

The app is launched in-process with ``mcp_server=True`` (what ``--mcp`` passes) and the official
``mcp`` client connects over streamable HTTP at ``/gradio_api/mcp/``. The tools are the two public
endpoints, named after the :class:`ui.api.PublicAPI` methods, with their docstrings as
descriptions; Gradio's schema endpoint shows that none of the page's own events is a tool. The
stand-in workspace checks the plumbing in seconds; one test calls ``track_video`` with the real
models on random weights.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import zipfile
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from tests.standin_workspace import standin_services
from tests.synthetic import make_video
from ui.app import build_demo, launch_style

TOOLS = {"track_video", "find_candidates"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "shapes.mp4"
    make_video(path, num_frames=10, width=192, height=144, fps=8)
    return path


def data_url(path: Path) -> str:
    """How an agent passes a local file to a remote tool: a base64 ``data:`` URL."""
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def launched(services):
    demo = build_demo(services)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True, mcp_server=True, **launch_style())
    return demo, f"http://127.0.0.1:{port}/"


async def _session(url: str, work):
    async with streamablehttp_client(url + "gradio_api/mcp/", timeout=60, sse_read_timeout=900) as (
        read,
        write,
        _,
    ):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)


def with_session(url: str, work):
    return asyncio.run(_session(url, work))


def texts(result) -> list[str]:
    return [item.text for item in result.content if item.type == "text"]


def note(messages: list[str]):
    """A progress callback that keeps the messages."""

    async def callback(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    return callback


def download(url: str, target: Path) -> Path:
    target.write_bytes(httpx.get(url, timeout=60).raise_for_status().content)
    return target


def test_tools_are_the_public_endpoints_with_their_docstrings(tmp_path, clip):
    demo, url = launched(standin_services(tmp_path / "sessions"))
    try:
        tools = {tool.name: tool for tool in with_session(url, lambda s: s.list_tools()).tools}
        assert set(tools) == TOOLS  # no micro-event of the page is a tool
        track = tools["track_video"]
        assert track.description.startswith("Find what the prompt describes in a video and track it")
        assert "Returns:" in track.description and "summary" in track.description
        arguments = track.inputSchema["properties"]
        assert list(arguments) == [
            "video",
            "prompt",
            "negative_prompt",
            "preset",
            "max_objects",
            "discover",
            "discover_every",
        ]
        assert arguments["prompt"]["description"].startswith("what to follow")
        assert "1 to 10" in arguments["max_objects"]["description"]
        assert "fast" in arguments["preset"]["description"]
        assert "video" in track.inputSchema["required"]
        find = tools["find_candidates"]
        assert "without tracking" in find.description
        assert "1 to 50" in find.inputSchema["properties"]["max_candidates"]["description"]
        # Gradio's own schema endpoint (what the Hugging Face MCP server reads) agrees
        schema = httpx.get(url + "gradio_api/mcp/schema", timeout=30).json()
        assert {tool["name"] for tool in schema} == TOOLS
        assert {tool["meta"]["endpoint_name"] for tool in schema} == {"track", "candidates"}

        arguments = {"video": data_url(clip), "prompt": "red disc", "max_candidates": 3}
        # a client that asks for progress gets one content item per output, the image as an image
        notes: list[str] = []
        result = with_session(
            url, lambda s: s.call_tool("find_candidates", arguments, progress_callback=note(notes))
        )
        assert not result.isError, result.content
        assert [item.type for item in result.content] == ["text", "text", "image", "text"]
        summary, rows, image_url = texts(result)
        assert summary.startswith("6 candidates for 'red disc' on 3 frames, the best 3 listed."), summary
        assert "'rank': 1" in rows and image_url.startswith("Image URL: " + url)
        assert notes  # progress notifications arrived
        # one that does not gets Gradio's single text with every output (file URLs included)
        result = with_session(url, lambda s: s.call_tool("find_candidates", arguments))
        (blob,) = texts(result)
        assert blob.startswith('["6 candidates') and f"'url': '{url}gradio_api/file=" in blob

        result = with_session(
            url, lambda s: s.call_tool("track_video", {"video": data_url(clip), "prompt": " "})
        )
        assert result.isError and "Type what to follow" in " ".join(texts(result))
    finally:
        demo.close()


@pytest.mark.slow
def test_track_video_tool_with_random_weights(tmp_path, clip):
    """An agent's whole call: a base64 video in, the overlay and zip URLs and a summary out."""
    from tracker.settings import Settings
    from ui.services import Services

    size = int(os.environ.get("TRACKER_IMAGE_SIZE", "256"))
    services = Services.from_settings(
        Settings(random_weights=True, preset="fast", image_size=size, max_size=256), tmp_path / "sessions"
    )
    demo, url = launched(services)
    try:
        arguments = {"video": data_url(clip), "prompt": "a red disc"}
        result = with_session(
            url, lambda s: s.call_tool("track_video", arguments, progress_callback=note([]))
        )
        assert not result.isError, result.content
        overlay_url, zip_url, summary = texts(result)
        assert overlay_url.startswith(url) and overlay_url.endswith(".mp4")
        assert summary.startswith("Tracked 1 object for 'a red disc' through 10 frames"), summary
        assert "untrained" in summary and "The zip holds" in summary
        archive = download(zip_url, tmp_path / "annotations.zip")
        assert {"coco.json", "manifest.json", "trajectories.csv"} <= set(zipfile.ZipFile(archive).namelist())
        assert download(overlay_url, tmp_path / "overlay.mp4").stat().st_size > 0
    finally:
        demo.close()


def test_mcp_option(monkeypatch):
    """``--mcp`` turns the server on; without it Gradio's own GRADIO_MCP_SERVER decides (None)."""
    import importlib.util

    from tracker.errors import InputError
    from ui.launch import build_parser, launch_options

    assert launch_options(build_parser().parse_args([]))["mcp_server"] is None
    assert launch_options(build_parser().parse_args(["--mcp"]))["mcp_server"] is True
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a)
    )
    with pytest.raises(InputError, match=r"--mcp needs the mcp package"):
        launch_options(build_parser().parse_args(["--mcp"]))
