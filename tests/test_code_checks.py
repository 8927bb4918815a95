"""What the bundling aspect knows after a build: a handler it does not have, or code the runtime can't parse."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match
from helpers import add_function, assert_complete_error, call_handler, synth_app, synth_error

from cdk_uv_aspect._asset import compile_bytecode
from cdk_uv_aspect._errors import CodeError
from cdk_uv_aspect._failure import Failure
from cdk_uv_aspect._runner import Runner
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import Uv
from cdk_uv_aspect._workspace import Workspace

pytestmark = pytest.mark.slow

AL2023_X86 = "python3.12 x86_64 (Amazon Linux 2023, glibc 2.34)"
AL2_X86 = "python3.11 x86_64 (Amazon Linux 2, glibc 2.26)"


def test_a_misspelled_handler_module_is_refused_at_synth(workspace: Path, cache_dir: Path):
    """Without the policy checks: the handler's module is not in the build; the message says what is."""
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api", handler="api.handlr.main"))
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="fix the function's handler",
        also=[
            'handler "api.handlr.main" is not in the build of package api',
            "did you mean api.handler?",
            "Lambda would fail every invocation with Runtime.ImportModuleError",
        ],
    )
    assert message.count("] cdk-uv-aspect: ") == 1  # once: not again as "UvCode() but no aspect built it"


def test_a_handler_naming_a_function_the_module_lacks_is_refused_at_synth(workspace: Path, cache_dir: Path):
    """The module is there, the function is not: the error lists what the module defines."""
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api", handler="api.handler.mian"))
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="fix the function's handler",
        also=[
            "api/handler.py defines no 'mian'",
            "it defines: cli, main",
            "did you mean main?",
            "Lambda would fail every invocation with Runtime.HandlerNotFound",  # as Lambda says, not ImportModuleError
        ],
    )


def test_a_handler_that_a_layer_may_bring_is_a_warning(workspace: Path, cache_dir: Path):
    """A function with layers (a wrapper like Datadog's names a module of its layer): built, with a warning."""

    def populate(stack: Stack) -> None:
        fn = add_function(stack, "Api", "api", handler="datadog_lambda.handler.handler")
        fn.add_layers(lambda_.LayerVersion.from_layer_version_arn(stack, "Dd", "arn:aws:lambda:us-east-1:1:layer:x:1"))

    _, stack = synth_app(workspace, populate)
    said = Match.string_like_regexp(r'handler "datadog_lambda\.handler\.handler" is not in the build.*layers')
    Annotations.from_stack(stack).has_warning("/Stack/Api", said)


def test_newer_syntax_in_the_workspace_code_refuses_the_build_for_an_older_runtime(workspace: Path, cache_dir: Path):
    """`type Alias = int` (Python 3.12) in a handler built for python3.11: refused with file, line and Python;
    built for python3.12, it compiles and answers."""
    handler = workspace / "packages" / "api" / "src" / "api" / "handler.py"
    handler.write_text(handler.read_text() + "\ntype Alias = int\n")
    line = handler.read_text().splitlines().index("type Alias = int") + 1
    message = synth_error(workspace, lambda s: add_function(s, "Old", "api", runtime=lambda_.Runtime.PYTHON_3_11))
    assert_complete_error(
        message,
        construct="Stack/Old",
        package="api",
        target=AL2_X86,
        fix="use syntax Python 3.11 accepts",
        also=[f"Python 3.11, the runtime's, can't compile packages/api/src/api/handler.py, line {line}"],
    )
    app, _ = synth_app(workspace, lambda s: add_function(s, "New", "api"))
    (asset,) = [p for p in Path(app.outdir).glob("asset.*") if (p / "api").is_dir()]
    assert list((asset / "api" / "__pycache__").glob("handler.cpython-312.pyc"))
    assert call_handler(asset, "api.handler.main", "3.12").ok


def test_a_third_party_file_that_does_not_compile_is_a_warning(workspace: Path, tmp_path: Path):
    """Some wheels ship files their Python can't compile (never imported): the build goes on and says so;
    the same file in a package of the workspace refuses it."""
    site = tmp_path / "asset"
    (site / "vendor").mkdir(parents=True)
    (site / "vendor" / "py2.py").write_text("print 'hello'\n")
    (site / "vendor-1.0.dist-info").mkdir()
    (site / "vendor-1.0.dist-info" / "RECORD").write_text("vendor/py2.py,,\n")
    ws = Workspace.find(workspace)
    target = Target("3.12", "x86_64")
    failure = Failure("api", target, ws.root)
    said: list[str] = []
    uv = Uv.locate(None).path
    compile_bytecode(site, uv, Runner(), failure, ws.closure("api"), said.append)
    assert len(said) == 1 and "1 file(s) of third-party packages" in said[0] and "vendor/py2.py, line 1" in said[0]

    (site / "api-0.1.0.dist-info").mkdir()
    (site / "api-0.1.0.dist-info" / "RECORD").write_text("api/old.py,,\n")
    (site / "api").mkdir()
    (site / "api" / "old.py").write_text("x = 1\nprint 'old'\n")
    with pytest.raises(CodeError) as error:
        compile_bytecode(site, uv, Runner(), failure, ws.closure("api"), said.append)
    assert "can't compile api/old.py, line 2" in str(error.value)


def test_the_bytecode_check_reads_every_file_name_as_compileall_writes_it(workspace: Path, tmp_path: Path):
    """A clean folder: every .py file gets its .pyc, and nothing is reported."""
    site = tmp_path / "asset"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    said: list[str] = []
    failure = Failure("api", Target("3.11", "x86_64"), workspace)
    compile_bytecode(site, Uv.locate(None).path, Runner(), failure, (), said.append)
    assert said == []
    assert [p.name for p in (site / "pkg" / "__pycache__").iterdir()] == ["__init__.cpython-311.pyc"]
