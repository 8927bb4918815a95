"""Every uv (and compileall) command line a build runs, composed in one place.

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
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ._errors import ToolError
from ._runner import Result, Runner
from ._target import Target

MIN_UV = Version("0.8.0")

# Environment of every uv call: no installer metadata (INSTALLER, REQUESTED, direct_url.json with the
# build folder's path), and copies rather than links, so a file we rewrite is never uv's cached copy.
UV_ENV = {"UV_NO_INSTALLER_METADATA": "1", "UV_LINK_MODE": "copy", "UV_NO_PROGRESS": "1"}

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


def _install(uv: str, target: Target, site: Path, python: str | None = None) -> list[str]:
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
    return [*_install(uv, target, site, python), "--require-hashes", *no_build, "-r", str(requirements)]


def build_wheel(uv: str, source: Path, out: Path) -> list[str]:
    # --no-sources: the copy is outside the workspace, and [tool.uv.sources] only steers uv's resolution
    # of the build requirements, never the wheel's content.
    return [uv, "build", "--wheel", "--no-sources", "--quiet", "--out-dir", str(out), str(source)]


def install_wheels(uv: str, target: Target, site: Path, wheels: Sequence[Path]) -> list[str]:
    return [*_install(uv, target, site), *map(str, wheels)]


COMPILE = (
    "import compileall, py_compile, sys; "
    "ok = compileall.compile_dir(sys.argv[1], ddir=sys.argv[2], quiet=2, workers=0, "
    "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH); "
    "sys.exit(0)"
)


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
    """The uv binary, checked once: present and new enough."""

    path: str
    version: str

    @staticmethod
    @cache
    def locate(configured: str | None, runner: Runner | None = None) -> Uv:
        path = configured or _bundled_uv() or shutil.which("uv")
        if path is None:
            raise ToolError(
                "uv was not found",
                fix="install uv (`pip install uv`, it comes with cdk-uv-aspect) or pass UvOptions(uv=...)",
            )
        result = (runner or Runner()).run([path, "--version"])
        if result.returncode == 127:
            raise ToolError(
                f"uv was not found at {path}",
                fix="install uv (`pip install uv`) or pass the path of a uv binary with UvOptions(uv=...)",
            )
        match = re.search(r"\b(\d+\.\d+\.\d+)", result.stdout)
        try:
            version = Version(match.group(1)) if match and result.returncode == 0 else None
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


@cache
def find_python(uv: str, version: str) -> str | None:
    """An interpreter of exactly ``version`` (e.g. "3.12") on this machine, found the way uv finds one."""
    result = Runner().run(
        [uv, "python", "find", "--no-project", "--no-python-downloads", version],
        env={"UV_PYTHON_DOWNLOADS": "never"},
    )
    path = result.stdout.strip()
    return path if result.returncode == 0 and path else None


def failed(result: Result) -> bool:
    return result.returncode != 0
