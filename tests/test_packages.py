"""A missing or broken model package is named, with its install command, when the app starts.

Packages are made "missing" or "broken" with an import blocker on ``sys.meta_path`` (the
modules already imported are taken out of ``sys.modules`` for the test and put back after it),
and once end to end: ``app.py --random-weights`` started in a subprocess with sam2 blocked must
log one clear line and serve a page whose banner says what to install, with Find/Track off.
"""

from __future__ import annotations

import importlib.abc
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.standin_workspace import standin_services
from tracker.packages import REQUIREMENTS, PackageProblem, check_packages, fix_for, install_command
from ui.app import build_demo

ROOT = Path(__file__).resolve().parent.parent


class ImportBlocker(importlib.abc.MetaPathFinder):
    """Makes ``import <name>`` (and its submodules) fail: missing (ModuleNotFoundError) or broken."""

    def __init__(self, names: set[str], broken: bool = False) -> None:
        self.names = names
        self.broken = broken

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.names:
            if self.broken:
                raise ImportError(f"{name} is broken on purpose (test)")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.fixture
def block(monkeypatch):
    """``block({"sam2"}, broken=False, unload=())``: hide those packages for the rest of the test.

    ``unload`` names more packages to take out of ``sys.modules`` (without blocking them), so
    that they are imported again and meet the blocked ones.
    """

    def install(names: set[str], broken: bool = False, unload: set[str] = frozenset()) -> None:
        for loaded in [m for m in sys.modules if m.split(".")[0] in names | unload]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setattr(sys, "meta_path", [ImportBlocker(names, broken), *sys.meta_path])

    return install


def test_everything_is_installed_here():
    assert check_packages(sam1=True) == []


@pytest.mark.parametrize(
    ("blocked", "broken", "unload", "sam1", "expected"),
    [
        ({"sam2"}, False, set(), False, [("sam2", True)]),
        ({"open_clip"}, True, set(), False, [("open_clip", False)]),
        ({"segment_anything"}, False, set(), True, [("segment_anything", True)]),
        ({"segment_anything"}, False, set(), False, []),  # only the sam1-auto proposer needs it
        ({"hydra"}, False, {"sam2"}, False, [("sam2", False)]),  # sam2's dependency gone: sam2 is broken
        ({"sam2", "open_clip"}, False, set(), False, [("open_clip", True), ("sam2", True)]),
        ({"torch"}, False, set(), False, [("torch", True)]),  # the others need torch: not checked
    ],
)
def test_problems_name_the_package_and_the_command(block, blocked, broken, unload, sam1, expected):
    block(blocked, broken, unload)
    problems = check_packages(sam1=sam1)
    assert [(p.module, p.missing) for p in problems] == expected
    for problem in problems:
        line = str(problem)
        assert "\n" not in line and line.startswith(problem.module)
        assert REQUIREMENTS[problem.module].pin in line  # the pinned install command is in it


def test_the_sam2_command_builds_against_the_installed_torch(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    command = install_command(REQUIREMENTS["sam2"], python=".venv/bin/python")
    assert command == "SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install --no-build-isolation sam2==1.1.0"
    assert "scripts/install.sh" in fix_for(REQUIREMENTS["sam2"])
    monkeypatch.setenv("SPACE_ID", "someone/tracker")  # a Space cannot pip install by hand
    assert "requirements.txt" in fix_for(REQUIREMENTS["sam2"]) and "pip" not in fix_for(REQUIREMENTS["sam2"])


def test_pins_match_requirements_txt():
    lines = {
        re.split(r"[=<>\[;\s]", line, maxsplit=1)[0].lower().replace("_", "-"): line.split("#")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    }
    for requirement in REQUIREMENTS.values():
        name = requirement.pin.split("==")[0].lower().replace("_", "-")
        assert lines.get(name) == requirement.pin, (requirement.pin, lines.get(name))


def test_services_without_a_package_turn_the_page_off_and_say_why(tmp_path, monkeypatch):
    """from_settings logs one line, never touches torch, and the page and the API say what to install."""
    import logging

    from tracker.errors import PackageUnavailable
    from tracker.settings import Settings
    from ui import services as services_module
    from ui.api import PublicAPI
    from ui.handlers import Handlers
    from ui.state import SessionStore

    problem = PackageProblem("sam2", True, "No module named 'sam2'", fix_for(REQUIREMENTS["sam2"]))
    monkeypatch.setattr("tracker.packages.check_packages", lambda sam1=False: [problem])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger(services_module.__name__).addHandler(handler)
    try:
        services = services_module.Services.from_settings(Settings(random_weights=True), tmp_path / "s")
    finally:
        logging.getLogger(services_module.__name__).removeHandler(handler)
    assert not services.ready and services.missing_packages == [problem]
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert errors == [str(problem)]
    ids = {c["props"].get("elem_id"): c for c in build_demo(services).config["components"]}
    banner = ids["missing-packages-banner"]["props"]["value"]
    assert "<b>sam2</b> is not installed" in banner and "--no-build-isolation sam2==1.1.0</code>" in banner
    assert ids["find-btn"]["props"]["interactive"] is False
    assert ids["track-btn"]["props"]["interactive"] is False
    api = PublicAPI(Handlers(services, SessionStore(tmp_path / "s")))
    with pytest.raises(Exception, match="sam2 is not installed"):
        api.track_video("clip.mp4", "a disc")
    with pytest.raises(PackageUnavailable):
        services.open_workspace(Path("clip.mp4"), services.settings, tmp_path)


def test_a_complete_install_has_no_package_banner(tmp_path):
    ids = {c["props"].get("elem_id") for c in build_demo(standin_services(tmp_path)).config["components"]}
    assert "missing-packages-banner" not in ids


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BLOCKED_START = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "sam2":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
sys.argv = ["app.py"] + sys.argv[1:]
import runpy
runpy.run_path("app.py", run_name="__main__")
"""


def test_app_started_without_sam2_logs_one_line_and_shows_the_banner(tmp_path):
    """``python app.py --random-weights`` with sam2 import-blocked, as a Space built without it."""
    port = _free_port()
    env = {**os.environ, "TRACKER_TEMP": str(tmp_path / "t"), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("SPACE_ID", None)
    log = tmp_path / "app.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", BLOCKED_START, "--random-weights", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            config = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=5).json()
                    break
                except (httpx.HTTPError, ValueError):
                    time.sleep(1)
            assert config is not None, log.read_text()
        finally:
            process.terminate()
            process.wait(30)
    ids = {c["props"].get("elem_id"): c for c in config["components"] if c.get("props")}
    banner = ids["missing-packages-banner"]["props"]["value"]
    assert "<b>sam2</b> is not installed" in banner and "sam2==1.1.0" in banner
    assert ids["find-btn"]["props"]["interactive"] is False
    lines = [line for line in log.read_text().splitlines() if "sam2" in line and line.startswith("ERROR")]
    assert len(lines) == 1, log.read_text()
    assert "sam2 is not installed (No module named 'sam2')" in lines[0]
    assert "SAM2_BUILD_CUDA=0" in lines[0] and "--no-build-isolation sam2==1.1.0" in lines[0]
    assert "Traceback" not in log.read_text()
