"""The README's install and quick start, executed as written from an empty folder, end with the handler's
answer, whichever Python the machine finds first; the README's app stops at a stale or missing uv.lock."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from helpers import REPO
from shell_docs import order_params, run_script, shell_blocks, with_order

pytestmark = pytest.mark.slow


def quick_start() -> tuple[str, str]:
    """The shell blocks of the README's "Quick start" section, and the answer it says the last one prints."""
    blocks = shell_blocks("README.md").get("Quick start")
    section = (REPO / "README.md").read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    answer = re.search(r"The last line prints `(.+?)`\.", section)
    assert blocks and answer, "the README's quick start has no shell blocks or no stated answer"
    return "\n".join(blocks), answer.group(1)


class Started(NamedTuple):
    project: Path
    env: dict[str, str]
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def quick_started(installed: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Started]:
    """The quick start run in an empty folder with the machine's Pythons in ``order``, once per order.

    One build cache for every order: the later synths' builds come from it (a function's runtime decides
    its build, not the order uv finds Pythons in; uv init, uv add and uv run are what the order changes).
    """
    cache = tmp_path_factory.mktemp("build-cache")
    started: dict[str, Started] = {}

    def start(order: str) -> Started:
        if order not in started:
            project = tmp_path_factory.mktemp(f"shop-{order}")
            env = with_order({**installed, "CDK_UV_CACHE_DIR": str(cache)}, order)
            started[order] = Started(project, env, run_script(quick_start()[0], project, env))
        return started[order]

    return start


@pytest.mark.parametrize("order", order_params())
def test_the_readme_quick_start_runs_as_written(quick_started: Callable[[str], Started], order: str):
    """`uv init` to `cdk-uv invoke`: every command of the README, in a bash that stops at the first failure,
    with uv from the README's install line (no other uv on PATH) and the machine's Pythons found newest
    first and oldest first (uv takes the first that fits). `cdk` is the CLI the project installs with npm."""
    project, _, done = quick_started(order)
    assert done.returncode == 0, f"the quick start failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip().splitlines()[-1] == quick_start()[1], done.stdout
    assert "Shop/Api" in done.stdout and "report" in done.stdout  # the report's table lists both functions
    assert (project / "uv.lock").is_file() and (project / "cdk.out" / "manifest.json").is_file()


def test_the_readme_app_stops_at_a_stale_or_missing_lock(quick_started: Callable[[str], Started]):
    """With the README's cdk.json, `cdk synth` of a dependency added without `uv lock`, and with uv.lock
    deleted, fails with the aspect's message, and uv.lock stays as it was: nothing re-locks before the app."""
    project, env, done = quick_started(order_params()[0])
    assert done.returncode == 0, f"the quick start failed:\n{done.stdout}\n{done.stderr}"
    lock = (project / "uv.lock").read_bytes()
    pyproject = (project / "packages" / "api" / "pyproject.toml").read_bytes()
    added = subprocess.run(
        ["uv", "add", "--frozen", "--package", "api", "iniconfig"], cwd=project, env=env, capture_output=True, text=True
    )
    assert added.returncode == 0, added.stderr
    stale = subprocess.run(["cdk", "synth", "--quiet"], cwd=project, env=env, capture_output=True, text=True)
    assert stale.returncode != 0
    assert stale.stderr.count("uv.lock is out of date with the workspace's pyproject.toml files") == 1, stale.stderr
    assert (project / "uv.lock").read_bytes() == lock

    (project / "packages" / "api" / "pyproject.toml").write_bytes(pyproject)
    (project / "uv.lock").unlink()
    missing = subprocess.run(["cdk", "synth", "--quiet"], cwd=project, env=env, capture_output=True, text=True)
    assert missing.returncode != 0
    assert f"{project} has a pyproject.toml but no uv.lock" in missing.stderr, missing.stderr
    assert not (project / "uv.lock").exists()
