"""The fixtures every test may ask for: a private copy of the fixture workspace, a private build cache, fresh
process-wide state, and the check that no build is left half-written. Helpers are in helpers.py."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator import build_cache, emulator  # noqa: F401  (session fixtures of the deploy tests)
from helpers import FIXTURES, build_of, half_written, tree_digest
from shell_docs import installed  # noqa: F401  (the session fixture of the doc tests)

from cdk_uv_aspect import _state
from cdk_uv_aspect._build import Built

# The fixture workspaces are uv projects with tests of their own: not ours to collect.
collect_ignore = ["fixtures"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A private copy of tests/fixtures/ws (packages common, api, app), locked."""
    dest = tmp_path / "ws"
    shutil.copytree(FIXTURES / "ws", dest)
    return dest


@pytest.fixture(scope="session")
def shared_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Built]]:
    """``shared_build(package, python="3.12", arch="x86_64")``: a build of tests/fixtures/ws with the default
    options, made once per session, for the tests that only read a build (a test that changes the asset or
    its cache builds its own). At the end, each shared build must be as it was made."""
    root = tmp_path_factory.mktemp("shared-builds")
    workspace = Path(shutil.copytree(FIXTURES / "ws", root / "ws"))
    made: dict[tuple[str, str, str], tuple[Built, str]] = {}

    def get(package: str, python: str = "3.12", arch: str = "x86_64") -> Built:
        if (package, python, arch) not in made:
            built = build_of(workspace, package, python=python, arch=arch, cache_dir=root / "cache")
            made[package, python, arch] = built, tree_digest(built.entry)
            _state.reset()  # as a new process would find it: the test's own builds start afresh
        return made[package, python, arch][0]

    yield get
    changed = [key for key, (built, digest) in made.items() if tree_digest(built.entry) != digest]
    assert changed == [], f"a test changed the shared builds {changed}: it must build its own"


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


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker of `./dev test` hands the image tier's lines to the main process, which prints them."""
    oci = sys.modules.get("oci")
    if hasattr(session.config, "workeroutput") and oci is not None and oci.TIMINGS:
        session.config.workeroutput["oci"] = [f"OCI images: {oci.find_engine()}", *oci.timings_summary()]


_WORKERS_OCI: list[str] = []  # the lines of the workers that ran image tests (./dev test, side by side)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's
def pytest_testnodedown(node: Any, error: object) -> None:
    _WORKERS_OCI.extend(getattr(node, "workeroutput", {}).get("oci", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The image tier's engine and the seconds each base image, build and run took (tests/oci.py)."""
    oci = sys.modules.get("oci")
    lines = [f"OCI images: {oci.find_engine()}", *oci.timings_summary()] if oci is not None and oci.TIMINGS else []
    lines = lines or _WORKERS_OCI
    if not lines:
        return
    terminalreporter.write_sep("-", lines[0])
    for line in lines[1:]:
        terminalreporter.write_line(line)
