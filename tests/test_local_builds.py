"""The workspace's own packages, built without a fresh build environment each (real uv, real backends).

Packages that declare one build system share one environment prepared for it in a synth, and where the
backend allows, one process of it; uv_build packages are built by uv itself; a package that brings build
code of its own, or needs more than its declared build system, is built on its own, as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, build_of, call_handler, tree_digest

from cdk_uv_aspect import _state, _wheels
from cdk_uv_aspect._build import build, candidates
from cdk_uv_aspect._builds import build_all
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._runner import Result, Runner
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import Uv
from cdk_uv_aspect._workspace import Workspace

pytestmark = pytest.mark.slow

sys.path.insert(0, str(REPO / "bench"))
from workspace import generate  # noqa: E402


class Recording(Runner):
    """The real runner, keeping every command line."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def run(self, args: Any, **kwargs: Any) -> Result:
        self.calls.append([str(a) for a in args])
        return super().run(args, **kwargs)

    def uv(self, *words: str) -> list[list[str]]:
        return [c for c in self.calls if Path(c[0]).name == "uv" and c[1 : 1 + len(words)] == list(words)]

    def batches(self) -> list[list[str]]:
        """The backend processes that built several packages' wheels (``_wheels.BATCH``)."""
        return [c for c in self.calls if _wheels.BATCH in c]


def test_packages_of_one_build_system_are_built_in_one_backend_process(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """fn00, fn01 and `common` all declare hatchling: one environment is made for them, and one hatchling
    process builds the three wheels; the assets are the ones that isolated `uv build`s give."""
    workspace = generate(tmp_path / "ws", 2, Uv.locate(None).path)
    requests = [
        BuildRequest.create(Workspace.find(workspace), p, Target("3.12", "x86_64"), UvOptions())
        for p in ("fn00", "fn01")
    ]
    runner = Recording()
    with _wheels.shared_environments([c for r in requests for c in candidates(r)]):
        shared = [build(r, runner) for r in requests]

    assert len(runner.uv("venv")) == 1
    assert len(runner.batches()) == 1 and runner.uv("build") == []
    for built, package in zip(shared, ("fn00", "fn01"), strict=True):
        answer = call_handler(built.asset_dir, f"{package}.handler.main", "3.12", {"name": "env"})
        assert answer.result == {"package": package, "message": "hello env"}

    _state.reset()
    monkeypatch.setattr(_wheels, "prepared_environment", lambda *args: None)
    runner = Recording()
    options = UvOptions(cache_dir=tmp_path / "other")
    isolated = [build(BuildRequest.create(r.workspace, r.package, r.target, options), runner) for r in requests]
    assert len(runner.uv("build")) == 3 and not any("--no-build-isolation" in c for c in runner.uv("build"))
    for one, other in zip(shared, isolated, strict=True):
        assert tree_digest(one.asset_dir) == tree_digest(other.asset_dir)


def test_work_folders_a_killed_synth_left_are_removed_when_the_next_synths_builds_end(tmp_path: Path, cache_dir: Path):
    """A synth killed while building leaves its work folders (a build environment, a batch of wheels, a
    build), too young to be taken for abandoned when the next synth begins right after the kill: that
    synth removes them when its builds end, and leaves nothing half-written behind."""
    workspace = generate(tmp_path / "ws", 1, Uv.locate(None).path)
    left = []
    for kind, name in (("wheels", "build-env"), ("wheels", "batch"), ("builds", "fn00-python3.12-x86_64")):
        folder = cache_dir / kind / f".{name}-0123456789abcdef0123456789abcdef.killed00"
        (folder / "asset").mkdir(parents=True)
        folder.chmod(0o700)
        (cache_dir / kind).chmod(0o700)
        left.append(folder)
    for folder in left:  # killed 1.5 s ago: not yet settled when the builds begin (2 s), settled when they end
        os.utime(folder, (time.time() - 1.5, time.time() - 1.5))
    request = BuildRequest.create(Workspace.find(workspace), "fn00", Target("3.12", "x86_64"), UvOptions())
    results = build_all({request: ["Stack/Fn"]}, Recording())
    assert not isinstance(results[request], Exception), results[request]
    assert [folder for folder in left if folder.exists()] == []


def test_a_setuptools_package_is_built_in_the_prepared_environment(tmp_path: Path, cache_dir: Path):
    """A backend that is not called for many packages in one process (setuptools) still gets the
    prepared environment: `uv build --no-build-isolation` in it."""
    workspace = generate(tmp_path / "ws", 1, Uv.locate(None).path)
    for name in ("common", "fn00"):
        pyproject = workspace / "packages" / name / "pyproject.toml"
        text = pyproject.read_text().replace('requires = ["hatchling"]', 'requires = ["setuptools>=61"]')
        pyproject.write_text(text.replace('"hatchling.build"', '"setuptools.build_meta"'))
    runner = Recording()
    built = build_of(workspace, "fn00", runner)

    assert len(runner.uv("venv")) == 1 and runner.batches() == []
    builds = runner.uv("build")
    assert len(builds) == 2 and all("--no-build-isolation" in c for c in builds)
    answer = call_handler(built.asset_dir, "fn00.handler.main", "3.12", {"name": "st"})
    assert answer.result == {"package": "fn00", "message": "hello st"}


UV_BUILD = """[project]
name = "native"
version = "0.1.0"
requires-python = ">=3.11"

[build-system]
requires = ["uv_build>={low},<{high}"]
build-backend = "uv_build"
"""


def test_uv_build_packages_are_built_by_uv_itself(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A package whose backend is uv_build builds offline with an empty uv cache: uv builds it itself,
    with no build environment to make."""
    uv = Uv.locate(None)
    major, minor, _ = (int(x) for x in uv.version.split("."))
    root = tmp_path / "ws"
    package = root / "native"
    (package / "src" / "native").mkdir(parents=True)
    (package / "pyproject.toml").write_text(UV_BUILD.format(low=uv.version, high=f"{major}.{minor + 1}"))
    (package / "src" / "native" / "__init__.py").write_text("def main(event, context):\n    return 'native'\n")
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["native"]\n')
    subprocess.run([uv.path, "lock", "--quiet", "--offline"], cwd=root, check=True)
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-uv-cache"))

    runner = Recording()
    built = build_of(root, "native", runner)

    assert runner.uv("venv") == []
    assert [c for c in runner.uv("build") if "--no-build-isolation" in c] == []
    assert call_handler(built.asset_dir, "native.main", "3.12").result == "native"


HOOK = """from hatchling.builders.hooks.plugin.interface import BuildHookInterface
import iniconfig  # only installed when hatchling asks for the hook's dependencies


class CustomBuildHook(BuildHookInterface):
    pass
"""


def test_a_package_with_build_code_of_its_own_is_built_on_its_own(tmp_path: Path, cache_dir: Path):
    """`common` declares a build hook whose dependency hatchling asks for at build time: it is not built
    in the shared backend process, the prepared environment lacks the dependency, so it is built in
    isolation, as before; fn00 is built in the shared process. The build succeeds."""
    workspace = generate(tmp_path / "ws", 1, Uv.locate(None).path)
    common = workspace / "packages" / "common"
    (common / "hatch_build.py").write_text(HOOK)
    with open(common / "pyproject.toml", "a") as f:
        f.write('\n[tool.hatch.build.targets.wheel.hooks.custom]\ndependencies = ["iniconfig"]\n')
    runner = Recording()
    built = build_of(workspace, "fn00", runner)

    assert len(runner.batches()) == 1
    builds = runner.uv("build")
    assert len(builds) == 2 and "--no-build-isolation" in builds[0], builds  # common: shared env, then alone
    assert "--no-build-isolation" not in builds[1]
    answer = call_handler(built.asset_dir, "fn00.handler.main", "3.12", {"name": "hook"})
    assert answer.result == {"package": "fn00", "message": "hello hook"}
