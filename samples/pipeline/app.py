"""A CDK Pipelines sample: the sample service deployed by a self-mutating CodePipeline, with no Docker.

The pipeline (in the pipeline account) synthesizes this app in one CodeBuild step that installs uv and
the CDK CLI, then deploys the service twice, as the Stages Beta and Prod (each in its own account),
with a manual approval before Prod. Each Stage adds the bundling aspect itself: aspects do not cross
Stage boundaries. No CodeBuild project of the pipeline is privileged: the synth step builds every
function with uv, and the service has only zip functions (an image function would need a privileged,
Docker-enabled asset-publishing project).

The synth step keeps uv's cache, the Pythons uv installs and the aspect's build cache in an S3 cache
keyed by the library version, the uv version and the hash of uv.lock (CodeBuild's `codebuild-hash-files`).
A changed uv.lock starts a new cache, and the aspect keys each build by the lock, the sources and the
target anyway, so no stale build is ever used. See docs/ci.md.

The synth step also reads and writes the team cache (docs/remote-cache.md): a bucket of the pipeline
stack that laptops read too, so that nobody builds again what the pipeline built. Its entries expire
after 30 days.

Edit the context in cdk.json (repository, branch, CodeConnections ARN, accounts, region), bootstrap the
pipeline account and the Beta and Prod accounts (these with `--trust` the pipeline account), and run
`cdk deploy` once from samples/pipeline/.
"""

import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aws_cdk import App, Aspects, Duration, Environment, Stack, Stage, Validations, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_uv_aspect import UvBundlingAspect, UvPolicyChecks

WORKSPACE = Path(__file__).resolve().parent.parent  # samples/: the uv workspace, with the service stack
sys.path.insert(0, str(WORKSPACE))  # in your repository the service stack is a module of your CDK app
from service import SampleStack  # noqa: E402

UV_VERSION = "0.13.9"
CDK_CLI_VERSION = "2.1148.1"
LAMBDA_PYTHONS = "3.11 3.12 3.13"  # the service's runtimes: bytecode is compiled by each exact Python
LOCK = "samples/uv.lock"  # relative to the repository root, where the synth step starts

# What the synth step caches between runs (CodeBuild builds run as root).
UV_CACHE = "/root/.cache/uv"
PYTHONS = "/root/.local/share/uv/python"
BUILD_CACHE = "/root/.cache/cdk-uv-aspect"
# A changed uv.lock, library or uv gives a new key, so a new cache; CodeBuild never updates a keyed cache.
CACHE_KEY = f"cdk-uv-{version('cdk-uv-aspect')}-uv{UV_VERSION}-$(codebuild-hash-files {LOCK})"
TEAM_PREFIX = "cdk-uv"  # the team cache's entries, in its bucket


class ServiceStage(Stage):
    """One deployment of the sample service: its stack, built by uv inside the Stage."""

    def __init__(self, scope: Construct, id: str, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.service = SampleStack(self, "UvService", images=False)
        Aspects.of(self).add(UvBundlingAspect(workspace=WORKSPACE))


class PipelineStack(Stack):
    """The self-mutating pipeline: source, synth (uv and the CDK CLI, no Docker), Beta, approval, Prod."""

    def __init__(self, scope: Construct, id: str, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        context = self.node.try_get_context
        source = pipelines.CodePipelineSource.connection(
            context("repository"), context("branch"), connection_arn=context("connection-arn")
        )
        cache = s3.Bucket(
            self,
            "SynthCache",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(30))],  # caches of old locks go
        )
        # The team cache: the pipeline writes, developers read (grant them s3:GetObject on the prefix and
        # s3:ListBucket). S3 expires by age, so an entry still in use is built once more after 30 days.
        team = s3.Bucket(
            self,
            "TeamBuildCache",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(prefix=f"{TEAM_PREFIX}/", expiration=Duration.days(30)),
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
        )
        synth = pipelines.CodeBuildStep(
            "Synth",
            input=source,
            env={
                "UV_CACHE_DIR": UV_CACHE,
                "UV_PYTHON_INSTALL_DIR": PYTHONS,
                "CDK_UV_CACHE_DIR": BUILD_CACHE,
                "CDK_UV_REMOTE_CACHE": f"s3://{team.bucket_name}/{TEAM_PREFIX}",
                "CDK_UV_REMOTE_CACHE_WRITE": "1",
            },
            role_policy_statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:PutObject"], resources=[team.arn_for_objects(f"{TEAM_PREFIX}/*")]
                ),
                # Without it, S3 answers a missing entry with "access denied", which stops the team cache.
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[team.bucket_arn]),
            ],
            install_commands=[
                f"python3 -m pip install --quiet --disable-pip-version-check uv=={UV_VERSION}",
                f"npm install --global --no-fund --no-audit aws-cdk@{CDK_CLI_VERSION}",
                f"uv python install {LAMBDA_PYTHONS}",
                # The CDK app's environment: aws-cdk-lib and this repository's library (in your
                # project, the locked CDK app: `uv sync --locked`).
                "uv venv --python 3.12 .venv",
                "uv pip install --python .venv '.[s3]'",  # boto3, for the team cache
            ],
            commands=[
                ". .venv/bin/activate",
                "cd samples/pipeline",
                "cdk synth",  # fails on any policy check error: nothing deploys
                "cdk-uv report",
                "uv cache prune --ci",  # keep only what uv built from source: wheels download faster
            ],
            primary_output_directory="samples/pipeline/cdk.out",
            build_environment=codebuild.BuildEnvironment(build_image=codebuild.LinuxBuildImage.STANDARD_7_0),
            cache=codebuild.Cache.bucket(cache, prefix="synth"),
            partial_build_spec=codebuild.BuildSpec.from_object(
                {"cache": {"key": CACHE_KEY, "paths": [f"{path}/**/*" for path in (UV_CACHE, PYTHONS, BUILD_CACHE)]}}
            ),
        )
        pipeline = pipelines.CodePipeline(
            self, "Pipeline", synth=synth, cross_account_keys=True, pipeline_type=codepipeline.PipelineType.V2
        )
        region = context("region")
        pipeline.add_stage(ServiceStage(self, "Beta", env=Environment(account=context("beta-account"), region=region)))
        pipeline.add_stage(
            ServiceStage(self, "Prod", env=Environment(account=context("prod-account"), region=region)),
            pre=[pipelines.ManualApprovalStep("PromoteToProd")],
        )


def main() -> None:
    app = App()
    # The policy checks as a plugin: they judge every stack of the app, the Stages' too, after synthesis,
    # and an error fails `cdk synth`, so the synth step, so the pipeline: a required gate.
    Validations.of(app).add_plugins(UvPolicyChecks())
    context = app.node.try_get_context
    PipelineStack(app, "UvPipeline", env=Environment(account=context("pipeline-account"), region=context("region")))
    app.synth()


if __name__ == "__main__":
    main()
