"""Concurrent and interrupted synths: every finished synth has the right assets; nothing half-built is used."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tree_digest

pytestmark = pytest.mark.slow

# A CDK app over the fixture workspace: three functions, two packages, two targets.
APP = """
import sys
from aws_cdk import App, Aspects, Stack, aws_lambda as lambda_
from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package
app = App(outdir=sys.argv[2])
stack = Stack(app, "Stack")
for name, package, handler, arch in [("Api", "api", "api.handler.main", lambda_.Architecture.X86_64),
                                     ("ApiArm", "api", "api.handler.main", lambda_.Architecture.ARM_64),
                                     ("App", "app", "main.handler", lambda_.Architecture.X86_64)]:
    fn = lambda_.Function(stack, name, runtime=lambda_.Runtime.PYTHON_3_12, architecture=arch,
                          handler=handler, code=UvCode())
    mark_package(fn, package)
Aspects.of(app).add(UvBundlingAspect(workspace=sys.argv[1], uv=sys.argv[3] if len(sys.argv) > 3 else None))
app.synth()
"""


def start_synth(tmp_path: Path, workspace: Path, outdir: Path, cache: Path, uv: str | None = None) -> subprocess.Popen:
    script = tmp_path / "app.py"
    if not script.is_file():  # written once: rewriting it could hand a starting synth an empty file
        script.write_text(APP)
    env = {**os.environ, "CDK_UV_CACHE_DIR": str(cache)}
    return subprocess.Popen(
        [sys.executable, str(script), str(workspace), str(outdir), *([uv] if uv else [])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def s3_keys(outdir: Path) -> dict[str, str]:
    template = json.loads((outdir / "Stack.template.json").read_text())
    return {
        lid: r["Properties"]["Code"]["S3Key"]
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
    }


def cache_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "builds").iterdir())


def test_four_synths_at_once_agree(workspace: Path, tmp_path: Path):
    """Four synths of one app at once (two checkouts, four output folders, one cache): same hashes."""
    other = tmp_path / "other-checkout"
    shutil.copytree(workspace, other)
    cache = tmp_path / "cache"
    procs = [
        start_synth(tmp_path, ws, tmp_path / f"out{i}", cache)
        for i, ws in enumerate([workspace, workspace, other, other])
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    keys = [s3_keys(tmp_path / f"out{i}") for i in range(4)]
    assert all(k == keys[0] for k in keys)
    assert len(set(keys[0].values())) == 3
    # One finished entry per build, whoever won each race; no temporary folder left behind.
    assert len(cache_entries(cache)) == 3
    assert not [name for name in cache_entries(cache) if name.startswith(".")]


def _kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_killed_synths_leave_nothing_a_later_synth_uses(workspace: Path, tmp_path: Path):
    """SIGKILL of a synth (and its uv children) at several points: the next synth rebuilds what is
    missing and produces exactly the assets of an uninterrupted synth."""
    reference = tmp_path / "reference-cache"
    proc = start_synth(tmp_path, workspace, tmp_path / "ref-out", reference)
    assert proc.wait(timeout=600) == 0
    expected = s3_keys(tmp_path / "ref-out")

    cache = tmp_path / "cache"
    rng = random.Random(7)
    for attempt in range(3):
        proc = start_synth(tmp_path, workspace, tmp_path / f"killed{attempt}", cache)
        time.sleep(rng.uniform(1.0, 6.0))
        _kill_group(proc)
    proc = start_synth(tmp_path, workspace, tmp_path / "after", cache)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert s3_keys(tmp_path / "after") == expected
    finished = [name for name in cache_entries(cache) if not name.startswith(".")]
    for name in finished:
        assert tree_digest(cache / "builds" / name / "asset") == tree_digest(reference / "builds" / name / "asset")


def test_killed_uv_fails_the_synth_cleanly(workspace: Path, tmp_path: Path):
    """uv killed (SIGKILL) in the middle of installing: the synth fails naming it, publishes no build for
    that install, and a rerun with a healthy uv succeeds with the assets of an uninterrupted synth."""
    from cdk_uv_aspect._uv import Uv

    real = Uv.locate(None).path
    killer = tmp_path / "uv"
    # The real uv, except that `uv pip install` is killed a moment after it starts, and so is its caller.
    killer.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" != "pip install" ]; then exec {real} "$@"; fi\n'
        f'{real} "$@" & sleep 0.2; kill -9 $! 2>/dev/null; kill -9 $$\n'
    )
    killer.chmod(0o755)
    cache = tmp_path / "cache"
    proc = start_synth(tmp_path, workspace, tmp_path / "out", cache, uv=str(killer))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0
    assert "exit code: -9" in err
    assert [n for n in cache_entries(cache) if not n.startswith(".")] == []

    rerun = start_synth(tmp_path, workspace, tmp_path / "rerun", cache)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    clean = start_synth(tmp_path, workspace, tmp_path / "clean", tmp_path / "clean-cache")
    assert clean.wait(timeout=600) == 0
    assert s3_keys(tmp_path / "rerun") == s3_keys(tmp_path / "clean")
