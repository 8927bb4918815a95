"""`./dev` works whichever Python the machine finds first: with pyenv's oldest Python first, `python3` is
3.9, and the set-up takes a Python 3.11 or newer instead of stopping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO
from shell_docs import pyenv_orders


@pytest.fixture
def oldest_first() -> dict[str, str]:
    """This shell's environment with pyenv's Pythons oldest first, and not the test environment's bin."""
    if not pyenv_orders():
        pytest.skip("needs pyenv with several Pythons")
    path = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != Path(sys.executable).parent]
    env = {**os.environ, "PYENV_VERSION": pyenv_orders()["oldest-first"], "PATH": os.pathsep.join(path)}
    env.pop("PYTHON", None)
    older = subprocess.run(
        ["python3", "-c", "import sys; print(sys.version_info < (3, 11))"], env=env, capture_output=True, text=True
    )
    if older.stdout.strip() != "True":
        pytest.skip("python3 is 3.11 or newer here whatever the order")
    return env


def test_dev_finds_a_python_of_311_or_newer_when_python3_is_older(oldest_first: dict[str, str]):
    found = subprocess.run(
        ["bash", "-c", "source ./dev && find_python"], cwd=REPO, env=oldest_first, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    version = subprocess.run(
        [found.stdout.strip(), "-c", "import sys; print(sys.version_info >= (3, 11))"],
        env=oldest_first,
        capture_output=True,
        text=True,
    )
    assert version.stdout.strip() == "True", found.stdout


def test_dev_test_runs_with_the_oldest_python_first(oldest_first: dict[str, str]):
    done = subprocess.run(
        [str(REPO / "dev"), "test", "--fast", "--collect-only", "-q", "tests/test_cli_help.py"],
        cwd=REPO,
        env=oldest_first,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr + done.stdout
