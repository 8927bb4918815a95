"""The real CDK CLI on the sample workspace: synth builds every function; `cdk ls` builds nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, call_handler

from cdk_uv_aspect._assembly import functions

pytestmark = pytest.mark.slow

CDK = REPO / "node_modules" / ".bin" / "cdk"
EVENTS = REPO / "samples" / "events"
ANSWERS = {
    "orders": {"items": 2, "total": 20.25},
    "users": {"created": "Ada", "domain": "example.org"},
    "report": {"count": 8, "mean": 3.875, "median": 3.5},
}


def copy_samples(dest: Path) -> Path:
    shutil.copytree(REPO / "samples", dest, ignore=shutil.ignore_patterns("cdk.out", "__pycache__", ".venv"))
    return dest


def cdk(args: list[str], cwd: Path, cache_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CDK_UV_CACHE_DIR": str(cache_dir),
    }
    return subprocess.run([str(CDK), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_cdk_synth_builds_every_sample_function_and_each_answers(tmp_path: Path):
    """`cdk synth` on samples/: five uv-built functions (one an image); every handler that can run here answers."""
    samples = copy_samples(tmp_path / "samples")
    done = cdk(["synth", "--quiet", "--output", str(tmp_path / "out")], samples, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    built = functions(tmp_path / "out")
    assert {(f.path, f.package, f.build.target) for f in built} == {
        ("UvSample/Orders", "orders", "python3.12-x86_64"),
        ("UvSample/OrdersArm", "orders", "python3.12-arm64"),
        ("UvSample/Users", "users", "python3.11-x86_64"),
        ("UvSample/Report", "report", "python3.13-arm64"),
        ("UvSample/OrdersImage", "orders", "python3.12-x86_64"),
    }
    assert len({f.build.asset_hash for f in built}) == 5
    for fn in built:
        if fn.path.endswith("OrdersArm") or fn.package_type == "Image":
            continue  # arm64 native code, or an image: can't run on this machine
        event = json.loads((EVENTS / f"{fn.package}.json").read_text())
        answer = call_handler(fn.asset_dir, fn.handler, fn.python, event, architecture=fn.architecture)
        assert answer.ok, answer.result
        assert answer.result["body"] == ANSWERS[fn.package]
        assert answer.result["python"].startswith(fn.python)


def test_cdk_ls_builds_nothing(tmp_path: Path):
    """Listing stacks needs no bundling: no uv build runs, no build cache is created."""
    samples = copy_samples(tmp_path / "samples")
    done = cdk(["ls"], samples, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["UvSample"]
    assert not (tmp_path / "cache").exists()
