"""cdk-uv cache: where the build cache is, what it holds; prune it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import size


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    cache = commands.add_parser("cache", parents=[debug], help="where the build cache is, what it holds; prune it")
    cache.set_defaults(run=run)
    cache.add_argument("action", choices=["info", "prune"])
    cache.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="default: $CDK_UV_CACHE_DIR, else $XDG_CACHE_HOME/cdk-uv-aspect, else ~/.cache/cdk-uv-aspect",
    )
    cache.add_argument(
        "--older-than",
        type=_days,
        default=30,
        metavar="DAYS",
        help="prune: remove builds no synth used for DAYS days (default 30; 0 removes all). Only folders "
        "cdk-uv-aspect wrote are removed; anything else in the cache stays",
    )


def _days(text: str) -> float:
    """A number of days, finite and 0 or more: `nan`, `inf` and `-1` are refused (exit code 2)."""
    from .._errors import SettingError
    from .._prune import check_days

    try:
        return check_days(float(text))
    except (ValueError, SettingError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of days: give a number, 0 or more (e.g. 30; 0 removes every build)"
        ) from None


def run(options: argparse.Namespace) -> int:
    from .._options import default_cache_dir
    from .._prune import entries, prune

    cache_dir = (options.cache_dir or default_cache_dir()).expanduser().absolute()
    if options.action == "prune":
        removed = prune(cache_dir, options.older_than)
        print(f"removed {len(removed)} entries unused for {options.older_than:g} days from {cache_dir}")
        return 0
    found = entries(cache_dir)
    total = sum(e.bytes for e in found)
    builds, wheels = (sum(e.complete and e.kind == kind for e in found) for kind in ("builds", "wheels"))
    print(f"{cache_dir}: {builds} build(s), {wheels} local wheel(s), {size(total) if total else '0 kB'}")
    return 0
