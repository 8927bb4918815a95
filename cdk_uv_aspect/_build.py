"""Build: one package for one target, into a private folder, published atomically into the build cache.

A build request (``_request``) is keyed by everything that decides its output: uv.lock, the sources of the local
packages in its closure, the target, the options that change the output, this library's version and
uv's. A folder published under that key is complete (it is renamed into place whole) and is reused
after checking it against the manifest in its build.json (see _cache.py); the CDK hashes its content,
so the asset hash is an output hash.

The steps, in order (each in the module named):

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
the asset folder itself and finish it there (``_directly``), as before the store.
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

from . import _asset, _cache, _index, _prune, _remote, _sbom, _state, _store, _uv
from ._errors import TargetError, UvError, WheelError
from ._files import atomic_write, file_error, work_dir
from ._lambda import RUNTIME_PROVIDED
from ._names import pins
from ._pipconfig import pip_config
from ._request import BuildRequest
from ._runner import Bounded, Result, Runner, cores
from ._uv import Uv
from ._wheels import local_wheels, shared_environments
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
        omitted, registry, local = _export(request, uv, runner, work)
        try:
            _from_store(request, package, uv, runner, work, site, registry, local, log, remote)
        except (_store.Refused, WheelError) as exc:
            if isinstance(exc, WheelError) and not request.options.docker_fallback:
                raise
            # Built the old way: everything installed into the one folder (a container where needed).
            for leftover in (site, work / _OWN):
                shutil.rmtree(leftover, ignore_errors=True)
            site.mkdir()
            _directly(request, package, uv, runner, work, site, registry, local, log, remote)
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


_OWN = "own"  # in a build's work folder: its own packages, before they join the store's files


def _export(request: BuildRequest, uv: Uv, runner: Runner, work: Path) -> tuple[dict[str, str], str, list[str]]:
    """Step 1: what to install, as registry requirements and local package paths, and what was left out
    for the runtime to provide (``omit_runtime_provided``: name -> locked version)."""
    omitted: dict[str, str] = {}
    if request.options.omit_runtime_provided:
        exported = _exported(request, uv, runner, work / "requirements.txt", RUNTIME_PROVIDED)
        # What pruning took out (boto3, botocore and what only they need), with their locked versions.
        kept = pins(exported)
        omitted = {n: v for n, v in pins(_exported(request, uv, runner, work / "all.txt")).items() if n not in kept}
    else:
        exported = _exported(request, uv, runner, work / "requirements.txt")
    registry, local = _uv.split_requirements(exported)
    return omitted, registry, local


@dataclass
class _Once:
    """What one command of a synth answered, for every build that needs it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    result: Result | None = None
    text: str | None = None


def _once(key: tuple[object, ...]) -> _Once:
    with _state.LOCK:
        slot: _Once = _state.EXPORTS.setdefault(key, _Once())
    return slot


def _exported(request: BuildRequest, uv: Uv, runner: Runner, out: Path, prune: tuple[str, ...] = ()) -> str:
    """``uv export`` of the request's package and selection, run once per workspace (one per aspect, so
    once per synth) whatever the target: the export does not depend on it. Under ``lock="locked"``,
    uv.lock is checked once (``uv lock --locked``), and each package exported ``--frozen``."""
    root = request.workspace.root
    if request.options.lock == "locked":
        check = _once((request.workspace, uv.path, "lock --locked"))
        with check.lock:  # every build waits for the one check
            if check.result is None:
                check.result = runner.run(_uv.check_lock(uv.path), cwd=root, env=_uv.UV_ENV)
        if not check.result.ok:
            raise request.failure.export(check.result)
    chosen = {"extras": request.extras, "groups": request.groups, "prune": prune}
    slot = _once((request.workspace, uv.path, request.package, *chosen.values()))
    with slot.lock:  # builds of the package for other targets wait for this one
        if slot.text is None:
            command = _uv.export(uv.path, request.package, "frozen", out, **chosen)
            result = runner.run(command, cwd=root, env=_uv.UV_ENV)
            if not result.ok:
                raise request.failure.export(result)
            slot.text = out.read_text()
        return slot.text


def _from_store(
    request: BuildRequest,
    package: Package,
    uv: Uv,
    runner: Runner,
    work: Path,
    site: Path,
    registry: str,
    local: list[str],
    log: Log | None,
    remote: _remote.TeamCache | None,
) -> None:
    """Steps 2-4 with the store: the third-party distributions' entries (installed and compiled once per
    target, see ``_store``), then the workspace's own packages, compiled here, in a folder of their own;
    both copied into ``site``. ``_store.Refused`` where that would not give what ``_directly`` gives."""
    root, options = request.workspace.root, request.options
    config = pip_config(root, work / "uv-config")
    settings = (config / "pyproject.toml").read_text()
    entries = []
    if registry.strip():
        for group in _index.split(registry, request.workspace):
            setting = _store.Setting(request.target, group.index, settings, options.bytecode, uv.version)
            entries += _store.entries(
                _store.Locked.parse(group.requirements),
                setting,
                cache_dir=options.cache_dir,
                uv=uv.path,
                runner=runner,
                failure=request.failure,
                root=root,
                config_dir=config,
                team=remote,
                log=log,
            )
    own = work / _OWN
    own.mkdir()
    _install_own(request, package, uv, runner, work, own, local, config, log, remote)
    _asset.tidy(own, options.exclude)
    if options.bytecode:
        closure = request.workspace.closure(request.package)
        third_party = _store.uncompiled(entries)
        _asset.compile_bytecode(
            own, uv.path, runner, request.failure, closure, log, third_party=third_party, one_process=True
        )
    _asset.normalize_modes(own)
    _store.assemble(site, entries, options.exclude, request.target)
    _store.merge(site, own)


def _directly(
    request: BuildRequest,
    package: Package,
    uv: Uv,
    runner: Runner,
    work: Path,
    site: Path,
    registry: str,
    local: list[str],
    log: Log | None,
    remote: _remote.TeamCache | None,
) -> None:
    """Steps 2-4 into one folder: third-party wheels (a container for one with no wheel for the target),
    the workspace's own packages, then tidied and compiled together."""
    from . import _docker  # the container fallback: its engine and images, imported when a build comes here

    root, failure = request.workspace.root, request.failure
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
    _install_own(request, package, uv, runner, work, site, local, config, log, remote)
    _asset.tidy(site, request.options.exclude)
    if request.options.bytecode:
        own = request.workspace.closure(request.package)
        _asset.compile_bytecode(site, uv.path, runner, request.failure, own, log)
    _asset.normalize_modes(site)


def _install_own(
    request: BuildRequest,
    package: Package,
    uv: Uv,
    runner: Runner,
    work: Path,
    site: Path,
    local: list[str],
    config: Path,
    log: Log | None,
    remote: _remote.TeamCache | None,
) -> None:
    """Step 3 and the application modules: the workspace's own packages the function imports, into ``site``."""
    if local:
        wheels = local_wheels(
            request.workspace,
            local,
            uv,
            runner,
            work,
            cache_dir=request.options.cache_dir,
            rebuild=request.options.rebuild,
            failure=request.failure,
            team=remote,
            log=log,
        )
        command = _uv.install_wheels(uv.path, request.target, site, wheels, config=config)
        result = runner.run(command, cwd=request.workspace.root, env=_uv.UV_ENV)
        if not result.ok:
            raise request.failure.install(result)
    if not package.packaged:
        _asset.copy_modules(package, request.workspace.sources(package.name, request.options.cache_dir), site)


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
