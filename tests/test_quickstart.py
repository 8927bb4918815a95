"""The README's quick start, executed as written from an empty folder, ends with the handler's answer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def quick_start() -> tuple[str, str]:
    """The shell blocks of the README's "Quick start" section, and the answer it says the last one prints."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    answer = re.search(r"The last line prints `(.+?)`\.", section)
    assert blocks and answer, "the README's quick start has no shell blocks or no stated answer"
    return "\n".join(blocks), answer.group(1)


def test_the_readme_quick_start_runs_as_written(tmp_path: Path, cache_dir: Path):
    """`uv init` to `cdk-uv invoke`: every command of the README, in a bash that stops at the first failure.

    cdk-uv-aspect is not on PyPI yet: `uv add ... cdk-uv-aspect` finds this checkout's wheel through
    UV_FIND_LINKS, everything else comes from the index as for any user. `cdk` is the CLI the project
    installs with npm.
    """
    script, answer = quick_start()
    wheels = tmp_path / "wheels"
    subprocess.run(
        [str(Path(sys.executable).parent / "uv"), "build", "--wheel", "--quiet", "--out-dir", str(wheels), str(REPO)],
        check=True,
    )
    project = tmp_path / "shop"
    project.mkdir()
    env = {
        **os.environ,
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), str(REPO / "node_modules" / ".bin"), os.environ["PATH"]]
        ),
        "UV_FIND_LINKS": str(wheels),
        "VIRTUAL_ENV": "",  # the shop's own .venv, not the one running the tests
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, f"the quick start failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip().splitlines()[-1] == answer, done.stdout
    assert "Shop/Api" in done.stdout and "report" in done.stdout  # the report's table lists both functions
    assert (project / "uv.lock").is_file() and (project / "cdk.out" / "manifest.json").is_file()
