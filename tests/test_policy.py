"""UvPolicyChecks on real synthesized apps built from the fixture workspace, and with the real CDK CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aws_cdk
import jsii
import pytest
from aws_cdk import Annotations as CdkAnnotations
from aws_cdk import App, Aspects, IAspect, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from aws_cdk.assertions import Annotations, Match
from constructs import IConstruct
from helpers import REPO, add_function, needs_cdk

from cdk_uv_aspect import UvBundlingAspect, UvError, UvPolicyChecks, mark_package, uv_image_code

pytestmark = [pytest.mark.slow, pytest.mark.oldest_cdk]

INLINE = lambda_.Code.from_inline("def main(event, context):\n    return 1\n")


def synth(
    workspace: Path,
    out: Path,
    populate,
    *,
    checks: UvPolicyChecks | None = None,
    checks_first: bool = False,
    **aspect_options,
) -> tuple[App, Stack, dict]:
    """Synthesize an app with the bundling aspect and the checks; return the app, stack and report."""
    app = App(outdir=str(out))
    stack = Stack(app, "Stack")
    populate(stack)
    checks = checks or UvPolicyChecks()
    aspects = [checks, UvBundlingAspect(workspace=workspace)]
    for aspect in reversed(aspects) if not checks_first else aspects:
        priority = aspect_options.get(type(aspect).__name__)  # an AspectPriority's name
        Aspects.of(app).add(aspect, **({"priority": getattr(aws_cdk.AspectPriority, priority)} if priority else {}))
    app.synth()
    return app, stack, json.loads((out / "uv-policy-report.json").read_text())


def results(report: dict, path: str) -> dict[str, str]:
    row = next(f for f in report["functions"] if f["path"] == path)
    return {rule: r["result"] for rule, r in row["rules"].items()}


def all_passed(found: dict[str, str]) -> bool:
    """Every rule passed, but the Lambda@Edge one, which does not apply to a function that is not Edge's, and
    the init budget, off by default."""
    off = (found.pop("uv-edge-limits"), found.pop("uv-init-budget"))
    return off == ("not applicable", "not applicable") and set(found.values()) == {"passed"}


def test_a_uv_built_function_passes_every_rule_and_the_report_says_so(workspace, cache_dir, tmp_path):
    """The report lists the function with its package, target and each rule's result."""
    _, stack, report = synth(workspace, tmp_path / "out", lambda s: add_function(s, "Api", "api"))
    (row,) = report["functions"]
    assert row["path"] == "Stack/Api" and row["package"] == "api" and row["target"] == "python3.12-x86_64"
    assert all_passed(results(report, "Stack/Api"))
    assert row["rules"]["uv-native-libs"]["note"].endswith("all Linux x86_64")  # orjson's real wheel
    assert report["summary"] == {"functions": 1, "errors": 0, "warnings": 0, "acknowledged": 0}
    assert report["rules"][0]["id"] == "uv-built"
    Annotations.from_stack(stack).has_no_error("*", Match.any_value())


def test_functions_sharing_one_asset_each_pass(workspace, cache_dir, tmp_path):
    """Two functions of one package in one stack share the asset: the checks find it for both."""

    def populate(stack):
        add_function(stack, "One", "api")
        add_function(stack, "Two", "api")

    _, _, report = synth(workspace, tmp_path / "out", populate)
    assert all_passed(results(report, "Stack/One")) and all_passed(results(report, "Stack/Two"))

    # Replace the code of one of them after the build: that one fails, the other still passes.
    app = App(outdir=str(tmp_path / "again"))
    stack = Stack(app, "Stack")
    populate(stack)
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    Aspects.of(stack.node.find_child("Two")).add(_Retarget(code=lambda_.CfnFunction.CodeProperty(zip_file="x")))
    Aspects.of(app).add(UvPolicyChecks())
    app.synth()
    report = json.loads((tmp_path / "again" / "uv-policy-report.json").read_text())
    assert (results(report, "Stack/One")["uv-built"], results(report, "Stack/Two")["uv-built"]) == ("passed", "failed")


@pytest.mark.parametrize("checks_first", [True, False], ids=["checks-added-first", "checks-added-last"])
@pytest.mark.parametrize("priorities", [
    pytest.param({}, id="default-priority"),
    pytest.param({"UvPolicyChecks": "MUTATING", "UvBundlingAspect": "READONLY"}, id="checks-at-a-higher-priority",
                 marks=needs_cdk("2.172.0", "AspectPriority")),
])  # fmt: skip
def test_checks_judge_the_built_code_whatever_the_order_and_priority(
    workspace, cache_dir, tmp_path, checks_first, priorities
):
    """The checks run as a validation, after every aspect: they never judge the placeholder."""
    _, _, report = synth(
        workspace, tmp_path / "out", lambda s: add_function(s, "Api", "api"), checks_first=checks_first, **priorities
    )
    assert results(report, "Stack/Api")["uv-built"] == "passed"
    assert results(report, "Stack/Api")["uv-handler"] == "passed"


def test_an_unmarked_python_function_is_an_error_naming_the_rule_and_the_fix(workspace, cache_dir, tmp_path):
    """A plain Python function fails uv-built; a Node function is out of scope."""

    def populate(stack: Stack) -> None:
        add_function(stack, "Plain", None, handler="index.main", code=INLINE)
        add_function(stack, "Node", None, handler="index.main", code=INLINE, runtime=lambda_.Runtime.NODEJS_20_X)

    _, stack, report = synth(workspace, tmp_path / "out", populate)
    Annotations.from_stack(stack).has_error(
        "/Stack/Plain",
        Match.string_like_regexp(r"^\[uv-built\] .*without the uv marker.*Fix: mark the function"),
    )
    assert results(report, "Stack/Plain")["uv-built"] == "failed"
    assert set(results(report, "Stack/Node").values()) == {"not applicable"}
    assert report["summary"]["errors"] == 1


def test_a_handler_changed_after_the_build_is_an_error(workspace, cache_dir, tmp_path):
    """The handler is looked up in the real built asset (the bundling aspect refuses a misspelled handler
    itself; the rule judges what the function ends up with)."""
    app = App(outdir=str(tmp_path / "out"))
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api")
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    Aspects.of(app).add(_Retarget(handler="api.handler.mian"))
    Aspects.of(app).add(UvPolicyChecks())
    app.synth()
    report = json.loads((tmp_path / "out" / "uv-policy-report.json").read_text())
    Annotations.from_stack(stack).has_error(
        "/Stack/Api", Match.string_like_regexp(r"\[uv-handler\] .*api/handler.py defines no 'mian'")
    )
    assert results(report, "Stack/Api")["uv-handler"] == "failed"


def test_an_init_budget_fails_the_function_over_it_and_passes_the_one_under(workspace, cache_dir, tmp_path):
    """Each function started from its real asset here: the app-wide budget (10 s) passes the fast one; the
    marker's own (200 ms) fails the slow one, naming it, its time and its heaviest imports."""
    slow = workspace / "packages" / "api" / "src" / "api" / "slow.py"
    slow.write_text("import time\n\nimport orjson\n\ntime.sleep(0.5)\n\n\ndef main(event, context):\n    return 1\n")

    def populate(stack):
        add_function(stack, "Fast", "api")
        mark_package(add_function(stack, "Slow", None, handler="api.slow.main"), "api", init_budget_ms=200)

    _, stack, report = synth(workspace, tmp_path / "out", populate, checks=UvPolicyChecks(init_budget_ms=10_000))
    fast, slowest = (next(f for f in report["functions"] if f["path"] == p) for p in ("Stack/Fast", "Stack/Slow"))
    assert fast["rules"]["uv-init-budget"]["result"] == "passed"
    assert "median of 3 local cold starts), budget 10000 ms" in fast["rules"]["uv-init-budget"]["note"]
    finding = slowest["rules"]["uv-init-budget"]
    assert finding["result"] == "failed" and finding["level"] == "error"
    assert "over its budget of 200 ms; its heaviest imports: api 5" in finding["message"], finding["message"]
    Annotations.from_stack(stack).has_error(
        "/Stack/Slow", Match.string_like_regexp(r"\[uv-init-budget\] .*over its budget of 200 ms")
    )


@jsii.implements(IAspect)
class _Retarget:
    """Changes every CfnFunction after the build, as a careless aspect or override would."""

    def __init__(self, only: str | None = None, **props: object) -> None:
        self.only = only  # the path of the one function to change, else all
        self.props = props

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, lambda_.CfnFunction) and self.only in (None, node.node.scope.node.path):
            for name, value in self.props.items():
                setattr(node, name, value)


def test_native_code_for_the_other_architecture_is_an_error(workspace, cache_dir, tmp_path):
    """orjson built for arm64, deployed as x86_64: its ELF header says aarch64."""
    app = App(outdir=str(tmp_path / "out"))
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api", architecture=lambda_.Architecture.ARM_64)
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    Aspects.of(app).add(_Retarget(architectures=["x86_64"]))
    Aspects.of(app).add(UvPolicyChecks())
    app.synth()
    Annotations.from_stack(stack).has_error(
        "/Stack/Api",
        Match.string_like_regexp(r"\[uv-native-libs\] .*orjson.*built for aarch64, the function runs x86_64"),
    )


def test_a_runtime_changed_after_the_build_fails_requires_python_and_the_abi(workspace, cache_dir, tmp_path):
    """Built for python3.12, deployed as python3.10: requires-python, the extension ABI and the runtime."""
    app = App(outdir=str(tmp_path / "out"))
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api")
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    Aspects.of(app).add(_Retarget(runtime="python3.10"))
    Aspects.of(app).add(UvPolicyChecks())
    app.synth()
    report = json.loads((tmp_path / "out" / "uv-policy-report.json").read_text())
    assert results(report, "Stack/Api") == {
        "uv-built": "passed",
        "uv-handler": "passed",
        "uv-native-libs": "failed",
        "uv-asset-size": "passed",
        "uv-requires-python": "failed",
        "uv-runtime-deprecated": "failed",
        "uv-edge-limits": "not applicable",
        "uv-runtime-sdk": "passed",
        "uv-init-budget": "not applicable",
    }
    annotations = Annotations.from_stack(stack)
    annotations.has_error(
        "/Stack/Api", Match.string_like_regexp(r"requires Python >=3.11, the function runs python3.10")
    )
    annotations.has_warning(
        "/Stack/Api", Match.string_like_regexp(r"\[uv-runtime-deprecated\] Lambda deprecated python3.10")
    )


def test_image_functions_are_judged_by_the_built_folder_and_the_image_command(workspace, cache_dir, tmp_path):
    """A marked image function: uv-built, handler (its command) and native code checked; size does not apply."""

    app = App(outdir=str(tmp_path / "out"))
    stack = Stack(app, "Stack")
    for name in ("Img", "Typo"):
        mark_package(lambda_.DockerImageFunction(stack, name, code=uv_image_code(stack, "api.handler.main")), "api")
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    typo = lambda_.CfnFunction.ImageConfigProperty(command=["api.handler.mian"])
    Aspects.of(app).add(_Retarget(only="Stack/Typo", image_config=typo))  # after the build, which checks its own
    Aspects.of(app).add(UvPolicyChecks())
    app.synth()
    report = json.loads((tmp_path / "out" / "uv-policy-report.json").read_text())
    assert results(report, "Stack/Img") == {
        "uv-built": "passed",
        "uv-handler": "passed",
        "uv-native-libs": "passed",
        "uv-asset-size": "not applicable",
        "uv-requires-python": "passed",
        "uv-runtime-deprecated": "not applicable",
        "uv-edge-limits": "not applicable",
        "uv-runtime-sdk": "passed",
        "uv-init-budget": "not applicable",
    }
    assert results(report, "Stack/Typo")["uv-handler"] == "failed"
    Annotations.from_stack(stack).has_error("/Stack/Typo", Match.string_like_regexp(r"\[uv-handler\]"))


def test_an_acknowledgement_on_a_parent_covers_the_functions_below(workspace, cache_dir, tmp_path):
    """Acknowledged on the stack: no error, an info message with the reason, 'acknowledged' in the report."""

    def populate(stack: Stack) -> None:
        add_function(stack, "Plain", None, handler="index.main", code=INLINE)
        UvPolicyChecks.acknowledge(stack, "uv-built", "inline glue code, reviewed by the platform team")

    _, stack, report = synth(workspace, tmp_path / "out", populate)
    annotations = Annotations.from_stack(stack)
    annotations.has_no_error("*", Match.any_value())
    annotations.has_info(
        "/Stack/Plain",
        Match.string_like_regexp(r"\[uv-built\] acknowledged: inline glue code, reviewed by the platform team"),
    )
    rule = report["functions"][0]["rules"]["uv-built"]
    assert rule["result"] == "acknowledged" and rule["acknowledgedBy"] == "cdk-uv-aspect"
    assert rule["reason"] == "inline glue code, reviewed by the platform team"
    assert report["summary"]["acknowledged"] == 1


@pytest.mark.parametrize("on", [
    # aws-cdk#38820: before 2.271 an acknowledgement on the construct itself missed later warnings
    pytest.param("function", marks=needs_cdk("2.271.0", "acknowledge_warning on the warned construct")),
    "stack",
])  # fmt: skip
def test_the_cdks_warning_acknowledgement_works_too(workspace, cache_dir, tmp_path, on):
    """Annotations.acknowledge_warning drops the warning and counts as an acknowledgement in the report."""

    def populate(stack: Stack) -> None:
        fn = add_function(stack, "Old", None, handler="index.main", code=INLINE, runtime=lambda_.Runtime.PYTHON_3_10)
        scope = fn if on == "function" else stack
        CdkAnnotations.of(scope).acknowledge_warning("uv-runtime-deprecated", "moving with the retirement")

    _, stack, report = synth(workspace, tmp_path / "out", populate)
    Annotations.from_stack(stack).has_no_warning("*", Match.string_like_regexp("uv-runtime-deprecated"))
    rules = report["functions"][0]["rules"]
    assert rules["uv-runtime-deprecated"]["result"] == "acknowledged"
    assert rules["uv-built"]["result"] == "failed"


@needs_cdk("2.252.0", "Validations.acknowledge")
def test_the_cdks_validations_acknowledgement_works_too(workspace, cache_dir, tmp_path):
    """Validations.acknowledge (errors and warnings, with a reason) counts as an acknowledgement."""

    def populate(stack: Stack) -> None:
        add_function(stack, "Old", None, handler="index.main", code=INLINE, runtime=lambda_.Runtime.PYTHON_3_10)
        aws_cdk.Validations.of(stack).acknowledge(aws_cdk.Acknowledgment(id="uv-built", reason="legacy, retired in Q1"))

    _, stack, report = synth(workspace, tmp_path / "out", populate)
    Annotations.from_stack(stack).has_no_error("*", Match.any_value())
    rules = report["functions"][0]["rules"]
    assert (rules["uv-built"]["result"], rules["uv-built"]["acknowledgedBy"]) == ("acknowledged", "cdk")
    assert rules["uv-built"]["reason"] == "legacy, retired in Q1"


def test_bad_acknowledgements_are_refused_all_at_once(workspace, cache_dir, tmp_path):
    """The helper refuses a short reason at once; hand-written metadata is reported together at synth."""
    app = App(outdir=str(tmp_path / "out"))
    stack = Stack(app, "Stack")
    fn = add_function(stack, "Plain", None, handler="index.main", code=INLINE)
    with pytest.raises(UvError, match="at least 10 characters"):
        UvPolicyChecks.acknowledge(fn, "uv-built", "because")
    stack.node.add_metadata("uv:acknowledge", {"id": "uv-built", "reason": "short"})
    fn.node.add_metadata("uv:acknowledge", {"id": "uv-bulit", "reason": "a typo in the rule id"})
    Aspects.of(app).add(UvPolicyChecks())
    with pytest.raises(RuntimeError) as error:
        app.synth()
    assert "Stack: the acknowledgement of uv-built needs a reason" in str(error.value)
    assert "Stack/Plain: acknowledgement of unknown rule 'uv-bulit'" in str(error.value)


def test_cdk_internal_functions_are_exempt_unless_included(workspace, cache_dir, tmp_path):
    """BucketDeployment's Python handler is recognised by the CDK's own metadata."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("hi")

    def populate(stack: Stack) -> None:
        s3_deployment.BucketDeployment(
            stack,
            "Site",
            sources=[s3_deployment.Source.asset(str(site))],
            destination_bucket=s3.Bucket(stack, "Bucket"),
        )

    _, stack, report = synth(workspace, tmp_path / "out", populate)
    (row,) = report["functions"]
    assert row["cdkInternal"] and row["runtime"].startswith("python")
    assert row["rules"]["uv-built"]["result"] == "not applicable"
    Annotations.from_stack(stack).has_no_error("*", Match.any_value())

    _, stack, report = synth(workspace, tmp_path / "out2", populate, checks=UvPolicyChecks(include_cdk_internal=True))
    assert report["functions"][0]["rules"]["uv-built"]["result"] == "failed"


def test_a_raw_cfn_function_with_a_python_runtime_is_an_error(workspace, cache_dir, tmp_path):
    """L1 functions are covered too."""

    def populate(stack: Stack) -> None:
        lambda_.CfnFunction(
            stack,
            "Raw",
            runtime="python3.12",
            handler="index.main",
            role="arn:aws:iam::111111111111:role/r",
            code=lambda_.CfnFunction.CodeProperty(zip_file="def main(e, c): ..."),
        )

    _, stack, report = synth(workspace, tmp_path / "out", populate)
    Annotations.from_stack(stack).has_error("/Stack/Raw", Match.string_like_regexp(r"\[uv-built\] a raw CfnFunction"))
    assert report["functions"][0]["kind"] == "CfnFunction"


def test_functions_in_a_nested_stage_need_the_checks_in_that_stage(workspace, cache_dir, tmp_path):
    """Aspects do not cross Stage boundaries: unchecked functions there fail synth with the fix."""

    def build(with_stage_checks: bool) -> App:
        app = App(outdir=str(tmp_path / f"out-{with_stage_checks}"))
        stage = Stage(app, "Prod")
        svc = Stack(stage, "Svc")
        add_function(svc, "Api", "api")
        add_function(svc, "Node", None, handler="index.main", code=INLINE, runtime=lambda_.Runtime.NODEJS_20_X)
        Aspects.of(stage).add(UvBundlingAspect(workspace=workspace))
        if with_stage_checks:
            Aspects.of(stage).add(UvPolicyChecks())
        Aspects.of(app).add(UvPolicyChecks())
        return app

    # Only the functions the checks would judge count: Prod/Svc/Node (Node.js) is not named.
    with pytest.raises(RuntimeError, match=r"did not reach the functions Prod/Svc/Api: .*Aspects.of\(self\)"):
        build(False).synth()
    build(True).synth()
    nested = json.loads((tmp_path / "out-True" / "assembly-Prod" / "uv-policy-report.json").read_text())
    assert results(nested, "Prod/Svc/Api")["uv-built"] == "passed"


# --- the real CLI -------------------------------------------------------------------------------------

APP = """\
import os
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from cdk_uv_aspect import UvBundlingAspect, UvCode, UvPolicyChecks

app = App()
stack = Stack(app, "Svc")
fn = lambda_.Function(stack, "Api", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main",
                      code=UvCode() if os.environ.get("MARKED") else lambda_.Code.from_inline("x = 1"))
if os.environ.get("MARKED"):
    fn.node.add_metadata("uv", "api")
Aspects.of(app).add(UvBundlingAspect(workspace={workspace!r}))
Aspects.of(app).add(UvPolicyChecks())
app.synth()
"""


def cdk_synth(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "node_modules" / ".bin" / "cdk"), "synth", "--quiet"],
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_cli_fails_on_an_unmarked_function_and_passes_once_it_is_marked(workspace, cache_dir, tmp_path):
    """`cdk synth` exits non-zero naming the construct, the rule and the fix; marked, it passes."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "app.py").write_text(APP.format(workspace=str(workspace)))
    (folder / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} app.py"}))

    failed = cdk_synth(folder)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "Svc/Api" in output and "[uv-built]" in output and "Fix: mark the function" in output
    report = json.loads((folder / "cdk.out" / "uv-policy-report.json").read_text())
    assert results(report, "Svc/Api")["uv-built"] == "failed"

    passed = cdk_synth(folder, MARKED="1")
    assert passed.returncode == 0, textwrap.shorten(passed.stderr, 2000)
    report = json.loads((folder / "cdk.out" / "uv-policy-report.json").read_text())
    assert all_passed(results(report, "Svc/Api"))


WARNED_APP = """\
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from cdk_uv_aspect import UvBundlingAspect, UvPolicyChecks

app = App()
stack = Stack(app, "Svc")
api = lambda_.Function(stack, "Api", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main",
                       code=lambda_.Code.from_asset({api!r}))
api.node.add_metadata("uv", "api")
lambda_.Function(stack, "Old", runtime=lambda_.Runtime.PYTHON_3_10, handler="index.main",
                 code=lambda_.Code.from_inline("def main(event, context): pass"))
Aspects.of(app).add(UvBundlingAspect(workspace={workspace!r}))
Aspects.of(app).add(UvPolicyChecks())
app.synth()
"""


def test_warnings_and_findings_print_without_a_jsii_stack_location(workspace, cache_dir, tmp_path):
    """`cdk synth` prints the aspect's warning and the policy findings with their construct and rule, and no
    `.../program.js:1:5591` line (the stack of jsii's kernel, which the CLI shows as the source location)."""
    folder = tmp_path / "app"
    folder.mkdir()
    app = WARNED_APP.format(workspace=str(workspace), api=str(workspace / "packages" / "api"))
    (folder / "app.py").write_text(app)
    (folder / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} app.py"}))
    done = cdk_synth(folder)
    output = done.stdout + done.stderr
    assert done.returncode != 0  # the unmarked function's error
    assert "still stages and uploads it" in output and "cdk-uv-aspect:placeholder-asset" in output, output
    assert "[uv-built]" in output and "uv-runtime-deprecated" in output, output
    assert "program.js" not in output, output
