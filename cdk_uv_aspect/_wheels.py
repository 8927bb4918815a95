"""Wheels of the workspace's own packages: built with ``uv build`` from a private copy of their sources.

Built from a copy, because build backends may write into the folder they build (setuptools' build/ and
egg-info), and the user's tree stays untouched; with ``uv build``, because it always runs the backend,
where ``uv pip install <folder>`` may reuse a wheel it built before a source file changed (the stale
code trap of CDK_NOTES).

The pure wheel of each package is kept in ``<cache_dir>/wheels/<package>-<key>/``, keyed by its sources
and the tools that build it, laid out and verified as a build entry (see ``_cache``): a shared library
is built once for every package that uses it. Wheels with native code are built for this machine and
are never kept.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
                return sorted((entry / _cache.ASSET).glob("*.whl"))
            if not rebuild and team is not None and team.fetch(_cache.WHEELS, entry.name, cache, log) is not None:
                return sorted((entry / _cache.ASSET).glob("*.whl"))
            source, out = work / "src" / package.name, work / "wheels" / package.name
            # Exactly the files its key was computed from: no ignored file, cache or virtualenv.
            copy_sources(package.path, workspace.sources(package.name, cache_dir), source)
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
