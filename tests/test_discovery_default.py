"""Discovery is on by default where it is affordable: everywhere but random weights and ZeroGPU.

``tracker.discovery.on_by_default`` decides; ``Settings.discover`` None means "that default",
resolved by ``resolve_settings``; the CLI leaves it None unless a flag says otherwise; the web
app's switch and ``/track`` start from ``Services.discover_default``.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.standin_workspace import standin_services
from tracker.cli import _settings, build_parser
from tracker.discovery import on_by_default
from tracker.settings import Settings, resolve_settings
from ui.handlers import _with_discovery


def test_on_by_default_except_on_random_weights():
    assert on_by_default(random_weights=False) is True
    assert on_by_default(random_weights=True) is False


@pytest.mark.parametrize(
    ("given", "random_weights", "expected"),
    [(None, False, True), (None, True, False), (False, False, False), (True, True, True)],
)
def test_resolve_settings_fills_discover_only_when_unset(given, random_weights, expected):
    resolved = resolve_settings(Settings(discover=given, random_weights=random_weights, device="cpu"))
    assert resolved.discover is expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], None),
        (["--discover"], True),
        (["--no-discover"], False),
        (["--discover-every", "5"], True),
        (["--no-discover", "--discover-every", "5"], False),
    ],
)
def test_cli_leaves_the_choice_to_the_default_unless_a_flag_says(flags, expected, tmp_path):
    args = build_parser().parse_args(["track", "v.mp4", "--prompt", "dog", "--out", str(tmp_path), *flags])
    settings = _settings(args)
    assert settings.discover is expected
    resolved = resolve_settings(dataclasses.replace(settings, device="cpu"))
    assert resolved.discover is (True if expected is None else expected)
    with_random = resolve_settings(dataclasses.replace(settings, device="cpu", random_weights=True))
    assert with_random.discover is (False if expected is None else expected)


def test_the_apps_switch_starts_on_with_real_weights_and_off_elsewhere(tmp_path):
    real = standin_services(tmp_path, settings=Settings())
    assert real.discover_default is True
    assert real.settings_for("fast").discover is True
    assert standin_services(tmp_path, settings=Settings(random_weights=True)).discover_default is False
    assert standin_services(tmp_path, settings=Settings(discover=False)).discover_default is False
    zero = standin_services(tmp_path, settings=Settings(), device_label="ZeroGPU")
    assert zero.discovery_available is False and zero.discover_default is False
    assert zero.settings_for(None).discover is False


def test_track_endpoint_without_discover_takes_the_servers_choice():
    assert _with_discovery(Settings(discover=True), None, None).discover is True
    assert _with_discovery(Settings(discover=False), None, None).discover is False
    chosen = _with_discovery(Settings(discover=False), True, 7)
    assert (chosen.discover, chosen.discover_every) == (True, 7)
    assert _with_discovery(Settings(discover=True), False, None).discover is False


def test_the_page_shows_the_switch_in_its_default_position(tmp_path):
    pytest.importorskip("gradio")
    from ui.app import build_demo

    def switch_of(services):
        demo = build_demo(services)
        (box,) = [c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "discover"]
        return box.value, box.interactive

    assert switch_of(standin_services(tmp_path / "a", settings=Settings())) == (True, True)
    assert switch_of(standin_services(tmp_path / "b", settings=Settings(random_weights=True)))[0] is False
    assert switch_of(standin_services(tmp_path / "c", settings=Settings(), device_label="ZeroGPU")) == (
        False,
        False,
    )


def test_the_pipeline_skips_discovery_when_there_is_no_prompt_to_look_for():
    """A project made by clicks alone has no prompt: with discovery on by default it still tracks."""
    from types import SimpleNamespace

    from tracker.pipeline import _discovery_config

    on = Settings(discover=True, discover_every=7)
    config = _discovery_config(SimpleNamespace(settings=on, prompt_text="dog"), 3)
    assert (config.every, config.max_objects) == (7, 3)
    assert _discovery_config(SimpleNamespace(settings=on, prompt_text=""), 3) is None
    off = Settings(discover=False)
    assert _discovery_config(SimpleNamespace(settings=off, prompt_text="dog"), 3) is None
