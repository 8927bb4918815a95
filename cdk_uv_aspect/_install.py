"""Steps 1-4 of a build (see ``_build``): what to install, then installing it into the asset folder.

``export``: the package's locked closure as registry requirements and local package paths (``uv export``
once per package and selection in a synth, uv.lock checked once). ``from_store`` assembles the folder from
the store's entries of the third-party distributions (``_store``) and the build's own packages, compiled
here; ``directly`` installs everything into the folder itself and compiles it there, as before the store
(where the store can't give the same bytes, or a dependency needs a container).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import _asset, _index, _remote, _state, _store, _uv
from ._errors import WheelError
from ._lambda import RUNTIME_PROVIDED
from ._names import pins
from ._pipconfig import pip_config
from ._request import BuildRequest
from ._runner import Result, Runner
from ._uv import Uv
from ._wheels import local_wheels
from ._workspace import Package

Log = Callable[[str], None]

OWN = "own"  # in a build's work folder: its own packages, before they join the store's files


def export(request: BuildRequest, uv: Uv, runner: Runner, work: Path) -> tuple[dict[str, str], str, list[str]]:
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


def from_store(
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
    own = work / OWN
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


def directly(
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
