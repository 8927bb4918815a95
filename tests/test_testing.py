"""cdk_uv_aspect.testing: an app's own unit tests, which build stacks without app.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Stack
from aws_cdk.assertions import Template
from constructs import Construct
from helpers import add_function, call_handler, staged_asset

from cdk_uv_aspect import UvBundlingAspect
from cdk_uv_aspect._placeholder import PLACEHOLDER_BUCKET
from cdk_uv_aspect.testing import with_uv_aspect


class ShopStack(Stack):
    """A stack as an app defines it: app.py adds the aspect, the stack does not."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        add_function(self, "Api", "api")


def the_code(template: Template) -> dict:
    (resource,) = template.find_resources("AWS::Lambda::Function").values()
    return resource["Properties"]["Code"]


def test_a_unit_test_without_the_aspect_fails_on_uv_code(cache_dir: Path):
    """The problem: Template.from_stack on a stack with UvCode() and no aspect fails, saying what is missing."""
    with pytest.raises(RuntimeError, match="Shop/Api uses UvCode\\(\\) but no UvBundlingAspect built it"):
        Template.from_stack(ShopStack(App(), "Shop"))


@pytest.mark.seconds
def test_skipping_bundling_needs_no_aspect(cache_dir: Path):
    """The CDK's own switch, as `cdk ls` sets it: nothing is built, and the template keeps the placeholder."""
    app = App(context={"aws:cdk:bundling-stacks": []})
    assert the_code(Template.from_stack(ShopStack(app, "Shop")))["S3Bucket"] == PLACEHOLDER_BUCKET
    assert not cache_dir.exists()


@pytest.mark.slow
def test_with_uv_aspect_builds_the_functions_of_a_unit_tests_app(workspace: Path, cache_dir: Path):
    """One call gives the test's app the aspect (with app.py's options): the stack's function gets its real asset."""
    app = App()
    assert with_uv_aspect(app, workspace=workspace, bytecode=False) is app
    code = the_code(Template.from_stack(ShopStack(app, "Shop")))
    asset = staged_asset(app.outdir, code)
    assert (asset / "api" / "handler.py").is_file() and (asset / "common" / "__init__.py").is_file()
    assert not list(asset.rglob("*.pyc"))  # the option reached the aspect


@pytest.mark.slow
def test_with_uv_aspect_leaves_functions_another_aspect_built(workspace: Path, cache_dir: Path):
    """A stack that adds its own aspect, in an app given one too: built once, by the first, and it answers."""

    class SelfBundlingStack(ShopStack):
        def __init__(self, scope: Construct, id: str) -> None:
            super().__init__(scope, id)
            Aspects.of(self).add(UvBundlingAspect(workspace=workspace))

    app = with_uv_aspect(App(), workspace=workspace)
    stack = SelfBundlingStack(app, "Shop")
    code = the_code(Template.from_stack(stack))
    assert [c.node.id for c in stack.node.find_all() if c.node.id == "UvAsset"] == ["UvAsset"]
    answer = call_handler(staged_asset(app.outdir, code), "api.handler.main", "3.12", {"name": "unit"})
    assert answer.ok and answer.result["message"] == "hello unit", answer.result
