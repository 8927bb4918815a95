"""Policy checks: every Lambda function is uv-built, and what was built would import on Lambda.

Layout: ``rule.py`` (what a rule is), ``rules/`` (one file per rule, and the registry), ``tree.py`` (the
construct tree, read once), ``facts.py`` (what the rules judge, read from the constructs), ``engine.py``
(results, acknowledgements, annotations, report), ``checks.py`` (the aspect), ``plugin.py`` (the
validation plugin form).
"""

from .checks import UvPolicyChecks
from .options import PolicyOptions
from .rules import RULES

__all__ = ["RULES", "PolicyOptions", "UvPolicyChecks"]
