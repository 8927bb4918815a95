"""Slimming real heavy dependencies: numpy and pandas (tests/fixtures/heavy, package ``frames``) for python3.12
on x86_64 and arm64, synthesized once per test session and shared by the tests here.

What it shows: the asset is smaller slimmed on both architectures (the figures are in docs/slimming.md, from
``./dev bench --only slim``); every top-level module in the slimmed x86_64 asset imports with the runtime's
Python and the handler answers; arm64's slimmed asset says it is not proven where no arm64 Python runs.
``cdk-uv report``'s column is shown in tests/test_slim.py (the report zips every asset: costly here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from helpers import FIXTURES, call_handler, python_for

from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package

pytestmark = pytest.mark.slow

EVENT = {"rows": [{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "a", "value": 3}]}
# (construct id, architecture, slim): each architecture whole and slimmed.
FUNCTIONS = [
    ("Whole", lambda_.Architecture.X86_64, False),
    ("Slim", lambda_.Architecture.X86_64, True),
    ("WholeArm", lambda_.Architecture.ARM_64, False),
    ("SlimArm", lambda_.Architecture.ARM_64, True),
]


@dataclass(frozen=True)
class Heavy:
    out: Path  # the cloud assembly
    cache: Path
    records: dict[str, dict[str, Any]]  # construct id -> its uv:build record

    def asset(self, name: str) -> Path:
        folder = self.out / f"asset.{self.records[name]['assetHash']}"
        assert folder.is_dir(), folder
        return folder


@pytest.fixture(scope="session")
def heavy(tmp_path_factory: pytest.TempPathFactory) -> Heavy:
    """The heavy fixture synthesized once: frames for python3.12 on x86_64 and arm64, whole and slim=True."""
    root = tmp_path_factory.mktemp("heavy")
    workspace = Path(shutil.copytree(FIXTURES / "heavy", root / "ws"))
    cache, out = root / "cache", root / "cdk.out"
    app = App(outdir=str(out))
    stack = Stack(app, "Heavy")
    for name, architecture, slim in FUNCTIONS:
        fn = lambda_.Function(
            stack,
            name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=architecture,
            handler="frames.handler.main",
            memory_size=1024,
            code=UvCode(),
        )
        mark_package(fn, "frames", slim=slim)
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace, cache_dir=cache))
    app.synth()
    metadata = json.loads((out / "Heavy.metadata.json").read_text())
    records = {
        path.rsplit("/", 1)[-1]: entry["data"]
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "uv:build"
    }
    return Heavy(out, cache, records)


def test_slim_shrinks_numpy_and_pandas_on_both_architectures(heavy: Heavy):
    """Slimmed, each architecture's asset loses pandas' and numpy's test suites and their stubs and C headers
    (about a quarter of it), and records its size before."""
    for whole, slim in (("Whole", "Slim"), ("WholeArm", "SlimArm")):
        before, after = heavy.records[whole], heavy.records[slim]
        assert after["slim"]["bytesBefore"] == before["bytes"], (whole, after)
        assert after["bytes"] < 0.85 * before["bytes"], (before["bytes"], after["bytes"])
        removed = after["slim"]["removed"]
        assert removed["tests"] > 10_000_000 and removed["unreachable"] > 1_000_000, removed
        asset = heavy.asset(slim)
        assert (asset / "pandas" / "__init__.py").is_file() and not (asset / "pandas" / "tests").exists()
        assert not list(asset.glob("numpy/**/*.pyi")) and not (asset / "numpy" / "_core" / "tests").exists()
        assert (heavy.asset(whole) / "pandas" / "tests").is_dir()


def test_every_top_level_module_imports_from_the_slimmed_asset(heavy: Heavy):
    """Each top-level package and module in the slimmed x86_64 asset imports with Python 3.12 from the asset
    alone, and the handler answers as it does from the whole asset; the build proved the same."""
    asset = heavy.asset("Slim")
    modules = sorted(
        path.name if path.is_dir() else path.name.split(".", 1)[0]
        for path in asset.iterdir()
        if (path.is_dir() and (path / "__init__.py").is_file()) or path.suffix == ".py"
    )
    assert {"numpy", "pandas", "dateutil", "tzdata", "frames"} <= set(modules), modules
    probe = "import importlib, sys\nsys.path.insert(0, sys.argv[1])\n[importlib.import_module(m) for m in sys.argv[2:]]"
    imported = subprocess.run(
        [python_for("3.12"), "-I", "-S", "-B", "-c", probe, str(asset), *modules],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    slim, whole = (call_handler(heavy.asset(n), "frames.handler.main", "3.12", EVENT) for n in ("Slim", "Whole"))
    assert slim.ok and slim.result == whole.result == {"totals": {"a": 4, "b": 2}, "mean": 2.0}, slim
    proof = heavy.records["Slim"]["slim"]
    assert proof["proven"] == "python3.12 x86_64" and proof["modules"] >= len(modules) - 1  # frames: not third-party


def test_arm64_slimming_is_stated_unproven_where_no_arm64_python_runs(heavy: Heavy):
    """On an x86_64 machine without an emulated arm64 Python 3.12 (Debian bookworm has 3.11), the arm64 slimmed
    asset says why it is not proven and what would make it work, and its native libraries were stripped with a
    tool that handles aarch64 where they stay loadable."""
    proof = heavy.records["SlimArm"]["slim"]
    assert proof["strip"] and proof["stripped"] > 0 and proof["native"] >= proof["stripped"], proof
    assert "proven" in proof or "unproven" in proof
    if not proof.get("proven"):
        assert "aarch64 CPython 3.12" in proof["unproven"] and "QEMU_LD_PREFIX" in proof["unproven"], proof
