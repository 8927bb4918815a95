"""The bundling aspect on synthesized apps: which asset each function gets, and when nothing is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk.assertions import Annotations, Match, Template
from helpers import (
    add_function,
    assert_api_asset,
    call_handler,
    function_codes,
    staged_asset,
    synth_app,
    synth_error,
    tree_digest,
)

from cdk_uv_aspect import UvBundlingAspect, UvCode
from cdk_uv_aspect._assembly import functions

pytestmark = [pytest.mark.slow, pytest.mark.oldest_cdk]


def test_marked_function_gets_an_asset_keyed_by_its_content(workspace: Path, cache_dir: Path, tmp_path: Path):
    """The function's S3 key is the hash of the built folder, which holds the handler that answers."""
    out = tmp_path / "out"
    _, stack = synth_app(workspace, lambda s: add_function(s, "Api", "api"), outdir=out)
    (code,) = function_codes(stack).values()
    asset_hash = code["S3Key"].removesuffix(".zip")
    staged = out / f"asset.{asset_hash}"
    assert staged.is_dir()
    answer = call_handler(staged, "api.handler.main", "3.12", {"name": "x"})
    assert answer.ok, answer.result
    assert answer.result == {"message": "hello x", "version": "0.1.0"}


def test_distinct_packages_and_targets_get_distinct_assets(workspace: Path, cache_dir: Path):
    """Never one asset for two packages or two targets (the CDK's in-process bundling cache trap)."""

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        add_function(stack, "ApiArm", "api", architecture=lambda_.Architecture.ARM_64)
        add_function(stack, "Api311", "api", runtime=lambda_.Runtime.PYTHON_3_11)
        add_function(stack, "App", "app", handler="main.handler")

    _, stack = synth_app(workspace, populate)
    keys = [code["S3Key"] for code in function_codes(stack).values()]
    assert len(set(keys)) == 4


def test_functions_of_one_package_and_target_share_one_build(workspace: Path, cache_dir: Path):
    """Two functions of the same package and target: one build, one asset."""

    def populate(stack: Stack) -> None:
        add_function(stack, "One", "api")
        add_function(stack, "Two", "api")

    _, stack = synth_app(workspace, populate)
    assert len({c["S3Key"] for c in function_codes(stack).values()}) == 1
    assert len(list((cache_dir / "builds").iterdir())) == 1


def test_functions_of_one_stack_share_one_asset_and_each_carries_its_metadata(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """As functions given one Code.from_asset: one asset per build in each stack, under the first function;
    every function's resource still names the staged folder for SAM and `cdk-uv report`."""
    app = App(outdir=str(tmp_path / "out"), context={"aws:cdk:enable-asset-metadata": True})
    stacks = [Stack(app, "One"), Stack(app, "Two")]
    for stack in stacks:
        add_function(stack, "A", "api")
        add_function(stack, "B", "api")
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    app.synth()
    for stack in stacks:
        assets = [c.node.path for c in stack.node.find_all() if isinstance(c, s3_assets.Asset)]
        assert assets == [f"{stack.stack_name}/A/UvAsset"]
        resources = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
        assert len({json.dumps(r["Properties"]["Code"], sort_keys=True) for r in resources.values()}) == 1
        staged = {r["Metadata"]["aws:asset:path"] for r in resources.values()}
        assert len(staged) == 1 and (tmp_path / "out" / staged.pop()).is_dir()
        built = [e.data for fn in ("A", "B") for e in stack.node.find_child(fn).node.metadata if e.type == "uv:build"]
        assert [b["asset"] for b in built] == [f"{stack.stack_name}/A/UvAsset"] * 2


def test_resynth_gives_the_same_template(workspace: Path, cache_dir: Path):
    """Unchanged code: the same asset hash on the next synth, so nothing is redeployed."""
    _, first = synth_app(workspace, lambda s: add_function(s, "Api", "api"))
    _, second = synth_app(workspace, lambda s: add_function(s, "Api", "api"))
    assert function_codes(first) == function_codes(second)


def test_unmarked_function_is_left_alone(workspace: Path, cache_dir: Path):
    """Only marked functions are touched."""

    def populate(stack: Stack) -> None:
        add_function(stack, "Plain", None, code=lambda_.Code.from_inline("def h(e, c): return 1"))

    _, stack = synth_app(workspace, populate)
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function", {"Code": {"ZipFile": "def h(e, c): return 1"}}
    )
    assert not (cache_dir / "builds").exists()


def test_raw_metadata_marker_works_like_the_helper(workspace: Path, cache_dir: Path):
    """`fn.node.add_metadata("uv", "api")` is the whole contract."""

    def populate(stack: Stack) -> None:
        fn = add_function(stack, "Api", None)
        fn.node.add_metadata("uv", "api")

    app, stack = synth_app(workspace, populate)
    entries = app.synth().get_stack_by_name("Stack").find_metadata_by_type("uv")
    assert [(e.path, e.data) for e in entries] == [("/Stack/Api", "api")]
    assert_api_asset(staged_asset(app.outdir, next(iter(function_codes(stack).values()))))


def test_retrofitted_asset_code_is_replaced_with_a_warning(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A marked function created with Code.from_asset gets the uv-built code, and a warning."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "index.py").write_text("def main(e, c): return 'old'\n")
    holder: list[Stack] = []

    def populate(stack: Stack) -> None:
        holder.append(stack)
        add_function(stack, "Api", "api", code=lambda_.Code.from_asset(str(old)))

    app, stack = synth_app(workspace, populate)
    (code,) = function_codes(stack).values()
    Annotations.from_stack(stack).has_warning(
        "/Stack/Api", Match.string_like_regexp("still stages and uploads it.*UvCode")
    )
    asset = staged_asset(app.outdir, code)
    assert_api_asset(asset)
    assert not (asset / "index.py").exists(), "the function still deploys the code it was created with"


def test_placeholder_without_aspect_fails_synthesis(cache_dir: Path):
    """UvCode() that no aspect replaced stops synthesis instead of deploying a dangling placeholder; a
    marked function is told to add the aspect, an unmarked one to mark it too."""
    app = App()
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api")
    add_function(stack, "Unmarked", None)
    with pytest.raises(RuntimeError) as error:
        app.synth()
    marked, unmarked = str(error.value).split("Stack/Unmarked uses UvCode()")
    assert "Stack/Api uses UvCode() but no UvBundlingAspect built it. It is marked" in marked
    assert "Mark it" not in marked and "Aspects.of(app).add(UvBundlingAspect())" in marked
    assert 'Mark it (fn.node.add_metadata("uv", "<package>"))' in unmarked


def test_function_in_a_nested_stage_without_the_aspect_is_an_error(workspace: Path, cache_dir: Path):
    """Aspects do not cross Stage boundaries: a marked function there fails synth, naming the Stage fix."""
    app = App()
    stage = Stage(app, "Prod")
    add_function(Stack(stage, "Svc"), "Api", "api", code=lambda_.Code.from_inline("x"))
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    with pytest.raises(RuntimeError) as error:
        app.synth()
    assert "Prod/Svc/Api" in str(error.value)
    assert "Aspects.of(self).add(UvBundlingAspect())" in str(error.value)


def test_aspect_added_inside_a_stage_builds_its_functions(workspace: Path, cache_dir: Path):
    """The documented pattern for CDK Pipelines: the aspect added in the Stage."""
    app = App()
    stage = Stage(app, "Prod")
    svc = Stack(stage, "Svc")
    add_function(svc, "Api", "api")
    Aspects.of(stage).add(UvBundlingAspect(workspace=workspace))
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    app.synth()
    (code,) = function_codes(svc).values()
    assert_api_asset(staged_asset(app.outdir, code))  # a nested Stage stages its assets at the root


def test_no_build_when_the_stack_needs_no_bundling(workspace: Path, cache_dir: Path):
    """`cdk ls` / `deploy --exclusively` of another stack: nothing is built, synthesis still passes."""
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api")
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    app.synth()
    assert not (cache_dir / "builds").exists()


def test_options_accept_a_model_or_keywords_but_not_both(workspace: Path):
    from cdk_uv_aspect import UvOptions

    assert UvBundlingAspect(bytecode=False).options.bytecode is False
    assert UvBundlingAspect(UvOptions(bytecode=False)).options.bytecode is False
    with pytest.raises(TypeError):
        UvBundlingAspect(UvOptions(), bytecode=False)


def test_uv_code_creates_no_asset(cache_dir: Path):
    """The placeholder registers nothing with the synthesizer."""
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api", code=UvCode())
    assembly = app.synth()
    assert assembly.get_stack_by_name("Stack").assets == []


# --- a Python runtime newer than this library -------------------------------------------------------


def test_a_runtime_this_library_does_not_know_builds_once_its_os_is_declared(workspace: Path, cache_dir: Path):
    """This library before it knew python3.13 (its line taken out of the table): the function is refused,
    naming new_runtimes; declared as running on Amazon Linux 2023, it gets the very build a known
    python3.13 gets (bytecode for 3.13, wheels for glibc 2.34), and its handler answers with Python 3.13."""
    from cdk_uv_aspect import _lambda

    def populate(stack: Stack) -> None:
        # Not Runtime.PYTHON_3_13: the oldest aws-cdk-lib we support has no constant for it.
        add_function(stack, "Api", "api", runtime=lambda_.Runtime("python3.13", lambda_.RuntimeFamily.PYTHON))

    app, stack = synth_app(workspace, populate)
    known = staged_asset(app.outdir, next(iter(function_codes(stack).values())))

    table = dict(_lambda.RUNTIMES)
    del _lambda.RUNTIMES["python3.13"]
    try:
        message = synth_error(workspace, populate)
        assert "runtime python3.13 is not one cdk-uv-aspect knows" in message
        assert 'UvBundlingAspect(new_runtimes={"python3.13": "al2023"})' in message
        app, stack = synth_app(workspace, populate, new_runtimes={"python3.13": "al2023"})
    finally:  # the table as it was, in its order
        _lambda.RUNTIMES.clear()
        _lambda.RUNTIMES.update(table)
    declared = staged_asset(app.outdir, next(iter(function_codes(stack).values())))
    assert tree_digest(declared) == tree_digest(known)
    answer = call_handler(declared, "api.handler.main", "3.13", {"name": "new"})
    assert answer.ok, answer.result


def test_a_runtime_aws_cdk_lib_has_no_constant_for_is_built_for_the_declared_os(workspace: Path, cache_dir: Path):
    """Runtime("python3.15", RuntimeFamily.PYTHON), as the CDK documents for runtimes it does not list yet:
    built for Python 3.15 on the OS declared (no Python 3.15 here: no bytecode), and recorded so."""
    python315 = lambda_.Runtime("python3.15", lambda_.RuntimeFamily.PYTHON)

    def populate(stack: Stack) -> None:
        add_function(stack, "App", "app", handler="main.handler", runtime=python315)

    out = workspace.parent / "out"
    synth_app(workspace, populate, outdir=out, bytecode=False, new_runtimes={"python3.15": "al2023"})
    (fn,) = functions(out)
    assert fn.build is not None and fn.build.target == "python3.15-x86_64"
    assert fn.asset_dir is not None and (fn.asset_dir / "main.py").is_file()
    assert list(fn.asset_dir.glob("common-0.1.0.dist-info"))  # its workspace dependency, installed for 3.15
