"""Reach: which of a single project's files can reach its asset, so that only they are in its build key.

A package whose folder is the project root (a single project, or a workspace root that is a package)
shares that folder with the README, the tests, the CDK app and everything else of the repository:
editing any of those must not rebuild the package. An application package's asset is its modules. A
packaged one's is its wheel: what its build backend takes (read here for uv_build and hatchling, the
backends `uv init` writes), its build configuration, and the files ``[project]`` names (readme,
licences). For any other backend, or a configuration read here only in part (build hooks, include
patterns), every source stays in the key, as for a workspace member.

The files kept are also the only ones the build's private copy holds (``_sources.copy_sources``): a
build never reads a file its key did not count, so a file this module misses fails the build (or is
missing from the wheel) instead of deploying stale code.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from typing import Any

# Files that configure a build: a change to any of them may change the wheel.
BUILD_CONFIGURATION = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in")
# The licence files hatchling and uv_build put into a wheel's metadata when ``license-files`` is not set.
_DEFAULT_LICENSES = ("LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*")

# Settings whose effect is read here (or that can only take files out of the wheel): any other setting of
# the backend's wheel build (hooks, include patterns, shared data...) keeps every source in the key.
_HATCH_READ = {
    "packages",
    "only-include",
    "force-include",
    "exclude",
    "artifacts",
    "ignore-vcs",
    "dev-mode-dirs",
    "dev-mode-exact",
    "reproducible",
    "directory",
    "skip-excluded-dirs",
    "core-metadata-version",
    "strict-naming",
    "macos-max-compat",
    "targets",
}
_UV_BUILD_READ = {
    "module-root",
    "module-name",
    "namespace",
    "data",
    "source-include",
    "source-exclude",
    "wheel-exclude",
    "default-excludes",
}


def reach(folder: Path, files: tuple[str, ...], *, packaged: bool) -> tuple[str, ...]:
    """Of a single project's sources (``files``, relative to ``folder``), those that can reach its asset."""
    if not packaged:
        return module_files(files)
    pyproject = _pyproject(folder)
    roots = _wheel_roots(folder, pyproject)
    if roots is None:
        return files
    named = _named_files(pyproject)
    return tuple(
        rel
        for rel in files
        if rel in BUILD_CONFIGURATION
        or any(fnmatch.fnmatchcase(rel, pattern) for pattern in named)
        or any(rel == root or rel.startswith(f"{root}/") or rel in (f"{root}.py", f"{root}.pyi") for root in roots)
    )


def module_files(files: tuple[str, ...]) -> tuple[str, ...]:
    """An application package's modules (its asset): its top-level ``.py`` files, and every file of a
    top-level folder that holds a ``.py`` file, except hidden folders and tests."""
    packages = {rel.split("/", 1)[0] for rel in files if "/" in rel and rel.endswith(".py")}
    kept = []
    for rel in files:
        top, _, inside = rel.partition("/")
        if top.startswith(".") or top in ("tests", "test"):
            continue
        if top in packages if inside else rel.endswith(".py"):
            kept.append(rel)
    return tuple(kept)


def _pyproject(folder: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads((folder / "pyproject.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _table(data: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def _wheel_roots(folder: Path, pyproject: dict[str, Any]) -> list[str] | None:
    """The folders (and modules, without ``.py``) the backend puts into the wheel; None when unknown."""
    backend = _table(pyproject, "build-system").get("build-backend")
    name = str(_table(pyproject, "project").get("name", "")).lower().replace("-", "_").replace(".", "_")
    if not name:
        return None
    if backend == "uv_build":
        settings = _table(pyproject, "tool", "uv", "build-backend")
        if set(settings) - _UV_BUILD_READ:
            return None
        root = str(settings.get("module-root", "src")).strip("/")
        names = settings.get("module-name", name)
        modules = [names] if isinstance(names, str) else list(names) if isinstance(names, list) else []
        roots = [f"{root}/{m.replace('.', '/')}".lstrip("/") for m in modules if isinstance(m, str)]
        data = settings.get("data", {})
        return roots + [str(d).strip("/") for d in (data.values() if isinstance(data, dict) else ())]
    if backend == "hatchling.build":
        build = _table(pyproject, "tool", "hatch", "build")
        wheel = _table(build, "targets", "wheel")
        hooks = (folder / "hatch_build.py").exists() or _table(pyproject, "tool", "hatch", "metadata", "hooks")
        if set(build) - _HATCH_READ or set(wheel) - _HATCH_READ or hooks:
            return None
        chosen = [*_strings(wheel.get("packages") or build.get("packages"))]
        chosen += _strings(wheel.get("only-include") or build.get("only-include"))
        if not chosen:  # hatchling's own choice, when nothing is configured
            chosen = next(([c] for c in (name, f"src/{name}") if (folder / c / "__init__.py").is_file()), [])
            chosen = chosen or ([name] if (folder / f"{name}.py").is_file() else [])
        forced = {**_table(build, "force-include"), **_table(wheel, "force-include")}
        roots = [p.strip("/") for p in [*chosen, *map(str, forced)]]
        return roots or None
    return None


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _named_files(pyproject: dict[str, Any]) -> list[str]:
    """The files ``[project]`` (and hatchling's version source) name, as patterns: they reach the wheel's
    metadata, or its version."""
    project = _table(pyproject, "project")
    named: list[str] = []
    readme = project.get("readme")
    named += [readme] if isinstance(readme, str) else _strings([_table(project, "readme").get("file")])
    license = project.get("license")
    named += _strings([license.get("file")]) if isinstance(license, dict) else []
    named += _strings(project.get("license-files")) or list(_DEFAULT_LICENSES)
    named += _strings([_table(pyproject, "tool", "hatch", "version").get("path")])
    return named
