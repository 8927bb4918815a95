"""The edit loop: `cdk watch` on samples/ (its cdk.json watch settings) against the local emulator.

An edit to one package's handler is seen, synthesized and hotswapped: exactly that package's functions get
new code, without a CloudFormation deployment, and the code they got is the edit. The emulator and the
checkout are tests/emulator.py's. Run alone: ``./dev test tests/test_edit_loop.py``.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from emulator import CLI_TIMEOUT, EDITS, EVENTS, STACK, Checkout, Deployed, Emulator, sha256_b64
from helpers import REPO

from cdk_uv_aspect._invoke import invoke
from cdk_uv_aspect._start import CannotRunHere, LambdaFunction

pytestmark = pytest.mark.slow

EDITED = "orders"  # two of the sample's four zip functions: Orders (x86_64) and OrdersArm (arm64)
DEPLOYED = re.compile(r"^✨\s+Deployment time:", re.MULTILINE)  # the end of each deploy `cdk watch` runs
HOTSWAPPED = re.compile(r"AWS::Lambda::Function '([^']+)' hotswapped!")
DETECTED = re.compile(r"Detected change to '([^']+)'")


@dataclass(frozen=True)
class Loop:
    """What one edit during `cdk watch` did."""

    checkout: Checkout
    packages: dict[str, str]  # construct path -> uv package
    before: dict[str, Deployed]  # after the full deploy that created the stack
    code: dict[str, str]  # construct path -> its function's CodeSha256 after the edit
    output: str  # the CLI's, from the edit on


def stop(proc: subprocess.Popen[str]) -> None:
    """End `cdk watch` and what it started (its process group): SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wait_for_deploys(log: Path, proc: subprocess.Popen[str], count: int) -> str:
    """The log once `cdk watch` finished ``count`` deploys (and any it queued meanwhile)."""
    deadline = time.monotonic() + CLI_TIMEOUT
    while True:
        text = log.read_text()
        assert "❌" not in text, f"cdk watch failed a deploy:\n{text[-4000:]}"
        assert proc.poll() is None, f"cdk watch exited ({proc.returncode}):\n{text[-4000:]}"
        # A change seen during a deploy queues one more deploy, announced as soon as that one ends.
        wanted = count + text.count("Invoking 'cdk deploy' again")
        if len(DEPLOYED.findall(text)) >= wanted:
            time.sleep(2)  # room for that announcement
            if log.read_text() == text:
                return text
            continue
        assert time.monotonic() < deadline, f"cdk watch did not finish {count} deploys in {CLI_TIMEOUT} s:\n{text}"
        time.sleep(0.5)


def code_sha256(emulator: Emulator, deployed: dict[str, Deployed]) -> dict[str, str]:
    lambda_ = emulator.client("lambda")
    return {
        path: lambda_.get_function(FunctionName=fn.name)["Configuration"]["CodeSha256"] for path, fn in deployed.items()
    }


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, emulator: Emulator, build_cache: Path) -> Loop:
    """The sample deployed, then `cdk watch`: its first (empty) deploy, one edit to `orders`, its deploy.

    Before the edit, files appear where the watch settings exclude them (a bytecode cache, an
    egg-info folder): they must not trigger a deploy.
    """
    emulator.reset()
    folder = tmp_path_factory.mktemp("dev")
    checkout = Checkout.copy_of(REPO / "samples", folder / "samples", emulator, build_cache)
    checkout.deploy()  # `cdk watch` hotswaps: the stack must exist first
    before = checkout.functions()
    log = folder / "watch.log"
    with log.open("w") as output:
        watch = checkout.start("watch", output=output)
    try:
        wait_for_deploys(log, watch, 1)
        start = len(log.read_text())
        package = checkout.folder / "packages" / EDITED
        for noise in ("src/orders/__pycache__/handler.cpython-312.pyc", "src/orders.egg-info/PKG-INFO"):
            (package / noise).parent.mkdir(parents=True, exist_ok=True)
            (package / noise).write_bytes(b"not a source file\n")
        checkout.edit(EDITED)
        text = wait_for_deploys(log, watch, 2)
    finally:
        stop(watch)
    return Loop(checkout, checkout.packages(), before, code_sha256(emulator, before), text[start:])


def edited_functions(loop: Loop) -> set[str]:
    return {path for path, package in loop.packages.items() if package == EDITED}


def test_watch_sees_the_edit_and_only_the_edit(loop: Loop) -> None:
    """The edited handler triggers the deploy; bytecode caches and egg-info folders do not."""
    assert set(DETECTED.findall(loop.output)) == {EDITS[EDITED][0]}


def test_an_edit_hotswaps_exactly_the_functions_of_its_package(loop: Loop) -> None:
    """The CLI hotswaps the edited package's functions (no CloudFormation update), and only they get new code."""
    expected = edited_functions(loop)
    assert len(expected) == 2, loop.packages
    assert set(HOTSWAPPED.findall(loop.output)) == {loop.before[path].name for path in expected}
    assert "UPDATE_IN_PROGRESS" not in loop.output
    changed = {path for path, sha in loop.code.items() if sha != loop.before[path].code_sha256}
    assert changed == expected


def test_the_hotswapped_code_runs_the_edit(loop: Loop, tmp_path: Path) -> None:
    """Each hotswapped function's code is the zip of the new synth, and that zip answers with the edit."""
    synthesized = json.loads((loop.checkout.folder / "cdk.out" / f"{STACK}.template.json").read_text())["Resources"]
    keys = {
        res["Metadata"]["aws:cdk:path"].removesuffix("/Resource"): res["Properties"]["Code"]["S3Key"]
        for res in synthesized.values()
        if res["Type"] == "AWS::Lambda::Function"
    }
    ran = []
    for path in sorted(edited_functions(loop)):
        fn = loop.before[path]
        assert keys[path] != fn.s3_key, f"{path}: the synth after the edit kept the old asset"
        data = loop.checkout.emulator.object(keys[path])
        assert sha256_b64(data) == loop.code[path], f"{path} does not run the zip of the new synth"
        folder = tmp_path / fn.name
        zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
        event = json.loads((EVENTS / f"{EDITED}.json").read_text())
        try:
            python = fn.runtime.removeprefix("python")
            answer = invoke(LambdaFunction(folder, fn.handler, python, architecture=fn.architecture, timeout=60), event)
        except CannotRunHere:
            continue  # another architecture's native code (OrdersArm on an x86_64 machine)
        assert answer.ok, f"{path}: {answer.result}"
        assert '"v": 2' in json.dumps(answer.result), f"{path} answered with the code before the edit"
        ran.append(path)
    assert ran, "no hotswapped function could run on this machine"
