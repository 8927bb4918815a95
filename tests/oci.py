"""The OCI engine of the image tests: which engine, stand-in Lambda base images, the CDK's build, a run.

- **Which engine.** The CDK CLI's asset publishing runs ``$CDK_DOCKER`` when it is set, else ``docker``.
  The same here, and ``podman`` when no Docker engine answers (what a user of such a machine would set
  ``CDK_DOCKER`` to). Podman gets a storage of its own (``--root``/``--runroot`` in the test cache, the
  ``vfs`` driver, which needs nothing from the kernel), so the stand-ins below never shadow a
  developer's real images, and ``--pull=never``: a missing base image is an error here, not a download.
- **Stand-in base images** (podman): no registry is reachable on the machines this runs on, so
  ``public.ecr.aws/lambda/python:3.X`` is made locally from this machine's CPython 3.X and the shared
  libraries ``ldd`` lists, laid out as AWS's images are (``/var/lang``, ``/var/task`` as ``WORKDIR``
  and ``LAMBDA_TASK_ROOT``, the same ``PATH`` and ``LD_LIBRARY_PATH``). One per Python version and
  architecture, behind a manifest list under the real name so ``build --platform`` finds the right one.
  There is no CPython for another architecture on this machine: that stand-in holds no interpreter and
  serves builds only. With Docker, the real base image is used (pulled when missing).
- **Build**: the arguments cdk-assets' ``Docker.build`` passes (``@aws-cdk/cdk-assets-lib``
  ``lib/private/docker.ts``), from the ``dockerImages`` entries of the cloud assembly's
  ``*.assets.json``, in the asset's directory, tagged ``cdkasset-<asset id>``.
- **Run**: the image's own Python (``/var/lang/bin/python3``) runs ``cdk-uv invoke``'s bootstrap, which
  imports the handler from ``/var/task`` and calls it with the event. ``docker run``/``podman run``;
  where ``podman run`` can't start a container (here: crun's ``setrlimit`` is not permitted),
  ``buildah from`` + ``buildah run --isolation chroot``.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import platform
import re
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
from typing import Any

from cdk_uv_aspect._invoke import _BOOTSTRAP, Invocation
from cdk_uv_aspect._uv import Uv, find_python

BASE_IMAGE = "public.ecr.aws/lambda/python"
STAND_IN = "localhost/cdk-uv-stand-in/lambda-python"
LABEL = "cdk-uv-aspect.stand-in"
RECIPE = "1"  # change it when the stand-in's recipe changes: cached stand-ins are then made again
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
OCI_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
QEMU = {"x86_64": "qemu-x86_64", "arm64": "qemu-aarch64"}  # binfmt_misc entry names of qemu-user
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine()
)
IMAGE_PYTHON = "/var/lang/bin/python3"  # where AWS's Lambda Python images have their interpreter

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
SYSTEM_LIBRARIES = ("libgcc_s.so.1", "libstdc++.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                    "libutil.so.1", "libresolv.so.2", "libm.so.6", "libc.so.6")  # fmt: skip

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
class Engine:
    """An OCI client and the flags this machine needs, with the commands the image tests use."""

    client: str  # the binary: $CDK_DOCKER, docker or podman
    kind: str  # "docker" or "podman"
    storage: tuple[str, ...] = ()  # podman's and buildah's global flags: a private vfs storage
    buildah: str | None = None
    run_with_buildah: str = ""  # why `podman run` was given up for buildah, once it was
    images: dict[str, str] = field(default_factory=dict)  # tag -> what it is: built here, removed by `cleanup`
    _files: dict[tuple[str, str], dict[str, tuple[str, int, bytes]]] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        runner = f", containers run with buildah ({self.run_with_buildah})" if self.run_with_buildah else ""
        return f"{self.kind} ({self.client}{runner})"

    def command(self, *args: str) -> list[str]:
        return [self.client, *self.storage, *args]

    @property
    def env(self) -> dict[str, str]:
        # Isolation for a Dockerfile's RUN steps: chroot needs no user namespaces or cgroups.
        return {"BUILDAH_ISOLATION": "chroot"} if self.kind == "podman" else {}

    def exists(self, image: str) -> bool:
        return _run(self.command("image", "inspect", image)).returncode == 0

    def inspect(self, image: str, template: str) -> str:
        return _check(self.command("image", "inspect", "--format", template, image)).stdout.decode().strip()

    def remove(self, *images: str) -> None:
        if images:
            _run(self.command("rmi", "--force", *images))

    def cleanup(self) -> None:
        """Remove every image these tests built (the base images stay: they are the cache)."""
        self.remove(*sorted(self.images))
        self.images.clear()
        self._files.clear()

    # -- build, as cdk-assets does --

    def build(self, asset: ImageAsset) -> str:
        """Build ``asset`` with the arguments cdk-assets gives ``docker build``; return its local tag."""
        if "executable" in asset.source:
            raise EngineError(f"image asset {asset.id} is built by a command, not from a directory")
        tag = asset.local_tag
        self._files = {k: v for k, v in self._files.items() if k[0] != tag}
        self.remove(tag)  # the CDK would reuse it (same asset id, same inputs): build it for real here
        args = self.build_command(asset)
        started = time.monotonic()
        done = _run(args, cwd=asset.directory, env={**self.env, "BUILDX_NO_DEFAULT_ATTESTATIONS": "1"})
        _timed(f"build {asset.display} ({asset.source.get('platform', 'default platform')})", started)
        if done.returncode != 0:
            raise EngineError(
                f"`{' '.join(args)}` in {asset.directory} exited {done.returncode}:\n"
                f"{done.stderr.decode(errors='replace')}"
            )
        self.images[tag] = asset.display
        return tag

    def build_command(self, asset: ImageAsset) -> list[str]:
        """The command ``build`` runs in the asset's directory: cdk-assets' own, plus --pull=never for podman."""
        pull = ["--pull=never"] if self.kind == "podman" else []
        return self.command("build", *pull, *asset.build_args(asset.local_tag))

    def build_directory(self, directory: Path, tag: str, *, platform: str | None = None) -> str:
        """A plain ``build`` of a directory holding a Dockerfile (for contexts made by a test)."""
        asset = ImageAsset(
            f"test-{tag}",
            {"directory": str(directory), **({"platform": platform} if platform else {})},
            directory.parent,
            display=tag,
        )
        return self.build(asset)

    # -- files and runs --

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

    def run(
        self,
        image: str,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
        platform: str | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``argv`` (no shell, the image's entrypoint replaced) in a fresh container of ``image``."""
        env = env or {}
        if not self.run_with_buildah:
            run = self.command("run", "--rm", "-i", *(["--platform", platform] if platform else []),
                               "--entrypoint", argv[0],
                               *(arg for k, v in sorted(env.items()) for arg in ("--env", f"{k}={v}")),
                               image, *argv[1:])  # fmt: skip
            done = _run(run, input=stdin, env=self.env)
            if not (self.kind == "podman" and self.buildah and _runtime_refused(done)):
                return done
            self.run_with_buildah = _first_line(done.stderr)
        return self._buildah_run(image, argv, stdin, env)

    def _buildah_run(
        self, image: str, argv: Sequence[str], stdin: bytes, env: Mapping[str, str]
    ) -> subprocess.CompletedProcess[bytes]:
        assert self.buildah
        buildah = [self.buildah, *self.storage]
        name = f"cdk-uv-test-{uuid.uuid4().hex[:12]}"
        _check([*buildah, "from", "--pull-never", "--quiet", "--name", name, image])
        try:
            return _run([*buildah, "run", "--isolation", "chroot",
                         *(arg for k, v in sorted(env.items()) for arg in ("--env", f"{k}={v}")),
                         name, "--", *argv], input=stdin)  # fmt: skip
        finally:
            _run([*buildah, "rm", name])

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
        """Call ``handler`` from ``/var/task`` with the image's Python, as ``cdk-uv invoke`` does from a folder."""
        env = {
            **(environment or {}),
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        }
        argv = [
            IMAGE_PYTHON,
            "-I",
            "-S",
            "-c",
            _BOOTSTRAP,
            LAMBDA_ENV["LAMBDA_TASK_ROOT"],
            handler,
            name,
            "128",
            architecture,
            "900",
        ]
        started = time.monotonic()
        done = self.run(image, argv, stdin=json.dumps(event).encode(), env=env, platform=PLATFORMS[architecture])
        seconds = time.monotonic() - started
        _timed(f"run {handler} in {self.images.get(image, image)}", started)
        logs, sep, payload = done.stdout.decode(errors="replace").rpartition("\0")
        stderr = done.stderr.decode(errors="replace")
        if not sep:
            return Invocation(False, {"errorType": "Runtime.ExitError", "errorMessage": stderr.strip()}, seconds, logs)
        return Invocation(done.returncode == 0, json.loads(payload), seconds, logs + stderr)


def _runtime_refused(done: subprocess.CompletedProcess[bytes]) -> bool:
    """`podman run` failed before the command started: the OCI runtime could not create the container."""
    return done.returncode in (125, 126, 127) and b"OCI" in done.stderr and b"\0" not in done.stdout


def _first_line(text: bytes) -> str:
    return next((line for line in text.decode(errors="replace").splitlines() if line.strip()), "").strip()


def podman_storage() -> tuple[str, ...]:
    root = Path(
        os.environ.get("CDK_UV_TEST_OCI_ROOT")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cdk-uv-aspect-tests" / "oci"
    )
    return ("--root", str(root / "storage"), "--runroot", str(root / "run"), "--storage-driver", "vfs")


@cache
def find_engine() -> Engine | str:
    """The engine the CDK would build with, or why there is none (a sentence for a skip reason)."""
    tried = []
    given = os.environ.get("CDK_DOCKER")
    candidates = [given] if given else ["docker", "podman"]
    for client in candidates:
        path = shutil.which(client)
        if not path:
            tried.append(f"`{client}` is not installed")
            continue
        version = _run([path, "--version"], timeout=30)
        kind = "podman" if b"podman" in version.stdout.lower() else "docker"
        storage = podman_storage() if kind == "podman" else ()
        # Docker's client answers without an engine; `version` with the server's field needs one.
        probe = _run([path, *storage, "version", "--format", "{{.Server.Version}}"], timeout=60)
        if probe.returncode != 0 or not probe.stdout.strip():
            tried.append(f"`{client} version` found no engine ({_first_line(probe.stderr) or 'no answer'})")
            continue
        return Engine(path, kind, storage, buildah=shutil.which("buildah") if kind == "podman" else None)
    if given:
        return (
            f"no OCI engine to build images with ($CDK_DOCKER): {'; '.join(tried)}. "
            "Fix $CDK_DOCKER, or unset it to use docker or podman"
        )
    return (
        f"no OCI engine to build images with (the CDK's `docker`, then `podman`): {'; '.join(tried)}. "
        "On Debian as root: apt-get install -y podman buildah"
    )


def can_run(architecture: str) -> str:
    """Why this machine can't run code of ``architecture``, or "" when it can."""
    if architecture == HOST_ARCH:
        return ""
    entry = Path("/proc/sys/fs/binfmt_misc") / QEMU[architecture]
    if entry.is_file() and entry.read_text().startswith("enabled"):
        return ""
    return (
        f"this machine is {HOST_ARCH} and has no {QEMU[architecture]} binfmt_misc handler "
        "(Debian: apt-get install qemu-user-static binfmt-support)"
    )


# --- base images -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseImage:
    name: str  # public.ecr.aws/lambda/python:3.12
    architecture: str
    origin: str  # AWS's image, or the stand-in and what it holds
    runnable: str  # "" when its Python runs here, else why not


def base_image(engine: Engine, python: str, architecture: str, interpreter: str | None = None) -> BaseImage:
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


@contextmanager
def _locked(engine: Engine) -> Iterator[None]:
    root = Path(engine.storage[engine.storage.index("--root") + 1]) if "--root" in engine.storage else None
    if root is None:
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with (root.parent / "stand-ins.lock").open("w") as lock:
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


def _list_stand_ins(engine: Engine, name: str, python: str) -> None:
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


def _make_stand_in(engine: Engine, tag: str, python: str, architecture: str, interpreter: str | None, key: str) -> None:
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
            env=engine.env,
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


# --- the cloud assembly's image assets and image functions -----------------------------------------


# The fields of an image asset's source that cdk-assets turns into `docker build` arguments.
SOURCE_FIELDS = ("dockerBuildArgs", "dockerBuildContexts", "dockerBuildSecrets", "dockerBuildSsh",
                 "dockerBuildTarget", "dockerFile", "networkMode", "platform", "dockerOutputs", "cacheFrom",
                 "cacheTo", "cacheDisabled")  # fmt: skip


@dataclass(frozen=True)
class ImageAsset:
    """One ``dockerImages`` entry of a ``*.assets.json``: its id and its source, as cdk-assets reads them."""

    id: str
    source: dict[str, Any]
    manifest_dir: Path  # the source's directory is relative to the manifest's folder
    display: str = ""

    @property
    def directory(self) -> Path:
        return (self.manifest_dir / str(self.source["directory"])).resolve()

    @property
    def local_tag(self) -> str:
        # cdk-assets' name (ContainerImageBuilder.buildDirectoryAsset), with this process as the tag: test
        # sessions running at once share the engine's storage, and each removes what it built.
        return f"cdkasset-{self.id.lower()}:test-{SESSION}"

    def build_args(self, tag: str) -> list[str]:
        """``docker build``'s arguments after ``build``, in cdk-assets' order (``Docker.build``)."""
        s = self.source
        return [
            *(a for k, v in (s.get("dockerBuildArgs") or {}).items() for a in ("--build-arg", f"{k}={v}")),
            *(a for k, v in (s.get("dockerBuildContexts") or {}).items() for a in ("--build-context", f"{k}={v}")),
            *(a for k, v in (s.get("dockerBuildSecrets") or {}).items() for a in ("--secret", f"id={k},{v}")),
            *(["--ssh", s["dockerBuildSsh"]] if s.get("dockerBuildSsh") else []),
            "--tag", tag,
            *(["--target", s["dockerBuildTarget"]] if s.get("dockerBuildTarget") else []),
            *(["--file", s["dockerFile"]] if s.get("dockerFile") else []),
            *(["--network", s["networkMode"]] if s.get("networkMode") else []),
            *(["--platform", s["platform"]] if s.get("platform") else []),
            *(f"--output={o}" for o in s.get("dockerOutputs") or []),
            *(a for c in s.get("cacheFrom") or [] for a in ("--cache-from", _cache_flag(c))),
            *(["--cache-to", _cache_flag(s["cacheTo"])] if s.get("cacheTo") else []),
            *(["--no-cache"] if s.get("cacheDisabled") else []),
            ".",
        ]  # fmt: skip

    def base_images(self) -> list[str]:
        """The images its Dockerfile builds FROM, with the build arguments (and ARG defaults) filled in."""
        dockerfile = self.directory / (self.source.get("dockerFile") or "Dockerfile")
        args = {}
        names = []
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0].upper() == "ARG":
                name, _, default = words[1].partition("=")
                args[name] = (self.source.get("dockerBuildArgs") or {}).get(name, default)
            elif len(words) >= 2 and words[0].upper() == "FROM":
                image = next(w for w in words[1:] if not w.startswith("--"))
                names.append(re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), image))
        return names


def _cache_flag(option: Mapping[str, Any]) -> str:
    params = option.get("params") or {}
    return ",".join([f"type={option['type']}", *(f"{k}={v}" for k, v in params.items())])


@dataclass(frozen=True)
class ImageFunction:
    """An image function of the cloud assembly: its construct path, image asset, command, architecture."""

    path: str
    asset: ImageAsset
    command: list[str]
    architecture: str
    environment: dict[str, str]

    @property
    def handler(self) -> str:
        return self.command[0]


def image_functions(outdir: Path) -> list[ImageFunction]:
    """Every Lambda function of ``outdir`` (nested assemblies too) whose code is an image asset of it."""
    return sorted(_image_functions(outdir), key=lambda f: f.path)


def _image_functions(outdir: Path) -> Iterator[ImageFunction]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    for artifact in manifest.get("artifacts", {}).values():
        props = artifact.get("properties", {})
        if artifact.get("type") == "cdk:cloud-assembly":
            yield from _image_functions(outdir / props["directoryName"])
        elif artifact.get("type") == "aws:cloudformation:stack":
            assets = _image_assets(outdir)
            template = json.loads((outdir / props["templateFile"]).read_text())
            paths = _paths_by_logical_id(outdir, artifact)
            for lid, resource in template.get("Resources", {}).items():
                p = resource.get("Properties", {})
                if resource.get("Type") != "AWS::Lambda::Function" or p.get("PackageType") != "Image":
                    continue
                uri = p.get("Code", {}).get("ImageUri")
                text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
                asset = assets.get(text.rpartition(":")[2])
                if asset is None:
                    continue  # an image from ECR, not built from this assembly
                path = (paths.get(lid) or resource.get("Metadata", {}).get("aws:cdk:path", lid)).strip("/")
                path = path.removesuffix("/Resource")
                yield ImageFunction(
                    path=path,
                    asset=asset,
                    command=list((p.get("ImageConfig") or {}).get("Command") or []),
                    architecture=(p.get("Architectures") or ["x86_64"])[0],
                    environment={
                        k: v for k, v in (p.get("Environment") or {}).get("Variables", {}).items() if isinstance(v, str)
                    },
                )


def _paths_by_logical_id(outdir: Path, artifact: dict[str, Any]) -> dict[str, str]:
    metadata = dict(artifact.get("metadata") or {})
    if "additionalMetadataFile" in artifact:
        metadata.update(json.loads((outdir / artifact["additionalMetadataFile"]).read_text()))
    return {e["data"]: path for path, entries in metadata.items() for e in entries
            if e.get("type") == "aws:cdk:logicalId"}  # fmt: skip


def _image_assets(outdir: Path) -> dict[str, ImageAsset]:
    assets = {}
    for manifest in sorted(outdir.glob("*.assets.json")):
        for asset_id, entry in json.loads(manifest.read_text()).get("dockerImages", {}).items():
            assets[asset_id] = ImageAsset(asset_id, entry["source"], outdir, entry.get("displayName", asset_id))
    return assets


def folder_entries(folder: Path) -> dict[str, tuple[str, int, bytes]]:
    """The same view of a folder on this machine as ``Engine.files`` gives of one in an image."""
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


if __name__ == "__main__":  # python tests/oci.py: which engine, and the stand-ins made (a manual check)
    engine = find_engine()
    print(engine if isinstance(engine, str) else f"engine: {engine}")
    sys.exit(0 if isinstance(engine, Engine) else 1)
