"""The deploy loop with a dependencies layer: the real CDK CLI deploys a function of the fixture workspace,
its third-party packages in a layer (``UvOptions(dependencies_layer=True)``), to the local AWS emulator
(moto_server, see tests/test_deploy.py). A handler edit uploads and deploys a new function zip and leaves
the layer as it was; a dependency bump in uv.lock publishes a new layer version and leaves the function's
zip as it was. The zips read back from the bucket answer, composed as Lambda composes them.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from emulator import Checkout, Emulator, running_moto, sha256_b64
from helpers import FIXTURES, call_handler

from cdk_uv_aspect._uv import Uv

pytestmark = pytest.mark.slow

STACK = "UvLayers"
APP = textwrap.dedent(
    """
    from aws_cdk import App, Aspects, CliCredentialsStackSynthesizer, Stack
    from aws_cdk import aws_lambda as lambda_

    from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package

    app = App()
    synthesizer = CliCredentialsStackSynthesizer(file_assets_bucket_name=app.node.get_context("assets-bucket"))
    stack = Stack(app, "UvLayers", synthesizer=synthesizer)
    api = lambda_.Function(
        stack, "Api", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main", code=UvCode()
    )
    mark_package(api, "api")
    Aspects.of(app).add(UvBundlingAspect(dependencies_layer=True))
    app.synth()
    """
)
# moto (5.x) gives its CloudFormation LayerVersion no physical id, so a Ref to it resolves to the model object
# instead of the layer version's ARN, and updating a function that lists it fails in moto. The emulator runs
# with that one attribute added (the ARN, as CloudFormation's Ref of a LayerVersion returns).
MOTO = (
    "import sys; from moto.awslambda.models import LayerVersion; "
    "LayerVersion.physical_resource_id = property(lambda self: self.arn); "
    "from moto.server import main; sys.exit(main(sys.argv[1:]))"
)
HANDLER = ("packages/api/src/api/handler.py", '"version": importlib', '"v": 2, "version": importlib')


@dataclass(frozen=True)
class Deployed:
    """The function and its layer as the emulator has them after a deploy."""

    code_sha256: str  # Lambda's, of the function's zip
    code_key: str  # the function zip's S3 key (its asset hash)
    layer_ids: tuple[str, ...]  # the logical ids of the layers the deployed function lists (named by content)
    layer_key: str  # the layer zip's S3 key
    function_zip: bytes
    layer_zip: bytes


def deploy(checkout: Checkout) -> Deployed:
    checkout.deploy()
    emulator = checkout.emulator
    cfn, lambda_ = emulator.client("cloudformation"), emulator.client("lambda")
    body = cfn.get_template(StackName=STACK)["TemplateBody"]
    resources = (json.loads(body) if isinstance(body, str) else body)["Resources"]
    physical = {  # moto lists the layer without a physical id, and one entry with neither
        r.get("LogicalResourceId"): r.get("PhysicalResourceId")
        for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]
    }
    [(function_id, function)] = [(k, v) for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"]
    [layer] = [v for v in resources.values() if v["Type"] == "AWS::Lambda::LayerVersion"]
    config = lambda_.get_function_configuration(FunctionName=physical[function_id])
    code_key, layer_key = function["Properties"]["Code"]["S3Key"], layer["Properties"]["Content"]["S3Key"]
    function_zip, layer_zip = emulator.object(code_key), emulator.object(layer_key)
    assert config["CodeSha256"] == sha256_b64(function_zip)
    return Deployed(
        config["CodeSha256"],
        code_key,
        tuple(ref["Ref"] for ref in function["Properties"].get("Layers", [])),
        layer_key,
        function_zip,
        layer_zip,
    )


def answer(deployed: Deployed, folder: Path) -> dict:
    """The handler's answer from the deployed zips: the function's at /var/task, the layer's at /opt."""
    zipfile.ZipFile(io.BytesIO(deployed.function_zip)).extractall(folder / "task")
    zipfile.ZipFile(io.BytesIO(deployed.layer_zip)).extractall(folder / "opt")
    result = call_handler(folder / "task", "api.handler.main", "3.12", {"name": "d"}, layers=[folder / "opt"])
    assert result.ok, result.result
    return result.result


@dataclass(frozen=True)
class History:
    first: Deployed
    edited: Deployed  # after the handler edit
    bumped: Deployed  # after orjson's version changed in uv.lock


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """moto_server patched as MOTO says, on a free loopback port, stopped by its pid at the end."""
    with running_moto([sys.executable, "-c", MOTO], tmp_path_factory.mktemp("layers-emulator")) as running:
        yield running


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, emulator: Emulator) -> History:
    emulator.reset()
    folder = tmp_path_factory.mktemp("layers") / "ws"
    shutil.copytree(FIXTURES / "ws", folder)
    (folder / "app.py").write_text(APP)
    (folder / "cdk.json").write_text(json.dumps({"app": "python app.py"}))
    checkout = Checkout(folder, emulator, tmp_path_factory.mktemp("layers-cache"))
    first = deploy(checkout)
    path, old, new = HANDLER
    text = (folder / path).read_text()
    assert old in text
    (folder / path).write_text(text.replace(old, new))
    edited = deploy(checkout)
    locked = (folder / "uv.lock").read_text()
    subprocess.run([Uv.locate(None).path, "lock", "--upgrade-package", "orjson==3.11.0"], cwd=folder, check=True)
    assert (folder / "uv.lock").read_text() != locked
    bumped = deploy(checkout)
    return History(first, edited, bumped)


def test_the_function_runs_with_its_layer_and_its_zip_holds_no_third_party_package(history: History, tmp_path: Path):
    names = zipfile.ZipFile(io.BytesIO(history.first.function_zip)).namelist()
    assert any(n.startswith("api/") for n in names) and any(n.startswith("common/") for n in names)
    assert not any(n.startswith("orjson") for n in names), names
    assert any(n.startswith("python/orjson/") for n in zipfile.ZipFile(io.BytesIO(history.first.layer_zip)).namelist())
    assert len(history.first.layer_ids) == 1
    assert answer(history.first, tmp_path) == {"message": "hello d", "version": "0.1.0"}


def test_a_handler_edit_changes_the_function_zip_and_not_its_layer(history: History, tmp_path: Path):
    before, after = history.first, history.edited
    assert after.code_sha256 != before.code_sha256 and after.code_key != before.code_key
    assert after.layer_key == before.layer_key and after.layer_ids == before.layer_ids
    assert answer(after, tmp_path) == {"message": "hello d", "v": 2, "version": "0.1.0"}


def test_a_dependency_bump_changes_the_layer_and_not_the_function_zip(history: History, tmp_path: Path):
    before, after = history.edited, history.bumped
    assert after.layer_key != before.layer_key and after.layer_ids != before.layer_ids
    assert after.code_sha256 == before.code_sha256 and after.code_key == before.code_key
    layer_names = zipfile.ZipFile(io.BytesIO(after.layer_zip)).namelist()
    assert any(n.startswith("python/orjson-3.11.0.dist-info/") for n in layer_names), layer_names[:20]
    assert answer(after, tmp_path)["v"] == 2
