"""Builds at once: as many as there are cores, and the line each says when it ends arrives whole."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from helpers import add_function, synth_app

from cdk_uv_aspect._runner import cores
from cdk_uv_aspect._uv import Uv


def many_packages_workspace(root: Path, count: int, backend: str = "hatchling") -> Path:
    """A workspace whose package `fn` depends on `count` local libraries (p0, p1...), locked; their
    build backend is hatchling, or setuptools (built by one `uv build` each, not in one backend process)."""
    system = {
        "hatchling": 'requires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
        "setuptools": 'requires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n',
    }[backend]
    members = [f"p{i}" for i in range(count)]
    (root / "packages").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    for name, deps in [*((m, []) for m in members), ("fn", members)]:
        folder = root / "packages" / name
        (folder / "src" / name).mkdir(parents=True)
        handler = "\n\ndef main(event, context):\n    return NAME\n"  # the handler the function names
        (folder / "src" / name / "__init__.py").write_text(f"NAME = {name!r}\n{handler}")
        sources = "".join(f"{d} = {{ workspace = true }}\n" for d in deps)
        (folder / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            f"dependencies = {deps!r}\n"
            f"[tool.uv.sources]\n{sources}"
            f"[build-system]\n{system}"
        )
    subprocess.run([Uv.locate(None).path, "lock", "--quiet"], cwd=root, check=True)
    return root


def uv_builds_running(token: str) -> int:
    """How many `uv build` processes carrying ``token`` in their environment run now. A child of one with
    the same command line is uv forking before it starts the build backend: the same build, not counted."""
    found: dict[str, str] = {}  # pid -> parent pid
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ours = len(argv) > 1 and argv[0].endswith(b"uv") and argv[1] == b"build"
            if ours and token.encode() in (entry / "environ").read_bytes():
                found[entry.name] = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
    return sum(parent not in found for parent in found.values())


@pytest.mark.slow
def test_a_closure_of_many_local_packages_builds_as_many_at_once_as_there_are_cores(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """8 local packages in one closure, of a backend built by one `uv build` each (setuptools): every wheel
    is built, never more `uv build` processes at once than cores (the README's promise), and more than one
    when there are cores for it."""
    workspace = many_packages_workspace(tmp_path / "ws", 8, backend="setuptools")
    token = f"CDK_UV_TEST_{uuid.uuid4().hex}"
    monkeypatch.setenv(token, "1")
    peak, done = 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, uv_builds_running(token))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        synth_app(workspace, lambda s: add_function(s, "Fn", "fn", handler="fn.main"), bytecode=False)
    finally:
        done.set()
        watcher.join()
    wheels = sorted(p.name.split("-")[0] for p in (cache_dir / "wheels").iterdir())
    assert wheels == sorted(["fn", *(f"p{i}" for i in range(8))])
    assert 1 <= peak <= cores(), f"{peak} uv build processes at once on {cores()} cores"
    if cores() >= 2:
        assert peak >= 2, "the local packages were built one after the other"


def test_progress_lines_of_builds_ending_together_never_share_a_line(monkeypatch: pytest.MonkeyPatch):
    """Builds run in threads and each says one line when it ends: every line arrives whole, even on a stream
    that takes a write in pieces and lets other threads run between them (a pipe whose buffer is full)."""
    from cdk_uv_aspect._builds import say

    class SlowStream:
        """Writes one character at a time, letting other threads run after each."""

        def __init__(self) -> None:
            self.written: list[str] = []

        def write(self, text: str) -> int:
            for char in text:
                self.written.append(char)
                time.sleep(0.0001)
            return len(text)

        def flush(self) -> None:
            pass

    stream = SlowStream()
    monkeypatch.setattr(sys, "stderr", stream)
    threads = [threading.Thread(target=lambda i=i: [say(f"build {i}.{n}") for n in range(10)]) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = "".join(stream.written).splitlines()
    assert sorted(lines) == sorted(f"build {i}.{n}" for i in range(4) for n in range(10))
