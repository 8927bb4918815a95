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
from collections.abc import Iterator, Mapping
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
from ._names import PYTHON_PATTERN
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
PYTHON_VERSION = "PYTHON_VERSION"
"""The build argument every image build gets: the target's Python (``3.12``), for ``FROM ...:${PYTHON_VERSION}``."""
# Repositories of AWS's Lambda Python base images: AWS's own, its Docker Hub copy, ECR pull-through caches.
_LAMBDA_PYTHON_REPOSITORIES = re.compile(
    r"^(public\.ecr\.aws/lambda/python|(docker\.io/)?amazon/aws-lambda-python|.+/ecr-public/lambda/python)$"
)


@dataclass(frozen=True)
class ImageSpec:
    """How an image function's image is made: its target, its Dockerfile, its build arguments."""

    target: Target
    dockerfile: str  # the Dockerfile's text
    source: str  # "default", or the Dockerfile's path relative to the workspace root
    build_args: tuple[tuple[str, str], ...]
    base: str | None = None  # the image the final stage builds FROM, build arguments filled in


def is_image_function(runtime_name: str) -> bool:
    """Whether a function with this runtime is an image function (``Runtime.FROM_IMAGE``)."""
    return runtime_name == "FROM_IMAGE"


def image_spec(
    function: lambda_.Function, arch: str, package: Package, marker: Marker, options: UvOptions, workspace: Workspace
) -> ImageSpec:
    """Read and check everything an image function's image needs, before anything is built."""
    python = marker.python or options.image_python
    new_runtimes = dict(options.new_runtimes)
    if f"python{python}" not in RUNTIMES and f"python{python}" not in new_runtimes:
        pythons = ", ".join(r.python for r in RUNTIMES.values())
        raise ImageError(
            f"an image function's Python version must be one of Lambda's ({pythons}), got {python!r}",
            package=package.name,
            fix='set it in the marker ({"package": ..., "python": "3.12"}) or UvOptions(image_python="3.12"); '
            f'for a runtime newer than this table, declare its Amazon Linux: new_runtimes={{"python{python}": '
            '"al2023"}',
        )
    target = target_of(f"python{python}", arch, new_runtimes=new_runtimes)
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
    given = marker.dockerfile or options.dockerfile
    if marker.base_digest and given is not None:
        raise ImageError(
            f"the marker's base_digest pins the default Dockerfile's base image, and this function uses {given}",
            package=package.name,
            target=target,
            fix=f"pin the base image in the FROM line of {given} (FROM {BASE_IMAGE}:{python}@sha256:...), "
            "and drop base_digest from the marker",
        )
    digest = marker.base_digest or dict(options.base_image_digests).get(python)
    dockerfile, source = _dockerfile(given, workspace, target, digest)
    # The target's Python first: the user's own build arguments may set PYTHON_VERSION too.
    args = {PYTHON_VERSION: python, **dict(options.docker_build_args), **dict(marker.build_args)}
    build_args = tuple(sorted(args.items()))
    base = final_base(dockerfile, args, target.docker_platform)
    _check_base(
        base, target, source, package, origin="the marker's python" if marker.python else "UvOptions(image_python)"
    )
    if not _command(function) and not _CMD.search(dockerfile):
        raise ImageError(
            "the image function has no handler: its ImageConfig has no command and "
            + ("the default Dockerfile sets no CMD" if source == "default" else f"{source} has no CMD"),
            package=package.name,
            target=target,
            fix='create it with code=uv_image_code(self, "api.handler.main") (or DockerImageCode.from_ecr('
            '..., cmd=["api.handler.main"])), or put CMD ["api.handler.main"] in your Dockerfile',
        )
    return ImageSpec(target, dockerfile, source, build_args, base)


def _check_base(base: str | None, target: Target, source: str, package: Package, origin: str) -> None:
    """Refuse a final stage FROM a Lambda Python base image of another Python than the build's."""
    version = lambda_python(base)
    if version is None or version == target.python:
        return
    where = "the default Dockerfile" if source == "default" else source
    raise ImageError(
        f"{where} builds FROM {base}, a Lambda Python {version} base image, but the image function is built "
        f"for Python {target.python} (from {origin}): its native code and bytecode would fail to import there",
        package=package.name,
        target=target,
        fix=f'make them agree: build for {version} (mark_package(fn, "{package.name}", python="{version}")), '
        f"or write FROM {BASE_IMAGE}:${{{PYTHON_VERSION}}} (with ARG {PYTHON_VERSION} before it) in {where}: "
        f"every image build gets the target's Python as the build argument {PYTHON_VERSION}, unless your "
        "build_args set it",
    )


def lambda_python(reference: str | None) -> str | None:
    """``"3.12"`` for an AWS Lambda Python base image (``public.ecr.aws/lambda/python:3.12-arm64@sha256:...``).

    None for any other image, and for a reference whose tag says no version (``latest``, a digest alone).
    """
    name, _, tag = (reference or "").partition("@")[0].rpartition(":")
    if not name or "/" in tag or not _LAMBDA_PYTHON_REPOSITORIES.match(name.lower()):
        return None
    version = re.match(rf"({PYTHON_PATTERN.pattern})(?:$|[.-])", tag)
    return version.group(1) if version else None


def final_base(dockerfile: str, build_args: Mapping[str, str], platform: str = "") -> str | None:
    """The image a Dockerfile's final stage builds FROM, as ``docker build`` resolves it.

    ARGs declared before the first FROM take their build argument, else their default (BuildKit's
    TARGETPLATFORM, TARGETOS and TARGETARCH are known without one); ``--platform=`` flags are skipped; a
    FROM naming an earlier stage (``FROM builder``) means that stage's image. None when there is no FROM.
    """
    os_name, _, arch = platform.partition("/")
    args = {"TARGETPLATFORM": platform, "TARGETOS": os_name, "TARGETARCH": arch} if platform else {}
    stages: dict[str, str] = {}
    base = None
    for keyword, rest in _instructions(dockerfile):
        if keyword == "ARG" and base is None:
            for declaration in rest.split():
                name, eq, default = declaration.partition("=")
                args[name] = build_args.get(name, _substitute(default.strip("\"'"), args) if eq else "")
        elif keyword == "FROM":
            words = [word for word in rest.split() if not word.startswith("--")]
            image = _substitute(words[0], args) if words else ""
            image = stages.get(image.lower(), image)
            if len(words) >= 3 and words[1].lower() == "as":
                stages[words[2].lower()] = image
            base = image
    return base or None


def _instructions(dockerfile: str) -> Iterator[tuple[str, str]]:
    """(KEYWORD, the rest) of each instruction: continuation lines joined, comments and blank lines skipped."""
    escape = "`" if re.match(r"#\s*escape\s*=\s*`", dockerfile, re.IGNORECASE) else "\\"
    logical = ""
    for line in dockerfile.splitlines():
        if line.lstrip().startswith("#"):  # a comment, also between the lines of one instruction
            continue
        if line.rstrip().endswith(escape):
            logical += line.rstrip()[:-1] + " "
            continue
        words = (logical + line).split(None, 1)
        logical = ""
        if words:
            yield words[0].upper(), words[1].strip() if len(words) > 1 else ""


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")


def _substitute(word: str, args: Mapping[str, str]) -> str:
    """``$NAME``, ``${NAME}``, ``${NAME:-default}`` and ``${NAME:+alternative}`` in ``word``, as Docker fills them."""

    def value(match: re.Match[str]) -> str:
        have = args.get(match.group(1) or match.group(4), "")
        if match.group(2) == "-":
            return have or match.group(3)
        if match.group(2) == "+":
            return match.group(3) if have else ""
        return have

    return _VARIABLE.sub(value, word)


def _dockerfile(given: str | Path | None, workspace: Workspace, target: Target, digest: str | None) -> tuple[str, str]:
    if given is None:
        base_image = target.lambda_runtime.base_image + (f"@{digest}" if digest else "")
        return DEFAULT_DOCKERFILE.format(base_image=base_image), "default"
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
    dockerfile = final / "Dockerfile"
    if _cache.owned_folder(final) and dockerfile.is_file() and not dockerfile.is_symlink():
        return final  # made by a synth before (a link, or another user's folder, is never used)
    if os.path.lexists(final):
        _cache.discard(final)
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
