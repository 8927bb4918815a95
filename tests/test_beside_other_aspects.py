"""A real app as `cdk init` makes it today: the feature flags a fresh `cdk init app --language python` writes
into cdk.json, and other aspects and checks beside ours (an aspect that adds a marked function after ours
ran, a tagging aspect, cdk-nag's checks). Zip, image, layer, Stage and policy checks, in every order and
priority: each marked function built exactly once, and deployed built."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import aws_cdk
import jsii
import pytest
from aws_cdk import App, Aspects, IAspect, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from constructs import IConstruct
from helpers import FIXTURES, REPO, add_function, needs_cdk, staged_asset
from test_image import image_function
from test_layers import make_layer
from test_policy import results

from cdk_uv_aspect import UvBundlingAspect, UvPolicyChecks

pytestmark = [pytest.mark.slow, needs_cdk("2.172.0", "AspectPriority")]

CDK = REPO / "node_modules" / ".bin" / "cdk"


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as `cdk init app --language python` makes it today, by the CDK CLI in node_modules."""
    folder = tmp_path_factory.mktemp("init") / "fresh"
    folder.mkdir()
    command = [str(CDK), "init", "app", "--language", "python", "--generate-only"]
    subprocess.run(command, cwd=folder, check=True, capture_output=True, timeout=300)
    return folder


@pytest.fixture(scope="module")
def init_context(fresh_project: Path) -> dict[str, object]:
    """The context (feature flags) a fresh `cdk init` writes into cdk.json."""
    context: dict[str, object] = json.loads((fresh_project / "cdk.json").read_text())["context"]
    assert context.get("@aws-cdk/core:aspectPrioritiesMutating") is True, sorted(context)  # a real list
    return context


@pytest.fixture(scope="module")
def cdk_nag() -> ModuleType:
    return pytest.importorskip(
        "cdk_nag", reason="cdk-nag is not installed (./dev installs it into .venv: the extra test-newest)"
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A workspace and a build cache shared by this module's synths (builds are the same in each)."""
    root = tmp_path_factory.mktemp("beside")
    shutil.copytree(FIXTURES / "ws", root / "ws")
    return root / "ws", root / "cache"


@jsii.implements(IAspect)
class AddsAFunction:
    """A mutating aspect, as apps have: it adds a marked function to the stack Svc when it visits it."""

    def __init__(self) -> None:
        self.added = 0

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, Stack) and node.node.path == "Svc" and not self.added:
            self.added += 1
            add_function(node, "Late", "api")


ORDERS = [
    # (what is added first, ..., last), each with its priority (None: none given)
    pytest.param([("ours", None), ("adder", None), ("tags", None)], id="ours-first"),
    pytest.param([("tags", None), ("adder", None), ("ours", None)], id="ours-last"),
    pytest.param([("ours", "READONLY"), ("adder", "MUTATING"), ("tags", "MUTATING")], id="ours-readonly"),
    pytest.param([("adder", "READONLY"), ("ours", "MUTATING"), ("tags", "DEFAULT")], id="adder-after-ours"),
]


def synth(workspace: Path, cache: Path, out: Path, context: dict[str, object], order: list, cdk_nag: ModuleType) -> App:
    app = App(outdir=str(out), context=context)
    svc = Stack(app, "Svc")
    add_function(svc, "Api", "api")
    image_function(svc, "Img")
    make_layer(svc, "common", [lambda_.Runtime.PYTHON_3_12])
    prod = Stage(app, "Prod")
    add_function(Stack(prod, "Svc"), "App", "app", handler="main.handler")
    # Aspects do not cross Stage boundaries: a Stage has its own.
    Aspects.of(prod).add(UvBundlingAspect(workspace=workspace, cache_dir=cache))
    Aspects.of(prod).add(UvPolicyChecks())
    aspects = {
        "ours": UvBundlingAspect(workspace=workspace, cache_dir=cache),
        "adder": AddsAFunction(),
        "tags": aws_cdk.Tag("team", "payments"),
    }
    for name, priority in order:
        # AspectPriority came in 2.172: read here, not when the module is collected on an older release.
        Aspects.of(app).add(
            aspects[name], **({"priority": getattr(aws_cdk.AspectPriority, priority)} if priority else {})
        )
    Aspects.of(app).add(UvPolicyChecks())
    # cdk-nag 3 is a validation plugin; its findings on these functions are accepted, as an app would.
    aws_cdk.Validations.of(app).add_plugins(cdk_nag.AwsSolutionsChecks(app))
    basic_role = (
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
    )
    for rule in (basic_role, "AwsSolutions-L1"):  # the ids the CLI shows
        acknowledgment = aws_cdk.Acknowledgment(id=f"AwsSolutions::{rule}", reason="a test app's functions")
        aws_cdk.Validations.of(app).acknowledge(acknowledgment)
    app.synth()
    return app


def bundled(stderr: str) -> Counter[str]:
    """How many times each package and target was built (or taken from the cache), from the aspect's lines."""
    return Counter(re.findall(r"^Bundling uv package (\S+ \(\S+\))", stderr, re.MULTILINE))


@pytest.mark.parametrize("order", ORDERS)
def test_cdk_init_flags_and_other_aspects_every_marked_function_built_once(
    shared, init_context, cdk_nag, tmp_path, capfd, order
):
    """Zip, image, layer, Stage and policy under `cdk init`'s flags, beside a tagging aspect, an aspect that
    adds a marked function, and cdk-nag: one build per package and target, every function deployed built."""
    workspace, cache = shared
    app = synth(workspace, cache, tmp_path / "out", init_context, order, cdk_nag)
    assert bundled(capfd.readouterr().err) == {
        "api (python3.12-x86_64)": 1,  # Svc/Api, Svc/Img and Svc/Late
        "common (python3.12-x86_64)": 1,  # the layer
        "app (python3.12-x86_64)": 1,  # Prod/Svc/App
    }
    svc = Template.from_stack(app.node.find_child("Svc"))
    functions = {
        lid.rstrip("0123456789ABCDEF"): r["Properties"]
        for lid, r in svc.find_resources("AWS::Lambda::Function").items()
    }
    assert functions["Late"]["Code"] == functions["Api"]["Code"]  # added after our aspect ran, built
    assert (staged_asset(app.outdir, functions["Api"]["Code"]) / "api" / "handler.py").is_file()
    assert functions["Img"]["PackageType"] == "Image"
    assert {"Key": "team", "Value": "payments"} in functions["Late"]["Tags"]
    (layer,) = svc.find_resources("AWS::Lambda::LayerVersion").values()
    assert (staged_asset(app.outdir, layer["Properties"]["Content"]) / "python" / "common").is_dir()

    report = json.loads((tmp_path / "out" / "uv-policy-report.json").read_text())
    for path in ("Svc/Api", "Svc/Img", "Svc/Late"):
        assert results(report, path)["uv-built"] == "passed", path
    nested = json.loads((tmp_path / "out" / "assembly-Prod" / "uv-policy-report.json").read_text())
    assert results(nested, "Prod/Svc/App")["uv-built"] == "passed"
    validation = json.loads((tmp_path / "out" / "validation-report.json").read_text())
    nag = [r for r in validation["pluginReports"] if "AwsSolutions" in r["pluginName"]]
    assert nag and nag[0]["suppressedViolations"], "cdk-nag did not run"


APP = """\
import os
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from cdk_uv_aspect import UvBundlingAspect, UvCode, UvPolicyChecks

app = App()
stack = Stack(app, "Svc")
marked = bool(os.environ.get("MARKED"))
fn = lambda_.Function(stack, "Api", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main",
                      code=UvCode() if marked else lambda_.Code.from_inline("x = 1"))
if marked:
    fn.node.add_metadata("uv", "api")
Aspects.of(app).add(UvBundlingAspect(workspace={workspace!r}))
Aspects.of(app).add(UvPolicyChecks())
app.synth()
"""


def test_a_fresh_cdk_init_project_fails_on_a_finding_and_passes_once_it_is_fixed(
    fresh_project, workspace, cache_dir, tmp_path
):
    """`cdk synth` in a project `cdk init` made (its cdk.json as written, our app.py): an unmarked function
    fails it naming the rule and the function; marked, it passes."""
    folder = tmp_path / "project"
    shutil.copytree(fresh_project, folder)
    settings = json.loads((folder / "cdk.json").read_text())
    (folder / "cdk.json").write_text(json.dumps({**settings, "app": f"{sys.executable} app.py"}))
    (folder / "app.py").write_text(APP.format(workspace=str(workspace)))

    def cdk_synth(**env: str) -> tuple[int, str]:
        done = subprocess.run(
            [str(CDK), "synth", "--quiet"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **env},
        )
        return done.returncode, done.stdout + done.stderr

    status, output = cdk_synth()
    assert status != 0 and "[uv-built]" in output and "Svc/Api" in output, output
    status, output = cdk_synth(MARKED="1")
    assert status == 0, output
    report = json.loads((folder / "cdk.out" / "uv-policy-report.json").read_text())
    assert results(report, "Svc/Api")["uv-built"] == "passed"
