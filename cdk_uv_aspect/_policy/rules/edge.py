"""uv-edge-limits: the function of a cloudfront.experimental.EdgeFunction fits Lambda@Edge."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..._archive import write_zip
from ..._lambda import EDGE_ARCHITECTURE, EDGE_RUNTIMES, EDGE_VIEWER_ZIPPED_LIMIT, EDGE_ZIPPED_LIMIT
from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict

MIB = 1024 * 1024


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if not facts.edge:
        return NotApplicable("not the function of a cloudfront.experimental.EdgeFunction")
    problems = []
    if facts.architecture != EDGE_ARCHITECTURE:
        problems.append(f"it runs on {facts.architecture}, and Lambda@Edge runs {EDGE_ARCHITECTURE} only")
    if facts.runtime not in EDGE_RUNTIMES:
        problems.append(f"Lambda@Edge does not run {facts.runtime or 'this runtime'}")
    if facts.environment:
        problems.append(f"it has environment variables ({', '.join(facts.environment)}), which Lambda@Edge refuses")
    if facts.asset_dir is None:
        zipped_note = "no uv-built asset to measure"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            zipped = write_zip(facts.asset_dir, Path(tmp, "asset.zip"))
        size = f"{zipped / MIB:.2f} MiB zipped"
        if zipped > EDGE_ZIPPED_LIMIT:
            problems.append(f"{size}, over the {EDGE_ZIPPED_LIMIT // MIB} MiB Lambda@Edge allows (origin triggers)")
        elif zipped > EDGE_VIEWER_ZIPPED_LIMIT:
            zipped_note = f"{size}: origin triggers only (viewer triggers allow 1 MiB)"
        else:
            zipped_note = f"{size}: fits viewer and origin triggers"
    if problems:
        return NonCompliant("; ".join(problems))
    return Compliant(zipped_note)


RULE = Rule(
    id="uv-edge-limits",
    severity="error",
    title="A Lambda@Edge function fits Lambda@Edge",
    explanation="The function of a cloudfront.experimental.EdgeFunction must run on x86_64 and a runtime "
    "Lambda@Edge supports, have no environment variables, and zip to at most 50 MiB (origin triggers; "
    "viewer triggers allow 1 MiB, which CloudFront checks when the function is associated). Otherwise the "
    "deployment fails late, in CloudFormation or CloudFront.",
    fix="give the EdgeFunction architecture=Architecture.X86_64 and a supported runtime, move configuration "
    "out of environment variables (into the code, or SSM read at run time), and drop dependencies it does "
    "not use (UvOptions(exclude=[...]))",
    check=check,
)
