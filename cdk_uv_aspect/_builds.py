"""The builds of a synth, in parallel threads: one line said on stderr for each as it ends."""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from . import _bucket, _cache, _prune, _remote
from ._build import Built, build, candidates, progress_line
from ._request import BuildRequest
from ._runner import Runner, cores
from ._signals import interruptible, jsii_node, while_node_runs
from ._wheels import shared_environments


def build_all(wanted: Mapping[BuildRequest, Sequence[str]], runner: Runner) -> dict[BuildRequest, Built | Exception]:
    """Build every request in parallel; each one's build, or the exception it raised (of any type).

    ``wanted``: each request with the construct paths of what wants it (read by the caller: jsii is not
    thread-safe); the first three name the build when it ends.
    """
    # One build per core; with a team cache, more builds may wait on their downloads side by side.
    options = {request.options for request in wanted}
    waiting = (
        _remote.CONNECTIONS if any(_bucket.configured(o.remote_cache, o.remote_cache_write) for o in options) else 0
    )
    workers = max(1, min(len(wanted), cores() + waiting))
    results: dict[BuildRequest, Built | Exception] = {}
    # SIGINT/SIGTERM while building, or the end of the CDK's node process: every child's process group
    # ends, the builds unwind (removing their private folders) before the pool is left, then the process
    # stops as the signal asks (or with NodeGone). One prepared build environment per build system for all
    # the builds (see _wheels).
    local = [candidate for request in wanted for candidate in candidates(request)]
    with (
        interruptible(),
        while_node_runs(jsii_node()),
        shared_environments(local),
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        futures = {
            request: pool.submit(_build_and_say, request, runner, list(paths[:3]), len(paths))
            for request, paths in wanted.items()
        }
        for request, future in futures.items():
            try:
                results[request] = future.result()
            except Exception as exc:  # each build's error, whatever its type, named and reported with the others
                results[request] = exc
    for cache_dir in {o.cache_dir for o in options}:
        _remote.record_all(cache_dir)  # what the team cache did, for `cdk-uv cache info`
        # What a synth killed right before this one left was too young to be swept when the builds began.
        for kind in (_cache.BUILDS, _cache.WHEELS, _cache.STORE):
            if (cache_dir / kind).is_dir():
                _prune.sweep(cache_dir / kind, again=True)
    return results


def _build_and_say(request: BuildRequest, runner: Runner, shown: list[str], count: int) -> Built:
    built = build(request, runner, log=say)
    # One line per build on stderr, as the CDK prints its own "Bundling asset <path>..." lines, written
    # when the build ends (builds run in parallel): what, for which functions, how long, from where.
    say(progress_line(built, shown, count))
    return built


_SAYING = threading.Lock()


def say(line: str) -> None:
    # One write per line, under a lock: lines of builds that end together never share a line.
    with _SAYING:
        sys.stderr.write(line.rstrip("\n") + "\n")
        sys.stderr.flush()
