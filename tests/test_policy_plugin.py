"""UvPolicyChecks as a CDK policy validation plugin, on each aws-cdk-lib release it claims, with the real CLI.

`./dev test` runs this file on the newest release, and again on 2.251 (the first with the plugin
interface, where the checks can't run), 2.258 (the oldest where they run) and 2.261 (./dev test-cdk).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import aws_cdk
import pytest
from aws_cdk import App, Aspects, Stack, Stage
from helpers import CDK_VERSION, REPO, add_function, needs_cdk
from test_policy import INLINE, all_passed, results

from cdk_uv_aspect import UvBundlingAspect, UvPolicyChecks
from cdk_uv_aspect._policy import plugin

pytestmark = [pytest.mark.slow, pytest.mark.oldest_cdk]

runs_as_plugin = needs_cdk(plugin.PLUGIN_SINCE, "the construct tree in a validation plugin's context")

APP = """\
import os
import aws_cdk
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from cdk_uv_aspect import UvBundlingAspect, UvCode, UvPolicyChecks


class Crashing(UvPolicyChecks):
    def _judge_plugin(self, app, template_paths):
        raise RuntimeError("a bug in the checks")


checks = Crashing() if os.environ.get("CRASH") else UvPolicyChecks()
if hasattr(aws_cdk, "Validations"):
    app = App()
    aws_cdk.Validations.of(app).add_plugins(checks)
else:  # before 2.251: the beta interface, given to the App
    app = App(policy_validation_beta1=[checks])
stack = Stack(app, "Svc")
marked = bool(os.environ.get("MARKED"))
fn = lambda_.Function(stack, "Api", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main",
                      code=UvCode() if marked else lambda_.Code.from_inline("x = 1"))
if marked:
    fn.node.add_metadata("uv", "api")
Aspects.of(app).add(UvBundlingAspect(workspace={workspace!r}))
app.synth()
"""


def cli_app(tmp_path: Path, workspace: Path, **context: object) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "app.py").write_text(APP.format(workspace=str(workspace)))
    (folder / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} app.py", "context": context}))
    return folder


def run(command: list[str], folder: Path, **env: str) -> tuple[int, str]:
    """Exit status and console output (colours removed) of ``command`` run as a user would, from a shell:
    not under pytest, whose variables tell aws-cdk-lib (and the checks) that a test inspects the app."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "PYTEST_VERSION")}
    done = subprocess.run(
        command, cwd=folder, env={**clean, **env}, capture_output=True, text=True, timeout=600, check=False
    )
    return done.returncode, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


def cdk_synth(folder: Path, **env: str) -> tuple[int, str]:
    return run([str(REPO / "node_modules" / ".bin" / "cdk"), "synth", "--quiet"], folder, **env)


def our_violations(report: dict) -> list[dict]:
    """The checks' violations in validation-report.json, or in the older policy-validation-report.json."""
    (ours,) = [p for p in report["pluginReports"] if (p.get("summary") or p)["pluginName"] == "cdk-uv-aspect"]
    return ours["violations"]


def assert_console_agrees(output: str, folder: Path) -> list[dict]:
    """Every violation of the checks in validation-report.json is on the console, with its constructs."""
    violations = our_violations(json.loads((folder / "cdk.out" / "validation-report.json").read_text()))
    assert violations
    for violation in violations:
        assert violation["description"] in output, output
        for construct in violation["violatingConstructs"]:
            assert construct["constructPath"] in output
    return violations


@runs_as_plugin
def test_the_cli_fails_on_a_finding_and_passes_once_it_is_fixed_and_the_reports_agree(workspace, cache_dir, tmp_path):
    """`cdk synth` exits non-zero showing the finding that validation-report.json holds; fixed, it passes."""
    folder = cli_app(tmp_path, workspace)
    status, output = cdk_synth(folder)
    assert status != 0, output
    (violation,) = assert_console_agrees(output, folder)
    assert violation["ruleName"] == "uv-built" and violation["severity"] == "error"
    assert violation["violatingConstructs"][0]["constructPath"] == "Svc/Api/Resource"
    assert "Fix" not in violation["description"] and "mark the function" in violation["suggestedFix"]
    ours = json.loads((folder / "cdk.out" / "uv-policy-report.json").read_text())
    assert results(ours, "Svc/Api")["uv-built"] == "failed"

    # Into the same cloud assembly: the checks' report is replaced, which the CDK allows its plugins.
    status, output = cdk_synth(folder, MARKED="1")
    assert status == 0, output
    ours = json.loads((folder / "cdk.out" / "uv-policy-report.json").read_text())
    assert all_passed(results(ours, "Svc/Api"))


@runs_as_plugin
def test_a_crash_of_the_checks_fails_the_synth_naming_it(workspace, cache_dir, tmp_path):
    """A bug in the checks is a fatal violation, on the console and in the report, never a passing synth."""
    folder = cli_app(tmp_path, workspace)
    status, output = cdk_synth(folder, CRASH="1")
    assert status != 0, output
    (violation,) = assert_console_agrees(output, folder)
    assert violation["severity"] == "fatal" and violation["ruleName"] == plugin.RULE_NAME
    assert "UvPolicyChecks crashed (RuntimeError: a bug in the checks)" in violation["description"]


@runs_as_plugin
def test_without_the_cli_a_finding_still_fails_the_app(workspace, cache_dir, tmp_path):
    """`python app.py` (a pipeline step, say) exits non-zero naming the finding, on releases where the CDK
    itself leaves a Python app's exit status at 0 too."""
    folder = cli_app(tmp_path, workspace)
    status, output = run([sys.executable, "app.py"], folder, CDK_OUTDIR=str(folder / "cdk.out"))
    assert status != 0, output
    assert "[uv-built]" in output and "Svc/Api" in output


@pytest.mark.skipif(plugin.TREE_READY, reason="the checks run as a plugin on this release: tested above")
def test_where_the_checks_cannot_run_as_a_plugin_the_synth_fails_naming_why(workspace, cache_dir, tmp_path):
    """Before 2.258 a plugin gets no construct tree: `cdk synth` fails, saying to add the checks as an aspect."""
    context = {"@aws-cdk/core:validationReportJson": True, "@aws-cdk/core:validationReportPrettyPrint": True}
    folder = cli_app(tmp_path, workspace, **context)
    status, output = cdk_synth(folder)
    assert status != 0, output
    assert f"can't run as a validation plugin on aws-cdk-lib {CDK_VERSION}" in output
    assert "Aspects.of(app).add(UvPolicyChecks())" in output and "exits with status 1" in output
    # These releases write the CDK's report only as policy-validation-report.json (and some do not print
    # it then): the checks say the same on the console.
    (violation,) = our_violations(json.loads((folder / "cdk.out" / "policy-validation-report.json").read_text()))
    assert violation["ruleName"] == plugin.RULE_NAME
    assert violation["description"].removeprefix("cdk-uv-aspect: ") in output


# --- in memory, as a unit test of an app inspects it -----------------------------------------------------


def plugin_app(workspace: Path, out: Path, *, marked: bool) -> tuple[App, Stack]:
    app = App(outdir=str(out))
    stack = Stack(app, "Stack")
    if marked:
        add_function(stack, "Api", "api")
    else:
        add_function(stack, "Plain", None, handler="index.main", code=INLINE)
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    aws_cdk.Validations.of(app).add_plugins(UvPolicyChecks())
    return app, stack


def synth(app: App) -> None:
    # Releases from about 2.268 raise when a test synthesizes an app whose validation failed; older
    # ones only record it: the report is what both write.
    with contextlib.suppress(RuntimeError):
        app.synth()


@runs_as_plugin
def test_as_a_validation_plugin_findings_go_to_the_cdk_validation_report(workspace, cache_dir, tmp_path):
    """Validations.of(app).add_plugins(UvPolicyChecks()): the finding is in the CDK's report, and ours."""
    app, _ = plugin_app(workspace, tmp_path / "bad", marked=False)
    synth(app)
    validation = json.loads((tmp_path / "bad" / "validation-report.json").read_text())
    (plugin_report,) = [p for p in validation["pluginReports"] if p["pluginName"] == "cdk-uv-aspect"]
    (violation,) = plugin_report["violations"]
    assert plugin_report["conclusion"] == "failure" and violation["ruleName"] == "uv-built"
    assert violation["violatingConstructs"][0]["constructPath"] == "Stack/Plain/Resource"
    ours = json.loads((tmp_path / "bad" / "uv-policy-report.json").read_text())
    assert results(ours, "Stack/Plain")["uv-built"] == "failed"

    app, _ = plugin_app(workspace, tmp_path / "good", marked=True)
    app.synth()
    ours = json.loads((tmp_path / "good" / "uv-policy-report.json").read_text())
    assert all_passed(results(ours, "Stack/Api"))


@runs_as_plugin
def test_as_a_validation_plugin_the_id_the_cli_shows_acknowledges(workspace, cache_dir, tmp_path):
    """The CLI says "Acknowledge with 'cdk-uv-aspect::uv-built'": Validations.acknowledge takes it."""
    app, stack = plugin_app(workspace, tmp_path / "out", marked=False)
    ack = aws_cdk.Acknowledgment(id="cdk-uv-aspect::uv-built", reason="legacy inline code")
    aws_cdk.Validations.of(stack).acknowledge(ack)
    app.synth()
    ours = json.loads((tmp_path / "out" / "uv-policy-report.json").read_text())
    assert results(ours, "Stack/Plain")["uv-built"] == "acknowledged"


@runs_as_plugin
def test_a_plugin_added_to_a_stage_judges_only_the_stacks_of_that_stage(tmp_path):
    """The CDK hands a Stage's plugin that Stage's templates: functions elsewhere are not its findings."""
    app = App(outdir=str(tmp_path / "out"))
    add_function(Stack(app, "Top"), "Plain", None, handler="index.main", code=INLINE)
    prod = Stage(app, "Prod")
    add_function(Stack(prod, "Svc"), "Plain", None, handler="index.main", code=INLINE)
    aws_cdk.Validations.of(prod).add_plugins(UvPolicyChecks())
    synth(app)
    validation = json.loads((tmp_path / "out" / "validation-report.json").read_text())
    paths = [c["constructPath"] for v in our_violations(validation) for c in v["violatingConstructs"]]
    assert paths == ["Prod/Svc/Plain/Resource"]


@runs_as_plugin
def test_stacks_in_two_environments_are_each_judged_and_reported_once(tmp_path):
    """Some releases (2.262 to 2.269) run a plugin once per account and region: each function is judged
    once, and the checks' report holds them all."""
    app = App(outdir=str(tmp_path / "out"))
    for name, region in (("East", "us-east-1"), ("West", "us-west-2")):
        stack = Stack(app, name, env=aws_cdk.Environment(account="111111111111", region=region))
        add_function(stack, "Plain", None, handler="index.main", code=INLINE)
    aws_cdk.Validations.of(app).add_plugins(UvPolicyChecks())
    synth(app)
    validation = json.loads((tmp_path / "out" / "validation-report.json").read_text())
    paths = sorted(c["constructPath"] for v in our_violations(validation) for c in v["violatingConstructs"])
    assert paths == ["East/Plain/Resource", "West/Plain/Resource"]
    ours = json.loads((tmp_path / "out" / "uv-policy-report.json").read_text())
    assert results(ours, "East/Plain")["uv-built"] == results(ours, "West/Plain")["uv-built"] == "failed"
