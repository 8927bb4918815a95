"""Only what runs, and what was chosen: dependency groups and extras per function, and leaving out the SDK the
Lambda runtime provides. Real uv, real synthesis, on tests/fixtures/groups: a workspace whose root is a
deployed package (shop) and lists a `lint` group in `default-groups`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from aws_cdk import Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match
from helpers import (
    FIXTURES,
    add_function,
    assert_complete_error,
    call_handler,
    function_codes,
    staged_asset,
    synth_app,
    synth_error,
)

from cdk_uv_aspect import UvCode, UvPolicyChecks, mark_package
from cdk_uv_aspect._cli import main as cdk_uv
from cdk_uv_aspect._uv import Uv

pytestmark = [pytest.mark.slow, pytest.mark.oldest_uv]

SHOP = "shop.handler.main"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A private copy of tests/fixtures/groups (packages shop, basket, cloud), locked."""
    dest = tmp_path / "groups"
    shutil.copytree(FIXTURES / "groups", dest)
    return dest


def distributions(asset: Path) -> list[str]:
    """The distributions installed in an asset, by name."""
    return sorted(p.name.split("-")[0].lower() for p in asset.glob("*.dist-info"))


def marked(stack: Stack, name: str, data: object, handler: str = SHOP) -> lambda_.Function:
    fn = lambda_.Function(stack, name, runtime=lambda_.Runtime.PYTHON_3_12, handler=handler, code=UvCode())
    fn.node.add_metadata("uv", data)
    return fn


def test_a_lint_group_in_default_groups_is_not_deployed(shop: Path, cache_dir: Path, tmp_path: Path):
    """`uv export --no-dev` (the recipe's) would deploy the root's lint tool; the asset holds the runtime
    closure only: the package and the workspace package it depends on, no dev or lint group."""
    uv = Uv.locate(None).path
    recipe = subprocess.run(
        [uv, "export", "--package", "shop", "--locked", "--no-dev", "--no-hashes", "--quiet"],
        cwd=shop,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pyflakes==" in recipe.stdout  # the fixture shows the trap: a lint tool in the recipe's closure

    out = tmp_path / "out"
    _, stack = synth_app(shop, lambda s: add_function(s, "Shop", "shop", handler=SHOP), outdir=out)
    (code,) = function_codes(stack).values()
    asset = staged_asset(out, code)
    assert distributions(asset) == ["basket", "shop"]
    assert not (asset / "pyflakes").exists() and not (asset / "iniconfig.py").exists()
    answer = call_handler(asset, SHOP, "3.12")
    assert answer.ok, answer.result
    assert answer.result == {"basket": "basket", "importable": []}


def test_extras_and_groups_chosen_per_function_are_in_that_function_only(
    shop: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """Three functions of one package: plain, with the extra `fast` (orjson), with the group `otel` (idna).
    Each asset holds what its function chose and nothing another chose; `cdk-uv report` shows the choices."""
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Plain", "shop", handler=SHOP)
        fast = lambda_.Function(stack, "Fast", runtime=lambda_.Runtime.PYTHON_3_12, handler=SHOP, code=UvCode())
        mark_package(fast, "shop", extras=["fast"])
        marked(stack, "Traced", {"package": "shop", "groups": ["otel"]})

    _, stack = synth_app(shop, populate, outdir=out)
    assets = {lid[:-8]: staged_asset(out, code) for lid, code in function_codes(stack).items()}
    assert len(set(assets.values())) == 3
    importable = {}
    for name, asset in assets.items():
        answer = call_handler(asset, SHOP, "3.12")
        assert answer.ok, answer.result
        importable[name] = answer.result["importable"]
    assert importable == {"Plain": [], "Fast": ["orjson"], "Traced": ["idna"]}

    capsys.readouterr()
    assert cdk_uv(["report", str(out), "--json"]) == 0
    rows = {r["function"]: (r["extras"], r["groups"]) for r in json.loads(capsys.readouterr().out)}
    assert rows == {"Stack/Plain": ([], []), "Stack/Fast": (["fast"], []), "Stack/Traced": ([], ["otel"])}
    assert cdk_uv(["report", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["function", "package", "target", "extras", "groups"]
    assert next(line for line in table if line.startswith("Stack/Traced")).split()[3:5] == ["-", "otel"]


def test_options_choose_for_every_function_and_markers_add_to_them(shop: Path, cache_dir: Path, tmp_path: Path):
    """UvOptions(groups=["otel"]) deploys the group with every function; a marker's extra adds to it."""
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Traced", "shop", handler=SHOP)
        marked(stack, "TracedFast", {"package": "shop", "extras": ["fast"]})

    _, stack = synth_app(shop, populate, outdir=out, groups=["otel"])
    found = {
        lid[:-8]: call_handler(staged_asset(out, c), SHOP, "3.12").result for lid, c in function_codes(stack).items()
    }
    assert found == {
        "Traced": {"basket": "basket", "importable": ["idna"]},
        "TracedFast": {"basket": "basket", "importable": ["orjson", "idna"]},
    }


@pytest.mark.parametrize(
    ("data", "options", "says"),
    [
        ({"package": "shop", "extras": ["fastest"]}, {}, "package shop has no extra 'fastest'; its extras: fast"),
        ({"package": "shop", "groups": ["tracing"]}, {}, "no dependency group 'tracing'; its groups: dev, lint, otel"),
        ("basket", {"groups": ["otel"]}, "no dependency group 'otel' (from UvOptions(groups=...)"),
    ],
)
def test_an_extra_or_group_the_package_lacks_is_refused_before_building(
    shop: Path, cache_dir: Path, data: object, options: dict, says: str
):
    """Named with the construct, the package, the target and what the package offers; nothing is built."""
    message = synth_error(shop, lambda s: marked(s, "Fn", data, handler="basket.main"), **options)
    package = data["package"] if isinstance(data, dict) else data
    assert_complete_error(
        message,
        construct="Stack/Fn",
        package=package,
        target="python3.12 x86_64",
        fix="choose among the package's",
        also=[says],
    )
    assert not (cache_dir / "builds").exists() or not any((cache_dir / "builds").iterdir())


def test_omitting_what_the_runtime_provides(shop: Path, cache_dir: Path, tmp_path: Path):
    """boto3, botocore and what only they need leave the asset; python-dateutil (the package's own
    dependency) and six (which it needs) stay. The build records what it left out, and the policy check
    warns that the runtime's SDK may be older than the locked one. Without the option, boto3 is deployed."""
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Cloud", "cloud", handler="cloud.handler.main")
        Aspects.of(stack).add(UvPolicyChecks(report=None))

    _, stack = synth_app(shop, populate, outdir=out, omit_runtime_provided=True, bytecode=False)
    (code,) = function_codes(stack).values()
    asset = staged_asset(out, code)
    assert distributions(asset) == ["cloud", "python_dateutil", "six"]
    answer = call_handler(asset, "cloud.handler.main", "3.12")
    assert answer.ok and answer.result == {"dateutil": "2.9.0.post0"}, answer.result
    (built,) = [m.data for m in stack.node.find_child("Cloud").node.metadata if m.type == "uv:build"]
    assert built["omitted"] == {
        "boto3": "1.44.8",
        "botocore": "1.44.8",
        "jmespath": "1.1.0",
        "s3transfer": "0.19.3",
        "urllib3": "2.8.0",
    }
    Annotations.from_stack(stack).has_warning(
        "/Stack/Cloud",
        Match.string_like_regexp(r"\[uv-runtime-sdk\] boto3 1\.44\.8, botocore 1\.44\.8 left out of the asset"),
    )

    _, stack = synth_app(shop, populate, outdir=tmp_path / "with", bytecode=False)
    (with_sdk,) = function_codes(stack).values()
    assert with_sdk["S3Key"] != code["S3Key"]
    assert {"boto3", "botocore", "s3transfer", "jmespath", "urllib3"} <= set(
        distributions(staged_asset(tmp_path / "with", with_sdk))
    )
