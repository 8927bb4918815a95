"""The deploy loop with a dependencies layer: the real CDK CLI deploys a function of the fixture workspace,
its third-party packages in a layer (``UvOptions(dependencies_layer=True)``), to the local AWS emulator
(tests/emulator.py: the session's moto_server and the deploy timeline tests/test_deploy.py uses too). A
handler edit uploads and deploys a new function zip and leaves the layer as it was; a dependency bump in
uv.lock publishes a new layer version and leaves the function's zip as it was. The zips read back from the
bucket answer, composed as Lambda composes them.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from emulator import Checkout, Emulator, Step, sha256_b64, timeline
from helpers import FIXTURES, call_handler

from cdk_uv_aspect._uv import Uv

pytestmark = pytest.mark.slow

STACK = "UvLayers"
API = f"{STACK}/Api"
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
HANDLER = ("packages/api/src/api/handler.py", '"version": importlib', '"v": 2, "version": importlib')


def answer(step: Step, folder: Path) -> dict:
    """The handler's answer from the deployed zips: the function's at /var/task, its layer's at /opt."""
    (layer,) = step.functions[API].layers
    zipfile.ZipFile(io.BytesIO(step.zips[API])).extractall(folder / "task")
    zipfile.ZipFile(io.BytesIO(step.layer_zips[layer])).extractall(folder / "opt")
    result = call_handler(folder / "task", "api.handler.main", "3.12", {"name": "d"}, layers=[folder / "opt"])
    assert result.ok, result.result
    return result.result


def layer_zip(step: Step) -> bytes:
    (layer,) = step.functions[API].layers
    return step.layer_zips[layer]


@dataclass(frozen=True)
class History:
    first: Step
    edited: Step  # after the handler edit
    bumped: Step  # after orjson's version changed in uv.lock


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, emulator: Emulator) -> History:
    """The deploys, in order: first, after a handler edit, after a bump of orjson in uv.lock."""
    folder = tmp_path_factory.mktemp("layers") / "ws"
    shutil.copytree(FIXTURES / "ws", folder)
    (folder / "app.py").write_text(APP)
    (folder / "cdk.json").write_text(json.dumps({"app": "python app.py"}))
    checkout = Checkout(folder, emulator, tmp_path_factory.mktemp("layers-cache"), stack=STACK)

    def edit_handler() -> None:
        path, old, new = HANDLER
        text = (folder / path).read_text()
        assert old in text
        (folder / path).write_text(text.replace(old, new))

    def bump_orjson() -> None:
        locked = (folder / "uv.lock").read_text()
        subprocess.run([Uv.locate(None).path, "lock", "--upgrade-package", "orjson==3.11.0"], cwd=folder, check=True)
        assert (folder / "uv.lock").read_text() != locked

    steps = timeline(checkout, {"first": None, "edited": edit_handler, "bumped": bump_orjson})
    return History(steps["first"], steps["edited"], steps["bumped"])


def test_the_function_runs_with_its_layer_and_its_zip_holds_no_third_party_package(history: History, tmp_path: Path):
    first = history.first
    assert first.functions[API].code_sha256 == sha256_b64(first.zips[API])
    names = zipfile.ZipFile(io.BytesIO(first.zips[API])).namelist()
    assert any(n.startswith("api/") for n in names) and any(n.startswith("common/") for n in names)
    assert not any(n.startswith("orjson") for n in names), names
    assert any(n.startswith("python/orjson/") for n in zipfile.ZipFile(io.BytesIO(layer_zip(first))).namelist())
    assert len(first.functions[API].layers) == 1
    assert answer(first, tmp_path) == {"message": "hello d", "version": "0.1.0"}


def test_a_handler_edit_changes_the_function_zip_and_not_its_layer(history: History, tmp_path: Path):
    before, after = history.first.functions[API], history.edited.functions[API]
    assert after.code_sha256 != before.code_sha256 and after.s3_key != before.s3_key
    assert after.layers == before.layers and layer_zip(history.edited) == layer_zip(history.first)
    assert answer(history.edited, tmp_path) == {"message": "hello d", "v": 2, "version": "0.1.0"}


def test_a_dependency_bump_changes_the_layer_and_not_the_function_zip(history: History, tmp_path: Path):
    before, after = history.edited.functions[API], history.bumped.functions[API]
    assert after.layers != before.layers and layer_zip(history.bumped) != layer_zip(history.edited)
    assert after.code_sha256 == before.code_sha256 and after.s3_key == before.s3_key
    layer_names = zipfile.ZipFile(io.BytesIO(layer_zip(history.bumped))).namelist()
    assert any(n.startswith("python/orjson-3.11.0.dist-info/") for n in layer_names), layer_names[:20]
    assert answer(history.bumped, tmp_path)["v"] == 2
