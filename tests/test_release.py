"""The release workflow (.github/workflows/release.yml) passes actionlint, and its build job, run here as
GitHub runs it, builds an sdist and a wheel of the tag's version whose metadata pass `twine check`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import REPO
from shell_docs import copy_checkout
from test_ci_samples import actionlint, schema_check

RELEASE = REPO / ".github" / "workflows" / "release.yml"


@pytest.mark.seconds
def test_the_release_workflow_passes_actionlint_and_its_schema():
    done = actionlint(RELEASE)
    assert done.returncode == 0, done.stdout + done.stderr
    done = schema_check("vendor.github-workflows", RELEASE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_release_publishes_with_trusted_publishing_from_a_version_tag():
    """Only a `v*` tag starts it; publishing has the OIDC token and the `pypi` environment, nothing else."""
    workflow = yaml.safe_load(RELEASE.read_text())
    on = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert on == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {}
    publish = workflow["jobs"]["publish"]
    assert publish["needs"] == "build" and publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    assert any("uv publish --trusted-publishing always" in step.get("run", "") for step in publish["steps"])


@pytest.mark.slow
def test_the_build_job_makes_the_tags_version_with_checked_metadata(tmp_path: Path):
    """The build job's scripts, in order, in a clean copy of the checkout with the tag v9.8.7: an sdist and
    a wheel of 9.8.7 (twine check --strict passes on both); a tag that the version can't be is refused."""
    steps = yaml.safe_load(RELEASE.read_text())["jobs"]["build"]["steps"]
    scripts = [step["run"] for step in steps if "run" in step]
    checkout = copy_checkout(tmp_path / "checkout")
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "GITHUB_REF_NAME": "v9.8.7",
    }
    for script in scripts:
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    dist = checkout / "dist"
    assert sorted(p.name for p in dist.iterdir() if not p.name.startswith(".")) == [
        "cdk_uv_aspect-9.8.7-py3-none-any.whl",
        "cdk_uv_aspect-9.8.7.tar.gz",
    ]
    with zipfile.ZipFile(dist / "cdk_uv_aspect-9.8.7-py3-none-any.whl") as wheel:
        metadata = wheel.read("cdk_uv_aspect-9.8.7.dist-info/METADATA").decode()
        assert "cdk_uv_aspect/py.typed" in wheel.namelist()
    assert "\nVersion: 9.8.7\n" in metadata and re.search(r"^Requires-Dist: uv[<>=]", metadata, flags=re.M)
    with tarfile.open(dist / "cdk_uv_aspect-9.8.7.tar.gz") as sdist:
        names = sdist.getnames()
    assert "cdk_uv_aspect-9.8.7/pyproject.toml" in names and "cdk_uv_aspect-9.8.7/README.md" in names

    bad = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", scripts[0]],
        cwd=checkout,
        env={**env, "GITHUB_REF_NAME": "vnext"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0, bad.stdout
