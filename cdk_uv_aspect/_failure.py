"""What uv's errors mean: a failed command turned into the error a user reads, with what to do.

uv's stderr is read for which failure it was: a timeout, the network (offline, DNS, refused, no answer), an
untrusted TLS certificate, an index refusing credentials, a stale lock, a hash mismatch, no wheel for the
target, a build backend's error, no interpreter, uv's own cache or a full disk. (Longer than most modules
on purpose: one job, reading uv's output, and each kind of failure is read in one place, its signs below.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._errors import CredentialsError, ToolError, UvError, WheelError, WorkspaceError, setting
from ._index import Refusal
from ._lambda import AMAZON_LINUX_2023, RUNTIMES
from ._names import pinned
from ._runner import Result
from ._target import Target


@dataclass(frozen=True)
class Failure:
    """What failed, for whom: turns a failed command into the error a user reads.

    Each kind of failure has its own message and fix, read from uv's output in this order: the command
    timed out (stopped by us), the network (offline, DNS, refused, no answer), TLS certificates, a
    stale lock, a hash mismatch, no wheel for the target, the build backend; anything else is reported
    as uv's failure with the lines of its output that name the cause.
    """

    package: str
    target: Target
    root: Path  # the workspace

    def error(self, problem: str, result: Result, *, fix: str, kind: type[UvError] = ToolError) -> UvError:
        if result.timed_out:
            return self.timed_out(result)
        return self.no_interpreter(problem, result) or kind(
            problem, package=self.package, target=self.target, fix=fix, details=result.describe()
        )

    def no_interpreter(self, problem: str, result: Result) -> UvError | None:
        """The error for a uv command that needed a Python it could not find; None for any other failure.

        Whatever the command was for (``uv export`` of a package with dynamic metadata, ``uv build``), the
        fix is an interpreter: never ``uv lock``.
        """
        wanted = _NO_INTERPRETER.search(result.stderr)
        if wanted is None:
            return None
        spec = wanted.group(1)
        return ToolError(
            f"{problem}: uv found no Python {spec + ' ' if spec else ''}interpreter it could use "
            "(uv.lock is not the cause)",
            package=self.package,
            target=self.target,
            fix=f"install one where uv finds it (`uv python install '{spec or self.target.python}'`, pyenv, or your "
            "OS's package; a pyenv shim of a version pyenv has not selected fails, so select it: PYENV_VERSION), "
            "or let uv download it by itself (UV_PYTHON_DOWNLOADS=automatic, uv's default)",
            details=result.describe(),
        )

    def timed_out(self, result: Result, of: str = "") -> UvError:
        """The error for a command stopped after its timeout; ``of``: what it was working on, if not the package."""
        limit = f"{result.timeout:g} s" if result.timeout else "its time limit"
        return ToolError(
            f"`{result.command}`{f' of {of}' if of else ''} did not finish within {limit} and was stopped",
            package=self.package,
            target=self.target,
            fix="if it is only slow (a large download, a slow build backend, a container under emulation), "
            f"allow more time: {setting('command_timeout', '<seconds>')}; if it hangs, "
            "run the command below by hand to see what it waits for (a build hook, an index that does not "
            "answer)",
            details=result.describe(),
        )

    def uv_cache(self, result: Result) -> UvError | None:
        """The error for a uv that could not use its own cache (an unwritable HOME, say) or could not
        write (a full or read-only disk); None otherwise."""
        found = _UV_CACHE.search(result.stderr) or _UV_CACHE_08.search(result.stderr)
        if found and (found.re is _UV_CACHE or _is_uv_cache(found.group(1))):
            return self.error(
                f"uv could not use its cache at {found.group(1)}",
                result,
                fix="make that folder writable for this user, or give uv another one: UV_CACHE_DIR=<a writable "
                "folder> (uv's default is under HOME, or XDG_CACHE_HOME)",
            )
        for sign, problem in _DISK:
            if sign in result.stderr:
                return self.error(
                    f"uv could not write its files: {problem}",
                    result,
                    fix="free space on the disk named below (`cdk-uv cache prune --older-than 7`, `uv cache "
                    f"prune`), or move the build cache ({setting('cache_dir')}) or uv's "
                    "cache (UV_CACHE_DIR) to a writable disk with room",
                )
        return None

    def export(self, result: Result) -> UvError:
        problem = "uv could not export the package's locked requirements"
        if missing := self.no_interpreter(problem, result):
            return missing
        if cause := self.uv_cache(result) or self.network(
            result, "check uv.lock against the workspace and the indexes (uv export --locked)"
        ):
            return cause
        if any(sign in result.stderr for sign in _STALE_LOCK):
            # uv's words alone, not the command: the same for every build of the synth, so the aspect
            # reports it once for all of them (the fix is `uv lock`, not this command).
            return WorkspaceError(
                "uv.lock is out of date with the workspace's pyproject.toml files",
                package=self.package,
                target=self.target,
                fix=f"run `uv lock` in {self.root} and commit uv.lock (cdk-uv-aspect never changes it)",
                details=result.quoted(),
            )
        return self.error(
            problem,
            result,
            kind=WorkspaceError,
            fix=f"run `uv export --package {self.package} --no-default-groups` in {self.root} and fix what it reports; "
            "`uv lock` rewrites a damaged lock",
        )

    def network(self, result: Result, needed_for: str) -> UvError | None:
        """The error for a command that timed out, was refused by an index (credentials), or needed the
        network and could not use it (offline, DNS, connection refused, no answer, an untrusted TLS
        certificate); None for any other failure."""
        if result.timed_out:
            return self.timed_out(result)
        if refused := self.refused(result, needed_for):
            return refused
        out = result.stderr
        if _NO_INTERPRETER.search(out):
            return None
        index = _URL.search(out)
        where = f"the package index ({index.group(1)})" if index else "the package index"
        checks = "check the index URL (UV_DEFAULT_INDEX / UV_INDEX_URL / [[tool.uv.index]]) and any proxy (HTTPS_PROXY)"
        offline = (
            "with no network, a synth works when uv's cache already holds what is needed (run it once with "
            "network access)"
        )
        if _found(out, _OFFLINE):
            problem = (
                f"uv needed the network to {needed_for}, and network access is off (UV_OFFLINE is set, or --offline)"
            )
            fix = (
                "run the synth once with network access (uv keeps what it downloads in its cache, and later "
                "builds work offline), or unset UV_OFFLINE"
            )
        elif _found(out, _TLS):
            problem = f"uv needed {where} to {needed_for}, and did not trust its TLS certificate"
            fix = (
                "if a company proxy or a private certificate authority signs HTTPS traffic, let uv use the "
                "system's certificates (UV_NATIVE_TLS=1) or point SSL_CERT_FILE at that authority's bundle; "
                f"else {checks}. Do not turn certificate checks off for an index you deploy from"
            )
        elif _found(out, _NO_ANSWER):
            problem = (
                f"uv needed {where} to {needed_for}, and it did not answer in time (uv waits UV_HTTP_TIMEOUT "
                "seconds, default 30, and retries UV_HTTP_RETRIES times)"
            )
            fix = f"{checks}: it accepted the connection but did not answer; for a slow index raise UV_HTTP_TIMEOUT"
        elif _found(out, _DNS):
            problem = f"uv needed {where} to {needed_for}, and could not resolve its host name (DNS)"
            fix = f"{checks}, and the machine's DNS; {offline}"
        elif _found(out, _UNREACHABLE):
            problem = f"uv needed {where} to {needed_for}, and could not connect to it (refused or unreachable)"
            fix = f"{checks}; {offline}"
        elif _found(out, _NETWORK):
            problem = f"uv needed {where} to {needed_for}, and the request failed"
            fix = f"{checks}; {offline}"
        else:
            return None
        return ToolError(problem, package=self.package, target=self.target, fix=fix, details=result.describe())

    def refused(self, result: Result, needed_for: str) -> UvError | None:
        """The error for a command an index refused (wrong, expired or missing credentials); else None."""
        refusal = Refusal.find(result.stderr)
        if refusal is None:
            return None
        what = f" for {refusal.dependency}" if refusal.dependency else ""
        return self.error(
            f"{refusal.index} refused the credentials ({refusal.status}){what}: uv needed it to {needed_for}",
            result,
            kind=CredentialsError,
            fix=refusal.fix(self.root, os.environ),
        )

    def install(self, result: Result) -> UvError:
        if cause := self.uv_cache(result) or self.network(result, "download the locked dependencies' wheels"):
            return cause
        if mismatch := _HASH_MISMATCH.search(result.stderr):
            requirement = mismatch.group(1)
            name = (pinned(requirement) or (requirement, ""))[0]
            return self.error(
                f"the file uv downloaded for {requirement} does not have a hash that uv.lock records for it",
                result,
                fix=f"uv.lock was edited, or the index (or a proxy, or a mirror) serves another file under that "
                f"name: check `git diff uv.lock` in {self.root}. Only if you trust the index, "
                f"`uv lock --refresh-package {name}` records its hashes again",
            )
        if any(sign in result.stderr for sign in _NO_WHEEL):
            t = self.target
            named = _DEPENDENCY.search(result.stderr)
            dependency = "".join(g or "" for g in named.groups()) if named else "a locked dependency"
            return self.error(
                f"{dependency} has no wheel that loads on {t.os.name} (glibc {t.glibc}, {t.machine}); "
                "a source distribution would be built for this machine, not for Lambda",
                result,
                kind=WheelError,
                fix="pin a release of that dependency that publishes a wheel for "
                f"{t.python_platform} (`uv add 'name<version'`), or move the function to a newer runtime "
                f"({_NEWEST_OS.name}+ runs on {_NEWEST_OS.os.name}, glibc {_NEWEST_OS.os.glibc}), or to the other "
                "architecture",
            )
        return self.error(
            "uv could not install the locked dependencies",
            result,
            fix="fix what uv reports below; with no network, a warm uv cache is needed",
        )

    def build(self, result: Result, package: str, source: Path) -> UvError:
        """A local package's ``uv build`` failed: its build backend, or fetching the backend."""
        if result.timed_out:
            return self.timed_out(result, of=f"the workspace package {package}")
        if cause := self.uv_cache(result) or self.network(result, f"fetch the build backend of {package}"):
            return cause
        if _found(result.stderr, _BACKEND):
            call = _BACKEND_CALL.search(result.stderr)
            return self.error(
                f"the build backend of the workspace package {package} failed"
                + (f" ({call.group(1)})" if call else ""),
                result,
                fix=f"fix the error the backend reports below (its own output is shown; build hooks run here "
                f"too); `uv build --wheel` in {source} shows the same",
            )
        return self.error(
            f"the workspace package {package} did not build",
            result,
            fix=f"fix the build error shown below (try `uv build --wheel` in {source})",
        )


def _is_uv_cache(folder: str) -> bool:
    """Whether ``folder`` is uv's cache: $UV_CACHE_DIR, or uv's default (``<XDG_CACHE_HOME or ~/.cache>/uv``)."""
    return folder == os.environ.get("UV_CACHE_DIR") or Path(folder).name == "uv"


def _found(text: str, signs: Sequence[str]) -> bool:
    lowered = text.lower()
    return any(sign.lower() in lowered for sign in signs)


# The first runtime on the newest Amazon Linux: where wheels for a newer glibc load.
_NEWEST_OS = next(r for r in RUNTIMES.values() if r.os == AMAZON_LINUX_2023)

# Signs in uv's stderr, by kind of failure (matched without case). uv 0.13 prints "error: ..." then one
# "  cause: ..." line per cause; the signs are the words of those lines.
_OFFLINE = ("network was disabled", "network connectivity is disabled")
_TLS = (
    "invalid peer certificate",
    "certificate verify failed",
    "unknownissuer",
    "self-signed certificate",
    "self signed certificate",
    "certificate has expired",
    "unable to get local issuer certificate",
    "caused by: tls",
)
_NO_ANSWER = ("operation timed out", "network timeout", "timed out")
_DNS = ("dns error", "failed to lookup address", "name or service not known", "temporary failure in name resolution")
_UNREACHABLE = (
    "connection refused",
    "tcp connect error",
    "network is unreachable",
    "no route to host",
    "connection reset",
)
_NETWORK = ("error sending request", "request failed after")
# uv wraps its lines: a long path starts on the next line.
_UV_CACHE = re.compile(r"Failed to initialize cache at\s+`([^`]+)`")
# uv 0.8 says only "error: failed to create directory `<its cache>`: Not a directory (os error 20)".
_UV_CACHE_08 = re.compile(r"^error: failed to create directory\s+`([^`]+)`", re.MULTILINE)
_DISK = (
    ("No space left on device", "the disk is full"),
    ("Disk quota exceeded", "the disk quota is exceeded"),
    ("Read-only file system", "the file system is read-only"),
)
_STALE_LOCK = ("needs to be updated", "--locked")
_BACKEND = ("build backend returned an error", "build backend failed")
_BACKEND_CALL = re.compile(r"Call to `([^`]+)` failed")
# "Hash mismatch for `orjson==3.13.0`"
_HASH_MISMATCH = re.compile(r"Hash mismatch for `([^`]+)`")
# "Failed to fetch: https://index/simple/orjson/" or "error sending request for url (https://...)"
_URL = re.compile(r"(?:Failed to fetch:|for url \()\s*(https?://[^/\s)]+)")
# "No interpreter found for Python >=3.14 in managed installations or search path": not a lock problem.
# "Failed to inspect Python interpreter from first executable in the search path": a broken pyenv shim.
_NO_INTERPRETER = re.compile(r"No interpreter found for Python (.+?) in |Failed to inspect Python interpreter")
# Signs that the target has no installable wheel for a locked dependency.
_NO_WHEEL = (
    "no wheels with a matching platform tag",
    "has no binary distribution",
    "doesn't have a source distribution or wheel for the current platform",
    "no wheels with a matching python",
    "is marked as `--no-build`",
    "has no usable wheels",
)
# uv names the dependency: "Because numpy{python_full_version < '3.12'}==2.4.6 has no usable wheels ..."
_DEPENDENCY = re.compile(r"Because ([A-Za-z0-9._-]+)(?:\{[^}]*\})?(==\S+)? has no")
