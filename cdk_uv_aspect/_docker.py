"""Docker: the one step a local build can't do, run in a container of the target's platform.

A zip function's build runs on this machine: uv installs wheels for the target (``--python-platform``).
When a locked dependency has no such wheel, only a source distribution with native code, building it
here would produce code for this machine, not for Lambda (``WheelError``). Then, and only then, the
locked install (step 2 of ``_uv``) runs in a container whose platform is the target's:

- the image is the PyPA manylinux image of the target's wheel policy and machine (manylinux2014 for
  Amazon Linux 2 runtimes, manylinux_2_34 for Amazon Linux 2023), so what it compiles links against a
  glibc no newer than Lambda's; it has every CPython under ``/opt/python`` and uv on PATH;
- ``--platform linux/amd64|arm64`` (another architecture than this machine's needs QEMU/binfmt);
- the command is ``_uv.install_locked`` itself, given the container's interpreter of the target's
  version: the same flags, minus those that only describe a foreign platform (``--python-platform``,
  ``--python-version``, ``--no-build``); the environment is ``_uv.UV_ENV``;
- the host's uv cache is mounted, so downloads and built wheels are shared between builds;
- it runs as this user, so the files it writes into the build folder and the cache are the user's;
- it reaches the indexes the local install reaches (``_index``): packages pinned to an explicit index
  are installed by a run of their own that names it (``--index NAME=URL``, as locally); the workspace's
  other indexes and this machine's index variables (``UV_INDEX``, ``UV_INDEX_<NAME>_USERNAME``/
  ``_PASSWORD``, ``UV_DEFAULT_INDEX``, ``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL``...) are passed by name
  (``--env NAME``: the client reads the value from its environment, so no credential is on a command
  line or in a file), and the netrc file uv reads here is mounted read-only. A keyring is not: the
  image has none.

The rest of the build (the workspace's own packages, bytecode) stays local.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import _engine, _index, _uv
from ._errors import DockerError, UvError
from ._failure import Failure
from ._runner import Result, Runner
from ._target import Target

# One image per wheel policy and machine, pinned by digest so a build does not change when the tag
# moves (and so no tag resolves to the host's architecture: each image is single-architecture). The
# digests were taken from public repositories that pin these images; they were not resolved from the
# registry on the machine that wrote them. To refresh one: `docker buildx imagetools inspect
# quay.io/pypa/<name>:latest` and copy the "Digest:" line.
BUILD_IMAGES = {  # quay.io/pypa/<name> -> its digest
    "manylinux2014_x86_64": "sha256:493d2032114d757aaa761a9385ad8497f391503bf71acef9abeeb66682ca5d90",
    "manylinux2014_aarch64": "sha256:f4cd164263e4ec2b7da7ee40b319bb5e30f0d7a2abd7ad4730e716a512dfb529",
    "manylinux_2_34_x86_64": "sha256:224ae18ddb6998745b5554185f8f1a4d256543199272ecab4389d310e5e36146",
    "manylinux_2_34_aarch64": "sha256:b3f10ce321fc98427010670982361997e7d1ccd6dbfed1a4b69dc28cab61ee6a",
}

ROOT = "/cdk-uv"  # where the container sees what it is given


def build_image(target: Target) -> str:
    name = f"{target.os.wheel_policy}_{target.machine}"
    return f"quay.io/pypa/{name}@{BUILD_IMAGES[name]}"


def container_python(target: Target) -> str:
    """The target's interpreter in a manylinux image: ``/opt/python/cp312-cp312/bin/python``."""
    tag = "cp" + target.python.replace(".", "")
    return f"/opt/python/{tag}-{tag}/bin/python"


@dataclass(frozen=True)
class Locked:
    """Locked requirements installed by one command, and the explicit index (``name=url``) they are pinned
    to, if any (see ``_index.split``)."""

    requirements: Path
    index: str | None = None


@dataclass(frozen=True)
class ContainerInstall:
    """``docker run`` of the locked install, for one target: what it mounts, its environment, its command."""

    target: Target
    site: Path  # the build's asset folder, written by the container
    locked: Locked  # the locked requirements (hashed), read by the container, and their index
    uv_cache: Path  # the host's uv cache
    passed: tuple[str, ...] = ()  # variables the container gets from the client's environment, by name
    netrc: Path | None = None  # the netrc file uv reads on this machine, mounted read-only

    @property
    def image(self) -> str:
        return build_image(self.target)

    @property
    def env(self) -> dict[str, str]:
        """The container's fixed variables (never a credential: these are written on the command line)."""
        env = {**_uv.UV_ENV, "UV_CACHE_DIR": f"{ROOT}/uv-cache", "UV_PYTHON_DOWNLOADS": "never", "HOME": "/tmp"}
        return {**env, "NETRC": f"{ROOT}/netrc"} if self.netrc else env

    @property
    def command(self) -> list[str]:
        return _uv.install_locked(
            "uv",
            self.target,
            Path(f"{ROOT}/asset"),
            Path(f"{ROOT}/locked.txt"),
            python=container_python(self.target),
            index=self.locked.index,
        )

    def args(self, docker: str) -> list[str]:
        mounts = [
            f"type=bind,source={self.site},target={ROOT}/asset",
            f"type=bind,source={self.locked.requirements},target={ROOT}/locked.txt,readonly",
            f"type=bind,source={self.uv_cache},target={ROOT}/uv-cache",
        ]
        if self.netrc:
            mounts.append(f"type=bind,source={self.netrc},target={ROOT}/netrc,readonly")
        user = ["--user", f"{os.getuid()}:{os.getgid()}"] if hasattr(os, "getuid") else []
        fixed = [f"{key}={value}" for key, value in sorted(self.env.items())]
        return [
            docker,
            "run",
            "--rm",
            "--platform",
            self.target.docker_platform,
            *user,
            *(arg for mount in mounts for arg in ("--mount", mount)),
            *(arg for variable in [*fixed, *self.passed] for arg in ("--env", variable)),
            self.image,
            *self.command,
        ]


def install_in_container(
    uv: str,
    target: Target,
    site: Path,
    locked: Sequence[Locked],
    runner: Runner,
    *,
    cause: UvError,
    root: Path,
    log: Callable[[str], None] | None = None,
) -> None:
    """Install the locked requirements into ``site`` in a container, because ``cause`` stopped it here.

    ``root``: the workspace, whose index configuration the container gets (see ``_index``).
    """
    engine = _engine.find_engine(runner)  # as the CDK finds it: $CDK_DOCKER, else docker; else podman
    if isinstance(engine, _engine.NoEngine):
        raise _needs_docker(cause, engine)
    docker = engine.client
    uv_cache = _uv_cache(uv, runner)
    uv_cache.mkdir(parents=True, exist_ok=True)
    values, passed = _index.container_environment(root, os.environ)
    netrc = _index.netrc(os.environ)
    installs = [ContainerInstall(target, site, group, uv_cache, tuple(passed), netrc) for group in locked]
    # Whatever the failed local attempt left behind goes: the container installs the whole lock.
    shutil.rmtree(site)
    site.mkdir()
    if log:
        log(f"{cause.package} for {target}: {cause.problem.split(';')[0]}; building it in Docker ({installs[0].image})")
    for install in installs:
        result = runner.run(install.args(docker), env=values)
        if not result.ok:
            raise _failed(cause, target, root, result)


def _failed(cause: UvError, target: Target, root: Path, result: Result) -> UvError:
    failure = Failure(cause.package or "", target, root)
    return failure.refused(result, "install the locked dependencies in the container") or DockerError(
        "building the locked dependencies in a container failed",
        package=cause.package,
        target=target,
        fix="fix what the build reports below (a source distribution may need system libraries the "
        "manylinux image lacks), or pin a release of the dependency that publishes a wheel for "
        f"{target.python_platform}; UvOptions(docker_fallback=False) turns the container build off",
        details=result.describe(),
    )


def _uv_cache(uv: str, runner: Runner) -> Path:
    result = runner.run([uv, "cache", "dir"])
    path = result.stdout.strip()
    if not result.ok or not path:
        raise DockerError("uv did not say where its cache is", fix="check `uv cache dir`", details=result.describe())
    return Path(path)


def _needs_docker(cause: UvError, engine: _engine.NoEngine) -> DockerError:
    return DockerError(
        f"{cause.problem}. Building it from source in a container of the target's platform needs Docker (or "
        f"podman), and {engine.reason}",
        package=cause.package,
        target=cause.target,
        fix=f"{engine.fix}, and synthesize again; or avoid the source build: {cause.fix}",
        details=f"{engine.details}\n{cause.details}",
    )
