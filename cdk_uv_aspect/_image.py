"""Image: the container image of a marked image function, made from the same uv-built folder as a zip.

An image function's runtime is ``FROM_IMAGE``, so its Python version comes from the marker's data or
the options, not from the function. Its package is built exactly as for a zip function (the same build,
shared), then a build context is made next to it in the build cache: the built folder's files plus a
Dockerfile and a ``.dockerignore``. The context is content-addressed and written once, never into a
folder the CDK staged; the CDK stages it as a normal image asset and hashes its content, so the image
hash depends only on what goes into the image.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_

from . import _cache
from ._build import Built
from ._errors import ImageError, TargetError
from ._files import FILE_MODE, publish_dir, work_dir
from ._lambda import BASE_IMAGE, RUNTIMES
from ._marker import Marker
from ._options import UvOptions
from ._target import Target, target_of
from ._workspace import Package, Workspace

IMAGES = "images"

# ${LAMBDA_TASK_ROOT} is /var/task in every Lambda base image: where the bytecode says its sources are.
# No CMD: the handler stays in the function's ImageConfig, so functions of one package share one image.
DEFAULT_DOCKERFILE = """\
# Written by cdk-uv-aspect: the AWS Lambda base image plus the uv-built folder (this folder).
FROM {base_image}
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
    function: lambda_.Function, arch: str, package: Package, marker: Marker, options: UvOptions, workspace: Workspace
) -> ImageSpec:
    """Read and check everything an image function's image needs, before anything is built."""
    python = marker.python or options.image_python
    runtime = RUNTIMES.get(f"python{python}")
    if runtime is None:
        pythons = ", ".join(r.python for r in RUNTIMES.values())
        raise ImageError(
            f"an image function's Python version must be one of Lambda's ({pythons}), got {python!r}",
            package=package.name,
            fix='set it in the marker ({"package": ..., "python": "3.12"}) or UvOptions(image_python="3.12")',
        )
    target = target_of(runtime.name, arch)
    if not package.admits(python):
        raise TargetError(
            f"package {package.name} requires Python {package.requires_python}, but the image function "
            f"is built for Python {python}",
            package=package.name,
            target=target,
            fix='pick a version requires-python admits: the marker\'s {"python": ...} or '
            "UvOptions(image_python=...) (the function's runtime is FROM_IMAGE, so the version can't "
            "come from it)",
        )
    dockerfile, source = _dockerfile(marker.dockerfile or options.dockerfile, workspace, target)
    build_args = tuple(sorted({**dict(options.docker_build_args), **dict(marker.build_args)}.items()))
    if not _command(function) and not _CMD.search(dockerfile):
        raise ImageError(
            "the image function has no handler: its ImageConfig has no command and "
            + ("the default Dockerfile sets no CMD" if source == "default" else f"{source} has no CMD"),
            package=package.name,
            target=target,
            fix='create it with code=uv_image_code(self, "api.handler.main") (or DockerImageCode.from_ecr('
            '..., cmd=["api.handler.main"])), or put CMD ["api.handler.main"] in your Dockerfile',
        )
    return ImageSpec(target, dockerfile, source, build_args)


def _dockerfile(given: str | Path | None, workspace: Workspace, target: Target) -> tuple[str, str]:
    if given is None:
        return DEFAULT_DOCKERFILE.format(base_image=target.lambda_runtime.base_image), "default"
    path = (workspace.root / given).resolve()
    if not path.is_relative_to(workspace.root):
        raise ImageError(
            f"the Dockerfile {given} is outside the workspace at {workspace.root}",
            fix="keep the Dockerfile inside the workspace (its path is relative to the workspace root), "
            "so the image does not depend on files outside the project",
        )
    try:
        text = path.read_text()
    except OSError as exc:
        raise ImageError(
            f"the Dockerfile {path} can't be read: {exc.strerror}",
            fix="create it, or fix its path (relative to the workspace root); leave it out to use the "
            f"default Dockerfile ({BASE_IMAGE}:{target.python} plus the built folder)",
        ) from None
    return text, path.relative_to(workspace.root).as_posix()


def _command(function: lambda_.Function) -> list[str]:
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    config = Stack.of(function).resolve(cfn.image_config) or {}
    return list(config.get("command") or config.get("Command") or [])


def image_context(built: Built, spec: ImageSpec) -> Path:
    """The build context: the built folder's files, the Dockerfile and a .dockerignore, made once."""
    parts = {"build": built.entry.name, "dockerfile": spec.dockerfile, "ignore": DOCKERIGNORE}
    images = _cache.private_dir(built.request.options.cache_dir / IMAGES)
    # No dot in the name: the CDK keeps a source folder's "extension" in the staged folder's name.
    final = images / _cache.entry_key(f"{built.request.package}-{spec.target.key.replace('.', '')}", parts)
    if (final / "Dockerfile").is_file():
        return final
    with work_dir(images, final.name) as work:
        # Hard links: the built folder is never written again, and a big closure is not copied twice.
        shutil.copytree(built.asset_dir, work / "c", symlinks=True, copy_function=_link)
        for name, text in (("Dockerfile", spec.dockerfile), (".dockerignore", DOCKERIGNORE)):
            (work / "c" / name).write_text(text)
            (work / "c" / name).chmod(FILE_MODE)  # as every file of the asset, whatever the umask
        (work / "c").chmod(0o755)
        publish_dir(work / "c", final)  # or an identical context is there already
    return final


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
