"""Placeholder codes for marked functions: they create no asset, and fail synthesis if never replaced.

``UvCode()`` (zip functions) points at an S3 bucket that can't exist; ``uv_image_code()`` (image
functions) at an ECR repository that can't exist. Each registers one validation per stack, which fails
``cdk synth`` for every function still holding it when bundling was required: a function no aspect
reached never deploys unbuilt code.
"""

from __future__ import annotations

import json
import typing

import jsii
from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct, IValidation

from . import _state
from ._errors import report_cleanly
from ._marker import markers_of

PLACEHOLDER_BUCKET = "cdk-uv-aspect-code-was-never-built"
PLACEHOLDER_REPOSITORY = "cdk-uv-aspect-image-was-never-built"
_PLACEHOLDER_REPOSITORY_ID = "CdkUvImagePlaceholder"


def is_swapped(function: object) -> bool:
    """Whether an aspect swapped this function's code."""
    return _state.jsii_ref(function) in _state.SWAPPED


def failed(function: object) -> bool:
    """Whether an aspect reported an error for this function (its own error says why it is unbuilt)."""
    return _state.jsii_ref(function) in _state.FAILED


def has_placeholder(function: object) -> bool:
    """Whether this function was created with ``code=UvCode()``."""
    return _state.jsii_ref(function) in _state.PLACEHOLDERS


@jsii.implements(IValidation)
class _SwappedCheck:
    """One check per stack of the functions created there with ``UvCode()``: each a swapped one."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self.functions: list[Construct] = []

    @classmethod
    def of(cls, stack: Stack) -> _SwappedCheck:
        # Kept on the stack's Python object (jsii hands out one object per construct): one validation
        # callback per stack at synthesis instead of one per function.
        check: _SwappedCheck | None = getattr(stack, "_cdk_uv_swapped_check", None)
        if check is None:
            check = cls(stack)
            stack.node.add_validation(check)
            stack._cdk_uv_swapped_check = check  # type: ignore[attr-defined]
        return check

    def validate(self) -> list[str]:
        if not self._stack.bundling_required:
            return []
        return _reported(
            [never_built(fn, "UvCode()") for fn in self.functions if not is_swapped(fn) and not failed(fn)]
        )


def never_built(function: Construct, placeholder: str) -> str:
    # A marked function missed only the aspect: telling it to "mark it" sends its author the wrong way.
    todo = (
        "It is marked, so no aspect reached it: add Aspects.of(app).add(UvBundlingAspect())"
        if markers_of(function.node)
        else 'Mark it (fn.node.add_metadata("uv", "<package>")) and add Aspects.of(app).add(UvBundlingAspect())'
    )
    return (
        f"cdk-uv-aspect: {function.node.path} uses {placeholder} but no UvBundlingAspect built it. {todo}; "
        "functions inside a Stage need the aspect added to that Stage (Aspects.of(self).add(UvBundlingAspect()) "
        "in its constructor), because aspects do not cross Stage boundaries."
    )


class UvCode(lambda_.Code):
    """Placeholder code for a function the bundling aspect builds.

    It creates no asset of its own. If no aspect replaced it, synthesis fails (and a template deployed
    anyway would point at a bucket that does not exist)::

        fn = Function(stack, "Api", runtime=Runtime.PYTHON_3_12, handler="api.handler.main",
                      code=UvCode())
        mark_package(fn, "api")
    """

    def bind(self, scope: Construct) -> lambda_.CodeConfig:
        _state.PLACEHOLDERS.add(_state.jsii_ref(scope))
        _SwappedCheck.of(Stack.of(scope)).functions.append(scope)
        return lambda_.CodeConfig(s3_location=s3.Location(bucket_name=PLACEHOLDER_BUCKET, object_key="placeholder.zip"))


@jsii.implements(IValidation)
class _ImageSwappedCheck:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    def validate(self) -> list[str]:
        if not self._stack.bundling_required:
            return []
        return _reported(
            [
                never_built(fn, "uv_image_code()")
                for fn in self._stack.node.find_all()
                if isinstance(fn, lambda_.Function)
                and not failed(fn)
                and PLACEHOLDER_REPOSITORY in json.dumps(self._stack.resolve(_cfn(fn).code))
            ]
        )


def _reported(problems: list[str]) -> list[str]:
    if problems:
        report_cleanly()  # the validation error they make ends `python app.py`: print it without a traceback
    return problems


def _cfn(function: lambda_.Function) -> lambda_.CfnFunction:
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    return cfn


def uv_image_code(scope: Construct, handler: str) -> lambda_.DockerImageCode:
    """Placeholder code for an image function the bundling aspect builds; ``handler`` becomes its CMD.

    It creates no image asset of its own (it names an ECR repository that does not exist). If no aspect
    replaced it, synthesis fails::

        fn = DockerImageFunction(stack, "ApiImage", code=uv_image_code(stack, "api.handler.main"))
        mark_package(fn, "api")
    """
    stack = Stack.of(scope)
    found = stack.node.try_find_child(_PLACEHOLDER_REPOSITORY_ID)
    if found is None:
        repository = ecr.Repository.from_repository_name(stack, _PLACEHOLDER_REPOSITORY_ID, PLACEHOLDER_REPOSITORY)
        repository.node.add_validation(_ImageSwappedCheck(stack))
    else:
        repository = typing.cast(ecr.IRepository, found)  # the one made above, for an earlier function
    return lambda_.DockerImageCode.from_ecr(repository, cmd=[handler])
