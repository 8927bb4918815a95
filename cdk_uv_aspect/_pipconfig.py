"""The workspace's uv settings, written for a ``uv pip install`` that runs outside the workspace.

``uv pip install --target`` runs with ``--project <folder>``, where it finds the file written here first:
the settings uv would read for the workspace (indexes, find-links, credentials' index names...), less those
that describe the project or that the lock has already applied.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from ._errors import WorkspaceError

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
    lines = [
        "# Written by cdk-uv-aspect for `uv pip install`: the workspace's uv settings, see _pipconfig.pip_config",
        "",
    ]
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
