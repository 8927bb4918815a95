"""The CDK Pipelines sample (samples/pipeline/), synthesized by the real CDK CLI as CI runners run it.

Each "runner" is a checkout of its own: its own folder, HOME, TMPDIR, umask and build cache (the
default one, under its HOME). What they share is what a CI image provides: this Python with
cdk-uv-aspect, the CDK CLI, the Lambda runtimes' interpreters and uv's download cache (wheels as
published on PyPI, not builds). No AWS account is needed: the pipeline is only synthesized.

Synths, reused by every test here: runner A and runner B (cold), runner C (A's build cache restored
with new mtimes) and runner D (the same, after uv.lock changed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk
import pytest
from aws_cdk import App, Environment
from aws_cdk import aws_lambda as lambda_
from helpers import REPO

from cdk_uv_aspect import UvPolicyChecks

pytestmark = pytest.mark.slow

CDK = REPO / "node_modules" / ".bin" / "cdk"  # what `npx cdk` runs in the repository
CDK_UV = str(Path(sys.executable).with_name("cdk-uv"))
PIPELINE = "UvPipeline"
CLI_TIMEOUT = 600
# One line per build: `Bundling uv package orders (python3.12-x86_64) for UvPipeline/Beta/... built in 1.8s`.
# Matched anywhere, not per line: lines of builds that end together can share a line of stderr.
PROGRESS = re.compile(
    r"Bundling uv package (\S+) \((\S+)\) for (\S+?)(?:, \S+?)*(?: and \d+ more)?\.\.\. "
    r"(built|from cache|from the team cache) in"
)
# How docs/ci.md compares CI's `cdk-uv report --json` with a laptop's: a jq filter dropping the fields
# that describe the runner, not the code. Every jq command of the page uses it.
DOCUMENTED_FILTERS = set(re.findall(r"jq -S '([^']*)'", (REPO / "docs" / "ci.md").read_text()))


def files_of(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Relative path -> (mode, content) of every file below ``folder``. Folders are left out: the CDK's
    staged copy makes them with the umask of `cdk synth`, and the CLI's zip holds only files."""
    return {
        p.relative_to(folder).as_posix(): (oct(p.stat().st_mode & 0o777), p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _machine_dir(*args: str) -> str:
    """A folder of this machine's uv (its download cache, its Pythons), as the developer's HOME has it."""
    return subprocess.run(["uv", *args], capture_output=True, text=True, check=True).stdout.strip()


@dataclass(frozen=True)
class Synth:
    out: Path  # the cloud assembly
    stderr: str
    builds: list[tuple[str, str, str, str]]  # (package, target, first function path, "built" | "from cache")
    _report: list[dict] = field(default_factory=list, compare=False, repr=False)

    def templates(self) -> dict[str, bytes]:
        """Every template and asset manifest of the assembly (the Stages' too), by relative path."""
        return {
            p.relative_to(self.out).as_posix(): p.read_bytes()
            for pattern in ("*.template.json", "*.assets.json")
            for p in self.out.rglob(pattern)
        }

    def template(self, name: str) -> dict:
        return json.loads(next(self.out.rglob(f"{name}*.template.json")).read_text())

    def function_assets(self) -> dict[str, str]:
        """Stage/function -> asset hash (the S3 key of its zip, without .zip), over both Stages."""
        found = {}
        for stage in ("Beta", "Prod"):
            for lid, res in self.template(f"{PIPELINE}{stage}UvService").get("Resources", {}).items():
                if res["Type"] == "AWS::Lambda::Function":
                    found[f"{stage}/{lid}"] = res["Properties"]["Code"]["S3Key"].removesuffix(".zip")
        return found

    def report(self, *, raw: bool = False) -> list[dict]:
        """`cdk-uv report --json` of the assembly, without the fields docs/ci.md drops (unless ``raw``)."""
        if not self._report:  # each run zips every asset: run it once
            done = subprocess.run(
                [CDK_UV, "report", "--json", str(self.out)], capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, done.stderr
            self._report.extend(json.loads(done.stdout))
        records = json.loads(json.dumps(self._report))
        return records if raw else [{k: v for k, v in r.items() if k not in runner_fields()} for r in records]


def runner_fields() -> list[str]:
    """The fields the documented filter deletes: ``map(del(.assetDir, ...))``."""
    (jq_filter,) = DOCUMENTED_FILTERS
    deleted = re.fullmatch(r"map\(del\(([.\w, ]+)\)\)", jq_filter)
    assert deleted, jq_filter
    return [name.strip().removeprefix(".") for name in deleted.group(1).split(",")]


class Runner:
    """A CI runner: a checkout of samples/ at a path of its own, with its own HOME, TMPDIR and umask."""

    def __init__(self, root: Path, checkout: str, umask: int, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.extra_env = env or {}  # e.g. the AWS SDK's configuration of a role, a team cache
        self.repo = root / checkout
        self.home = root / "home"
        self.tmp = root / "tmp"
        self.umask = umask
        shutil.copytree(
            REPO / "samples",
            self.repo / "samples",
            ignore=shutil.ignore_patterns("cdk.out", ".venv", "__pycache__", "retrofit"),
        )
        self.home.mkdir()
        self.tmp.mkdir()

    @property
    def build_cache(self) -> Path:
        """The aspect's default build cache: ``~/.cache/cdk-uv-aspect`` of this runner's HOME."""
        return self.home / ".cache" / "cdk-uv-aspect"

    def restore_cache(self, saved: Path) -> None:
        """Restore a saved build cache as CI caches do: same bytes, every file and folder with a new mtime."""
        shutil.copytree(saved, self.build_cache, copy_function=shutil.copyfile)
        later = time.time() + 3600
        for path in [self.build_cache, *self.build_cache.rglob("*")]:
            os.utime(path, (later, later), follow_symlinks=False)

    def env(self) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "CDK_UV_")) and k not in ("HOME", "TMPDIR", "PWD", "XDG_CACHE_HOME")
        }
        return {
            **keep,
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            # the app runs as `python app.py` (cdk.json): this test's Python, which has cdk_uv_aspect
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            # what the CI image provides: uv's download cache and the runtimes' interpreters
            "UV_CACHE_DIR": _machine_dir("cache", "dir"),
            "UV_PYTHON_INSTALL_DIR": _machine_dir("python", "dir"),
            "PYENV_ROOT": os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),
            # and the jsii runtime's unpacked aws-cdk-lib (200 MB per HOME otherwise; no effect on output)
            "JSII_RUNTIME_PACKAGE_CACHE_ROOT": os.environ.get(
                "JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(Path.home() / ".cache" / "aws" / "jsii" / "package-cache")
            ),
            "AWS_EC2_METADATA_DISABLED": "true",  # no credentials to look for: nothing is deployed
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            **self.extra_env,
        }

    def synth(self, app: str = "samples/pipeline") -> Synth:
        """``cdk synth`` in ``app`` (samples/pipeline/, as the pipeline's synth step runs it)."""
        folder = self.repo / app
        stderr = self.cdk("synth", "--quiet", app=app)
        return Synth(folder / "cdk.out", stderr, PROGRESS.findall(stderr))

    def cdk(self, *args: str, app: str = "samples/pipeline") -> str:
        """The CDK CLI run with ``args`` in the folder ``app``, which must succeed; its stderr."""
        folder = self.repo / app
        env = self.env()
        proc = subprocess.Popen(
            [str(CDK), *args, "--no-notices"],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            umask=self.umask,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and the app it started
            stdout, stderr = proc.communicate()
            pytest.fail(f"cdk {args[0]} took more than {CLI_TIMEOUT} s:\n{stderr[-4000:]}")
        assert proc.returncode == 0, f"cdk {args[0]} failed ({proc.returncode}):\n{stdout[-2000:]}\n{stderr[-4000:]}"
        return stderr


@pytest.fixture(scope="module")
def runner_a(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runner, Synth]:
    """Runner A: checkout at a short path, umask 022, empty build cache."""
    runner = Runner(tmp_path_factory.mktemp("runner-a"), "src", umask=0o022)
    return runner, runner.synth()


@pytest.fixture(scope="module")
def runner_b(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runner, Synth]:
    """Runner B: checkout at a deeper path, umask 077, empty build cache."""
    runner = Runner(tmp_path_factory.mktemp("runner-b"), "builds/agent-7/work/1/service", umask=0o077)
    return runner, runner.synth()


# --- the pipeline ----------------------------------------------------------------------------------


def pipeline_resources(synth: Synth, kind: str) -> dict[str, dict]:
    resources = synth.template(PIPELINE).get("Resources", {})
    return {lid: res["Properties"] for lid, res in resources.items() if res["Type"] == kind}


def test_the_pipeline_synthesizes_with_both_stages_built_by_uv(runner_a: tuple[Runner, Synth]):
    """Synth, self-mutation, assets, Beta, approval, Prod; every function of both Stages uv-built."""
    _, synth = runner_a
    (pipeline,) = pipeline_resources(synth, "AWS::CodePipeline::Pipeline").values()
    assert [stage["Name"] for stage in pipeline["Stages"]] == [
        "Source",
        "Build",
        "UpdatePipeline",
        "Assets",
        "Beta",
        "Prod",
    ]
    records = synth.report()
    assert {(r["function"].split("/")[1], r["package"], r["target"]) for r in records} == {
        (stage, package, target)
        for stage in ("Beta", "Prod")
        for package, target in [
            ("orders", "python3.12-x86_64"),
            ("orders", "python3.12-arm64"),
            ("users", "python3.11-x86_64"),
            ("report", "python3.13-arm64"),
        ]
    }


def test_no_codebuild_project_of_the_pipeline_is_privileged(runner_a: tuple[Runner, Synth]):
    """Synth, self-mutation and asset publishing all run without Docker, so without privileged mode."""
    _, synth = runner_a
    projects = pipeline_resources(synth, "AWS::CodeBuild::Project")
    assert len(projects) >= 3  # synth, self-mutation, at least one asset
    assert {lid: p["Environment"].get("PrivilegedMode", False) for lid, p in projects.items()} == {
        lid: False for lid in projects
    }


def publish_commands(synth: Synth) -> dict[str, list[str]]:
    """Action name -> the `cdk-assets ... publish` commands of each action of the Assets stage."""
    projects = pipeline_resources(synth, "AWS::CodeBuild::Project")
    (pipeline,) = pipeline_resources(synth, "AWS::CodePipeline::Pipeline").values()
    (assets,) = [stage for stage in pipeline["Stages"] if stage["Name"] == "Assets"]
    found = {}
    for action in assets["Actions"]:
        spec = json.loads(projects[action["Configuration"]["ProjectName"]["Ref"]]["Source"]["BuildSpec"])
        found[action["Name"]] = [c for c in spec["phases"]["build"]["commands"] if c.startswith("cdk-assets")]
    return found


def test_one_publishing_action_per_asset_hash_shared_by_both_stages(runner_a: tuple[Runner, Synth]):
    """Beta and Prod run the same code: each distinct asset is published by one action, to both Stages."""
    _, synth = runner_a
    assets = synth.function_assets()
    for path, asset in assets.items():
        if path.startswith("Beta/"):
            assert assets[path.replace("Beta/", "Prod/", 1)] == asset, path  # same logical ids, same code
    distinct = set(assets.values())
    assert len(distinct) == 4  # orders x86_64 and arm64, users, report
    published = {}
    for action, commands in publish_commands(synth).items():
        # e.g. cdk-assets --path "assembly-UvPipeline-Beta/....assets.json" --verbose publish "HASH:ACCOUNT-REGION-..."
        targets = {
            re.search(r'--path "assembly-UvPipeline-(\w+)/', c).group(1): re.search(r'publish "(\w+):', c).group(1)
            for c in commands
        }
        assert set(targets) == {"Beta", "Prod"}, action
        assert len(set(targets.values())) == 1, action
        published[action] = targets["Beta"]
    assert sorted(published.values()) == sorted(distinct)


def test_the_synth_step_caches_uv_and_the_build_cache_keyed_on_the_lock(runner_a: tuple[Runner, Synth]):
    """CodeBuild's S3 cache holds every folder the synth step's uv and aspect write to, under a key
    made of the hash of uv.lock, the library version and the uv version the step installs."""
    _, synth = runner_a
    projects = pipeline_resources(synth, "AWS::CodeBuild::Project")
    (synth_project,) = [p for lid, p in projects.items() if "Synth" in lid]
    assert synth_project["Cache"]["Type"] == "S3"
    spec = json.loads(synth_project["Source"]["BuildSpec"])
    env = {v["Name"]: v["Value"] for v in synth_project["Environment"]["EnvironmentVariables"]}
    cached = spec["cache"]["paths"]
    for variable in ("UV_CACHE_DIR", "UV_PYTHON_INSTALL_DIR", "CDK_UV_CACHE_DIR"):
        assert f"{env[variable]}/**/*" in cached, variable

    key = spec["cache"]["key"]
    lock = re.fullmatch(r"cdk-uv-(\S+)-uv(\S+)-\$\(codebuild-hash-files (\S+)\)", key)
    assert lock, key
    library, uv, lock_path = lock.groups()
    from importlib.metadata import version

    assert library == version("cdk-uv-aspect")
    assert (REPO / lock_path).is_file()  # the path is the repository's lock, from where the step starts
    assert f"uv=={uv}" in " ".join(spec["phases"]["install"]["commands"])  # the uv the step installs
    assert "uv cache prune --ci" in spec["phases"]["build"]["commands"]


def test_the_synth_step_reads_and_writes_a_team_cache_whose_entries_expire(runner_a: tuple[Runner, Synth]):
    """docs/remote-cache.md in the sample: the synth step points CDK_UV_REMOTE_CACHE at a private bucket of
    the pipeline stack, writes to it, may read, write and list it, and has boto3; entries expire."""
    _, synth = runner_a
    projects = pipeline_resources(synth, "AWS::CodeBuild::Project")
    (synth_id,) = [lid for lid in projects if "Synth" in lid]
    env = {v["Name"]: v["Value"] for v in projects[synth_id]["Environment"]["EnvironmentVariables"]}
    (bucket_id,) = [lid for lid in pipeline_resources(synth, "AWS::S3::Bucket") if lid.startswith("TeamBuildCache")]
    assert env["CDK_UV_REMOTE_CACHE"] == {"Fn::Join": ["", ["s3://", {"Ref": bucket_id}, "/cdk-uv"]]}
    assert env["CDK_UV_REMOTE_CACHE_WRITE"] == "1"
    bucket = pipeline_resources(synth, "AWS::S3::Bucket")[bucket_id]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert {"Prefix": "cdk-uv/", "ExpirationInDays": 30, "Status": "Enabled"}.items() <= rules[0].items()
    assert bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    role = projects[synth_id]["ServiceRole"]["Fn::GetAtt"][0]
    granted = [
        statement
        for policy in pipeline_resources(synth, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Roles"]
        for statement in policy["PolicyDocument"]["Statement"]
        if bucket_id in json.dumps(statement["Resource"])
    ]
    actions = {
        a
        for statement in granted
        for a in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= actions
    spec = json.loads(projects[synth_id]["Source"]["BuildSpec"])
    assert any("'.[s3]'" in c for c in spec["phases"]["install"]["commands"])


# --- runners agree --------------------------------------------------------------------------------


def first_builds(synth: Synth) -> dict[tuple[str, str], str]:
    """(package, target) -> how its first build in the synth went: "built" or "from cache"."""
    found: dict[tuple[str, str], str] = {}
    for package, target, _, how in synth.builds:
        found.setdefault((package, target), how)
    return found


def test_two_runners_synthesize_identical_templates_and_asset_hashes(
    runner_a: tuple[Runner, Synth], runner_b: tuple[Runner, Synth]
):
    """Another checkout path, HOME, TMPDIR and umask, and an empty build cache: the same templates and
    asset manifests byte for byte, the same asset hashes and files (their modes too), the same report."""
    (_, a), (_, b) = runner_a, runner_b
    assert set(first_builds(a).values()) == set(first_builds(b).values()) == {"built"}  # both built cold
    assert len(first_builds(b)) == 4
    assert sorted(b.templates()) == sorted(a.templates())
    for name, content in a.templates().items():
        assert b.templates()[name] == content, name
    assert b.function_assets() == a.function_assets()
    for asset in set(a.function_assets().values()):
        assert files_of(b.out / f"asset.{asset}") == files_of(a.out / f"asset.{asset}"), asset
    assert b.report() == a.report()
    assert a.report(raw=True) != b.report(raw=True)  # what the filter drops does tell them apart
    if shutil.which("jq"):  # the documented command itself (runs everywhere jq is installed)
        (jq_filter,) = DOCUMENTED_FILTERS
        done = subprocess.run(
            ["jq", "-S", jq_filter], input=json.dumps(b.report(raw=True)), capture_output=True, text=True, check=True
        )
        assert json.loads(done.stdout) == a.report()


def test_a_restored_cache_with_new_mtimes_rebuilds_nothing(
    runner_a: tuple[Runner, Synth], tmp_path_factory: pytest.TempPathFactory
):
    """Runner A's build cache restored on a third runner, every mtime new (as CI restores do): every
    build of both Stages comes from the cache, and the assembly is runner A's."""
    first, a = runner_a
    runner = Runner(tmp_path_factory.mktemp("runner-c"), "ci/checkout", umask=0o027)
    runner.restore_cache(first.build_cache)
    entries = sorted(p.name for p in (runner.build_cache / "builds").iterdir())
    synth = runner.synth()
    assert len(synth.builds) == 8  # 4 builds per Stage
    assert {how for *_, how in synth.builds} == {"from cache"}, synth.stderr
    assert sorted(p.name for p in (runner.build_cache / "builds").iterdir()) == entries
    assert synth.templates() == a.templates()
    assert [r["cached"] for r in synth.report(raw=True)] == [True] * 8


def test_a_changed_lock_is_never_served_a_build_from_the_restored_cache(
    runner_a: tuple[Runner, Synth], tmp_path_factory: pytest.TempPathFactory
):
    """The same restored cache after uv.lock changed (a release of `report`, locked by uv): every package
    is built again, also those whose sources and locked closure stayed as they were; their builds are
    byte for byte the old ones, so their asset hashes too: nothing of theirs is redeployed."""
    first, a = runner_a
    runner = Runner(tmp_path_factory.mktemp("runner-d"), "ci/checkout", umask=0o022)
    runner.restore_cache(first.build_cache)
    workspace = runner.repo / "samples"
    lock = (workspace / "uv.lock").read_text()
    project = workspace / "packages" / "report" / "pyproject.toml"
    project.write_text(project.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))
    # The lock as `uv lock` writes it for this release: the member's version line alone changes. Written
    # here, not resolved: `uv lock --offline` failed or passed by what uv's cache happened to hold. The
    # synth's lock check (`uv lock --locked`) proves it matches the project.
    relocked = lock.replace('name = "report"\nversion = "0.1.0"', 'name = "report"\nversion = "0.1.1"')
    assert relocked != lock
    (workspace / "uv.lock").write_text(relocked)
    synth = runner.synth()
    assert first_builds(synth) == {
        ("orders", "python3.12-x86_64"): "built",
        ("orders", "python3.12-arm64"): "built",
        ("users", "python3.11-x86_64"): "built",
        ("report", "python3.13-arm64"): "built",
    }, synth.stderr
    unchanged = {path: asset for path, asset in a.function_assets().items() if "Report" not in path}
    assert {path: synth.function_assets()[path] for path in unchanged} == unchanged


def load_sample(checkout: Path):
    """samples/pipeline/app.py of a checkout, as a module (its main() is not run)."""
    spec = importlib.util.spec_from_file_location("pipeline_sample_app", checkout / "samples" / "pipeline" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_policy_error_fails_the_synth_step_so_nothing_deploys(
    runner_a: tuple[Runner, Synth], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The checks run as a plugin over every Stage: a Beta function that is not uv-built fails the synth
    (so the synth step, before any Stage deploys), naming the rule and the function. (A marked function
    whose handler is missing never gets this far: the bundling aspect refuses it itself.)"""
    runner, _ = runner_a
    monkeypatch.setenv("CDK_UV_CACHE_DIR", str(runner.build_cache))  # runner A's builds: nothing to build
    sample = load_sample(runner.repo)

    class ServiceWithABrokenFunction(sample.SampleStack):  # type: ignore[misc, name-defined]
        def __init__(self, scope, id: str, **kwargs) -> None:
            super().__init__(scope, id, **kwargs)
            if scope.node.id == "Beta":
                lambda_.Function(
                    self,
                    "Broken",
                    runtime=lambda_.Runtime.PYTHON_3_12,
                    code=lambda_.Code.from_inline("def main(event, context):\n    return 1\n"),
                    handler="index.main",
                )

    # CDK Pipelines synthesizes a Stage when it is added: the function must be there from the start.
    monkeypatch.setattr(sample, "SampleStack", ServiceWithABrokenFunction)
    context = json.loads((runner.repo / "samples" / "pipeline" / "cdk.json").read_text())["context"]
    out = tmp_path / "out"
    app = App(outdir=str(out), context=context)
    aws_cdk.Validations.of(app).add_plugins(UvPolicyChecks())  # as the sample's main() does
    sample.PipelineStack(app, PIPELINE, env=Environment(account=context["pipeline-account"], region=context["region"]))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((out / "validation-report.json").read_text())
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == "cdk-uv-aspect"]
    assert [(v["ruleName"], c["constructPath"]) for v in plugin["violations"] for c in v["violatingConstructs"]] == [
        ("uv-built", f"{PIPELINE}/Beta/UvService/Broken/Resource")
    ]
