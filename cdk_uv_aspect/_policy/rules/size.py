"""uv-asset-size: the unzipped asset fits Lambda's 250 MB limit, with a warning below it."""

from __future__ import annotations

import os

from ..facts import FunctionFacts
from ..options import LAMBDA_UNZIPPED_LIMIT, PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict

MIB = 1024 * 1024


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.package_type == "Image":
        return NotApplicable("a container image (Lambda's limit for images is 10 GB)")
    if facts.asset_dir is None:
        return NotApplicable("no uv-built asset to inspect")
    total = 0
    for dirpath, _dirs, files in os.walk(facts.asset_dir):
        total += sum(os.stat(os.path.join(dirpath, name)).st_size for name in files)
    size = f"{total / MIB:.1f} MiB unzipped"
    if total > LAMBDA_UNZIPPED_LIMIT:
        return NonCompliant(f"{size}, over Lambda's limit of 250 MiB (262,144,000 bytes, layers included)")
    if total > options.size_warning_mb * MIB:
        return NonCompliant(
            f"{size}, over the warning threshold of {options.size_warning_mb:g} MiB "
            "(Lambda's limit is 250 MiB, layers included)",
            level="warning",
        )
    return Compliant(size)


RULE = Rule(
    id="uv-asset-size",
    severity="error",
    title="The asset fits Lambda's size limit",
    explanation="A function's unzipped code, layers included, must fit in 250 MiB (262,144,000 bytes): "
    "an error above it, a warning above size_warning_mb (200 MiB by default). Deploying a larger "
    "function fails in CloudFormation, late.",
    fix="drop dependencies the function does not use (check `uv tree --package <package>`), leave files "
    "out with UvOptions(exclude=[...]), or move the function to a container image",
    check=check,
)
