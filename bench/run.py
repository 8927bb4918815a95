"""Benchmark of cdk-uv-aspect against what users do without it: prints tables, writes a chart and JSON.

    ./dev bench                      # or: .venv/bin/python bench/run.py [options]
    ./dev bench --quick              # a few minutes: N = 10, 50 over K = 5, 2 rounds, a smaller big app
    ./dev bench --only compare,big   # some parts; --n 50 --k 20 --rounds 3 narrow or widen them

Parts (see bench/README.md for what each measures and the figures):

compare  Four ways to get the same functions' code, each synth a fresh `python bench/app.py` process as
         `cdk synth` runs it: `Code.from_asset` on prebuilt folders (no build at all), the same with a
         do-nothing Python aspect (the floor of any aspect), the seed recipe (seed_recipe.py) and
         cdk-uv-aspect. Three scenarios: warm (nothing changed), edit (one package's handler edited
         before each synth) and cold (uv's cache warm, build caches and cdk.out empty). N = 10, 50, 200
         functions over K = 5 and 20 packages. The four run in turn, in a rotating order, round after
         round; medians, min-max and per-round ratios.
bump     A one-distribution lock bump (orjson, used by every package) across K = 20 packages, N = 50
         functions: the synth after `uv lock --upgrade-package orjson==<next>` against a cold synth of the
         same app, alternating, round after round.
big      200 functions in an app of 2,000+ constructs (log groups, queues, roles, policies around each
         function) against the same 200 functions alone, warm: tells the cost per construct visited
         from the cost per function.
pip      A cold build of one package (sample `users`) versus `pip install --target` of the same locked
         requirements.
start    Importing each sample handler from its asset, with bytecode versus without.
slim     tests/fixtures/heavy's frames (numpy, pandas) for python3.12 x86_64 and arm64, whole, slim=True and
         slim="bytecode-only": bytes unzipped and zipped, files, and the import of its handler (this machine's
         architecture only), median of 5 x rounds.
team     Cold synth (empty build cache and cdk.out) with the team cache filled, on moto_server on loopback,
         against the seed recipe's cold synth and the aspect's cold synth without it: N = 50 functions
         over K = 5 and 20 packages (goal: team cache at most 0.5 of the seed recipe).

Timing is measured here, never asserted in tests. The machine's other load shows up as noise: the load
average is printed before and after each part; compare ratios from one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from workspace import PER_STACK, edit, generate, package_of  # noqa: E402

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

MODES = ("plain", "noop", "seed", "aspect")
LABELS = {
    "plain": "Code.from_asset, prebuilt",
    "noop": "do-nothing aspect (floor)",
    "seed": "seed recipe",
    "aspect": "cdk-uv-aspect",
}
SHORT = {"plain": "prebuilt", "noop": "floor", "seed": "seed recipe", "aspect": "cdk-uv-aspect"}
SCENARIOS = ("warm", "edit", "cold")
# orjson releases the bump part moves the lock through (each has wheels for python3.12 x86_64).
BUMPS = ["3.10.10", "3.10.11", "3.10.12", "3.10.13", "3.10.14", "3.10.15", "3.10.16", "3.10.18"]
EDITED = "fn00"  # the package edited in the edit scenario: function F0's
SAMPLES = REPO / "samples"
# (package, handler module, handler function, Python) of the samples, built for this machine's arch.
HANDLERS = [
    ("orders", "orders.handler", "main", "3.12"),
    ("users", "users.handler", "main", "3.11"),
    ("report", "main", "handler", "3.13"),
]


def uv_binary() -> str:
    from uv import find_uv_bin  # the uv that comes with cdk-uv-aspect

    return find_uv_bin()


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    info: dict[str, object] = {"cores": os.cpu_count(), "python": platform.python_version(), "arch": platform.machine()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")
        )
        meminfo = Path("/proc/meminfo").read_text()
        kb = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal")))
        info["memory_gb"] = round(kb / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        info["cpu"] = platform.processor() or "unknown"
    for name in ("aws-cdk-lib", "jsii", "cdk-uv-aspect"):
        info[name] = dist_version(name)
    info["uv"] = subprocess.run([uv_binary(), "--version"], capture_output=True, text=True).stdout.split()[1]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True)
    info["node"] = node.stdout.strip() or "?"
    return info


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Setup:
    """One generated workspace of K packages and each row's state for it (build caches, prebuilt folders)."""

    k: int
    root: Path
    workspace: Path = field(init=False)
    cache: Path = field(init=False)  # cdk-uv-aspect's build cache (CDK_UV_CACHE_DIR)
    envs: Path = field(init=False)  # the seed recipe's fixed per-package environments (SEED_ENV_ROOT)
    prebuilt: Path = field(init=False)  # package -> a ready-made folder, for the prebuilt and floor rows

    def __post_init__(self) -> None:
        self.workspace = self.root / "ws"
        self.cache = self.root / "cache"
        self.envs = self.root / "seed-envs"
        self.prebuilt = self.root / "prebuilt.json"


@dataclass
class Run:
    wall: float
    cpu: float
    shipped: bool | None = None  # edit scenario: whether F0's asset holds the edit


class Bench:
    def __init__(self, work: Path, ns: list[int], ks: list[int], rounds: int, big_n: int) -> None:
        self.work = work
        self.ns, self.ks, self.rounds, self.big_n = ns, ks, rounds, big_n
        self.uv = uv_binary()
        self.setups: dict[int, Setup] = {}
        self.results: dict[str, Any] = {}

    # --- synthesis ----------------------------------------------------------------------------

    def synth(
        self,
        setup: Setup,
        mode: str,
        n: int,
        outdir: Path,
        *,
        big: bool = False,
        count: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Run:
        """One fresh `python bench/app.py` process (what `cdk synth` runs): wall and CPU seconds.

        CPU is user + system of the process and of what it waited for (node, uv, the build tools): on a
        shared machine it is less disturbed by other load than wall time.
        """
        args = [sys.executable, str(HERE / "app.py"), mode, str(n), str(setup.k), str(setup.workspace), str(outdir)]
        if mode in ("plain", "noop"):
            args += ["--prebuilt", str(setup.prebuilt)]
        if big:
            args.append("--big")
        if count:
            args += ["--count", str(count)]
        env = {
            **os.environ,
            "CDK_UV_CACHE_DIR": str(setup.cache),
            "SEED_ENV_ROOT": str(setup.envs),
            "PATH": os.pathsep.join([str(Path(self.uv).parent), os.environ.get("PATH", "")]),
            **(env or {}),
        }
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(args, env=env, cwd=setup.workspace, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise SystemExit(f"bench: {mode} synth of N={n} K={setup.k} failed:\n{result.stderr[-4000:]}")
        return Run(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))

    def setup(self, k: int) -> Setup:
        """The workspace of K packages, every row's state warm, and the prebuilt folders (built once)."""
        if k in self.setups:
            return self.setups[k]
        setup = Setup(k, self.work / f"k{k}")
        generate(setup.workspace, k, self.uv)
        self._prebuild(setup)
        self.setups[k] = setup
        return setup

    def _prebuild(self, setup: Setup) -> None:
        # The prebuilt folders are cdk-uv-aspect's own output for every package: the prebuilt and floor
        # rows then stage exactly the files the aspect's row stages.
        out = setup.root / "setup.out"
        shutil.rmtree(setup.root / "prebuilt", ignore_errors=True)
        self.synth(setup, "aspect", setup.k, out)
        folders = {}
        for package, asset in assets_by_package(out, setup.k, setup.k).items():
            folders[package] = str(setup.root / "prebuilt" / package)
            shutil.copytree(asset, folders[package], symlinks=True)
        setup.prebuilt.write_text(json.dumps(folders))
        shutil.rmtree(out)

    # --- compare: four rows, three scenarios, N x K ---------------------------------------------

    def compare(self) -> None:
        print(
            f"\ncompare: N = {', '.join(map(str, self.ns))} functions over K = {', '.join(map(str, self.ks))} "
            f"packages; {self.rounds} rounds of alternating runs per scenario"
        )
        data = []
        for k in self.ks:
            setup = self.setup(k)
            for n in self.ns:
                started, load_before = time.perf_counter(), load()
                block: dict[str, Any] = {"n": n, "k": k, "packages": min(n, k), "load_before": load_before}
                for scenario in SCENARIOS:
                    block[scenario] = self._scenario(setup, n, scenario)
                block["load_after"], block["seconds"] = load(), round(time.perf_counter() - started, 1)
                data.append(block)
                self.results["compare"] = data  # kept in results.json if a later block is interrupted
                print(
                    f"  N={n:<3} K={k:<2} done in {block['seconds']:.0f}s (load {load_before[0]} -> "
                    f"{block['load_after'][0]})",
                    flush=True,
                )
        self.results["compare"] = data
        print_compare(data, self.rounds)

    def _scenario(self, setup: Setup, n: int, scenario: str) -> dict[str, Any]:
        outdirs = {mode: self.work / f"k{setup.k}-n{n}-{mode}.out" for mode in MODES}
        if scenario == "cold" and n == self.ns[0]:
            for mode in MODES:  # once per workspace: first use of each row's code (page cache, uv cache)
                self.synth(setup, mode, n, outdirs[mode])
        runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
        for r in range(self.rounds):
            # Each round rotates the order, so that a drift in the machine's load hits each row alike.
            for mode in MODES[r % len(MODES) :] + MODES[: r % len(MODES)]:
                token = None
                if scenario == "cold":
                    shutil.rmtree(outdirs[mode], ignore_errors=True)  # a fresh checkout: no cdk.out
                    if mode == "aspect":
                        shutil.rmtree(setup.cache, ignore_errors=True)
                    elif mode == "seed":
                        shutil.rmtree(setup.envs, ignore_errors=True)
                elif scenario == "edit":
                    token = f"{mode}-{n}-{r}-{uuid.uuid4().hex[:8]}"
                    if mode in ("plain", "noop"):  # a prebuilt folder rebuilt by hand: its handler changed
                        folder = Path(json.loads(setup.prebuilt.read_text())[EDITED])
                        _append_edit(folder / EDITED / "handler.py", token)
                    else:
                        edit(setup.workspace, EDITED, token)
                run = self.synth(setup, mode, n, outdirs[mode])
                if token is not None:
                    run.shipped = token in shipped_handler(outdirs[mode], EDITED).read_text()
                runs[mode].append(run)
        return {
            mode: {
                "wall": [round(r.wall, 3) for r in runs[mode]],
                "cpu": [round(r.cpu, 3) for r in runs[mode]],
                **({"shipped": [r.shipped for r in runs[mode]]} if scenario == "edit" else {}),
            }
            for mode in MODES
        }

    # --- bump: a one-distribution lock bump against a cold synth ---------------------------------

    def bump(self) -> None:
        k = 20 if 20 in self.ks else max(self.ks)
        n = 50 if 50 in self.ns else max(self.ns)
        setup = Setup(k, self.work / f"bump-k{k}")
        generate(setup.workspace, k, self.uv)
        versions = BUMPS[: self.rounds + 1]
        print(
            f"\nbump: orjson (every package's) moved to the next locked version, N={n} functions over K={k} "
            f"packages, against a cold synth; {self.rounds} rounds of alternating runs",
            flush=True,
        )
        for version in versions:  # uv's cache holds every version's wheel, as for the cold rows
            self._relock(setup, version)
            self._fetch(version)
        outdir, plain = self.work / "bump.out", self.work / "bump-prebuilt.out"
        self._relock(setup, versions[0])
        self._prebuild(setup)  # the prebuilt row: what the CDK costs alone, which no build can go below
        self.synth(setup, "plain", n, plain)
        self.synth(setup, "aspect", n, outdir)  # warm at the first version
        load_before, started = load(), time.perf_counter()
        runs: dict[str, list[Run]] = {"bump": [], "cold": [], "prebuilt": []}
        for version in versions[1:]:
            self._relock(setup, version)
            runs["bump"].append(self.synth(setup, "aspect", n, outdir))
            shutil.rmtree(outdir, ignore_errors=True)
            shutil.rmtree(setup.cache, ignore_errors=True)
            runs["cold"].append(self.synth(setup, "aspect", n, outdir))  # leaves the build state warm again
            runs["prebuilt"].append(self.synth(setup, "plain", n, plain))
        data = {
            "n": n,
            "k": k,
            "versions": versions,
            "load_before": load_before,
            "load_after": load(),
            "seconds": round(time.perf_counter() - started, 1),
            **{
                name: {"wall": [round(r.wall, 3) for r in rs], "cpu": [round(r.cpu, 3) for r in rs]}
                for name, rs in runs.items()
            },
        }
        self.results["bump"] = data
        print_bump(data)

    def _relock(self, setup: Setup, version: str) -> None:
        subprocess.run(
            [self.uv, "lock", "--quiet", "--upgrade-package", f"orjson=={version}"], cwd=setup.workspace, check=True
        )

    def _fetch(self, version: str) -> None:
        target = self.work / "bump-fetch"
        subprocess.run(
            [self.uv, "pip", "install", "--quiet", "--no-deps", "--target", str(target), "--python-platform",
             "x86_64-manylinux_2_34", "--python-version", "3.12", f"orjson=={version}"],
            check=True,
        )  # fmt: skip
        shutil.rmtree(target, ignore_errors=True)

    # --- big: per construct visited versus per function -----------------------------------------

    def big(self) -> None:
        k = 20 if 20 in self.ks else max(self.ks)
        n = self.big_n
        setup = self.setup(k)
        print(
            f"\nbig: {n} functions over K={k} packages, alone and in a big app (about 15 constructs each), warm; "
            f"{self.rounds} rounds of alternating runs",
            flush=True,
        )
        load_before, started = load(), time.perf_counter()
        variants = [(mode, big) for big in (False, True) for mode in MODES]
        outdirs = {v: self.work / f"big-{v[0]}-{int(v[1])}.out" for v in variants}
        constructs = {}
        for mode, big in variants:  # warm-up, and the number of constructs of each app
            count = self.work / "count.txt"
            self.synth(setup, mode, n, outdirs[(mode, big)], big=big, count=count)
            constructs[(mode, big)] = int(count.read_text())
        runs: dict[tuple[str, bool], list[Run]] = {v: [] for v in variants}
        for r in range(self.rounds):
            for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
                runs[v].append(self.synth(setup, v[0], n, outdirs[v], big=v[1]))
        data = {
            "n": n,
            "k": k,
            "load_before": load_before,
            "load_after": load(),
            "seconds": round(time.perf_counter() - started, 1),
            "apps": {
                ("big" if big else "lean"): {
                    "constructs": {mode: constructs[(mode, big)] for mode in MODES},
                    **{
                        mode: {
                            "wall": [round(x.wall, 3) for x in runs[(mode, big)]],
                            "cpu": [round(x.cpu, 3) for x in runs[(mode, big)]],
                        }
                        for mode in MODES
                    },
                }
                for big in (False, True)
            },
        }
        self.results["big"] = data
        print_big(data)

    # --- pip: a cold build of one package versus pip install --target ---------------------------

    def pip(self) -> None:
        # The library's build step, called directly: these imports follow its internal layout.
        from cdk_uv_aspect import UvOptions
        from cdk_uv_aspect._build import build
        from cdk_uv_aspect._interpreters import find_python
        from cdk_uv_aspect._request import BuildRequest
        from cdk_uv_aspect._target import Target
        from cdk_uv_aspect._workspace import Workspace

        runs = max(1, self.rounds - 2)
        python = find_python(self.uv, "3.12")
        assert python, "the pip part needs a Python 3.12 where uv finds it"
        workspace = Workspace.find(SAMPLES)
        target = Target(python="3.12", arch="x86_64")
        requirements, local = self._locked(workspace, "users")

        def ours() -> float:
            cache = fresh(self.work / "pip-ours-cache")
            request = BuildRequest(workspace, "users", target, UvOptions(cache_dir=cache, workspace=SAMPLES))
            started = time.perf_counter()
            build(request)
            return time.perf_counter() - started

        def theirs() -> float:
            site = fresh(self.work / "pip-site")
            env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
            started = time.perf_counter()
            for args in (["-r", str(requirements)], ["--no-deps", *local]):
                subprocess.run(
                    [python, "-m", "pip", "install", "--quiet", "--target", str(site), *args],
                    env=env,
                    check=True,
                    capture_output=True,
                )
            return time.perf_counter() - started

        load_before = load()
        ours(), theirs()  # fill uv's and pip's download caches
        times: dict[str, list[float]] = {"cdk-uv-aspect build": [], "pip install --target": []}
        for _ in range(runs):
            times["cdk-uv-aspect build"].append(ours())
            times["pip install --target"].append(theirs())
        medians = {k: statistics.median(v) for k, v in times.items()}
        ratio = medians["cdk-uv-aspect build"] / medians["pip install --target"]
        self.results["pip"] = {"times": times, "ratio": ratio, "load_before": load_before, "load_after": load()}
        print(f"\npip: cold build of `users` (pydantic) for python3.12 x86_64, median of {runs}")
        table(
            ["", "median s", "runs (s)"],
            [[k, f"{medians[k]:.2f}", " ".join(f"{t:.2f}" for t in v)] for k, v in times.items()],
        )
        print(f"ratio: {ratio:.3f}; load {load_before[0]} -> {load()[0]}")

    def _locked(self, workspace, package: str) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
        from cdk_uv_aspect._uv import UV_ENV, export, split_requirements

        out = self.work / f"{package}-requirements.txt"
        subprocess.run(
            export(self.uv, package, "frozen", out), cwd=workspace.root, env={**os.environ, **UV_ENV}, check=True
        )
        registry, local = split_requirements(out.read_text())
        locked = self.work / f"{package}-locked.txt"
        locked.write_text(registry)
        return locked, [str((workspace.root / p).resolve()) for p in local]

    # --- start: cold start with and without bytecode --------------------------------------------

    def start(self) -> None:
        from cdk_uv_aspect import UvOptions
        from cdk_uv_aspect._build import build
        from cdk_uv_aspect._interpreters import find_python
        from cdk_uv_aspect._request import BuildRequest
        from cdk_uv_aspect._target import Target
        from cdk_uv_aspect._workspace import Workspace

        runs = 3 * self.rounds
        workspace = Workspace.find(SAMPLES)
        rows, data = [], []
        load_before = load()
        for package, module, function, version in HANDLERS:
            python = find_python(self.uv, version)
            assert python, f"the start part needs a Python {version} where uv finds it"
            target = Target(python=version, arch="arm64" if platform.machine() == "aarch64" else "x86_64")
            assets = {}
            for bytecode in (True, False):
                options = UvOptions(cache_dir=self.work / "start-cache", workspace=SAMPLES, bytecode=bytecode)
                assets[bytecode] = build(BuildRequest(workspace, package, target, options)).asset_dir
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(runs):
                for bytecode in (True, False):
                    times[bytecode].append(_import_seconds(python, assets[bytecode], module, function))
            with_bc, without = statistics.median(times[True]), statistics.median(times[False])
            data.append({"package": package, "python": version, "bytecode": times[True], "source": times[False]})
            rows.append(
                [
                    f"{module}.{function}",
                    f"python{version}",
                    f"{with_bc * 1000:.0f}",
                    f"{without * 1000:.0f}",
                    f"{with_bc / without:.2f}",
                ]
            )
        self.results["start"] = data
        print(f"\nstart: import of each sample handler from its asset, `-B -I`, median of {runs}")
        table(["handler", "runtime", "bytecode ms", "source ms", "ratio"], rows)
        print(f"load {load_before[0]} -> {load()[0]}")

    # --- slim: numpy and pandas, whole and slimmed ------------------------------------------------

    def slim(self) -> None:
        from cdk_uv_aspect import UvOptions
        from cdk_uv_aspect._archive import write_zip
        from cdk_uv_aspect._build import build
        from cdk_uv_aspect._interpreters import find_python
        from cdk_uv_aspect._request import BuildRequest
        from cdk_uv_aspect._runner import Runner
        from cdk_uv_aspect._slim import Slimming, slimmed
        from cdk_uv_aspect._target import Target
        from cdk_uv_aspect._workspace import Workspace

        runs = 5 * self.rounds
        heavy = REPO / "tests" / "fixtures" / "heavy"
        workspace = Workspace.find(heavy)
        options = UvOptions(cache_dir=self.work / "slim-cache", workspace=heavy)
        host = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
        python = find_python(self.uv, "3.12")
        rows, data = [], []
        load_before = load()
        for arch in ("x86_64", "arm64"):
            whole = build(BuildRequest.create(workspace, "frames", Target("3.12", arch), options))
            folders = {"whole": whole}
            for mode in ("slim", "bytecode-only"):
                folders[mode] = slimmed(whole, Slimming(mode), Runner())  # type: ignore[arg-type]
            times: dict[str, list[float]] = {name: [] for name in folders}
            if arch == host and python:
                for _ in range(runs):  # alternating, so that the machine's load falls on each alike
                    for name, built in folders.items():
                        times[name].append(_import_seconds(python, built.asset_dir, "frames.handler", "main"))
            for name, built in folders.items():
                zipped = write_zip(built.asset_dir, self.work / "slim.zip")
                init = statistics.median(times[name]) if times[name] else None
                proven = (built.info.get("slim") or {}).get("proven")
                data.append(
                    {"arch": arch, "slim": name, "bytes": built.info["bytes"], "zipped": zipped, "init": times[name]}
                )
                rows.append(
                    [
                        f"python3.12 {arch}",
                        name,
                        f"{built.info['bytes'] / 1e6:.1f}",
                        f"{zipped / 1e6:.1f}",
                        f"{built.info['files']}",
                        "-" if init is None else f"{init * 1000:.0f}",
                        "-" if name == "whole" else "proven" if proven else "not proven",
                    ]
                )
        self.results["slim"] = data
        print(
            f"\nslim: frames (numpy, pandas) whole and slimmed; init: import of frames.handler, `-B -I`, "
            f"median of {runs}"
        )
        table(["target", "asset", "unzipped MB", "zipped MB", "files", "init ms", "imports"], rows)
        print(f"load {load_before[0]} -> {load()[0]}")

    # --- team: a cold synth served by the team cache ----------------------------------------------

    def team(self) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from emulator import running_moto  # the deploy tests' moto_server on a loopback port

        n = 50 if 50 in self.ns else self.ns[-1]
        server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        if not server:
            raise SystemExit("bench: the team part needs moto_server (`pip install 'moto[server]'`)")
        print(
            f"\nteam: cold synths (empty build cache and cdk.out; uv's cache warm) of N={n} over K = "
            f"{', '.join(map(str, self.ks))}, the team cache filled on moto_server (loopback); "
            f"{self.rounds} rounds of alternating runs"
        )
        rows = ("seed", "aspect", "team")
        data = []
        (self.work / "moto").mkdir(exist_ok=True)
        with running_moto([server], self.work / "moto") as moto:
            import boto3

            s3 = boto3.client(
                "s3",
                endpoint_url=moto.endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            s3.create_bucket(Bucket="bench-team-cache")
            for k in self.ks:
                setup = self.setup(k)
                url = f"s3://bench-team-cache/k{k}"
                env = {**moto.env, "AWS_ENDPOINT_URL_S3": moto.endpoint, "CDK_UV_REMOTE_CACHE": url}
                outdir = self.work / f"team-k{k}.out"
                started, load_before = time.perf_counter(), load()
                # A writer (CI) fills the bucket: a cold synth that uploads every build.
                shutil.rmtree(setup.cache, ignore_errors=True)
                self.synth(setup, "aspect", n, fresh(outdir), env={**env, "CDK_UV_REMOTE_CACHE_WRITE": "1"})
                shutil.rmtree(setup.cache)
                listed = s3.list_objects_v2(Bucket="bench-team-cache", Prefix=f"k{k}/")
                stored = [o["Size"] for o in listed.get("Contents", [])]
                runs: dict[str, list[Run]] = {row: [] for row in rows}
                for r in range(self.rounds):
                    for row in rows[r % len(rows) :] + rows[: r % len(rows)]:
                        shutil.rmtree(outdir, ignore_errors=True)  # a fresh checkout: no cdk.out
                        shutil.rmtree(setup.envs if row == "seed" else setup.cache, ignore_errors=True)
                        extra = {**env, "CDK_UV_REMOTE_CACHE_WRITE": "0"} if row == "team" else {}
                        runs[row].append(self.synth(setup, "seed" if row == "seed" else "aspect", n, outdir, env=extra))
                        if row == "team":
                            stats = json.loads((setup.cache / "team-cache.json").read_text())["last"]
                            if stats["misses"] or stats["failed"]:
                                raise SystemExit(f"bench: the team cache missed or failed: {stats}")
                block = {
                    "n": n,
                    "k": k,
                    "objects": len(stored),
                    "bytes": sum(stored),
                    **{
                        row: {
                            "wall": [round(x.wall, 3) for x in runs[row]],
                            "cpu": [round(x.cpu, 3) for x in runs[row]],
                        }
                        for row in rows
                    },
                    "load_before": load_before,
                    "load_after": load(),
                    "seconds": round(time.perf_counter() - started, 1),
                }
                data.append(block)
                self.results["team"] = data
                print(f"  K={k:<2} done in {block['seconds']:.0f}s (load {load_before[0]} -> {block['load_after'][0]})")
        print_team(data)


# --- reading a synthesized app -----------------------------------------------------------------------


def assets_by_package(outdir: Path, n: int, k: int) -> dict[str, Path]:
    """package -> the staged asset folder its functions' code points at, read from the templates."""
    found: dict[str, Path] = {}
    for s in range((n + PER_STACK - 1) // PER_STACK):
        template = json.loads((outdir / f"Bench{s}.template.json").read_text())
        for logical_id, cfn in template["Resources"].items():
            if cfn["Type"] != "AWS::Lambda::Function":
                continue
            i = int(logical_id[1:-8])  # "F<i>" and CDK's 8-character hash
            key = cfn["Properties"]["Code"]["S3Key"]
            found.setdefault(package_of(i, k), outdir / f"asset.{key.removesuffix('.zip')}")
    return found


def shipped_handler(outdir: Path, package: str) -> Path:
    """The handler module of ``package`` in the asset that function F0 (package fn00) deploys."""
    template = json.loads((outdir / "Bench0.template.json").read_text())
    for logical_id, cfn in template["Resources"].items():
        if cfn["Type"] == "AWS::Lambda::Function" and logical_id[:-8] == "F0":
            key = cfn["Properties"]["Code"]["S3Key"].removesuffix(".zip")
            return outdir / f"asset.{key}" / package / "handler.py"
    raise LookupError(f"no function F0 in {outdir}")


def _append_edit(handler: Path, token: str) -> None:
    lines = [line for line in handler.read_text().splitlines() if not line.startswith("EDITED = ")]
    handler.write_text("\n".join([*lines, f"EDITED = {token!r}"]) + "\n")


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


IMPORT = (
    "import sys, time, importlib; t = time.perf_counter(); sys.path.insert(0, sys.argv[1]); "
    "getattr(importlib.import_module(sys.argv[2]), sys.argv[3]); print(time.perf_counter() - t)"
)


def _import_seconds(python: str, asset: Path, module: str, function: str) -> float:
    result = subprocess.run(
        [python, "-B", "-I", "-c", IMPORT, str(asset), module, function], capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip())


# --- figures -----------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"{median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def per_round(block: dict[str, Any], scenario: str, f, key: str = "wall") -> float:  # type: ignore[no-untyped-def]
    """Median over rounds of ``f(plain, noop, seed, aspect)`` of the same round."""
    rows = block[scenario]
    return median([f(*values) for values in zip(*(rows[m][key] for m in MODES), strict=True)])


def floor_ratio(p: float, f: float, s: float, a: float) -> float:
    return a / f


def overhead_ratio(p: float, f: float, s: float, a: float) -> float:
    """cdk-uv-aspect's time over prebuilt folders, as a share of the seed recipe's."""
    return (a - p) / (s - p) if s != p else float("inf")


def seed_ratio(p: float, f: float, s: float, a: float) -> float:
    return a / s


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


DERIVED = {
    "warm": [("aspect/floor", floor_ratio), ("overhead vs seed", overhead_ratio)],
    "edit": [("aspect/seed", seed_ratio)],
    "cold": [("aspect/seed", seed_ratio)],
}
TITLES = {
    "warm": "warm synth: nothing changed since the last synth",
    "edit": f"edit: one source file of package {EDITED} changed before each synth",
    "cold": "cold synth: uv's cache warm; build caches and cdk.out empty",
}


def print_compare(data: list[dict[str, Any]], rounds: int) -> None:
    for scenario in SCENARIOS:
        print(
            f"\n{TITLES[scenario]}. Wall seconds, median [min-max] of {rounds}; ratios: median of the per-round ratios"
        )
        headers = ["N", "K", *(SHORT[m] for m in MODES), *(name for name, _ in DERIVED[scenario])]
        if scenario == "edit":
            headers.append("edit shipped (seed / aspect)")
        rows = []
        for block in data:
            row = [str(block["n"]), str(block["k"]) + ("*" if block["packages"] < block["k"] else "")]
            row += [spread(block[scenario][m]["wall"]) for m in MODES]
            row += [f"{per_round(block, scenario, f):.3f}" for _, f in DERIVED[scenario]]
            if scenario == "edit":
                row.append(" / ".join(_shipped(block["edit"][m]["shipped"]) for m in ("seed", "aspect")))
            rows.append(row)
        table(headers, rows)
        cpu_rows = [
            [
                str(b["n"]),
                str(b["k"]),
                *(f"{median(b[scenario][m]['cpu']):.2f}" for m in MODES),
                *(f"{per_round(b, scenario, f, 'cpu'):.3f}" for _, f in DERIVED[scenario]),
            ]
            for b in data
        ]
        print("  the same in CPU seconds (process + node + uv), medians:")
        table(["N", "K", *(SHORT[m] for m in MODES), *(name for name, _ in DERIVED[scenario])], cpu_rows)
    if any(b["packages"] < b["k"] for b in data):
        print("* fewer functions than packages: only N packages are used")
    print_goals(data)


def _shipped(flags: list[bool]) -> str:
    return "yes" if all(flags) else "no" if not any(flags) else f"{sum(flags)}/{len(flags)}"


def print_goals(data: list[dict[str, Any]]) -> None:
    """The verdicts of issue 24, CPU seconds first, wall seconds beside."""
    print("\ngoals (issue 24): CPU seconds (wall in brackets); ratios are medians of per-round ratios")
    if not data:
        return

    def both(b: dict[str, Any], scenario: str, f) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        return per_round(b, scenario, f, "cpu"), per_round(b, scenario, f)

    def verdict(values: tuple[float, float], limit: float) -> str:
        cpu, wall = values
        said = "met" if cpu <= limit else "NOT met"
        return f"{cpu:.3f} [{wall:.3f}] {said}{'' if (wall <= limit) == (cpu <= limit) else ' (wall: the other way)'}"

    for b in data:
        print(f"  cold <= 1.0x the seed recipe, N={b['n']} K={b['k']}: {verdict(both(b, 'cold', seed_ratio), 1.0)}")
    for b in data:
        print(
            f"  warm overhead over prebuilt <= 0.25 of the seed recipe's, N={b['n']} K={b['k']}: "
            f"{verdict(both(b, 'warm', overhead_ratio), 0.25)}"
        )
    at = [b for b in data if b["n"] == 50 and b["k"] == 20]
    for b in at:
        print(f"  warm within 1.05 of the floor, N=50 K=20: {verdict(both(b, 'warm', floor_ratio), 1.05)}")
    if not at:
        print("  warm within 1.05 of the floor at N=50, K=20: not measured in this run")
    shipped = all(all(b["edit"]["aspect"]["shipped"]) for b in data)
    print(f"  an edit ships in every round: {'yes' if shipped else 'NO'}")


def print_bump(data: dict[str, Any]) -> None:
    names = [name for name in ("bump", "cold", "prebuilt") if name in data]
    rows = [[name, spread(data[name]["wall"]), f"{median(data[name]['cpu']):.2f}"] for name in names]
    table(["synth", "wall s, median [min-max]", "CPU s, median"], rows)
    ratios = {
        key: median([b / c for b, c in zip(data["bump"][key], data["cold"][key], strict=True)])
        for key in ("cpu", "wall")
    }
    said = "met" if ratios["cpu"] <= 0.3 else "NOT met"
    print(
        f"  goal (issue 24): a one-distribution lock bump across {data['k']} packages <= 0.3x our cold synth: "
        f"{ratios['cpu']:.3f} CPU [{ratios['wall']:.3f} wall] {said}"
    )
    if "prebuilt" in data:  # the same, less what the CDK costs alone (staging, templates): the build work
        above = {
            key: median(
                [
                    (b - p) / (c - p) if c != p else float("inf")
                    for b, c, p in zip(data["bump"][key], data["cold"][key], data["prebuilt"][key], strict=True)
                ]
            )
            for key in ("cpu", "wall")
        }
        print(
            f"  above prebuilt folders (the build work alone): bump/cold {above['cpu']:.3f} CPU "
            f"[{above['wall']:.3f} wall]"
        )
    print(f"  load {data['load_before'][0]} -> {data['load_after'][0]}, {data['seconds']:.0f}s")


def print_team(data: list[dict[str, Any]]) -> None:
    """Medians (min-max), wall seconds; the ratio of the team cache's cold synth to the seed recipe's."""
    rows = []
    for b in data:
        wall = {row: median(b[row]["wall"]) for row in ("seed", "aspect", "team")}
        cpu = {row: median(b[row]["cpu"]) for row in ("seed", "aspect", "team")}
        rows.append(
            [
                str(b["n"]),
                str(b["k"]),
                *(spread(b[row]["wall"]) for row in ("seed", "aspect", "team")),
                f"**{wall['team'] / wall['seed']:.2f}** ({cpu['team'] / cpu['seed']:.2f})",
                f"{b['objects']} / {b['bytes'] / 1e6:.1f} MB",
                f"{b['load_before'][0]}-{b['load_after'][0]}",
            ]
        )
    table(
        ["N", "K", "seed recipe", "cdk-uv-aspect", "with the team cache", "team/seed, wall (CPU)", "objects", "load"],
        rows,
    )
    worst = max(median(b["team"]["wall"]) / median(b["seed"]["wall"]) for b in data)
    print(
        f"  goal: a cold synth with the team cache at most 0.5 of the seed recipe's: worst {worst:.2f} "
        f"{'met' if worst <= 0.5 else 'NOT met'}"
    )


def print_big(data: dict[str, Any]) -> None:
    n = data["n"]
    apps = data["apps"]
    rows = []
    for name, app in apps.items():
        rows.append(
            [
                name,
                str(app["constructs"]["plain"]),
                str(app["constructs"]["aspect"]),
                *(spread(app[m]["wall"]) for m in MODES),
            ]
        )
    table(["app", "constructs (prebuilt)", "constructs (aspect)", *(SHORT[m] for m in MODES)], rows)

    def diff(app: dict[str, Any], a: str, b: str, key: str = "wall") -> float:
        return median([x - y for x, y in zip(app[a][key], app[b][key], strict=True)])

    lean, big = apps["lean"], apps["big"]
    c_lean, c_big = lean["constructs"]["noop"], big["constructs"]["noop"]
    print("derived (median of per-round differences, wall; CPU in brackets):")
    for name, app in apps.items():
        c = app["constructs"]["noop"]
        print(
            f"  {name}: a visit costs {diff(app, 'noop', 'plain') / c * 1000:.2f} ms per construct "
            f"[{diff(app, 'noop', 'plain', 'cpu') / c * 1000:.2f}]; cdk-uv-aspect above the floor "
            f"{diff(app, 'aspect', 'noop') / n * 1000:.1f} ms per function "
            f"[{diff(app, 'aspect', 'noop', 'cpu') / n * 1000:.1f}]; the seed recipe above prebuilt "
            f"{diff(app, 'seed', 'plain') / n * 1000:.1f} ms per function"
        )
    extra = c_big - c_lean
    visits = (diff(big, "noop", "plain") - diff(lean, "noop", "plain")) / extra * 1000
    ours = (diff(big, "aspect", "noop") - diff(lean, "aspect", "noop")) / extra * 1000
    print(
        f"  the {extra} extra constructs: the floor's visits {visits:.2f} ms each, cdk-uv-aspect above the "
        f"floor {ours:.2f} ms each"
    )
    print(f"  load {data['load_before'][0]} -> {data['load_after'][0]}, {data['seconds']:.0f}s")


def chart(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            f"\n(no chart: matplotlib is missing; install the bench extra, pip install -e '.[bench]', for {path.name})"
        )
        return
    compare = results.get("compare", [])
    ks = sorted({b["k"] for b in compare})
    rows = (len(SCENARIOS) if compare else 0) + (1 if "big" in results else 0)
    if not rows:
        return
    cols = max(1, len(ks))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False)
    styles = {"plain": "x:", "noop": "^--", "seed": "s-", "aspect": "o-"}
    for r, scenario in enumerate(SCENARIOS if compare else ()):
        for c, k in enumerate(ks):
            ax = axes[r][c]
            blocks = sorted((b for b in compare if b["k"] == k), key=lambda b: b["n"])
            ns = [b["n"] for b in blocks]
            for mode in MODES:
                walls = [b[scenario][mode]["wall"] for b in blocks]
                mid = [median(w) for w in walls]
                err = [
                    [m - min(w) for m, w in zip(mid, walls, strict=True)],
                    [max(w) - m for m, w in zip(mid, walls, strict=True)],
                ]
                ax.errorbar(ns, mid, yerr=err, fmt=styles[mode], capsize=3, label=LABELS[mode])
            ax.set_xscale("log")
            ax.set_xticks(ns, [str(x) for x in ns])
            ax.set_title(f"{scenario}, K={k} packages")
            ax.set_xlabel("functions (N)")
            ax.set_ylabel("seconds per synth (median, min-max)")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
        for c in range(len(ks), cols):
            axes[r][c].axis("off")
    if "big" in results:
        big = results["big"]
        ax = axes[rows - 1][0]
        x = range(len(MODES))
        for offset, name in ((-0.2, "lean"), (0.2, "big")):
            app = big["apps"][name]
            ax.bar(
                [i + offset for i in x],
                [median(app[m]["wall"]) for m in MODES],
                0.4,
                label=f"{name}: {app['constructs']['noop']} constructs",
            )
        ax.set_xticks(list(x), [SHORT[m] for m in MODES])
        ax.set_title(f"{big['n']} functions alone and in a big app, warm")
        ax.set_ylabel("seconds per synth (median)")
        ax.legend(fontsize=8)
        for c in range(1, cols):
            axes[rows - 1][c].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"\nchart: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 10, 50 over K = 5, 2 rounds: a few minutes")
    parser.add_argument("--only", default="compare,bump,big,pip,start,team,slim", help="comma-separated parts to run")
    parser.add_argument("--n", help="comma-separated numbers of functions (default 10,50,200)")
    parser.add_argument("--k", help="comma-separated numbers of packages (default 5,20)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per scenario (default 5; quick 2)")
    parser.add_argument("--big-n", type=int, help="functions of the big part (default 200; quick 20)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    options = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, when piped to a file
    ns = [int(x) for x in (options.n or ("10,50" if options.quick else "10,50,200")).split(",")]
    ks = [int(x) for x in (options.k or ("5" if options.quick else "5,20")).split(",")]
    rounds = options.rounds or (2 if options.quick else 5)
    parts = [p.strip() for p in options.only.split(",") if p.strip()]
    unknown = set(parts) - {"compare", "bump", "big", "pip", "start", "team", "slim"}
    if unknown:
        known = "compare, bump, big, pip, start, team, slim"
        parser.error(f"unknown parts: {', '.join(sorted(unknown))} (choose from {known})")
    options.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=options.out))
    bench = Bench(work, ns, ks, rounds, big_n=options.big_n or (20 if options.quick else 200))
    info = machine()
    bench.results.update(
        {
            "machine": info,
            "quick": options.quick,
            "load_before": load(),
            "parts": parts,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
    )
    started = time.perf_counter()
    print(f"cdk-uv-aspect benchmark{' (quick)' if options.quick else ''}, {bench.results['date']}")
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, {info.get('memory_gb', '?')} GB; "
        f"Python {info['python']}, aws-cdk-lib {info['aws-cdk-lib']}, jsii {info['jsii']}, node {info['node']}, "
        f"uv {info['uv']}, cdk-uv-aspect {info['cdk-uv-aspect']}"
    )
    print(f"load average at start: {' '.join(map(str, bench.results['load_before']))}", flush=True)
    try:
        for part in parts:
            getattr(bench, part)()
    finally:
        bench.results["seconds"] = round(time.perf_counter() - started, 1)
        bench.results["load_after"] = load()
        (options.out / "results.json").write_text(json.dumps(bench.results, indent=1) + "\n")
        shutil.rmtree(work, ignore_errors=True)
    chart(bench.results, options.out / "bench.png")
    print(f"load average at the end: {' '.join(map(str, bench.results['load_after']))}")
    print(f"total {bench.results['seconds']:.0f}s; results: {options.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
