"""The policy checks' options: the report stays inside the cloud assembly."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Stack
from helpers import add_function, synth_app
from pydantic import ValidationError

from cdk_uv_aspect import PolicyOptions, UvPolicyChecks


@pytest.mark.parametrize(
    "name",
    [
        "../outside.json",
        "/tmp/outside.json",
        "sub/report.json",
        "..",
        ".hidden.json",
        "",
        "report.txt",
        "manifest.json",
        "tree.json",
        "Stack.template.json",
        "Stack.assets.json",
        "Stack.metadata.json",
        "report.json\n",
    ],
)
def test_a_report_name_that_would_leave_the_assembly_or_replace_the_cdks_files_is_refused(name: str):
    with pytest.raises(ValidationError, match=r"report must be a file name ending in \.json"):
        PolicyOptions(report=name)


@pytest.mark.slow
def test_the_report_is_written_into_the_assembly_under_its_name(workspace: Path, cache_dir: Path, tmp_path: Path):
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        Aspects.of(stack).add(UvPolicyChecks(report="policy.json"))

    synth_app(workspace, populate, outdir=out)
    assert (out / "policy.json").is_file()
    assert not (tmp_path / "policy.json").exists()


def test_the_default_report_name_is_accepted():
    assert PolicyOptions().report == "uv-policy-report.json"
    assert PolicyOptions(report=None).report is None
    App()  # no side effect of importing the checks
