"""The team cache's bucket: where it is, the calls made to it, each short and bounded, and what a failed
one means.

- ``settings``: ``UvOptions(remote_cache="s3://bucket/prefix")`` or ``$CDK_UV_REMOTE_CACHE`` (the
  environment wins; ``off`` turns it off), and whether this machine writes: ``remote_cache_write=True`` or
  ``$CDK_UV_REMOTE_CACHE_WRITE=1`` (CI).
- ``Location``: ``s3://bucket/prefix``, checked, and the object of each entry in it, only ever built from
  our own names.
- ``connect``: a client of the AWS SDK, whose own configuration decides credentials, region and endpoint
  (``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``...), with short timeouts and few retries; boto3 is imported
  only then.
- ``get`` and ``put``: one object read or written whole (a missing one is ``Missing``); ``within`` gives
  up a call that does not answer in time, ``Paced`` a download slower than ``MIN_RATE``.
- ``failure``: what a failed call means and what to do, from its error code (``error_code``), never from
  what the SDK's exception says (which can quote an access key id).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from ._env import env_flag
from ._errors import SettingError

CONNECT_TIMEOUT = 2.0  # seconds, per attempt
READ_TIMEOUT = 3.0  # seconds without a byte, per attempt
ATTEMPTS = 2  # per call, the SDK's standard retries (throttling, 5xx, a dropped connection)
MIN_RATE = 1_000_000  # bytes per second: a slower transfer is given up (after GRACE), a build is faster
GRACE = 2.0  # seconds before MIN_RATE applies
FORMAT = "v1"  # of the objects' names and contents

ENV_URL = "CDK_UV_REMOTE_CACHE"
ENV_WRITE = "CDK_UV_REMOTE_CACHE_WRITE"

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


def settings(remote_cache: str | None, remote_cache_write: bool) -> tuple[Location | None, bool]:
    """Where the team cache is and whether to write to it: the environment wins over the options."""
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


class Missing(Exception):
    """No such object: a plain miss."""


class Slow(Exception):
    """A download ran below ``MIN_RATE``."""


class Failed(Exception):
    """A call that failed: ``reason`` for the warning, ``fix`` for what to do, ``reads``: whether reading stops too."""

    def __init__(self, reason: str, fix: str, *, reads: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.fix, self.reads = reason, fix, reads


def connect(connections: int) -> Any:
    """An S3 client with short timeouts, few retries and a pool of ``connections``; ``ImportError`` without boto3."""
    from boto3.session import Session  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
        max_pool_connections=connections,
    )
    return Session().client("s3", config=config)


def get(client: Any, bucket: str, name: str) -> dict[str, Any]:
    try:
        response: dict[str, Any] = client.get_object(Bucket=bucket, Key=name)
    except Exception as exc:
        if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            raise Missing from None
        raise
    return response


def put(client: Any, bucket: str, name: str, body: IO[bytes]) -> None:
    client.put_object(Bucket=bucket, Key=name, Body=body, ContentType="application/gzip")


def within(seconds: float, call: Callable[[], T]) -> T:
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


class Paced:
    """A download's body, given up when it runs slower than ``MIN_RATE`` after ``GRACE`` seconds."""

    def __init__(self, body: Any, started: float) -> None:
        self._body, self._started = body, started
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._body.read(size)
        self.read_bytes += len(chunk)
        elapsed = time.monotonic() - self._started
        if elapsed > GRACE and self.read_bytes < MIN_RATE * (elapsed - GRACE):
            raise Slow(f"a download ran below {MIN_RATE / 1e6:g} MB/s ({self.read_bytes} bytes in {elapsed:.1f} s)")
        return chunk


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of an SDK ``ClientError`` (``AccessDenied``...), without its message."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = error.get("Code") or str((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or "")
        return str(code) or None
    return None


def failure(exc: BaseException, location: Location, *, reading: bool) -> Failed:
    """What a failed call means, in words that never quote the SDK's message (it can hold an access key id)."""
    if isinstance(exc, Failed):
        return exc
    settings_fix = f"or set {ENV_URL}=off to build without it"
    code = error_code(exc)
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
            return Failed(f"access denied: {said}", fix, reads=reading)
        if code == "NoSuchBucket":
            return Failed(f"no bucket {location.bucket} ({said})", f"create it (docs/remote-cache.md), {settings_fix}")
        if code in ("SlowDown", "503", "Throttling", "ThrottlingException", "RequestLimitExceeded"):
            return Failed(f"throttled ({said})", f"try again later, {settings_fix}")
        return Failed(said, f"check the bucket and this role's permissions, {settings_fix}", reads=reading)
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return Failed(f"no answer: {exc}", f"check the network and the endpoint, {settings_fix}")
    if isinstance(exc, Slow):
        return Failed(str(exc), f"a build here is faster on this network; {settings_fix}")
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "NoRegionError"):
        return Failed(
            f"no usable AWS credentials or region ({name})",
            f"configure them as for the AWS CLI (AWS_PROFILE, AWS_REGION, aws sso login...), {settings_fix}",
        )
    if name.endswith(("ConnectionError", "TimeoutError", "ConnectionClosedError", "ProxyConnectionError")):
        return Failed(
            f"unreachable ({name})", f"check the network and the endpoint (AWS_ENDPOINT_URL_S3), {settings_fix}"
        )
    if isinstance(exc, OSError):  # the local disk: the build here says what is wrong with it
        return Failed(f"a local file error ({exc.strerror or name})", f"see the build's own error, {settings_fix}")
    return Failed(f"{name}", f"check the bucket and the network, {settings_fix}")
