"""Where the time of one synth of the benchmark app goes: phases, node round trips, builds, functions.

    .venv/bin/python bench/profile_synth.py [--scenario warm|edit|cold] [--mode aspect|noop|plain|seed]
                                            [--n 50] [--k 5] [--big] [--top 25]

The app (bench/app.py) runs in this process, as `cdk synth` would run it, after the state the scenario
needs was made by a synth in a separate process. Printed:

- phases: importing the CDK (starts node), creating the constructs, synthesis; with the number of jsii
  requests to node and the seconds spent waiting for node in each;
- the aspect's visits: how many, and their seconds in Python and waiting for node (inside visit);
- subprocesses (uv, the target's Python) by kind, summed over the build threads;
- the functions of cdk_uv_aspect (and the bench) with the most cumulative time, over every thread.

No internal name of the library is patched: the profile wraps jsii's pipe to node, each child process
(`subprocess.Popen`), thread-pool work items, and the aspect's public ``visit``.
"""

from __future__ import annotations

import argparse
import concurrent.futures.thread as pool_thread
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

from run import EDITED, Bench, uv_binary  # noqa: E402
from workspace import edit  # noqa: E402

PHASE = ["start"]
NODE_SECONDS: dict[str, float] = defaultdict(float)
NODE_REQUESTS: dict[str, Counter[str]] = defaultdict(Counter)
IN_VISIT = threading.local()
VISITS = {"count": 0, "functions": 0, "seconds": 0.0, "node": 0.0, "requests": 0, "slowest": 0.0}
COMMANDS: dict[str, list[float]] = defaultdict(list)
PROFILES: list[cProfile.Profile] = []


def _wrap_node_pipe() -> None:
    from jsii._kernel.providers import process

    send = process._NodeProcess.send

    def timed_send(self, request, response_type):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return send(self, request, response_type)
        finally:
            seconds = time.perf_counter() - started
            kind = type(request).__name__.removesuffix("Request").lstrip("_").lower()
            NODE_SECONDS[PHASE[0]] += seconds
            NODE_REQUESTS[PHASE[0]][kind] += 1
            if getattr(IN_VISIT, "depth", 0):
                VISITS["node"] += seconds
                VISITS["requests"] += 1

    setattr(process._NodeProcess, "send", timed_send)  # noqa: B010


def _kind(args: list[str]) -> str:
    text = " ".join(args)
    if " export " in text:
        return "uv export"
    if " lock " in text and "--locked" in text:
        return "uv lock --locked (the lock checked)"
    if " pip install " in text:
        if " -r " in text:
            return "uv pip install: third-party (locked)"
        return "uv pip install: local wheels" if "--target" in text else "uv pip install: a build environment"
    if " venv " in text:
        return "uv venv (a build environment)"
    if " build " in text and "--wheel" in text:
        how = "prepared environment" if "--no-build-isolation" in text else "isolated"
        return f"uv build --wheel (local package, {how})"
    if "build_wheel(out" in text:
        return "local wheels, one backend process"
    if "compileall" in text:
        return "bytecode (compileall)"
    if " sync " in text:
        return "uv sync (seed recipe)"
    if " python find " in text:
        return "uv python find"
    return Path(args[0]).name + " " + " ".join(args[1:2])


def _wrap_subprocess() -> None:
    """Every child's wall seconds by kind, from its start to the end of its output (``communicate``, which
    the library's runner and ``subprocess.run`` both use)."""
    init, communicate = subprocess.Popen.__init__, subprocess.Popen.communicate

    def timed_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._profile_started = time.perf_counter()
        init(self, *args, **kwargs)

    def timed_communicate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return communicate(self, *args, **kwargs)
        finally:
            if not getattr(self, "_profile_done", False):
                self._profile_done = True
                argv = [str(a) for a in self.args] if not isinstance(self.args, str) else [self.args]
                COMMANDS[_kind(argv)].append(time.perf_counter() - self._profile_started)

    setattr(subprocess.Popen, "__init__", timed_init)  # noqa: B010
    setattr(subprocess.Popen, "communicate", timed_communicate)  # noqa: B010


def _profile_pool_threads() -> None:
    """Each thread-pool work item (a build, a wheel) runs under its own profiler, merged at the end."""
    work_item_run = pool_thread._WorkItem.run

    def profiled(self):  # type: ignore[no-untyped-def]
        profile = cProfile.Profile()
        PROFILES.append(profile)
        profile.enable()
        try:
            return work_item_run(self)
        finally:
            profile.disable()

    setattr(pool_thread._WorkItem, "run", profiled)  # noqa: B010


def _time_visits(aspect_class: type) -> type:
    import jsii
    from aws_cdk import IAspect
    from aws_cdk import aws_lambda as lambda_

    @jsii.implements(IAspect)
    class Timed(aspect_class):  # type: ignore[misc]
        def visit(self, node):  # type: ignore[no-untyped-def]
            IN_VISIT.depth = getattr(IN_VISIT, "depth", 0) + 1
            started = time.perf_counter()
            try:
                return super().visit(node)
            finally:
                IN_VISIT.depth -= 1
                seconds = time.perf_counter() - started
                VISITS["count"] += 1
                VISITS["functions"] += isinstance(node, lambda_.Function)
                VISITS["seconds"] += seconds
                VISITS["slowest"] = max(VISITS["slowest"], seconds)

    return Timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=("warm", "edit", "cold"), default="warm")
    parser.add_argument("--mode", choices=("aspect", "noop", "plain", "seed"), default="aspect")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--big", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cdk-uv-profile."))
    try:
        bench = Bench(work, [args.n], [args.k], 1, args.n)
        setup = bench.setup(args.k)
        outdir = work / "profiled.out"
        bench.synth(setup, args.mode, args.n, outdir, big=args.big)  # the state a warm synth finds
        if args.scenario == "cold":
            shutil.rmtree(outdir)
            shutil.rmtree(setup.cache, ignore_errors=True)
            shutil.rmtree(setup.envs, ignore_errors=True)
        elif args.scenario == "edit":
            edit(setup.workspace, EDITED, "profiled")
        os.environ.update(
            {
                "CDK_UV_CACHE_DIR": str(setup.cache),
                "SEED_ENV_ROOT": str(setup.envs),
                "PATH": os.pathsep.join([str(Path(uv_binary()).parent), os.environ["PATH"]]),
            }
        )
        os.chdir(setup.workspace)
        profile(args, setup, outdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def profile(args: argparse.Namespace, setup, outdir: Path) -> None:  # type: ignore[no-untyped-def]
    _wrap_subprocess()
    _profile_pool_threads()
    main_profile = cProfile.Profile()
    PROFILES.append(main_profile)
    walls: dict[str, float] = {}
    main_profile.enable()
    started = time.perf_counter()
    import aws_cdk  # noqa: F401  # starts node and loads aws-cdk-lib's assembly
    from aws_cdk import aws_lambda  # noqa: F401

    _wrap_node_pipe()
    import app as bench_app

    if args.mode == "aspect":
        import cdk_uv_aspect

        setattr(cdk_uv_aspect, "UvBundlingAspect", _time_visits(cdk_uv_aspect.UvBundlingAspect))  # noqa: B010
        cdk_uv_aspect.UvCode  # noqa: B018  # import what the app imports, inside this phase
    elif args.mode == "noop":
        setattr(bench_app, "DoNothing", _time_visits(bench_app.DoNothing))  # noqa: B010
    walls["import"] = time.perf_counter() - started
    prebuilt = __import__("json").loads(setup.prebuilt.read_text())

    PHASE[0] = "construct"
    mark = time.perf_counter()
    app = bench_app.build(args.mode, args.n, args.k, str(setup.workspace), str(outdir), prebuilt, args.big)
    walls["construct"] = time.perf_counter() - mark
    PHASE[0] = "synth"
    mark = time.perf_counter()
    app.synth()
    walls["synth"] = time.perf_counter() - mark
    main_profile.disable()

    print(
        f"{args.mode}, {args.scenario}: N={args.n} functions over K={args.k} packages"
        f"{' in the big app' if args.big else ''}; load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'phase':<10} {'wall s':>7} {'node s':>7} {'requests':>8}  requests by kind")
    for phase in ("import", "construct", "synth"):
        kinds = NODE_REQUESTS.get(phase, Counter())
        shown = ", ".join(f"{k} {v}" for k, v in kinds.most_common())
        print(f"{phase:<10} {walls[phase]:7.2f} {NODE_SECONDS.get(phase, 0.0):7.2f} {sum(kinds.values()):8d}  {shown}")
    if VISITS["count"]:
        python = VISITS["seconds"] - VISITS["node"]
        print(
            f"visits: {VISITS['count']} ({VISITS['functions']} functions), {VISITS['seconds']:.2f}s inside visit: "
            f"{python:.2f}s Python (builds included), {VISITS['node']:.2f}s waiting for node in "
            f"{VISITS['requests']} requests; the slowest visit {VISITS['slowest']:.2f}s"
        )
    if COMMANDS:
        print("subprocesses, summed over threads:")
        for kind, times in sorted(COMMANDS.items(), key=lambda kv: -sum(kv[1])):
            print(f"  {kind:<40} {len(times):4d} x  {sum(times):7.2f}s")
    stats = pstats.Stats(PROFILES[0], stream=io.StringIO())
    for extra in PROFILES[1:]:
        stats.add(extra)
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(r"cdk_uv_aspect|bench/app|seed_recipe", args.top)
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[-6000:])


if __name__ == "__main__":
    main()
