"""Every uv (and compileall) command line a build runs, composed in one place, and what uv's errors mean.

A build runs, in order:

1. ``uv export``: the package's locked runtime closure (no dev groups) as pinned, hashed requirements;
   local packages come out as paths.
2. ``uv pip install --target``: the third-party requirements, wheels only, for the target platform.
3. ``uv build --wheel``: each local package, from a private copy of its sources, then ``uv pip install
   --target`` of those wheels.
4. ``python -m compileall`` with the target's own interpreter: hash-based bytecode recorded under
   ``/var/task``.

When step 2 finds a locked dependency with no wheel for the target, ``_docker`` runs the same
``install_locked`` command in a container of the target's platform (the Docker fallback).

The second half reads uv's stderr: which failures are a stale lock, no network, or no wheel for the
target, each turned into an error that says what to do. (Longer than most modules on purpose: a flag
and the failures it can cause are read in one place.)
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from . import _state
from ._errors import ToolError, UvError, WheelError, WorkspaceError
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


def export(uv: str, package: str, lock: str, out: Path) -> list[str]:
    return [
        uv,
        "export",
        "--package",
        package,
        f"--{lock}",
        "--no-dev",
        "--no-editable",
        "--format",
        "requirements.txt",
        "--no-header",
        "--quiet",
        "--output-file",
        str(out),
    ]


def _pip_install(uv: str, target: Target, site: Path, python: str | None = None) -> list[str]:
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
    ]


def install_locked(uv: str, target: Target, site: Path, requirements: Path, *, python: str | None = None) -> list[str]:
    """Install the locked third-party requirements; ``python``: the target's interpreter (in a container)."""
    # --no-build here: a wheel built on this machine would be for this machine, not for the target. In a
    # container of the target's platform, building a source distribution is what the container is for.
    no_build = [] if python else ["--no-build"]
    return [*_pip_install(uv, target, site, python), "--require-hashes", *no_build, "-r", str(requirements)]


def build_wheel(uv: str, source: Path, out: Path) -> list[str]:
    # --no-sources: the copy is outside the workspace, and [tool.uv.sources] only steers uv's resolution
    # of the build requirements, never the wheel's content.
    return [uv, "build", "--wheel", "--no-sources", "--quiet", "--out-dir", str(out), str(source)]


def install_wheels(uv: str, target: Target, site: Path, wheels: Sequence[Path]) -> list[str]:
    return [*_pip_install(uv, target, site), *map(str, wheels)]


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


def compile_bytecode(python: str, site: Path) -> list[str]:
    # -s: no user site. Not -I/-E: they would ignore PYTHONHASHSEED, which keeps marshal output stable.
    # Unchecked hash-based pycs: Lambda code never changes under its bytecode, so skip the source check.
    return [python, "-s", "-c", COMPILE, str(site), TASK_ROOT]


COMPILE_ENV = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "", "PYTHONPATH": ""}


def split_requirements(text: str) -> tuple[str, list[str]]:
    """Split ``uv export`` output into registry requirements (kept as text) and local package paths."""
    registry, local = [], []
    for block in re.split(r"(?<!\\)\n", text):
        line = block.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith((".", "/", "file:", "-e ")):
            local.append(line.removeprefix("-e ").strip())
        else:
            registry.append(block)
    return "\n".join(registry) + "\n", local


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
    """What failed, for whom: turns a failed command into the error a user reads."""

    package: str
    target: Target
    root: Path  # the workspace

    def error(self, problem: str, result: Result, *, fix: str, kind: type[UvError] = ToolError) -> UvError:
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

    def export(self, result: Result) -> UvError:
        problem = "uv could not export the package's locked requirements"
        if missing := self.no_interpreter(problem, result):
            return missing
        if "--locked" in result.stderr or "needs to be updated" in result.stderr:
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
            fix=f"run `uv export --package {self.package} --no-dev` in {self.root} and fix what it reports; "
            "`uv lock` rewrites a damaged lock",
        )

    def network(self, result: Result, needed_for: str) -> UvError | None:
        """The error for a command that needed the network and had none; None for any other failure."""
        if _NO_INTERPRETER.search(result.stderr) or not any(sign in result.stderr for sign in _OFFLINE):
            return None
        return self.error(
            f"uv needed the network to {needed_for}, and could not reach the package index "
            "(offline: UV_OFFLINE is set, or no registry is reachable)",
            result,
            fix="run the synth once with network access (uv keeps what it downloads in its cache, and later "
            "builds work offline), or point uv at a reachable index (UV_INDEX_URL / UV_DEFAULT_INDEX)",
        )

    def install(self, result: Result) -> UvError:
        if offline := self.network(result, "download the locked dependencies' wheels"):
            return offline
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


# The first runtime on the newest Amazon Linux: where wheels for a newer glibc load.
_NEWEST_OS = next(r for r in RUNTIMES.values() if r.os == AMAZON_LINUX_2023)

# Signs in uv's stderr that it needed the network and had none (offline mode, or no index reachable).
_OFFLINE = (
    "network was disabled",
    "Network connectivity is disabled",
    "dns error",
    "error sending request",
    "failed to lookup address",
)
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
