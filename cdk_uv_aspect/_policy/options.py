"""PolicyOptions: every setting of UvPolicyChecks, with its default, validated when constructed."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    init_budget_ms: float | None = Field(
        default=None,
        gt=0,
        description="Fail a function whose init (importing its handler's module, the median of 3 cold starts "
        "from its asset on this machine, as `cdk-uv profile` measures it) takes longer than this many "
        "milliseconds, naming its three heaviest imports. A local measurement: Lambda adds its own start, "
        "and its CPU follows the memory setting. A function's marker may set its own "
        "(init_budget_ms). Off by default: every function then starts 4 times at each synth.",
    )
    report: str | None = Field(
        default="uv-policy-report.json",
        description="The file name of the JSON report written into the cloud assembly folder (next to "
        "manifest.json); None writes none. A plain file name ending in .json: no folder, no '..', and "
        "none of the names the CDK writes there (manifest.json, tree.json, <stack>.template.json...).",
    )

    @field_validator("report")
    @classmethod
    def _report_stays_in_the_assembly(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _REPORT_NAME.fullmatch(value) or value in _CDK_FILES or _CDK_SUFFIXES.search(value):
            raise ValueError(
                f"report must be a file name ending in .json, written into the cloud assembly folder, such as "
                f"'uv-policy-report.json'; {value!r} is a path, or not a .json name, or a file the CDK writes "
                "there itself"
            )
        return value


# A file name of letters, digits, '.', '_' and '-', not starting with '.': no separator, no '..', no
# hidden file. The CDK's own files in an assembly are refused: the report must not replace one.
_REPORT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\.json")
_CDK_FILES = frozenset({"manifest.json", "tree.json", "cdk.out"})
_CDK_SUFFIXES = re.compile(r"\.(template|assets|metadata)\.json$")
