"""The shell blocks of the user docs, read from the files (never a second copy), and the orders of Pythons
they are run with: a user's machine may find any of its Pythons first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from helpers import once_per_run

REPO = Path(__file__).parent.parent


def shell_blocks(doc: str) -> dict[str, list[str]]:
    """Each ``sh`` block of ``doc`` (a path relative to the repository), by the heading it is under."""
    found: dict[str, list[str]] = {}
    heading, fence, block = "", "", list[str]()
    for line in (REPO / doc).read_text().splitlines(keepends=True):
        if fence and line.rstrip() == "```":
            if fence == "sh":
                found.setdefault(heading, []).append("".join(block))
            fence, block = "", []
        elif fence:
            block.append(line)
        elif line.startswith("```"):
            fence = line.strip().removeprefix("```") or "text"
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return found


@cache
def pyenv_orders() -> dict[str, str]:
    """``PYENV_VERSION`` with pyenv's CPythons 3.9 and newer (the newest of each), newest first and oldest
    first; empty without pyenv, where the order is what the machine has."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return {}
    listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True).stdout.split()
    newest: dict[tuple[int, int], tuple[int, int, int]] = {}
    for name in listed:
        if match := re.fullmatch(r"3\.(\d+)\.(\d+)", name):
            minor, patch = int(match.group(1)), int(match.group(2))
            if minor >= 9:
                newest[(3, minor)] = max(newest.get((3, minor), (0, 0, 0)), (3, minor, patch))
    versions = [".".join(map(str, v)) for _, v in sorted(newest.items())]
    if len(versions) < 2:
        return {}
    return {"newest-first": ":".join(reversed(versions)), "oldest-first": ":".join(versions)}


def order_params() -> list[str]:
    """The orders a doc test runs in: both where pyenv has several Pythons, else the machine's own."""
    return list(pyenv_orders()) or ["as-found"]


def with_order(env: dict[str, str], order: str) -> dict[str, str]:
    if order in pyenv_orders():
        return {**env, "PYENV_VERSION": pyenv_orders()[order]}
    return env


def run_script(script: str, cwd: Path, env: dict[str, str], timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """``script`` in a bash that stops at its first failing command."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def copy_checkout(dest: Path) -> Path:
    """A copy of this checkout's files as they are now (tracked or new, not ignored): what a clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    for rel in filter(None, listed.stdout.decode().split("\0")):
        if (REPO / rel).is_file():  # a file deleted in the work tree is still listed
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment a user has after the README's "Install" blocks, run as written: uv from pipx (first
    on PATH), and this checkout's wheel built in a copy of it and found through UV_FIND_LINKS and
    PIP_FIND_LINKS (until the first release is on PyPI). Run once for every doc test (of every worker)."""
    return once_per_run(tmp_path_factory, "user", install_as_the_readme_says)


def install_as_the_readme_says(root: Path) -> dict[str, str]:
    checkout = copy_checkout(root / "cdk-uv-aspect")
    tools = root / "tools"  # pipx, without the test environment's uv beside it
    tools.mkdir()
    (tools / "pipx").symlink_to(Path(sys.executable).with_name("pipx"))
    # The README's uv first on PATH; the test environment's own (beside this Python) not at all.
    path = [str(root / "bin"), str(tools), str(REPO / "node_modules" / ".bin")]
    path += [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != Path(sys.executable).parent]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(PATH=os.pathsep.join(path), PIPX_HOME=str(root / "pipx"), PIPX_BIN_DIR=str(root / "bin"))
    # A doc command that fails to find its environment's pip must not install into a pyenv or OS Python.
    env["PIP_REQUIRE_VIRTUALENV"] = "1"
    blocks = shell_blocks("README.md").get("Install")
    assert blocks, "the README's Install section has no shell block"
    saved = root / "env"
    done = run_script("\n".join(blocks) + f'\nenv -0 > "{saved}"\n', checkout, env)
    assert done.returncode == 0, f"the README's install failed:\n{done.stdout}\n{done.stderr}"
    after = dict(line.split("=", 1) for line in saved.read_text().split("\0") if "=" in line)
    for name in ("PWD", "OLDPWD", "SHLVL", "_"):  # the shell's own, not the user's settings
        after.pop(name, None)
    assert shutil.which("uv", path=after["PATH"]) == str(root / "bin" / "uv")  # pipx's, nothing else
    return after
