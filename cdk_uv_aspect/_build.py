"""Build: one package for one target, into a private folder, published atomically into the build cache.

A build request is keyed by everything that decides its output: uv.lock, the sources of the local
packages in its closure, the target, the options that change the output, this library's version and
uv's. A folder published under that key is complete (it is renamed into place whole) and is reused
after checking it against the manifest in its build.json (see _cache.py); the CDK hashes its content,
so the asset hash is an output hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatch
from importlib.metadata import version as _dist_version
from pathlib import Path

from . import _cache, _docker, _uv
from ._cache import ASSET
from ._errors import TargetError, ToolError, UvError, WheelError, WorkspaceError
from ._options import UvOptions
from ._runner import Result, Runner
from ._target import Target
from ._uv import Uv
from ._workspace import Package, Workspace, is_assembly, skipped

LIBRARY_VERSION = _dist_version("cdk-uv-aspect")

# Signs in uv's stderr that the target has no installable wheel for a locked dependency.
_NO_WHEEL = (
    "no wheels with a matching platform tag",
    "has no binary distribution",
    "doesn't have a source distribution or wheel for the current platform",
    "no wheels with a matching python",
    "is marked as `--no-build`",
    "has no usable wheels",
)
# uv names the dependency: "Because numpy{python_full_version < '3.12'}==2.4.6 has no usable wheels ..."
_DEPENDENCY = re.compile(r"Because ([A-Za-z0-9._-]+)(?:\{[^}]*\})?(==\S+)? has no")


@dataclass(frozen=True)
class BuildRequest:
    """What to build: a package of a workspace, for a target, with the options that shape the output."""

    workspace: Workspace
    package: str
    target: Target
    options: UvOptions = field(compare=False)

    @property
    def output_options(self) -> dict[str, object]:
        return {"bytecode": self.options.bytecode, "exclude": list(self.options.exclude), "lock": self.options.lock}

    def key(self, uv_version: str) -> str:
        parts = {
            "library": LIBRARY_VERSION,
            "uv": uv_version,
            "package": self.package,
            "target": self.target.key,
            "options": self.output_options,
            "lock": hashlib.sha256(self.workspace.lock_bytes).hexdigest(),
            "sources": {p.name: self.workspace.fingerprint(p.name) for p in self.workspace.closure(self.package)},
        }
        return _key(f"{self.package}-{self.target.key}", parts)


@dataclass(frozen=True)
class Built:
    """A finished build: its asset folder, what it took, and its build.json."""

    request: BuildRequest
    folder: Path
    seconds: float
    cached: bool
    info: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def asset_dir(self) -> Path:
        return self.folder / ASSET


def build(request: BuildRequest, runner: Runner | None = None, log: Callable[[str], None] | None = None) -> Built:
    """Build ``request``, or take it from the build cache when an identical, intact build is there."""
    runner = runner or Runner()
    uv = Uv.locate(request.options.uv)
    started = time.monotonic()
    package = request.workspace.package(request.package)
    _check_requires_python(request, package)
    key = request.key(uv.version)
    builds = _private_dir(request.options.cache_dir / _cache.BUILDS)
    final = builds / key
    damaged = False
    if not request.options.rebuild:
        info = _cache.use(final)
        if info is not None:
            return Built(request, final, time.monotonic() - started, cached=True, info=info)
        damaged = final.exists()
        if damaged and log:
            log(
                f"the cached build of {request.package} for {request.target} is damaged or incomplete: "
                "building it again"
            )

    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=builds))  # mode 0700, unpredictable name
    try:
        site = work / ASSET
        site.mkdir()
        began = time.time()
        _install(request, package, uv, runner, work, site, log)
        _tidy(site, request.options.exclude)
        if request.options.bytecode:
            _compile(request, uv.path, runner, site)
        _normalize_modes(site)
        seconds = time.monotonic() - started
        files = _cache.manifest(site)
        info = {
            "package": request.package,
            "target": request.target.key,
            "files": len(files),
            "bytes": sum(max(size, 0) for size, _, _ in files.values()),
            "seconds": round(seconds, 3),
            "started": round(began, 3),
            "finished": round(time.time(), 3),
            "manifest": files,
        }
        for leftover in work.iterdir():
            if leftover.name != ASSET:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        _cache.write_info(work, info)  # last: a folder without build.json is never used
        final = _publish(work, final, rebuild=request.options.rebuild)
        return Built(request, final, seconds, cached=False, info=_cache.read_info(final) or info)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(work: Path, final: Path, *, rebuild: bool) -> Path:
    """Rename the finished ``work`` folder to ``final``, atomically.

    Two synths building the same key at once: the first rename wins, the other finds a complete entry
    and drops its own copy (identical inputs, so identical content). An existing entry is replaced only
    when it is damaged (checked again here: another synth may have just replaced it) or on rebuild.
    """
    replace = rebuild
    for _ in range(3):
        try:
            os.rename(work, final)
            return final
        except OSError:
            if not final.exists():
                raise  # not a lost race: a real failure (permissions, disk)
        if not replace and _cache.use(final) is not None:
            return final
        _cache.discard(final)
        replace = False  # replace at most what was there at first, never a rival's fresh build
    raise OSError(f"could not publish the build into {final}: other processes keep replacing it")


def _private_dir(path: Path) -> Path:
    """Create ``path`` for this user only; refuse one that another user owns or could write to."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        raise ToolError(
            f"the build cache {path} is not private: it belongs to another user or others can write to "
            "it, so a build there could be swapped before it is deployed",
            fix="point UvOptions(cache_dir=...) or $CDK_UV_CACHE_DIR at a folder of your own (the default is "
            "~/.cache/cdk-uv-aspect), or `chmod go-w` this one",
        )
    return path


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
    log: Callable[[str], None] | None = None,
) -> None:
    root = request.workspace.root
    exported = work / "requirements.txt"
    result = runner.run(_uv.export(uv.path, request.package, request.options.lock, exported), cwd=root, env=_uv.UV_ENV)
    if _uv.failed(result):
        raise _export_error(request, result)
    registry, local = _uv.split_requirements(exported.read_text())
    if registry.strip():
        requirements = work / "locked.txt"
        requirements.write_text(registry)
        result = runner.run(_uv.install_locked(uv.path, request.target, site, requirements), cwd=root, env=_uv.UV_ENV)
        if _uv.failed(result):
            error = _install_error(request, result)
            # Only a dependency with no wheel for the target goes to a container; any other failure
            # (network, hashes) would fail there too.
            if not (isinstance(error, WheelError) and request.options.docker_fallback):
                raise error
            _docker.install_locked(uv.path, request.target, site, requirements, runner, cause=error, log=log)
    if local:
        wheels = _build_local_wheels(request, local, uv, runner, work)
        result = runner.run(_uv.install_wheels(uv.path, request.target, site, wheels), cwd=root, env=_uv.UV_ENV)
        if _uv.failed(result):
            raise _install_error(request, result)
    if not package.packaged:
        _copy_modules(package, site)


def _build_local_wheels(request: BuildRequest, local: list[str], uv: Uv, runner: Runner, work: Path) -> list[Path]:
    """The wheel of each local package: from the wheel cache while its sources are unchanged, else built.

    Built from a private copy of its sources, because build backends may write into the folder they
    build (setuptools' build/ and egg-info), and the user's tree stays untouched; with ``uv build``,
    because it always runs the backend, where ``uv pip install <folder>`` may reuse a wheel it built
    before a source file changed. A shared library is built once for all the packages that use it.
    """
    by_path = {p.path: p for p in request.workspace.packages.values()}
    packages = []
    for line in local:
        package = by_path.get((request.workspace.root / line).resolve())
        if package is None:  # pragma: no cover - uv exports only packages the lock knows
            raise WorkspaceError(
                f"uv exported {line}, which is not a package of uv.lock",
                package=request.package,
                target=request.target,
                fix="run `uv lock`",
            )
        packages.append(package)
    cache = _private_dir(request.options.cache_dir / _cache.WHEELS)

    def build_one(package: Package) -> list[Path]:
        entry = cache / _wheel_key(request, package, uv.version)
        with _wheel_lock(entry):  # builds running side by side wait for one build of a shared package
            if (not request.options.rebuild or entry in _BUILT_HERE) and _cache.use(entry) is not None:
                return sorted((entry / ASSET).glob("*.whl"))
            source, out = work / "src" / package.name, work / "wheels" / package.name
            shutil.copytree(package.path, source, ignore=_not_source, symlinks=False)
            result = runner.run(_uv.build_wheel(uv.path, source, out), cwd=work, env=_uv.UV_ENV)
            if _uv.failed(result):
                raise _network_error(request, result, f"fetch the build backend of {package.name}") or _error(
                    request,
                    f"the workspace package {package.name} did not build",
                    result,
                    fix=f"fix the build error shown below (try `uv build --wheel` in {package.path})",
                )
            wheels = sorted(out.glob("*.whl"))
            if all(wheel.name.endswith("-none-any.whl") for wheel in wheels):
                _keep_wheels(wheels, cache, entry, package.name, rebuild=request.options.rebuild)
                _BUILT_HERE.add(entry)
            return wheels  # a wheel with native code is built for this machine: never kept

    # Each `uv build` mostly waits on setting up its isolated build environment: run them side by side.
    with ThreadPoolExecutor(max_workers=len(packages) or 1) as pool:
        wheels = [wheel for built in pool.map(build_one, packages) for wheel in built]
    return sorted(wheels)


def _wheel_key(request: BuildRequest, package: Package, uv_version: str) -> str:
    """What decides a local package's wheel: its sources, and the tools that build it."""
    parts = {"library": LIBRARY_VERSION, "uv": uv_version, "sources": request.workspace.fingerprint(package.name)}
    return _key(package.name, parts)


def _key(name: str, parts: dict[str, object]) -> str:
    """A cache entry's name: readable ``name``, then a digest of everything that decides its content."""
    return f"{name}-{hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]}"


_WHEEL_LOCKS: dict[Path, threading.Lock] = {}
_WHEEL_LOCKS_LOCK = threading.Lock()
_BUILT_HERE: set[Path] = set()  # wheel entries this process built: fresh even when rebuilding


def _wheel_lock(entry: Path) -> threading.Lock:
    with _WHEEL_LOCKS_LOCK:
        return _WHEEL_LOCKS.setdefault(entry, threading.Lock())


def _keep_wheels(wheels: list[Path], cache: Path, entry: Path, package: str, *, rebuild: bool) -> None:
    """Put pure wheels into the wheel cache, laid out as a build entry: ``asset/`` and ``build.json``."""
    work = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=cache))
    try:
        (work / ASSET).mkdir()
        for wheel in wheels:
            shutil.copy2(wheel, work / ASSET / wheel.name)
        _cache.write_info(work, {"package": package, "manifest": _cache.manifest(work / ASSET)})
        _publish(work, entry, rebuild=rebuild)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _not_source(folder: str, names: list[str]) -> list[str]:
    """What a copy of a package's sources leaves out: tool folders, and a cloud assembly at its root."""
    return [n for n in names if skipped(n) or is_assembly(Path(folder, n))]


def _copy_modules(package: Package, site: Path) -> None:
    """An application package (no build system): its top-level modules and packages go to the root."""
    for entry in sorted(package.path.iterdir()):
        if entry.name.startswith(".") or skipped(entry.name) or entry.name in ("tests", "test") or (is_assembly(entry)):
            continue
        if entry.is_file() and entry.suffix == ".py":
            shutil.copy2(entry, site / entry.name)
        elif entry.is_dir() and any(entry.rglob("*.py")):
            shutil.copytree(
                entry, site / entry.name, ignore=lambda _d, names: [n for n in names if skipped(n)], dirs_exist_ok=True
            )


def _tidy(site: Path, exclude: tuple[str, ...]) -> None:
    """Drop what a Lambda function can't use: scripts, uv's lock file, stale bytecode, excluded files."""
    shutil.rmtree(site / "bin", ignore_errors=True)
    (site / ".lock").unlink(missing_ok=True)
    for cache_dir in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache_dir, ignore_errors=True)
    if exclude:
        for path in sorted(site.rglob("*")):
            rel = path.relative_to(site).as_posix()
            if path.is_file() and any(fnmatch(rel, pattern) for pattern in exclude):
                path.unlink()
    for record in site.glob("*.dist-info/RECORD"):
        _prune_record(record, site)


def _normalize_modes(site: Path) -> None:
    """Modes follow the umask of whoever built: make them the same everywhere (Lambda needs only read).

    Last, after bytecode: the CLI's zip records each file's mode, and the asset hash does not, so a
    0600 .pyc from a umask-077 build would give other zip bytes under the same S3 key.
    """
    for path in site.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def _prune_record(record: Path, site: Path) -> None:
    """Keep the RECORD lines of files that are in the asset; drop those pointing outside or removed."""
    kept = []
    for line in record.read_text().splitlines():
        path = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
        resolved = (site / path).resolve()
        if resolved.is_relative_to(site.resolve()) and (resolved.is_file() or resolved == record.resolve()):
            kept.append(line)
    tmp = record.with_suffix(".tmp")
    tmp.write_text("\n".join(kept) + "\n")
    tmp.replace(record)


def _compile(request: BuildRequest, uv: str, runner: Runner, site: Path) -> None:
    python = _uv.find_python(uv, request.target.python)
    if python is None:
        raise ToolError(
            f"no Python {request.target.python} interpreter on this machine to compile bytecode for "
            f"{request.target.runtime}",
            package=request.package,
            target=request.target,
            fix=f"install Python {request.target.python} where uv finds it (`uv python install "
            f"{request.target.python}`, or put python{request.target.python} on PATH), or build without "
            "bytecode: UvOptions(bytecode=False)",
        )
    result = runner.run(_uv.compile_bytecode(python, site), cwd=site.parent, env=_uv.COMPILE_ENV)
    if _uv.failed(result):
        raise _error(
            request,
            f"compiling bytecode with {python} failed",
            result,
            fix="check the interpreter, or build without bytecode: UvOptions(bytecode=False)",
        )


def _error(
    request: BuildRequest, problem: str, result: Result, *, fix: str, kind: type[UvError] = ToolError
) -> UvError:
    return kind(problem, package=request.package, target=request.target, fix=fix, details=result.describe())


def _export_error(request: BuildRequest, result: Result) -> UvError:
    if "--locked" in result.stderr or "needs to be updated" in result.stderr:
        return _error(
            request,
            "uv.lock is out of date with the workspace's pyproject.toml files",
            result,
            kind=WorkspaceError,
            fix=f"run `uv lock` in {request.workspace.root} and commit uv.lock (cdk-uv-aspect never changes it)",
        )
    return _error(
        request,
        "uv could not export the package's locked requirements",
        result,
        kind=WorkspaceError,
        fix=f"run `uv export --package {request.package} --no-dev` in {request.workspace.root} "
        "and fix what it reports; `uv lock` rewrites a damaged lock",
    )


# Signs in uv's stderr that it needed the network and had none (offline mode, or no index reachable).
_OFFLINE = (
    "network was disabled",
    "Network connectivity is disabled",
    "dns error",
    "error sending request",
    "failed to lookup address",
)


def _network_error(request: BuildRequest, result: Result, needed_for: str) -> UvError | None:
    if not any(sign in result.stderr for sign in _OFFLINE):
        return None
    return _error(
        request,
        f"uv needed the network to {needed_for}, and could not reach the package index "
        "(offline: UV_OFFLINE is set, or no registry is reachable)",
        result,
        fix="run the synth once with network access (uv keeps what it downloads in its cache, and later "
        "builds work offline), or point uv at a reachable index (UV_INDEX_URL / UV_DEFAULT_INDEX)",
    )


def _install_error(request: BuildRequest, result: Result) -> UvError:
    if offline := _network_error(request, result, "download the locked dependencies' wheels"):
        return offline
    if any(sign in result.stderr for sign in _NO_WHEEL):
        t = request.target
        named = _DEPENDENCY.search(result.stderr)
        dependency = "".join(g or "" for g in named.groups()) if named else "a locked dependency"
        return _error(
            request,
            f"{dependency} has no wheel that loads on {t.os} (glibc {t.glibc}, {t.machine}); "
            "a source distribution would be built for this machine, not for Lambda",
            result,
            kind=WheelError,
            fix="pin a release of that dependency that publishes a wheel for "
            f"{t.python_platform} (`uv add 'name<version'`), or move the function to a newer runtime "
            "(python3.12+ runs on Amazon Linux 2023, glibc 2.34), or to the other architecture",
        )
    return _error(
        request,
        "uv could not install the locked dependencies",
        result,
        fix="fix what uv reports below; with no network, a warm uv cache is needed",
    )
