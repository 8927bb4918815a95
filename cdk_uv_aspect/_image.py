"""Image: the container image of a marked image function, made from the same uv-built folder as a zip.

An image function's runtime is ``FROM_IMAGE``, so its Python version comes from the marker's data or
the options, not from the function. Its package is built exactly as for a zip function (the same build,
shared), then a build context is made next to it in the build cache: the built folder's files plus a
Dockerfile and a ``.dockerignore``. The context is content-addressed and written once, never into a
folder the CDK staged; the CDK stages it as a normal image asset and hashes its content, so the image
hash depends only on what goes into the image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_

from ._build import Built, _private_dir
from ._errors import ImageError, MarkerError, TargetError
from ._options import UvOptions
from ._target import Target, target_of
from ._workspace import Package, Workspace

IMAGES = "images"
BASE_IMAGE = "public.ecr.aws/lambda/python"
# The Python versions AWS publishes Lambda base images for (and the Target knows the OS of).
LAMBDA_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
MARKER_KEYS = ("package", "python", "dockerfile", "build_args")

# ${LAMBDA_TASK_ROOT} is /var/task in every Lambda base image: where the bytecode says its sources are.
# No CMD: the handler stays in the function's ImageConfig, so functions of one package share one image.
DEFAULT_DOCKERFILE = """\
# Written by cdk-uv-aspect: the AWS Lambda base image plus the uv-built folder (this folder).
FROM {base}:{python}
COPY . ${{LAMBDA_TASK_ROOT}}/
"""
# What a Dockerfile's `COPY . ...` leaves out: the two files that describe the build, not the function.
DOCKERIGNORE = "Dockerfile\n.dockerignore\n"

_CMD = re.compile(r"^\s*CMD\s", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ImageSpec:
    """How an image function's image is made: its target, its Dockerfile, its build arguments."""

    target: Target
    dockerfile: str  # the Dockerfile's text
    source: str  # "default", or the Dockerfile's path relative to the workspace root
    build_args: tuple[tuple[str, str], ...]


def is_image_function(runtime_name: str) -> bool:
    """Whether a function with this runtime is an image function (``Runtime.FROM_IMAGE``)."""
    return runtime_name == "FROM_IMAGE"


def image_spec(
    function: lambda_.Function, package: Package, data: Any, options: UvOptions, workspace: Workspace
) -> ImageSpec:
    """Read and check everything an image function's image needs, before anything is built."""
    where = function.node.path
    extra: Mapping[str, Any] = data if isinstance(data, dict) else {}
    unknown = sorted(set(extra) - set(MARKER_KEYS))
    if unknown:
        raise MarkerError(
            f"the uv marker's data has unknown keys {unknown}",
            constructs=[where],
            fix=f"use only {', '.join(MARKER_KEYS)}, e.g. "
            '{"package": "api", "python": "3.12", "dockerfile": "docker/api.Dockerfile"}',
        )
    python = extra.get("python", options.image_python)
    if python not in LAMBDA_PYTHONS:
        raise ImageError(
            f"an image function's Python version must be one of {', '.join(LAMBDA_PYTHONS)}, got {python!r}",
            package=package.name,
            constructs=[where],
            fix='set it in the marker ({"package": ..., "python": "3.12"}) or UvOptions(image_python="3.12")',
        )
    target = target_of(f"python{python}", True, function.architecture.name, where=where)
    if not package.admits(python):
        raise TargetError(
            f"package {package.name} requires Python {package.requires_python}, but the image function "
            f"is built for Python {python}",
            package=package.name,
            target=target,
            constructs=[where],
            fix='pick a version requires-python admits: the marker\'s {"python": ...} or '
            "UvOptions(image_python=...) (the function's runtime is FROM_IMAGE, so the version can't "
            "come from it)",
        )
    dockerfile, source = _dockerfile(extra.get("dockerfile") or options.dockerfile, workspace, target, where)
    marker_args = _build_args(extra.get("build_args") or {}, where)
    build_args = tuple(sorted({**options.docker_build_args, **marker_args}.items()))
    if not _command(function) and not _CMD.search(dockerfile):
        raise ImageError(
            "the image function has no handler: its ImageConfig has no command and "
            + ("the default Dockerfile sets no CMD" if source == "default" else f"{source} has no CMD"),
            package=package.name,
            target=target,
            constructs=[where],
            fix='create it with code=uv_image_code(self, "api.handler.main") (or DockerImageCode.from_ecr('
            '..., cmd=["api.handler.main"])), or put CMD ["api.handler.main"] in your Dockerfile',
        )
    return ImageSpec(target, dockerfile, source, build_args)


def refuse_image_keys(data: Any, runtime: str) -> None:
    """A zip function's marker with image keys: its runtime decides the Python, and it has no Dockerfile."""
    keys = sorted(set(data) & set(MARKER_KEYS[1:])) if isinstance(data, dict) else []
    if keys:
        raise MarkerError(
            f"the uv marker's {keys} apply to image functions only, and this function runs {runtime}",
            fix="drop them from the marker (a zip function's Python version is its runtime), or make the "
            "function a DockerImageFunction",
        )


def _dockerfile(given: object, workspace: Workspace, target: Target, where: str) -> tuple[str, str]:
    if given is None:
        return DEFAULT_DOCKERFILE.format(base=BASE_IMAGE, python=target.python), "default"
    if not isinstance(given, (str, Path)):
        raise MarkerError(
            f"the uv marker's dockerfile must be a path, got {given!r}",
            constructs=[where],
            fix="give the Dockerfile's path relative to the workspace root, e.g. 'docker/api.Dockerfile'",
        )
    path = (workspace.root / given).resolve()
    if not path.is_relative_to(workspace.root):
        raise ImageError(
            f"the Dockerfile {given} is outside the workspace at {workspace.root}",
            constructs=[where],
            fix="keep the Dockerfile inside the workspace (its path is relative to the workspace root), "
            "so the image does not depend on files outside the project",
        )
    try:
        text = path.read_text()
    except OSError as exc:
        raise ImageError(
            f"the Dockerfile {path} can't be read: {exc.strerror}",
            constructs=[where],
            fix="create it, or fix its path (relative to the workspace root); leave it out to use the "
            f"default Dockerfile ({BASE_IMAGE}:{target.python} plus the built folder)",
        ) from None
    return text, path.relative_to(workspace.root).as_posix()


def _build_args(args: object, where: str) -> dict[str, str]:
    if not isinstance(args, dict) or not all(isinstance(x, str) for pair in args.items() for x in pair):
        raise MarkerError(
            f"build_args must map names to strings, got {args!r}",
            constructs=[where],
            fix='write them as {"build_args": {"NAME": "value"}}',
        )
    return args


def _command(function: lambda_.Function) -> list[str]:
    config = Stack.of(function).resolve(function.node.default_child.image_config) or {}
    return list(config.get("command") or config.get("Command") or [])


def image_context(built: Built, spec: ImageSpec) -> Path:
    """The build context: the built folder's files, the Dockerfile and a .dockerignore, made once."""
    parts = {"build": built.folder.name, "dockerfile": spec.dockerfile, "ignore": DOCKERIGNORE}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    images = _private_dir(built.request.options.cache_dir / IMAGES)
    # No dot in the name: the CDK keeps a source folder's "extension" in the staged folder's name.
    final = images / f"{built.request.package}-{spec.target.key.replace('.', '')}-{digest[:32]}"
    if (final / "Dockerfile").is_file():
        return final
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=images))
    try:
        # Hard links: the built folder is never written again, and a big closure is not copied twice.
        shutil.copytree(built.asset_dir, work / "c", symlinks=True, copy_function=_link)
        (work / "c" / "Dockerfile").write_text(spec.dockerfile)
        (work / "c" / ".dockerignore").write_text(DOCKERIGNORE)
        try:
            os.rename(work / "c", final)
        except OSError:
            if not (final / "Dockerfile").is_file():  # not a lost race with an identical context
                raise
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
