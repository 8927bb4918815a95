"""The store: third-party distributions installed and compiled once per target, builds assembled from it.

Real builds with real uv: the assembled folders are the same bytes as installing everything into one
folder, a damaged entry is installed again, packages sharing a distribution install and compile it once,
an edit ships every time, and a lock bump installs only what changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Aspects, Stack
from fakes import ScriptedRunner, uv_command
from helpers import REPO, add_function, build_of, call_handler, function_codes, staged_asset, tree_digest

from cdk_uv_aspect import UvBundlingAspect, _state, _store
from cdk_uv_aspect._build import build
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._prune import prune
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._runner import Result, Runner
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import COMPILE, Uv
from cdk_uv_aspect._workspace import Workspace

pytestmark = pytest.mark.slow

sys.path.insert(0, str(REPO / "bench"))
from workspace import edit, generate  # noqa: E402  (the benchmark's workspace: K packages sharing orjson)


class Watching(Runner):
    """The real runner, noting for each locked install the distributions it installed, and for each
    bytecode compile the top-level folders it compiled."""

    def __init__(self) -> None:
        super().__init__()
        self.installed: list[set[str]] = []
        self.compiled: list[set[str]] = []

    def run(self, args: Any, **kwargs: Any) -> Result:
        call = [str(a) for a in args]
        if COMPILE in call:
            site = Path(call[call.index(COMPILE) + 1])
            self.compiled.append({p.name for p in site.iterdir() if p.is_dir()})
        if call[1:3] == ["pip", "install"] and "-r" in call:
            text = Path(call[call.index("-r") + 1]).read_text()
            self.installed.append({line.split("==")[0] for line in text.splitlines() if "==" in line})
        return super().run(call, **kwargs)

    def installs_of(self, name: str) -> int:
        return sum(name in names for names in self.installed)

    def compiles_of(self, name: str) -> int:
        return sum(name in folders for folders in self.compiled)


def _the_old_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds as before the store: every requirement installed into the build's own folder."""

    def refuse(registry: str) -> list[_store.Locked]:
        raise _store.Refused("the test builds without the store")

    monkeypatch.setattr(_store.Locked, "parse", staticmethod(refuse))


@pytest.mark.parametrize(
    ("package", "python", "arch", "options"),
    [
        ("api", "3.12", "x86_64", {}),
        ("api", "3.11", "arm64", {}),
        ("app", "3.12", "x86_64", {}),
        ("api", "3.12", "x86_64", {"exclude": ("orjson/*.pyi", "common/*")}),
        ("api", "3.12", "x86_64", {"bytecode": False}),
    ],
)
def test_assets_are_byte_identical_to_installing_into_one_folder(
    shared_build, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package, python, arch, options
):
    """Assembled from the store, a build has the files, bytes and modes of the same build installed whole."""
    if options:
        stored = build_of(workspace, package, python=python, arch=arch, cache_dir=tmp_path / "c1", **options)
    else:  # the session's build of the same
        stored = shared_build(package, python=python, arch=arch)
    if package == "api":  # orjson (app has no third-party dependency)
        assert any((stored.entry.parent.parent / "store").iterdir()), "the build did not use the store"
    _state.reset()
    with monkeypatch.context() as patched:
        _the_old_way(patched)
        whole = build_of(workspace, package, python=python, arch=arch, cache_dir=tmp_path / "c2", **options)
    assert not (tmp_path / "c2" / "store").exists()
    assert tree_digest(stored.asset_dir) == tree_digest(whole.asset_dir)
    assert stored.sbom.read_bytes() == whole.sbom.read_bytes()


def test_a_damaged_store_entry_is_installed_again_never_used(workspace: Path, cache_dir: Path):
    """A store file truncated after it was published: the next build installs that distribution again,
    and ships what an intact store gives."""
    first = build_of(workspace, "api")
    digest = tree_digest(first.asset_dir)
    [entry] = (cache_dir / "store").glob("orjson-*")
    damaged = next((entry / "asset" / "orjson").glob("*.so"))
    size = damaged.stat().st_size
    with open(damaged, "r+b") as f:
        f.truncate(size // 2)
    # A new synth, with the build to do again (the damaged store entry is not in the build's key).
    _state.reset()
    shutil.rmtree(first.entry)

    runner = Watching()
    request = BuildRequest.create(Workspace.find(workspace), "api", Target("3.12", "x86_64"), UvOptions())
    again = build(request, runner)

    assert runner.installs_of("orjson") == 1
    assert damaged.stat().st_size == size
    assert tree_digest(again.asset_dir) == digest
    assert call_handler(again.asset_dir, "api.handler.main", "3.12", {"name": "x"}).ok


def test_a_store_entry_that_is_a_link_is_installed_again_not_followed(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A store entry replaced by a link to a copy elsewhere (that could hold anything, with a manifest to
    match) is checked as a build entry is: not used, installed again as a real folder, the copy untouched."""
    first = build_of(workspace, "api")
    digest = tree_digest(first.asset_dir)
    [entry] = (cache_dir / "store").glob("orjson-*")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(entry, elsewhere, symlinks=True)
    copied = tree_digest(elsewhere)
    shutil.rmtree(entry)
    entry.symlink_to(elsewhere)
    _state.reset()
    shutil.rmtree(first.entry)

    runner = Watching()
    request = BuildRequest.create(Workspace.find(workspace), "api", Target("3.12", "x86_64"), UvOptions())
    again = build(request, runner)

    assert runner.installs_of("orjson") == 1
    assert entry.is_dir() and not entry.is_symlink()
    assert tree_digest(elsewhere) == copied  # what the link led to is left alone
    assert tree_digest(again.asset_dir) == digest


@pytest.fixture
def bench_workspace(tmp_path: Path) -> Path:
    """The benchmark's workspace of 2 packages: fn00 (orjson, pydantic) and fn01 (orjson), over `common`."""
    return generate(tmp_path / "bench-ws", 2, Uv.locate(None).path)


def _synth(workspace: Path, runner: Runner, outdir: Path, functions: list[tuple[str, str]]) -> dict[str, Path]:
    """Synthesize one function per (package, Python), return each one's staged asset by its id."""
    app = App(outdir=str(outdir))
    stack = Stack(app, "Stack")
    for package, python in functions:
        runtime = {"3.11": "PYTHON_3_11", "3.12": "PYTHON_3_12"}[python]
        from aws_cdk import aws_lambda as lambda_

        add_function(
            stack,
            f"{package}py{python.replace('.', '')}",
            package,
            handler=f"{package}.handler.main",
            runtime=getattr(lambda_.Runtime, runtime),
        )
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace, runner=runner))
    app.synth()
    return {lid[:-8]: staged_asset(outdir, code) for lid, code in function_codes(stack).items()}


def test_packages_sharing_a_distribution_install_and_compile_it_once(
    bench_workspace: Path, cache_dir: Path, tmp_path: Path
):
    """Two packages that both lock orjson, built in one synth: orjson is installed once and compiled once;
    both assets have it, with its bytecode, and answer."""
    runner = Watching()
    assets = _synth(bench_workspace, runner, tmp_path / "out", [("fn00", "3.12"), ("fn01", "3.12")])

    assert runner.installs_of("orjson") == 1
    assert runner.compiles_of("orjson") == 1
    assert runner.installs_of("pydantic") == 1  # fn00's only
    for package in ("fn00", "fn01"):
        asset = assets[f"{package}py312"]
        assert list((asset / "orjson" / "__pycache__").glob("*.cpython-312.pyc"))
        answer = call_handler(asset, f"{package}.handler.main", "3.12", {"name": "store"})
        assert answer.ok, answer.result
        assert answer.result == {"package": package, "message": "hello store"}


def test_an_edit_ships_in_every_round(bench_workspace: Path, cache_dir: Path, tmp_path: Path):
    """With the store warm, each round's edit of a handler is in the asset, source and bytecode, and the
    shared distributions are not installed again."""
    _synth(bench_workspace, Runner(), tmp_path / "warm", [("fn00", "3.12"), ("fn01", "3.12")])
    for round_ in range(3):
        token = f"round-{round_}"
        edit(bench_workspace, "fn01", token)
        _state.reset()  # each round is a new synth
        runner = Watching()
        assets = _synth(bench_workspace, runner, tmp_path / f"out{round_}", [("fn00", "3.12"), ("fn01", "3.12")])
        handler = assets["fn01py312"] / "fn01" / "handler.py"
        assert token in handler.read_text()
        [pyc] = (handler.parent / "__pycache__").glob("handler.cpython-312.pyc")
        assert token.encode() in pyc.read_bytes()
        assert token not in (assets["fn00py312"] / "fn00" / "handler.py").read_text()
        assert runner.installed == [], "the store was warm: nothing third-party to install"


def test_a_lock_bump_installs_only_the_bumped_distribution(bench_workspace: Path, cache_dir: Path, tmp_path: Path):
    """orjson moved to another locked version: each package is built again, from the store for everything
    else; orjson alone is installed, once for both packages."""
    _synth(bench_workspace, Runner(), tmp_path / "before", [("fn00", "3.12"), ("fn01", "3.12")])
    before = json.dumps(_locked_version(bench_workspace, "orjson"))
    uv = Uv.locate(None).path
    subprocess.run([uv, "lock", "--quiet", "--upgrade-package", "orjson==3.10.18"], cwd=bench_workspace, check=True)
    assert json.dumps(_locked_version(bench_workspace, "orjson")) != before
    _state.reset()

    runner = Watching()
    assets = _synth(bench_workspace, runner, tmp_path / "after", [("fn00", "3.12"), ("fn01", "3.12")])

    assert runner.installed == [{"orjson"}]
    assert runner.compiles_of("orjson") == 1
    for package in ("fn00", "fn01"):
        assert list(assets[f"{package}py312"].glob("orjson-3.10.18.dist-info"))


def _locked_version(workspace: Path, name: str) -> str:
    import tomllib

    lock = tomllib.loads((workspace / "uv.lock").read_text())
    return next(str(p["version"]) for p in lock["package"] if p["name"] == name)


def test_store_entries_are_listed_and_pruned_like_builds(workspace: Path, cache_dir: Path, capsys):
    """`cdk-uv cache info` counts the stored distributions; pruning removes them like builds."""
    from cdk_uv_aspect._cli import main as cli

    build_of(workspace, "api")
    stored = list((cache_dir / "store").iterdir())
    assert stored
    assert cli(["cache", "info"]) == 0
    assert f"1 build(s), 2 local wheel(s), {len(stored)} stored distribution(s)" in capsys.readouterr().out
    future = os.path.getmtime(stored[0] / "build.json") + 10 * 86400
    removed = prune(cache_dir, 7, now=future)
    assert {e.path for e in removed} >= set(stored)
    assert not any((cache_dir / "store").iterdir())


def test_a_package_for_two_targets_is_exported_once_and_the_lock_checked_once(
    bench_workspace: Path, cache_dir: Path, tmp_path: Path
):
    """fn00 for python3.11 and python3.12, fn01 for python3.12, in one synth: uv.lock is checked once,
    each package exported once (the export does not depend on the target), and each build is its own."""
    runner = ScriptedRunner()
    assets = _synth(bench_workspace, runner, tmp_path / "out", [("fn00", "3.11"), ("fn00", "3.12"), ("fn01", "3.12")])

    assert len(runner.calls_to(uv_command("lock"))) == 1
    exported = sorted(call[call.index("--package") + 1] for call in runner.calls_to(uv_command("export")))
    assert exported == ["fn00", "fn01"]
    assert list((assets["fn00py311"] / "fn00" / "__pycache__").glob("handler.cpython-311.pyc"))
    assert list((assets["fn00py312"] / "fn00" / "__pycache__").glob("handler.cpython-312.pyc"))
