"""What UvPolicyChecks adds to a synth: an app of N marked functions, with and without the checks.

Both variants use the same warm build cache (the builds are not what is measured), in one process,
alternating, and the median of the repeats is compared. Rerun:

    ./dev test -q tests/test_policy_rules.py   # once, to set up .venv
    .venv/bin/python bench/policy_checks.py [FUNCTIONS] [REPEATS]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_

from cdk_uv_aspect import UvBundlingAspect, UvCode, UvPolicyChecks, mark_package

FIXTURE = Path(__file__).parent.parent / "tests" / "fixtures" / "ws"


def synth(workspace: Path, cache: Path, functions: int, checks: bool) -> float:
    out = Path(tempfile.mkdtemp(prefix="cdk-uv-bench-out."))
    try:
        app = App(outdir=str(out))
        stack = Stack(app, "Bench")
        for i in range(functions):
            fn = lambda_.Function(
                stack, f"Fn{i}", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main", code=UvCode()
            )
            mark_package(fn, "api")
        Aspects.of(app).add(UvBundlingAspect(workspace=workspace, cache_dir=cache))
        if checks:
            Aspects.of(app).add(UvPolicyChecks())
        started = time.perf_counter()
        app.synth()
        return time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    functions = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory(prefix="cdk-uv-bench.") as tmp:
        workspace = Path(tmp) / "ws"
        shutil.copytree(FIXTURE, workspace)
        cache = Path(tmp) / "cache"
        synth(workspace, cache, 1, checks=True)  # build once: every synth below takes it from the cache
        base, checked = [], []
        for _ in range(repeats):
            base.append(synth(workspace, cache, functions, checks=False))
            checked.append(synth(workspace, cache, functions, checks=True))
    b, c = statistics.median(base), statistics.median(checked)
    print(f"synth of {functions} marked functions, median of {repeats}:")
    print(f"  bundling aspect only     {b:6.2f} s  (baseline)")
    per_function = (c - b) / functions * 1000
    print(f"  bundling aspect + checks {c:6.2f} s  ratio {c / b:.2f}, +{per_function:.1f} ms per function")
    print("rerun: .venv/bin/python bench/policy_checks.py [FUNCTIONS] [REPEATS]")


if __name__ == "__main__":
    main()
