"""The team cache: entries of the build cache shared through an S3 bucket, so that a build made once, on any
CI runner or laptop, is never made again elsewhere.

Where the bucket is, whether this machine writes to it (CI does, laptops read) and the calls made to it
are ``_bucket``'s; this module is the team cache of a process: one for each bucket (``team_cache``), its
breaker and its figures. boto3 is imported only when a build looks an entry up, never by ``cdk ls`` or a
synth that builds nothing.

An entry is one object, ``<prefix>/v1/<kind>/<key>.tar.gz`` (``kind``: the folder of the local cache it
lives in, ``builds``, ``wheels``...; ``key``: the entry's name, computed here from what decides its
content, never read from the bucket), written whole by one PUT. A downloaded entry is checked file by
file against its manifest as it is unpacked (``_pack``), then published into the local cache as a local
build is, and used only if the local cache's own checks pass: an object that does not match is refused
with a warning naming its key, and the entry is built here.

Never in the way: every call has short timeouts and a wall (``BOUND``); a download or upload slower
than ``MIN_RATE`` is given up; and the first failure that is not "no such entry" (unreachable, access
denied, throttled, no credentials) opens a breaker that every build of the process shares: no further
call is made, one warning says why, and everything is built here. Calls made at once wait side by side,
so a bucket that hangs costs about ``BOUND`` seconds in all. At most ``CONNECTIONS`` calls run at once.

Messages name the bucket, the key and the error code, never what the SDK's exception says (which can
quote an access key id), and nothing of the SDK's configuration reaches the cache or the cloud assembly.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import _cache, _pack, _state
from ._bucket import (
    FORMAT,
    GRACE,
    MIN_RATE,
    Failed,
    Location,
    Missing,
    Paced,
    connect,
    failure,
    get,
    put,
    settings,
    within,
)
from ._files import atomic_write, work_dir

BOUND = 5.0  # seconds: the most one call may wait for an answer (calls at once wait side by side)
CONNECTIONS = 8  # calls at once, and the SDK's connection pool
STATS = "team-cache.json"  # in the local cache's root: what `cdk-uv cache info` shows

Log = Callable[[str], None]


def team_cache(remote_cache: str | None, remote_cache_write: bool) -> TeamCache | None:
    """The process's team cache for these settings (one breaker for every build), or None when there is none."""
    location, write = settings(remote_cache, remote_cache_write)
    if location is None:
        return None
    with _state.LOCK:
        found = _state.TEAM_CACHES.get((location, write))
        if found is None:
            found = _state.TEAM_CACHES[(location, write)] = TeamCache(location, write)
    assert isinstance(found, TeamCache)
    return found


@dataclass
class Stats:
    """What the team cache did for this process (and, in ``team-cache.json``, over time)."""

    hits: int = 0
    misses: int = 0
    refused: int = 0  # objects that did not match their manifest
    uploads: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    seconds: float = 0.0  # spent in calls, summed over the calls running at once
    failed: str | None = None  # why the breaker opened, if it did

    def add(self, other: Stats) -> None:
        for name in ("hits", "misses", "refused", "uploads", "bytes_down", "bytes_up"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds = round(self.seconds + other.seconds, 3)
        self.failed = other.failed or self.failed


@dataclass
class TeamCache:
    """A team cache, shared by every build of the process: its client, its breaker and its figures."""

    location: Location
    write: bool
    stats: Stats = field(default_factory=Stats)
    _reads_off: bool = False
    _writes_off: bool = False
    _client: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(CONNECTIONS))
    _recorded: Stats = field(default_factory=Stats)
    _stored: set[tuple[str, str]] = field(default_factory=set)  # (kind, key) uploaded by this process

    @property
    def readable(self) -> bool:
        return not self._reads_off

    # --- reading ----------------------------------------------------------------------------------

    def fetch(self, kind: str, key: str, parent: Path, log: Log | None = None) -> dict[str, Any] | None:
        """Download the entry ``key`` of ``kind`` into ``parent / key`` (the local cache's folder of that
        kind), checked and published; its ``build.json``, or None (a miss, a refused object, a failure)."""
        if self._reads_off:
            return None
        name = self.location.object_key(kind, key)
        started = time.monotonic()
        got = 0
        try:
            client = self._connect()
            with self._slots:
                if self._reads_off:
                    return None
                response = within(BOUND, lambda: get(client, self.location.bucket, name))
                body = Paced(response["Body"], time.monotonic())  # from the answer: not the wait for a slot
                with work_dir(parent, key) as work:
                    info = _pack.unpack(body, work)
                    got = body.read_bytes
                    _cache.write_info(work, info)
                    final = _cache.publish(work, parent / key, rebuild=False)
            used = _cache.use(final)
            if used is None:  # published, yet the local cache's own checks refuse it
                raise _pack.Refused("the local build cache's checks refuse it")
            self._count(started, hits=1, bytes_down=got)
            return used
        except Missing:
            self._count(started, misses=1)
        except _pack.Refused as exc:
            self._count(started, refused=1)
            _say(
                log,
                f"cdk-uv-aspect: the team cache's entry {key} ({self.location.url}/{FORMAT}/{kind}/) is refused: "
                f"{exc}; building it here instead. The object was damaged or changed after it was written: "
                "delete it, or let a writer replace it (CDK_UV_REBUILD=1 with CDK_UV_REMOTE_CACHE_WRITE=1)",
            )
        except Exception as exc:  # whatever it is, the team cache is not worth waiting for now: build here
            self._count(started)
            self._fail(failure(exc, self.location, reading=True), log)
        return None

    # --- writing ----------------------------------------------------------------------------------

    def store(self, kind: str, entry: Path, log: Log | None = None) -> None:
        """Upload the local entry ``entry`` (a folder of ``kind``), if this machine writes. Best effort."""
        if not self.write or self._writes_off or self._reads_off:
            return
        with self._lock:
            if (kind, entry.name) in self._stored:
                return
            self._stored.add((kind, entry.name))
        info = _cache.read_info(entry)
        if info is None:
            return
        name = self.location.object_key(kind, entry.name)
        started = time.monotonic()
        try:
            with tempfile.TemporaryFile(dir=entry.parent) as packed:
                try:
                    _pack.pack(entry, info, packed)
                except _pack.NotShareable:
                    return  # an entry with a link in it stays on this machine
                size = packed.tell()
                packed.seek(0)
                client = self._connect()
                with self._slots:
                    if self._writes_off or self._reads_off:
                        return
                    within(BOUND + GRACE + size / MIN_RATE, lambda: put(client, self.location.bucket, name, packed))
            self._count(started, uploads=1, bytes_up=size)
        except Exception as exc:
            self._count(started)
            self._fail(failure(exc, self.location, reading=False), log)

    # --- the breaker and the figures --------------------------------------------------------------

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = connect(CONNECTIONS)
                except ImportError:
                    raise Failed(
                        "boto3 is not installed", "install it: pip install 'cdk-uv-aspect[s3]' (or uv add boto3)"
                    ) from None
            return self._client

    def _fail(self, failure: Failed, log: Log | None) -> None:
        """Open the breaker (for writing only, when a write was refused), and say why, once for each."""
        with self._lock:
            first = not self._reads_off if failure.reads else not (self._reads_off or self._writes_off)
            self._writes_off = True
            self._reads_off = self._reads_off or failure.reads
            if first:
                self.stats.failed = failure.reason
        if first:
            what, rest = (
                ("used", "every package is built here") if failure.reads else ("written to", "builds stay here")
            )
            _say(
                log,
                f"cdk-uv-aspect: warning: the team cache {self.location.url} can't be {what} ({failure.reason}): "
                f"{rest} for the rest of this run. To fix: {failure.fix}",
            )

    def _count(self, started: float, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)
            self.stats.seconds += time.monotonic() - started

    def record(self, cache_dir: Path) -> None:
        """Add what this process did since the last call to ``<cache_dir>/team-cache.json``. Best effort."""
        with self._lock:
            done = Stats(**asdict(self.stats))
        since = Stats(**asdict(done))
        for name in ("hits", "misses", "refused", "uploads", "bytes_down", "bytes_up"):
            setattr(since, name, getattr(done, name) - getattr(self._recorded, name))
        since.seconds = round(done.seconds - self._recorded.seconds, 3)
        if since == Stats(failed=since.failed) and since.failed == self._recorded.failed:
            return
        self._recorded = done
        path = cache_dir / STATS
        with contextlib.suppress(OSError, ValueError, TypeError):
            saved = json.loads(path.read_text()) if path.is_file() else {}
            last = Stats(**saved["last"]) if saved.get("pid") == os.getpid() and "last" in saved else Stats()
            total = Stats(**saved["total"]) if "total" in saved else Stats()
            last.add(since)
            total.add(since)
            record = {
                "url": self.location.url,
                "write": self.write,
                "pid": os.getpid(),
                "at": round(time.time(), 3),
                "since": saved.get("since", round(time.time(), 3)),
                "last": asdict(last),
                "total": asdict(total),
            }
            cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(record, indent=1) + "\n")


def record_all(cache_dir: Path) -> None:
    """What every team cache of this process did, added to ``<cache_dir>/team-cache.json``."""
    with _state.LOCK:
        used = list(_state.TEAM_CACHES.values())
    for team in used:
        team.record(cache_dir)


def read_stats(cache_dir: Path) -> dict[str, Any] | None:
    """``team-cache.json`` of a local cache, or None."""
    try:
        found = json.loads((cache_dir / STATS).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _say(log: Log | None, line: str) -> None:
    if log is not None:
        log(line)
    else:
        sys.stderr.write(line + "\n")
