"""The registry: every policy rule, in the order they are reported. A rule not listed here never runs."""

from __future__ import annotations

from ..rule import Rule
from . import edge, handler, init_budget, native, requires_python, runtime, runtime_sdk, size, uv_built

RULES: tuple[Rule, ...] = (
    uv_built.RULE,
    handler.RULE,
    native.RULE,
    size.RULE,
    requires_python.RULE,
    runtime.RULE,
    edge.RULE,
    runtime_sdk.RULE,
    init_budget.RULE,
)

BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
