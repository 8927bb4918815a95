"""The team cache: entries of the build cache shared through an S3 bucket, so that a build made once, on any
CI runner or laptop, is never made again elsewhere.

Configured by ``UvOptions(remote_cache="s3://bucket/prefix")`` or ``$CDK_UV_REMOTE_CACHE`` (the environment
wins; ``off`` turns it off). Everyone reads; only machines given ``remote_cache_write=True`` or
``$CDK_UV_REMOTE_CACHE_WRITE=1`` (CI) write. The AWS SDK's own configuration decides credentials, region
and endpoint (``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``...); boto3 is imported only when a build looks an
entry up, never by ``cdk ls`` or a synth that builds nothing.

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
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from . import _cache, _pack, _state
from ._errors import SettingError
from ._files import atomic_write, work_dir

ENV_URL = "CDK_UV_REMOTE_CACHE"
ENV_WRITE = "CDK_UV_REMOTE_CACHE_WRITE"
BOUND = 5.0  # seconds: the most one call may wait for an answer (calls at once wait side by side)
CONNECT_TIMEOUT = 2.0  # seconds, per attempt
READ_TIMEOUT = 3.0  # seconds without a byte, per attempt
ATTEMPTS = 2  # per call, the SDK's standard retries (throttling, 5xx, a dropped connection)
MIN_RATE = 1_000_000  # bytes per second: a slower transfer is given up (after GRACE), a build is faster
GRACE = 2.0  # seconds before MIN_RATE applies
CONNECTIONS = 8  # calls at once, and the SDK's connection pool
FORMAT = "v1"  # of the objects' names and contents
STATS = "team-cache.json"  # in the local cache's root: what `cdk-uv cache info` shows

Log = Callable[[str], None]
T = TypeVar("T")

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()-]+")
_KIND = re.compile(r"[a-z][a-z0-9-]{0,30}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}")


@dataclass(frozen=True)
class Location:
    """``s3://bucket/prefix``: where a team's entries live."""

    bucket: str
    prefix: str  # "" or "a/b", no slash at either end

    @classmethod
    def parse(cls, url: str) -> Location:
        """The location of ``s3://bucket[/prefix]``; ``ValueError`` saying what is wrong."""
        rest = url.strip()
        if not rest.startswith("s3://"):
            raise ValueError(f"{url!r} is not an s3:// URL (e.g. s3://my-team-build-cache/cdk-uv)")
        bucket, _, prefix = rest.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(
                f"{bucket!r} in {url!r} is not an S3 bucket name (3-63 lowercase letters, digits, . and -)"
            )
        prefix = prefix.strip("/")
        segments = prefix.split("/") if prefix else []
        if any(not _SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
            raise ValueError(
                f"the prefix {prefix!r} in {url!r} is not plain: use letters, digits and !_.*'()- between slashes"
            )
        return cls(bucket, prefix)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, kind: str, key: str) -> str:
        """The object of an entry: only ever built from our own names, checked here."""
        if not (_KIND.fullmatch(kind) and _KEY.fullmatch(key)):
            raise ValueError(f"not an entry name: {kind}/{key}")
        return f"{self.prefix}/{FORMAT}/{kind}/{key}.tar.gz" if self.prefix else f"{FORMAT}/{kind}/{key}.tar.gz"


def check_url(url: str) -> str:
    """An option's value: the URL as given, if it parses (for UvOptions' validator)."""
    Location.parse(url)
    return url.strip()


def settings(remote_cache: str | None, remote_cache_write: bool) -> tuple[Location | None, bool]:
    """Where the team cache is and whether to write to it: the environment wins over the options."""
    from ._options import env_flag

    url = remote_cache
    raw = os.environ.get(ENV_URL, "").strip()
    if raw:
        url = None if raw.lower() == "off" else raw
    write = env_flag(ENV_WRITE) if os.environ.get(ENV_WRITE, "").strip() else remote_cache_write
    if not url:
        return None, False
    try:
        return Location.parse(url), write
    except ValueError as exc:
        where = f"${ENV_URL}" if raw else "UvOptions(remote_cache=...)"
        raise SettingError(
            f"{where}: {exc}",
            fix=f"give s3://BUCKET or s3://BUCKET/PREFIX, or set {ENV_URL}=off to build without the team cache",
        ) from None


def configured(remote_cache: str | None, remote_cache_write: bool) -> bool:
    """Whether a team cache is configured (a setting it can't use counts as none: each build reports it)."""
    try:
        return settings(remote_cache, remote_cache_write)[0] is not None
    except SettingError:
        return False


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


class _Missing(Exception):
    """No such entry: a plain miss."""


class _Failed(Exception):
    """A call that failed: ``reason`` for the warning, ``fix`` for what to do, ``reads``: whether reading stops too."""

    def __init__(self, reason: str, fix: str, *, reads: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.fix, self.reads = reason, fix, reads


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
                response = _within(BOUND, lambda: _get(client, self.location.bucket, name))
                body = _Paced(response["Body"], time.monotonic())  # from the answer: not the wait for a slot
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
        except _Missing:
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
            self._fail(_failure(exc, self.location, reading=True), log)
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
                    _within(BOUND + GRACE + size / MIN_RATE, lambda: _put(client, self.location.bucket, name, packed))
            self._count(started, uploads=1, bytes_up=size)
        except Exception as exc:
            self._count(started)
            self._fail(_failure(exc, self.location, reading=False), log)

    # --- the breaker and the figures --------------------------------------------------------------

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from boto3.session import Session  # type: ignore[import-untyped]
                    from botocore.config import Config  # type: ignore[import-untyped]
                except ImportError:
                    raise _Failed(
                        "boto3 is not installed", "install it: pip install 'cdk-uv-aspect[s3]' (or uv add boto3)"
                    ) from None
                config = Config(
                    connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=READ_TIMEOUT,
                    retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
                    max_pool_connections=CONNECTIONS,
                )
                self._client = Session().client("s3", config=config)
            return self._client

    def _fail(self, failure: _Failed, log: Log | None) -> None:
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


# --- calls ------------------------------------------------------------------------------------------


def _get(client: Any, bucket: str, name: str) -> dict[str, Any]:
    try:
        response: dict[str, Any] = client.get_object(Bucket=bucket, Key=name)
    except Exception as exc:
        if _code(exc) in ("NoSuchKey", "404", "NotFound"):
            raise _Missing from None
        raise
    return response


def _put(client: Any, bucket: str, name: str, body: IO[bytes]) -> None:
    client.put_object(Bucket=bucket, Key=name, Body=body, ContentType="application/gzip")


def _within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, given up after ``seconds``: it runs in a thread of its own, which is left to its own
    timeouts (a daemon: it never holds the process up) when it does not answer in time."""
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["value"] = call()
        except BaseException as exc:  # handed to the caller
            done["error"] = exc

    thread = threading.Thread(target=run, name="cdk-uv-team-cache", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:.0f} s")
    if "error" in done:
        raise done["error"]
    value: T = done["value"]
    return value


class _Paced:
    """A download's body, given up when it runs slower than ``MIN_RATE`` after ``GRACE`` seconds."""

    def __init__(self, body: Any, started: float) -> None:
        self._body, self._started = body, started
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._body.read(size)
        self.read_bytes += len(chunk)
        elapsed = time.monotonic() - self._started
        if elapsed > GRACE and self.read_bytes < MIN_RATE * (elapsed - GRACE):
            raise _Slow(f"a download ran below {MIN_RATE / 1e6:g} MB/s ({self.read_bytes} bytes in {elapsed:.1f} s)")
        return chunk


class _Slow(Exception):
    pass


def _code(exc: BaseException) -> str | None:
    """The S3 error code of an SDK ``ClientError`` (``AccessDenied``...), without its message."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = error.get("Code") or str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or "")
        return str(code) or None
    return None


def _failure(exc: BaseException, location: Location, *, reading: bool) -> _Failed:
    """What a failed call means, in words that never quote the SDK's message (it can hold an access key id)."""
    if isinstance(exc, _Failed):
        return exc
    settings_fix = f"or set {ENV_URL}=off to build without it"
    code = _code(exc)
    if code is not None:
        status = (getattr(exc, "response", {}).get("ResponseMetadata") or {}).get("HTTPStatusCode")
        said = f"{code}, HTTP {status}" if status else code
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            if reading:
                fix = (
                    f"let this role read the bucket: s3:GetObject on {location.url}/* and s3:ListBucket on the "
                    f"bucket (without ListBucket, S3 answers a missing entry with access denied); {settings_fix}"
                )
            else:
                fix = (
                    f"let this role write: s3:PutObject on {location.url}/*, or turn writing off where "
                    f"it is not wanted (unset {ENV_WRITE}); see docs/remote-cache.md"
                )
            return _Failed(f"access denied: {said}", fix, reads=reading)
        if code == "NoSuchBucket":
            return _Failed(f"no bucket {location.bucket} ({said})", f"create it (docs/remote-cache.md), {settings_fix}")
        if code in ("SlowDown", "503", "Throttling", "ThrottlingException", "RequestLimitExceeded"):
            return _Failed(f"throttled ({said})", f"try again later, {settings_fix}")
        return _Failed(said, f"check the bucket and this role's permissions, {settings_fix}", reads=reading)
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return _Failed(f"no answer: {exc}", f"check the network and the endpoint, {settings_fix}")
    if isinstance(exc, _Slow):
        return _Failed(str(exc), f"a build here is faster on this network; {settings_fix}")
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "NoRegionError"):
        return _Failed(
            f"no usable AWS credentials or region ({name})",
            f"configure them as for the AWS CLI (AWS_PROFILE, AWS_REGION, aws sso login...), {settings_fix}",
        )
    if name.endswith(("ConnectionError", "TimeoutError", "ConnectionClosedError", "ProxyConnectionError")):
        return _Failed(
            f"unreachable ({name})", f"check the network and the endpoint (AWS_ENDPOINT_URL_S3), {settings_fix}"
        )
    if isinstance(exc, OSError):  # the local disk: the build here says what is wrong with it
        return _Failed(f"a local file error ({exc.strerror or name})", f"see the build's own error, {settings_fix}")
    return _Failed(f"{name}", f"check the bucket and the network, {settings_fix}")


def _say(log: Log | None, line: str) -> None:
    if log is not None:
        log(line)
    else:
        sys.stderr.write(line + "\n")
