"""Process-wide state: everything that outlives one call, with who writes and who reads it.

Aspects, placeholder codes and policy checks are separate objects that meet only in the construct tree,
and every read of the tree is a round trip to node; the registries of this module let them share what
one of them already knows. Functions are keyed by their jsii ref (``jsii_ref``), which is never reused in
a process. The state kept elsewhere is listed here too (tests/test_architecture.py finds every module-level
registry, ``global``, hook and attribute set on a construct, and checks that this list names it).

============================  ======================================  ======================================
state                         written by                              read by
============================  ======================================  ======================================
SWAPPED                       _swap (each function and layer it       _placeholder (UvCode's check), _aspect
                              swapped)
FAILED                        _validation (each function the          _placeholder: their own error says why
                              aspect failed on)
PLACEHOLDERS                  _placeholder.UvCode.bind                _swap (warns about a placeholder asset)
BUILT_FOLDERS                 _swap.record_build (asset hash ->       _policy.facts (the folder a rule reads)
                              built folder)
WHEEL_LOCKS                   _wheels (one lock per wheel entry)      _wheels: builds side by side wait on it
WHEELS_BUILT                  _wheels (entries built here)            _wheels: fresh even with rebuild=True
TOOLS                         _uv (uv binaries), _interpreters        the same: each looked up once per
                              (interpreters found), _strip (strip     process
                              tools)
SWEPT                         _prune.sweep (cache folders swept)      _prune.sweep: once per process and
                                                                      folder
TEAM_CACHES                   _remote.team_cache (one per bucket)     _remote: one breaker for every build
STORE_CLAIMS                  _store (an entry being installed)       _store: builds side by side wait for it
STORE_VERIFIED                _store (entries verified here)          _store: each verified once per process
ENV_SESSIONS                  _wheels.shared_environments (open)      _wheels: build environments are shared
BUILD_ENVS                    _wheels (prepared build environments)   _wheels: one per build system; removed
                                                                      when the last session closes
EXPORTS                       _install (uv export, by package and     _install: once per workspace, package and
                              selection; the lock check)              selection, whatever the target
COMMAND_LINE                  _cli.main, while a command runs         _errors.setting, _workspace: fixes
                                                                      name the command's flags
LOCK                          guards WHEEL_LOCKS, WHEELS_BUILT,       build threads
                              TOOLS, SWEPT, TEAM_CACHES, STORE_*,
                              ENV_SESSIONS, BUILD_ENVS, EXPORTS
_interpreters._LOOKING        find_python: one lookup at a time       build threads
_runner.SLOTS                 (one per core, fixed)                   _runner: a command runs while it holds
                                                                      one
_build._BUILDING              (one per core, fixed)                   _build: a build runs here while it
                                                                      holds one (team-cache transfers do not)
_signals.RUNNING              _runner (children still running),       _signals.running(): to end them all
                              guarded by _signals.RUNNING_LOCK
_signals.STOP                 a signal inside                         _runner: no new command starts;
                              _signals.interruptible                  cleared when the block ends
_signals._depth               _signals.interruptible (blocks open),   the same: only the outermost block
                              guarded by _signals._HANDLING           installs signal handlers
signal.signal                 _signals.interruptible: SIGINT and      the interpreter
                              SIGTERM handlers, restored after
sys.excepthook                _errors.report_cleanly, once (marked    the interpreter, when ``python app.py``
                              ``hook._cdk_uv_aspect``)                ends in one of our errors
Stack._cdk_uv_swapped_check   _placeholder (UvCode's check, one per   _placeholder._SwappedCheck.of
                              Stack, on its Python object)
_builds._SAYING               _builds.say: one line at a time         the same
FAILED_CHECKS                 _policy.plugin (a validation plugin     _policy.plugin's exit handler: the app
                              run going on, or failed with nothing    exits with status 1
                              else to fail the synth on it)
PENDING_REPORTS               _policy.checks (a plugin's report that  _policy.plugin's exit handler writes it
                              can't replace an earlier one yet)
EXIT_GUARD                    _policy.plugin: its exit handler, once  the interpreter, at exit (reset() keeps
                              registered with atexit                  it: it does nothing without failures)
============================  ======================================  ======================================

``reset()`` empties this module's registries (the tests call it before each test); the state kept
elsewhere belongs to a block (``interruptible``), a stack, or the interpreter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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
STORE_CLAIMS: dict[Path, threading.Event] = {}
STORE_VERIFIED: set[Path] = set()
ENV_SESSIONS: list[Any] = []
BUILD_ENVS: dict[tuple[str, ...], Any] = {}
EXPORTS: dict[tuple[Any, ...], Any] = {}
FAILED_CHECKS: dict[int, str] = {}
PENDING_REPORTS: dict[Path, str] = {}
EXIT_GUARD: list[Callable[[], None]] = []
COMMAND_LINE = threading.Event()
"""Set while the ``cdk-uv`` command runs: errors' fixes name its flags, not ``UvOptions`` fields."""

LOCK = threading.Lock()
"""Guards the registries that build threads write (WHEEL_LOCKS, WHEELS_BUILT, TOOLS, SWEPT,
TEAM_CACHES, STORE_CLAIMS, STORE_VERIFIED, ENV_SESSIONS, BUILD_ENVS, EXPORTS)."""


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
            STORE_CLAIMS,
            STORE_VERIFIED,
            ENV_SESSIONS,
            BUILD_ENVS,
            EXPORTS,
            FAILED_CHECKS,
            PENDING_REPORTS,
        ):
            registry.clear()
        COMMAND_LINE.clear()
        COMMAND_LINE.clear()
