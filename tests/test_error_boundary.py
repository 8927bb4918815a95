"""One error boundary: every failure of the cdk-uv command names what failed and why (a file by its path), with
exit code 2 for bad input; a file that can't be written after a build fails the synth naming the construct."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Stack
from helpers import add_function, assert_complete_error

from cdk_uv_aspect import UvBundlingAspect
from cdk_uv_aspect._cli import main

STACK = "aws:cloudformation:stack"


def assembly(folder: Path, template: str = "{}", **artifact: object) -> Path:
    """A cloud assembly with one stack, as the CDK lays it out; ``template``: its template's text."""
    folder.mkdir(parents=True, exist_ok=True)
    stack = {"type": "aws:cloudformation:stack", "properties": {"templateFile": "Stack.template.json"}, **artifact}
    (folder / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": {"Stack": stack}}))
    (folder / "Stack.template.json").write_text(template)
    return folder


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["report", "invoke"])
def test_a_template_that_is_not_json_is_named_with_the_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
):
    """It said `cdk-uv: JSONDecodeError: Expecting value...`, naming no file, with exit code 1."""
    out = assembly(tmp_path / "cdk.out", template="{not json")
    code, err = run(capsys, command, str(out), *(["Fn"] if command == "invoke" else []))
    assert code == 2
    assert f"{out / 'Stack.template.json'} can't be read: it is not JSON (Expecting property name" in err
    assert "fix:" in err and "cdk synth" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        (lambda out: (out / "manifest.json").write_text("[1, 2"), "manifest.json can't be read: it is not JSON"),
        (lambda out: (out / "Stack.template.json").unlink(), "Stack.template.json can't be read: No such file"),
        (lambda out: (out / "Stack.template.json").write_bytes(b"\xff\xfe{"), "it is not UTF-8 text"),
        (
            lambda out: (out / "manifest.json").write_text(
                '{"artifacts": {"Stack": {"type": "aws:cloudformation:stack"}}}'
            ),
            "manifest.json can't be read: it is not laid out as the CDK writes it (no 'templateFile')",
        ),
        (
            lambda out: (out / "Stack.template.json").write_text('{"Resources": {"Fn": "a string"}}'),
            "Stack.template.json can't be read: it is not laid out as the CDK writes it (AttributeError",
        ),
        (lambda out: (out / "Stack.assets.json").write_text("{"), "Stack.assets.json can't be read: it is not JSON"),
    ],
)
def test_every_file_of_an_assembly_that_cannot_be_read_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken, says: str
):
    out = assembly(tmp_path / "cdk.out")
    broken(out)
    code, err = run(capsys, "report", str(out))
    assert code == 2 and says in err, err
    assert str(out) in err and "Traceback" not in err


def test_a_metadata_file_that_cannot_be_read_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = assembly(tmp_path / "cdk.out", additionalMetadataFile="Stack.metadata.json")
    (out / "Stack.metadata.json").write_text('{"/Stack/Fn": 3}')
    code, err = run(capsys, "report", str(out))
    assert code == 2 and f"{out / 'Stack.metadata.json'} can't be read: it is not laid out as the CDK" in err


def test_a_setting_that_cannot_be_used_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """A $CDK_UV_... variable with a value that means nothing: exit code 2, the variable named."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CDK_UV_REBUILD", "maybe")
    code, err = run(capsys, "build", "api")
    assert code == 2 and "$CDK_UV_REBUILD is 'maybe'" in err


def test_the_command_names_its_own_flags_in_a_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """No uv.lock here: the fix says --workspace (a flag of the command), not UvOptions(workspace=...), and
    the folder of the cdk-uv script is not taken for an app's folder."""
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, "build", "api")
    assert code == 2
    assert f"no uv.lock in {tmp_path}" in err and "--workspace <folder with uv.lock>" in err
    assert "UvOptions" not in err and "app's folder" not in err


def test_an_app_is_told_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same failure in an app names UvOptions(workspace=...)."""
    from cdk_uv_aspect._errors import WorkspaceError
    from cdk_uv_aspect._workspace import Workspace

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # an app run as `python -c`
    with pytest.raises(WorkspaceError) as error:
        Workspace.find()
    assert "UvOptions(workspace=<folder with uv.lock>)" in error.value.fix and "--workspace" not in error.value.fix


@pytest.mark.slow
def test_an_sbom_that_cannot_be_copied_into_the_assembly_fails_the_synth_naming_the_function(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """After a build, the SBOM is copied into cdk.out/uv-sbom/: a file in that place made the synth end in a
    raw FileExistsError through jsii; it is an error naming the construct, the file and what to do."""
    out = tmp_path / "cdk.out"
    out.mkdir()
    (out / "uv-sbom").write_text("in the way")
    app = App(outdir=str(out))
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api")
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    with pytest.raises(RuntimeError) as error:
        app.synth()
    message = str(error.value)
    assert_complete_error(message, construct="Stack/Api", package="api", target="python3.12", fix="remove or rename")
    assert str(out / "uv-sbom") in message and "FileExistsError" not in message
    assert os.path.isfile(out / "uv-sbom")
