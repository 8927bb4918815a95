"""The README's quick start, executed as written from an empty folder, ends with the handler's answer,
whichever Python the machine finds first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from shell_docs import order_params, run_script, shell_blocks, with_order

pytestmark = pytest.mark.slow

UV = str(Path(sys.executable).parent / "uv")


def quick_start() -> tuple[str, str]:
    """The shell blocks of the README's "Quick start" section, and the answer it says the last one prints."""
    blocks = shell_blocks("README.md").get("Quick start")
    section = (REPO / "README.md").read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    answer = re.search(r"The last line prints `(.+?)`\.", section)
    assert blocks and answer, "the README's quick start has no shell blocks or no stated answer"
    return "\n".join(blocks), answer.group(1)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's wheel, built once for every order."""
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run([UV, "build", "--wheel", "--quiet", "--out-dir", str(out), str(REPO)], check=True)
    return out


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build cache for both orders: the second synth's builds come from it (the order does not decide
    a build, the function's runtime does)."""
    return tmp_path_factory.mktemp("build-cache")


@pytest.mark.parametrize("order", order_params())
def test_the_readme_quick_start_runs_as_written(tmp_path: Path, wheels: Path, shared_cache: Path, order: str):
    """`uv init` to `cdk-uv invoke`: every command of the README, in a bash that stops at the first failure,
    with the machine's Pythons found newest first and oldest first (uv picks the first that fits).

    cdk-uv-aspect is not on PyPI yet: `uv add ... cdk-uv-aspect` finds this checkout's wheel through
    UV_FIND_LINKS, everything else comes from the index as for any user. `cdk` is the CLI the project
    installs with npm.
    """
    script, answer = quick_start()
    project = tmp_path / "shop"
    project.mkdir()
    env = {
        **os.environ,
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), str(REPO / "node_modules" / ".bin"), os.environ["PATH"]]
        ),
        "UV_FIND_LINKS": str(wheels),
        "VIRTUAL_ENV": "",  # the shop's own .venv, not the one running the tests
        "CDK_UV_CACHE_DIR": str(shared_cache),
    }
    done = run_script(script, project, with_order(env, order))
    assert done.returncode == 0, f"the quick start failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip().splitlines()[-1] == answer, done.stdout
    assert "Shop/Api" in done.stdout and "report" in done.stdout  # the report's table lists both functions
    assert (project / "uv.lock").is_file() and (project / "cdk.out" / "manifest.json").is_file()
