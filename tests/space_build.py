"""Build the app the way a Hugging Face Space does, start it, and run ``/track`` on a small clip.

    python -m tests.space_build [--keep DIR] [--python python3.11]

A Gradio-SDK Space installs dependencies with plain pip in a fresh image, before the repository
is copied in: ``pip install -r pre-requirements.txt`` (when the file exists), then one
``pip install -r /tmp/requirements.txt "gradio[oauth,mcp]==<sdk_version>" "uvicorn>=0.14.0"
"websockets>=10.4" spaces`` with only requirements.txt mounted, then ``COPY ./ /app`` and
``python app.py`` (docs/WEBAPP.md, "How the Space is built", cites the build logs). This script
does the same in a fresh venv: the requirements files are copied alone into an empty folder
and installed from there, so a ``-r other.txt`` or a local path in them fails here as it would
on a Space; the tracked files are then copied into an app folder and ``app.py --random-weights``
is started from it with the new venv; a gradio_client call of ``/track`` on a generated 10-frame
clip must return an overlay, a zip and a summary, and the page must show no package banner.

Two differences from a Space, both only about where files come from (named here, on purpose):

* pip's HTTP cache is used (a Space passes ``--no-cache-dir``), in a cache folder of its own
  (``--cache-dir``) from which any wheel of sam2 is removed first: sam2 is built from source,
  in pip's isolated build environment, on every run, as on a Space (the script checks pip said so);
* sam2 has no wheel, so pip builds it in an isolated environment that installs ``torch>=2.5.1``.
  On a Space that is the newest torch on PyPI (a CUDA build of several GB, discarded after the
  build). Here ``PIP_CONSTRAINT`` / ``PIP_BUILD_CONSTRAINT`` (a file saying ``torch==<pin>``)
  make that build environment take the same pinned torch as the app, which this machine has
  on disk. They constrain nothing else: the app's own torch is pinned to that version anyway.

Exit status 0 when everything worked; the timings are printed (and written to --report).
It takes minutes (it installs torch twice), so it is a CI step (.ci/run), not part of pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[space-build] {message}", flush=True)


def sdk_version(readme: Path) -> str:
    """``sdk_version`` from the README's front matter (what the Space installs gradio at)."""
    match = re.search(r"^sdk_version:\s*['\"]?([0-9.]+)", readme.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit("README.md has no sdk_version in its front matter")
    return match.group(1)


def pinned(requirements: Path, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}==([^\s#]+)", requirements.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit(f"requirements.txt does not pin {name}")
    return f"{name}=={match.group(1)}"


def run(command: list[str], output: Path | None = None, **kwargs) -> float:
    """Run ``command`` (its output also appended to ``output``, each line timed); seconds it took."""
    start = time.monotonic()
    log("$ " + " ".join(command))
    if output is None:
        subprocess.run(command, check=True, **kwargs)
    else:
        with output.open("a") as out:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
            )
            for line in process.stdout:
                sys.stdout.write(line)
                out.write(f"{time.monotonic() - start:7.1f}s {line}")  # when each step happened
            if process.wait():
                raise subprocess.CalledProcessError(process.returncode, command)
    return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(work: Path, python: str, cache: Path, timings: dict[str, float]) -> Path:
    """A fresh venv with what a Space installs; returns its python."""
    venv = work / "venv"
    timings["venv"] = run([python, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    pip_log = work / "pip.log"
    mounted = work / "mounted"  # only the requirements files, as the Space's build mounts them
    mounted.mkdir()
    constraint = work / "build-constraint.txt"
    constraint.write_text(pinned(ROOT / "requirements.txt", "torch") + "\n")
    env = {**os.environ, "PIP_CONSTRAINT": str(constraint), "PIP_BUILD_CONSTRAINT": str(constraint)}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_CACHE_DIR"] = str(cache)
    env.pop("PYTHONPATH", None)
    # a wheel of sam2 built by an earlier run would skip the very build a Space has to do
    subprocess.run([py, "-m", "pip", "cache", "remove", "sam2"], env=env, check=False, capture_output=True)
    pre = ROOT / "pre-requirements.txt"
    if pre.is_file():
        shutil.copy(pre, mounted / "pre-requirements.txt")
        timings["pre-requirements"] = run(
            [py, "-m", "pip", "install", "-r", "pre-requirements.txt"], pip_log, cwd=mounted, env=env
        )
    shutil.copy(ROOT / "requirements.txt", mounted / "requirements.txt")
    gradio = f"gradio[oauth,mcp]=={sdk_version(ROOT / 'README.md')}"
    timings["requirements"] = run(
        [py, "-m", "pip", "install", "-r", str(mounted / "requirements.txt"), gradio,
         "uvicorn>=0.14.0", "websockets>=10.4", "spaces"],
        pip_log, cwd=mounted, env=env,
    )  # fmt: skip
    if not re.search(r"Building wheel for sam2 \(pyproject\.toml\)", pip_log.read_text()):
        raise SystemExit("pip did not build sam2 from source; the check would not mean what it says")
    return Path(py)


def copy_app(work: Path) -> Path:
    """The repository's files that ``git push`` to the Space would carry (tracked, or new and not ignored)."""
    app = work / "app"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout  # fmt: skip
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = app / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return app


def serve_and_track(py: Path, app: Path, work: Path, timings: dict[str, float]) -> dict:
    from gradio_client import Client, handle_file

    from tests.synthetic import make_video

    clip = work / "clip.mp4"
    make_video(clip, num_frames=10, width=192, height=144, fps=8)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    # what a Space sets (GRADIO_SERVER_NAME) and what a Space owner would set as variables to try it
    env.update({
        "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
        "TRACKER_RANDOM_WEIGHTS": "1", "TRACKER_PRESET": "fast", "TRACKER_IMAGE_SIZE": "256",
        "TRACKER_MAX_SIZE": "256", "TRACKER_TEMP": str(work / "sessions"), "HF_HUB_OFFLINE": "1",
    })  # fmt: skip
    server_log = work / "app.log"
    start = time.monotonic()
    with server_log.open("w") as out:
        server = subprocess.Popen([str(py), "app.py"], cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            config = None
            while time.monotonic() - start < 300 and server.poll() is None:
                try:
                    import httpx

                    config = httpx.get(url + "config", timeout=5).json()
                    break
                except Exception:
                    time.sleep(1)
            if config is None:
                raise SystemExit(f"the app did not start:\n{server_log.read_text()}")
            timings["app start"] = time.monotonic() - start
            ids = {c["props"].get("elem_id") for c in config["components"] if c.get("props")}
            if "missing-packages-banner" in ids:
                raise SystemExit(f"the page says a model package is missing:\n{server_log.read_text()}")
            start = time.monotonic()
            client = Client(url, verbose=False, download_files=str(work / "downloads"))
            overlay, archive, summary = client.predict(
                video=handle_file(str(clip)), prompt="a red disc", api_name="/track"
            )
            timings["/track"] = time.monotonic() - start
        finally:
            server.terminate()
            server.wait(30)
    members = zipfile.ZipFile(archive).namelist()
    if Path(overlay).stat().st_size == 0 or "coco.json" not in members:
        raise SystemExit(f"/track returned an empty overlay or an incomplete zip: {members}")
    text = server_log.read_text()
    if "Traceback" in text or "ModuleNotFoundError" in text:
        raise SystemExit(f"the app logged an error:\n{text}")
    return {"summary": summary, "zip": sorted(members)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.space_build", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for the venv (a Space uses 3.11 here)"
    )
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temp folder)")
    parser.add_argument("--report", type=Path, help="write the timings and result as JSON here")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "pip-space-build",
        help="pip's cache for these builds (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    python = args.python
    work = args.keep or Path(tempfile.mkdtemp(prefix="space-build-"))
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    total = time.monotonic()
    try:
        py = build(work, python, args.cache_dir, timings)
        app = copy_app(work)
        result = serve_and_track(py, app, work, timings)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    timings["total"] = time.monotonic() - total
    result["timings"] = {name: round(seconds, 1) for name, seconds in timings.items()}
    log(json.dumps(result, indent=1, ensure_ascii=False))
    if args.report:
        args.report.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    log("ok: a Space-style build runs /track end to end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
