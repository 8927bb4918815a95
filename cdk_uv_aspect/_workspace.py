"""Workspace: the uv workspace (or single project), its local packages and their closures, from uv.lock."""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ._errors import WorkspaceError

# Folders that never hold a package's source: skipped when fingerprinting and when copying modules.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "__pycache__", "node_modules", "cdk.out", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", ".tox", ".nox", "dist", "build", ".idea", ".vscode"}
)  # fmt: skip


def skipped(name: str) -> bool:
    return name in SKIP_DIRS or name.endswith(".egg-info")


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
        """The workspace holding ``start`` (default: the current directory): the nearest uv.lock upward."""
        here = (start or Path.cwd()).absolute()
        for folder in (here, *here.parents):
            if (folder / "uv.lock").is_file():
                return cls.load(folder)
            if start is not None and (folder / "pyproject.toml").is_file():
                # An explicit workspace folder with a pyproject.toml but no lock: say so, not "not found".
                raise WorkspaceError(
                    f"{folder} has a pyproject.toml but no uv.lock",
                    fix=f"run `uv lock` in {folder}: the lock decides what is deployed",
                )
        raise WorkspaceError(
            f"no uv workspace found: no uv.lock in {here} or any folder above it",
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
            packages[entry["name"]] = Package(
                name=entry["name"],
                path=(root / source[kind]).resolve(),
                packaged=kind != "virtual",
                dependencies=tuple(d["name"] for d in entry.get("dependencies", []) if "name" in d),
            )
        return cls(root=root.resolve(), lock_bytes=lock_bytes, packages=packages)

    def package(self, name: str, *, where: str) -> Package:
        try:
            return self.packages[name]
        except KeyError:
            known = ", ".join(sorted(self.packages)) or "none"
            raise WorkspaceError(
                f"package {name!r} is not in the workspace at {self.root} (its packages: {known})",
                package=name,
                constructs=[where],
                fix="fix the name in the marker, or add the package to [tool.uv.workspace] members and "
                "run `uv lock`",
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


def source_files(folder: Path) -> Iterator[Path]:
    """Every file of a package's source tree, in a stable order, without build and tool folders."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not skipped(d))
        for name in sorted(filenames):
            yield Path(dirpath, name)


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
