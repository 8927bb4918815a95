"""UvOptions: every setting of the bundling aspect, with its default, validated when constructed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ._bucket import Location
from ._env import DEFAULT_COMMAND_TIMEOUT, default_cache_dir, env_flag, env_seconds
from ._lambda import DECLARABLE_OS, RUNTIMES, python_of
from ._marker import is_digest
from ._names import PYTHON_PATTERN, is_name, is_python_version, normalize


class UvOptions(BaseModel):
    """Options of :class:`UvBundlingAspect`. Every field has a default; unknown fields are refused.

    Example::

        UvBundlingAspect(UvOptions(workspace="../", exclude=["**/tests/**"]))
        UvBundlingAspect(bytecode=False)  # keyword arguments build the same model
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace: Path | None = Field(
        default=None,
        description="The uv workspace (the folder with uv.lock). Default: the nearest folder holding a "
        "uv.lock, from the current directory upward.",
    )
    lock: Literal["locked", "frozen"] = Field(
        default="locked",
        description="'locked': fail when uv.lock is out of date with the pyproject.toml files (uv "
        "--locked). 'frozen': use uv.lock as it is without checking (uv --frozen).",
    )
    exclude: tuple[str, ...] = Field(
        default=(),
        description="Glob patterns (fnmatch, on paths relative to the asset root, '/'-separated) of "
        "files left out of the asset, e.g. '*/tests/*' or '*.pyi'.",
    )
    extras: tuple[str, ...] = Field(
        default=(),
        description="Extras ([project.optional-dependencies]) deployed with every marked function's package, "
        "on top of its runtime dependencies; a marker's {'extras': [...]} adds to them per function. Each "
        "package must define each one.",
    )
    groups: tuple[str, ...] = Field(
        default=(),
        description="Dependency groups ([dependency-groups]) deployed with every marked function's package. "
        "No group is deployed otherwise, not even those in [tool.uv] default-groups; a marker's "
        "{'groups': [...]} adds to them per function. Each package must define each one.",
    )
    omit_runtime_provided: bool = Field(
        default=False,
        description="Leave boto3 and botocore out of every asset, with the packages only they need "
        "(s3transfer, jmespath, python-dateutil, six, urllib3): every Lambda Python runtime provides them, "
        "so the function runs with the runtime's versions. The uv-runtime-sdk policy check warns when the "
        "locked version is newer than what the runtime is known to ship.",
    )
    dependencies_layer: bool = Field(
        default=False,
        description="Put every marked zip function's third-party dependencies into a Lambda layer the aspect "
        "makes and attaches (one per distinct set, target and stack, named by its content), so that the "
        "function's own zip holds its workspace packages only and a code edit uploads a small zip. A marker's "
        "{'dependencies_layer': ...} decides per function. Image and Lambda@Edge functions, which can't have "
        "layers, keep their dependencies.",
    )
    slim: bool | Literal["bytecode-only"] = Field(
        default=False,
        description="Slim every marked function's asset (and layer) after its build: third-party test suites "
        "and files no import reads (type stubs, C sources and headers, static libraries) left out, and debug "
        "symbols stripped from native libraries with a strip tool for the target's architecture (llvm-strip, "
        "or binutils for it; without one nothing is stripped, and the build says so). Then proven: every "
        "top-level module of the asset's distributions is imported from the slimmed folder by the runtime's "
        "Python, and a module that no longer imports fails the build. 'bytecode-only' also ships third-party "
        "modules as .pyc alone (your own packages keep their sources). A marker's {'slim': ...} decides per "
        "function.",
    )
    bytecode: bool = Field(
        default=True,
        description="Compile .pyc files for the runtime's exact Python version (needs that interpreter "
        "on the machine). Saves about 40% of import time on a cold start.",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where built folders are kept, private to the user. Default: $CDK_UV_CACHE_DIR, "
        "else $XDG_CACHE_HOME/cdk-uv-aspect, else ~/.cache/cdk-uv-aspect.",
    )
    rebuild: bool = Field(
        default_factory=lambda: env_flag("CDK_UV_REBUILD"),
        description="Bypass the build cache: build every package again even when an identical build is "
        "cached, and replace that entry. Default: false, or true when $CDK_UV_REBUILD is 1, true, yes or "
        "on (e.g. CDK_UV_REBUILD=1 cdk synth); other values than those and 0, false, no, off are refused.",
    )
    cache_days: float | None = Field(
        default=30,
        gt=0,
        allow_inf_nan=False,
        description="After a synth that built something, builds no synth has used for this many days are "
        "deleted from cache_dir. None keeps them; `cdk-uv cache prune` prunes on demand.",
    )
    command_timeout: float = Field(
        default_factory=lambda: env_seconds("CDK_UV_COMMAND_TIMEOUT", DEFAULT_COMMAND_TIMEOUT),
        gt=0,
        allow_inf_nan=False,
        description="Seconds each command of a build (uv export, uv pip install, uv build, compileall, "
        "docker) may run before it is stopped and the synth fails, naming it. Default: "
        "$CDK_UV_COMMAND_TIMEOUT, else 1800 (30 minutes: a cold build of a large closure on a slow link "
        "fits; raise it for Docker fallback builds under emulation). A command still running after 30 s "
        "is reported on stderr, then again at 60 s, 120 s...",
    )
    remote_cache: str | None = Field(
        default=None,
        description="A team build cache on S3, s3://BUCKET or s3://BUCKET/PREFIX: before building, each build is "
        "looked up there, and a hit is downloaded, checked against its manifest and used as if built here. "
        "$CDK_UV_REMOTE_CACHE wins over it (off: none). The AWS SDK's configuration decides credentials, region "
        "and endpoint. See docs/remote-cache.md.",
    )
    remote_cache_write: bool = Field(
        default=False,
        description="Upload what is built here to the team cache (on CI; laptops read). "
        "$CDK_UV_REMOTE_CACHE_WRITE (1/true/yes/on, 0/false/no/off) wins over it.",
    )
    uv: str | None = Field(
        default=None,
        description="The uv binary. Default: the one installed with the uv package from PyPI, else `uv` on PATH.",
    )

    image_python: str = Field(
        default="3.12",
        pattern=rf"^{PYTHON_PATTERN.pattern}$",
        description="The Python version of image functions (their runtime is FROM_IMAGE, so it can't come "
        "from the function), unless the marker's data says {'python': ...}. Picks the AWS Lambda base "
        "image public.ecr.aws/lambda/python:<version> and the build's target.",
    )
    dockerfile: Path | None = Field(
        default=None,
        description="A Dockerfile for image functions instead of the default one (the Lambda Python base "
        "image plus the built folder), relative to the workspace root and inside it. The marker's data "
        "{'dockerfile': ...} overrides it per function.",
    )
    docker_build_args: tuple[tuple[str, str], ...] = Field(
        default=(),
        description="Build arguments of image functions' Dockerfiles, as a dict (kept as sorted pairs, so "
        "that options compare and hash by value); the marker's {'build_args': ...} adds to them per function.",
    )
    base_image_digests: tuple[tuple[str, str], ...] = Field(
        default=(),
        description="Pin the default Dockerfile's Lambda base image by digest, per Python version, as a dict "
        "such as {'3.12': 'sha256:<64 hex digits>'} (kept as sorted pairs): FROM "
        "public.ecr.aws/lambda/python:3.12@sha256:.... The marker's {'base_digest': ...} pins one function's. "
        "Default: by tag, which AWS moves to each patched image. Your own Dockerfile pins in its FROM.",
    )
    new_runtimes: tuple[tuple[str, str], ...] = Field(
        default=(),
        description="Python runtimes that Lambda has and this version of cdk-uv-aspect does not know yet, each "
        "with the Amazon Linux it runs on, as a dict such as {'python3.15': 'al2023'} ('al2' or 'al2023', the "
        "OS identifiers of the Lambda runtimes page; kept as sorted pairs): their functions are built for that "
        "OS's glibc instead of refused. Create such a function with Runtime('python3.15', "
        "RuntimeFamily.PYTHON) when aws-cdk-lib has no constant for it.",
    )
    docker_fallback: bool = Field(
        default=True,
        description="When a locked dependency has no wheel for the target (only a source distribution "
        "with native code), build it in a container of the target's platform (needs Docker) instead of "
        "failing. Only then: everything a local build can produce is built locally.",
    )

    if TYPE_CHECKING:
        # What a call may pass, as type checkers read it: a path as str or Path, lists or any sequence, dicts
        # or any mapping; the fields above hold them normalized (Path, sorted tuples). One parameter per field,
        # in the same order (tests/test_doc_types.py checks both).
        def __init__(
            self,
            *,
            workspace: str | os.PathLike[str] | None = ...,
            lock: Literal["locked", "frozen"] = ...,
            exclude: Sequence[str] = ...,
            extras: Sequence[str] = ...,
            groups: Sequence[str] = ...,
            omit_runtime_provided: bool = ...,
            dependencies_layer: bool = ...,
            slim: bool | Literal["bytecode-only"] = ...,
            bytecode: bool = ...,
            cache_dir: str | os.PathLike[str] = ...,
            rebuild: bool = ...,
            cache_days: float | None = ...,
            command_timeout: float = ...,
            remote_cache: str | None = ...,
            remote_cache_write: bool = ...,
            uv: str | os.PathLike[str] | None = ...,
            image_python: str = ...,
            dockerfile: str | os.PathLike[str] | None = ...,
            docker_build_args: Mapping[str, str] | Sequence[tuple[str, str]] = ...,
            base_image_digests: Mapping[str, str] | Sequence[tuple[str, str]] = ...,
            new_runtimes: Mapping[str, str] | Sequence[tuple[str, str]] = ...,
            docker_fallback: bool = ...,
        ) -> None: ...

    @field_validator("uv", mode="before")
    @classmethod
    def _uv_path_as_text(cls, value: object) -> object:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("slim", mode="before")
    @classmethod
    def _slim_mode(cls, value: object) -> object:
        if not (value is True or value is False or value == "bytecode-only"):
            raise ValueError(f"slim takes True, False or 'bytecode-only', got {value!r}")
        return value

    @model_validator(mode="after")
    def _bytecode_only_needs_bytecode(self) -> UvOptions:
        if self.slim == "bytecode-only" and not self.bytecode:
            raise ValueError(
                "slim='bytecode-only' ships compiled modules, and bytecode=False compiles none: "
                "set bytecode=True, or slim=True"
            )
        return self

    @field_validator("exclude", mode="before")
    @classmethod
    def _exclude_is_list_of_patterns(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("exclude takes a list of glob patterns, e.g. ['*/tests/*'], not one string")
        return value

    @field_validator("extras", "groups", mode="before")
    @classmethod
    def _names(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            raise ValueError(f"{info.field_name} takes a list of names, e.g. ['otel'], not one string")
        if isinstance(value, (list, tuple, set, frozenset)):
            bad = [name for name in value if not is_name(name)]
            if bad:
                raise ValueError(f"{info.field_name}: {bad[0]!r} is not a name as pyproject.toml writes them")
            # Normalized and sorted, as uv compares them: options that mean the same compare equal.
            return tuple(sorted({normalize(name) for name in value}))
        return value

    @field_validator("docker_build_args", mode="before")
    @classmethod
    def _build_args_are_a_mapping(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return tuple(sorted(value.items()))
        if isinstance(value, (list, tuple)):  # pairs: sorted as a mapping's are
            return tuple(sorted(value, key=str))
        return value

    @field_validator("base_image_digests", mode="before")
    @classmethod
    def _digests_by_python(cls, value: object) -> object:
        pairs = sorted(value.items()) if isinstance(value, Mapping) else value
        for python, digest in pairs if isinstance(pairs, (list, tuple)) else ():
            if not is_python_version(python):
                raise ValueError(f"base_image_digests maps Python versions such as '3.12' to digests, got {python!r}")
            if not is_digest(digest):
                raise ValueError(f"the base image digest for {python} must be sha256:<64 hex digits>, got {digest!r}")
        return tuple(pairs) if isinstance(pairs, list) else pairs

    @field_validator("remote_cache", mode="after")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        Location.parse(value)  # its ValueError says what is wrong
        return value.strip()

    @field_validator("new_runtimes", mode="before")
    @classmethod
    def _runtimes_with_their_os(cls, value: object) -> object:
        pairs = sorted(value.items()) if isinstance(value, Mapping) else value
        kept = []
        for runtime, os_id in pairs if isinstance(pairs, (list, tuple)) else ():
            if not (isinstance(runtime, str) and python_of(runtime)):
                raise ValueError(
                    f"new_runtimes maps Lambda runtime names such as 'python3.15' to an OS, got {runtime!r}"
                )
            if os_id not in DECLARABLE_OS:
                raise ValueError(f"the OS of {runtime} must be one of {', '.join(DECLARABLE_OS)}, got {os_id!r}")
            known = RUNTIMES.get(runtime)
            if known is not None and known.os != DECLARABLE_OS[os_id]:
                raise ValueError(f"{runtime} runs on {known.os.name}, not {DECLARABLE_OS[os_id].name}")
            if known is None:  # one this table lists already needs no declaration
                kept.append((runtime, os_id))
        return tuple(kept) if isinstance(pairs, (list, tuple)) else pairs

    @field_validator("workspace", "cache_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().absolute() if value is not None else None
