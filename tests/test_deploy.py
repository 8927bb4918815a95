"""The deploy loop: the real CDK CLI deploys samples/ to a local AWS emulator (moto_server), and a
redeploy touches exactly the functions whose built code changed.

How: ``moto_server`` on a free loopback port; the CLI and boto3 reach it through ``AWS_ENDPOINT_URL``
with test credentials. The sample is synthesized with ``-c assets-bucket=...``
(``CliCredentialsStackSynthesizer``: no bootstrap stack needed) and deployed with ``--method=direct``
(moto's change-set path fails on redeploys). Run alone: ``./dev test tests/test_deploy.py``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from conftest import REPO, python_for

from cdk_uv_aspect._invoke import CannotRunHere, invoke

pytestmark = pytest.mark.slow

STACK = "UvSample"
BUCKET = "uv-sample-assets"
CDK = REPO / "node_modules" / ".bin" / "cdk"  # what `npx cdk` runs in the repository
CLI_TIMEOUT = 600  # seconds per CLI run; a cold build of every sample package takes under a minute
EVENTS = REPO / "samples" / "events"

# One source edit per package, each visible in the handler's answer as `"v": 2`.
EDITS = {
    "orders": ("packages/orders/src/orders/handler.py", '"items": len(items)', '"items": len(items), "v": 2'),
    "users": ("packages/users/src/users/handler.py", '{"created"', '{"v": 2, "created"'),
    "common": ("packages/common/src/common/__init__.py", '"body": body}', '"body": body, "v": 2}'),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Emulator:
    """A running moto_server and the environment that points the CDK CLI and boto3 at it."""

    endpoint: str
    env: dict[str, str]

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.env["AWS_REGION"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def reset(self) -> None:
        """Forget every stack, function and bucket, then create the assets bucket."""
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30
        ).close()
        self.client("s3").create_bucket(Bucket=BUCKET)

    def object(self, key: str, bucket: str = BUCKET) -> bytes:
        return self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """moto_server on a free loopback port, stopped by its pid at the end (also when a test failed)."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    assert server, "the deploy tests need moto_server: install the test extras (`pip install -e '.[test]'`)"
    folder = tmp_path_factory.mktemp("emulator")
    port = _free_port()
    log = (folder / "moto.log").open("wb")
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # `localhost`, not 127.0.0.1: with an IP address in the endpoint, moto fails the stack creation
        # with NoSuchBucket (measured with moto 5.2 and CDK CLI 2.1148).
        endpoint = f"http://localhost:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"moto_server exited: {(folder / 'moto.log').read_text()[-2000:]}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not answer within 60 s"
                time.sleep(0.2)
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            # never the developer's own profiles or credentials
            "AWS_CONFIG_FILE": str(folder / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-credentials"),
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        }
        yield Emulator(endpoint, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build cache for the deploys of this file (a second machine gets its own, see below)."""
    return tmp_path_factory.mktemp("build-cache")


@dataclass(frozen=True)
class Deployed:
    """A Lambda function as the emulator has it after a deploy."""

    path: str  # construct path, e.g. "UvSample/Orders"
    name: str
    code_sha256: str
    runtime: str
    handler: str
    architecture: str  # from the deployed template: moto's Lambda reports x86_64 for every function
    s3_key: str


class Checkout:
    """A private copy of samples/ (a checkout of the repository's sample), deployed with the real CLI."""

    def __init__(self, folder: Path, emulator: Emulator, cache: Path, umask: int = 0o022) -> None:
        self.folder = folder
        self.emulator = emulator
        self.cache = cache
        self.umask = umask  # of the CLI, the app and every build they start

    @classmethod
    def copy_of(cls, source: Path, dest: Path, emulator: Emulator, cache: Path, **kwargs) -> Checkout:
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("cdk.out", ".venv", "__pycache__"))
        return cls(dest, emulator, cache, **kwargs)

    def deploy(self) -> str:
        """``cdk deploy`` of the sample; the CLI's output (it must succeed)."""
        return self.cdk("deploy", "--require-approval", "never", "--method=direct")

    def publish_assets(self, bucket: str) -> str:
        """Zip and upload every asset to ``bucket``, deploying nothing."""
        return self.cdk("publish-assets", "--unstable=publish-assets", bucket=bucket)

    def cdk(self, *args: str, bucket: str = BUCKET) -> str:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},  # no profile, no session
            **self.emulator.env,
            "CDK_UV_CACHE_DIR": str(self.cache),
            # the app runs as `python app.py` (cdk.json): this test's Python, which has cdk_uv_aspect
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        command = [str(CDK), *args, "--no-notices", "-c", f"assets-bucket={bucket}"]
        proc = subprocess.Popen(
            command,
            cwd=self.folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            umask=self.umask,
        )
        try:
            output, _ = proc.communicate(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and the app it started
            output, _ = proc.communicate()
            pytest.fail(f"cdk {args[0]} took more than {CLI_TIMEOUT} s:\n{output[-4000:]}")
        assert proc.returncode == 0, f"cdk {args[0]} failed ({proc.returncode}):\n{output[-4000:]}"
        return output

    def edit(self, package: str) -> None:
        relpath, old, new = EDITS[package]
        path = self.folder / relpath
        text = path.read_text()
        assert old in text, f"the edit for {package} no longer matches {relpath}"
        path.write_text(text.replace(old, new))

    def functions(self) -> dict[str, Deployed]:
        """Construct path -> the deployed function, read back from the emulator."""
        cfn, lambda_ = self.emulator.client("cloudformation"), self.emulator.client("lambda")
        body = cfn.get_template(StackName=STACK)["TemplateBody"]
        resources = (json.loads(body) if isinstance(body, str) else body)["Resources"]
        found = {}
        for res in cfn.describe_stack_resources(StackName=STACK)["StackResources"]:
            if res.get("ResourceType") != "AWS::Lambda::Function":
                continue
            template = resources[res["LogicalResourceId"]]
            path = template["Metadata"]["aws:cdk:path"].removesuffix("/Resource")
            config = lambda_.get_function_configuration(FunctionName=res["PhysicalResourceId"])
            props = template["Properties"]
            assert props["Code"]["S3Bucket"] == BUCKET
            found[path] = Deployed(
                path,
                config["FunctionName"],
                config["CodeSha256"],
                config["Runtime"],
                config["Handler"],
                (props.get("Architectures") or ["x86_64"])[0],
                props["Code"]["S3Key"],
            )
        return found

    def packages(self) -> dict[str, str]:
        """Construct path -> the uv package the sample marks it with (from the synthesized assembly)."""
        from cdk_uv_aspect._assembly import functions

        return {fn.path: fn.package for fn in functions(self.folder / "cdk.out") if fn.package}


def sha256_b64(data: bytes) -> str:
    """Lambda's CodeSha256: the base64 SHA-256 of the deployment package."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def expected_changes(packages: dict[str, str], edited: str) -> set[str]:
    # every sample package depends on common; no other package depends on another
    return {path for path, package in packages.items() if package == edited or edited == "common"}


def code_changes(before: dict[str, Deployed], after: dict[str, Deployed]) -> set[str]:
    assert after.keys() == before.keys()
    return {path for path in after if after[path].code_sha256 != before[path].code_sha256}


@dataclass(frozen=True)
class Step:
    """One `cdk deploy` and what the emulator had after it."""

    output: str  # the CLI's
    functions: dict[str, Deployed]
    zips: dict[str, bytes]  # construct path -> the zip its code came from, read back from the bucket


def deploy(checkout: Checkout) -> Step:
    output = checkout.deploy()
    functions = checkout.functions()
    return Step(output, functions, {p: checkout.emulator.object(fn.s3_key) for p, fn in functions.items()})


@dataclass(frozen=True)
class History:
    checkout: Checkout
    packages: dict[str, str]  # construct path -> uv package
    first: Step
    unchanged: Step  # the same code again
    edited: dict[str, tuple[Step, Step]]  # package -> (before, after) its source edit


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, emulator: Emulator, build_cache: Path) -> History:
    """The sample's deploys, in order: first, unchanged, `orders` edited, then `common` edited too.

    One timeline instead of a fresh stack per test: each deploy takes seconds of CPU, and each test
    below reads the step it is about.
    """
    emulator.reset()
    checkout = Checkout.copy_of(REPO / "samples", tmp_path_factory.mktemp("laptop") / "samples", emulator, build_cache)
    first = deploy(checkout)
    unchanged = deploy(checkout)
    edited = {}
    before = unchanged
    for package in ("orders", "common"):
        checkout.edit(package)
        edited[package] = (before, deploy(checkout))
        before = edited[package][1]
    return History(checkout, checkout.packages(), first, unchanged, edited)


def test_deploy_creates_every_function_from_the_zip_uploaded_for_it(history: History) -> None:
    """Every sample function exists, and its CodeSha256 is the hash of the zip in the assets bucket."""
    deployed = history.first.functions
    assert set(deployed) == set(history.packages)
    assert len(deployed) >= 4
    for path, fn in deployed.items():
        assert fn.code_sha256 == sha256_b64(history.first.zips[path]), path


def test_redeploy_without_changes_changes_nothing(history: History) -> None:
    """A second deploy of the same code: the CLI reports no changes and every CodeSha256 stays."""
    assert f"{STACK} (no changes)" in history.unchanged.output
    assert history.unchanged.functions == history.first.functions


@pytest.mark.parametrize("edited", ["orders", "common"])
def test_editing_a_package_redeploys_exactly_its_functions(history: History, edited: str) -> None:
    """After a source edit, only the functions built from that package (or depending on it) change."""
    before, after = history.edited[edited]
    expected = expected_changes(history.packages, edited)
    assert expected, f"no sample function is built from {edited}"
    assert code_changes(before.functions, after.functions) == expected
    for path in expected:
        assert after.functions[path].code_sha256 == sha256_b64(after.zips[path]), path


@pytest.mark.parametrize("edited", ["orders", "common"])
def test_the_redeployed_zip_runs_from_the_bucket(history: History, edited: str, tmp_path: Path) -> None:
    """The zip that landed for an edited function answers with the edited code, from that zip alone."""
    _, after = history.edited[edited]
    ran = []
    for path in sorted(expected_changes(history.packages, edited)):
        fn = after.functions[path]
        folder = tmp_path / fn.name
        zipfile.ZipFile(io.BytesIO(after.zips[path])).extractall(folder)
        event = json.loads((EVENTS / f"{history.packages[path]}.json").read_text())
        python = python_for(fn.runtime.removeprefix("python"))
        try:
            answer = invoke(folder, fn.handler, python, event, architecture=fn.architecture, name=fn.name)
        except CannotRunHere:
            continue  # another architecture's native code (OrdersArm on an x86_64 machine)
        assert answer.ok, f"{path}: {answer.result}"
        assert '"v": 2' in json.dumps(answer.result), f"{path} answered with the code before the edit"
        ran.append(path)
    assert ran, "no edited function could run on this machine"


def test_a_second_checkout_redeploys_only_what_changed(history: History, tmp_path: Path) -> None:
    """From another folder, umask and empty build cache (a CI runner after a laptop): the same code
    changes nothing; one more package edited there changes only its functions."""
    laptop = history.checkout
    last = history.edited["common"][1]
    runner = Checkout.copy_of(
        laptop.folder, tmp_path / "runner" / "work" / "samples", laptop.emulator, tmp_path / "runner-cache", umask=0o077
    )
    same = deploy(runner)
    assert f"{STACK} (no changes)" in same.output
    assert same.functions == last.functions

    runner.edit("users")
    edited = deploy(runner)
    assert code_changes(same.functions, edited.functions) == expected_changes(runner.packages(), "users")


def test_the_cli_zips_the_same_code_to_the_same_bytes_on_another_checkout(history: History, tmp_path: Path) -> None:
    """The CLI zips each asset folder itself: from another folder, umask and build cache, the zip of
    the same code is byte for byte the laptop's (so also its CodeSha256)."""
    laptop = history.checkout
    last = history.edited["common"][1]
    runner = Checkout.copy_of(
        laptop.folder, tmp_path / "runner" / "samples", laptop.emulator, tmp_path / "runner-cache", umask=0o077
    )
    other = "uv-sample-assets-2"
    laptop.emulator.client("s3").create_bucket(Bucket=other)
    runner.publish_assets(other)
    for path, fn in last.functions.items():
        assert laptop.emulator.object(fn.s3_key, bucket=other) == last.zips[path], path
