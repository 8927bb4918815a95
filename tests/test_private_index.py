"""Private indexes: a package that exists only on a password-protected index, served on loopback.

The index is a real pypiserver (from PyPI) with an htpasswd file, started on a free loopback port for
this module and stopped by its pid. Its one package, ``cdkuv-secret-greeting``, is a wheel written by the
test. The workspace is locked through it with real uv, and built with real uv: cold, from the build
cache, and again from uv's cache. The password must never reach an asset, build.json, the cloud
assembly, a log line or an error message.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import ScriptedRunner, fail, mount_source, uv_command
from helpers import add_function, assert_complete_error, call_handler, function_codes, staged_asset, synth_app

from cdk_uv_aspect import _index
from cdk_uv_aspect._build import build
from cdk_uv_aspect._docker import ROOT, ContainerInstall, Locked
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._runner import Result
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import Uv
from cdk_uv_aspect._workspace import Workspace

pytestmark = pytest.mark.oldest_uv  # uv's error output: also on the oldest uv

SECRET_PACKAGE = "cdkuv-secret-greeting"
SECRET_WHEEL = "cdkuv_secret_greeting-1.0.0-py3-none-any.whl"
GREETING = "hello from the private index"
USER = "alice"
TARGET = "python3.12 x86_64 (Amazon Linux 2023, glibc 2.34)"

# How a workspace finds the private index: in its pyproject.toml (an explicit index its package is pinned
# to through [tool.uv.sources], or an ordinary one), or in the environment only (a named index with
# UV_INDEX_<NAME>_* credentials, or a URL that carries them).
STYLES = ["pyproject-explicit", "pyproject", "env-index", "env-url"]


@dataclass(frozen=True)
class PrivateIndex:
    port: int
    password: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def requests(self, path: str, status: str = "200") -> int:
        """How many GET requests for ``path`` the server answered with ``status``."""
        return self.log.read_text().count(f'"GET {path} HTTP/1.1" {status}')

    @property
    def secrets(self) -> list[bytes]:
        """The password, as it is and as HTTP basic auth sends it."""
        return [self.password.encode(), base64.b64encode(f"{USER}:{self.password}".encode())]


@pytest.fixture(scope="module")
def private_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateIndex]:
    """pypiserver on a free loopback port, with a password for every action, serving one wheel."""
    with warnings.catch_warnings():  # passlib imports the crypt module, deprecated in Python 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.apache import HtpasswdFile

    folder = tmp_path_factory.mktemp("index")
    (folder / "packages").mkdir()
    write_wheel(folder / "packages", "secret_greeting", f'GREETING = "{GREETING}"\n')
    password = "pw-" + secrets.token_hex(12)
    passwords = HtpasswdFile(str(folder / "htpasswd"), new=True)
    passwords.set_password(USER, password)
    passwords.save()
    server = Path(sys.executable).with_name("pypi-server")
    for _ in range(3):  # a port found free may be taken before the server binds it: try another
        port = free_port()
        log = folder / f"requests-{port}.log"
        args = [str(server), "run", "-v", "--host", "127.0.0.1", "--port", str(port), "--authenticate"]
        args += ["download,list,update", "--passwords", str(folder / "htpasswd"), "--disable-fallback"]
        args += ["--log-file", str(log), str(folder / "packages")]
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=folder
        )
        if wait_until_up(process, port):
            break
        stop(process)
    else:
        pytest.fail("pypiserver did not start on a loopback port")
    try:
        yield PrivateIndex(port, password, log)
    finally:
        stop(process)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            time.sleep(0.2)
    return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the server we started, by its pid (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def write_wheel(folder: Path, module: str, code: str) -> Path:
    """A pure wheel of ``cdkuv-secret-greeting`` 1.0.0 holding ``module``, written as a build backend would."""
    dist = "cdkuv_secret_greeting-1.0.0.dist-info"
    files = {
        f"{module}/__init__.py": code.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {SECRET_PACKAGE}\nVersion: 1.0.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    path = folder / SECRET_WHEEL
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


HANDLER = """import six
from secret_greeting import GREETING


def main(event, context):
    return {"greeting": GREETING, "six": six.__version__}
"""


def private_workspace(root: Path, index: PrivateIndex, style: str) -> dict[str, str]:
    """A workspace whose package ``fetcher`` needs the private package (and six, from PyPI), locked with
    real uv; returns the environment that gives uv the index and its credentials in ``style``."""
    credentials = {"UV_INDEX_PRIVATE_USERNAME": USER, "UV_INDEX_PRIVATE_PASSWORD": index.password}
    config, sources, env = "", "", credentials
    if style.startswith("pyproject"):
        explicit = "explicit = true\n" if style == "pyproject-explicit" else ""
        config = f'\n[[tool.uv.index]]\nname = "private"\nurl = "{index.url}"\n{explicit}'
        if explicit:
            sources = f'\n[tool.uv.sources]\n{SECRET_PACKAGE} = {{ index = "private" }}\n'
    elif style == "env-index":
        env = {"UV_INDEX": f"private={index.url}", **credentials}
    else:
        env = {"UV_EXTRA_INDEX_URL": index.url.replace("http://", f"http://{USER}:{index.password}@")}
    package = root / "packages" / "fetcher"
    (package / "src" / "fetcher").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[tool.uv.workspace]\nmembers = ["packages/*"]\n{config}')
    (package / "pyproject.toml").write_text(
        '[project]\nname = "fetcher"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["{SECRET_PACKAGE}>=1.0", "six>=1.16"]\n{sources}\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    (package / "src" / "fetcher" / "__init__.py").write_text("")
    (package / "src" / "fetcher" / "handler.py").write_text(HANDLER)
    lock_env = {**os.environ, **env, "UV_CACHE_DIR": str(root.parent / "lock-cache")}
    locked = subprocess.run([Uv.locate(None).path, "lock", "--quiet"], cwd=root, env=lock_env, capture_output=True)
    assert locked.returncode == 0, locked.stderr.decode()
    assert f'source = {{ registry = "{index.url}" }}' in (root / "uv.lock").read_text()  # the lock names the index
    return env


@pytest.fixture
def uv_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty uv cache: the first build downloads the private wheel."""
    path = tmp_path / "uv-cache"
    monkeypatch.setenv("UV_CACHE_DIR", str(path))
    return path


def holding(secrets: list[bytes], *folders: Path) -> list[str]:
    """Every file below ``folders`` that contains one of ``secrets``."""
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and any(s in path.read_bytes() for s in secrets):
                found.append(str(path))
    return found


def add_fetcher(stack) -> None:
    add_function(stack, "Fetcher", "fetcher", handler="fetcher.handler.main")


@pytest.mark.slow
@pytest.mark.parametrize("style", STYLES)
def test_a_package_only_on_a_private_index_builds_cold_and_warm_and_its_password_is_written_nowhere(
    style: str,
    private_index: PrivateIndex,
    tmp_path: Path,
    cache_dir: Path,
    uv_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
):
    """Cold, from the build cache, and rebuilt from uv's cache: the handler answers with the private
    package's code, and the password is in no file the synth wrote and in no line it printed or logged."""
    caplog.set_level(logging.DEBUG, logger="cdk_uv_aspect")  # every command line and its output
    workspace = tmp_path / "ws"
    env = private_workspace(workspace, private_index, style)
    user_files = {p: p.read_bytes() for p in (workspace / "uv.lock", workspace / "pyproject.toml")}
    wheel = f"/packages/{SECRET_WHEEL}"
    downloads = private_index.requests(wheel)
    hatchling_before = private_index.requests("/simple/hatchling/", "404")

    keys = []
    for n, options in enumerate([{}, {}, {"rebuild": True}]):  # cold, build cache, uv's cache
        for key, value in env.items():  # a build from the build cache needs no index, so no credentials
            monkeypatch.delenv(key) if n == 1 else monkeypatch.setenv(key, value)
        out = tmp_path / f"cdk.out.{n}"
        _, stack = synth_app(workspace, add_fetcher, outdir=out, **options)
        (code,) = function_codes(stack).values()
        keys.append(code["S3Key"])
        printed = capfd.readouterr().err
        assert ("from cache" if n == 1 else "built in") in printed, printed
        answer = call_handler(staged_asset(out, code), "fetcher.handler.main", "3.12")
        assert answer.ok, answer
        assert answer.result == {"greeting": GREETING, "six": "1.17.0"}
        assert private_index.requests(wheel) == downloads + 1, "the wheel comes from the index once, then uv's cache"
        assert private_index.secrets[0] not in printed.encode()
    assert len(set(keys)) == 1  # the same asset each time

    produced = [*tmp_path.glob("cdk.out.*"), cache_dir]
    assert holding(private_index.secrets, *produced) == []
    assert not any(s.decode() in caplog.text for s in private_index.secrets)
    assert "--index" in caplog.text if style == "pyproject-explicit" else "--index" not in caplog.text
    assert {p: p.read_bytes() for p in user_files} == user_files  # the user's files are untouched
    hatchling = private_index.requests("/simple/hatchling/", "404")  # asked by `uv build` of fetcher
    if style == "pyproject-explicit":  # an explicit index is asked for its own packages only
        assert private_index.requests("/simple/six/") == 0
    if style == "pyproject":  # `uv build` of a private copy still uses the workspace's indexes
        assert hatchling > hatchling_before


@pytest.mark.slow
@pytest.mark.parametrize(("style", "password"), [("pyproject-explicit", "wrong"), ("env-index", None)])
def test_credentials_the_index_refuses_are_named_with_the_ways_to_pass_them(
    style: str,
    password: str | None,
    private_index: PrivateIndex,
    tmp_path: Path,
    cache_dir: Path,
    uv_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """Wrong or missing credentials: which index refused them, for what, and how to give uv the right ones."""
    workspace = tmp_path / "ws"
    for key, value in private_workspace(workspace, private_index, style).items():
        monkeypatch.setenv(key, value)
    if password is None:
        monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD")
        monkeypatch.delenv("UV_INDEX_PRIVATE_USERNAME")
    else:
        monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", password)
    with pytest.raises(RuntimeError) as error:
        synth_app(workspace, add_fetcher)
    message = str(error.value)
    assert_complete_error(
        message,
        construct="Stack/Fetcher",
        package="fetcher",
        target=TARGET,
        fix="set UV_INDEX_PRIVATE_USERNAME and UV_INDEX_PRIVATE_PASSWORD",
        also=[
            f"the index at {private_index.url} refused the credentials",
            SECRET_PACKAGE,
            "keyring",
            "netrc",
            "docs/private-indexes.md",
        ],
    )
    assert "uv lock" not in message
    assert private_index.password not in message
    assert holding(private_index.secrets, cache_dir) == []


def docker_runner(runner_log: list[str]) -> ScriptedRunner:
    """Real uv, except that the local install of PyPI's packages finds no wheel for the target, and a
    Docker engine that 'installs' what it is given by writing a module for each package."""

    def container(args: list[str]) -> Result:
        locked = Path(mount_source(args, f"{ROOT}/locked.txt")).read_text()
        runner_log.append(locked)
        site = Path(mount_source(args, f"{ROOT}/asset"))
        for package, module in ((SECRET_PACKAGE, "secret_greeting"), ("six==", "six")):
            if package in locked:
                (site / f"{module}.py").write_text("built_in_container = True\n")
        return Result(tuple(args), 0, "", "")

    no_wheel = "error: No solution found when resolving dependencies:\n  Because six==1.17.0 has no usable wheels"
    return (
        ScriptedRunner()
        .when(
            lambda args: uv_command("pip", "install")(args) and "-r" in args and "--index" not in args,
            fail(1, no_wheel),
        )
        .when(lambda args: args[:2] == ["docker", "version"], lambda args: Result(tuple(args), 0, "27.3.1\n", ""))
        .when(lambda args: args[:2] == ["docker", "run"], container)
    )


@pytest.mark.slow
@pytest.mark.parametrize("style", ["pyproject-explicit", "pyproject"])
def test_the_docker_fallback_gets_the_index_configuration_and_credentials_by_name_only(
    style: str,
    private_index: PrivateIndex,
    tmp_path: Path,
    cache_dir: Path,
    uv_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """The container reaches the same indexes, with the same credentials, and no credential is on its
    command line or in a file of the build: variables pass by name, the netrc file is mounted read-only."""
    workspace = tmp_path / "ws"
    for key, value in private_workspace(workspace, private_index, style).items():
        monkeypatch.setenv(key, value)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {private_index.password}\n")
    monkeypatch.setenv("NETRC", str(netrc))
    installed: list[str] = []
    runner = docker_runner(installed)
    request = BuildRequest(Workspace.find(workspace), "fetcher", Target("3.12", "x86_64"), UvOptions())
    built = build(request, runner)

    runs = [(call, env) for call, env in zip(runner.calls, runner.envs, strict=True) if call[:2] == ["docker", "run"]]
    pinned = [call for call, _ in runs if "--index" in call]
    if style == "pyproject-explicit":  # the pinned package: a run of its own that names its index
        assert len(runs) == 2 and len(pinned) == 1
        assert pinned[0][pinned[0].index("--index") + 1] == f"private={private_index.url}"
        assert [SECRET_PACKAGE in text for text in installed] == [True, False]
    else:  # the index comes with the environment the container gets
        assert len(runs) == 1 and pinned == []
        assert runs[0][1] == {"UV_INDEX": f"private={private_index.url}"}
    for call, _ in runs:
        passed = {call[i + 1] for i, arg in enumerate(call) if arg == "--env"}
        assert {"UV_INDEX_PRIVATE_USERNAME", "UV_INDEX_PRIVATE_PASSWORD", f"NETRC={ROOT}/netrc"} <= passed
        assert f"type=bind,source={netrc},target={ROOT}/netrc,readonly" in call
    everything = "\n".join(itertools.chain.from_iterable(runner.calls))
    assert private_index.password not in everything
    assert not any(private_index.password in value for env in runner.envs for value in env.values())
    assert holding(private_index.secrets, cache_dir) == []
    for module in ("six.py", "secret_greeting.py"):
        assert (built.asset_dir / module).read_text() == "built_in_container = True\n"
    assert (built.asset_dir / "fetcher" / "handler.py").is_file()  # the workspace's package: built here


def test_container_variables_are_the_index_configuration_the_workspace_root_gives_uv(tmp_path: Path):
    """Indexes of pyproject.toml (but explicit ones) come after the environment's; credentials by name."""
    (tmp_path / "pyproject.toml").write_text(
        '[[tool.uv.index]]\nname = "corp"\nurl = "https://corp.example/simple"\ndefault = true\n'
        '[[tool.uv.index]]\nname = "extra"\nurl = "https://extra.example/simple"\n'
        '[[tool.uv.index]]\nname = "torch"\nurl = "https://torch.example/whl"\nexplicit = true\n'
    )
    environ = {"UV_INDEX": "mine=https://mine.example/simple", "UV_INDEX_CORP_PASSWORD": "x", "HOME": "/root"}
    values, names = _index.container_environment(tmp_path, environ)
    assert values == {
        "UV_INDEX": "mine=https://mine.example/simple extra=https://extra.example/simple",
        "UV_DEFAULT_INDEX": "corp=https://corp.example/simple",
    }
    assert names == ["UV_DEFAULT_INDEX", "UV_INDEX", "UV_INDEX_CORP_PASSWORD"]
    # The environment's default index wins over the workspace's, as it does for uv itself.
    values, _ = _index.container_environment(tmp_path, {"UV_INDEX_URL": "https://mirror.example/simple"})
    assert "UV_DEFAULT_INDEX" not in values


def test_container_command_line_names_variables_without_their_values():
    """`--env NAME` alone: the engine's client reads the value from its environment, `ps` shows no secret."""
    install = ContainerInstall(
        Target("3.12", "x86_64"),
        Path("/site"),
        Locked(Path("/locked.txt"), "private=https://corp.example/simple/"),
        Path("/uv-cache"),
        passed=("UV_INDEX_PRIVATE_PASSWORD", "UV_INDEX_PRIVATE_USERNAME"),
    )
    args = install.args("docker")
    envs = [args[i + 1] for i, arg in enumerate(args) if arg == "--env"]
    assert "UV_INDEX_PRIVATE_PASSWORD" in envs and "UV_INDEX_PRIVATE_USERNAME" in envs
    assert all("=" in e for e in envs if not e.startswith("UV_INDEX_PRIVATE_"))
    assert args[args.index("--index") + 1] == "private=https://corp.example/simple/"
    assert not any("netrc" in a for a in args)  # none here: nothing mounted
