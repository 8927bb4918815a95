"""The image tests' side of the OCI engine: a private storage, stand-in Lambda base images, what was built.

The engine itself (which one, the CDK's build, a run inside an image) is the library's
(``cdk_uv_aspect._engine``), the one ``cdk-uv invoke`` uses; this module adds what only the tests need:

- **A private storage for podman.** The library runs the engine the CDK would use (``$CDK_DOCKER``, else
  ``docker``, else ``podman``). When that is podman, the tests hand the library a two-line wrapper as its
  client (``exec podman --root R --runroot RR --storage-driver vfs "$@"``, in the test cache, or
  ``$CDK_UV_TEST_OCI_ROOT``), so the stand-ins below never shadow a developer's real images; set as
  ``$CDK_DOCKER``, it makes ``cdk-uv invoke`` see them too. The ``vfs`` driver needs nothing from the
  kernel; ``BUILDAH_ISOLATION=chroot`` lets a Dockerfile's ``RUN`` steps run without user namespaces.
- **Stand-in base images** (podman): no registry is reachable on the machines this runs on, so
  ``public.ecr.aws/lambda/python:3.X`` is made locally from this machine's CPython 3.X and the shared
  libraries ``ldd`` lists, laid out as AWS's images are (``/var/lang``, ``/var/task`` as ``WORKDIR``
  and ``LAMBDA_TASK_ROOT``, the same ``PATH`` and ``LD_LIBRARY_PATH``). One per Python version and
  architecture, behind a manifest list under the real name so ``build --platform`` finds the right one.
  There is no CPython for another architecture on this machine: that stand-in holds no interpreter and
  serves builds only. With Docker, the real base image is used (pulled when missing).
- **What was built**: each build under a tag of this test session (sessions share the storage), the
  files under ``/var/task`` of an image, the seconds each step took, and removing it all at the end.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import pytest

from cdk_uv_aspect import _engine, _imagestart
from cdk_uv_aspect._assembly import AssemblyFunction, ImageAsset
from cdk_uv_aspect._image import final_base
from cdk_uv_aspect._interpreters import find_python
from cdk_uv_aspect._invoke import Invocation
from cdk_uv_aspect._runner import Runner
from cdk_uv_aspect._uv import Uv

BASE_IMAGE = "public.ecr.aws/lambda/python"
STAND_IN = "localhost/cdk-uv-stand-in/lambda-python"
LABEL = "cdk-uv-aspect.stand-in"
RECIPE = "1"  # change it when the stand-in's recipe changes: cached stand-ins are then made again
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
OCI_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine()
)

# Set by .ci/run where an engine can be had: then the image tier must run, and a test that could not is a failure.
REQUIRED = "CDK_UV_TEST_OCI"


def unavailable(reason: str, architecture: str = HOST_ARCH) -> NoReturn:
    """Skip an image test that can't run here, with ``reason``; where ``$CDK_UV_TEST_OCI`` is ``required``
    (CI with an engine), fail it instead, unless it needs another architecture than this machine's."""
    if os.environ.get(REQUIRED) == "required" and architecture == HOST_ARCH:
        pytest.fail(f"the image tier must run here (${REQUIRED}=required), but: {reason}", pytrace=False)
    pytest.skip(reason)


# AWS's Lambda base images: `ENV` and `WORKDIR` of their Dockerfiles (aws-lambda-base-images).
LAMBDA_ENV = {
    "LANG": "en_US.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}
# What of the interpreter's standard library a function never imports: tests, GUI, installers.
STDLIB_LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages"}
EXTENSIONS_LEFT_OUT = re.compile(r"^(_tkinter|_test|_xxtest|xxlimited|_ctypes_test|xxsubtype)")
# Libraries the manylinux policies let a wheel take from the system, so a Lambda base image has them.
SYSTEM_LIBRARIES = (
    *("libgcc_s.so.1", "libstdc++.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1"),
    *("libutil.so.1", "libresolv.so.2", "libm.so.6", "libc.so.6"),
)

SESSION = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
TIMINGS: list[tuple[str, float]] = []  # (what, seconds), printed in pytest's terminal summary


class EngineError(Exception):
    """A command of the engine failed: the message holds the command, its exit code and its stderr."""


def _run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: bytes | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        list(args),
        env={**os.environ, **(env or {})},
        cwd=cwd,
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def _check(args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    done = _run(args, **kwargs)
    if done.returncode != 0:
        raise EngineError(f"`{' '.join(args)}` exited {done.returncode}:\n{done.stderr.decode(errors='replace')}")
    return done


def _timed(what: str, started: float) -> None:
    TIMINGS.append((what, time.monotonic() - started))


# --- which engine ----------------------------------------------------------------------------------


@dataclass
class Oci:
    """The library's engine as the tests use it, with what this session built (removed by ``cleanup``)."""

    engine: _engine.Engine  # builds and runs, as `cdk-uv invoke` does
    kind: str  # "docker" or "podman"
    origin: str  # the client the library found, when ``engine.client`` is the tests' wrapper around it
    images: dict[str, str] = field(default_factory=dict)  # tag -> what it is
    _files: dict[tuple[str, str], dict[str, tuple[str, int, bytes]]] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        storage = f" in the tests' own storage ({self.engine.client})" if self.kind == "podman" else ""
        runs = f", containers run with buildah ({self.engine.refused})" if self.engine.refused else ""
        return f"{self.kind} ({self.origin}{storage}{runs})"

    @property
    def client(self) -> str:
        """What to set ``$CDK_DOCKER`` to so that ``cdk-uv invoke`` uses this engine and its storage."""
        return self.engine.client

    def command(self, *args: str) -> list[str]:
        return [self.engine.client, *args]

    def exists(self, image: str) -> bool:
        return self.engine.exists(image)

    def inspect(self, image: str, template: str) -> str:
        return self.engine.inspect(image, template)

    def remove(self, *images: str) -> None:
        if images:
            _run(self.command("rmi", "--force", *images))

    def cleanup(self) -> None:
        """Remove every image these tests built (the base images stay: they are the cache)."""
        self.remove(*sorted(self.images))
        self.images.clear()
        self._files.clear()

    def build(self, asset: ImageAsset) -> str:
        """Build ``asset`` with the library (cdk-assets' arguments), under a tag of this session; the tag."""
        tag = f"{asset.local_tag}:test-{SESSION}"  # sessions share the storage: each removes what it built
        started = time.monotonic()
        _, reused = self.engine.build(asset, tag=tag)
        if not reused:
            _timed(f"build {asset.display} ({asset.source.get('platform', 'default platform')})", started)
        self.images[tag] = asset.display
        return tag

    def build_directory(self, directory: Path, tag: str, *, platform: str | None = None) -> str:
        """A plain ``build`` of a directory holding a Dockerfile (for contexts made by a test)."""
        source = {"directory": directory.name, **({"platform": platform} if platform else {})}
        return self.build(ImageAsset(f"test-{tag}", source, directory.parent, tag))

    def files(self, image: str, folder: str = "/var/task") -> dict[str, tuple[str, int, bytes]]:
        """Every entry below ``folder`` in ``image``: relative path -> (kind, mode, content or link target)."""
        if (image, folder) not in self._files:  # an image never changes: export it once
            self._files[image, folder] = self._export(image, folder)
        return self._files[image, folder]

    def _export(self, image: str, folder: str) -> dict[str, tuple[str, int, bytes]]:
        started = time.monotonic()
        container = _check(self.command("create", image, "/nothing")).stdout.decode().strip()
        try:
            tar = _check(self.command("export", container)).stdout
        finally:
            _run(self.command("rm", "--force", container))
        _timed(f"export the files of {self.images.get(image, image)}", started)
        prefix = folder.strip("/") + "/"
        entries: dict[str, tuple[str, int, bytes]] = {}
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            for member in archive:
                name = member.name.lstrip("./")
                if not name.startswith(prefix) or name == prefix:
                    continue
                rel = name[len(prefix) :].rstrip("/")
                if member.issym():
                    entries[rel] = ("link", 0, member.linkname.encode())
                elif member.isdir():
                    entries[rel] = ("dir", member.mode & 0o777, b"")
                else:
                    data = archive.extractfile(member)
                    entries[rel] = ("file", member.mode & 0o777, data.read() if data else b"")
        return entries

    def invoke(
        self,
        image: str,
        handler: str,
        event: Any,
        *,
        architecture: str = "x86_64",
        name: str = "function",
        environment: Mapping[str, str] | None = None,
    ) -> Invocation:
        """Call ``handler`` from ``/var/task`` with the image's Python, as ``cdk-uv invoke`` does."""
        started = time.monotonic()
        answer = _imagestart.invoke_image(
            self.engine, image, handler, event, architecture=architecture, name=name, environment=environment
        )
        _timed(f"run {handler} in {self.images.get(image, image)}", started)
        return answer


def oci_root() -> Path:
    return Path(
        os.environ.get("CDK_UV_TEST_OCI_ROOT")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cdk-uv-aspect-tests" / "oci"
    )


def _podman_wrapper(podman: str) -> str:
    """A client that is ``podman`` in the tests' own storage, for the library and for ``$CDK_DOCKER``."""
    root = oci_root()
    root.mkdir(parents=True, exist_ok=True)
    wrapper = root / "podman"
    text = (
        "#!/bin/sh\n# podman in the storage of cdk-uv-aspect's image tests (tests/oci.py)\n"
        "export BUILDAH_ISOLATION=chroot\n"
        f"exec {shlex.quote(shutil.which(podman) or podman)} --root {shlex.quote(str(root / 'storage'))} "
        f'--runroot {shlex.quote(str(root / "run"))} --storage-driver vfs "$@"\n'
    )
    if not wrapper.is_file() or wrapper.read_text() != text:
        partial = root / f".podman-{SESSION}"
        partial.write_text(text)
        partial.chmod(0o755)
        partial.replace(wrapper)  # other sessions may run it meanwhile: never half-written
    return str(wrapper)


@cache
def find_engine() -> Oci | str:
    """The engine the CDK would build with (the library's choice), or why there is none (a skip reason)."""
    found = _engine.find_engine(Runner())
    if isinstance(found, _engine.NoEngine):
        return f"{found.reason}. To get one: {found.fix}"
    if b"podman" in _run([found.client, "--version"], timeout=60).stdout.lower():
        return Oci(_engine.Engine(_podman_wrapper(found.client)), "podman", found.client)
    return Oci(found, "docker", found.client)


def base_of(fn: AssemblyFunction) -> str | None:
    """The image an image function's Dockerfile builds its final stage FROM, as the library reads it."""
    assert fn.image is not None
    source = fn.image.source
    dockerfile = fn.image.directory / (source.get("dockerFile") or "Dockerfile")
    return final_base(dockerfile.read_text(), source.get("dockerBuildArgs") or {}, source.get("platform", ""))


def can_run(architecture: str) -> str:
    """Why this machine can't run code of ``architecture``, or "" when it can (the library's check)."""
    return _engine.cannot_run(architecture)


# --- base images -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseImage:
    name: str  # public.ecr.aws/lambda/python:3.12
    architecture: str
    origin: str  # AWS's image, or the stand-in and what it holds
    runnable: str  # "" when its Python runs here, else why not


def base_image(engine: Oci, python: str, architecture: str, interpreter: str | None = None) -> BaseImage:
    """``public.ecr.aws/lambda/python:<python>`` for ``architecture``: AWS's with Docker, else a stand-in.

    A stand-in is made from ``interpreter`` (default: the CPython ``python`` uv finds here) once, kept in
    podman's private storage, and made again only when its recipe or the interpreter changes.
    """
    name = f"{BASE_IMAGE}:{python}"
    if engine.kind == "docker":
        platform_ = PLATFORMS[architecture]
        present = engine.exists(name) and engine.inspect(name, "{{.Architecture}}") == OCI_ARCH[architecture]
        if not present:
            started = time.monotonic()
            _check(engine.command("pull", "--platform", platform_, name))
            _timed(f"pull {name} {platform_}", started)
        return BaseImage(name, architecture, "AWS's image", can_run(architecture))
    # This machine's CPython can't stand in for another architecture's.
    interpreter = (interpreter or find_interpreter(python)) if architecture == HOST_ARCH else None
    key = _stand_in_key(python, architecture, interpreter)
    tag = f"{STAND_IN}:{python}-{OCI_ARCH[architecture]}"
    with _locked(engine):  # another test session may be making the same stand-in
        if not (engine.exists(tag) and engine.inspect(tag, f'{{{{ index .Config.Labels "{LABEL}" }}}}') == key):
            started = time.monotonic()
            _make_stand_in(engine, tag, python, architecture, interpreter, key)
            _timed(f"stand-in {name} {OCI_ARCH[architecture]}", started)
        _list_stand_ins(engine, name, python)
    if interpreter:
        return BaseImage(name, architecture, f"a local stand-in with the CPython of {interpreter}", "")
    if architecture == HOST_ARCH:
        why = f"no CPython {python} on this machine to make a stand-in of {name} with"
    else:
        why = (
            f"the {architecture} stand-in of {name} has no Python (this machine has no {architecture} "
            f"CPython {python} to put in it, and no registry serves AWS's image)"
        )
    return BaseImage(name, architecture, "a local stand-in without Python, for builds only", why)


def digest_of(engine: Oci, base: BaseImage) -> str:
    """The digest a Dockerfile can pin ``base`` by (``FROM name:tag@sha256:...``) on this engine.

    AWS's image, pulled: the digest of the registry's multi-architecture index. A stand-in: the digest
    of its own single-architecture image (a manifest list made locally has none until it is pushed).
    """
    if engine.kind == "docker":
        return engine.inspect(base.name, "{{index .RepoDigests 0}}").partition("@")[2]
    python = base.name.rpartition(":")[2]
    return engine.inspect(f"{STAND_IN}:{python}-{OCI_ARCH[base.architecture]}", "{{.Digest}}")


@contextmanager
def _locked(engine: Oci) -> Iterator[None]:
    if engine.kind != "podman":
        yield
        return
    root = oci_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / "stand-ins.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def find_interpreter(python: str) -> str | None:
    """This machine's CPython ``python`` ("3.12"), found as uv (and the bundling aspect) finds it."""
    return find_python(Uv.locate(None).path, python)


def _stand_in_key(python: str, architecture: str, interpreter: str | None) -> str:
    parts = [RECIPE, python, architecture]
    if interpreter:
        real = Path(interpreter).resolve()
        parts += [str(real), str(real.stat().st_size), str(real.stat().st_mtime_ns)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _list_stand_ins(engine: Oci, name: str, python: str) -> None:
    """Put every stand-in of ``python`` behind ``name``, a manifest list, so --platform picks the right one."""
    tags = [f"{STAND_IN}:{python}-{arch}" for arch in sorted(OCI_ARCH.values())]
    present = {tag: engine.inspect(tag, "{{.Id}}") for tag in tags if engine.exists(tag)}
    listed = _run(engine.command("manifest", "inspect", name))
    if listed.returncode == 0:
        digests = {m["digest"] for m in json.loads(listed.stdout).get("manifests", [])}
        ours = {
            _check(engine.command("image", "inspect", "--format", "{{.Digest}}", t)).stdout.decode().strip()
            for t in present
        }
        if digests == ours:
            return
        _run(engine.command("manifest", "rm", name))
    elif engine.exists(name):
        engine.remove(name)  # a plain image under the real name in our private storage: made by an old recipe
    _check(engine.command("manifest", "create", name))
    for tag in present:
        _check(engine.command("manifest", "add", name, f"containers-storage:{tag}"))


def _make_stand_in(engine: Oci, tag: str, python: str, architecture: str, interpreter: str | None, key: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cdk-uv-stand-in-") as tmp:
        context = Path(tmp)
        rootfs = context / "rootfs"
        for folder in ("var/task", "var/runtime", "opt", f"var/lang/lib/python{python}/site-packages"):
            (rootfs / folder).mkdir(parents=True)
        (rootfs / "tmp").mkdir(mode=0o1777)
        (rootfs / "tmp").chmod(0o1777)
        if interpreter:
            _copy_python(interpreter, python, rootfs)
        what = f"CPython {python} from {interpreter}" if interpreter else "no interpreter: for building images only"
        env = " ".join(f"{k}={v}" for k, v in LAMBDA_ENV.items())
        (context / "Dockerfile").write_text(
            "FROM scratch\n"
            "COPY rootfs/ /\n"
            f"ENV {env}\n"
            "WORKDIR /var/task\n"
            f'LABEL {LABEL}="{key}" org.opencontainers.image.description="A stand-in for AWS\'s Lambda '
            f"Python {python} base image, made by cdk-uv-aspect's tests: {what}\"\n"
        )
        engine.remove(tag)
        _check(
            engine.command("build", "--pull=never", "--platform", PLATFORMS[architecture], "--tag", tag, "."),
            cwd=context,
        )


def _copy_python(interpreter: str, python: str, rootfs: Path) -> None:
    """This machine's CPython at /var/lang, as in AWS's image, with the libraries it loads in /lib64."""
    layout = json.loads(_check([interpreter, "-I", "-c", _LAYOUT]).stdout)
    if layout["version"] != python:
        raise EngineError(f"{interpreter} is Python {layout['version']}, not {python}")
    lang = rootfs / "var" / "lang"
    binary = lang / "bin" / f"python{python}"
    binary.parent.mkdir(parents=True)
    shutil.copy2(layout["executable"], binary)
    for alias in ("python3", "python"):
        (binary.parent / alias).symlink_to(binary.name)
    if layout["libpython"]:
        shutil.copy2(layout["libpython"], lang / "lib" / Path(layout["libpython"]).name)
    stdlib = Path(layout["stdlib"])

    def left_out(folder: str, names: list[str]) -> set[str]:
        if Path(folder) == stdlib:
            return {n for n in names if n in STDLIB_LEFT_OUT or n.startswith("config-")}
        return {n for n in names if EXTENSIONS_LEFT_OUT.match(n) or ".opt-" in n}

    shutil.copytree(stdlib, lang / "lib" / f"python{python}", ignore=left_out, symlinks=True, dirs_exist_ok=True)
    dynload = Path(layout["dynload"])
    if not dynload.is_relative_to(stdlib):
        shutil.copytree(dynload, lang / "lib" / f"python{python}" / "lib-dynload", ignore=left_out)
    elfs = [binary, *(lang / "lib").glob("libpython*"), *(lang / "lib").rglob("*.so")]
    _copy_libraries(elfs, rootfs, {"LD_LIBRARY_PATH": str(lang / "lib")})
    if shutil.which("strip"):  # debug symbols are most of an ELF file's size; the image needs none
        _run(["strip", "--strip-unneeded", *map(str, elfs)])


# Where the interpreter's pieces are, from the interpreter itself.
_LAYOUT = r"""
import json, os, sys, sysconfig
v = sysconfig.get_config_var
lib = os.path.join(v("LIBDIR") or "", v("INSTSONAME") or "") if v("Py_ENABLE_SHARED") else ""
print(json.dumps({"version": "%d.%d" % sys.version_info[:2], "executable": os.path.realpath(sys.executable),
                  "stdlib": sysconfig.get_path("stdlib"), "dynload": v("DESTSHARED"),
                  "libpython": lib if os.path.isfile(lib) else ""}))
"""


def _copy_libraries(elfs: list[Path], rootfs: Path, env: Mapping[str, str]) -> None:
    """Copy what ``ldd`` lists for ``elfs``, and the system libraries wheels may use, into /lib64."""
    found: dict[str, Path] = {}
    loader: Path | None = None
    for elf in elfs:
        done = _run(["ldd", str(elf)], env=env)
        for line in done.stdout.decode().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("/"):
                found.setdefault(parts[0], Path(parts[2]))
            elif parts and parts[0].startswith("/") and "ld-linux" in parts[0]:
                loader = Path(parts[0])
    for name, path in _system_libraries().items():
        found.setdefault(name, path)
    lib64 = rootfs / "lib64"
    lib64.mkdir(exist_ok=True)
    for name, path in found.items():
        if not (rootfs / "var" / "lang" / "lib" / name).exists():
            shutil.copyfile(path.resolve(), lib64 / name)
    if loader:  # at the path the executables name (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2
        target = rootfs / loader.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(loader.resolve(), target)
        target.chmod(0o755)


def _system_libraries() -> dict[str, Path]:
    cache_ = _run(["ldconfig", "-p"]).stdout.decode() if shutil.which("ldconfig") else ""
    wanted: dict[str, Path] = {}
    for line in cache_.splitlines():
        name, _, path = line.strip().partition(" => ")
        soname = name.split(" ")[0]
        if soname in SYSTEM_LIBRARIES and ("x86-64" in name) == (HOST_ARCH == "x86_64"):
            wanted.setdefault(soname, Path(path))
    return wanted


def folder_entries(folder: Path) -> dict[str, tuple[str, int, bytes]]:
    """The same view of a folder on this machine as ``Oci.files`` gives of one in an image."""
    entries: dict[str, tuple[str, int, bytes]] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        mode = path.lstat().st_mode & 0o777
        if path.is_symlink():
            entries[rel] = ("link", 0, os.readlink(path).encode())
        elif path.is_dir():
            entries[rel] = ("dir", mode, b"")
        else:
            entries[rel] = ("file", mode, path.read_bytes())
    return entries


def timings_summary() -> list[str]:
    return [f"{seconds:6.1f} s  {what}" for what, seconds in TIMINGS]


if __name__ == "__main__":  # python tests/oci.py: which engine (a manual check)
    engine = find_engine()
    print(engine if isinstance(engine, str) else f"engine: {engine}")
    sys.exit(0 if isinstance(engine, Oci) else 1)
