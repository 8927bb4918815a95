"""Nothing hangs: special files are refused by path, every command has a time limit that names it, a
silent index fails in bounded time, and SIGTERM or Ctrl-C end every child and leave no private folder.

Each test that could hang runs under a deadline (``deadline``): a regression fails, it does not wait.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, add_function, assert_complete_error, build_of, half_written, synth_app, synth_error

from cdk_uv_aspect import _runner
from cdk_uv_aspect._errors import WorkspaceError
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._runner import Bounded, Runner

AL2023_X86 = "python3.12 x86_64 (Amazon Linux 2023, glibc 2.34)"


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail the test, instead of hanging it, if the block takes longer than ``seconds``."""

    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def processes_with(token: str, *, under: Path | None = None) -> dict[int, str]:
    """pid -> command line of the running processes (other than this one) whose environment holds
    ``token``; with ``under``, only those working in that folder (the builds in a build cache)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if token.encode() not in (entry / "environ").read_bytes():
                continue
            if under is not None and not Path(os.readlink(entry / "cwd")).is_relative_to(under):
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An environment variable set for every process the test starts; whatever still carries it at the
    end is killed, so that a failing test does not leave a sleeping build behind."""
    name = f"CDK_UV_TEST_{uuid.uuid4().hex}"
    monkeypatch.setenv(name, "1")
    yield name
    for pid in processes_with(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def add_sleeping_build_hook(package: Path) -> None:
    """A hatch build hook in ``package`` that touches $HOOK_STARTED, then sleeps $HOOK_SLEEP seconds."""
    with (package / "pyproject.toml").open("a") as f:
        f.write("\n[tool.hatch.build.hooks.custom]\n")
    (package / "hatch_build.py").write_text(
        "import os, pathlib, time\n"
        "from hatchling.builders.hooks.plugin.interface import BuildHookInterface\n"
        "class CustomBuildHook(BuildHookInterface):\n"
        "    def initialize(self, version, build_data):\n"
        "        if os.environ.get('HOOK_STARTED'):\n"
        "            pathlib.Path(os.environ['HOOK_STARTED']).touch()\n"
        "        time.sleep(float(os.environ.get('HOOK_SLEEP', '0')))\n"
    )


# --- special files ----------------------------------------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    here = os.getcwd()
    os.chdir(path.parent)  # a socket's path is limited to 108 bytes: bind it by its name
    try:
        sock.bind(path.name)  # the file stays after the socket is closed
    finally:
        os.chdir(here)
        sock.close()


def _device(path: Path) -> None:
    try:
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))  # a character device: /dev/zero's numbers
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")


def _link_to_fifo(path: Path) -> None:
    os.mkfifo(path.with_name("zz-pipe"))  # listed after the link: the link is what is refused
    path.symlink_to("zz-pipe")


def _link_loop(path: Path) -> None:
    path.symlink_to(path.name + "-back")
    path.with_name(path.name + "-back").symlink_to(path.name)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_fifo, "a named pipe"),
        (_socket, "a socket"),
        (_device, "a character device"),
        (_link_to_fifo, "a named pipe"),
        (_link_loop, "a link loop"),
    ],
    ids=["fifo", "socket", "device", "link-to-fifo", "link-loop"],
)
def test_special_files_in_a_package_are_refused_by_path(workspace: Path, cache_dir: Path, make, says):
    """A named pipe in a package's sources used to hang the fingerprint forever; each kind is refused, named."""
    where = workspace / "packages" / "common" / "src" / "common" / "special"
    make(where)
    with deadline(60), pytest.raises(WorkspaceError) as error:
        build_of(workspace)
    assert_complete_error(str(error.value), construct=None, package="api", target=AL2023_X86, fix="remove")
    assert str(where) in str(error.value) and says in str(error.value)
    assert not (cache_dir / "builds").exists() or not list((cache_dir / "builds").iterdir())


def test_a_file_name_that_is_not_text_is_refused_by_path(workspace: Path, cache_dir: Path):
    """A name that is not UTF-8 can't go into a wheel or a zip: refused with the name's bytes, not a codec crash."""
    folder = workspace / "packages" / "common" / "src" / "common"
    (folder / os.fsdecode(b"caf\xe9.py")).write_text("x = 1\n")
    with deadline(60), pytest.raises(WorkspaceError) as error:
        build_of(workspace)
    assert_complete_error(str(error.value), construct=None, package="api", target=AL2023_X86, fix="rename the file")
    assert "caf\\xe9.py" in str(error.value) and "not valid UTF-8" in str(error.value)


# --- every command has a time limit -----------------------------------------------------------------


def test_a_slow_command_is_reported_while_it_runs_then_stopped(monkeypatch: pytest.MonkeyPatch):
    """A command still running is reported (not silent), then stopped at its limit, naming it."""
    monkeypatch.setattr(_runner, "_FIRST_NOTICE", 0.4)
    said: list[str] = []
    runner = Bounded(Runner(), 2.0, what="api (python3.12-x86_64)", say=said.append)
    started = time.monotonic()
    with deadline(30):
        result = runner.run(["sleep", "60"])
    assert time.monotonic() - started < 10
    assert result.timed_out and not result.ok
    assert len(said) >= 2 and all("`sleep 60` for api (python3.12-x86_64) still running after" in s for s in said)
    assert "stopped after 2 s" in said[0] and "CDK_UV_COMMAND_TIMEOUT" in said[0]
    assert "stopped after 2 s (timed out)" in result.describe()


@pytest.mark.slow
def test_a_build_hook_that_never_returns_is_stopped_and_named(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
):
    """A build backend that never returns: the synth fails at the time limit, names the command, the
    package and the fix, and leaves no process and no private folder behind."""
    add_sleeping_build_hook(workspace / "packages" / "common")
    monkeypatch.setenv("HOOK_SLEEP", "600")
    started = time.monotonic()
    with deadline(300):
        message = synth_error(workspace, lambda s: add_function(s, "Api", "api"), command_timeout=15)
    assert time.monotonic() - started < 240
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="UvOptions(command_timeout=<seconds>) or $CDK_UV_COMMAND_TIMEOUT",
        also=["`uv build` of the workspace package common did not finish within 15 s and was stopped"],
    )
    time.sleep(1)
    assert processes_with(token) == {}
    assert half_written(tmp_path) == []


def test_the_time_limit_comes_from_the_environment_and_nonsense_is_refused(monkeypatch: pytest.MonkeyPatch):
    """$CDK_UV_COMMAND_TIMEOUT sets the default; a value that is not a positive number is refused, named."""
    monkeypatch.setenv("CDK_UV_COMMAND_TIMEOUT", "90")
    assert UvOptions().command_timeout == 90
    assert _runner.default_timeout() == 90
    for bad in ("0", "-5", "nan", "inf", "soon"):
        monkeypatch.setenv("CDK_UV_COMMAND_TIMEOUT", bad)
        with pytest.raises(Exception, match=r"(?s)CDK_UV_COMMAND_TIMEOUT is .*not a positive number.*fix:"):
            UvOptions()
    monkeypatch.delenv("CDK_UV_COMMAND_TIMEOUT")
    assert UvOptions().command_timeout == 1800
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="command_timeout"):
            UvOptions(command_timeout=bad)


# --- an index that accepts connections and never answers ------------------------------------------


@contextlib.contextmanager
def silent_index() -> Iterator[str]:
    """A server on loopback that accepts every connection and never answers: its index URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/simple"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


@pytest.mark.slow
@pytest.mark.parametrize("lock", ["locked", "frozen"])
def test_an_index_that_never_answers_fails_in_bounded_time_and_says_so(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock: str
):
    """uv's own HTTP timeout ends the wait, and the error says the index did not answer (not "run uv
    lock", not "offline"): under lock="locked" when uv checks the lock, under "frozen" when it downloads."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cold-uv-cache"))
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "1")
    with silent_index() as url:
        monkeypatch.setenv("UV_DEFAULT_INDEX", url)
        started = time.monotonic()
        with deadline(240):
            message = synth_error(workspace, lambda s: add_function(s, "Api", "api"), lock=lock)
    assert time.monotonic() - started < 180
    needed_for = "check uv.lock against the workspace" if lock == "locked" else "download the locked dependencies"
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="it accepted the connection but did not answer",
        also=[f"uv needed the package index ({url.removesuffix('/simple')}) to {needed_for}", "did not answer in time"],
    )
    assert "run `uv lock`" not in message and "offline" not in message


@pytest.mark.slow
def test_a_command_longer_than_its_limit_is_stopped_even_when_uv_would_wait(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """With uv told to wait 10 minutes for the index, the command's own limit still ends it, named."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cold-uv-cache"))
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "600")
    with silent_index() as url:
        monkeypatch.setenv("UV_DEFAULT_INDEX", url)
        with deadline(240):
            message = synth_error(workspace, lambda s: add_function(s, "Api", "api"), command_timeout=3)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="$CDK_UV_COMMAND_TIMEOUT",
        # The first command that needs the index: the check of uv.lock (`uv lock --locked`, once per synth).
        also=["`uv lock` did not finish within 3 s and was stopped", "exit code: none: stopped after 3 s"],
    )


# --- SIGTERM and Ctrl-C -----------------------------------------------------------------------------

APP = """
import sys
from aws_cdk import App, Aspects, Stack, aws_lambda as lambda_
from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package
app = App(outdir=sys.argv[2])
stack = Stack(app, "Stack")
fn = lambda_.Function(stack, "Api", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main", code=UvCode())
mark_package(fn, "api")
Aspects.of(app).add(UvBundlingAspect(workspace=sys.argv[1]))
app.synth()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "signum"),
    [("python app.py", signal.SIGTERM), ("python app.py", signal.SIGINT), ("cdk synth", signal.SIGINT)],
    ids=["sigterm", "sigint", "ctrl-c-in-cdk-synth"],
)
def test_a_signal_during_a_cold_build_ends_every_child_and_removes_private_folders(
    workspace: Path, tmp_path: Path, how: str, signum: signal.Signals, token: str
):
    """SIGTERM or SIGINT to the synth while a build backend runs (here a hook that would sleep for 10
    minutes): the synth exits promptly, and one second later no process it started is running and no
    private build folder is left. "ctrl-c-in-cdk-synth" sends SIGINT to the whole process group of
    `cdk synth` (the CLI, the app, jsii's node), as a terminal's Ctrl-C does."""
    add_sleeping_build_hook(workspace / "packages" / "common")
    (tmp_path / "app.py").write_text(APP)
    cache, started_marker = tmp_path / "cache", tmp_path / "hook-started"
    env = {**os.environ, "CDK_UV_CACHE_DIR": str(cache), "HOOK_STARTED": str(started_marker), "HOOK_SLEEP": "600"}
    app = [sys.executable, str(tmp_path / "app.py"), str(workspace), str(tmp_path / "out")]
    if how == "cdk synth":
        cdk = REPO / "node_modules" / ".bin" / "cdk"
        args = [str(cdk), "synth", "--quiet", "--app", " ".join(app), "--output", str(tmp_path / "out")]
    else:
        args = app
    synth = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        with deadline(300):
            while not started_marker.exists():
                assert synth.poll() is None, synth.communicate()
                time.sleep(0.2)
        sent = time.monotonic()
        os.killpg(synth.pid, signum) if how == "cdk synth" else synth.send_signal(signum)
        _, err = synth.communicate(timeout=60)
        time.sleep(1)
        # One second after the synth ended, nothing it started to build runs; `cdk synth` does not wait
        # for the app it runs, so the app itself (and jsii's node) may still be exiting: wait for them.
        assert processes_with(token, under=cache) == {}, "a build process outlived the synth"
        if how != "cdk synth":
            assert processes_with(token) == {}, "a process the synth started outlived it"
        with deadline(60):
            while processes_with(token):
                time.sleep(0.2)
        assert time.monotonic() - sent < 60
        assert half_written(tmp_path) == []
        if how != "cdk synth":
            assert synth.returncode == (143 if signum == signal.SIGTERM else -signal.SIGINT), err
            assert re.search(rf"cdk-uv-aspect: {signal.Signals(signum).name}: stopping; \d running command", err)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(synth.pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_synth_that_ignores_sigint_stops_when_jsii_node_is_gone(workspace: Path, tmp_path: Path, token: str):
    """A synth started from a script as a background job inherits SIGINT as ignored. Ctrl-C ends jsii's node
    process (node takes SIGINT back) but not Python, which kept building for minutes. Now Python stops
    within seconds of node's end: no process it started runs and no private build folder is left."""
    add_sleeping_build_hook(workspace / "packages" / "common")
    (tmp_path / "app.py").write_text(APP)
    cache, started_marker = tmp_path / "cache", tmp_path / "hook-started"
    env = {**os.environ, "CDK_UV_CACHE_DIR": str(cache), "HOOK_STARTED": str(started_marker), "HOOK_SLEEP": "600"}
    app = f'"{sys.executable}" app.py "{workspace}" "{tmp_path / "out"}"'
    # As a script runs it: a background job of a non-interactive shell, which starts it with SIGINT ignored.
    script = subprocess.Popen(
        ["bash", "-c", f"{app} & echo $!; wait $!"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert script.stdout is not None
        python = int(script.stdout.readline())
        with deadline(60):  # until the shell's child has become python (it sets the signals, then execs)
            while Path(f"/proc/{python}/exe").resolve() != Path(sys.executable).resolve():
                time.sleep(0.05)
        status = Path(f"/proc/{python}/status").read_text().splitlines()
        ignored = int(next(line for line in status if line.startswith("SigIgn:")).split()[1], 16)
        assert ignored & (1 << (signal.SIGINT - 1)), "the background job does not ignore SIGINT"
        with deadline(300):
            while not started_marker.exists():
                assert alive(python), script.communicate()
                time.sleep(0.2)
        sent = time.monotonic()
        os.killpg(script.pid, signal.SIGINT)  # Ctrl-C: to the whole process group
        with deadline(60):
            while alive(python):
                time.sleep(0.2)
        took = time.monotonic() - sent
        _, err = script.communicate(timeout=60)
        time.sleep(1)
        assert processes_with(token, under=cache) == {}, "a build process outlived the synth"
        assert took < 30, f"the synth went on for {took:.0f} s after node was gone"
        assert half_written(tmp_path) == []
        assert re.search(r"cdk-uv-aspect: the CDK's node process \(jsii, pid \d+\) is gone", err), err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)


# --- cdk-uv invoke ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_invoke_stops_a_handler_at_the_functions_timeout(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A handler that never returns is stopped as Lambda stops it (its timeout, plus 10 s to initialize)."""
    from aws_cdk import Duration

    (workspace / "packages" / "api" / "src" / "api" / "stuck.py").write_text(
        "import time\ndef main(event, context):\n    time.sleep(600)\n"
    )

    def populate(stack):
        fn = add_function(stack, "Stuck", "api", handler="api.stuck.main")
        fn.node.default_child.timeout = Duration.seconds(1).to_seconds()

    synth_app(workspace, populate, outdir=tmp_path / "out")
    cdk_uv = str(Path(sys.executable).with_name("cdk-uv"))
    started = time.monotonic()
    done = subprocess.run(
        [cdk_uv, "invoke", str(tmp_path / "out"), "Stuck"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert 1 < time.monotonic() - started < 60
    assert "Sandbox.Timedout: Task timed out after 1.00 seconds" in done.stderr
