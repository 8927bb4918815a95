"""Settings the environment gives, each read one way: a flag, a number of seconds, the cache's folder.

``UvOptions``' defaults read them (``CDK_UV_REBUILD``, ``CDK_UV_COMMAND_TIMEOUT``, ``CDK_UV_CACHE_DIR``), and
so do the modules that run before or without options (the runner's time limit, the team cache's
``CDK_UV_REMOTE_CACHE_WRITE``, ``cdk-uv cache``): a value is read the same way wherever it is read, and a
bad one is refused with what to set instead.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ._errors import SettingError

# How a boolean environment variable is read, everywhere (CDK_UV_REBUILD): case and spaces do not count.
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
DEFAULT_COMMAND_TIMEOUT = 1800.0  # seconds: a cold build of a large closure on a slow link fits


def env_flag(name: str) -> bool:
    """A boolean environment variable: 1/true/yes/on, or 0/false/no/off/empty/unset; anything else is refused."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(
        f"${name} is {os.environ[name]!r}, which is neither true nor false",
        fix=f"set {name} to 1, true, yes or on to turn it on, or to 0, false, no, off or nothing to turn it off",
    )


def env_seconds(name: str, default: float) -> float:
    """A positive, finite number of seconds from an environment variable; ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SettingError(
            f"${name} is {raw!r}, which is not a positive number of seconds",
            fix=f"set {name} to a number of seconds greater than 0 (e.g. {default:g}), or unset it for the "
            f"default ({default:g})",
        )
    return value


def default_cache_dir() -> Path:
    """``$CDK_UV_CACHE_DIR``, else ``$XDG_CACHE_HOME/cdk-uv-aspect``, else ``~/.cache/cdk-uv-aspect``."""
    if os.environ.get("CDK_UV_CACHE_DIR"):
        return Path(os.environ["CDK_UV_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cdk-uv-aspect"
