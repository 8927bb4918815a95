"""`cdk-uv invoke` as sealed as Lambda: a home of its own, the code read-only, Lambda's payload limits, the answer
taken when the handler returns, variables set at deploy time, Lambda's init errors, arm64 under emulation.

One app of real builds (the fixture workspace with handlers of its own) is synthesized once for the module.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from helpers import FIXTURES, add_function, tree_digest

from cdk_uv_aspect import UvBundlingAspect
from cdk_uv_aspect._assembly import functions
from cdk_uv_aspect._emulation import Emulated, NotEmulated, emulated_python, host_architecture

pytestmark = pytest.mark.slow

CDK_UV = str(Path(sys.executable).with_name("cdk-uv"))

PROBES = """\
import os, subprocess, tempfile, time


def home(event, context):
    home = os.path.expanduser("~")
    return {
        "home": home,
        "listing": sorted(os.listdir(home)),
        "mode": oct(os.stat(home).st_mode & 0o777),
        "credentials": os.path.exists(os.path.expanduser("~/.aws/credentials")),
        "config_file": os.environ["AWS_CONFIG_FILE"],
        "credentials_file": os.environ["AWS_SHARED_CREDENTIALS_FILE"],
        "shared_files_exist": [
            os.path.exists(os.environ[name]) for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
        ],
        "tmp": tempfile.gettempdir(),
    }


def write_own(event, context):
    try:
        with open(__file__, "a") as own:
            own.write("# written by the handler\\n")
        return {"wrote": True}
    except OSError as exc:
        return {"wrote": False, "error": exc.strerror}


def write_path(event, context):
    with open(event["path"], "a") as target:
        target.write("# written by the handler\\n")
    return "done"


def settings(event, context):
    return {name: os.environ.get(name) for name in ("BUCKET", "STAGE", "FROM_FILE", "SHARED", "QUOTED")}


def big(event, context):
    return "x" * event["size"]


def detach(event, context):
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)  # keeps the answer's pipe open
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:  # a daemon: double fork, a session of its own
        os.setsid()
        if os.fork() == 0:
            os.write(write, str(os.getpid()).encode())
            time.sleep(300)
        os._exit(0)
    os.close(write)
    daemon = int(os.read(read, 20))
    os.waitpid(middle, 0)
    return {"sleeper": sleeper.pid, "daemon": daemon}


def late_error(event, context):
    raise ValueError("bad " + event.get("what", "input"))
"""

BROKEN = "import os\n\nTABLE = os.environ['TABLE']\n\n\ndef main(event, context):\n    return TABLE\n"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The fixture workspace with probe handlers, synthesized once: (cdk.out, build cache)."""
    root = tmp_path_factory.mktemp("invoke")
    workspace, cache, out = root / "ws", root / "cache", root / "cdk.out"
    shutil.copytree(FIXTURES / "ws", workspace)
    (workspace / "packages" / "api" / "src" / "api" / "probes.py").write_text(PROBES)
    (workspace / "packages" / "api" / "src" / "api" / "broken.py").write_text(BROKEN)
    app = App(outdir=str(out))
    stack = Stack(app, "Stack")
    for name in ("home", "write_own", "write_path", "settings", "big", "detach", "late_error"):
        fn = add_function(stack, name.title().replace("_", ""), "api", handler=f"api.probes.{name}")
        fn.node.default_child.timeout = Duration.seconds(60).to_seconds()
    bucket = s3.Bucket(stack, "Bucket")
    settings = stack.node.find_child("Settings")
    settings.add_environment("BUCKET", bucket.bucket_name)  # a token: {"Ref": ...}, known at deploy only
    settings.add_environment("STAGE", "test")
    add_function(stack, "Missing", "api", handler="api.handler.main")
    add_function(stack, "Broken", "api", handler="api.broken.main")
    add_function(stack, "Arm", "api", runtime=lambda_.Runtime.PYTHON_3_11, architecture=lambda_.Architecture.ARM_64)
    add_function(stack, "Arm312", "api", architecture=lambda_.Architecture.ARM_64)
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace, cache_dir=cache))
    app.synth()
    return out, cache


def cdk_uv(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 300):
    return subprocess.run(
        [CDK_UV, *args], env=env or dict(os.environ), input=stdin, capture_output=True, text=True, timeout=timeout
    )


def invoke(out: Path, name: str, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return cdk_uv("invoke", str(out), name, *args, **kwargs)


# --- 23.1: a home of its own ---------------------------------------------------------------------


@pytest.mark.parametrize("home", ["unset", "developer"])
def test_the_handler_gets_an_empty_private_home_never_the_developers(app, tmp_path: Path, home: str):
    """With HOME unset, `~` is not the password database's home; with HOME set, not that one: an empty,
    private folder, removed after; the AWS SDKs' shared files name nothing."""
    out, _ = app
    developer = tmp_path / "developer"
    (developer / ".aws").mkdir(parents=True)
    (developer / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = developer-secret\n")
    env = {k: v for k, v in os.environ.items() if k != "HOME"}
    if home == "developer":
        env["HOME"] = str(developer)
    done = invoke(out, "Home", env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["home"] not in (str(developer), pwd.getpwuid(os.getuid()).pw_dir, os.environ.get("HOME"))
    assert seen["listing"] == [] and seen["mode"] == "0o700" and seen["credentials"] is False
    assert seen["shared_files_exist"] == [False, False]
    assert Path(seen["config_file"]).parent.parent == Path(seen["home"])
    assert Path(seen["tmp"]).parent == Path(seen["home"]).parent
    assert not Path(seen["home"]).parent.exists()  # removed after the run


# --- 23.2: the code read-only, the assembly unchanged ----------------------------------------------


def test_a_handler_writing_to_its_own_file_leaves_the_assembly_as_built(app):
    """The handler writes into a private copy (read-only, as /var/task, where permissions bind); the asset
    in cdk.out keeps its bytes, so what gets deployed is what was built."""
    out, _ = app
    (fn,) = [f for f in functions(out) if f.path == "Stack/WriteOwn"]
    before = tree_digest(fn.asset_dir)
    done = invoke(out, "WriteOwn")
    assert done.returncode == 0, done.stderr
    if os.geteuid() != 0:  # root writes through read-only modes: the copy is what keeps the assembly safe
        assert json.loads(done.stdout) == {"wrote": False, "error": "Permission denied"}
    assert tree_digest(fn.asset_dir) == before
    assert not (fn.asset_dir / "api" / "probes.py").read_text().endswith("# written by the handler\n")


def test_a_run_that_changes_the_assembly_fails_naming_the_file(app, tmp_path: Path):
    """A handler that reaches the assembly's own file (its path given in the event) is caught after the run."""
    out, _ = app
    (fn,) = [f for f in functions(out) if f.path == "Stack/WritePath"]
    copy = tmp_path / "cdk.out"
    shutil.copytree(out, copy, symlinks=True)
    asset = copy / fn.asset_dir.name
    event = json.dumps({"path": str(asset / "api" / "probes.py")})
    done = invoke(copy, "WritePath", "--event", "-", stdin=event)
    assert done.returncode == 1
    assert "the run changed the cloud assembly it was started from" in done.stderr
    assert str(asset / "api" / "probes.py") in done.stderr
    assert "synthesize again (`cdk synth`) before deploying" in done.stderr


# --- 23.5: Lambda's payload limits, the answer when the handler returns -----------------------------


def test_an_event_over_six_mb_is_refused_without_running_the_handler(app, tmp_path: Path):
    out, _ = app
    event = tmp_path / "big.json"
    event.write_text(json.dumps({"data": "x" * 6_291_456}))
    done = invoke(out, "Big", "--event", str(event))
    assert done.returncode == 2
    assert "larger than Lambda takes" in done.stderr and "6291456 bytes (6 MB)" in done.stderr


def test_an_endless_event_is_refused_after_six_mb(app):
    """`--event /dev/zero` stops reading at Lambda's limit instead of reading forever."""
    out, _ = app
    started = time.monotonic()
    done = invoke(out, "Big", "--event", "/dev/zero", timeout=120)
    assert done.returncode == 2 and "larger than Lambda takes" in done.stderr
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(("size", "ok"), [(6_291_556 - 2, True), (6_291_556 - 1, False), (20_000_000, False)])
def test_an_answer_over_lambdas_limit_is_a_response_size_error(app, size: int, ok: bool):
    """The answer's JSON (a string: two quotes more) may be 6,291,556 bytes, as Lambda allows, and no more."""
    out, _ = app
    done = invoke(out, "Big", "--event", "-", stdin=json.dumps({"size": size}))
    if ok:
        assert done.returncode == 0, done.stderr[-2000:]
        assert len(done.stdout.strip()) == size + 2
    else:
        assert done.returncode == 1 and done.stdout == ""
        assert "Function.ResponseSizeTooLarge: Response payload size exceeded maximum allowed payload size " in (
            done.stderr
        )


def test_the_answer_is_taken_when_the_handler_returns_and_what_it_left_running_ends(app):
    """A handler that leaves a child in a session of its own and a double-forked daemon answers at once
    (not after its 60 s timeout), and neither process outlives the run."""
    out, _ = app
    started = time.monotonic()
    done = invoke(out, "Detach")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took < 45, f"took {took:.0f} s: the run waited for the processes the handler left"
    pids = json.loads(done.stdout)
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    assert "ended 2 process(es) the handler left running" in done.stderr


# --- 21.8: variables set at deploy time -------------------------------------------------------------


def test_variables_set_at_deploy_time_are_named_and_values_can_be_given(app, tmp_path: Path):
    out, _ = app
    plain = invoke(out, "Settings")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == {
        "BUCKET": None,
        "STAGE": "test",
        "FROM_FILE": None,
        "SHARED": None,
        "QUOTED": None,
    }
    assert 'Stack/Settings: left out, set only at deploy time: BUCKET ({"Ref":"Bucket' in plain.stderr
    assert "give values with --env NAME=VALUE or --env-file FILE" in plain.stderr

    dotenv = tmp_path / ".env"
    dotenv.write_text('# local values\nexport FROM_FILE=dotenv\nQUOTED="a # b\\n"\nBUCKET=from-file  # a comment\n')
    given = invoke(out, "Settings", "--env-file", str(dotenv), "--env", "BUCKET=orders-bucket", "--env", "STAGE=dev")
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout) == {
        "BUCKET": "orders-bucket",  # --env wins over the file
        "STAGE": "dev",
        "FROM_FILE": "dotenv",
        "SHARED": None,
        "QUOTED": "a # b\n",
    }
    assert "left out" not in given.stderr


def test_a_sam_env_vars_file_sets_the_functions_variables(app, tmp_path: Path):
    """SAM's format: the function by logical id, construct path or id; Parameters only for its own variables."""
    out, _ = app
    (fn,) = [f for f in functions(out) if f.path == "Stack/Settings"]
    for key in (fn.logical_id, "Stack/Settings", "Settings"):
        sam = tmp_path / "env.json"
        sam.write_text(
            json.dumps({key: {"BUCKET": "sam-bucket", "FROM_FILE": "sam"}, "Parameters": {"STAGE": "p", "SHARED": "x"}})
        )
        done = invoke(out, "Settings", "--env-file", str(sam))
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert (seen["BUCKET"], seen["FROM_FILE"], seen["STAGE"], seen["SHARED"]) == ("sam-bucket", "sam", "p", None)


def test_bad_env_values_are_usage_errors(app, tmp_path: Path):
    out, _ = app
    bad = tmp_path / "bad.env"
    bad.write_text("OK=1\nnot a line\n")
    for args, says in (
        (["--env", "NOEQUALS"], "--env takes NAME=VALUE, got 'NOEQUALS'"),
        (["--env", "AWS_REGION=eu-west-1"], "AWS_REGION: reserved by Lambda, a function can't set it"),
        (["--env-file", str(bad)], f"the env file {bad}, line 2: expected NAME=VALUE"),
    ):
        done = invoke(out, "Settings", *args)
        assert done.returncode == 2 and says in done.stderr, done.stderr


# --- 21.10: Lambda's init errors ---------------------------------------------------------------------


def test_a_handler_naming_a_missing_function_is_handler_not_found(app, tmp_path: Path):
    """As the Lambda Python runtime says: Runtime.HandlerNotFound for a function the module lacks,
    Runtime.ImportModuleError for a module that is not there (the assembly's handler edited after synth)."""
    out, _ = app
    copy = tmp_path / "cdk.out"
    shutil.copytree(out, copy, symlinks=True)
    template = copy / "Stack.template.json"
    data = json.loads(template.read_text())
    (fn,) = [f for f in functions(copy) if f.path == "Stack/Missing"]
    for handler, error in (
        ("api.handler.nope", "Runtime.HandlerNotFound: Handler 'nope' missing on module 'api.handler'"),
        ("api.nothere.main", "Runtime.ImportModuleError: Unable to import module 'api.nothere': No module named"),
    ):
        data["Resources"][fn.logical_id]["Properties"]["Handler"] = handler
        template.write_text(json.dumps(data))
        done = invoke(copy, "Missing")
        assert done.returncode == 1
        assert f"Stack/Missing: {error}" in done.stderr, done.stderr


def test_a_raising_handler_shows_its_own_traceback_as_lambda_reports_it(app):
    out, _ = app
    done = invoke(out, "LateError", "--event", "-", stdin='{"what": "order"}')
    assert done.returncode == 1
    assert "Traceback (most recent call last):" in done.stderr and "api/probes.py" in done.stderr
    assert "Stack/LateError: ValueError: bad order after " in done.stderr
    assert "<string>" not in done.stderr  # no frame of the bootstrap


def test_profile_of_an_init_that_raises_says_so_and_takes_the_variables(app):
    """An init that raises fails every cold start: exit 1 with Lambda's error; with the variable given, measured."""
    out, _ = app
    failed = cdk_uv("profile", str(out), "Broken", "--runs", "1")
    assert failed.returncode == 1
    assert "Stack/Broken: its init fails, as every cold start on Lambda would: KeyError: 'TABLE'" in failed.stderr
    given = cdk_uv("profile", str(out), "Broken", "--runs", "1", "--no-compare", "--json", "--env", "TABLE=t")
    assert given.returncode == 0, given.stderr
    data = json.loads(given.stdout)
    assert data["withoutBytecode"] is None and data["imports"][-1]["module"] == "api.broken"


# --- 21.9: arm64 under emulation -----------------------------------------------------------------------

EMULATED = emulated_python("arm64", "3.11")


@pytest.mark.skipif(not isinstance(EMULATED, Emulated), reason=f"no arm64 emulation here: {EMULATED}")
def test_an_arm64_function_with_native_code_runs_under_qemu(app):
    """orjson's aarch64 library imported by an aarch64 CPython under qemu-user: the function answers."""
    out, _ = app
    done = invoke(out, "Arm", "--event", "-", stdin='{"name": "arm"}', timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"message": "hello arm", "version": "0.1.0"}
    assert "(python3.11, arm64, under qemu-aarch64" in done.stderr


@pytest.mark.skipif(
    isinstance(emulated_python("arm64", "3.12"), Emulated) or host_architecture() == "arm64",
    reason="this machine runs arm64 Python 3.12",
)
def test_an_arm64_function_that_cant_be_emulated_says_what_would_make_it_work(app):
    """No aarch64 CPython 3.12 here: exit 3, naming qemu-user and the interpreter, and how to get them."""
    out, _ = app
    done = invoke(out, "Arm312")
    assert done.returncode == 3, done.stderr
    message = done.stderr
    assert "Stack/Arm312 can't run here: its native code is for arm64" in message
    assert "only under qemu-user emulation" in message
    assert "uv python install cpython-3.12-linux-aarch64-gnu" in message and "$QEMU_LD_PREFIX" in message
    assert "public.ecr.aws/lambda/python:3.12-arm64" in message


def test_the_emulation_finder_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Neither qemu-user nor an interpreter: both named, with the commands that install them."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("QEMU_LD_PREFIX", str(tmp_path))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path))
    found = emulated_python("arm64" if host_architecture() == "x86_64" else "x86_64", "3.13")
    assert isinstance(found, NotEmulated)
    assert "no qemu-user and no" in found.reason
    assert "apt-get install qemu-user-static" in found.fix and "uv python install cpython-3.13-linux-" in found.fix
