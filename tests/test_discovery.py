"""No marker is ignored silently and no function is missed: wrappers the CDK ships are built through
their function, Lambda@Edge functions are built for Edge, and markers that can't be honoured are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Environment, NestedStack, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_lambda as lambda_
from helpers import add_function, assert_api_asset, assert_complete_error, staged_asset, synth_error

from cdk_uv_aspect import UvBundlingAspect, UvCode, UvPolicyChecks, mark_package

pytestmark = pytest.mark.slow

US_EAST_1 = Environment(account="123456789012", region="us-east-1")
EU_WEST_1 = Environment(account="123456789012", region="eu-west-1")
CDK_UV = str(Path(sys.executable).with_name("cdk-uv"))


def synth(workspace: Path, populate, *, outdir: Path, aspect_on_app: bool = True, checks: bool = False) -> App:
    app = App(outdir=str(outdir))
    stacks = populate(app)
    for scope in [app] if aspect_on_app else stacks:
        Aspects.of(scope).add(UvBundlingAspect(workspace=workspace))
        if checks:
            Aspects.of(scope).add(UvPolicyChecks())
    app.synth()
    return app


def templates(outdir: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in outdir.glob("*.template.json")}


def functions_in(outdir: Path) -> dict[str, dict]:
    """Logical id -> properties of every Lambda function of every template in the assembly."""
    return {
        lid: r["Properties"]
        for t in templates(outdir).values()
        for lid, r in t.get("Resources", {}).items()
        if r["Type"] == "AWS::Lambda::Function"
    }


# --- SingletonFunction --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["folder", "UvCode"])
def test_a_marked_singleton_function_is_built(workspace: Path, cache_dir: Path, tmp_path: Path, code: str):
    """A marked SingletonFunction given Code.from_asset(folder) deployed the raw folder, and one given
    UvCode() failed with "mark it": both are built through the function they wrap."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "unbuilt.py").write_text("")

    def populate(app: App) -> list[Stack]:
        stack = Stack(app, "Stack")
        singleton = lambda_.SingletonFunction(
            stack,
            "Singleton",
            uuid="5f1c6a4e-uv",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="api.handler.main",
            code=lambda_.Code.from_asset(str(raw)) if code == "folder" else UvCode(),
        )
        mark_package(singleton, "api")
        return [stack]

    out = tmp_path / "out"
    synth(workspace, populate, outdir=out)
    (props,) = functions_in(out).values()
    asset = staged_asset(out, props["Code"])
    assert_api_asset(asset)
    assert not (asset / "unbuilt.py").exists()


def test_two_singletons_of_one_function_marked_with_different_packages_are_refused(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        for name, package in (("One", "api"), ("Two", "app")):
            singleton = lambda_.SingletonFunction(
                stack, name, uuid="same", runtime=lambda_.Runtime.PYTHON_3_12, handler="h.main", code=UvCode()
            )
            mark_package(singleton, package)

    message = synth_error(workspace, populate)
    assert_complete_error(
        message,
        construct="Stack/SingletonLambdasame",
        package=None,
        target=None,
        fix="keep one marker",
        also=["Stack/One: 'api'", "Stack/Two: 'app'"],
    )


# --- markers that would be ignored ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["alias", "version", "stack"])
def test_a_marker_on_something_that_cannot_be_built_is_refused_by_path(workspace: Path, cache_dir: Path, where: str):
    """An Alias, a Version, a Stack: a marker there was ignored, and the function deployed unbuilt."""

    def populate(stack: Stack) -> None:
        fn = add_function(stack, "Fn", None, code=lambda_.Code.from_inline("x"))
        version = fn.current_version
        alias = lambda_.Alias(stack, "Live", alias_name="live", version=version)
        mark_package({"alias": alias, "version": version, "stack": stack}[where], "api")

    path = {"alias": "Stack/Live", "version": "Stack/Fn/CurrentVersion", "stack": "Stack"}[where]
    message = synth_error(workspace, populate)
    assert_complete_error(message, construct=path, package=None, target=None, fix="put the marker on the")


def test_a_second_marker_naming_another_package_is_refused(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        fn = add_function(stack, "Fn", "api")
        fn.node.add_metadata("uv", "app")

    message = synth_error(workspace, populate)
    assert_complete_error(message, construct="Stack/Fn", package=None, target=None, fix="keep one marker")
    assert "'api'" in message and "'app'" in message


def test_the_same_marker_twice_is_one_marker(workspace: Path, cache_dir: Path, tmp_path: Path):
    def populate(app: App) -> list[Stack]:
        stack = Stack(app, "Stack")
        fn = add_function(stack, "Fn", "api")
        fn.node.add_metadata("uv", {"package": "API"})  # the same package, written another way
        return [stack]

    out = tmp_path / "out"
    synth(workspace, populate, outdir=out)
    (props,) = functions_in(out).values()
    assert_api_asset(staged_asset(out, props["Code"]))


# --- Lambda@Edge --------------------------------------------------------------------------------------


def edge_function(stack: Stack, **props) -> cloudfront.experimental.EdgeFunction:
    edge = cloudfront.experimental.EdgeFunction(
        stack,
        "Edge",
        runtime=props.pop("runtime", lambda_.Runtime.PYTHON_3_12),
        handler="api.handler.main",
        code=UvCode(),
        **props,
    )
    mark_package(edge, "api")
    return edge


@pytest.mark.parametrize(
    ("env", "aspect_on_app"),
    [(US_EAST_1, True), (EU_WEST_1, True), (EU_WEST_1, False)],
    ids=["us-east-1", "cross-region", "cross-region-aspect-on-the-stack"],
)
def test_a_marked_edge_function_is_built(
    workspace: Path, cache_dir: Path, tmp_path: Path, env: Environment, aspect_on_app: bool
):
    """In us-east-1 the function is the EdgeFunction's child; elsewhere it lives in a stack of its own,
    which an aspect added to the user's stack never walks: it is built and swapped all the same."""

    def populate(app: App) -> list[Stack]:
        stack = Stack(app, "Site", env=env)
        edge_function(stack)
        return [stack]

    out = tmp_path / "out"
    synth(workspace, populate, outdir=out, aspect_on_app=aspect_on_app, checks=True)
    # Cross-region, the CDK adds a Node.js function that reads the function's ARN in the other region.
    (props,) = [p for p in functions_in(out).values() if p.get("Runtime", "").startswith("python")]
    assert props["Runtime"] == "python3.12" and props.get("Architectures", ["x86_64"]) == ["x86_64"]
    assert_api_asset(staged_asset(out, props["Code"]))
    if aspect_on_app:  # checks added to the user's stack judge that stack's functions only
        (row,) = [r for r in json.loads((out / "uv-policy-report.json").read_text())["functions"] if r["package"]]
        assert row["rules"]["uv-edge-limits"]["result"] == "passed", row["rules"]["uv-edge-limits"]


def test_an_edge_function_on_arm64_is_refused(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        edge_function(stack, architecture=lambda_.Architecture.ARM_64)

    message = synth_error(workspace, lambda s: populate(Stack(s.node.scope, "Site", env=US_EAST_1)))
    assert_complete_error(message, construct="Site/Edge/Fn", package="api", target=None, fix="X86_64")
    assert "Lambda@Edge runs x86_64" in message


def test_environment_variables_on_an_edge_function_fail_the_policy_checks(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """Added after the EdgeFunction was made (the CDK checks only those present when it is made)."""

    def populate(app: App) -> list[Stack]:
        stack = Stack(app, "Site", env=US_EAST_1)
        edge_function(stack).lambda_.add_environment("TABLE", "orders")
        return [stack]

    out = tmp_path / "out"
    synth(workspace, populate, outdir=out, checks=True)
    (row,) = [r for r in json.loads((out / "uv-policy-report.json").read_text())["functions"] if r["package"]]
    edge = row["rules"]["uv-edge-limits"]
    assert edge["result"] == "failed" and edge["level"] == "error" and "TABLE" in edge["message"], edge


# --- NestedStacks in reports ----------------------------------------------------------------------------


def test_report_and_invoke_see_functions_in_nested_stacks(workspace: Path, cache_dir: Path, tmp_path: Path):
    """`cdk-uv report` and `cdk-uv invoke` read nested stacks' templates (they said "no Lambda functions")."""

    def populate(app: App) -> list[Stack]:
        stack = Stack(app, "Parent")
        inner = NestedStack(stack, "Inner")
        add_function(inner, "Api", "api")
        deeper = NestedStack(inner, "Deeper")
        add_function(deeper, "App", "app", handler="main.handler")
        return [stack]

    out = tmp_path / "out"
    synth(workspace, populate, outdir=out)
    report = subprocess.run(
        [CDK_UV, "report", str(out), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {r["function"]: r for r in json.loads(report.stdout)}
    assert set(rows) == {"Parent/Inner/Api", "Parent/Inner/Deeper/App"}
    assert rows["Parent/Inner/Api"]["package"] == "api" and rows["Parent/Inner/Api"]["assetDir"]
    invoked = subprocess.run(
        [CDK_UV, "invoke", str(out), "Deeper/App"],
        capture_output=True,
        text=True,
    )
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)
