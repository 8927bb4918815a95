"""Build: one package for one target, into a private folder, published atomically into the build cache.

A build request (``_request``) is keyed by everything that decides its output: uv.lock, the sources of the local
packages in its closure, the target, the options that change the output, this library's version and
uv's. A folder published under that key is complete (it is renamed into place whole) and is reused
after checking it against the manifest in its build.json (see _cache.py); the CDK hashes its content,
so the asset hash is an output hash.

The steps, in order (each in the module named):

1. ``_uv.export``: the package's locked closure, with the chosen extras and groups, as requirements;
2. ``_uv.install_locked``: third-party wheels for the target (``_docker`` when one has no wheel);
3. ``_wheels.local_wheels``: the workspace's own packages, then ``_uv.install_wheels``;
4. ``_asset``: application modules copied, the folder tidied, bytecode compiled, modes set;
5. ``_sbom``: the asset's CycloneDX SBOM, written beside it;
6. ``_cache.publish``: the finished folder renamed into the build cache.
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

from . import _asset, _cache, _docker, _index, _prune, _remote, _sbom, _uv
from ._errors import TargetError, UvError, WheelError
from ._files import atomic_write, file_error, work_dir
from ._lambda import RUNTIME_PROVIDED
from ._names import pins
from ._pipconfig import pip_config
from ._request import BuildRequest
from ._runner import Bounded, Runner, cores
from ._uv import Uv
from ._wheels import local_wheels
from ._workspace import Package

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
        return _build(request, bounded, log, remote)
    except UvError as exc:  # each error names what was being built, wherever it was raised
        raise exc.with_constructs(exc.constructs, package=request.package, target=request.target) from None
    except (OSError, UnicodeError) as exc:  # a full or read-only disk, a cache path that is a file...
        error = file_error(exc, cache_dir=request.options.cache_dir)
        raise error.with_constructs((), package=request.package, target=request.target) from exc


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
        omitted = _install(request, package, uv, runner, work, site, log, remote)
        _asset.tidy(site, request.options.exclude)
        if request.options.bytecode:
            own = request.workspace.closure(request.package)
            _asset.compile_bytecode(site, uv.path, runner, request.failure, own, log)
        _asset.normalize_modes(site)
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


def _install(
    request: BuildRequest,
    package: Package,
    uv: Uv,
    runner: Runner,
    work: Path,
    site: Path,
    log: Log | None,
    remote: _remote.TeamCache | None,
) -> dict[str, str]:
    """Steps 1-3 and the application modules: everything the function imports, into ``site``.

    Returns what was left out for the runtime to provide (``omit_runtime_provided``): name -> locked version.
    """
    root, failure = request.workspace.root, request.failure

    def export(out: Path, prune: tuple[str, ...] = ()) -> str:
        chosen = {"extras": request.extras, "groups": request.groups, "prune": prune}
        command = _uv.export(uv.path, request.package, request.options.lock, out, **chosen)
        result = runner.run(command, cwd=root, env=_uv.UV_ENV)
        if not result.ok:
            raise failure.export(result)
        return out.read_text()

    omitted: dict[str, str] = {}
    if request.options.omit_runtime_provided:
        exported = export(work / "requirements.txt", RUNTIME_PROVIDED)
        # What pruning took out (boto3, botocore and what only they need), with their locked versions.
        kept = pins(exported)
        omitted = {n: v for n, v in pins(export(work / "everything.txt")).items() if n not in kept}
    else:
        exported = export(work / "requirements.txt")
    registry, local = _uv.split_requirements(exported)
    # The workspace's uv settings (indexes...) without those the lock already applied (constraints).
    config = pip_config(root, work / "uv-config")
    if registry.strip():
        # One install per explicit index the lock pins packages to, one for the rest (see _index.split).
        groups = [
            _docker.Locked(_write(work / f"locked-{n}.txt", group.requirements), group.index)
            for n, group in enumerate(_index.split(registry, request.workspace))
        ]
        for group in groups:
            command = _uv.install_locked(
                uv.path, request.target, site, group.requirements, index=group.index, config=config
            )
            result = runner.run(command, cwd=root, env=_uv.UV_ENV)
            if result.ok:
                continue
            error = failure.install(result)
            # Only a dependency with no wheel for the target goes to a container; any other failure
            # (network, hashes, credentials) would fail there too.
            if not (isinstance(error, WheelError) and request.options.docker_fallback):
                raise error
            _docker.install_in_container(uv.path, request.target, site, groups, runner, cause=error, log=log, root=root)
            break
    if local:
        wheels = local_wheels(
            request.workspace,
            local,
            uv,
            runner,
            work,
            cache_dir=request.options.cache_dir,
            rebuild=request.options.rebuild,
            failure=failure,
            team=remote,
            log=log,
        )
        command = _uv.install_wheels(uv.path, request.target, site, wheels, config=config)
        result = runner.run(command, cwd=root, env=_uv.UV_ENV)
        if not result.ok:
            raise failure.install(result)
    if not package.packaged:
        _asset.copy_modules(package, request.workspace.sources(package.name, request.options.cache_dir), site)
    return omitted


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


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
