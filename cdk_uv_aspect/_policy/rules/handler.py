"""uv-handler: the handler's module is in the built asset and defines the function (read, never imported)."""

from __future__ import annotations

from ..._handler import Found, find_handler
from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.python is None:
        return NotApplicable(f"runtime {facts.runtime or 'unknown'} is not Python")
    if facts.asset_dir is None:
        return NotApplicable("no uv-built asset to inspect")
    if not facts.handler:
        return NotApplicable("the handler is not known at synthesis (a token)")
    found = find_handler(facts.asset_dir, facts.handler, facts.python)
    return Compliant(found.note) if isinstance(found, Found) else NonCompliant(found.message)


RULE = Rule(
    id="uv-handler",
    severity="error",
    title="The handler exists in the asset",
    explanation="The handler's module is in the built asset and defines the handler function, checked "
    "by reading the source (nothing is imported at synthesis). A misspelled handler otherwise fails "
    "only on the first invocation, with Runtime.ImportModuleError or Runtime.HandlerNotFound. The "
    "bundling aspect refuses such a function itself; this rule also judges functions built elsewhere.",
    fix='fix the function\'s handler ("module.function", e.g. "api.handler.main" for '
    "src/api/handler.py defining main), or add the module to the package the marker names",
    check=check,
)
