"""Engine: the container engine the CDK would use, an image asset built as ``cdk deploy`` builds it, a run.

- **Which engine.** The CDK CLI runs ``$CDK_DOCKER`` when it is set, else ``docker``. The same here, and
  ``podman`` when no Docker engine answers (what a user of such a machine would set ``CDK_DOCKER`` to).
  An engine answers when ``CLIENT version --format {{.Server.Version}}`` prints a version: Docker's
  client exists without an engine, and answers that only with one.
- **Build.** The arguments cdk-assets gives ``docker build`` (``Docker.build`` in ``@aws-cdk/cdk-assets-lib``
  ``lib/private/docker.ts``), from an image asset of the cloud assembly (``*.assets.json``), in its
  directory, tagged ``cdkasset-<asset id>``; like cdk-assets, an image under that tag is reused: the asset
  id is the hash of everything that goes into the image.
- **Run.** ``CLIENT run --rm -i --entrypoint ARGV0 ...``, the engine's own isolation. Where podman's OCI
  runtime can't start a container (nested sandboxes that refuse ``setrlimit``), ``buildah run --isolation
  chroot`` in podman's own storage runs the command instead.

Every command goes through ``_runner.Runner``.
"""

from __future__ import annotations

import json
import os
import platform
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._assembly import ImageAsset
from ._errors import EngineError
from ._lambda import HOST_MACHINES
from ._runner import Result, Runner

INSTALL = (
    "start Docker, or install podman (Debian/Ubuntu: apt-get install podman buildah; macOS: brew install "
    "podman), or set $CDK_DOCKER to a Docker-compatible client"
)
# binfmt_misc handlers of qemu-user, by the architecture they run (Debian's qemu-user-static names).
_QEMU = {"x86_64": "qemu-x86_64", "arm64": "qemu-aarch64"}
_BUILDAH_STORAGE = ("--root", "--runroot", "--storage-driver")  # for podman's graphRoot, runRoot, graphDriverName


@dataclass(frozen=True)
class NoEngine:
    """Why no container engine can be used: what was tried, and how to get one."""

    given: str | None  # $CDK_DOCKER, when set: then it is the only client tried
    tried: tuple[Result, ...]

    @property
    def reason(self) -> str:
        said = "; ".join(_why_not(result) for result in self.tried)
        if self.given:
            return f"$CDK_DOCKER names no working engine: {said}"
        return f"no container engine answered (the CDK's `docker`, then `podman`): {said}"

    @property
    def fix(self) -> str:
        if self.given:
            return "fix $CDK_DOCKER (or start its engine), or unset it to use docker or podman"
        return INSTALL

    @property
    def details(self) -> str:
        return "\n".join(result.describe() for result in self.tried)


def _why_not(result: Result) -> str:
    if result.not_found:
        return f"`{result.args[0]}` is not installed"
    said = next((line.strip() for line in result.stderr.splitlines() if line.strip()), "no version printed")
    return f"`{result.args[0]} version` found no engine ({said})"


def find_engine(runner: Runner) -> Engine | NoEngine:
    """The engine the CDK would build images with: ``$CDK_DOCKER``, else ``docker``, else ``podman``."""
    given = os.environ.get("CDK_DOCKER") or None
    tried = []
    for client in [given] if given else ["docker", "podman"]:
        probe = runner.run([client, "version", "--format", "{{.Server.Version}}"], timeout=60)
        if probe.ok and probe.stdout.strip():
            return Engine(client, runner)
        tried.append(probe)
    return NoEngine(given, tuple(tried))


def cannot_run(architecture: str) -> str:
    """Why this machine can't run a Linux image of ``architecture``, or "" when it can (or can't tell)."""
    host = HOST_MACHINES.get(platform.machine().lower(), platform.machine())
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if architecture == host or platform.system() != "Linux" or not binfmt.is_dir():
        return ""  # Docker Desktop (macOS, Windows) emulates in its own VM: let it try
    handler = binfmt / _QEMU.get(architecture, "")
    if handler.is_file() and handler.read_text().startswith("enabled"):
        return ""
    return (
        f"its image is {architecture} and this machine is {host}, with no {_QEMU.get(architecture)} binfmt_misc "
        "handler to emulate it (Debian/Ubuntu: apt-get install qemu-user-static binfmt-support)"
    )


@dataclass
class Engine:
    """A container engine's client, with the commands an image function needs: build, inspect, run."""

    client: str  # what the CDK runs: $CDK_DOCKER, docker or podman
    runner: Runner = field(default_factory=Runner, repr=False)
    refused: str = ""  # why the engine's `run` could not start a container, once it could not
    _buildah_command: list[str] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return Path(self.client).name

    def exists(self, image: str) -> bool:
        """Whether the engine has ``image`` (cdk-assets' check before a build: ``docker inspect``)."""
        return self.runner.run([self.client, "inspect", image], timeout=60).ok

    def inspect(self, image: str, template: str) -> str:
        """``image inspect --format TEMPLATE``: a field of the image, e.g. ``{{.Architecture}}``."""
        result = self.runner.run([self.client, "image", "inspect", "--format", template, image], timeout=60)
        if not result.ok:
            raise EngineError(
                f"`{self}` could not inspect the image {image}",
                fix="check that the engine is running and the image exists",
                details=result.describe(),
            )
        return result.stdout.strip()

    def build_command(self, asset: ImageAsset, tag: str) -> list[str]:
        """The command ``build`` runs in the asset's directory: cdk-assets' ``docker build``, argument for argument."""
        return [self.client, "build", *build_args(asset.source, tag)]

    def build(self, asset: ImageAsset, *, tag: str | None = None) -> tuple[str, bool]:
        """Build ``asset`` as ``cdk deploy`` does; its tag, and whether an image under that tag was reused."""
        tag = tag or asset.local_tag
        if "executable" in asset.source:
            raise EngineError(
                f"the image asset {asset.display} is built by a command of its own, not from a directory",
                fix="build and run it with that command; cdk-uv builds images from a directory only",
            )
        if self.exists(tag):
            return tag, True
        result = self.runner.run(
            self.build_command(asset, tag), cwd=asset.directory, env={"BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}
        )
        if not result.ok:
            raise EngineError(
                f"`{self} build` of the image asset {asset.display} failed",
                fix="fix what the build reports below; a base image that can't be pulled needs network access to "
                "its registry (or a `docker login`), a missing one a registry that has it",
                details=_redacted(result).describe(),
            )
        return tag, False

    def run(
        self,
        image: str,
        argv: Sequence[str],
        *,
        input: str = "",
        env: Mapping[str, str] | None = None,
        platform: str | None = None,
    ) -> Result:
        """Run ``argv`` (no shell; the image's entrypoint replaced) in a fresh container of ``image``."""
        envs = [arg for key, value in sorted((env or {}).items()) for arg in ("--env", f"{key}={value}")]
        if not self.refused:
            args = [self.client, "run", "--rm", "-i", *(["--platform", platform] if platform else [])]
            result = self.runner.run([*args, "--entrypoint", argv[0], *envs, image, *argv[1:]], input=input)
            if not _runtime_refused(result):
                return result
            self.refused = next((ln.strip() for ln in result.stderr.splitlines() if ln.strip()), "refused")
        return self._buildah_run(image, argv, input, envs)

    def _buildah_run(self, image: str, argv: Sequence[str], input: str, envs: list[str]) -> Result:
        buildah = self._buildah()
        name = f"cdk-uv-{uuid.uuid4().hex[:12]}"
        made = self.runner.run([*buildah, "from", "--pull-never", "--quiet", "--name", name, image], timeout=600)
        if not made.ok:
            raise EngineError(
                f"`{self} run` can't start containers here ({self.refused}), and buildah could not use {image}",
                fix="run it where the engine can start containers",
                details=made.describe(),
            )
        try:
            return self.runner.run([*buildah, "run", "--isolation", "chroot", *envs, name, "--", *argv], input=input)
        finally:
            self.runner.run([*buildah, "rm", name], timeout=120)

    def _buildah(self) -> list[str]:
        """buildah, in the storage the podman client uses (it may be a wrapper with a storage of its own)."""
        if self._buildah_command:
            return self._buildah_command
        version = self.runner.run([self.client, "--version"], timeout=60)
        info = self.runner.run([self.client, "info", "--format", "{{json .Store}}"], timeout=60)
        buildah = self.runner.run(["buildah", "--version"], timeout=60)
        store: dict[str, Any] = json.loads(info.stdout) if info.ok and info.stdout.strip().startswith("{") else {}
        where = [str(store.get(key) or "") for key in ("graphRoot", "runRoot", "graphDriverName")]
        if "podman" not in version.stdout.lower() or not all(where) or not buildah.ok:
            raise EngineError(
                f"`{self} run` can't start a container on this machine: {self.refused}",
                fix="run it where the engine can start containers; with podman, installing buildah (Debian: "
                "apt-get install buildah) lets cdk-uv run the command with `buildah run --isolation chroot`",
            )
        self._buildah_command = [
            "buildah",
            *(arg for pair in zip(_BUILDAH_STORAGE, where, strict=True) for arg in pair),
        ]
        return self._buildah_command


def _runtime_refused(result: Result) -> bool:
    """``run`` failed before the command started: the OCI runtime could not create the container."""
    return result.returncode in (125, 126, 127) and "OCI" in result.stderr and "\0" not in result.stdout


def build_args(source: Mapping[str, Any], tag: str) -> list[str]:
    """``docker build``'s arguments after ``build``, in cdk-assets' order, from an image asset's source."""
    s = source
    return [
        *(a for k, v in (s.get("dockerBuildArgs") or {}).items() for a in ("--build-arg", f"{k}={v}")),
        *(a for k, v in (s.get("dockerBuildContexts") or {}).items() for a in ("--build-context", f"{k}={v}")),
        *(a for k, v in (s.get("dockerBuildSecrets") or {}).items() for a in ("--secret", f"id={k},{v}")),
        *(["--ssh", s["dockerBuildSsh"]] if s.get("dockerBuildSsh") else []),
        *("--tag", tag),
        *(["--target", s["dockerBuildTarget"]] if s.get("dockerBuildTarget") else []),
        *(["--file", s["dockerFile"]] if s.get("dockerFile") else []),
        *(["--network", s["networkMode"]] if s.get("networkMode") else []),
        *(["--platform", s["platform"]] if s.get("platform") else []),
        *(f"--output={o}" for o in s.get("dockerOutputs") or []),
        *(a for c in s.get("cacheFrom") or [] for a in ("--cache-from", _cache_flag(c))),
        *(["--cache-to", _cache_flag(s["cacheTo"])] if s.get("cacheTo") else []),
        *(["--no-cache"] if s.get("cacheDisabled") else []),
        ".",
    ]


def _cache_flag(option: Mapping[str, Any]) -> str:
    params = option.get("params") or {}
    return ",".join([f"type={option['type']}", *(f"{k}={v}" for k, v in params.items())])


def _redacted(result: Result) -> Result:
    """The result with the values of ``--build-arg`` and ``--secret`` masked, as cdk-assets logs them."""
    args = list(result.args)
    for i in range(1, len(args)):
        if args[i - 1] in ("--build-arg", "--secret"):
            args[i] = args[i].split("=", 1)[0] + "=***"
    return Result(tuple(args), result.returncode, result.stdout, result.stderr, result.timed_out)
