"""The asset folder, finished: application modules copied in, tidied, bytecode compiled, modes set.

What uv installed into the folder becomes what Lambda runs: no scripts or lock files, RECORD listing
only what is there, ``.pyc`` files for the runtime's exact Python recorded under ``/var/task`` (a layer's
under ``/opt/python``), and the same file modes whoever built it.
"""

from __future__ import annotations

import shutil
from fnmatch import fnmatch
from pathlib import Path

from . import _uv
from ._errors import ToolError
from ._files import atomic_write
from ._runner import Runner
from ._uv import Failure
from ._workspace import Package


def copy_modules(package: Package, sources: tuple[str, ...], site: Path) -> None:
    """An application package (no build system): its top-level modules and packages go to the root.

    ``sources`` are the package's files (``Workspace.sources``): nothing ignored by the repository's
    .gitignore files, no cache or virtualenv. Of those: top-level ``.py`` files, and the folders holding
    any ``.py`` file, except hidden ones and tests.
    """
    packages = {rel.split("/", 1)[0] for rel in sources if "/" in rel and rel.endswith(".py")}
    for rel in sources:
        top, _, inside = rel.partition("/")
        if top.startswith(".") or top in ("tests", "test"):
            continue
        if not (top in packages if inside else rel.endswith(".py")):
            continue  # a folder without modules, or a top-level file other than a module (pyproject.toml)
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
        _prune_record(record, site)


def _prune_record(record: Path, site: Path) -> None:
    """Keep the RECORD lines of files that are in the asset; drop those pointing outside or removed."""
    kept = []
    for line in record.read_text().splitlines():
        path = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
        resolved = (site / path).resolve()
        if resolved.is_relative_to(site.resolve()) and (resolved.is_file() or resolved == record.resolve()):
            kept.append(line)
    atomic_write(record, "\n".join(kept) + "\n")


def compile_bytecode(site: Path, uv: str, runner: Runner, failure: Failure, recorded_at: str = _uv.TASK_ROOT) -> None:
    """``.pyc`` files for the target's exact Python, with the target's own interpreter, recording their sources
    under ``recorded_at``: where Lambda puts ``site``."""
    target = failure.target
    python = _uv.find_python(uv, target.python, runner)
    if python is None:
        raise ToolError(
            f"no Python {target.python} interpreter on this machine to compile bytecode for {target.runtime}",
            package=failure.package,
            target=target,
            fix=f"install Python {target.python} where uv finds it (`uv python install "
            f"{target.python}`, or put python{target.python} on PATH), or build without "
            "bytecode: UvOptions(bytecode=False)",
        )
    result = runner.run(_uv.compile_bytecode(python, site, recorded_at), cwd=site.parent, env=_uv.COMPILE_ENV)
    if not result.ok:
        raise failure.error(
            f"compiling bytecode with {python} failed",
            result,
            fix="check the interpreter, or build without bytecode: UvOptions(bytecode=False)",
        )


def normalize_modes(site: Path) -> None:
    """Modes follow the umask of whoever built: make them the same everywhere (Lambda needs only read).

    Last, after bytecode: the CLI's zip records each file's mode, and the asset hash does not, so a
    0600 .pyc from a umask-077 build would give other zip bytes under the same S3 key.
    """
    for path in site.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
