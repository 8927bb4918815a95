"""Offline use: with uv's cache warm a synth works without a network; a cold one says what needed it."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import add_function, assert_api_asset, function_codes, staged_asset, synth_app

pytestmark = [pytest.mark.slow, pytest.mark.oldest_uv]


def test_unchanged_app_synthesizes_offline(workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch):
    """Once built, a synth needs neither the network nor uv's cache: the same asset, offline."""
    _, online = synth_app(workspace, lambda s: add_function(s, "Api", "api"))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-uv-cache"))
    _, offline = synth_app(workspace, lambda s: add_function(s, "Api", "api"))
    assert function_codes(offline) == function_codes(online)


def test_cold_build_offline_with_a_warm_uv_cache(workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch):
    """No build cache, no network, but uv has the wheels and the build backend: the build succeeds."""
    synth_app(workspace, lambda s: add_function(s, "Api", "api"), cache_dir=tmp_path / "warm-up")
    monkeypatch.setenv("UV_OFFLINE", "1")
    app, stack = synth_app(workspace, lambda s: add_function(s, "Api", "api"))
    assert (cache_dir / "builds").is_dir()
    assert_api_asset(staged_asset(app.outdir, next(iter(function_codes(stack).values()))))


def test_cold_build_offline_says_the_network_was_needed(workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch):
    """Nothing cached anywhere and no network: the error says what needed the network and how to go on."""
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-uv-cache"))
    with pytest.raises(RuntimeError) as error:
        synth_app(workspace, lambda s: add_function(s, "Api", "api"))
    message = str(error.value)
    for part in (
        "Stack/Api",
        "package:   api",
        "uv needed the network to",
        "orjson",
        "run the synth once with network",
    ):
        assert part in message, message
