"""uv itself: the binary (found once per process, new enough), and every uv and compileall command line a
build runs, composed in one place.

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

The uv settings ``uv pip install`` reads are written by ``_pipconfig``; the interpreters found by
``_interpreters``; what uv's failures mean is read by ``_failure``.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from packaging.version import InvalidVersion, Version

from . import _state
from ._errors import ToolError
from ._lambda import TASK_ROOT
from ._runner import Runner
from ._target import Target

MIN_UV = Version("0.8.0")

# Environment of every uv call: no installer metadata (INSTALLER, REQUESTED, direct_url.json with the
# build folder's path), and copies rather than links, so a file we rewrite is never uv's cached copy.
# NO_COLOR: uv's messages are read, and quoted in errors, as plain text (it wins over FORCE_COLOR).
# COLUMNS: uv wraps its messages at the terminal's width (a CI runner's COLUMNS=80, say); read whole, unwrapped.
UV_ENV = {
    "UV_NO_INSTALLER_METADATA": "1",
    "UV_LINK_MODE": "copy",
    "UV_NO_PROGRESS": "1",
    "NO_COLOR": "1",
    "COLUMNS": "100000",
}


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


def check_lock(uv: str) -> list[str]:
    """Fail when uv.lock is out of date with the workspace's pyproject.toml files, as ``export --locked``
    would: checked once per synth, then each package is exported ``--frozen`` (a tenth of the time). Not
    ``--quiet``: uv 0.8 then says nothing at all of why it failed."""
    return [uv, "lock", "--locked"]


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


def build_wheel(uv: str, source: Path, out: Path, python: str | None = None) -> list[str]:
    # --no-sources: the copy is outside the workspace, and [tool.uv.sources] only steers uv's resolution
    # of the build requirements, never the wheel's content.
    # Not --quiet: it would hide the build backend's own output, which says why a build failed.
    # python: the interpreter of a prepared environment holding the build requirements (see
    # _wheels.shared_environments), instead of a fresh isolated one for this build.
    prepared = ["--no-build-isolation", "--python", python] if python else []
    return [uv, "build", "--wheel", "--no-sources", *prepared, "--out-dir", str(out), str(source)]


def venv(uv: str, folder: Path) -> list[str]:
    """A virtual environment for building: run in a package's folder, uv picks the interpreter it would
    pick to build that package (its requires-python, a .python-version)."""
    return [uv, "venv", "--quiet", str(folder)]


def install_build_requirements(uv: str, python: str, requires: Sequence[str]) -> list[str]:
    """A build system's requirements into a prepared environment, resolved as ``uv build`` resolves them."""
    return [uv, "pip", "install", "--quiet", "--python", python, *requires]


def install_wheels(
    uv: str, target: Target, site: Path, wheels: Sequence[Path], *, config: Path | None = None
) -> list[str]:
    return [*_pip_install(uv, target, site, config=config), *map(str, wheels)]


# Compiles the folder, then names each .py file left without bytecode and why: compileall only counts
# them. Runs in the target's interpreter (Python 3.9+); prints a JSON list on stdout.
COMPILE = r"""
import compileall, importlib.util, json, os, py_compile, sys
site, ddir = sys.argv[1:3]
workers = int(sys.argv[3]) if len(sys.argv) > 3 else 0
compileall.compile_dir(site, ddir=ddir, quiet=2, workers=workers,
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


def compile_bytecode(python: str, site: Path, recorded_at: str = TASK_ROOT, *, one_process: bool = False) -> list[str]:
    # -s: no user site. Not -I/-E: they would ignore PYTHONHASHSEED, which keeps marshal output stable.
    # Unchecked hash-based pycs: Lambda code never changes under its bytecode, so skip the source check.
    # recorded_at: where Lambda puts the folder (/var/task; a layer's python/ is at /opt/python).
    # one_process: for a few files (a build's own packages), where starting a pool of workers costs more
    # than it saves; the bytecode is the same.
    return [python, "-s", "-c", COMPILE, str(site), recorded_at, *(["1"] if one_process else [])]


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
