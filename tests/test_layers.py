"""Lambda layers from the fixture workspace, real uv and real synthesis: a marked LayerVersion built as a
Python layer, and a function's third-party dependencies put into a layer the aspect makes and attaches."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from helpers import add_function, assert_complete_error, call_handler, synth_app, synth_error, tree_digest

from cdk_uv_aspect import UvBundlingAspect, UvCode, UvPolicyChecks, mark_package

pytestmark = pytest.mark.slow

X86 = lambda_.Architecture.X86_64
ARM = lambda_.Architecture.ARM_64


def staged(outdir: str | Path, key: str) -> Path:
    folder = Path(outdir) / f"asset.{key.removesuffix('.zip')}"
    assert folder.is_dir(), f"no staged asset {folder}"
    return folder


def tops(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def layers_of(stack: Stack) -> dict[str, dict]:
    return Template.from_stack(stack).find_resources("AWS::Lambda::LayerVersion")


def functions_of(stack: Stack) -> dict[str, dict]:
    return Template.from_stack(stack).find_resources("AWS::Lambda::Function")


def function_layer_dirs(app: App, stack: Stack, logical_id: str) -> tuple[Path, list[Path]]:
    """A synthesized function's staged code folder and the staged folders of its layers, in order."""
    function = functions_of(stack)[logical_id]["Properties"]
    layers = layers_of(stack)
    dirs = [
        staged(app.outdir, layers[ref["Ref"]]["Properties"]["Content"]["S3Key"]) for ref in function.get("Layers", [])
    ]
    return staged(app.outdir, function["Code"]["S3Key"]), dirs


def make_layer(
    stack: Stack,
    package: str | None,
    runtimes: list[lambda_.Runtime],
    architectures: list[lambda_.Architecture] | None = None,
    **marker: object,
) -> lambda_.LayerVersion:
    layer = lambda_.LayerVersion(
        stack, "Deps", code=UvCode(), compatible_runtimes=runtimes, compatible_architectures=architectures or [X86]
    )
    if package is not None:
        mark_package(layer, package, **marker)  # type: ignore[arg-type]
    return layer


# --- a function's dependencies in a layer --------------------------------------------------------------


def test_dependencies_layer_holds_the_third_party_packages_and_the_zip_the_workspace_ones(
    workspace: Path, cache_dir: Path
):
    """api's zip: api and common (workspace packages); its layer: python/orjson. The handler answers from
    both, as Lambda composes them (/var/task, then /opt/python), and not from its zip alone."""
    app, stack = synth_app(workspace, lambda s: add_function(s, "Api", "api"), dependencies_layer=True)
    [logical_id] = functions_of(stack)
    code, [layer] = function_layer_dirs(app, stack, logical_id)
    assert {"api", "common"} <= tops(code)
    assert not any(name.startswith("orjson") for name in tops(code)), sorted(tops(code))
    assert tops(layer) == {"python"}
    assert "orjson" in tops(layer / "python")
    assert not {"api", "common"} & tops(layer / "python")
    answer = call_handler(code, "api.handler.main", "3.12", {"name": "x"}, layers=[layer])
    assert answer.ok, answer.result
    assert answer.result == {"message": "hello x", "version": "0.1.0"}
    alone = call_handler(code, "api.handler.main", "3.12", {"name": "x"})
    assert not alone.ok and "orjson" in alone.result["errorMessage"]


def test_one_dependencies_layer_per_set_target_and_stack(workspace: Path, cache_dir: Path):
    """Two api functions share one layer; an arm64 one gets its own; app (no third-party package) none;
    a marker's dependencies_layer=False keeps them in the zip."""

    def populate(stack: Stack) -> None:
        add_function(stack, "One", "api")
        add_function(stack, "Two", "api")
        add_function(stack, "Arm", "api", architecture=ARM)
        add_function(stack, "App", "app", handler="main.handler")
        kept = add_function(stack, "Kept", None)
        mark_package(kept, "api", dependencies_layer=False)

    app, stack = synth_app(workspace, populate, dependencies_layer=True)
    layers = layers_of(stack)
    assert len(layers) == 2
    by_path = {lid.rstrip("0123456789ABCDEF"): f["Properties"] for lid, f in functions_of(stack).items()}
    assert set(by_path) == {"One", "Two", "Arm", "App", "Kept"}, set(by_path)
    assert by_path["One"]["Layers"] == by_path["Two"]["Layers"] != by_path["Arm"]["Layers"]
    assert "Layers" not in by_path["App"] and "Layers" not in by_path["Kept"]
    assert by_path["One"]["Code"] == by_path["Two"]["Code"] != by_path["Kept"]["Code"]
    arm = layers[by_path["Arm"]["Layers"][0]["Ref"]]["Properties"]
    assert arm["CompatibleArchitectures"] == ["arm64"] and arm["CompatibleRuntimes"] == ["python3.12"]
    assert "orjson" in tops(staged(app.outdir, by_path["Kept"]["Code"]["S3Key"]))


def test_dependencies_layer_bytecode_and_rebuild_are_byte_identical(workspace: Path, tmp_path: Path, monkeypatch):
    """Layer .pyc files are for the runtime's Python, recorded under /opt/python; a rebuild from an empty
    cache gives the same folders, byte for byte."""
    digests = []
    for n in range(2):
        monkeypatch.setenv("CDK_UV_CACHE_DIR", str(tmp_path / f"cache{n}"))
        app, stack = synth_app(
            workspace, lambda s: add_function(s, "Api", "api"), outdir=tmp_path / f"out{n}", dependencies_layer=True
        )
        [logical_id] = functions_of(stack)
        code, [layer] = function_layer_dirs(app, stack, logical_id)
        digests.append((tree_digest(code), tree_digest(layer), code.name, layer.name))
    assert digests[0] == digests[1]
    pycs = list((layer / "python").rglob("*.pyc"))
    assert pycs and all(".cpython-312" in p.name for p in pycs)
    code_obj = marshal.loads(pycs[0].read_bytes()[16:])
    assert code_obj.co_filename.startswith("/opt/python/"), code_obj.co_filename
    handler_pyc = next((code / "api").rglob("handler.cpython-312.pyc"))
    assert marshal.loads(handler_pyc.read_bytes()[16:]).co_filename == "/var/task/api/handler.py"


def test_dependencies_layer_marker_on_an_image_function_is_refused(workspace: Path, cache_dir: Path):
    from cdk_uv_aspect import uv_image_code

    def populate(stack: Stack) -> None:
        fn = lambda_.DockerImageFunction(stack, "Image", code=uv_image_code(stack, "api.handler.main"))
        mark_package(fn, "api", python="3.12", dependencies_layer=True)

    message = synth_error(workspace, populate)
    assert_complete_error(
        message, construct="Stack/Image", package="api", target=None, fix='drop "dependencies_layer" from the marker'
    )


# --- a marked LayerVersion -------------------------------------------------------------------------------


def test_marked_layer_holds_the_package_closure_under_python(workspace: Path, cache_dir: Path):
    """A LayerVersion marked "api": python/api, python/common, python/orjson, bytecode under /opt/python; a
    function with an empty zip and that layer answers."""
    runtimes = [lambda_.Runtime.PYTHON_3_12]
    app, stack = synth_app(workspace, lambda s: make_layer(s, "api", runtimes))
    [layer] = layers_of(stack).values()
    folder = staged(app.outdir, layer["Properties"]["Content"]["S3Key"])
    assert tops(folder) == {"python"}
    assert {"api", "common", "orjson"} <= tops(folder / "python")
    handler_pyc = next((folder / "python" / "api").rglob("handler.cpython-312.pyc"))
    assert marshal.loads(handler_pyc.read_bytes()[16:]).co_filename == "/opt/python/api/handler.py"
    empty = folder.parent / "empty-code"
    empty.mkdir()
    answer = call_handler(empty, "api.handler.main", "3.12", {"name": "l"}, layers=[folder])
    assert answer.ok, answer.result
    assert answer.result["message"] == "hello l"


def test_marked_layer_spanning_python_versions_is_refused(workspace: Path, cache_dir: Path):
    runtimes = [lambda_.Runtime.PYTHON_3_11, lambda_.Runtime.PYTHON_3_12]
    message = synth_error(workspace, lambda s: make_layer(s, "api", runtimes))
    assert_complete_error(
        message,
        construct="Stack/Deps",
        package="api",
        target="python3.11, python3.12",
        fix='mark_package(layer, "<package>", python="3.12")',
        also=["span several Python versions"],
    )


def test_marked_layer_told_which_python_checks_its_wheels_load_on_every_runtime(workspace: Path, cache_dir: Path):
    """Told python=3.12, a layer for 3.12 and 3.13: api's orjson wheel is for CPython 3.12 only (refused);
    common is pure Python (built once, for 3.12)."""
    runtimes = [lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13]
    message = synth_error(workspace, lambda s: make_layer(s, "api", runtimes, python="3.12"))
    assert_complete_error(
        message,
        construct="Stack/Deps",
        package="api",
        target="python3.12 x86_64",
        fix="make one layer per Python version",
        also=["orjson", "python3.13"],
    )
    app, stack = synth_app(workspace, lambda s: make_layer(s, "common", runtimes, python="3.12"))
    [layer] = layers_of(stack).values()
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12", "python3.13"]
    folder = staged(app.outdir, layer["Properties"]["Content"]["S3Key"])
    empty = folder.parent / "empty-code"
    empty.mkdir()
    (empty / "handler.py").write_text("from common import greet\ndef main(event, context):\n    return greet('y')\n")
    for python in ("3.12", "3.13"):
        answer = call_handler(empty, "handler.main", python, {}, layers=[folder])
        assert answer.ok and answer.result == "hello y", answer.result


def test_marked_layer_for_two_architectures_needs_the_same_packages_on_both(workspace: Path, cache_dir: Path):
    """api has compiled code (orjson), different on x86_64 and arm64: refused. common is the same on both."""
    runtimes = [lambda_.Runtime.PYTHON_3_12]
    message = synth_error(workspace, lambda s: make_layer(s, "api", runtimes, [X86, ARM]))
    assert_complete_error(
        message,
        construct="Stack/Deps",
        package="api",
        target="python3.12 arm64",
        fix="make one layer per architecture",
        also=["orjson"],
    )
    _app, stack = synth_app(workspace, lambda s: make_layer(s, "common", runtimes, [X86, ARM]))
    [layer] = layers_of(stack).values()
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64", "arm64"]


def test_marked_layer_without_runtimes_is_refused(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        layer = lambda_.LayerVersion(stack, "Deps", code=UvCode())
        mark_package(layer, "api")

    message = synth_error(workspace, populate)
    assert_complete_error(
        message, construct="Stack/Deps", package="api", target=None, fix="compatible_runtimes=[Runtime.PYTHON_3_12]"
    )


def test_size_check_counts_the_dependencies_layer(workspace: Path, cache_dir: Path, tmp_path: Path):
    """api's zip alone is under a 0.2 MiB threshold; with its orjson layer it is over it: the check warns,
    and its report says what the layer added."""
    app = App(outdir=str(tmp_path / "out"))
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api")
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace, dependencies_layer=True))
    Aspects.of(app).add(UvPolicyChecks(size_warning_mb=0.2))
    app.synth()
    report = json.loads((tmp_path / "out" / "uv-policy-report.json").read_text())
    [row] = report["functions"]
    [logical_id] = functions_of(stack)
    code, [layer] = function_layer_dirs(app, stack, logical_id)
    own = sum(p.stat().st_size for p in code.rglob("*") if p.is_file())
    assert own < 0.2 * 1024 * 1024 < own + sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    result = row["rules"]["uv-asset-size"]
    assert (result["result"], result["level"]) == ("failed", "warning"), result
    assert "in 1 layer" in json.dumps(result) and "layers included" in json.dumps(result)
    off = ("uv-asset-size", "uv-edge-limits", "uv-init-budget")  # the init budget: off by default
    others = {rule: r["result"] for rule, r in row["rules"].items() if rule not in off}
    assert set(others.values()) == {"passed"}, others  # the handler check finds it in the zip, uv-built...


def test_cdk_uv_invoke_composes_the_function_and_its_layer(workspace: Path, cache_dir: Path, tmp_path: Path):
    """`cdk-uv invoke` runs a layer-split function from its zip and its layer's python/ (at /opt/python)."""
    out = tmp_path / "out"
    synth_app(workspace, lambda s: add_function(s, "Api", "api"), outdir=out, dependencies_layer=True)
    cli = Path(sys.executable).parent / "cdk-uv"
    env = {**os.environ, "CDK_UV_CACHE_DIR": str(cache_dir)}
    done = subprocess.run(
        [str(cli), "invoke", str(out), "Api", "--event", "-"],
        input='{"name": "cli"}',
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"message": "hello cli", "version": "0.1.0"}


def test_cdk_uv_report_shows_each_functions_layers_and_their_size(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A layer-split function reads as its small zip plus its layer's size; a layer given by ARN is counted
    as one this assembly does not hold; `--json` lists each layer's folder, bytes and files."""
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        common = add_function(stack, "Common", "common", handler="common.greeting")
        arn = "arn:aws:lambda:us-east-1:123456789012:layer:shared:3"
        common.add_layers(lambda_.LayerVersion.from_layer_version_arn(stack, "Shared", arn))

    synth_app(workspace, populate, outdir=out, dependencies_layer=True)
    cli = Path(sys.executable).parent / "cdk-uv"
    table = subprocess.run([str(cli), "report", str(out)], capture_output=True, text=True, check=True).stdout
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    header = table.splitlines()[0]
    assert "layers" in header, table
    api_layer = next(p for p in out.glob("asset.*") if (p / "python" / "orjson").is_dir())
    layer_bytes = sum(p.stat().st_size for p in api_layer.rglob("*") if p.is_file())
    column = header.index("layers")
    assert rows["Stack/Api"][column:].startswith(f"{layer_bytes / 1e3:.0f} kB in 1"), table
    assert "1 by ARN" in rows["Stack/Common"][column:], table

    records = json.loads(
        subprocess.run([str(cli), "report", str(out), "--json"], capture_output=True, check=True).stdout
    )
    api = next(r for r in records if r["function"] == "Stack/Api")
    [layer] = api["layers"]
    files = [p for p in api_layer.rglob("*") if p.is_file()]
    assert layer == {"assetDir": api_layer.name, "bytes": layer_bytes, "files": len(files)}
    assert next(r for r in records if r["function"] == "Stack/Common")["layersElsewhere"] == 1


def test_a_function_with_five_layers_has_no_room_for_its_dependencies(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        fn = add_function(stack, "Api", "api")
        for n in range(5):
            arn = f"arn:aws:lambda:us-east-1:123456789012:layer:other{n}:1"
            fn.add_layers(lambda_.LayerVersion.from_layer_version_arn(stack, f"Other{n}", arn))

    message = synth_error(workspace, populate, dependencies_layer=True)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target="python3.12 x86_64",
        fix="keep its dependencies in its zip (mark it with {'dependencies_layer': False})",
    )


def test_marked_layer_rebuilds_byte_identical(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two synths from empty build caches, in other output folders: the same layer folder and asset hash."""
    seen = []
    for n in range(2):
        monkeypatch.setenv("CDK_UV_CACHE_DIR", str(tmp_path / f"cache{n}"))
        populate = lambda s: make_layer(s, "api", [lambda_.Runtime.PYTHON_3_12])  # noqa: E731
        app, stack = synth_app(workspace, populate, outdir=tmp_path / f"out{n}")
        [layer] = layers_of(stack).values()
        key = layer["Properties"]["Content"]["S3Key"]
        seen.append((key, tree_digest(staged(app.outdir, key))))
    assert seen[0] == seen[1]
