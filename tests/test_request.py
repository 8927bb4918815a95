"""A build request: options and marker merged, each choice checked against the package, all of it in the build key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import FIXTURES, assert_complete_error

from cdk_uv_aspect._errors import WorkspaceError
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._workspace import Workspace


def test_a_build_request_merges_options_and_marker_and_checks_them_against_the_package(tmp_path: Path):
    """Options apply to every function, a marker adds to them; each must exist in the package (uv.lock and
    pyproject.toml of tests/fixtures/groups), and the choices are part of the build key."""
    shutil.copytree(FIXTURES / "groups", tmp_path / "ws")
    workspace = Workspace.load(tmp_path / "ws")
    assert (workspace.package("shop").extras, workspace.package("shop").groups) == (("fast",), ("dev", "lint", "otel"))
    target = Target("3.12", "x86_64")
    plain = BuildRequest.create(workspace, "shop", target, UvOptions())
    chosen = BuildRequest.create(workspace, "shop", target, UvOptions(groups=["otel"]), extras=["Fast"])
    assert (chosen.extras, chosen.groups) == (("fast",), ("otel",))
    keys = {r.key("0.13.9") for r in (plain, chosen)}
    keys.add(BuildRequest.create(workspace, "shop", target, UvOptions(omit_runtime_provided=True)).key("0.13.9"))
    assert len(keys) == 3
    with pytest.raises(WorkspaceError) as error:
        BuildRequest.create(workspace, "basket", target, UvOptions(groups=["otel"]))
    assert_complete_error(
        str(error.value),
        construct=None,
        package="basket",
        target="python3.12 x86_64",
        fix="choose among the package's groups",
        also=["no dependency group 'otel' (from UvOptions(groups=...)", "its groups: none", "in their marker"],
    )
