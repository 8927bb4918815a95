"""Every uv (and compileall) command line a build runs, composed in one place, and what uv's errors mean.

A build runs, in order:

1. ``uv export``: the package's locked runtime closure (no dependency groups but those chosen, the
   chosen extras) as pinned, hashed requirements; local packages come out as paths.
2. ``uv pip install --target``: the third-party requirements, wheels only, for the target platform.
3. ``uv build --wheel``: each local package, from a private copy of its sources, then ``uv pip install
   --target`` of those wheels.
4. ``python -m compileall`` with the target's own interpreter: hash-based bytecode recorded under
   ``/var/task``.

When step 2 finds a locked dependency with no wheel for the target, ``_docker`` runs the same
``install_locked`` command in a container of the target's platform (the Docker fallback).

The second half reads uv's stderr: which failures are a timeout, the network (offline, DNS, refused,
no answer), an untrusted TLS certificate, a stale lock, a hash mismatch, no wheel for the target or a
build backend's, each turned into an error that says what to do. (Longer than most modules on purpose: a flag
and the failures it can cause are read in one place.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import sysconfig
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from packaging.version import InvalidVersion, Version

from . import _state
from ._errors import CredentialsError, ToolError, UvError, WheelError, WorkspaceError
from ._index import Refusal
from ._lambda import AMAZON_LINUX_2023, RUNTIMES
from ._runner import Result, Runner
from ._target import Target

MIN_UV = Version("0.8.0")

# Environment of every uv call: no installer metadata (INSTALLER, REQUESTED, direct_url.json with the
# build folder's path), and copies rather than links, so a file we rewrite is never uv's cached copy.
# NO_COLOR: uv's messages are read, and quoted in errors, as plain text (it wins over FORCE_COLOR).
UV_ENV = {"UV_NO_INSTALLER_METADATA": "1", "UV_LINK_MODE": "copy", "UV_NO_PROGRESS": "1", "NO_COLOR": "1"}

# Where Lambda unpacks a zip function's code: recorded in bytecode as the source path.
TASK_ROOT = "/var/task"


def export(
    uv: str,
    package: str,
    lock: str,
    out: Path,
    *,
    extras: Sequence[str] = (),
    groups: Sequence[str] = (),
    prune: Sequence[str] = (),
) -> list[str]:
    """The package's locked runtime closure, plus the chosen extras and groups, less what is pruned.

    ``--no-default-groups``, not ``--no-dev``: ``--no-dev`` drops only the ``dev`` group, and every other
    group listed in ``[tool.uv] default-groups`` (a ``lint`` or ``test`` group) would be deployed. Both it
    and ``--prune`` (a package and what only it needs) are in uv since 0.5, older than ``MIN_UV``.
    """
    chosen = [*(f"--extra={e}" for e in extras), *(f"--group={g}" for g in groups), *(f"--prune={p}" for p in prune)]
    return [
        uv,
        "export",
        "--package",
        package,
        f"--{lock}",
        "--no-default-groups",
        *chosen,
        "--no-editable",
        "--format",
        "requirements.txt",
        "--no-header",
        "--quiet",
        "--output-file",
        str(out),
    ]


def _pip_install(
    uv: str, target: Target, site: Path, python: str | None = None, config: Path | None = None
) -> list[str]:
    # python=None: this machine, installing for the target's platform. A path: an interpreter of the
    # target's own platform (in a container), so the platform flags would only restate it.
    platform = ["--python-platform", target.python_platform, "--python-version", target.python]
    return [
        uv,
        "pip",
        "install",
        "--target",
        str(site),
        "--python",
        python or sys.executable,
        *([] if python else platform),
        "--no-deps",
        "--quiet",
        *(["--project", str(config)] if config else []),
    ]


def install_locked(
    uv: str,
    target: Target,
    site: Path,
    requirements: Path,
    *,
    python: str | None = None,
    index: str | None = None,
    config: Path | None = None,
) -> list[str]:
    """Install the locked third-party requirements; ``python``: the target's interpreter (in a container);
    ``index``: the explicit index (``name=url``) they are pinned to (see ``_index.split``); ``config``: the
    folder ``pip_config`` wrote, whose uv settings the install reads."""
    # --no-build here: a wheel built on this machine would be for this machine, not for the target. In a
    # container of the target's platform, building a source distribution is what the container is for.
    no_build = [] if python else ["--no-build"]
    pinned = ["--index", index] if index else []
    return [
        *_pip_install(uv, target, site, python, config),
        "--require-hashes",
        *no_build,
        *pinned,
        "-r",
        str(requirements),
    ]


def build_wheel(uv: str, source: Path, out: Path) -> list[str]:
    # --no-sources: the copy is outside the workspace, and [tool.uv.sources] only steers uv's resolution
    # of the build requirements, never the wheel's content.
    # Not --quiet: it would hide the build backend's own output, which says why a build failed.
    return [uv, "build", "--wheel", "--no-sources", "--out-dir", str(out), str(source)]


def install_wheels(
    uv: str, target: Target, site: Path, wheels: Sequence[Path], *, config: Path | None = None
) -> list[str]:
    return [*_pip_install(uv, target, site, config=config), *map(str, wheels)]


# [tool.uv] settings that describe the project, or that the lock has already applied. `uv pip install`
# reads the settings of the project it runs in, constraint and override dependencies included, and
# under --require-hashes refuses any of them not pinned with `==`: a locked install must not see them.
_NOT_FOR_PIP = frozenset(
    {
        "build-backend",
        "build-constraint-dependencies",
        "cache-keys",
        "conflicts",
        "constraint-dependencies",
        "default-groups",
        "dev-dependencies",
        "environments",
        "managed",
        "override-dependencies",
        "package",
        "required-environments",
        "sources",
        "workspace",
    }
)
# Settings holding paths, which uv reads relative to the file they are in: made absolute in the copy.
_PATH_SETTINGS = ("cache-dir", "find-links", "index-url", "extra-index-url", "index")


def pip_config(root: Path, folder: Path) -> Path:
    """A folder whose ``pyproject.toml`` holds the workspace's uv settings for ``uv pip install``.

    The settings uv would read for the workspace (the nearest ``uv.toml``, or ``pyproject.toml`` with a
    ``[tool.uv]`` table, from ``root`` upward), without those in ``_NOT_FOR_PIP``: indexes, find-links,
    credentials' index names and every other setting stay effective. uv runs with ``--project folder``,
    where it finds this file first, wherever ``folder`` is (a build cache inside the project too);
    user-level and system-level uv.toml still apply, as they do to any uv command.
    """
    settings, base = _uv_settings(root)
    kept = {k: _absolute(k, v, base) for k, v in settings.items() if k not in _NOT_FOR_PIP}
    if isinstance(kept.get("pip"), dict):
        kept["pip"] = {k: _absolute(k, v, base) for k, v in kept["pip"].items()}
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by cdk-uv-aspect for `uv pip install`: the workspace's uv settings, see _uv.pip_config", ""]
    lines += ["[tool.uv]", *(f"{json.dumps(k)} = {_toml(v)}" for k, v in sorted(kept.items()) if k != "pip")]
    if isinstance(kept.get("pip"), dict):
        lines += ["", "[tool.uv.pip]", *(f"{json.dumps(k)} = {_toml(v)}" for k, v in sorted(kept["pip"].items()))]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return folder


def _uv_settings(root: Path) -> tuple[dict[str, Any], Path]:
    """The uv settings table that applies to the workspace at ``root``, and the folder it was read in."""
    for folder in (root, *root.parents):
        try:
            if (folder / "uv.toml").is_file():
                return tomllib.loads((folder / "uv.toml").read_text()), folder
            if (folder / "pyproject.toml").is_file():
                table = tomllib.loads((folder / "pyproject.toml").read_text()).get("tool", {}).get("uv")
                if isinstance(table, dict):
                    return table, folder
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise WorkspaceError(
                f"the uv settings in {folder} can't be read: {exc}",
                fix="fix the file (`uv lock --check` shows what uv makes of it)",
            ) from exc
    return {}, root


def _absolute(key: str, value: Any, base: Path) -> Any:
    if key not in _PATH_SETTINGS:
        return value
    if isinstance(value, list):
        return [_absolute(key, v, base) for v in value]
    if isinstance(value, dict):  # an [[index]] entry
        return {k: _absolute(key, v, base) if k == "url" else v for k, v in value.items()}
    if isinstance(value, str) and "://" not in value and not value.startswith("file:"):
        return str(base / value) if not Path(value).is_absolute() else value
    return value


def _toml(value: Any) -> str:
    """A TOML inline value (the settings are strings, numbers, booleans, arrays and tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


# Compiles the folder, then names each .py file left without bytecode and why: compileall only counts
# them. Runs in the target's interpreter (Python 3.9+); prints a JSON list on stdout.
COMPILE = r"""
import compileall, importlib.util, json, os, py_compile, sys
site, ddir = sys.argv[1:3]
compileall.compile_dir(site, ddir=ddir, quiet=2, workers=0,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
failed = []
for folder, dirs, files in os.walk(site):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__")
    for name in sorted(files):
        path = os.path.join(folder, name)
        if not name.endswith(".py") or os.path.exists(importlib.util.cache_from_source(path)):
            continue
        rel = os.path.relpath(path, site).replace(os.sep, "/")
        try:
            with open(path, "rb") as f:
                compile(f.read(), ddir + "/" + rel, "exec", dont_inherit=True)
        except SyntaxError as exc:
            failed.append({"file": rel, "line": exc.lineno, "error": type(exc).__name__ + ": " + str(exc.msg)})
        except Exception as exc:
            failed.append({"file": rel, "line": None, "error": type(exc).__name__ + ": " + str(exc)})
print(json.dumps(failed))
"""


def compile_bytecode(python: str, site: Path, recorded_at: str = TASK_ROOT) -> list[str]:
    # -s: no user site. Not -I/-E: they would ignore PYTHONHASHSEED, which keeps marshal output stable.
    # Unchecked hash-based pycs: Lambda code never changes under its bytecode, so skip the source check.
    # recorded_at: where Lambda puts the folder (/var/task; a layer's python/ is at /opt/python).
    return [python, "-s", "-c", COMPILE, str(site), recorded_at]


COMPILE_ENV = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "", "PYTHONPATH": ""}


def split_requirements(text: str) -> tuple[str, list[str]]:
    """Split ``uv export`` output into requirements to install (kept as text) and local package paths.

    A locked wheel file (``./wheels/x-1.0-py3-none-any.whl --hash=...``) is installed as it is, its hash
    checked, with the registry's; a local folder (``./packages/api``, ``file:///abs/lib``) is a package to
    build, named by its path alone.
    """
    registry, local = [], []
    for block in re.split(r"(?<!\\)\n", text):
        line = block.strip()
        if not line or line.startswith("#"):
            continue
        first = line.removeprefix("-e ").strip().split()[0].rstrip("\\")
        if first.startswith((".", "/", "file:")) and not first.endswith(".whl"):
            local.append(first)
        else:
            registry.append(block)
    return "\n".join(registry) + "\n", local


def local_path(line: str, root: Path) -> Path:
    """The folder a local requirement of ``split_requirements`` names: relative to ``root``, or a file URL."""
    if line.startswith("file:"):
        return Path(url2pathname(urlparse(line).path)).resolve()
    return (root / line).resolve()


def pins(text: str) -> dict[str, str]:
    """Registry requirements of ``uv export`` output: normalized name -> pinned version."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


@dataclass(frozen=True)
class Uv:
    """The uv binary, checked once per process: present and new enough."""

    path: str
    version: str

    @staticmethod
    def locate(configured: str | None, runner: Runner | None = None) -> Uv:
        key = ("uv", configured or "")
        with _state.LOCK:
            found: Uv | None = _state.TOOLS.get(key)
        if found is None:
            found = _locate(configured, runner or Runner())
            with _state.LOCK:
                _state.TOOLS[key] = found
        return found


def _locate(configured: str | None, runner: Runner) -> Uv:
    path = configured or _bundled_uv() or shutil.which("uv")
    if path is None:
        raise ToolError(
            "uv was not found",
            fix="install uv (`pip install uv`, it comes with cdk-uv-aspect) or pass UvOptions(uv=...)",
        )
    result = runner.run([path, "--version"])
    if result.not_found:
        raise ToolError(
            f"uv was not found at {path}",
            fix="install uv (`pip install uv`) or pass the path of a uv binary with UvOptions(uv=...)",
        )
    match = re.search(r"\b(\d+\.\d+\.\d+)", result.stdout)
    try:
        version = Version(match.group(1)) if match and result.ok else None
    except InvalidVersion:
        version = None
    if version is None:
        raise ToolError(
            f"{path} did not say its version",
            fix="check the uv binary (`uv --version`) or pass another one with UvOptions(uv=...)",
            details=result.describe(),
        )
    if version < MIN_UV:
        raise ToolError(
            f"uv {version} at {path} is older than {MIN_UV}, the oldest cdk-uv-aspect works with",
            fix="upgrade uv (`pip install -U uv` or `uv self update`)",
        )
    return Uv(path, str(version))


def _bundled_uv() -> str | None:
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a dependency
        return None
    try:
        return find_uv_bin()
    except FileNotFoundError:
        return None


def find_python(uv: str, version: str, runner: Runner | None = None, *, cwd: Path | None = None) -> str | None:
    """An interpreter of exactly ``version`` ("3.12") on this machine: bytecode and ``cdk-uv invoke`` need one.

    In order: the Python running this process when it is that version; the one ``uv python find`` finds;
    pyenv, asdf, mise and Homebrew installs (found even when not selected: a pyenv shim of an unselected
    version makes ``uv python find`` fail); and last, one uv downloads, where uv's ``python-downloads``
    setting (``UV_PYTHON_DOWNLOADS``, uv.toml, ``[tool.uv]`` of the workspace at ``cwd``) lets uv download
    one by itself (its default). Looked up once per process; ``None`` when there is none.
    """
    key = ("python", uv, version)
    with _state.LOCK:
        if key in _state.TOOLS:
            cached: str | None = _state.TOOLS[key]
            return cached
    runner = runner or Runner()
    found = _running_python(version) or _uv_python(uv, version, runner) or _installed_python(version, runner)
    if found is None:
        found = _downloaded_python(uv, version, runner, cwd)
    with _state.LOCK:
        _state.TOOLS[key] = found
    return found


def _running_python(version: str) -> str | None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    # CPython only, and not a free-threaded build (its bytecode is not the default build's).
    gil_disabled = sysconfig.get_config_var("Py_GIL_DISABLED")
    if running == version and sys.implementation.name == "cpython" and not gil_disabled and sys.executable:
        return sys.executable
    return None


def _uv_python(uv: str, version: str, runner: Runner) -> str | None:
    result = runner.run(
        [uv, "python", "find", "--no-project", "--no-python-downloads", version],
        env={**UV_ENV, "UV_PYTHON_DOWNLOADS": "never"},
    )
    path = result.stdout.strip()
    return path if result.ok and path else None


def _install_roots() -> dict[str, list[Path]]:
    """Where pyenv, asdf, mise (their folder of versions) and Homebrew (its prefixes) install Pythons."""
    home, env = Path.home(), os.environ
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    brews = [env.get("HOMEBREW_PREFIX"), "/opt/homebrew", "/usr/local", "/home/linuxbrew/.linuxbrew"]
    return {
        "pyenv": [Path(env.get("PYENV_ROOT") or home / ".pyenv") / "versions"],
        "asdf": [Path(env.get("ASDF_DATA_DIR") or home / ".asdf") / "installs" / "python"],
        "mise": [Path(env.get("MISE_DATA_DIR") or data / "mise") / "installs" / "python"],
        "Homebrew": [Path(p) for p in dict.fromkeys(brews) if p],
    }


def python_installs(version: str) -> list[Path]:
    """Where pyenv, asdf, mise and Homebrew put a Python ``version``, newest patch release first."""
    roots = _install_roots()
    release = re.compile(rf"{re.escape(version)}\.(\d+)")
    found: list[tuple[int, Path]] = []
    for root in roots["pyenv"] + roots["asdf"] + roots["mise"]:
        for folder in root.glob(f"{version}.*"):
            if match := release.fullmatch(folder.name):
                found.append((int(match.group(1)), folder / "bin" / f"python{version}"))
    kegs = [prefix / "opt" / f"python@{version}" / "bin" / f"python{version}" for prefix in roots["Homebrew"]]
    return [path for _, path in sorted(found, key=lambda f: -f[0])] + kegs


_SAYS_VERSION = "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"


def _installed_python(version: str, runner: Runner) -> str | None:
    for candidate in python_installs(version):
        if candidate.is_file():
            result = runner.run([str(candidate), "-I", "-c", _SAYS_VERSION])
            if result.ok and result.stdout.split()[:1] == [version]:
                return str(candidate)
    return None


def _downloaded_python(uv: str, version: str, runner: Runner, cwd: Path | None) -> str | None:
    """The interpreter ``uv run --python`` uses, which uv downloads when python-downloads is "automatic"."""
    result = runner.run(
        [uv, "run", "--no-project", "--python", version, "--", "python", "-I", "-c", _SAYS_VERSION],
        cwd=cwd,
        env={"NO_COLOR": "1", "UV_NO_PROGRESS": "1"},
    )
    answer = result.stdout.split(maxsplit=1)
    if result.ok and len(answer) == 2 and answer[0] == version:
        return answer[1].strip()
    with _state.LOCK:
        _state.TOOLS[("python-download", uv, version)] = result.stderr.strip()
    return None


def no_python(uv: str, version: str, purpose: str, **context: object) -> ToolError:
    """The error for no Python ``version`` (after ``find_python``): every way to go on, and what was tried."""
    with _state.LOCK:
        download = _state.TOOLS.get(("python-download", uv, version)) or ""
    said = " ".join(download.split())[:300]
    return ToolError(
        f"no Python {version} interpreter on this machine to {purpose}",
        fix=f"install Python {version}: `uv python install {version}` (or let uv download it by itself: "
        f'UV_PYTHON_DOWNLOADS=automatic, python-downloads = "automatic"), `pyenv install {version}` (pyenv, asdf, '
        "mise and Homebrew installs are found without being selected), or your OS's package; or point "
        "UV_PYTHON_INSTALL_DIR at the folder of uv-managed Pythons that has it; or build without bytecode, "
        "UvOptions(bytecode=False), at a cost: each cold start compiles the imported modules again, about 40% "
        "more import time",
        details=f"  looked at: this process's Python ({sys.version_info.major}.{sys.version_info.minor}), "
        f"`uv python find {version}`, "
        + ", ".join(f"{name} ({', '.join(map(str, roots))})" for name, roots in _install_roots().items())
        + f"\n  uv download: {said or 'not tried'}",
        **context,  # type: ignore[arg-type]
    )


# --- what uv's errors mean ------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What failed, for whom: turns a failed command into the error a user reads.

    Each kind of failure has its own message and fix, read from uv's output in this order: the command
    timed out (stopped by us), the network (offline, DNS, refused, no answer), TLS certificates, a
    stale lock, a hash mismatch, no wheel for the target, the build backend; anything else is reported
    as uv's failure with the lines of its output that name the cause.
    """

    package: str
    target: Target
    root: Path  # the workspace

    def error(self, problem: str, result: Result, *, fix: str, kind: type[UvError] = ToolError) -> UvError:
        if result.timed_out:
            return self.timed_out(result)
        return self.no_interpreter(problem, result) or kind(
            problem, package=self.package, target=self.target, fix=fix, details=result.describe()
        )

    def no_interpreter(self, problem: str, result: Result) -> UvError | None:
        """The error for a uv command that needed a Python it could not find; None for any other failure.

        Whatever the command was for (``uv export`` of a package with dynamic metadata, ``uv build``), the
        fix is an interpreter: never ``uv lock``.
        """
        wanted = _NO_INTERPRETER.search(result.stderr)
        if wanted is None:
            return None
        spec = wanted.group(1)
        return ToolError(
            f"{problem}: uv found no Python {spec + ' ' if spec else ''}interpreter it could use "
            "(uv.lock is not the cause)",
            package=self.package,
            target=self.target,
            fix=f"install one where uv finds it (`uv python install '{spec or self.target.python}'`, pyenv, or your "
            "OS's package; a pyenv shim of a version pyenv has not selected fails, so select it: PYENV_VERSION), "
            "or let uv download it by itself (UV_PYTHON_DOWNLOADS=automatic, uv's default)",
            details=result.describe(),
        )

    def timed_out(self, result: Result, of: str = "") -> UvError:
        """The error for a command stopped after its timeout; ``of``: what it was working on, if not the package."""
        limit = f"{result.timeout:g} s" if result.timeout else "its time limit"
        return ToolError(
            f"`{result.command}`{f' of {of}' if of else ''} did not finish within {limit} and was stopped",
            package=self.package,
            target=self.target,
            fix="if it is only slow (a large download, a slow build backend, a container under emulation), "
            "allow more time: UvOptions(command_timeout=<seconds>) or $CDK_UV_COMMAND_TIMEOUT; if it hangs, "
            "run the command below by hand to see what it waits for (a build hook, an index that does not "
            "answer)",
            details=result.describe(),
        )

    def uv_cache(self, result: Result) -> UvError | None:
        """The error for a uv that could not use its own cache (an unwritable HOME, say) or could not
        write (a full or read-only disk); None otherwise."""
        if found := _UV_CACHE.search(result.stderr):
            return self.error(
                f"uv could not use its cache at {found.group(1)}",
                result,
                fix="make that folder writable for this user, or give uv another one: UV_CACHE_DIR=<a writable "
                "folder> (uv's default is under HOME, or XDG_CACHE_HOME)",
            )
        for sign, problem in _DISK:
            if sign in result.stderr:
                return self.error(
                    f"uv could not write its files: {problem}",
                    result,
                    fix="free space on the disk named below (`cdk-uv cache prune --older-than 7`, `uv cache "
                    "prune`), or move the build cache (UvOptions(cache_dir=...) or $CDK_UV_CACHE_DIR) or uv's "
                    "cache (UV_CACHE_DIR) to a writable disk with room",
                )
        return None

    def export(self, result: Result) -> UvError:
        problem = "uv could not export the package's locked requirements"
        if missing := self.no_interpreter(problem, result):
            return missing
        if cause := self.uv_cache(result) or self.network(
            result, "check uv.lock against the workspace and the indexes (uv export --locked)"
        ):
            return cause
        if any(sign in result.stderr for sign in _STALE_LOCK):
            return self.error(
                "uv.lock is out of date with the workspace's pyproject.toml files",
                result,
                kind=WorkspaceError,
                fix=f"run `uv lock` in {self.root} and commit uv.lock (cdk-uv-aspect never changes it)",
            )
        return self.error(
            problem,
            result,
            kind=WorkspaceError,
            fix=f"run `uv export --package {self.package} --no-default-groups` in {self.root} and fix what it reports; "
            "`uv lock` rewrites a damaged lock",
        )

    def network(self, result: Result, needed_for: str) -> UvError | None:
        """The error for a command that timed out, was refused by an index (credentials), or needed the
        network and could not use it (offline, DNS, connection refused, no answer, an untrusted TLS
        certificate); None for any other failure."""
        if result.timed_out:
            return self.timed_out(result)
        if refused := self.refused(result, needed_for):
            return refused
        out = result.stderr
        if _NO_INTERPRETER.search(out):
            return None
        index = _URL.search(out)
        where = f"the package index ({index.group(1)})" if index else "the package index"
        checks = "check the index URL (UV_DEFAULT_INDEX / UV_INDEX_URL / [[tool.uv.index]]) and any proxy (HTTPS_PROXY)"
        offline = (
            "with no network, a synth works when uv's cache already holds what is needed (run it once with "
            "network access)"
        )
        if _found(out, _OFFLINE):
            problem = (
                f"uv needed the network to {needed_for}, and network access is off (UV_OFFLINE is set, or --offline)"
            )
            fix = (
                "run the synth once with network access (uv keeps what it downloads in its cache, and later "
                "builds work offline), or unset UV_OFFLINE"
            )
        elif _found(out, _TLS):
            problem = f"uv needed {where} to {needed_for}, and did not trust its TLS certificate"
            fix = (
                "if a company proxy or a private certificate authority signs HTTPS traffic, let uv use the "
                "system's certificates (UV_NATIVE_TLS=1) or point SSL_CERT_FILE at that authority's bundle; "
                f"else {checks}. Do not turn certificate checks off for an index you deploy from"
            )
        elif _found(out, _NO_ANSWER):
            problem = (
                f"uv needed {where} to {needed_for}, and it did not answer in time (uv waits UV_HTTP_TIMEOUT "
                "seconds, default 30, and retries UV_HTTP_RETRIES times)"
            )
            fix = f"{checks}: it accepted the connection but did not answer; for a slow index raise UV_HTTP_TIMEOUT"
        elif _found(out, _DNS):
            problem = f"uv needed {where} to {needed_for}, and could not resolve its host name (DNS)"
            fix = f"{checks}, and the machine's DNS; {offline}"
        elif _found(out, _UNREACHABLE):
            problem = f"uv needed {where} to {needed_for}, and could not connect to it (refused or unreachable)"
            fix = f"{checks}; {offline}"
        elif _found(out, _NETWORK):
            problem = f"uv needed {where} to {needed_for}, and the request failed"
            fix = f"{checks}; {offline}"
        else:
            return None
        return ToolError(problem, package=self.package, target=self.target, fix=fix, details=result.describe())

    def refused(self, result: Result, needed_for: str) -> UvError | None:
        """The error for a command an index refused (wrong, expired or missing credentials); else None."""
        refusal = Refusal.find(result.stderr)
        if refusal is None:
            return None
        what = f" for {refusal.dependency}" if refusal.dependency else ""
        return self.error(
            f"{refusal.index} refused the credentials ({refusal.status}){what}: uv needed it to {needed_for}",
            result,
            kind=CredentialsError,
            fix=refusal.fix(self.root, os.environ),
        )

    def install(self, result: Result) -> UvError:
        if cause := self.uv_cache(result) or self.network(result, "download the locked dependencies' wheels"):
            return cause
        if mismatch := _HASH_MISMATCH.search(result.stderr):
            pinned = mismatch.group(1)
            name = pinned.split("==")[0]
            return self.error(
                f"the file uv downloaded for {pinned} does not have a hash that uv.lock records for it",
                result,
                fix=f"uv.lock was edited, or the index (or a proxy, or a mirror) serves another file under that "
                f"name: check `git diff uv.lock` in {self.root}. Only if you trust the index, "
                f"`uv lock --refresh-package {name}` records its hashes again",
            )
        if any(sign in result.stderr for sign in _NO_WHEEL):
            t = self.target
            named = _DEPENDENCY.search(result.stderr)
            dependency = "".join(g or "" for g in named.groups()) if named else "a locked dependency"
            return self.error(
                f"{dependency} has no wheel that loads on {t.os.name} (glibc {t.glibc}, {t.machine}); "
                "a source distribution would be built for this machine, not for Lambda",
                result,
                kind=WheelError,
                fix="pin a release of that dependency that publishes a wheel for "
                f"{t.python_platform} (`uv add 'name<version'`), or move the function to a newer runtime "
                f"({_NEWEST_OS.name}+ runs on {_NEWEST_OS.os.name}, glibc {_NEWEST_OS.os.glibc}), or to the other "
                "architecture",
            )
        return self.error(
            "uv could not install the locked dependencies",
            result,
            fix="fix what uv reports below; with no network, a warm uv cache is needed",
        )

    def build(self, result: Result, package: str, source: Path) -> UvError:
        """A local package's ``uv build`` failed: its build backend, or fetching the backend."""
        if result.timed_out:
            return self.timed_out(result, of=f"the workspace package {package}")
        if cause := self.uv_cache(result) or self.network(result, f"fetch the build backend of {package}"):
            return cause
        if _found(result.stderr, _BACKEND):
            call = _BACKEND_CALL.search(result.stderr)
            return self.error(
                f"the build backend of the workspace package {package} failed"
                + (f" ({call.group(1)})" if call else ""),
                result,
                fix=f"fix the error the backend reports below (its own output is shown; build hooks run here "
                f"too); `uv build --wheel` in {source} shows the same",
            )
        return self.error(
            f"the workspace package {package} did not build",
            result,
            fix=f"fix the build error shown below (try `uv build --wheel` in {source})",
        )


def _found(text: str, signs: Sequence[str]) -> bool:
    lowered = text.lower()
    return any(sign.lower() in lowered for sign in signs)


# The first runtime on the newest Amazon Linux: where wheels for a newer glibc load.
_NEWEST_OS = next(r for r in RUNTIMES.values() if r.os == AMAZON_LINUX_2023)

# Signs in uv's stderr, by kind of failure (matched without case). uv 0.13 prints "error: ..." then one
# "  cause: ..." line per cause; the signs are the words of those lines.
_OFFLINE = ("network was disabled", "network connectivity is disabled")
_TLS = (
    "invalid peer certificate",
    "certificate verify failed",
    "unknownissuer",
    "self-signed certificate",
    "self signed certificate",
    "certificate has expired",
    "unable to get local issuer certificate",
    "caused by: tls",
)
_NO_ANSWER = ("operation timed out", "network timeout", "timed out")
_DNS = ("dns error", "failed to lookup address", "name or service not known", "temporary failure in name resolution")
_UNREACHABLE = (
    "connection refused",
    "tcp connect error",
    "network is unreachable",
    "no route to host",
    "connection reset",
)
_NETWORK = ("error sending request", "request failed after")
_UV_CACHE = re.compile(r"Failed to initialize cache at `([^`]+)`")
_DISK = (
    ("No space left on device", "the disk is full"),
    ("Disk quota exceeded", "the disk quota is exceeded"),
    ("Read-only file system", "the file system is read-only"),
)
_STALE_LOCK = ("needs to be updated", "--locked")
_BACKEND = ("build backend returned an error", "build backend failed")
_BACKEND_CALL = re.compile(r"Call to `([^`]+)` failed")
# "Hash mismatch for `orjson==3.13.0`"
_HASH_MISMATCH = re.compile(r"Hash mismatch for `([^`]+)`")
# "Failed to fetch: https://index/simple/orjson/" or "error sending request for url (https://...)"
_URL = re.compile(r"(?:Failed to fetch:|for url \()\s*(https?://[^/\s)]+)")
# "No interpreter found for Python >=3.14 in managed installations or search path": not a lock problem.
# "Failed to inspect Python interpreter from first executable in the search path": a broken pyenv shim.
_NO_INTERPRETER = re.compile(r"No interpreter found for Python (.+?) in |Failed to inspect Python interpreter")
# Signs that the target has no installable wheel for a locked dependency.
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
