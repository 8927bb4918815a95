"""The marker (a metadata entry ``uv: <package>``) and the placeholder code for marked functions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jsii
from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct, IValidation, Node

from ._errors import MarkerError
from ._metadata import MARKER

ASSET_ID = "UvAsset"
"""The id of the asset construct the aspect adds under a function (``Code`` is taken by CDK's own)."""

PLACEHOLDER_BUCKET = "cdk-uv-aspect-code-was-never-built"
PLACEHOLDER_REPOSITORY = "cdk-uv-aspect-image-was-never-built"
_PLACEHOLDER_REPOSITORY_ID = "CdkUvImagePlaceholder"

# PEP 508 names, ASCII only: anything else (path separators, '..', shell metacharacters, look-alike
# letters) is refused before it reaches a path or a command line.
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


def normalize(name: str) -> str:
    """PEP 503 normalization, as uv writes names in uv.lock."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package_of(data: Any, *, where: str | None = None) -> str:
    """The package named by a marker's data, normalized; a clear error for anything else."""
    if isinstance(data, dict):
        data = data.get("package")
    if not isinstance(data, str) or not _NAME.match(data):
        raise MarkerError(
            f"the uv marker's data must be a package name, got {data!r}",
            constructs=[where] if where else [],
            fix='write the marker as fn.node.add_metadata("uv", "<package>") or '
            'mark_package(fn, "<package>"), with the name from the package\'s pyproject.toml',
        )
    return normalize(data)


def marker_of(node: Node) -> Any | None:
    """The data of a construct's ``uv`` marker (``node`` is its ``.node``), or None when it has none."""
    for entry in node.metadata:
        if entry.type == MARKER:
            return entry.data
    return None


def jsii_ref(value: object) -> str:
    """The id of the JavaScript object behind a jsii proxy.

    jsii hands out a new Python proxy each time an object made in JavaScript is read, so identity (and
    ``id()``) can't tell two reads apart; this id can, without a round trip to node.
    """
    return value.__jsii_ref__.ref  # type: ignore[attr-defined]


# jsii refs of functions, in this process (a ref is never reused): known here, no need to ask node.
_SWAPPED: set[str] = set()  # whose code an aspect swapped
_PLACEHOLDERS: set[str] = set()  # created with UvCode()


def record_swapped(function: IConstruct) -> None:
    _SWAPPED.add(jsii_ref(function))


def is_swapped(function: IConstruct) -> bool:
    """Whether an aspect swapped this function's code."""
    return jsii_ref(function) in _SWAPPED


def has_placeholder(function: IConstruct) -> bool:
    """Whether this function was created with ``code=UvCode()``."""
    return jsii_ref(function) in _PLACEHOLDERS


def mark_package(
    function: lambda_.Function,
    package: str,
    *,
    python: str | None = None,
    dockerfile: str | None = None,
    build_args: Mapping[str, str] | None = None,
) -> None:
    """Mark ``function`` as built from uv workspace package ``package``.

    The same as ``function.node.add_metadata("uv", package)``, with the name checked now::

        mark_package(fn, "api")

    Image functions (``DockerImageFunction``) may say their Python version, a Dockerfile (relative to
    the workspace root) and build arguments; the marker's data is then a dict::

        mark_package(image_fn, "api", python="3.13", dockerfile="docker/api.Dockerfile")
    """
    try:
        package_of(package)
    except MarkerError as exc:
        raise exc.with_constructs([function.node.path]) from None  # the path is read only when needed
    image = {"python": python, "dockerfile": dockerfile, "build_args": dict(build_args or {}) or None}
    image = {key: value for key, value in image.items() if value is not None}
    function.node.add_metadata(MARKER, {"package": package, **image} if image else package)


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
        check = getattr(stack, "_cdk_uv_swapped_check", None)
        if check is None:
            check = cls(stack)
            stack.node.add_validation(check)
            stack._cdk_uv_swapped_check = check  # type: ignore[attr-defined]
        return check

    def validate(self) -> list[str]:
        if not self._stack.bundling_required:
            return []
        return [_never_built(fn, "UvCode()") for fn in self.functions if not is_swapped(fn)]


def _never_built(function: Construct, placeholder: str) -> str:
    return (
        f"cdk-uv-aspect: {function.node.path} uses {placeholder} but no UvBundlingAspect built it. "
        'Mark it (fn.node.add_metadata("uv", "<package>")) and add Aspects.of(app).add('
        "UvBundlingAspect()); functions inside a Stage need the aspect added to that Stage, "
        "because aspects do not cross Stage boundaries."
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
        _PLACEHOLDERS.add(jsii_ref(scope))
        _SwappedCheck.of(Stack.of(scope)).functions.append(scope)
        return lambda_.CodeConfig(s3_location=s3.Location(bucket_name=PLACEHOLDER_BUCKET, object_key="placeholder.zip"))


@jsii.implements(IValidation)
class _ImageSwappedCheck:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    def validate(self) -> list[str]:
        if not self._stack.bundling_required:
            return []
        return [
            _never_built(fn, "uv_image_code()")
            for fn in self._stack.node.find_all()
            if isinstance(fn, lambda_.Function)
            and PLACEHOLDER_REPOSITORY in json.dumps(self._stack.resolve(fn.node.default_child.code))
        ]


def uv_image_code(scope: Construct, handler: str) -> lambda_.DockerImageCode:
    """Placeholder code for an image function the bundling aspect builds; ``handler`` becomes its CMD.

    It creates no image asset of its own (it names an ECR repository that does not exist). If no aspect
    replaced it, synthesis fails::

        fn = DockerImageFunction(stack, "ApiImage", code=uv_image_code(stack, "api.handler.main"))
        mark_package(fn, "api")
    """
    stack = Stack.of(scope)
    repository = stack.node.try_find_child(_PLACEHOLDER_REPOSITORY_ID)
    if repository is None:
        repository = ecr.Repository.from_repository_name(stack, _PLACEHOLDER_REPOSITORY_ID, PLACEHOLDER_REPOSITORY)
        repository.node.add_validation(_ImageSwappedCheck(stack))
    return lambda_.DockerImageCode.from_ecr(repository, cmd=[handler])  # type: ignore[arg-type]
