"""Build: one package for one target, into a private folder, published atomically into the build cache.

A build request (``_request``) is keyed by everything that decides its output: uv.lock, the sources of the local
packages in its closure, the target, the options that change the output, this library's version and
uv's. A folder published under that key is complete (it is renamed into place whole) and is reused
after checking it against the manifest in its build.json (see _cache.py); the CDK hashes its content,
so the asset hash is an output hash.

The steps, in order (1-4 run by ``_install``; each in the module named):

1. ``_uv.export``: the package's locked closure, with the chosen extras and groups, as requirements
   (once per package and selection in a synth: it does not depend on the target);
2. ``_store.entries``: each third-party distribution installed for the target and compiled, once for
   every build that locks it;
3. ``_wheels.local_wheels``: the workspace's own packages, then ``_uv.install_wheels`` into a folder of
   the build's own, with the application modules;
4. ``_asset``: that folder tidied, compiled, modes set; ``_store.assemble`` and ``_store.merge`` copy
   the store entries and it into the asset;
5. ``_sbom``: the asset's CycloneDX SBOM, written beside it;
6. ``_cache.publish``: the finished folder renamed into the build cache.

Where the store can't give the same bytes as installing everything into one folder (``_store.Refused``),
or a dependency has no wheel for the target (``_docker``'s container), steps 2-4 install everything into
the asset folder itself and finish it there (``_install.directly``), as before the store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _cache, _install, _prune, _remote, _sbom, _store
from ._errors import TargetError, UvError, WheelError
from ._files import atomic_write, file_error, work_dir
from ._request import BuildRequest
from ._runner import Bounded, Runner, cores
from ._uv import Uv
from ._wheels import shared_environments
from ._workspace import Package, Workspace

Log = Callable[[str], None]

# Builds made here at once: one per core. More threads than that may wait on the team cache (downloads,
# uploads) side by side with them.
_BUILDING = threading.BoundedSemaphore(cores())


@dataclass(frozen=True)
class Built:
    """A finished build: its entry in the build cache, what it took, where it came from, its build.json."""

    request: BuildRequest
    entry: Path  # <cache_dir>/builds/<key>: asset/ and build.json
    seconds: float
    cached: bool  # not built by this process: from the build cache or the team cache
    info: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    origin: str = "built"  # "built", "cache" or "team cache"

    @property
    def key(self) -> str:
        """The build's key: the entry's name in the build cache and in the team cache."""
        return self.entry.name

    @property
    def asset_dir(self) -> Path:
        """The folder Lambda runs: what the asset is made of."""
        return self.entry / _cache.ASSET

    @property
    def sbom(self) -> Path:
        """The CycloneDX document of the asset, beside it in the entry (outside the asset, its hash unchanged)."""
        return self.entry / _sbom.FILE


def build(request: BuildRequest, runner: Runner | None = None, log: Log | None = None, *, team: bool = True) -> Built:
    """Build ``request``, or take it from the build cache when an identical, intact build is there, else from
    the team cache when one is configured (``team=False``: never; `cdk-uv verify` rebuilds)."""
    # Every command of the build is stopped after command_timeout, and reported while it is slow.
    bounded = Bounded(runner or Runner(), request.options.command_timeout, what=_what(request), say=log)
    try:
        remote = _remote.team_cache(request.options.remote_cache, request.options.remote_cache_write) if team else None
        with shared_environments(candidates(request)):
            return _build(request, bounded, log, remote)
    except UvError as exc:  # each error names what was being built, wherever it was raised
        raise exc.with_constructs(exc.constructs, package=request.package, target=request.target) from None
    except (OSError, UnicodeError) as exc:  # a full or read-only disk, a cache path that is a file...
        error = file_error(exc, cache_dir=request.options.cache_dir)
        raise error.with_constructs((), package=request.package, target=request.target) from exc


def candidates(request: BuildRequest) -> list[tuple[Workspace, str]]:
    """The local packages whose wheels ``request``'s build may need (see ``_wheels.shared_environments``)."""
    try:
        return [(request.workspace, p.name) for p in request.workspace.closure(request.package, request.groups)]
    except UvError:
        return []  # the build says why


def _what(request: BuildRequest) -> str:
    return f"{request.package} ({request.target.key})"


def _build(request: BuildRequest, runner: Runner, log: Log | None, remote: _remote.TeamCache | None) -> Built:
    uv = Uv.locate(request.options.uv, runner)
    started = time.monotonic()
    package = request.workspace.package(request.package)
    _check_requires_python(request, package)
    key = request.key(uv.version)
    builds = _cache.private_dir(request.options.cache_dir / _cache.BUILDS)
    _prune.sweep(builds)
    final = builds / key
    if not request.options.rebuild:
        info = _cache.use(final)
        if info is not None:
            return Built(request, final, time.monotonic() - started, cached=True, info=info, origin="cache")
        if os.path.lexists(final) and log:
            log(
                f"the cached build of {request.package} for {request.target} is damaged, incomplete or not "
                "provably this user's (a link, another user's, laid out otherwise): building it again"
            )
        info = remote.fetch(_cache.BUILDS, key, builds, log) if remote is not None else None
        if info is not None:
            return Built(request, final, time.monotonic() - started, cached=True, info=info, origin="team cache")

    with _BUILDING:
        built = _build_here(request, runner, log, uv, package, key, builds, started, remote)
    if remote is not None:
        remote.store(_cache.BUILDS, built.entry, log)  # side by side with the next builds
    return built


def _build_here(
    request: BuildRequest,
    runner: Runner,
    log: Log | None,
    uv: Uv,
    package: Package,
    key: str,
    builds: Path,
    started: float,
    remote: _remote.TeamCache | None,
) -> Built:
    final = builds / key
    with work_dir(builds, key) as work:
        site = work / _cache.ASSET
        site.mkdir()
        began = time.time()
        omitted, registry, local = _install.export(request, uv, runner, work)
        try:
            _install.from_store(request, package, uv, runner, work, site, registry, local, log, remote)
        except (_store.Refused, WheelError) as exc:
            if isinstance(exc, WheelError) and not request.options.docker_fallback:
                raise
            # Built the old way: everything installed into the one folder (a container where needed).
            for leftover in (site, work / _install.OWN):
                shutil.rmtree(leftover, ignore_errors=True)
            site.mkdir()
            _install.directly(request, package, uv, runner, work, site, registry, local, log, remote)
        sbom = _sbom.document(
            site=site,
            lock=request.workspace.lock_bytes,
            root=request.package,
            target=request.target.key,
            extras=request.extras,
            groups=request.groups,
            omitted=omitted,
            workspace_paths={
                p.name: p.path.relative_to(request.workspace.root).as_posix()
                for p in request.workspace.packages.values()
                if p.path.is_relative_to(request.workspace.root)
            },
            uv_version=uv.version,
        )
        seconds = time.monotonic() - started
        files = _cache.manifest(site)
        info = {
            "package": request.package,
            "target": request.target.key,
            "extras": list(request.extras),
            "groups": list(request.groups),
            "options": request.output_options,  # with package and target: what `cdk-uv verify` builds again
            "omitted": omitted,
            "beside": {_sbom.FILE: hashlib.sha256(sbom).hexdigest()},
            "files": len(files),
            "bytes": sum(max(size, 0) for size, _, _ in files.values()),
            "seconds": round(seconds, 3),
            "started": round(began, 3),
            "finished": round(time.time(), 3),
            "manifest": files,
        }
        for leftover in work.iterdir():
            if leftover.name != _cache.ASSET:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        atomic_write(work / _sbom.FILE, sbom)
        _cache.write_info(work, info)  # last: a folder without build.json is never used
        final = _cache.publish(work, final, rebuild=request.options.rebuild)
    return Built(request, final, seconds, cached=False, info=_cache.read_info(final) or info)


def _check_requires_python(request: BuildRequest, package: Package) -> None:
    if not package.admits(request.target.python):
        raise TargetError(
            f"package {package.name} requires Python {package.requires_python}, but the function runs "
            f"{request.target.runtime}",
            package=package.name,
            target=request.target,
            fix="give the function a runtime that the package's requires-python admits, or widen "
            "requires-python in its pyproject.toml and run `uv lock`",
        )


def progress_line(built: Built, shown: list[str] | None = None, count: int = 0) -> str:
    """``Bundling uv package orders (python3.12-x86_64) for App/Orders... built in 2.1s``.

    ``shown`` names the first few of the ``count`` functions the build is for.
    """
    what = f"Bundling uv package {built.request.package} ({built.request.target.key})"
    if shown:
        more = f" and {count - len(shown)} more" if count > len(shown) else ""
        what += f" for {', '.join(shown)}{more}"
    how = {"cache": "from cache", "team cache": "from the team cache"}.get(built.origin, "built")
    return f"{what}... {how} in {built.seconds:.1f}s"
