"""Benchmark of cdk-uv-aspect: prints a table, writes bench/results/results.json and bench/results/bench.png.

    ./dev bench            # or: .venv/bin/python bench/run.py [--quick] [--only warm,scaling,pip,start]

1. warm:    a no-change synth of N functions over K packages with the aspect, versus the same app whose
            functions use Code.from_asset on the very same built folders (no aspect). Each synth is a
            fresh `python app.py` process, as `cdk synth` runs it; runs alternate; median of the ratios.
            A third app adds an aspect that does nothing: what any aspect written in Python costs,
            since node calls its visit() for every construct (a round trip to Python each).
2. scaling: N = 10, 50, 200 functions over K = 5, 20 packages, cold (empty build cache) and warm.
3. pip:     a cold build of one package (sample `users`: pydantic) versus `pip install --target` of the
            same locked requirements and local packages (what Docker-based bundling runs), both with
            their download caches warm.
4. start:   importing each sample handler from its asset, with bytecode versus without, in fresh
            processes of the runtime's Python (`-B -I`); median import time.

Timing is measured here, never asserted in tests. Wheels come from PyPI once, then from uv's and pip's
caches. The machine's other load shows up as noise: compare ratios from the same run, not seconds
across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from workspace import generate  # noqa: E402

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

from cdk_uv_aspect import UvOptions  # noqa: E402
from cdk_uv_aspect._build import BuildRequest, build  # noqa: E402
from cdk_uv_aspect._target import Target  # noqa: E402
from cdk_uv_aspect._uv import UV_ENV, Uv, export, find_python, split_requirements  # noqa: E402
from cdk_uv_aspect._workspace import Workspace  # noqa: E402

SAMPLES = REPO / "samples"
# (package, handler module, handler function, Python) of the samples, built for this machine's arch.
HANDLERS = [
    ("orders", "orders.handler", "main", "3.12"),
    ("users", "users.handler", "main", "3.11"),
    ("report", "main", "handler", "3.13"),
]


class Bench:
    def __init__(self, work: Path, quick: bool) -> None:
        self.work = work
        self.quick = quick
        self.uv = Uv.locate(None).path
        self.results: dict[str, object] = {"quick": quick, "cores": os.cpu_count(), "load": os.getloadavg()[0]}
        self.cpu = 0.0

    # --- helpers ------------------------------------------------------------------------------

    def workspace(self, k: int) -> Path:
        return generate(self.work / f"ws-k{k}", k, self.uv)

    def synth(self, mode: str, n: int, k: int, cache: Path, outdir: Path) -> float:
        """Seconds of one fresh `python bench/app.py` process (what `cdk synth` runs).

        Also records its CPU seconds (user + system of the process and what it waited for: node, uv)
        in ``self.cpu``: on a shared machine, CPU time is much less disturbed by other load than wall
        time.
        """
        workspace = self.workspace(k)
        args = [sys.executable, str(HERE / "app.py"), mode, str(n), str(k), str(workspace), str(outdir)]
        if mode != "aspect":
            args.append(str(self._assets(cache, outdir)))
        env = {**os.environ, "CDK_UV_CACHE_DIR": str(cache)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(args, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if result.returncode != 0:
            raise SystemExit(f"bench: synth failed:\n{result.stderr[-3000:]}")
        return seconds

    def _assets(self, cache: Path, outdir: Path) -> Path:
        """package -> its built folder in the cache: what the no-aspect app points at."""
        mapping = {}
        for entry in (cache / "builds").iterdir():
            info = entry / "build.json"
            if info.is_file() and not entry.name.startswith("."):
                mapping[json.loads(info.read_text())["package"]] = str(entry / "asset")
        path = outdir.with_name(outdir.name + "-assets.json")
        path.write_text(json.dumps(mapping))
        return path

    def fresh(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    # --- 1. warm synth ------------------------------------------------------------------------

    def warm(self) -> None:
        n, k, rounds = (20, 3, 3) if self.quick else (50, 5, 9)
        cache = self.fresh("warm-cache")
        modes = ("aspect", "noop", "plain")
        outdirs = {mode: self.fresh(f"warm-{mode}.out") for mode in modes}
        for mode in modes:  # the first builds; each then stages the same folders into its own outdir
            self.synth(mode, n, k, cache, outdirs[mode])
        wall: dict[str, list[float]] = {m: [] for m in modes}
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        for i in range(rounds):
            # Rotate which goes first, so a drift in the machine's load hits each alike.
            for mode in modes[i % 3 :] + modes[: i % 3]:
                wall[mode].append(self.synth(mode, n, k, cache, outdirs[mode]))
                cpu[mode].append(self.cpu)

        def ratio(times: dict[str, list[float]], mode: str) -> float:
            return statistics.median([a / b for a, b in zip(times[mode], times["plain"], strict=True)])

        self.results["warm"] = {
            "n": n,
            "k": k,
            **{m: wall[m] for m in modes},
            **{f"{m}_cpu": cpu[m] for m in modes},
            "median_ratio": ratio(wall, "aspect"),
            "median_cpu_ratio": ratio(cpu, "aspect"),
            "noop_ratio": ratio(wall, "noop"),
            "noop_cpu_ratio": ratio(cpu, "noop"),
            "goal": 1.10,
        }
        print(f"\n1. warm synth, N={n} functions over K={k} packages, {rounds} rounds of alternating runs")
        names = {"aspect": "aspect (cache hit)", "noop": "a do-nothing aspect", "plain": "no aspect (from_asset)"}
        _table(
            ["", "median s", "median CPU s", "median ratio to no aspect", "runs (s)"],
            [
                [
                    names[m],
                    f"{statistics.median(wall[m]):.2f}",
                    f"{statistics.median(cpu[m]):.2f}",
                    "-" if m == "plain" else f"{ratio(wall, m):.3f} wall, {ratio(cpu, m):.3f} CPU",
                    " ".join(f"{t:.2f}" for t in wall[m]),
                ]
                for m in modes
            ],
        )
        print(
            f"median ratio aspect / no aspect: {ratio(wall, 'aspect'):.3f} wall, {ratio(cpu, 'aspect'):.3f} CPU "
            "(goal <= 1.10); a do-nothing Python aspect alone: "
            f"{ratio(wall, 'noop'):.3f} wall, {ratio(cpu, 'noop'):.3f} CPU"
        )

    # --- 2. scaling ---------------------------------------------------------------------------

    def scaling(self) -> None:
        ns, ks = ((10, 50), (5,)) if self.quick else ((10, 50, 200), (5, 20))
        rows, data = [], []
        for k in ks:
            for n in ns:
                cache = self.fresh(f"scale-cache-{n}-{k}")
                out, plain_out = self.fresh(f"scale-{n}-{k}.out"), self.fresh(f"scale-{n}-{k}-plain.out")
                cold = self.synth("aspect", n, k, cache, out)
                cold_cpu = self.cpu
                warm = self.synth("aspect", n, k, cache, out)
                warm_cpu = self.cpu
                self.synth("plain", n, k, cache, plain_out)  # stage once, then measure warm
                plain = self.synth("plain", n, k, cache, plain_out)
                plain_cpu = self.cpu
                data.append(
                    {
                        "n": n,
                        "k": k,
                        "cold": cold,
                        "warm": warm,
                        "plain": plain,
                        "cold_cpu": cold_cpu,
                        "warm_cpu": warm_cpu,
                        "plain_cpu": plain_cpu,
                    }
                )
                rows.append(
                    [
                        str(n),
                        str(k),
                        f"{cold:.1f}",
                        f"{warm:.1f}",
                        f"{plain:.1f}",
                        f"{cold_cpu:.1f}",
                        f"{warm_cpu:.1f}",
                        f"{plain_cpu:.1f}",
                        f"{warm_cpu - plain_cpu:+.1f}",
                    ]
                )
                shutil.rmtree(cache, ignore_errors=True)
        self.results["scaling"] = data
        print("\n2. scaling: seconds per synth (cold: empty build cache; uv's wheel cache warm)")
        _table(
            ["N", "K", "cold", "warm", "no aspect", "cold CPU", "warm CPU", "no aspect CPU", "warm - no aspect CPU"],
            rows,
        )

    # --- 3. cold build versus pip install --target --------------------------------------------

    def pip(self) -> None:
        runs = 1 if self.quick else 3
        python = find_python(self.uv, "3.12")
        workspace = Workspace.find(SAMPLES)
        target = Target(python="3.12", arch="x86_64")
        requirements, local = self._locked(workspace, "users")

        def ours() -> float:
            cache = self.fresh("pip-ours-cache")
            request = BuildRequest(workspace, "users", target, UvOptions(cache_dir=cache, workspace=SAMPLES))
            started = time.perf_counter()
            build(request)
            return time.perf_counter() - started

        def theirs() -> float:
            site = self.fresh("pip-site")
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

        ours(), theirs()  # fill uv's and pip's download caches
        times = {"cdk-uv-aspect build": [], "pip install --target": []}
        for _ in range(runs):
            times["cdk-uv-aspect build"].append(ours())
            times["pip install --target"].append(theirs())
        medians = {k: statistics.median(v) for k, v in times.items()}
        ratio = medians["cdk-uv-aspect build"] / medians["pip install --target"]
        self.results["pip"] = {"times": times, "ratio": ratio, "goal": 0.25}
        print(f"\n3. cold build of `users` (pydantic) for python3.12 x86_64, median of {runs}")
        _table(["", "median s"], [[k, f"{v:.2f}"] for k, v in medians.items()])
        print(f"ratio: {ratio:.3f} (goal <= 0.25)")

    def _locked(self, workspace: Workspace, package: str) -> tuple[Path, list[str]]:
        out = self.work / f"{package}-requirements.txt"
        env = {**os.environ, **UV_ENV}
        subprocess.run(export(self.uv, package, "frozen", out), cwd=workspace.root, env=env, check=True)
        registry, local = split_requirements(out.read_text())
        locked = self.work / f"{package}-locked.txt"
        locked.write_text(registry)
        return locked, [str((workspace.root / p).resolve()) for p in local]

    # --- 4. cold start with and without bytecode ----------------------------------------------

    def start(self) -> None:
        runs = 5 if self.quick else 15
        workspace = Workspace.find(SAMPLES)
        rows, data = [], []
        for package, module, function, version in HANDLERS:
            python = find_python(self.uv, version)
            machine = os.uname().machine
            target = Target(python=version, arch="arm64" if machine == "aarch64" else "x86_64")
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
        print(f"\n4. cold start: import of each sample handler from its asset, `-B -I`, median of {runs}")
        _table(["handler", "runtime", "bytecode ms", "source ms", "ratio"], rows)


IMPORT = (
    "import sys, time, importlib; t = time.perf_counter(); sys.path.insert(0, sys.argv[1]); "
    "getattr(importlib.import_module(sys.argv[2]), sys.argv[3]); print(time.perf_counter() - t)"
)


def _import_seconds(python: str, asset: Path, module: str, function: str) -> float:
    result = subprocess.run(
        [python, "-B", "-I", "-c", IMPORT, str(asset), module, function], capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip())


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def chart(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"\n(no chart: install the bench extra, pip install -e '.[bench]', for {path.name})")
        return
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    if "warm" in results:
        w = results["warm"]
        ax = axes[0][0]
        ax.boxplot(
            [w["aspect"], w["noop"], w["plain"]], tick_labels=["aspect (cache hit)", "do-nothing aspect", "no aspect"]
        )
        ax.set_title(
            f"1. warm synth, N={w['n']} K={w['k']}: ratio {w['median_ratio']:.2f} wall, "
            f"{w.get('median_cpu_ratio', 0):.2f} CPU"
        )
        ax.set_ylabel("seconds per synth")
    if "scaling" in results:
        ax = axes[0][1]
        for k in sorted({d["k"] for d in results["scaling"]}):
            rows = [d for d in results["scaling"] if d["k"] == k]
            ns = [d["n"] for d in rows]
            for key, style in (("cold", "o-"), ("warm", "s--"), ("plain", "x:")):
                label = {"plain": "no aspect"}.get(key, key)
                ax.plot(ns, [d.get(f"{key}_cpu", d[key]) for d in rows], style, label=f"K={k} {label}")
        ax.set_title("2. scaling with N functions")
        ax.set_xlabel("functions (N)")
        ax.set_ylabel("CPU seconds per synth")
        ax.legend(fontsize=8)
    if "pip" in results:
        ax = axes[1][0]
        p = results["pip"]
        names = list(p["times"])
        ax.bar(names, [statistics.median(p["times"][n]) for n in names], color=["tab:green", "tab:gray"])
        ax.set_title(f"3. cold build of one package: ratio {p['ratio']:.2f}")
        ax.set_ylabel("seconds")
    if "start" in results:
        ax = axes[1][1]
        rows = results["start"]
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [statistics.median(r["bytecode"]) * 1000 for r in rows], 0.4, label="bytecode")
        ax.bar([i + 0.2 for i in x], [statistics.median(r["source"]) * 1000 for r in rows], 0.4, label="source only")
        ax.set_xticks(list(x), [f"{r['package']} (py{r['python']})" for r in rows])
        ax.set_title("4. handler import time (-B -I)")
        ax.set_ylabel("ms")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"\nchart: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs (~3 minutes)")
    parser.add_argument("--only", default="warm,scaling,pip,start", help="comma-separated parts to run")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=options.out))
    bench = Bench(work, options.quick)
    started = time.perf_counter()
    print(
        f"cdk-uv-aspect benchmark on {os.cpu_count()} cores{' (quick)' if options.quick else ''}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    try:
        for part in options.only.split(","):
            getattr(bench, part.strip())()
    finally:
        bench.results["seconds"] = time.perf_counter() - started
        (options.out / "results.json").write_text(json.dumps(bench.results, indent=2) + "\n")
        shutil.rmtree(work, ignore_errors=True)
    chart(bench.results, options.out / "bench.png")
    print(f"total {time.perf_counter() - started:.0f}s; results: {options.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
