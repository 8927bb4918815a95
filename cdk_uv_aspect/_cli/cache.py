"""cdk-uv cache: where the build cache is, what it holds; prune it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import size


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    cache = commands.add_parser(
        "cache",
        parents=[debug],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="where the build cache is, what it holds; prune it",
        description="The build cache of the aspect and of `cdk-uv build`: finished builds and the wheels of\n"
        "the workspace's own packages, each kept until no synth used it for --older-than days.",
        epilog="actions:\n"
        "  info   print where the build cache is, how many builds and local wheels it holds, and its size\n"
        "  prune  remove the builds and wheels no synth used for --older-than DAYS days (default 30)",
    )
    cache.set_defaults(run=run)
    cache.add_argument("action", choices=["info", "prune"], metavar="{info,prune}", help="see actions below")
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
    from .._env import default_cache_dir
    from .._prune import entries, prune

    cache_dir = (options.cache_dir or default_cache_dir()).expanduser().absolute()
    if options.action == "prune":
        removed = prune(cache_dir, options.older_than)
        print(f"removed {len(removed)} entries unused for {options.older_than:g} days from {cache_dir}")
        return 0
    found = entries(cache_dir)
    total = sum(e.bytes for e in found)
    builds, wheels, store = (sum(e.complete and e.kind == k for e in found) for k in ("builds", "wheels", "store"))
    print(
        f"{cache_dir}: {builds} build(s), {wheels} local wheel(s), {store} stored distribution(s), "
        f"{size(total) if total else '0 kB'}"
    )
    _team_info(cache_dir)
    return 0


def _team_info(cache_dir: Path) -> None:
    """The team cache configured here, and what it did for the synths that used this cache (no call made)."""
    from .._bucket import ENV_URL, settings
    from .._errors import SettingError
    from .._remote import read_stats

    try:
        location, write = settings(None, False)
        configured = f"{location.url} ({'read and write' if write else 'read only'})" if location else None
    except SettingError as exc:
        configured = f"unusable: {exc.problem}"
    print(f"team cache: {configured or f'none (${ENV_URL}; the app may set UvOptions(remote_cache=...))'}")
    stats = read_stats(cache_dir)
    if not stats:
        return
    since = f"since {_day(stats.get('since'))}"
    for label, figures in (("last synth", stats.get("last") or {}), (since, stats.get("total") or {})):
        print(
            f"  {label} ({stats.get('url')}): {figures.get('hits', 0)} hit(s), {figures.get('misses', 0)} miss(es), "
            f"{figures.get('refused', 0)} refused, {figures.get('uploads', 0)} upload(s); "
            f"{size(figures.get('bytes_down', 0))} down, {size(figures.get('bytes_up', 0))} up; "
            f"{figures.get('seconds', 0):.1f} s in calls"
            + (f"; stopped: {figures['failed']}" if figures.get("failed") else "")
        )


def _day(epoch: object) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.localtime(epoch)) if isinstance(epoch, (int, float)) else "?"
