"""The aspect's errors as the CDK reports them: each a validation error of the first construct it names.

Also the one check made after a build and before the swap: the built folder has the function's handler.

The aspect never raises a ``UvError`` out of ``visit`` (jsii would wrap it in a Python and a JavaScript
traceback, the message twice): it collects them, merges those that failed alike into one error naming
each construct, and adds them as validations, so that the CDK fails ``app.synth()`` with them.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

import jsii
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import IValidation, Node

from . import _state
from ._annotations import add_warning
from ._errors import CodeError, UvError, debugging, report_cleanly
from ._handler import Missing
from ._request import BuildRequest
from ._state import jsii_ref


@dataclass
class _Failure:
    """An error to report, on the construct where the CDK shows it, for the functions it stopped."""

    error: UvError
    where: Node
    functions: list[lambda_.Function] = field(default_factory=list)


class Failures:
    """The errors found during one visit of the aspect, reported at its end."""

    def __init__(self) -> None:
        self._found: list[_Failure] = []

    def add(
        self, error: UvError, where: Node, functions: list[lambda_.Function], cause: BaseException | None = None
    ) -> None:
        if cause is not None and debugging():
            where_raised = "".join(traceback.format_exception(cause)).rstrip()
            error.details = f"{error.details}\n{where_raised}".strip()
            error.args = (error.render(),)
        self._found.append(_Failure(error, where, functions))

    def report(self) -> None:
        """Each error found during a visit as a validation error of its first construct: the CDK fails
        synthesis with it (``cdk synth`` and ``python app.py`` alike), and prints each once."""
        failures, self._found = self._found, []
        for failure in _merged(failures):
            for function in failure.functions:
                _state.FAILED.add(jsii_ref(function))
            failure.where.add_validation(_Refused(str(failure.error)))
        if failures:
            report_cleanly()


@jsii.implements(IValidation)
class _Refused:
    """A validation that fails synthesis with one of our errors."""

    def __init__(self, message: str) -> None:
        self._message = message

    def validate(self) -> list[str]:
        return [self._message]


def _merged(failures: list[_Failure]) -> list[_Failure]:
    """One error for the functions that failed alike (no workspace, say), naming each of them."""
    groups: dict[tuple[Any, ...], _Failure] = {}
    for failure in failures:
        e = failure.error
        key = (type(e), e.problem, e.fix, e.details)
        if key not in groups:
            groups[key] = _Failure(e, failure.where, list(failure.functions))
            continue
        group = groups[key]
        known = group.error
        constructs = [*known.constructs, *(c for c in e.constructs if c not in known.constructs)]
        merged = known.with_constructs(constructs)
        merged.package = _both(known.package, e.package, ", ")
        merged.target = _both(known.target, e.target, "; ")
        merged.args = (merged.render(),)
        group.error = merged
        group.functions += failure.functions
    return list(groups.values())


def _both(known: Any, new: Any, sep: str) -> Any:
    """What a merged error names: each package (or target) of the errors merged, in their order."""
    if known is None or new is None:
        return known if new is None else new
    names = str(known).split(sep)
    return known if str(new) in names else sep.join([*names, str(new)])


def handler_not_built(
    function: lambda_.Function, node: Node, request: BuildRequest, missing: Missing
) -> UvError | None:
    """The error for a build without the function's handler; None when the function has layers, which may
    bring the handler's module (a wrapper such as Datadog's): a warning says so, and the build is used."""
    cfn = node.default_child
    if isinstance(cfn, lambda_.CfnFunction) and Stack.of(cfn).resolve(cfn.layers):
        # A layer can bring the handler's module (a wrapper such as Datadog's): say so, and build.
        add_warning(
            function,
            "cdk-uv-aspect:handler-not-in-asset",
            f'{node.path}: the handler "{missing.handler}" is not in the build of package '
            f"{request.package} ({missing.reason}); the function has layers, so it is left to them to bring it",
        )
        return None
    return CodeError(
        f'the function\'s handler "{missing.handler}" is not in the build of package {request.package}: '
        f"{missing.reason} (Lambda would fail every invocation with {missing.error_type})",
        package=request.package,
        target=request.target,
        constructs=[node.path],
        fix="fix the function's handler (\"module.function\": the module's import path in the asset, "
        'e.g. "api.handler.main" for src/api/handler.py defining main), or mark the function with the '
        "package that has that module",
    )
