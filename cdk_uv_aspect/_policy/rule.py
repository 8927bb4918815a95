"""What a rule is: an id, a severity, the text a user reads, and a pure check from facts to a result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .facts import FunctionFacts
    from .options import PolicyOptions

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Compliant:
    """The function passes the rule; ``note`` says what was checked when that is worth knowing."""

    note: str = ""


@dataclass(frozen=True)
class NonCompliant:
    """The function fails the rule. ``level`` overrides the rule's severity (a size warning, say)."""

    message: str
    level: Level | None = None


@dataclass(frozen=True)
class NotApplicable:
    """The rule does not apply to this function, and why."""

    reason: str


Verdict = Compliant | NonCompliant | NotApplicable


@dataclass(frozen=True)
class Rule:
    """One policy rule. The text lives here, beside the check; the check holds only the logic."""

    id: str
    severity: Level
    title: str
    explanation: str
    fix: str
    check: Callable[[FunctionFacts, PolicyOptions], Verdict]
