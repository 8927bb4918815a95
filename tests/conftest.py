"""The fixtures every test may ask for: a private copy of the fixture workspace, a private build cache, fresh
process-wide state, and the check that no build is left half-written. Helpers are in helpers.py."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator import build_cache, emulator  # noqa: F401  (session fixtures of the deploy tests)
from helpers import FIXTURES, half_written
from shell_docs import installed  # noqa: F401  (the session fixture of the doc tests)

from cdk_uv_aspect import _state

# The fixture workspaces are uv projects with tests of their own: not ours to collect.
collect_ignore = ["fixtures"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A private copy of tests/fixtures/ws (packages common, api, app), locked."""
    dest = tmp_path / "ws"
    shutil.copytree(FIXTURES / "ws", dest)
    return dest


@pytest.fixture(autouse=True)
def _fresh_process_state() -> None:
    """Each test starts as a new process would: no swapped functions, no tools found, no wheels built."""
    _state.reset()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty build cache, also the default for aspects created in the test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("CDK_UV_CACHE_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _no_half_written_builds(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test, whatever it did, no build cache in its temporary folder holds a half-written build:
    no private work folder and no entry being replaced (their names start with a dot)."""
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is not None:
        left = half_written(folder)
        assert left == [], f"a build left half-written folders behind: {left}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The image tier's engine and the seconds each base image, build and run took (tests/oci.py)."""
    oci = sys.modules.get("oci")
    if oci is None or not oci.TIMINGS:
        return
    terminalreporter.write_sep("-", f"OCI images: {oci.find_engine()}")
    for line in oci.timings_summary():
        terminalreporter.write_line(line)
