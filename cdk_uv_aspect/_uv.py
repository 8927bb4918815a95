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

The second half reads uv's stderr: which failures are a stale lock, no network, or no wheel for the
target, each turned into an error that says what to do. (Longer than most modules on purpose: a flag
and the failures it can cause are read in one place.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
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
UV_ENV = {"UV_NO_INSTALLER_METADATA": "1", "UV_LINK_MODE": "copy", "UV_NO_PROGRESS": "1"}

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
    return [uv, "build", "--wheel", "--no-sources", "--quiet", "--out-dir", str(out), str(source)]


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


COMPILE = (
    "import compileall, py_compile, sys; "
    "ok = compileall.compile_dir(sys.argv[1], ddir=sys.argv[2], quiet=2, workers=0, "
    "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH); "
    "sys.exit(0)"
)


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


def find_python(uv: str, version: str, runner: Runner | None = None) -> str | None:
    """An interpreter of exactly ``version`` (e.g. "3.12") on this machine, found the way uv finds one."""
    key = ("python", uv, version)
    with _state.LOCK:
        if key in _state.TOOLS:
            found: str | None = _state.TOOLS[key]
            return found
    result = (runner or Runner()).run(
        [uv, "python", "find", "--no-project", "--no-python-downloads", version],
        env={"UV_PYTHON_DOWNLOADS": "never"},
    )
    path = result.stdout.strip()
    found = path if result.ok and path else None
    with _state.LOCK:
        _state.TOOLS[key] = found
    return found


# --- what uv's errors mean ------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What failed, for whom: turns a failed command into the error a user reads."""

    package: str
    target: Target
    root: Path  # the workspace

    def error(self, problem: str, result: Result, *, fix: str, kind: type[UvError] = ToolError) -> UvError:
        return kind(problem, package=self.package, target=self.target, fix=fix, details=result.describe())

    def export(self, result: Result) -> UvError:
        if refused := self.refused(result, "check uv.lock against the indexes"):
            return refused
        if "--locked" in result.stderr or "needs to be updated" in result.stderr:
            return self.error(
                "uv.lock is out of date with the workspace's pyproject.toml files",
                result,
                kind=WorkspaceError,
                fix=f"run `uv lock` in {self.root} and commit uv.lock (cdk-uv-aspect never changes it)",
            )
        return self.error(
            "uv could not export the package's locked requirements",
            result,
            kind=WorkspaceError,
            fix=f"run `uv export --package {self.package} --no-default-groups` in {self.root} and fix what it reports; "
            "`uv lock` rewrites a damaged lock",
        )

    def network(self, result: Result, needed_for: str) -> UvError | None:
        """The error for a command that needed the network and had none (or was refused); None for any other."""
        if refused := self.refused(result, needed_for):
            return refused
        if not any(sign in result.stderr for sign in _OFFLINE):
            return None
        return self.error(
            f"uv needed the network to {needed_for}, and could not reach the package index "
            "(offline: UV_OFFLINE is set, or no registry is reachable)",
            result,
            fix="run the synth once with network access (uv keeps what it downloads in its cache, and later "
            "builds work offline), or point uv at a reachable index (UV_INDEX_URL / UV_DEFAULT_INDEX)",
        )

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
