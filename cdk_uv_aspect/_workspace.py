"""Workspace: the uv workspace (or single project), its local packages and their closures, from uv.lock."""

from __future__ import annotations

import hashlib
import os
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ._errors import WorkspaceError

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


@dataclass(frozen=True)
class Package:
    """A local package of the workspace, as uv.lock records it."""

    name: str
    path: Path
    packaged: bool  # False for a virtual project (no build system): its modules are copied as they are
    dependencies: tuple[str, ...]

    @cached_property
    def requires_python(self) -> SpecifierSet | None:
        try:
            data = tomllib.loads((self.path / "pyproject.toml").read_text())
            spec = data.get("project", {}).get("requires-python")
            return SpecifierSet(spec) if spec else None
        except (OSError, tomllib.TOMLDecodeError, InvalidSpecifier):
            return None

    def admits(self, python: str) -> bool:
        """Whether requires-python admits Python ``python`` ("3.12"); True when it says nothing."""
        return admits(self.requires_python, python)


def admits(requires_python: SpecifierSet | str | None, python: str) -> bool:
    """Whether a requires-python specifier admits Python ``python`` ("3.12"); True when there is none.

    A runtime's Python is a whole minor version: ``>=3.12.1`` does not admit python3.12 (3.12.0 could run).
    Raises ``InvalidSpecifier`` for a specifier that is not one.
    """
    if not requires_python:
        return True
    spec = SpecifierSet(requires_python) if isinstance(requires_python, str) else requires_python
    return spec.contains(f"{python}.0", prereleases=True)


@dataclass(frozen=True, eq=False)  # compared by identity: one per aspect, found once
class Workspace:
    root: Path
    lock_bytes: bytes = field(repr=False)
    packages: dict[str, Package] = field(repr=False)
    # Source fingerprints by package, computed once per Workspace (one per aspect, so once per synth):
    # a library like `common` in every closure is read once, not once per build request.
    _fingerprints: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def lock(self) -> Path:
        return self.root / "uv.lock"

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace:
        """The workspace at ``start``, or else the nearest uv.lock above the current directory, and then
        above the CDK app's own folder (``cdk synth`` run from elsewhere, ``cdk --app path/app.py``)."""
        if start is not None:
            return cls._find_from(start.absolute(), explicit=True)
        here = Path.cwd().absolute()
        try:
            return cls._find_from(here, explicit=False)
        except WorkspaceError:
            folder = app_folder()
            if folder is None or folder == here or here.is_relative_to(folder):
                raise
            try:
                return cls._find_from(folder, explicit=False)
            except WorkspaceError:
                pass
            raise WorkspaceError(
                f"no uv workspace found: no uv.lock in {here}, in the app's folder {folder}, or any folder above them",
                fix="run the CDK app inside a uv workspace, or pass UvOptions(workspace=<folder with uv.lock>)",
            ) from None

    @classmethod
    def _find_from(cls, here: Path, *, explicit: bool) -> Workspace:
        # An explicit workspace is that folder; otherwise the nearest one upward, as uv finds its project.
        for folder in (here,) if explicit else (here, *here.parents):
            if (folder / "uv.lock").is_file():
                return cls.load(folder)
            if (folder / "pyproject.toml").is_file() and (explicit or _is_workspace_root(folder)):
                raise WorkspaceError(
                    f"{folder} has a pyproject.toml but no uv.lock",
                    fix=f"run `uv lock` in {folder}: the lock decides what is deployed",
                )
        where = f"in {here}" if explicit else f"in {here} or any folder above it"
        raise WorkspaceError(
            f"no uv workspace found: no uv.lock {where}",
            fix="run the CDK app inside a uv workspace, or pass UvOptions(workspace=<folder with uv.lock>)",
        )

    @classmethod
    def load(cls, root: Path) -> Workspace:
        try:
            lock_bytes = (root / "uv.lock").read_bytes()
            lock = tomllib.loads(lock_bytes.decode())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise WorkspaceError(
                f"{root / 'uv.lock'} can't be read: {exc}",
                fix="restore uv.lock from version control, or run `uv lock` to write it again",
            ) from exc
        packages = {}
        for entry in lock.get("package", []):
            source = entry.get("source", {})
            kind = next((k for k in ("editable", "virtual", "directory") if k in source), None)
            if kind is None or not isinstance(entry.get("name"), str):
                continue
            path = (root / source[kind]).resolve()
            if not path.is_relative_to(root.resolve()) and not source[kind].startswith(".."):
                # A member folder that is a symlink out of the workspace: its code is not the user's repo.
                raise WorkspaceError(
                    f"workspace member {source[kind]} of {root} is a link to {path}, outside the workspace",
                    package=entry["name"],
                    fix="replace the link with the package's folder, or declare the dependency by its real "
                    "path (`uv add ../path/to/package`)",
                )
            packages[entry["name"]] = Package(
                name=entry["name"],
                path=path,
                packaged=kind != "virtual",
                dependencies=tuple(d["name"] for d in entry.get("dependencies", []) if "name" in d),
            )
        return cls(root=root.resolve(), lock_bytes=lock_bytes, packages=packages)

    def package(self, name: str, *, where: str | None = None) -> Package:
        try:
            return self.packages[name]
        except KeyError:
            known = ", ".join(sorted(self.packages)) or "none"
            raise WorkspaceError(
                f"package {name!r} is not in the workspace at {self.root} (its packages: {known})",
                package=name,
                constructs=[where] if where else [],
                fix="fix the name in the marker, or add the package to [tool.uv.workspace] members and run `uv lock`",
            ) from None

    def fingerprint(self, name: str) -> str:
        """The fingerprint of local package ``name``'s source tree, read once per Workspace."""
        if name not in self._fingerprints:  # a race between build threads only computes it twice
            self._fingerprints[name] = fingerprint(self.packages[name].path)
        return self._fingerprints[name]

    def closure(self, name: str) -> list[Package]:
        """The package and every local package it depends on (not dev groups), sorted by name."""
        seen: dict[str, Package] = {}
        todo = [name]
        while todo:
            current = self.packages.get(todo.pop())
            if current is None or current.name in seen:
                continue
            seen[current.name] = current
            todo.extend(current.dependencies)
        return [seen[n] for n in sorted(seen)]


def app_folder() -> Path | None:
    """The folder of the running CDK app's entry script (``python app.py``), if it is a script."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if not script:
        return None
    return Path(script).absolute().parent


def _is_workspace_root(folder: Path) -> bool:
    try:
        return "workspace" in tomllib.loads((folder / "pyproject.toml").read_text()).get("tool", {}).get("uv", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


def source_files(folder: Path) -> Iterator[Path]:
    """Every file of a package's source tree, in a stable order, without build and tool folders.

    A link that leads outside the package is refused: a build would copy what it points to (a key, a
    home folder) into a deployed asset without anyone having asked for it.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not skipped(d) and not is_assembly(Path(dirpath, d)))
        for name in [*dirnames, *filenames]:
            _refuse_escaping_link(Path(dirpath, name), folder)
        for name in sorted(filenames):
            yield Path(dirpath, name)


def _refuse_escaping_link(path: Path, folder: Path) -> None:
    if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
        raise WorkspaceError(
            f"{path} is a link to {path.resolve()}, outside its package {folder}",
            fix="copy the file into the package (or remove the link): cdk-uv-aspect does not follow links "
            "out of a package into a deployed asset",
        )


def fingerprint(folder: Path) -> str:
    """A digest of a package's source tree: relative paths and contents."""
    digest = hashlib.sha256()
    for path in source_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError as exc:
            raise WorkspaceError(
                f"{path} can't be read: {exc.strerror}",
                fix="make the file readable, or remove it from the package",
            ) from exc
    return digest.hexdigest()
