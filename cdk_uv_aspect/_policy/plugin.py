"""UvPolicyChecks as a CDK policy validation plugin, on every aws-cdk-lib release that has the interface.

What a release hands a plugin, and what it does with the plugin's report, changed often (read from each
release's ``core/lib/private/synthesis.js``):

- 2.251 to 2.257: the context has only ``template_paths``; a failed report is printed, and a Python app
  still exits 0 (node's ``process.exitCode`` is set, not Python's: aws-cdk#26844).
- 2.258 and newer: the context also has ``app_construct`` (the construct tree the checks judge), and the
  report goes to ``validation-report.json``, which the CDK CLI reads and fails on (it tells the app so
  with the context key ``@aws-cdk/core:failSynthOnValidationErrors: false``). A plugin that raises is
  recorded there with no violation, which the CLI counts as a success.
- newer releases add ``stack_templates``, and raise from ``app.synth()`` outside the CLI.

So the plugin reads only ``app_construct`` and ``template_paths``; never raises (a crash becomes a fatal
violation, which no acknowledgement hides); where it can't run, it fails naming why; and where nothing
else would fail the synth on a failed report, it makes the app exit with status 1 when it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aws_cdk

from .. import _state
from .._files import atomic_write
from .._version import LIBRARY_VERSION

PLUGIN_SINCE = "2.258.0"
"""The first release whose validation context carries the construct tree (``app_construct``)."""

INTERFACE_SINCE = "2.251.0"
"""The first release with ``IPolicyValidationPlugin`` and ``Validations.of(app).add_plugins``."""

INTERFACE_READY = hasattr(aws_cdk, "IPolicyValidationPlugin")
TREE_READY = INTERFACE_READY and hasattr(aws_cdk.IPolicyValidationContext, "app_construct")

RULE_NAME = "uv-policy-checks"
"""The rule name of the fatal violation reported when the checks can't run or crashed."""

_FAIL_SYNTH = "@aws-cdk/core:failSynthOnValidationErrors"  # false: the CLI reads the report and fails
_APP_MODE = "@aws-cdk/core:appMode"  # and $CDK_APP_MODE: "inmemory" (tests) or "process"
_TEST_RUNNERS = ("PYTEST_CURRENT_TEST", "PYTEST_VERSION")  # as aws-cdk-lib tells a test from an app
_TOKENS = itertools.count()


def validate(context: Any, judge: Callable[[Any, list[str]], tuple[bool, list[Any]]]) -> Any:
    """The plugin's report for ``context``: ``judge(app, template_paths)`` gives (success, violations).

    The exit guard is armed before anything runs, so that even a crash this function can't catch (one in
    jsii, say) fails the synth; it is disarmed once a passing report is returned.
    """
    token = next(_TOKENS)
    _state.FAILED_CHECKS[token] = _exit_reason("UvPolicyChecks did not finish (it crashed where it could not say why)")
    _arm()
    app = getattr(context, "app_construct", None)  # an AttributeError before 2.258: the proxy has no such field
    paths = [str(p) for p in getattr(context, "template_paths", None) or []]
    try:
        if not INTERFACE_READY or app is None:
            success, violations = False, [_fatal(_cannot_run())]
        else:
            success, violations = judge(app, paths)
    except Exception as exc:  # the gate must not pass by crashing: a crash is a fatal violation
        success, violations = False, [_fatal(_crashed(exc))]
    report = _report(success, violations)
    del _state.FAILED_CHECKS[token]
    if not success and not _reported_elsewhere(app):
        # A fatal violation says itself why (some releases print only a file); findings are in the report.
        fatal = [str(v.description) for v in violations if v.severity == "fatal"]
        failed = sorted({str(v.rule_name) for v in violations if v.severity == "error"})
        what = fatal + ([f"{', '.join(failed)}: see the CDK's validation report"] if failed else [])
        _state.FAILED_CHECKS[token] = _exit_reason("; ".join(what))
    return report


def violation(rule_name: str, severity: str, description: str, fix: str | None, construct_path: str | None) -> Any:
    """A violation for this release's report; ``construct_path`` None: about the app as a whole."""
    if not INTERFACE_READY:
        beta = aws_cdk.PolicyViolationBeta1
        return beta(rule_name=rule_name, severity=severity, description=description, fix=fix, violating_resources=[])
    # The CLI prints a violation once per violating resource, and keeps only those in the stacks it
    # selected or with no construct path: the app's own path, "", is kept and shown. Before 2.258 a
    # resource needs a template and a logical id (and the CLI reads no report).
    where = construct_path or ""
    resources = [aws_cdk.PolicyViolatingResource(construct_path=where, locations=[])] if TREE_READY else []
    return aws_cdk.PolicyViolation(
        rule_name=rule_name, severity=severity, description=description, fix=fix, violating_resources=resources
    )


def _fatal(description: str) -> Any:
    # "fatal": the CDK lets no acknowledgement hide it.
    return violation(RULE_NAME, "fatal", description, None, None)


def _report(success: bool, violations: list[Any]) -> Any:
    make = aws_cdk.PolicyValidationPluginReport if INTERFACE_READY else aws_cdk.PolicyValidationPluginReportBeta1
    return make(success=success, violations=violations, plugin_version=LIBRARY_VERSION)


def _cannot_run() -> str:
    since = PLUGIN_SINCE if INTERFACE_READY else f"{INTERFACE_SINCE} (Validations.of(app).add_plugins), 2.258.0"
    return (
        f"cdk-uv-aspect: UvPolicyChecks can't run as a validation plugin on aws-cdk-lib {version('aws-cdk-lib')}: "
        f"it judges the construct tree, which aws-cdk-lib hands validation plugins from {since} on; this "
        "release hands them only the template paths. Fix: add the checks as an aspect instead, which works "
        "on every release: Aspects.of(app).add(UvPolicyChecks()); or upgrade aws-cdk-lib to "
        f"{PLUGIN_SINCE} or newer and keep Validations.of(app).add_plugins(UvPolicyChecks())"
    )


def _crashed(exc: Exception) -> str:
    return (
        f"cdk-uv-aspect: UvPolicyChecks crashed ({type(exc).__name__}: {exc}), so no function was judged. "
        "This is a bug in cdk-uv-aspect, please report it; meanwhile the checks as an aspect "
        "(Aspects.of(app).add(UvPolicyChecks())) judge the same functions"
    )


def _reported_elsewhere(app: Any) -> bool:
    """Whether a failed report fails the synth without us: the CDK CLI reads validation-report.json
    (2.258 and newer, when the CLI says so), or the caller inspects the app in memory (a test)."""
    if app is None:
        return _in_memory(None)
    try:
        return app.node.try_get_context(_FAIL_SYNTH) in (False, "false") or _in_memory(app)
    except Exception:
        return False


def _in_memory(app: Any) -> bool:
    mode = app.node.try_get_context(_APP_MODE) if app is not None else None
    mode = mode if mode in ("inmemory", "process") else os.environ.get("CDK_APP_MODE")
    if mode in ("inmemory", "process"):
        return bool(mode == "inmemory")
    return any(os.environ.get(name) for name in _TEST_RUNNERS)


def _exit_reason(what: str) -> str:
    return (
        f"cdk-uv-aspect: the policy checks failed. {what.removeprefix('cdk-uv-aspect: ')}\n"
        f"cdk-uv-aspect: aws-cdk-lib {version('aws-cdk-lib')} leaves a Python app's exit status at 0 when a "
        "validation plugin fails, so the app exits with status 1"
    )


def write_at_exit(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` when the app is done (the synth, and the CDK's checks of it, are over)."""
    _state.PENDING_REPORTS[path] = text
    _arm()


def _arm() -> None:
    if not _state.EXIT_GUARD:
        _state.EXIT_GUARD.append(_at_exit)
        atexit.register(_at_exit)


def _at_exit() -> None:
    """At exit: write the reports that had to wait; then, if a validation failed that nothing else fails
    the synth on, end the process with status 1."""
    for path, text in list(_state.PENDING_REPORTS.items()):
        with contextlib.suppress(OSError):  # the folder is gone: nothing to report into
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, text)
    _state.PENDING_REPORTS.clear()
    reasons = list(_state.FAILED_CHECKS.values())
    if not reasons or getattr(sys, "last_value", None) is not None:
        return  # nothing failed, or an uncaught exception already makes the status 1
    for reason in dict.fromkeys(reasons):
        print(reason, file=sys.stderr)
    # The other exit handlers first (jsii ends its node process), as a normal exit would run them.
    atexit.unregister(_at_exit)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream: nothing to flush
            stream.flush()
    os._exit(1)
