"""PolicyOptions: every setting of UvPolicyChecks, with its default, validated when constructed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
"""Lambda's quota for a function's unzipped code, layers included: 262,144,000 bytes ("250 MB")."""


class PolicyOptions(BaseModel):
    """Options of :class:`UvPolicyChecks`; unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    include_cdk_internal: bool = Field(
        default=False,
        description="Also check the CDK's own functions (custom resource providers, BucketDeployment, "
        "log retention, AwsCustomResource...), recognised by the CDK's "
        "aws:cdk:is-custom-resource-handler-* metadata. They are exempt by default.",
    )
    size_warning_mb: float = Field(
        default=200,
        gt=0,
        le=250,
        description="Warn when a function's unzipped asset is larger than this many MiB; above 250 MiB "
        "(Lambda's limit) it is an error.",
    )
    deprecation_notice_days: int = Field(
        default=180,
        ge=0,
        description="Warn this many days before Lambda deprecates a function's Python runtime (and after it did).",
    )
    report: str | None = Field(
        default="uv-policy-report.json",
        description="The file name of the JSON report written into the cloud assembly folder (next to "
        "manifest.json); None writes none.",
    )
