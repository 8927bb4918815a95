"""Start: a function started on this machine as Lambda starts it. ``cdk-uv invoke`` and ``cdk-uv profile`` share it.

- **The runtime's Python** (``interpreter``): this machine's CPython of the runtime's version; for another
  architecture's native code, that architecture's CPython under qemu-user (``_emulation``), or a refusal
  saying what would make it work.
- **A sandbox** (``Sandbox``): a private folder, removed after, holding a read-only copy of the code (Lambda's
  ``/var/task`` is read-only), the layers extracted in order into one ``opt`` (Lambda's ``/opt``), an empty
  home of its own and a ``tmp``. The originals (folders of the cloud assembly) are read once while they
  are copied and checked unchanged after the run: nothing the handler does reaches what gets deployed.
- **Lambda's environment** (``lambda_environment``) and nothing of this process's: no credentials, no
  tokens, no home. ``HOME`` names the sandbox's empty home, so ``os.path.expanduser("~")`` never falls
  back to the password database (the developer's home), and the AWS SDKs' shared files name nothing.
- **The bootstrap** (``_bootstrap``) run by ``python -I -S -B``: nothing of this machine's site-packages
  importable, no bytecode written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ._bootstrap import BOOTSTRAP
from ._emulation import Emulated, emulated_python, host_architecture
from ._runner import Result, Runner

# What Lambda sets in every Python function's environment, besides the function's own variables (the
# Lambda developer guide, "Defined runtime environment variables"). Left out: the execution role's
# credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: there is no role here),
# AWS_LAMBDA_RUNTIME_API (no runtime API here) and the X-Ray daemon's address (no daemon).
RESERVED = (
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
)
"""Variables a function can't set itself: Lambda refuses them at deploy ("reserved keys"). The execution
role's credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) are reserved too, but a local
run has no role: values given for them stand in for its credentials."""

LAMBDA_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
INIT_SECONDS = 10  # Lambda gives a function's initialization (its imports) 10 s besides its timeout
REQUEST_LIMIT = 6_291_456  # Lambda: "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
RESPONSE_LIMIT = 6_291_556  # Lambda: "Response payload size exceeded maximum allowed payload size (6291556 bytes)."


class CannotRunHere(Exception):
    """The function can't run on this machine: the message says why and what would make it work."""


class AssemblyChanged(Exception):
    """A run changed the folders the function was started from (the cloud assembly's)."""


@dataclass(frozen=True)
class LambdaFunction:
    """A function as Lambda starts it: its code, handler, runtime, architecture and settings."""

    code: Path  # the folder Lambda unpacks at /var/task
    handler: str  # "module.function"
    python: str  # the runtime's Python version, "3.12"
    architecture: str = "x86_64"
    name: str = "function"
    memory: int = 128
    timeout: int = 3
    runtime: str = ""  # "python3.12"; "" for an image
    region: str = "us-east-1"
    environment: Mapping[str, str] = field(default_factory=dict)
    layers: tuple[Path, ...] = ()  # the layers' folders (each holding python/), in the function's order


def interpreter(fn: LambdaFunction, uv: str | None = None) -> list[str]:
    """The command that runs the runtime's Python for ``fn`` here; ``CannotRunHere`` saying why not.

    Another architecture's code runs on this machine's Python when it has no native code (Python and
    bytecode are the same everywhere), else under qemu-user emulation where that is available.
    """
    from ._interpreters import find_python
    from ._uv import Uv

    host = host_architecture()
    if fn.architecture != host and has_native_code([fn.code, *fn.layers]):
        emulated = emulated_python(fn.architecture, fn.python)
        if not isinstance(emulated, Emulated):
            raise CannotRunHere(f"its native code is for {fn.architecture}: {emulated}")
        return list(emulated.argv)
    python = find_python(uv or Uv.locate(None).path, fn.python)
    if python is None:
        raise CannotRunHere(
            f"there is no Python {fn.python} interpreter on this machine; install one where uv finds it "
            f"(`uv python install {fn.python}`, or pyenv, asdf, your OS's packages)"
        )
    return [python]


def has_native_code(folders: Sequence[Path]) -> bool:
    """Whether any of ``folders`` holds a shared library (a wheel's compiled extension)."""
    return any(any(folder.rglob("*.so")) or any(folder.rglob("*.so.*")) for folder in folders if folder.is_dir())


class Sandbox:
    """A private folder for starting a function: its code's copy, its layers', a home and a tmp of its own.

    ``with Sandbox(fn) as box:``; on leaving, ``box.changed`` lists the files of the originals that differ
    from what was copied (the run changed the cloud assembly) and the folder is removed. With
    ``bytecode=False`` the copy leaves ``__pycache__`` out: the same start without the bytecode shipped.
    """

    def __init__(self, fn: LambdaFunction, *, bytecode: bool = True) -> None:
        self.fn = fn
        self.bytecode = bytecode
        self.root = Path()
        self.changed: list[str] = []
        self._digests: list[tuple[Path, dict[str, str]]] = []

    @property
    def task(self) -> Path:
        return self.root / "task"

    @property
    def opt(self) -> Path:
        return self.root / "opt"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def __enter__(self) -> Sandbox:
        self.root = Path(tempfile.mkdtemp(prefix="cdk-uv-run-"))  # 0700: this user's alone
        try:
            self._digests.append((self.fn.code, _copy_tree(self.fn.code, self.task, self.bytecode)))
            self.opt.mkdir()
            for layer in self.fn.layers:
                self._digests.append((layer, _copy_tree(layer, self.opt, self.bytecode)))
            for folder in (self.task, self.opt):
                _read_only(folder)
            self.fresh()
        except BaseException:
            _remove(self.root)
            raise
        return self

    def fresh(self) -> None:
        """An empty home and tmp, as a new execution environment has."""
        for folder in (self.home, self.tmp):
            _remove(folder)
            folder.mkdir(mode=0o700)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            self.changed = [
                str(origin / rel)
                for origin, digests in self._digests
                for rel in sorted(_differences(origin, digests, self.bytecode))
            ]
        finally:
            _remove(self.root)

    @property
    def path(self) -> list[str]:
        """What Lambda puts on ``sys.path`` after the code: the layers' folders for Python, in its order."""
        return [
            str(self.opt / "python" / "lib" / f"python{self.fn.python}" / "site-packages"),
            str(self.opt / "python"),
        ]


def lambda_environment(fn: LambdaFunction, box: Sandbox) -> dict[str, str]:
    """The whole environment of a local start: Lambda's own variables and the function's, nothing else.

    Nothing of this process's environment is passed on: no credentials (AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE), no tokens (GITHUB_TOKEN), no home. What Lambda has at /var/task and /opt is the
    sandbox's; ``HOME`` and ``TMPDIR`` name its empty home and its tmp; the AWS SDKs' shared config and
    credentials files name files that do not exist, and the instance metadata service is off (no role
    of this machine reaches the handler).
    """
    reserved = {
        "_HANDLER": fn.handler,
        "AWS_REGION": fn.region,
        "AWS_DEFAULT_REGION": fn.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}" if fn.runtime else "AWS_Lambda_python",
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "LAMBDA_TASK_ROOT": str(box.task),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
    }
    unreserved = {
        "LANG": "en_US.UTF-8",
        "PATH": LAMBDA_PATH,
        "LD_LIBRARY_PATH": f"{box.task}:{box.task}/lib:{box.opt}/lib",
        "HOME": str(box.home),
        "TMPDIR": str(box.tmp),
        "AWS_CONFIG_FILE": str(box.home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(box.home / ".aws" / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return {**unreserved, **fn.environment, **reserved}


def start(
    fn: LambdaFunction,
    box: Sandbox,
    command: Sequence[str],
    *,
    mode: str,
    event: str = "",
    flags: Sequence[str] = (),
    runner: Runner | None = None,
) -> Result:
    """Run the bootstrap for ``fn`` in ``box`` with the interpreter ``command``: ``mode`` "invoke" or "init".

    ``flags`` go to the interpreter (``-X importtime``). Stopped, as Lambda stops it, after the function's
    timeout plus Lambda's 10 s for initialization.
    """
    config = {
        "task": str(box.task),
        "path": box.path,
        "handler": fn.handler,
        "name": fn.name,
        "memory": fn.memory,
        "timeout": fn.timeout,
        "region": fn.region,
        "mode": mode,
        "limit": RESPONSE_LIMIT,
    }
    args = [*command, "-I", "-S", "-B", *flags, "-c", BOOTSTRAP, json.dumps(config)]
    return (runner or Runner()).run(
        args,
        cwd=box.task,
        env=lambda_environment(fn, box),
        inherit_env=False,
        input=event,
        timeout=fn.timeout + INIT_SECONDS,
    )


def _copy_tree(source: Path, dest: Path, bytecode: bool) -> dict[str, str]:
    """Copy ``source`` into ``dest`` (merged with what is there: a later layer wins, as Lambda extracts them);
    the digest of every file and link of ``source`` by relative path, read once for both."""
    digests: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        rel_dir = here.relative_to(source)
        (dest / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
                filenames.append(name)
            elif not bytecode and name == "__pycache__":
                dirnames.remove(name)
        for name in filenames:
            origin, rel = here / name, (rel_dir / name).as_posix()
            target = dest / rel_dir / name
            if target.is_symlink() or target.exists():
                target.unlink()
            if origin.is_symlink():
                link = os.readlink(origin)
                target.symlink_to(link)
                digests[rel] = "link:" + link
                continue
            digest = hashlib.sha256()
            with origin.open("rb") as src, target.open("wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            shutil.copystat(origin, target)
            digests[rel] = digest.hexdigest()
    return digests


def _differences(origin: Path, digests: dict[str, str], bytecode: bool) -> set[str]:
    """The relative paths whose file is gone, new or different under ``origin`` (compared with ``digests``)."""
    now: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(origin):
        here = Path(dirpath)
        if not bytecode and "__pycache__" in dirnames:
            dirnames.remove("__pycache__")
        for name in [*filenames, *(d for d in dirnames if (here / d).is_symlink())]:
            path = here / name
            rel = path.relative_to(origin).as_posix()
            if path.is_symlink():
                now[rel] = "link:" + os.readlink(path)
            else:
                digest = hashlib.sha256()
                with path.open("rb") as file:
                    while chunk := file.read(1 << 20):
                        digest.update(chunk)
                now[rel] = digest.hexdigest()
    return {rel for rel in digests.keys() | now.keys() if digests.get(rel) != now.get(rel)}


def _read_only(folder: Path) -> None:
    """Files and folders without write permission, as Lambda's /var/task and /opt."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*filenames, *dirnames]:
            path = Path(dirpath) / name
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    folder.chmod(0o555)


def _remove(folder: Path) -> None:
    """Remove ``folder``, read-only parts included."""
    if not folder.exists():
        return
    for dirpath, dirnames, _ in os.walk(folder):
        for name in dirnames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(0o700)
    folder.chmod(0o700)
    shutil.rmtree(folder, ignore_errors=True)
