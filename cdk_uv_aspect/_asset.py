"""The asset folder, finished: application modules copied in, tidied, bytecode compiled, modes set.

What uv installed into the folder becomes what Lambda runs: no scripts or lock files, RECORD listing
only what is there, ``.pyc`` files for the runtime's exact Python recorded under ``/var/task`` (a layer's
under ``/opt/python``), and the same file modes whoever built it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from . import _uv
from ._errors import CodeError, setting
from ._failure import Failure
from ._files import atomic_write
from ._interpreters import find_python, no_python
from ._lambda import TASK_ROOT
from ._names import normalize
from ._reach import module_files
from ._runner import Runner
from ._sources import source_files
from ._workspace import Package

Log = Callable[[str], None]


def copy_modules(package: Package, sources: tuple[str, ...], site: Path) -> None:
    """An application package (no build system): its top-level modules and packages go to the root.

    ``sources`` are the package's files (``Workspace.sources``): nothing ignored by the repository's
    .gitignore files, no cache or virtualenv. Of those: its modules (``_reach.module_files``).
    """
    for rel in module_files(sources):
        target = site / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(package.path / rel, target)


def tidy(site: Path, exclude: tuple[str, ...]) -> None:
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
        prune_record(record, site)


def prune_record(record: Path, site: Path) -> None:
    """Keep the RECORD lines of files that are in the asset; drop those pointing outside or removed."""
    kept = []
    for line in record.read_text().splitlines():
        path = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
        resolved = (site / path).resolve()
        if resolved.is_relative_to(site.resolve()) and (resolved.is_file() or resolved == record.resolve()):
            kept.append(line)
    atomic_write(record, "\n".join(kept) + "\n")


def compile_bytecode(
    site: Path,
    uv: str,
    runner: Runner,
    failure: Failure,
    packages: Sequence[Package] = (),
    log: Log | None = None,
    recorded_at: str = TASK_ROOT,
    third_party: Sequence[dict[str, Any]] = (),
    one_process: bool = False,
) -> None:
    """``.pyc`` files for the target's exact Python, with the target's own interpreter, recording their
    sources under ``recorded_at``: where Lambda puts ``site``.

    A file of the workspace's own ``packages`` that the runtime's Python can't compile refuses the build
    (Lambda would fail to import it); a third-party file that can't (some wheels ship such files, never
    imported) is only a warning on ``log``. ``third_party``: such files of the store entries the folder
    was assembled from (compiled there), warned about with the others.
    """
    target = failure.target
    uncompiled = compile_folder(site, uv, runner, failure, recorded_at, one_process=one_process) + list(third_party)
    if not uncompiled:
        return
    own = own_files(site, packages)
    mine = [u for u in uncompiled if u["file"] in own]
    if mine:
        first = mine[0]
        raise CodeError(
            f"Python {target.python}, the runtime's, can't compile {_source_of(first['file'], packages, failure.root)}"
            f"{_line(first)}: {first['error']}",
            package=failure.package,
            target=target,
            fix=f"use syntax Python {target.python} accepts, or move the function to a runtime whose Python "
            "accepts it (and say so in requires-python): Lambda would fail to import the file",
            details="\n".join(
                f"  | {_source_of(u['file'], packages, failure.root)}{_line(u)}: {u['error']}" for u in mine[:10]
            )
            if len(mine) > 1
            else "",
        )
    if log:
        shown = ", ".join(f"{u['file']}{_line(u)}" for u in uncompiled[:3])
        more = f" and {len(uncompiled) - 3} more" if len(uncompiled) > 3 else ""
        log(
            f"cdk-uv-aspect: warning: {len(uncompiled)} file(s) of third-party packages in the build of "
            f"{failure.package} ({target.key}) can't be compiled by Python {target.python} and ship without "
            f"bytecode; importing them on Lambda would fail: {shown}{more}"
        )


# compileall's workers talk to a forkserver over a Unix socket in $TMPDIR, whose path may not pass 107
# bytes ("AF_UNIX path too long"): its folder and file names take about 35.
_SOCKET_ROOM = 70


def _compile_env() -> dict[str, str]:
    """``_uv.COMPILE_ENV``, with a short TMPDIR (/tmp) where the one the compiler would take is too long for
    compileall's workers (a CI runner's private TMPDIR deep in a work folder, say); the bytecode is the same."""
    theirs = next((os.environ[v] for v in ("TMPDIR", "TEMP", "TMP") if os.environ.get(v)), "")
    if len(os.fsencode(theirs)) <= _SOCKET_ROOM or not os.access("/tmp", os.W_OK | os.X_OK):
        return dict(_uv.COMPILE_ENV)
    return {**_uv.COMPILE_ENV, "TMPDIR": "/tmp"}


def compile_folder(
    site: Path,
    uv: str,
    runner: Runner,
    failure: Failure,
    recorded_at: str = TASK_ROOT,
    *,
    one_process: bool = False,
) -> list[dict[str, Any]]:
    """Compile every module below ``site`` with the target's own interpreter (see ``compile_bytecode``);
    return the files it could not compile, each with the error."""
    target = failure.target
    python = find_python(uv, target.python, runner, cwd=failure.root)
    if python is None:
        raise no_python(
            uv, target.python, f"compile bytecode for {target.runtime}", package=failure.package, target=target
        )
    command = _uv.compile_bytecode(python, site, recorded_at, one_process=one_process)
    result = runner.run(command, cwd=site.parent, env=_compile_env())
    if not result.ok:
        raise failure.error(
            f"compiling bytecode with {python} failed",
            result,
            fix=f"check the interpreter, or build without bytecode: {setting('bytecode', 'False')}",
        )
    try:
        uncompiled: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        uncompiled = []  # an interpreter that printed something else: its bytecode is there all the same
    return uncompiled


def own_files(site: Path, packages: Sequence[Package]) -> set[str]:
    """The asset's files (relative paths) that come from the workspace's own ``packages``: the files their
    wheels installed (RECORD), and an application package's modules (copied as they are)."""
    wheels = {normalize(p.name) for p in packages if p.packaged}
    own: set[str] = set()
    for record in site.glob("*.dist-info/RECORD"):
        if normalize(record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]) in wheels:
            own.update(line.rsplit(",", 2)[0] for line in record.read_text().splitlines() if line)
    for package in packages:
        if not package.packaged:
            own.update(f for f in source_files(package.path, package.path) if f.endswith(".py"))
    return own


def _source_of(rel: str, packages: Sequence[Package], root: Path) -> str:
    """Where an asset file comes from in the workspace (``packages/api/src/api/handler.py``), when found."""
    for package in packages:
        for found in source_files(package.path, package.path):
            path = package.path / found
            if path.as_posix().endswith(f"/{rel}") and path.is_relative_to(root):
                return path.relative_to(root).as_posix()
    return rel


def _line(uncompiled: dict[str, Any]) -> str:
    return f", line {uncompiled['line']}" if uncompiled.get("line") else ""


def normalize_modes(site: Path) -> None:
    """Modes follow the umask of whoever built: make them the same everywhere (Lambda needs only read).

    Last, after bytecode: the CLI's zip records each file's mode, and the asset hash does not, so a
    0600 .pyc from a umask-077 build would give other zip bytes under the same S3 key.
    """
    for path in site.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
