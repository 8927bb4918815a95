"""The cdk-uv command end to end, on a private copy of samples/: build, zip, report and invoke."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO, add_function, call_handler, synth_app, tree_digest

from cdk_uv_aspect._assembly import functions

pytestmark = pytest.mark.slow

CDK_UV = str(Path(sys.executable).with_name("cdk-uv"))


def cdk_uv(*args: str, cwd: Path, cache: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would, with a private build cache."""
    env = {**os.environ, "CDK_UV_CACHE_DIR": str(cache)}
    return subprocess.run([CDK_UV, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=False)


def copy_samples(dest: Path) -> Path:
    shutil.copytree(
        REPO / "samples", dest, ignore=shutil.ignore_patterns("cdk.out", ".venv", "__pycache__", "retrofit")
    )
    return dest


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A private copy of samples/, synthesized once by running its app: (folder, build cache)."""
    root = tmp_path_factory.mktemp("sample")
    folder, cache = copy_samples(root / "ws"), root / "cache"
    env = {**os.environ, "CDK_UV_CACHE_DIR": str(cache), "CDK_OUTDIR": str(folder / "cdk.out")}
    done = subprocess.run([sys.executable, "app.py"], cwd=folder, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return folder, cache


# --- progress during synth -------------------------------------------------------------------------


def test_synth_prints_one_line_per_build_built_or_from_cache(
    workspace: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
):
    """Like the CDK's "Bundling asset ..." lines: package, target, functions, time, built or from cache."""

    def populate(stack):
        add_function(stack, "One", "api")
        add_function(stack, "Two", "api")
        add_function(stack, "App", "app", handler="main.handler")

    synth_app(workspace, populate)
    first = sorted(line for line in capsys.readouterr().err.splitlines() if line.startswith("Bundling"))
    synth_app(workspace, populate)
    second = sorted(line for line in capsys.readouterr().err.splitlines() if line.startswith("Bundling"))
    assert [line.split("...")[0] for line in first] == [
        "Bundling uv package api (python3.12-x86_64) for Stack/One, Stack/Two",
        "Bundling uv package app (python3.12-x86_64) for Stack/App",
    ]
    assert all(" built in " in line for line in first)
    assert [line.split("...")[0] for line in second] == [line.split("...")[0] for line in first]
    assert all(" from cache in " in line for line in second)


# --- build ----------------------------------------------------------------------------------------


def test_build_zip_is_byte_identical_from_two_checkouts_and_follows_the_code(tmp_path: Path):
    """Same code, other path and empty cache: the same zip bytes; an edited handler: another zip."""
    one, two = copy_samples(tmp_path / "one"), copy_samples(tmp_path / "elsewhere" / "two")
    a = cdk_uv("build", "orders", "--zip", str(tmp_path / "a.zip"), cwd=one, cache=tmp_path / "cache-a")
    b = cdk_uv("build", "orders", "--zip", str(tmp_path / "b.zip"), cwd=two, cache=tmp_path / "cache-b")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout.strip() == str(tmp_path / "a.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()

    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert "orders/handler.py" in names and any(n.startswith("orjson/") for n in names)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}

    handler = two / "packages" / "orders" / "src" / "orders" / "handler.py"
    handler.write_text(handler.read_text() + "\nEDITED = True\n")
    c = cdk_uv("build", "orders", "--zip", str(tmp_path / "c.zip"), cwd=two, cache=tmp_path / "cache-b")
    assert c.returncode == 0, c.stderr
    assert (tmp_path / "c.zip").read_bytes() != (tmp_path / "a.zip").read_bytes()


def test_build_says_built_then_from_cache(sample: tuple[Path, Path], tmp_path: Path):
    """One progress line per build on stderr: the package, the target, the time, built or from cache."""
    folder, _ = sample
    cache = tmp_path / "cache"
    first = cdk_uv("build", "report", "--python", "3.13", "--arch", "arm64", cwd=folder, cache=cache)
    again = cdk_uv("build", "report", "--python", "python3.13", "--arch", "arm64", cwd=folder, cache=cache)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert "Bundling uv package report (python3.13-arm64)... built in " in first.stderr
    assert "Bundling uv package report (python3.13-arm64)... from cache in " in again.stderr
    assert first.stdout == again.stdout  # the built folder in the cache
    assert Path(first.stdout.strip()).is_relative_to(cache)


def test_build_for_a_python_this_library_does_not_know_needs_its_os(sample: tuple[Path, Path], tmp_path: Path):
    """`cdk-uv build --python 3.15` is refused with the flag that helps (--os); with `--os al2023` it is
    built for Python 3.15 on Amazon Linux 2023, and said so (no Python 3.15 here: no bytecode). A retired
    runtime's refusal names the command's flag too, not the CDK's constant."""
    folder, _ = sample
    cache = tmp_path / "cache"
    refused = cdk_uv("build", "report", "--python", "3.15", "--no-bytecode", cwd=folder, cache=cache)
    assert refused.returncode == 2, refused.stderr
    assert "python3.15 is not one cdk-uv-aspect knows" in refused.stderr
    assert "--os al2023 (or al2) with --python 3.15" in refused.stderr and "UvBundlingAspect" not in refused.stderr
    built = cdk_uv("build", "report", "--python", "3.15", "--os", "al2023", "--no-bytecode", cwd=folder, cache=cache)
    assert built.returncode == 0, built.stderr
    assert "report for python3.15 x86_64 (Amazon Linux 2023, glibc 2.34)" in built.stderr
    assert (Path(built.stdout.strip()) / "main.py").is_file()
    retired = cdk_uv("build", "report", "--python", "3.6", cwd=folder, cache=cache)
    assert retired.returncode == 2 and "Lambda retired python3.6" in retired.stderr
    assert "e.g. --python 3.13" in retired.stderr and "Runtime." not in retired.stderr


def test_build_out_copies_a_folder_that_answers_and_refuses_to_overwrite(sample: tuple[Path, Path], tmp_path: Path):
    """--out writes the built folder; a non-empty folder is kept unless --force, and never the sources."""
    folder, cache = sample
    out = tmp_path / "out"
    done = cdk_uv("build", "report", "--python", "3.13", "--out", str(out), cwd=folder, cache=cache)
    assert done.returncode == 0, done.stderr
    answer = call_handler(out, "main.handler", "3.13", {"values": [1, 2, 3]})
    assert answer.ok, answer.result
    assert answer.result["body"]["median"] == 2

    (out / "mine.txt").write_text("keep me")
    refused = cdk_uv("build", "report", "--python", "3.13", "--out", str(out), cwd=folder, cache=cache)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    assert (out / "mine.txt").read_text() == "keep me"

    forced = cdk_uv("build", "report", "--python", "3.13", "--out", str(out), "--force", cwd=folder, cache=cache)
    assert forced.returncode == 0, forced.stderr
    assert not (out / "mine.txt").exists() and (out / "main.py").is_file()

    sources = cdk_uv("build", "report", "--out", ".", "--force", cwd=folder, cache=cache)
    assert sources.returncode == 2 and "would delete it" in sources.stderr
    assert (folder / "app.py").is_file()


def test_build_of_an_unknown_package_lists_the_packages(sample: tuple[Path, Path]):
    """Exit 2 with the workspace's packages, and no Python traceback."""
    folder, cache = sample
    done = cdk_uv("build", "ordrs", cwd=folder, cache=cache)
    assert done.returncode == 2
    assert "'ordrs' is not in the workspace" in done.stderr
    assert "common, orders, report, users" in done.stderr
    assert "Traceback" not in done.stderr


def test_build_failure_is_the_library_message_without_traceback(sample: tuple[Path, Path]):
    """A package whose requires-python excludes the target: exit 1, the problem and the fix."""
    folder, cache = sample
    done = cdk_uv("build", "users", "--python", "3.9", cwd=folder, cache=cache)
    assert done.returncode == 1
    assert "requires Python >=3.11" in done.stderr and "fix:" in done.stderr
    assert "Traceback" not in done.stderr


# --- report ---------------------------------------------------------------------------------------


def test_report_lists_every_function_with_what_was_built(sample: tuple[Path, Path]):
    """The table and the JSON name each function's package, target, asset, sizes, files, where the build came
    from, base image."""
    folder, cache = sample
    table = cdk_uv("report", cwd=folder, cache=cache)
    assert table.returncode == 0, table.stderr
    header, _, *rows = table.stdout.splitlines()
    columns = ("function", "package", "target", "asset", "unzipped", "zipped", "files", "build", "from")
    assert all(column in header for column in columns)
    assert [r.split()[0] for r in rows] == [
        "UvSample/Orders",
        "UvSample/OrdersArm",
        "UvSample/OrdersImage",
        "UvSample/Report",
        "UvSample/Users",
    ]

    records = json.loads(cdk_uv("report", "cdk.out", "--json", cwd=folder, cache=cache).stdout)
    by_path = {r["function"]: r for r in records}
    orders = by_path["UvSample/Orders"]
    assert (orders["package"], orders["target"]) == ("orders", "python3.12-x86_64")
    assert len(orders["assetHash"]) == 64 and Path(orders["assetDir"]).name == f"asset.{orders['assetHash']}"
    assert orders["files"] > 0 and 0 < orders["zippedBytes"] < orders["bytes"]
    assert isinstance(orders["cached"], bool) and orders["buildSeconds"] >= 0
    assert orders["origin"] in ("built", "cache") and orders["key"].startswith("orders-python3.12-x86_64-")
    # Two functions of one package on two architectures: two builds, two assets.
    assert orders["assetHash"] != by_path["UvSample/OrdersArm"]["assetHash"]
    # An image function's base image, in a column of its own (by tag: the samples pin no digest).
    assert "base image" in header and (orders["baseImage"], by_path["UvSample/OrdersImage"]["baseImage"]) == (
        None,
        "public.ecr.aws/lambda/python:3.12",
    )


def test_report_says_not_uv_built_for_other_functions(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A function the aspect did not build is listed as such, with its own asset's size."""
    out = tmp_path / "out"

    def populate(stack):
        from aws_cdk import aws_lambda as lambda_

        add_function(stack, "Api", "api")
        folder = tmp_path / "plain"
        folder.mkdir()
        (folder / "index.py").write_text("def main(e, c):\n    return 1\n")
        add_function(stack, "Plain", None, handler="index.main", code=lambda_.Code.from_asset(str(folder)))

    synth_app(workspace, populate, outdir=out)
    table = cdk_uv("report", str(out), cwd=tmp_path, cache=cache_dir)
    plain = next(line for line in table.stdout.splitlines() if line.startswith("Stack/Plain"))
    assert "not uv-built" in plain and "python3.12-x86_64" in plain
    records = {
        r["function"]: r for r in json.loads(cdk_uv("report", str(out), "--json", cwd=tmp_path, cache=cache_dir).stdout)
    }
    assert records["Stack/Plain"]["package"] is None and records["Stack/Plain"]["files"] == 1
    assert records["Stack/Api"]["package"] == "api"


def test_report_on_an_assembly_whose_asset_folders_are_gone_says_so(workspace: Path, cache_dir: Path, tmp_path: Path):
    """The staged asset folders deleted (a cleanup, a partial copy of cdk.out): the report shows no size for
    them, names what is missing and how to get it back, and exits 1 (it showed the recorded sizes)."""
    out = tmp_path / "out"

    def populate(stack):
        from aws_cdk import aws_lambda as lambda_

        add_function(stack, "Api", "api")
        folder = tmp_path / "plain"
        folder.mkdir()
        (folder / "index.py").write_text("def main(e, c):\n    return 1\n")
        add_function(stack, "Plain", None, handler="index.main", code=lambda_.Code.from_asset(str(folder)))

    synth_app(workspace, populate, outdir=out)
    staged = sorted(out.glob("asset.*"))
    assert len(staged) == 2
    for folder in staged:
        shutil.rmtree(folder)

    table = cdk_uv("report", str(out), cwd=tmp_path, cache=cache_dir)
    assert table.returncode == 1, table.stderr
    for name in ("Stack/Api", "Stack/Plain"):
        row = next(line for line in table.stdout.splitlines() if line.startswith(name))
        assert "missing" in row and " kB" not in row and " MB" not in row, row
    assert f"the asset folders of 2 function(s) are missing from {out}" in table.stderr, table.stderr
    assert staged[0].name in table.stderr and "run `cdk synth`" in table.stderr
    done = cdk_uv("report", str(out), "--json", cwd=tmp_path, cache=cache_dir)
    assert done.returncode == 1
    for record in json.loads(done.stdout):
        assert (record["bytes"], record["files"], record["zippedBytes"]) == (None, None, None), record
        assert Path(record["assetMissing"]) in staged


def test_report_after_cdk_ls_says_to_synthesize(tmp_path: Path):
    """`cdk ls` synthesizes without bundling: the report names the marked functions as not built yet, and
    says which command builds them."""
    folder = copy_samples(tmp_path / "ws")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cdk = str(REPO / "node_modules" / ".bin" / "cdk")
    listed = subprocess.run([cdk, "ls", "--output", "out"], cwd=folder, env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    done = cdk_uv("report", "out", cwd=folder, cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    orders = next(line for line in done.stdout.splitlines() if line.startswith("UvSample/Orders "))
    assert "orders (not built)" in orders
    assert "marked function(s) were not built in out" in done.stderr and "run `cdk synth`" in done.stderr


def test_report_without_an_assembly_says_to_synth(tmp_path: Path):
    done = cdk_uv("report", cwd=tmp_path, cache=tmp_path / "cache")
    assert done.returncode == 2 and "run `cdk synth` first" in done.stderr


def test_debug_shows_the_traceback_that_is_hidden_otherwise(tmp_path: Path):
    """A broken manifest: one line without --debug, the Python traceback with it."""
    (tmp_path / "manifest.json").write_text("{not json")
    plain = cdk_uv("report", str(tmp_path), cwd=tmp_path, cache=tmp_path / "cache")
    debug = cdk_uv("--debug", "report", str(tmp_path), cwd=tmp_path, cache=tmp_path / "cache")
    assert plain.returncode == 2 and f"{tmp_path / 'manifest.json'} can't be read" in plain.stderr
    assert "Traceback" not in plain.stderr
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "JSONDecodeError" in debug.stderr


# --- invoke ---------------------------------------------------------------------------------------


def test_invoke_prints_the_answer_and_the_duration(sample: tuple[Path, Path]):
    """A construct id is enough; the event comes from a file; JSON on stdout, the duration on stderr."""
    folder, cache = sample
    done = cdk_uv("invoke", "Orders", "--event", "events/orders.json", cwd=folder, cache=cache)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["body"] == {"items": 2, "total": 20.25}
    assert answer["python"].startswith("3.12.")
    assert "UvSample/Orders: answered in " in done.stderr and "ms (python3.12, x86_64)" in done.stderr


def test_invoke_reads_the_event_from_stdin(sample: tuple[Path, Path]):
    folder, cache = sample
    done = cdk_uv(
        "invoke",
        "cdk.out",
        "UvSample/Users",
        "--event",
        "-",
        cwd=folder,
        cache=cache,
        stdin='{"name": "Ada", "email": "ada@example.org"}',
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["python"].startswith("3.11.")


def test_invoke_of_a_raising_handler_exits_1_with_its_traceback(sample: tuple[Path, Path]):
    """The handler's traceback and error, not cdk-uv's own."""
    folder, cache = sample
    done = cdk_uv(
        "invoke", "UvSample/Orders", "--event", "-", cwd=folder, cache=cache, stdin='{"items": [{"quantity": 2}]}'
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" in done.stderr and "orders/handler.py" in done.stderr
    assert "UvSample/Orders: KeyError: 'price' after " in done.stderr
    assert "cdk_uv_aspect" not in done.stderr


@pytest.mark.parametrize(
    ("name", "says", "listed"),
    [
        ("Order", "matches several functions", ["UvSample/Orders", "UvSample/OrdersArm", "UvSample/OrdersImage"]),
        (
            "Nope",
            "matches no function",
            ["UvSample/Orders", "UvSample/OrdersArm", "UvSample/OrdersImage", "UvSample/Report", "UvSample/Users"],
        ),
    ],
)
def test_invoke_of_an_ambiguous_or_unknown_name_lists_candidates(sample, name, says, listed):
    folder, cache = sample
    done = cdk_uv("invoke", name, cwd=folder, cache=cache)
    assert done.returncode == 2
    assert says in done.stderr
    assert [line.strip() for line in done.stderr.splitlines()[1:]] == listed


def test_invoke_with_an_event_that_is_not_json_is_a_usage_error(sample: tuple[Path, Path]):
    folder, cache = sample
    done = cdk_uv("invoke", "Orders", "--event", "-", cwd=folder, cache=cache, stdin="{items")
    assert done.returncode == 2 and "is not JSON" in done.stderr and "Traceback" not in done.stderr


def test_invoke_runs_like_lambda_only_the_asset_and_a_lambda_context(workspace: Path, cache_dir: Path, tmp_path: Path):
    """The runtime's Python, nothing importable but the asset and the stdlib, the usual context."""
    probe = workspace / "packages" / "api" / "src" / "api" / "probe.py"
    probe.write_text(
        "import os, sys\n"
        "def main(event, context):\n"
        "    try:\n"
        "        import pydantic  # installed where cdk-uv runs, not in the asset\n"
        "        leaked = True\n"
        "    except ImportError:\n"
        "        leaked = False\n"
        "    names = ['function_name', 'function_version', 'invoked_function_arn', 'memory_limit_in_mb',\n"
        "             'aws_request_id', 'log_group_name', 'log_stream_name', 'identity', 'client_context']\n"
        "    return {'python': sys.version.split()[0], 'leaked': leaked, 'event': event,\n"
        "            'context': {n: getattr(context, n) for n in names},\n"
        "            'remaining': context.get_remaining_time_in_millis(),\n"
        "            'env': os.environ.get('STAGE'), 'fn': os.environ.get('AWS_LAMBDA_FUNCTION_NAME')}\n"
    )
    out = tmp_path / "out"

    def populate(stack):
        from aws_cdk import Duration
        from aws_cdk import aws_lambda as lambda_

        fn = add_function(stack, "Probe", "api", handler="api.probe.main", runtime=lambda_.Runtime.PYTHON_3_11)
        fn.add_environment("STAGE", "test")
        cfn = fn.node.default_child
        cfn.memory_size = 256
        cfn.timeout = Duration.seconds(30).to_seconds()

    synth_app(workspace, populate, outdir=out)
    done = cdk_uv("invoke", str(out), "Probe", "--event", "-", cwd=tmp_path, cache=cache_dir, stdin='{"a": 1}')
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["python"].startswith("3.11.")
    assert answer["leaked"] is False
    assert answer["event"] == {"a": 1}
    context = answer["context"]
    assert context["function_name"] == "Probe" and context["memory_limit_in_mb"] == "256"
    assert context["invoked_function_arn"].endswith(":function:Probe")
    assert context["aws_request_id"] and context["log_group_name"] == "/aws/lambda/Probe"
    assert context["identity"] is None and context["client_context"] is None
    assert 25_000 < answer["remaining"] <= 30_000
    assert answer["env"] == "test" and answer["fn"] == "Probe"


# The developer's environment, which a local run must not hand to the handler.
DEVELOPER = {
    "AWS_ACCESS_KEY_ID": "AKIADEVELOPER",
    "AWS_SECRET_ACCESS_KEY": "developer-secret",
    "AWS_SESSION_TOKEN": "developer-session",
    "AWS_PROFILE": "production-admin",
    "GITHUB_TOKEN": "ghp_developer",
    "HOME": "/home/developer",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
    "PYTHONPATH": "/somewhere/else",
    "VIRTUAL_ENV": "/home/developer/.venv",
}
LAMBDA_VARIABLES = {
    "_HANDLER",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
    "LANG",
    "PATH",
    "LD_LIBRARY_PATH",
    "HOME",
    "TMPDIR",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_EC2_METADATA_DISABLED",
}


def test_invoke_gives_the_handler_only_the_functions_and_lambdas_environment(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """Not the developer's credentials, profile, tokens, HOME or Python settings: the function's own
    variables and those Lambda sets, with Lambda's values (LANG, TZ, PATH; the task root is the asset)."""
    (workspace / "packages" / "api" / "src" / "api" / "env.py").write_text(
        "import os\ndef main(event, context):\n    return dict(os.environ)\n"
    )

    def populate(stack):
        fn = add_function(stack, "Env", "api", handler="api.env.main")
        fn.add_environment("STAGE", "test")
        fn.add_environment("LANG", "de_DE.UTF-8")  # unreserved: the function's value wins, as on Lambda

    synth_app(workspace, populate, outdir=tmp_path / "out")
    env = {**os.environ, **DEVELOPER, "CDK_UV_CACHE_DIR": str(cache_dir), "AWS_REGION": "eu-west-1"}
    done = subprocess.run(
        [CDK_UV, "invoke", str(tmp_path / "out"), "Env"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # Python itself adds LC_CTYPE=C.UTF-8 when the locale LANG names is not installed (PEP 538).
    assert seen.pop("LC_CTYPE", "C.UTF-8") == "C.UTF-8"
    assert set(seen) == LAMBDA_VARIABLES | {"STAGE"}
    assert not {value for value in DEVELOPER.values()} & set(seen.values())
    assert seen["STAGE"] == "test" and seen["LANG"] == "de_DE.UTF-8" and seen["TZ"] == ":UTC"
    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == "Env" and seen["_HANDLER"] == "api.env.main"
    assert seen["AWS_REGION"] == seen["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert seen["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert seen["PATH"] == "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
    # A private copy of the asset, a home and a tmp of its own: gone after the run.
    private = Path(seen["LAMBDA_TASK_ROOT"]).parent
    assert private.name.startswith("cdk-uv-run-") and not private.exists()
    assert seen["HOME"] == str(private / "home") and seen["TMPDIR"] == str(private / "tmp")
    assert seen["AWS_EC2_METADATA_DISABLED"] == "true"


def test_invoke_leaves_the_cloud_assembly_byte_identical(workspace: Path, cache_dir: Path, tmp_path: Path):
    """Running a uv-built handler and another tool's asset (plain sources, no bytecode) writes nothing
    into cdk.out: no __pycache__, no file changed, as Lambda's read-only /var/task."""
    from aws_cdk import aws_lambda as lambda_

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "index.py").write_text("import helper\ndef main(event, context):\n    return helper.answer()\n")
    (plain / "helper.py").write_text("def answer():\n    return 42\n")

    def populate(stack):
        add_function(stack, "Api", "api")
        lambda_.Function(
            stack,
            "Plain",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="index.main",
            code=lambda_.Code.from_asset(str(plain)),
        )

    out = tmp_path / "out"
    synth_app(workspace, populate, outdir=out)
    before = tree_digest(out)
    for name, answer in (("Plain", "42"), ("Api", None)):
        done = cdk_uv("invoke", str(out), name, "--event", "-", cwd=tmp_path, cache=cache_dir, stdin='{"name": "x"}')
        assert done.returncode == 0, done.stderr
        assert answer is None or done.stdout.strip() == answer
    assert tree_digest(out) == before
    (plain_asset,) = [f.asset_dir for f in functions(out) if f.path.endswith("/Plain")]
    assert plain_asset is not None and list(plain_asset.rglob("__pycache__")) == []


# --- profile ---------------------------------------------------------------------------------------


def test_profile_prints_the_init_where_it_goes_and_what_bytecode_buys(sample: tuple[Path, Path]):
    """The samples' pydantic function: the init's median, its distributions (pydantic first), the slowest
    modules, and the same start without the bytecode shipped."""
    folder, cache = sample
    done = cdk_uv("profile", "Users", "--runs", "3", "--top", "5", cwd=folder, cache=cache)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "UvSample/Users (python3.11, x86_64): cold start from its asset, 3 run(s)"
    assert lines[1].startswith("  init (import users.handler): ") and " ms median (min " in lines[1]
    assert lines[2].startswith("  without the bytecode shipped: ") and "the bytecode saves " in lines[2]
    table = lines[lines.index("    distribution                           ms  share") + 1 :]
    assert table[0].split()[0] == "pydantic", done.stdout  # pydantic and what it imports: most of the init
    assert "module (own time)" in done.stdout and "pydantic" in done.stdout.split("module (own time)")[1]


def test_profile_json_parses_and_adds_up(sample: tuple[Path, Path]):
    folder, cache = sample
    done = cdk_uv("profile", "UvSample/Users", "--runs", "3", "--json", cwd=folder, cache=cache)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["function"], data["runtime"], data["handler"]) == (
        "UvSample/Users",
        "python3.11",
        "users.handler.main",
    )
    assert len(data["initRunsMs"]) == 3 and min(data["initRunsMs"]) <= data["initMs"] <= max(data["initRunsMs"])
    assert data["startMs"] > data["initMs"] > 0
    assert data["withoutBytecode"]["initMs"] > data["initMs"]  # compiling pydantic costs more than reading it
    assert abs(sum(d["share"] for d in data["distributions"]) - 1) < 0.01
    assert data["distributions"][0]["name"] == "pydantic"
    modules = {i["module"]: i for i in data["imports"]}
    assert modules["users.handler"]["depth"] == 0 and modules["users.handler"]["distribution"] == "users"
    assert modules["pydantic_core._pydantic_core"]["distribution"] == "pydantic-core"


def test_profile_refuses_another_architectures_native_code(sample: tuple[Path, Path]):
    """Under emulation the times would be the emulator's: exit 3, saying so (invoke runs it, profile does not)."""
    folder, cache = sample
    done = cdk_uv("profile", "OrdersArm", cwd=folder, cache=cache)
    says = "UvSample/OrdersArm can't be profiled here: its native code is for arm64 and this machine is x86_64"
    assert done.returncode == 3 and says in done.stderr and "the times would be the emulator's" in done.stderr
    assert done.stdout == ""


# --- what invoke answers: the Lambda Python runtime's marshalling ---------------------------------

MARSHALLED = """\
import collections, decimal
Point = collections.namedtuple("Point", "x y")

def body(event, context):
    return {"statusCode": 200, "body": b'{"ok": true}', "headers": {b"X-Id": "\\u00e9t\\u00e9"}}

def numbers(event, context):
    return {"price": decimal.Decimal("12.50"), "nan": decimal.Decimal("NaN"), "big": 10**20,
            "inf": float("inf"), "point": Point(1, 2), "pair": (1, 2), 1: "one", 2.5: None, None: True}

def raw(event, context):
    return b"plain bytes"

def a_set(event, context):
    return {"tags": {"a"}}
"""


@pytest.mark.parametrize(
    ("handler", "python", "payload"),
    [
        ("body", "3.11", '{"statusCode": 200, "body": "{\\"ok\\": true}", "headers": {"X-Id": "\\u00e9t\\u00e9"}}'),
        ("body", "3.12", '{"statusCode": 200, "body": "{\\"ok\\": true}", "headers": {"X-Id": "été"}}'),
        (
            "numbers",
            "3.12",
            '{"price": 12.50, "nan": NaN, "big": 100000000000000000000, "inf": Infinity, "point": {"x": 1, "y": 2}, '
            '"pair": [1, 2], "1": "one", "2.5": null, "null": true}',
        ),
        ("raw", "3.12", "plain bytes"),
    ],
)
def test_invoke_marshals_the_answer_as_the_lambda_runtime_does(tmp_path: Path, handler: str, python: str, payload: str):
    """bytes as UTF-8 text (the payload itself at the top), Decimal as a number, namedtuples as objects,
    NaN and Infinity, keys made text; non-ASCII escaped before python3.12 and kept from python3.12 on."""
    (tmp_path / "answers.py").write_text(MARSHALLED)
    answer = call_handler(tmp_path, f"answers.{handler}", python)
    assert answer.ok, answer.result
    assert answer.payload == payload


def test_invoke_of_an_answer_lambda_can_not_marshal_is_a_marshal_error(tmp_path: Path):
    """A set is not JSON to the runtime: Runtime.MarshalError, as Lambda answers, not a str() of the set."""
    (tmp_path / "answers.py").write_text(MARSHALLED)
    answer = call_handler(tmp_path, "answers.a_set", "3.12")
    assert not answer.ok
    assert answer.result["errorType"] == "Runtime.MarshalError"
    assert answer.result["errorMessage"] == "Unable to marshal response: Object of type set is not JSON serializable"
