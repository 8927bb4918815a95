"""uv-asset-size: the unzipped asset and the function's layers fit Lambda's 250 MB limit, with a warning below it."""

from __future__ import annotations

import os
from pathlib import Path

from ..facts import FunctionFacts
from ..options import LAMBDA_UNZIPPED_LIMIT, PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict

MIB = 1024 * 1024


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.package_type == "Image":
        return NotApplicable("a container image (Lambda's limit for images is 10 GB)")
    if facts.asset_dir is None:
        return NotApplicable("no uv-built asset to inspect")
    own = _size(facts.asset_dir)
    layers = sum(_size(folder) for folder in facts.layer_dirs)
    total = own + layers
    size = f"{total / MIB:.1f} MiB unzipped"
    if facts.layer_dirs:
        count = len(facts.layer_dirs)
        size += f" ({own / MIB:.1f} MiB of its own code, {layers / MIB:.1f} MiB in {count} layer{'s' * (count > 1)})"
    if facts.unmeasured_layers:
        size += f", and {facts.unmeasured_layers} layer(s) defined outside this app, not counted"
    if total > LAMBDA_UNZIPPED_LIMIT:
        return NonCompliant(f"{size}, over Lambda's limit of 250 MiB (262,144,000 bytes, layers included)")
    if total > options.size_warning_mb * MIB:
        return NonCompliant(
            f"{size}, over the warning threshold of {options.size_warning_mb:g} MiB "
            "(Lambda's limit is 250 MiB, layers included)",
            level="warning",
        )
    return Compliant(size)


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        total += sum(os.lstat(os.path.join(dirpath, name)).st_size for name in files)
    return total


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
