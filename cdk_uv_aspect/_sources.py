"""Sources: which files of a local package a build sees, their fingerprint, and the private copy it reads.

Not what the repository's ``.gitignore`` files ignore (``_ignore``), no tool folder, cache, virtualenv or
cloud assembly; no link out of the package, no special file. The same list is fingerprinted (the build
key) and copied (what ``uv build`` reads), so a build never sees a file its key did not count.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import _ignore
from ._errors import WorkspaceError
from ._files import check_source

# Folders that never hold a package's source: skipped when fingerprinting and when copying modules.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "__pycache__",
        "node_modules",
        "cdk.out",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        "dist",
        "build",
        ".idea",
        ".vscode",
    }
)


def skipped(name: str) -> bool:
    return name in SKIP_DIRS or name.endswith(".egg-info")


def is_assembly(folder: Path) -> bool:
    """A CDK cloud assembly under any name (``cdk synth --output``): the CDK writes a ``cdk.out`` file in it.

    In a single-project layout the package is the project root, which also holds the CDK app's output;
    hashing it would change the build key on every synth, and copying it would put old assets in the new.
    """
    return (folder / "cdk.out").is_file() and (folder / "manifest.json").is_file()


def source_files(folder: Path, top: Path, skip: Path | None = None) -> tuple[str, ...]:
    """A package's sources: the files below ``folder`` that a build sees, as paths relative to it (``/``).

    Left out: tool folders (``SKIP_DIRS``), cloud assemblies, virtual environments under any name (a
    folder with ``pyvenv.cfg``), caches (a folder with a ``CACHEDIR.TAG``, as uv's has), the folder
    ``skip`` (the build cache, which may be inside the project), and what the repository's
    ``.gitignore`` files ignore, from ``top`` (the repository root) down (see ``_ignore``); hatchling's
    ``ignore-vcs`` and ``artifacts`` settings are honoured as hatchling honours them.

    A link that leads outside the package is refused: a build would copy what it points to (a key, a
    home folder) into a deployed asset without anyone having asked for it. So is a file that can't be
    read safely (``_files.check_source``): a named pipe would make the fingerprint wait forever.
    """
    hatch = _hatch_settings(folder)
    rules = _ignore.Rules() if hatch.ignore_vcs else _ignore.Rules.above(folder, top)
    skip = skip.resolve() if skip is not None else None
    found: list[str] = []

    def walk(path: Path, rel: str, rules: _ignore.Rules, inside_ignored: bool, seen: frozenset[Path]) -> None:
        rules = rules if hatch.ignore_vcs else rules.entering(path, rel)  # rel: "" or "src/"
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        folders = []
        for entry in entries:
            child, child_rel = Path(entry.path), f"{rel}{entry.name}"
            check_source(child)  # a pipe, socket, device, link loop or non-UTF-8 name: refused by path
            if entry.is_symlink():
                _refuse_escaping_link(child, folder)
            is_dir = entry.is_dir()  # follows a link, which stays inside the package
            ignored = inside_ignored or rules.ignored(child_rel, is_dir=is_dir)
            if is_dir:
                if not (skipped(entry.name) or _not_source_folder(child, skip)):
                    folders.append((child, child_rel, ignored))
            elif entry.is_file() or entry.is_symlink():  # a dangling link too: reading it says so
                if entry.name in SKIP_DIRS:  # a .git file (a worktree's or a submodule's)
                    continue
                if not ignored or (hatch.artifacts and hatch.artifacts.ignored(child_rel, is_dir=False)):
                    found.append(child_rel)
            else:
                raise WorkspaceError(
                    f"{child} is not a file or a folder (a named pipe, socket or device)",
                    fix="remove it from the package, or ignore it in .gitignore: a package's sources are files",
                )
        for child, child_rel, ignored in folders:
            if ignored and not hatch.artifacts:
                continue  # what is inside an ignored folder is ignored too
            real = child.resolve()
            if real in seen:
                raise WorkspaceError(
                    f"{child} is a link to {real}, a folder that holds it: the package's tree never ends",
                    fix="remove the link, or replace it with the files it should hold",
                )
            walk(child, child_rel + "/", rules, ignored, seen | {real})

    walk(folder, "", rules, False, frozenset({folder.resolve()}))
    return tuple(found)


def _not_source_folder(path: Path, skip: Path | None) -> bool:
    """A cloud assembly, a virtual environment, a cache, or the build cache: never a package's source."""
    return (
        is_assembly(path)
        or (path / "pyvenv.cfg").is_file()
        or _is_cache(path)
        or (skip is not None and path.resolve() == skip)
    )


def _is_cache(path: Path) -> bool:
    # The Cache Directory Tagging Specification (https://bford.info/cachedir/), as uv, pytest and ruff write it.
    try:
        with open(path / "CACHEDIR.TAG", "rb") as f:
            return f.read(43) == b"Signature: 8a477f597d28d172789f06886806bc55"
    except OSError:
        return False


@dataclass(frozen=True)
class _HatchSettings:
    ignore_vcs: bool = False
    artifacts: _ignore.Rules | None = None  # files to keep although ignored, as gitignore patterns


def _hatch_settings(folder: Path) -> _HatchSettings:
    """hatchling's ``ignore-vcs`` and ``artifacts`` (for the whole build, or for wheels)."""
    try:
        hatch = tomllib.loads((folder / "pyproject.toml").read_text()).get("tool", {}).get("hatch", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return _HatchSettings()
    build = hatch.get("build", {}) if isinstance(hatch, dict) else {}
    wheel = build.get("targets", {}).get("wheel", {}) if isinstance(build, dict) else {}
    tables = [t for t in (build, wheel) if isinstance(t, dict)]
    ignore_vcs = any(t.get("ignore-vcs") is True for t in tables)
    artifacts = [a for t in tables for a in t.get("artifacts", []) if isinstance(a, str)]
    kept = _ignore.Rules((_ignore.File(tuple(_ignore.parse("\n".join(artifacts))), "", ""),)) if artifacts else None
    return _HatchSettings(ignore_vcs, kept)


def _refuse_escaping_link(path: Path, folder: Path) -> None:
    if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
        raise WorkspaceError(
            f"{path} is a link to {path.resolve()}, outside its package {folder}",
            fix="copy the file into the package (or remove the link): cdk-uv-aspect does not follow links "
            "out of a package into a deployed asset",
        )


def fingerprint(folder: Path, files: tuple[str, ...]) -> str:
    """A digest of a package's sources (``files``, from ``source_files``): relative paths and contents.

    Each file is read in pieces, never whole: a package may hold a data file of gigabytes that no build
    ships (outside what its backend packs), and it must not take that much memory to fingerprint it.
    """
    digest = hashlib.sha256()
    for rel in files:
        path = folder / rel
        digest.update(rel.encode() + b"\0")
        try:
            with open(path, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        except OSError as exc:
            raise WorkspaceError(
                f"{path} can't be read: {exc.strerror}",
                fix="make the file readable, or remove it from the package",
            ) from exc
    return digest.hexdigest()


def copy_sources(folder: Path, files: tuple[str, ...], dest: Path) -> None:
    """Copy ``files`` (from ``source_files``) of ``folder`` into ``dest``: the private copy a build reads.

    The copy gets a ``.gitignore`` of its own when the package has none, so that no ``.gitignore`` above
    the copy (a home folder's, a project's around an in-project build cache) changes what a backend
    such as hatchling builds from it: the files were already chosen here.
    """
    dest.mkdir(parents=True)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / rel, target)
    if _ignore.IGNORE_FILE not in files:
        (dest / _ignore.IGNORE_FILE).write_text("# cdk-uv-aspect: the repository's rules chose these files\n")
