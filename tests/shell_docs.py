"""The shell blocks of the user docs, read from the files (never a second copy), and the orders of Pythons
they are run with: a user's machine may find any of its Pythons first."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from conftest import REPO


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
