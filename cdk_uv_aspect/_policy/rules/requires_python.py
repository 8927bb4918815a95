"""uv-requires-python: the package's requires-python admits the runtime's Python."""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier

from ..._workspace import admits
from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.python is None:
        return NotApplicable(f"runtime {facts.runtime or 'unknown'} is not Python")
    if facts.build is None:
        return NotApplicable("not built by uv")
    spec = facts.build.requires_python
    if not spec:
        return Compliant(f"package {facts.build.package} declares no requires-python")
    try:
        admitted = admits(spec, facts.python)
    except InvalidSpecifier:
        return NonCompliant(f"requires-python {spec!r} is not a valid version specifier")
    if not admitted:
        return NonCompliant(f"package {facts.build.package} requires Python {spec}, the function runs {facts.runtime}")
    return Compliant(f"requires-python {spec} admits {facts.python}")


RULE = Rule(
    id="uv-requires-python",
    severity="error",
    title="requires-python admits the runtime",
    explanation="The package's requires-python (from its pyproject.toml) admits the Python version of "
    "the function's runtime. The bundling aspect refuses such a build; this rule catches a runtime "
    "changed after the build (by another aspect, or an override on the CfnFunction).",
    fix="give the function a runtime that requires-python admits, or widen requires-python in the "
    "package's pyproject.toml and run `uv lock`",
    check=check,
)
