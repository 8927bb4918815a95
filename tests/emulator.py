"""The local AWS emulator of the deploy tests, and a checkout of samples/ deployed to it with the real CLI.

``moto_server`` on a free loopback port; the CDK CLI and boto3 reach it through ``AWS_ENDPOINT_URL``
with test credentials. The sample is synthesized with ``-c assets-bucket=...``
(``CliCredentialsStackSynthesizer``: no bootstrap stack needed) and deployed with ``--method=direct``
(moto's change-set path fails on redeploys). The fixtures ``emulator`` and ``build_cache`` are
session-wide (conftest.py imports them): one server for every deploy test. ``timeline`` deploys a checkout
after each of a list of changes (``Step``: what the emulator had after each deploy, zips included).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from helpers import once_per_run

STACK = "UvSample"
REPO = Path(__file__).parent.parent
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

    def client(self, service: str) -> Any:
        import boto3  # here, not at the top: conftest imports this module in every test session

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


# moto (5.x) gives its CloudFormation LayerVersion no physical id, so a Ref to it resolves to the model object
# instead of the layer version's ARN, and updating a function that lists a layer fails in moto. The emulator
# runs moto_server with that one attribute added (the ARN, as CloudFormation's Ref of a LayerVersion returns).
MOTO = (
    "import sys; from moto.awslambda.models import LayerVersion; "
    "LayerVersion.physical_resource_id = property(lambda self: self.arn); "
    "from moto.server import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """moto_server (patched as MOTO says) on a free loopback port, stopped by its pid at the end (also when a
    test failed). One server for every deploy test of the session; each timeline starts with ``reset()``."""
    with running_moto([sys.executable, "-c", MOTO], tmp_path_factory.mktemp("emulator")) as running:
        yield running


@contextlib.contextmanager
def running_moto(command: list[str], folder: Path) -> Iterator[Emulator]:
    """``command`` (moto_server, or a script that runs it) on a free loopback port, its log in ``folder``;
    stopped by its pid when the block ends."""
    port = _free_port()
    log = (folder / "moto.log").open("wb")
    proc = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)],
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
    """One build cache for the deploys of the sample (a second checkout in test_deploy.py gets its own), also
    when the deploy tests run side by side: a build cache serves synths at once."""
    return Path(once_per_run(tmp_path_factory, "build-cache", str))


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
    layers: tuple[str, ...] = ()  # the logical ids of the layer versions it lists (named by their content)


class Checkout:
    """A private copy of samples/ (a checkout of the repository's sample), deployed with the real CLI."""

    def __init__(self, folder: Path, emulator: Emulator, cache: Path, umask: int = 0o022, stack: str = STACK) -> None:
        self.folder = folder
        self.emulator = emulator
        self.cache = cache
        self.umask = umask  # of the CLI, the app and every build they start
        self.stack = stack  # the one stack its app deploys

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

    def start(self, *args: str, bucket: str = BUCKET, output: IO[str] | int = subprocess.PIPE) -> subprocess.Popen[str]:
        """The CDK CLI running ``args`` here, in a process group of its own; stdout and stderr to ``output``."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},  # no profile, no session
            **self.emulator.env,
            "CDK_UV_CACHE_DIR": str(self.cache),
            # the app runs as `python app.py` (cdk.json): this test's Python, which has cdk_uv_aspect
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        command = [str(CDK), *args, "--no-notices", "-c", f"assets-bucket={bucket}"]
        return subprocess.Popen(
            command,
            cwd=self.folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            umask=self.umask,
        )

    def cdk(self, *args: str, bucket: str = BUCKET) -> str:
        """Run the CDK CLI to its end; its output (it must succeed)."""
        proc = self.start(*args, bucket=bucket)
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

    def resources(self) -> dict[str, Any]:
        """Logical id -> resource of the deployed template, read back from the emulator."""
        body = self.emulator.client("cloudformation").get_template(StackName=self.stack)["TemplateBody"]
        return (json.loads(body) if isinstance(body, str) else body)["Resources"]

    def functions(self) -> dict[str, Deployed]:
        """Construct path -> the deployed function, read back from the emulator."""
        cfn, lambda_ = self.emulator.client("cloudformation"), self.emulator.client("lambda")
        resources = self.resources()
        found = {}
        for res in cfn.describe_stack_resources(StackName=self.stack)["StackResources"]:
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
                tuple(ref["Ref"] for ref in props.get("Layers", [])),
            )
        return found

    def layers(self) -> dict[str, str]:
        """Logical id -> the S3 key of the zip of every layer version in the deployed template."""
        return {
            lid: r["Properties"]["Content"]["S3Key"]
            for lid, r in self.resources().items()
            if r["Type"] == "AWS::Lambda::LayerVersion"
        }

    def packages(self) -> dict[str, str]:
        """Construct path -> the uv package the sample marks it with (from the synthesized assembly)."""
        from cdk_uv_aspect._assembly import functions

        return {fn.path: fn.package for fn in functions(self.folder / "cdk.out") if fn.package}


@dataclass(frozen=True)
class Step:
    """One `cdk deploy` and what the emulator had after it."""

    output: str  # the CLI's
    functions: dict[str, Deployed]
    zips: dict[str, bytes]  # construct path -> the zip its code came from, read back from the bucket
    layer_zips: dict[str, bytes]  # logical id of a layer version -> its zip, read back from the bucket


def deploy(checkout: Checkout) -> Step:
    """``cdk deploy`` of the checkout; what was deployed, and the zips, read back from the emulator."""
    output = checkout.deploy()
    functions = checkout.functions()
    zips = {path: checkout.emulator.object(fn.s3_key) for path, fn in functions.items()}
    layer_zips = {lid: checkout.emulator.object(key) for lid, key in checkout.layers().items()}
    return Step(output, functions, zips, layer_zips)


def timeline(checkout: Checkout, changes: Mapping[str, Callable[[], object] | None]) -> dict[str, Step]:
    """A deploy timeline on a freshly reset emulator: for each change in order, make it (``None``: nothing)
    and deploy. One timeline per module instead of a fresh stack per test: each deploy takes seconds of CPU,
    and each test reads the step it is about."""
    checkout.emulator.reset()
    steps = {}
    for name, change in changes.items():
        if change is not None:
            change()
        steps[name] = deploy(checkout)
    return steps


def sha256_b64(data: bytes) -> str:
    """Lambda's CodeSha256: the base64 SHA-256 of the deployment package."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
