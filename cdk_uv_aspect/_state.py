"""Process-wide state: every registry that outlives one call, with who writes and who reads it.

Aspects, placeholder codes and policy checks are separate objects that meet only in the construct tree,
and every read of the tree is a round trip to node; these registries let them share what one of them
already knows. Functions are keyed by their jsii ref (``jsii_ref``), which is never reused in a process.

===================  =====================================  ======================================
registry             written by                             read by
===================  =====================================  ======================================
SWAPPED              _swap (each function and layer it      _placeholder (UvCode's check), _aspect
                     swapped)
FAILED               _validation (each function the         _placeholder: their own error says why
                     aspect failed on)
PLACEHOLDERS         _placeholder.UvCode.bind               _swap (warns about a placeholder asset)
BUILT_FOLDERS        _swap, _layer (asset hash -> built     _policy.facts (the folder a rule reads)
                     folder)
WHEEL_LOCKS          _wheels (one lock per wheel entry)     _wheels: builds side by side wait on it
WHEELS_BUILT         _wheels (entries built here)           _wheels: fresh even with rebuild=True
TOOLS                _uv (uv binaries), _interpreters       the same: each looked up once per
                     (interpreters found)                   process
SWEPT                _prune.sweep (cache folders swept)     _prune.sweep: once per process and
                                                            folder
TEAM_CACHES          _remote.team_cache (one per bucket)    _remote: one breaker for every build
_signals.RUNNING     _runner (children still running)       _signals.running(): to end them all
_signals.STOP        a signal inside                        _runner: no new command starts;
                     _signals.interruptible                 cleared when the block ends
_runner.SLOTS        (one per core, fixed)                  _runner: a command runs while it holds
                                                            one
===================  =====================================  ======================================

``reset()`` empties them all; the tests call it before each test.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

SWAPPED: set[str] = set()
FAILED: set[str] = set()
PLACEHOLDERS: set[str] = set()
BUILT_FOLDERS: dict[str, Path] = {}
WHEEL_LOCKS: dict[Path, threading.Lock] = {}
WHEELS_BUILT: set[Path] = set()
TOOLS: dict[tuple[str, ...], Any] = {}
SWEPT: set[Path] = set()
TEAM_CACHES: dict[tuple[Any, bool], Any] = {}
COMMAND_LINE = threading.Event()
"""Set while the ``cdk-uv`` command runs: errors' fixes name its flags, not ``UvOptions`` fields."""

LOCK = threading.Lock()
"""Guards the registries that build threads write (WHEEL_LOCKS, WHEELS_BUILT, TOOLS, SWEPT,
TEAM_CACHES)."""


def jsii_ref(value: object) -> str:
    """The id of the JavaScript object behind a jsii proxy.

    jsii hands out a new Python proxy each time an object made in JavaScript is read, so identity (and
    ``id()``) can't tell two reads apart; this id can, without a round trip to node.
    """
    ref: str = value.__jsii_ref__.ref  # type: ignore[attr-defined]
    return ref


def wheel_lock(entry: Path) -> threading.Lock:
    """The lock of one wheel-cache entry: builds running side by side wait for one build of it."""
    with LOCK:
        return WHEEL_LOCKS.setdefault(entry, threading.Lock())


def reset() -> None:
    """Forget everything: as in a new process."""
    with LOCK:
        for registry in (
            SWAPPED,
            FAILED,
            PLACEHOLDERS,
            BUILT_FOLDERS,
            WHEEL_LOCKS,
            WHEELS_BUILT,
            TOOLS,
            SWEPT,
            TEAM_CACHES,
        ):
            registry.clear()
        COMMAND_LINE.clear()
