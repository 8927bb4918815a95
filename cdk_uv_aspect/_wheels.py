"""Wheels of the workspace's own packages: built with ``uv build`` from a private copy of their sources.

Built from a copy, because build backends may write into the folder they build (setuptools' build/ and
egg-info), and the user's tree stays untouched; with ``uv build``, because it always runs the backend,
where ``uv pip install <folder>`` may reuse a wheel it built before a source file changed (the stale
code trap of CDK_NOTES).

The pure wheel of each package is kept in ``<cache_dir>/wheels/<package>-<key>/``, keyed by its sources
and the tools that build it, laid out and verified as a build entry (see ``_cache``): a shared library
is built once for every package that uses it. Wheels with native code are built for this machine and
are never kept.

Packages whose backend is ``uv_build`` are built by uv itself, with no Python environment (uv's direct
build). Inside ``shared_environments()`` (a synth's builds), the packages that declare the same build
system (``[build-system]``'s requires, backend and backend path, and requires-python) are built in one
environment prepared for them, instead of a fresh isolated one each: the environment is made as ``uv
build`` makes its own (the same requirements, resolved the same way), so the wheels are the same. A
package that does not build there (a backend asking for more at build time) is built in isolation, as
before, and that build's error is the one reported.

(Longer than most modules, and one job: a local package's wheel, from its key through its three ways of
being built to the kept entry; the ways share the private copy and the failure they report.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import _cache, _index, _prune, _state, _uv
from ._errors import WorkspaceError
from ._failure import Failure
from ._files import work_dir
from ._remote import TeamCache
from ._runner import Runner, cores
from ._sources import copy_sources
from ._uv import Uv
from ._version import LIBRARY_VERSION
from ._workspace import Package, Workspace


def local_wheels(
    workspace: Workspace,
    exported: list[str],
    uv: Uv,
    runner: Runner,
    work: Path,
    *,
    cache_dir: Path,
    rebuild: bool,
    failure: Failure,
    team: TeamCache | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """The wheel of each local package ``uv export`` listed (as paths): from the wheel cache, else from the
    team cache (``team``), else built (and shared there)."""
    by_path = {p.path: p for p in workspace.packages.values()}
    packages = []
    for line in exported:
        package = by_path.get(_uv.local_path(line, workspace.root))
        if package is None:  # pragma: no cover - uv exports only packages the lock knows
            raise WorkspaceError(
                f"uv exported {line}, which is not a package of uv.lock",
                package=failure.package,
                target=failure.target,
                fix="run `uv lock`",
            )
        packages.append(package)
    cache = _cache.private_dir(cache_dir / _cache.WHEELS)
    _prune.sweep(cache)
    # The copy is outside the workspace: its build backend comes from the workspace's indexes all the same.
    env = {**_uv.UV_ENV, **_index.environment(workspace.root, os.environ)}

    def wheels_of(package: Package) -> list[Path]:
        entry = cache / wheel_key(workspace, package, uv.version, cache_dir)
        with _state.wheel_lock(entry):  # builds running side by side wait for one build of a shared package
            if (not rebuild or entry in _state.WHEELS_BUILT) and _cache.use(entry) is not None:
                if team is not None and entry in _state.WHEELS_BUILT:  # built here, by another build's batch
                    team.store(_cache.WHEELS, entry, log)  # (once: the team cache skips what it stored)
                return sorted((entry / _cache.ASSET).glob("*.whl"))
            if not rebuild and team is not None and team.fetch(_cache.WHEELS, entry.name, cache, log) is not None:
                return sorted((entry / _cache.ASSET).glob("*.whl"))
            source, out = work / "src" / package.name, work / "wheels" / package.name
            # Exactly the files its key was computed from: no ignored file, cache or virtualenv.
            copy_sources(package.path, workspace.sources(package.name, cache_dir), source)
            environment = prepared_environment(source, cache, uv, runner, env)
            python = environment.python if environment else None
            if environment is not None:
                # Every package of this build system that the synth needs, built in one backend process
                # (by the first build to get here; the others find their wheels kept).
                _build_batch(environment, cache, uv, runner, env, cache_dir=cache_dir, rebuild=rebuild)
                if (not rebuild or entry in _state.WHEELS_BUILT) and _cache.use(entry) is not None:
                    if team is not None:
                        team.store(_cache.WHEELS, entry, log)
                    return sorted((entry / _cache.ASSET).glob("*.whl"))
            result = runner.run(_uv.build_wheel(uv.path, source, out, python), cwd=work, env=env)
            if python is not None and not result.ok and not result.timed_out:
                shutil.rmtree(out, ignore_errors=True)  # built in isolation instead: its error is the one to read
                result = runner.run(_uv.build_wheel(uv.path, source, out), cwd=work, env=env)
            if not result.ok:
                raise failure.build(result, package.name, package.path)
            wheels = sorted(out.glob("*.whl"))
            if all(wheel.name.endswith("-none-any.whl") for wheel in wheels):
                _keep(wheels, cache, entry, package.name, rebuild=rebuild)
                with _state.LOCK:
                    _state.WHEELS_BUILT.add(entry)
                if team is not None:
                    team.store(_cache.WHEELS, entry, log)
            return wheels

    # Each `uv build` mostly waits on setting up its isolated build environment: run them side by side,
    # as many at once as there are cores (the runner holds every command of the process to that too).
    with ThreadPoolExecutor(max_workers=max(1, min(len(packages), cores()))) as pool:
        wheels = [wheel for built in pool.map(wheels_of, packages) for wheel in built]
    return sorted(wheels)


def wheel_key(workspace: Workspace, package: Package, uv_version: str, cache_dir: Path | None = None) -> str:
    """What decides a local package's wheel: its sources, and the tools that build it."""
    sources = workspace.fingerprint(package.name, cache_dir)
    parts = {"library": LIBRARY_VERSION, "uv": uv_version, "sources": sources}
    return _cache.entry_key(package.name, parts)


def _keep(wheels: list[Path], cache: Path, entry: Path, package: str, *, rebuild: bool) -> None:
    """Put pure wheels into the wheel cache, laid out as a build entry: ``asset/`` and ``build.json``."""
    with work_dir(cache, entry.name) as work:
        (work / _cache.ASSET).mkdir()
        for wheel in wheels:
            shutil.copy2(wheel, work / _cache.ASSET / wheel.name)
        _cache.write_info(work, {"package": package, "manifest": _cache.manifest(work / _cache.ASSET)})
        _cache.publish(work, entry, rebuild=rebuild)


# --- build environments shared by the packages of one build system ---------------------------------


class _Environment:
    """A prepared build environment: made once, by the first build that needs it; None if it can't be."""

    def __init__(self, system: dict[str, Any]) -> None:
        self.system = system
        self.lock = threading.Lock()
        self.made = False
        self.python: str | None = None
        # The backend, when it can build many packages in one process (see _BATCH_BACKENDS); None once
        # that was done, or when it can't.
        self.batch: str | None = system["backend"] if system["backend"] in _BATCH_BACKENDS else None
        self.folders = contextlib.ExitStack()  # its private folders, removed when the session ends


# Backends whose build_wheel keeps no state from one package to the next, called one package after
# another in one process (a PEP 517 frontend would start a process per call): each package's build is
# what `uv build` makes of it, minus starting Python and importing the backend again.
_BATCH_BACKENDS = frozenset({"hatchling.build", "flit_core.buildapi", "pdm.backend", "poetry.core.masonry.api"})

# Runs in the prepared environment: builds each (source, out) in turn, answers a JSON list on the last line.
BATCH = r"""
import importlib, json, os, sys, traceback
backend_name, jobs = sys.argv[1], json.loads(sys.argv[2])
module, _, attrs = backend_name.partition(":")
backend = importlib.import_module(module)
for attr in filter(None, attrs.split(".")):
    backend = getattr(backend, attr)
answers = []
for source, out in jobs:
    os.chdir(source)
    try:
        more = getattr(backend, "get_requires_for_build_wheel", lambda settings=None: [])({})
        if more:
            answers.append({"skipped": "the backend asks for " + ", ".join(more)})
            continue
        os.makedirs(out, exist_ok=True)
        answers.append({"wheel": backend.build_wheel(out, {})})
    except BaseException:
        answers.append({"error": traceback.format_exc()[-2000:]})
sys.stdout.write("\n" + json.dumps(answers) + "\n")
"""


class _Session:
    def __init__(self, candidates: Iterable[tuple[Workspace, str]]) -> None:
        self.candidates = list(candidates)


@contextlib.contextmanager
def shared_environments(candidates: Iterable[tuple[Workspace, str]] = ()) -> Iterator[None]:
    """While open (in any thread), builds of local packages share prepared build environments; the last
    to close removes them. ``candidates``: (workspace, package) of every local package the builds inside
    may need a wheel of, built together where their backend allows it."""
    session = _Session(candidates)
    with _state.LOCK:
        _state.ENV_SESSIONS.append(session)
    try:
        yield
    finally:
        with _state.LOCK:
            _state.ENV_SESSIONS.remove(session)
            closing = [] if _state.ENV_SESSIONS else list(_state.BUILD_ENVS.values())
            if not _state.ENV_SESSIONS:
                _state.BUILD_ENVS.clear()
        for environment in closing:
            environment.folders.close()


def build_system(source: Path) -> dict[str, Any] | None:
    """What decides a package's build environment, from its ``pyproject.toml``; None when uv builds it
    itself (``uv_build``) or it declares no build system (uv's legacy default)."""
    try:
        data = tomllib.loads((source / "pyproject.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    table = data.get("build-system")
    if not isinstance(table, dict):
        return None
    requires, backend = table.get("requires"), table.get("build-backend")
    if not isinstance(backend, str) or backend == "uv_build" or not isinstance(requires, list):
        return None
    if not all(isinstance(r, str) for r in requires):
        return None
    project = data.get("project")
    requires_python = project.get("requires-python") if isinstance(project, dict) else None
    return {
        "requires": sorted(requires),
        "backend": backend,
        "backend-path": table.get("backend-path"),
        "requires-python": requires_python,
    }


def _own_build_code(source: Path) -> bool:
    """Whether a package brings code of its own to its build (a backend in its tree, build hooks): then
    it is built in a process of its own."""
    try:
        text = (source / "pyproject.toml").read_text()
    except OSError:
        return True
    return "backend-path" in text or "hooks" in text or (source / "hatch_build.py").exists()


def prepared_environment(
    source: Path, cache: Path, uv: Uv, runner: Runner, env: Mapping[str, str]
) -> _Environment | None:
    """The environment prepared for the build system of the package copied to ``source``, shared by
    the packages declaring the same one; None: build it in isolation."""
    with _state.LOCK:
        if not _state.ENV_SESSIONS:
            return None
    system = build_system(source)
    if system is None:
        return None
    key = (str(cache), uv.path, json.dumps(system, sort_keys=True))
    with _state.LOCK:
        environment: _Environment = _state.BUILD_ENVS.setdefault(key, _Environment(system))
    with environment.lock:  # the other packages of this build system wait for it
        if not environment.made:
            environment.made = True
            folder = environment.folders.enter_context(work_dir(cache, _cache.entry_key("build-env", system)))
            environment.python = _prepare(folder / _cache.ASSET, source, system["requires"], uv, runner, env)
    return environment if environment.python else None


def _prepare(
    venv: Path, source: Path, requires: list[str], uv: Uv, runner: Runner, env: Mapping[str, str]
) -> str | None:
    # In the package's folder: uv picks the interpreter it would pick to build it.
    if not runner.run(_uv.venv(uv.path, venv), cwd=source, env=env).ok:
        return None
    python = str(venv / "bin" / "python")
    if not runner.run(_uv.install_build_requirements(uv.path, python, requires), cwd=venv, env=env).ok:
        return None
    return python


def _build_batch(
    environment: _Environment,
    cache: Path,
    uv: Uv,
    runner: Runner,
    env: Mapping[str, str],
    *,
    cache_dir: Path,
    rebuild: bool,
) -> None:
    """Once per environment: the wheels of every candidate package of its build system that the wheel
    cache lacks, built in one process of its backend and kept. A package it could not build is left to
    its own build, whose error is the one reported."""
    with environment.lock:
        backend, environment.batch = environment.batch, None
        if backend is None or environment.python is None:
            return
        with _state.LOCK:
            candidates = {(id(ws), name): (ws, name) for s in _state.ENV_SESSIONS for ws, name in s.candidates}
        jobs = []
        for workspace, name in candidates.values():
            package = workspace.packages.get(name)
            if package is None or not package.packaged or package.refused is not None:
                continue
            if build_system(package.path) != environment.system or _own_build_code(package.path):
                continue
            entry = cache / wheel_key(workspace, package, uv.version, cache_dir)
            if (not rebuild or entry in _state.WHEELS_BUILT) and _cache.use(entry) is not None:
                continue
            jobs.append((workspace, package, entry))
        if not jobs:
            return
        # Its files in asset/, as every work folder's: one a killed synth left is known as ours and swept.
        work = environment.folders.enter_context(work_dir(cache, _cache.entry_key("batch", environment.system)))
        folder = work / _cache.ASSET
        folder.mkdir()
        sources, outs = [], []
        for n, (workspace, package, _) in enumerate(jobs):
            sources.append(folder / "src" / str(n) / package.name)
            outs.append(folder / "wheels" / str(n))
            copy_sources(package.path, workspace.sources(package.name, cache_dir), sources[-1])
        spec = json.dumps([[str(s), str(o)] for s, o in zip(sources, outs, strict=True)])
        result = runner.run([environment.python, "-c", BATCH, backend, spec], cwd=folder, env=env)
        try:
            answers = json.loads(result.stdout.strip().splitlines()[-1]) if result.ok else []
        except (IndexError, ValueError):
            answers = []
        for (_, package, entry), out, answer in zip(jobs, outs, answers, strict=False):
            wheels = sorted(out.glob("*.whl")) if isinstance(answer, dict) and "wheel" in answer else []
            if wheels and all(wheel.name.endswith("-none-any.whl") for wheel in wheels):
                _keep(wheels, cache, entry, package.name, rebuild=rebuild)
                with _state.LOCK:
                    _state.WHEELS_BUILT.add(entry)
