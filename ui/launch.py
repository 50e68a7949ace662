"""Command-line options of ``python app.py`` and what they turn into.

Gradio's own environment variables keep working: ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``
when ``--host`` / ``--port`` are not given (a Hugging Face Space sets them). The tracker's:
``TRACKER_RANDOM_WEIGHTS=1``, ``TRACKER_IMAGE_SIZE``, ``TRACKER_MAX_SIZE``, ``TRACKER_PRESET``,
``TRACKER_DEVICE``, ``TRACKER_AUTH`` (``user:pass``), ``TRACKER_TEMP``, and the limits
``TRACKER_MAX_SECONDS``, ``TRACKER_MAX_FRAMES``, ``TRACKER_MAX_UPLOAD``, ``TRACKER_TEMP_MAX_GB``
(see README.md, "Limits"). ``--mcp`` (or Gradio's ``GRADIO_MCP_SERVER=True``) adds the MCP server.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from tracker.errors import InputError
from tracker.settings import Settings

logger = logging.getLogger(__name__)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


# Limits that keep one public server usable by many people (0 or "none" lifts each one).
DEFAULT_MAX_SECONDS = 600.0  # ten minutes of video per tab
DEFAULT_MAX_UPLOAD = "1gb"
DEFAULT_TEMP_MAX_GB = 20.0
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb|tb)?\s*$", re.IGNORECASE)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python app.py",
        description="The Text-Prompted Video Tracker web app (opens on http://127.0.0.1:7860).",
    )
    _server_options(p.add_argument_group("server"))
    _limit_options(p.add_argument_group("limits (0 lifts a limit; see the Limits section of README.md)"))
    _model_options(p.add_argument_group("models"))
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    return p


def _server_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--host",
        default=None,
        help="address to listen on; 0.0.0.0 for the local network (default: $GRADIO_SERVER_NAME or 127.0.0.1)",
    )
    g.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: $GRADIO_SERVER_PORT or the first free one from 7860)",
    )
    g.add_argument(
        "--share", action="store_true", help="also open a public *.gradio.live link (off by default)"
    )
    g.add_argument(
        "--auth",
        default=os.environ.get("TRACKER_AUTH"),
        metavar="USER:PASS",
        help="ask for this user name and password (or set TRACKER_AUTH)",
    )
    g.add_argument(
        "--concurrency", type=int, default=1, help="model runs at once across all users (1 on a CPU)"
    )
    g.add_argument(
        "--temp-dir",
        type=Path,
        default=None,
        help="where per-session files go (default: $TRACKER_TEMP or the system temp folder)",
    )
    g.add_argument("--inbrowser", action="store_true", help="open the page in the default browser")
    g.add_argument(
        "--mcp",
        action="store_true",
        help="also serve the public endpoints as MCP tools for AI agents, at /gradio_api/mcp/ "
        "(or set GRADIO_MCP_SERVER=True; needs gradio[mcp])",
    )


def _limit_options(lim: argparse._ArgumentGroup) -> None:
    lim.add_argument(
        "--max-duration",
        type=float,
        default=os.environ.get("TRACKER_MAX_SECONDS") or DEFAULT_MAX_SECONDS,
        metavar="SECONDS",
        help="refuse longer videos (default: $TRACKER_MAX_SECONDS or %(default)s)",
    )
    lim.add_argument(
        "--max-frames",
        type=int,
        default=os.environ.get("TRACKER_MAX_FRAMES") or 0,
        help="refuse videos with more frames (default: $TRACKER_MAX_FRAMES, else no limit)",
    )
    lim.add_argument(
        "--max-upload",
        default=os.environ.get("TRACKER_MAX_UPLOAD") or DEFAULT_MAX_UPLOAD,
        metavar="SIZE",
        help="largest upload, e.g. 500mb or 2gb (default: $TRACKER_MAX_UPLOAD or %(default)s)",
    )
    lim.add_argument(
        "--temp-max-gb",
        type=float,
        default=os.environ.get("TRACKER_TEMP_MAX_GB") or DEFAULT_TEMP_MAX_GB,
        metavar="GB",
        help="cap on the per-session files; idle sessions are closed past it "
        "(default: $TRACKER_TEMP_MAX_GB or %(default)s)",
    )


def _model_options(m: argparse._ArgumentGroup) -> None:
    m.add_argument(
        "--random-weights",
        action="store_true",
        default=_env_flag("TRACKER_RANDOM_WEIGHTS"),
        help="untrained weights: no downloads, meaningless masks (for trying the workflow); or TRACKER_RANDOM_WEIGHTS=1",
    )
    m.add_argument(
        "--device", default=os.environ.get("TRACKER_DEVICE", "auto"), help="auto, cpu, cuda, cuda:N or mps"
    )
    m.add_argument(
        "--preset",
        default=os.environ.get("TRACKER_PRESET"),
        help="default speed/quality preset (default: the device's)",
    )
    m.add_argument(
        "--image-size",
        type=int,
        default=_env_int("TRACKER_IMAGE_SIZE"),
        help="SAM 2 processing size for every preset (multiple of 32); or TRACKER_IMAGE_SIZE",
    )
    m.add_argument(
        "--max-size",
        type=int,
        default=_env_int("TRACKER_MAX_SIZE"),
        help="downscale videos so the longest side is at most this; or TRACKER_MAX_SIZE",
    )
    m.add_argument(
        "--checkpoints",
        dest="checkpoints_dir",
        type=Path,
        default=None,
        help="folder with the weights (default: ./checkpoints)",
    )
    m.add_argument("--offline", action="store_true", help="never download weights")


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InputError("--auth needs USER:PASS, e.g. --auth alice:s3cret.")
    return user, password


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        preset=args.preset,
        image_size=args.image_size,
        max_size=args.max_size,
        device=args.device,
        random_weights=args.random_weights,
        checkpoints_dir=args.checkpoints_dir,
        offline=args.offline,
    )


def parse_size(value: str | None) -> str | None:
    """``--max-upload`` as Gradio's ``max_file_size`` ("500mb"); None for no limit ("0", "none")."""
    text = (value or "").strip().lower()
    if text in ("", "0", "none", "off"):
        return None
    match = _SIZE.match(text)
    if not match:
        raise InputError(f"--max-upload takes a size like 500mb or 2gb, not {value!r}.")
    number, unit = match.groups()
    return None if int(number) == 0 else f"{int(number)}{unit or 'b'}"


def size_bytes(size: str | None) -> int | None:
    """A :func:`parse_size` result ("500mb") in bytes, as Gradio counts them (1 kb = 1024 b)."""
    if size is None:
        return None
    number, unit = _SIZE.match(size).groups()  # type: ignore[union-attr]
    return int(number) * 1024 ** ("b", "kb", "mb", "gb", "tb").index((unit or "b").lower())


def guard_options(args: argparse.Namespace) -> dict[str, Any]:
    """``demo.launch()`` keywords that put :class:`ui.middleware.RequestGuard` in front of the app."""
    from .middleware import RequestLimits, app_kwargs

    limits = RequestLimits.for_upload(size_bytes(parse_size(args.max_upload)))
    return {"app_kwargs": app_kwargs(limits)}


def limits_from(args: argparse.Namespace) -> dict[str, Any]:
    """Keywords for :meth:`ui.services.Services.from_settings`: video length and temp folder caps."""
    return {
        "max_seconds": args.max_duration if args.max_duration and args.max_duration > 0 else None,
        "max_frames": args.max_frames if args.max_frames and args.max_frames > 0 else None,
        "max_temp_bytes": int(args.temp_max_gb * 1e9) if args.temp_max_gb and args.temp_max_gb > 0 else None,
    }


def check_temp_root(path: Path) -> None:
    """Gradio hands the browser only files under the system temp folder or the working directory.

    Per-session files anywhere else could not be downloaded, and opening that folder with
    ``allowed_paths`` would serve every session's files to anyone who asks, so refuse to start.
    The root must also be this user's alone (:func:`ui.state.ensure_private_root`: made 0700,
    refused when another user owns it or others can write to it).
    """
    from .state import ensure_private_root

    root = Path(path).resolve()
    homes = [Path(tempfile.gettempdir()).resolve(), Path.cwd().resolve()]
    if not any(root == home or home in root.parents for home in homes):
        raise InputError(
            f"--temp-dir {path} must be inside the system temp folder ({homes[0]}) or the folder the app "
            "runs from, so the page can hand out results; pick one there (or set TMPDIR)."
        )
    ensure_private_root(root)


def launch_options(args: argparse.Namespace) -> dict[str, Any]:
    """``demo.launch()`` keywords: host/port fall back to Gradio's env variables when not given.

    No public link unless ``--share``; nothing added to ``allowed_paths`` (each session's files
    reach the browser only as Gradio's per-file cache copies of what its own handlers return).
    """
    return {
        "server_name": args.host,
        "server_port": args.port,
        "share": bool(args.share),
        "auth": parse_auth(args.auth),
        "inbrowser": args.inbrowser,
        "show_error": False,
        "footer_links": ["api", "gradio"],
        "max_file_size": parse_size(args.max_upload),
        "mcp_server": mcp_server(args.mcp),
    }


def mcp_server(requested: bool) -> bool | None:
    """``launch(mcp_server=...)``: True for ``--mcp``, else None (Gradio then reads ``GRADIO_MCP_SERVER``).

    ``--mcp`` without the ``mcp`` package would only print a warning and serve no tools, so it
    refuses to start instead.
    """
    if not requested:
        return None
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        raise InputError(
            '--mcp needs the mcp package: pip install "gradio[mcp]==6.31.0" (requirements.txt has it), then start again.'
        )
    return True


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in (
        "httpx",
        "urllib3",
        "PIL",
        "matplotlib",
        "huggingface_hub",
        "filelock",
        "asyncio",
        "multipart",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
