"""Workspace: the uv workspace (or single project), its local packages and their closures, from uv.lock.

Which files of a package a build sees, and their fingerprint, are ``_sources``'s.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from . import _ignore, _state
from ._errors import WorkspaceError, setting
from ._names import normalize
from ._reach import reach
from ._sources import fingerprint, source_files


@dataclass(frozen=True)
class Package:
    """A local package of the workspace, as uv.lock records it."""

    name: str
    path: Path
    packaged: bool  # False for a virtual project (no build system): its modules are copied as they are
    dependencies: tuple[str, ...]
    refused: WorkspaceError | None = field(default=None, compare=False, repr=False)  # why no build may use it
    optional_dependencies: tuple[str, ...] = ()  # of every extra
    group_dependencies: tuple[tuple[str, tuple[str, ...]], ...] = ()  # group -> its dependencies

    @cached_property
    def _pyproject(self) -> dict[str, Any]:
        try:
            data = tomllib.loads((self.path / "pyproject.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    @cached_property
    def requires_python(self) -> SpecifierSet | None:
        try:
            spec = self._pyproject.get("project", {}).get("requires-python")
            return SpecifierSet(spec) if spec else None
        except (AttributeError, InvalidSpecifier):
            return None

    @cached_property
    def extras(self) -> tuple[str, ...]:
        """The extras its pyproject.toml defines (``[project.optional-dependencies]``), normalized."""
        table = _table(self._pyproject, "project", "optional-dependencies")
        return tuple(sorted({normalize(str(name)) for name in table}))

    @cached_property
    def groups(self) -> tuple[str, ...]:
        """The dependency groups its pyproject.toml defines (``[dependency-groups]``, and ``dev`` for uv's
        legacy ``[tool.uv] dev-dependencies``), normalized."""
        names = set(_table(self._pyproject, "dependency-groups"))
        if _table(self._pyproject, "tool", "uv").get("dev-dependencies") is not None:
            names.add("dev")
        return tuple(sorted({normalize(str(name)) for name in names}))

    def admits(self, python: str) -> bool:
        """Whether requires-python admits Python ``python`` ("3.12"); True when it says nothing."""
        return admits(self.requires_python, python)


def _table(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        value = data.get(key)
        data = value if isinstance(value, dict) else {}
    return data


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
    # Sources and their fingerprints by package (and build cache), computed once per Workspace (one per
    # aspect, so once per synth): a library like `common` in every closure is read once, not once per
    # build request; and the files copied for a build are the files its key was computed from.
    _sources: dict[tuple[str, Path | None], tuple[str, ...]] = field(default_factory=dict, repr=False)
    _fingerprints: dict[tuple[str, Path | None], str] = field(default_factory=dict, repr=False)

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
            folder = None if _state.COMMAND_LINE.is_set() else app_folder()  # cdk-uv's script is no app
            if folder is None or folder == here or here.is_relative_to(folder):
                raise
            try:
                return cls._find_from(folder, explicit=False)
            except WorkspaceError:
                pass
            raise WorkspaceError(
                f"no uv workspace found: no uv.lock in {here}, in the app's folder {folder}, or any folder above them",
                fix=_no_workspace_fix(),
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
            fix=_no_workspace_fix(),
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
            written = str(source[kind])
            path = (root / written).resolve()  # an absolute path stays what it is
            refused = None
            if (
                not path.is_relative_to(root.resolve())
                and not written.startswith("..")
                and not Path(written).is_absolute()
            ):
                # A member folder that is a symlink out of the workspace: its code is not the user's repo.
                # Refused when a build needs it, not here: it may be a package no function uses.
                refused = WorkspaceError(
                    f"workspace member {written} of {root} is a link to {path}, outside the workspace",
                    package=entry["name"],
                    fix="replace the link with the package's folder, or declare the dependency by its real "
                    "path (`uv add ../path/to/package`)",
                )
            packages[entry["name"]] = Package(
                name=entry["name"],
                path=path,
                packaged=kind != "virtual",
                dependencies=_names(entry.get("dependencies")),
                optional_dependencies=tuple(
                    sorted({n for deps in (entry.get("optional-dependencies") or {}).values() for n in _names(deps)})
                ),
                group_dependencies=tuple(
                    sorted((group, _names(deps)) for group, deps in (entry.get("dev-dependencies") or {}).items())
                ),
                refused=refused,
            )
        return cls(root=root.resolve(), lock_bytes=lock_bytes, packages=packages)

    def package(self, name: str) -> Package:
        try:
            return self.packages[name]
        except KeyError:
            known = ", ".join(sorted(self.packages)) or "none"
            raise WorkspaceError(
                f"package {name!r} is not in the workspace at {self.root} (its packages: {known})",
                package=name,
                fix="fix the name in the marker, or add the package to [tool.uv.workspace] members and run `uv lock`",
            ) from None

    def sources(self, name: str, cache_dir: Path | None = None) -> tuple[str, ...]:
        """Local package ``name``'s sources (see ``source_files``), listed once per Workspace: of a package
        at the workspace root, only those that can reach its asset (``_reach``).

        ``cache_dir``: the build cache, left out when it is inside the package (a single project).
        """
        key = (name, cache_dir)
        if key not in self._sources:  # a race between build threads only lists it twice
            package = self.packages[name]
            files = source_files(package.path, _ignore.repository_root(package.path, self.root), cache_dir)
            if package.path == self.root:  # a single project: the README, tests and CDK app live beside it
                files = reach(package.path, files, packaged=package.packaged)
            self._sources[key] = files
        return self._sources[key]

    def fingerprint(self, name: str, cache_dir: Path | None = None) -> str:
        """The fingerprint of local package ``name``'s sources: exactly the files a build copies."""
        key = (name, cache_dir)
        if key not in self._fingerprints:
            self._fingerprints[key] = fingerprint(self.packages[name].path, self.sources(name, cache_dir))
        return self._fingerprints[key]

    def closure(self, name: str, groups: tuple[str, ...] = ()) -> list[Package]:
        """The package and every local package it may depend on, sorted by name: through dependencies and
        extras (all of them: more than is installed is harmless here), and through its own ``groups``."""
        seen: dict[str, Package] = {}
        todo = [name]
        while todo:
            current = self.packages.get(todo.pop())
            if current is None or current.name in seen:
                continue
            if current.refused is not None:
                raise current.refused.with_constructs(())  # a copy: builds run in threads
            seen[current.name] = current
            todo.extend(current.dependencies)
            todo.extend(current.optional_dependencies)
            if current.name == name:
                todo.extend(n for group, deps in current.group_dependencies if group in groups for n in deps)
        return [seen[n] for n in sorted(seen)]


def _no_workspace_fix() -> str:
    who = "cdk-uv" if _state.COMMAND_LINE.is_set() else "the CDK app"
    return f"run {who} inside a uv workspace, or pass {setting('workspace', '<folder with uv.lock>')}"


def _names(dependencies: object) -> tuple[str, ...]:
    """The names in a list of uv.lock dependencies (``[{ name = "common" }, ...]``)."""
    if not isinstance(dependencies, list):
        return ()
    return tuple(d["name"] for d in dependencies if isinstance(d, dict) and isinstance(d.get("name"), str))


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
