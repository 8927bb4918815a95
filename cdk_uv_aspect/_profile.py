"""Profile: a function's cold start measured from its asset, started as Lambda starts it (``_start``).

Each run is a fresh process of the runtime's Python in a fresh sandbox home, the asset and its layers on
the path, Lambda's environment, the bytecode as shipped; the bootstrap imports the handler's module and
looks the handler up (the init), and stops. The init time is the median of several runs. One more run
with ``-X importtime`` says where the init goes, module by module, each module given to the distribution
that ships it (by the dist-info records of the asset and its layers). The same start from a copy without
``__pycache__`` shows what the shipped bytecode buys.

A local measurement: Lambda's own start (its runtime's bootstrap, the execution environment) adds a
fixed cost, and its CPU share follows the function's memory setting.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._names import normalize
from ._runner import Result, Runner
from ._sandbox import Sandbox
from ._start import LambdaFunction, start

OWN_CODE = "(function code)"
STANDARD_LIBRARY = "(standard library)"
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


class InitFailed(Exception):
    """The function's init raised: Lambda would fail every cold start the same way."""

    def __init__(self, error: dict[str, Any], logs: str) -> None:
        super().__init__(f"{error.get('errorType')}: {error.get('errorMessage')}")
        self.error = error
        self.logs = logs


class AssemblyChangedError(Exception):
    """A profile run changed the folders the function was started from."""


@dataclass(frozen=True)
class Import:
    """One module the init imported: its own time, with what it imported, and who ships it."""

    module: str
    self_ms: float
    cumulative_ms: float
    distribution: str  # the distribution that ships it, "(standard library)" or "(function code)"
    depth: int  # nesting in the import tree: 0 for what the handler's import asked for itself
    charged_to: str  # whose import it is: a standard library module imported by a distribution is its


@dataclass(frozen=True)
class Profile:
    """A function's cold start: the init time of each run (with and without bytecode), and its imports."""

    init_runs: tuple[float, ...]  # the handler's import, ms, one per run
    start_runs: tuple[float, ...]  # the whole fresh process until the handler was ready, ms
    unshipped_runs: tuple[float, ...]  # the init from a copy without the bytecode shipped, ms
    imports: tuple[Import, ...]  # from the -X importtime run, in the order Python reported them

    @property
    def init_ms(self) -> float:
        return statistics.median(self.init_runs)

    @property
    def start_ms(self) -> float:
        return statistics.median(self.start_runs)

    @property
    def unshipped_ms(self) -> float | None:
        return statistics.median(self.unshipped_runs) if self.unshipped_runs else None

    @property
    def imported_ms(self) -> float:
        """The whole import tree of the -X importtime run (every module's own time)."""
        return sum(i.self_ms for i in self.imports)

    def top(self, n: int) -> list[Import]:
        """The ``n`` modules that took longest themselves."""
        return sorted(self.imports, key=lambda i: i.self_ms, reverse=True)[:n]

    def distributions(self) -> list[tuple[str, float]]:
        """Each distribution's share of the import tree, largest first: its modules' own times, with those of
        the standard library modules it imported (what leaving it out would save)."""
        return _ranked((i.charged_to, i.self_ms) for i in self.imports)

    def as_json(self) -> dict[str, Any]:
        total = self.imported_ms or 1.0
        return {
            "initMs": round(self.init_ms, 1),
            "initRunsMs": [round(ms, 1) for ms in self.init_runs],
            "startMs": round(self.start_ms, 1),
            "withoutBytecode": None
            if self.unshipped_ms is None
            else {"initMs": round(self.unshipped_ms, 1), "initRunsMs": [round(ms, 1) for ms in self.unshipped_runs]},
            "importedMs": round(self.imported_ms, 1),
            "distributions": [
                {"name": name, "ms": round(ms, 1), "share": round(ms / total, 3)} for name, ms in self.distributions()
            ],
            "imports": [
                {
                    "module": i.module,
                    "selfMs": round(i.self_ms, 2),
                    "cumulativeMs": round(i.cumulative_ms, 2),
                    "distribution": i.distribution,
                    "chargedTo": i.charged_to,
                    "depth": i.depth,
                }
                for i in self.imports
            ],
        }


Start = Callable[[Sequence[str]], Result]
"""One fresh start of the function's init, with these flags for its interpreter (``-X importtime``)."""


def profile(
    fn: LambdaFunction,
    command: list[str],
    *,
    runs: int = 5,
    without_bytecode: bool = True,
    trace: bool = True,
    runner: Runner | None = None,
) -> Profile:
    """Start ``fn`` ``runs`` times as Lambda would (``command``: the runtime's Python), and once more with
    ``-X importtime`` when ``trace``; then as many times from a copy without ``__pycache__`` when
    ``without_bytecode``.

    ``InitFailed`` when the init raises; ``AssemblyChangedError`` when a run changed the originals.
    """
    runner = runner or Runner()
    owners = distributions_of([fn.code, *(layer / "python" for layer in fn.layers)])

    def starts(box: Sandbox) -> Start:
        def one(flags: Sequence[str]) -> Result:
            box.fresh()
            return start(fn, box, command, mode="init", flags=flags, runner=runner)

        return one

    with Sandbox(fn.code, fn.layers) as box:
        timed, traced = measure(starts(box), runs, trace=trace)
    _check(box)
    unshipped: list[tuple[float, float]] = []
    if without_bytecode:
        with Sandbox(fn.code, fn.layers, bytecode=False) as bare:
            unshipped, _ = measure(starts(bare), runs, trace=False)
        _check(bare)
    return assemble(timed, unshipped, traced, owners)


def measure(start: Start, runs: int, *, trace: bool) -> tuple[list[tuple[float, float]], str]:
    """``runs`` starts: each one's init and whole start in ms; then, when ``trace``, what ``-X importtime``
    printed after the bootstrap's mark in one more start."""
    timed = []
    for _ in range(runs):
        began = time.perf_counter()
        done = start([])
        whole = (time.perf_counter() - began) * 1000
        timed.append((float(_answer(done)["initMs"]), whole))
    traced = ""
    if trace:
        done = start(["-X", "importtime"])
        _answer(done)
        traced = done.stderr.partition("\0\n")[2]
    return timed, traced


def assemble(
    timed: list[tuple[float, float]], unshipped: list[tuple[float, float]], traced: str, owners: dict[str, str]
) -> Profile:
    return Profile(
        init_runs=tuple(init for init, _ in timed),
        start_runs=tuple(whole for _, whole in timed),
        unshipped_runs=tuple(init for init, _ in unshipped),
        imports=tuple(parse_importtime(traced, owners)),
    )


def _answer(done: Result) -> dict[str, Any]:
    logs, sep, payload = done.stdout.rpartition("\0")
    try:
        answer = json.loads(payload) if sep else None
    except ValueError:
        answer = None
    if done.ok and isinstance(answer, dict) and "initMs" in answer:
        return answer
    if done.timed_out:
        error = {"errorType": "Sandbox.Timedout", "errorMessage": f"the init did not end within {done.timeout:g} s"}
    elif isinstance(answer, dict) and "errorType" in answer:
        error = answer
    else:
        said = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))
        error = {"errorType": "Runtime.ExitError", "errorMessage": said.replace("\0", "").strip() or "no answer"}
    raise InitFailed(error, logs)


def _check(box: Sandbox) -> None:
    if box.changed:
        raise AssemblyChangedError(
            "the function's init changed the folders it was started from: " + ", ".join(box.changed)
        )


def parse_importtime(text: str, owners: dict[str, str]) -> list[Import]:
    """``-X importtime``'s lines (``import time: self | cumulative | name``, nested by indentation; a module
    comes after the modules it imported), each given to its distribution (``owners``: top-level name ->
    distribution) and charged to the nearest distribution above it in the tree."""
    rows = []
    for line in text.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            own, cumulative, indent, module = match.groups()
            shipper = owners.get(module.partition(".")[0], STANDARD_LIBRARY)
            rows.append((module, int(own) / 1000, int(cumulative) / 1000, shipper, len(indent) // 2))
    # Parents: the first row after a run of deeper rows at one less depth.
    parent: list[int | None] = [None] * len(rows)
    waiting: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        depth = row[4]
        for child in waiting.pop(depth + 1, []):
            parent[child] = index
        waiting.setdefault(depth, []).append(index)
    charged: list[str] = [""] * len(rows)
    for index in reversed(range(len(rows))):  # parents come after their children
        above = parent[index]
        inherited = charged[above] if above is not None else STANDARD_LIBRARY
        shipper = rows[index][3]
        charged[index] = inherited if shipper == STANDARD_LIBRARY else shipper
    return [Import(*row, charged_to=charged[i]) for i, row in enumerate(rows)]


def distributions_of(folders: Iterable[Path]) -> dict[str, str]:
    """Top-level import name -> the distribution shipping it, from the ``*.dist-info`` of ``folders``;
    names there without a distribution are the function's own code."""
    owners: dict[str, str] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.name.endswith((".dist-info", ".data")) and entry.name != "__pycache__":
                owners.setdefault(entry.name, OWN_CODE)
            elif entry.suffix in (".py", ".so", ".pyc"):
                owners.setdefault(entry.name.split(".")[0], OWN_CODE)
        for info in sorted(folder.glob("*.dist-info")):
            distribution = _name(info)
            for top in _tops(info):
                owners[top] = distribution
    return owners


def _name(info: Path) -> str:
    try:
        for line in (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Name:"):
                return normalize(line.partition(":")[2].strip())
            if not line.strip():
                break
    except OSError:
        pass
    return normalize(info.name.removesuffix(".dist-info").rpartition("-")[0] or info.name)


def _tops(info: Path) -> set[str]:
    listed = info / "top_level.txt"
    if listed.is_file():
        return {line.strip() for line in listed.read_text().splitlines() if line.strip()}
    tops: set[str] = set()
    try:
        record = (info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return tops
    for line in record.splitlines():
        first = line.split(",", 1)[0].split("/", 1)[0]
        if first and not first.endswith((".dist-info", ".data", ".pth")) and first not in ("..", "__pycache__", "bin"):
            tops.add(first.split(".")[0])
    return tops


def _ranked(pairs: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for name, ms in pairs:
        totals[name] = totals.get(name, 0.0) + ms
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)
