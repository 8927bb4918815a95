"""Slimming (UvOptions(slim=...)): what it leaves out and strips, byte for byte the same each time, and the
proof that refuses a slimmed asset whose module no longer imports, naming it.

The workspace here plants third-party wheels made in the test (with a native library built by gcc, with
debug symbols): ``tidy`` (a test suite, stubs, a C source, a library with debug symbols, all of which
slimming may drop), ``plant`` (its package imports its own ``tests``) and ``needle`` (it reads its own
library's DWARF when imported). tests/test_slim_heavy.py shows the same on numpy and pandas.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_
from helpers import add_function, assert_complete_error, build_of, call_handler, synth_app, synth_error, tree_digest
from pydantic import ValidationError

from cdk_uv_aspect import UvCode, UvOptions, mark_package, uv_image_code
from cdk_uv_aspect._emulation import Emulated, emulated_python, host_architecture
from cdk_uv_aspect._errors import MarkerError
from cdk_uv_aspect._marker import Marker
from cdk_uv_aspect._runner import Runner
from cdk_uv_aspect._slim import Slimming, slimmed
from cdk_uv_aspect._strip import strip_tool
from cdk_uv_aspect._uv import Uv

TARGET_TEXT = "python3.12 x86_64 (Amazon Linux 2023, glibc 2.34)"
NATIVE_TAG = "py3-none-manylinux_2_17_x86_64"

# Reads the section names of an ELF file: what `needle` does with its own library when imported.
SECTIONS = """import os, struct

def _sections(path):
    with open(path, "rb") as f:
        data = f.read()
    (shoff,) = struct.unpack_from("<Q", data, 40)
    size, count, names_at = struct.unpack_from("<HHH", data, 58)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * size) for i in range(count)]
    names = data[headers[names_at][4]:]
    return {names[h[0]:names.index(b"\\0", h[0])].decode() for h in headers}
"""


# --- the options and the marker -----------------------------------------------------------------


def test_slim_takes_true_false_or_bytecode_only():
    """slim is True, False or 'bytecode-only'; anything else, and bytecode-only without bytecode, is refused."""
    assert UvOptions().slim is False
    assert UvOptions(slim=True).slim is True and UvOptions(slim="bytecode-only").slim == "bytecode-only"
    for bad in ("yes", 1, "bytecode"):
        with pytest.raises(ValidationError, match="slim takes True, False or 'bytecode-only'"):
            UvOptions(slim=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="bytecode=False compiles none"):
        UvOptions(slim="bytecode-only", bytecode=False)


def test_marker_slim_decides_per_function():
    """The marker's slim is kept as written (True, False, 'bytecode-only'); anything else is refused."""
    assert Marker.parse({"package": "api", "slim": "bytecode-only"}).slim == "bytecode-only"
    assert Marker.parse({"package": "api", "slim": False}).as_data() == {"package": "api", "slim": False}
    assert Marker.parse("api").slim is None
    with pytest.raises(MarkerError) as error:
        Marker.parse({"package": "api", "slim": "yes"})
    assert "slim must be true, false or 'bytecode-only'" in str(error.value)


# --- a workspace with planted wheels --------------------------------------------------------------


def wheel(folder: Path, name: str, tag: str, files: dict[str, bytes]) -> Path:
    """A wheel of ``name`` 1.0 holding ``files``, as a build backend writes one."""
    dist = f"{name}-1.0.dist-info"
    files = {
        **files,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
    }
    digest = lambda data: base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()  # noqa: E731
    record = [f"{rel},sha256={digest(data)},{len(data)}" for rel, data in files.items()]
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    path = folder / f"{name}-1.0-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for rel, data in files.items():
            archive.writestr(zipfile.ZipInfo(rel, (2020, 1, 1, 0, 0, 0)), data)
    return path


def native_library(folder: Path, name: str) -> bytes:
    """A shared library with debug symbols (gcc -g), as some wheels ship them."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("the slimming tests need gcc to build a native library (.ci/run installs it)")
    source = folder / f"{name}.c"
    source.write_text(f"int {name}_answer(void) {{ return 42; }}\n")
    out = folder / f"lib{name}.so"
    subprocess.run([gcc, "-g", "-O0", "-shared", "-fPIC", "-o", out, source], check=True)
    return out.read_bytes()


def package(root: Path, name: str, dependency: str, wheel_file: Path, handler: str) -> None:
    folder = root / "packages" / name
    (folder / "src" / name).mkdir(parents=True)
    (folder / "src" / name / "__init__.py").write_text("")
    (folder / "src" / name / "handler.py").write_text(handler)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["{dependency}"]\n\n[tool.uv.sources]\n'
        f'{dependency} = {{ path = "../../wheels/{wheel_file.name}" }}\n\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )


@pytest.fixture(scope="module")
def planted_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted workspace, made and locked once for this module: packages shop (tidy), sprout (plant) and
    pin (needle)."""
    root = tmp_path_factory.mktemp("planted") / "ws"
    wheels = root / "wheels"
    wheels.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    scratch = tmp_path_factory.mktemp("gcc")
    tidy = wheel(
        wheels,
        "tidy",
        NATIVE_TAG,
        {
            "tidy/__init__.py": b"import ctypes, os\n_lib = ctypes.CDLL(os.path.join(os.path.dirname(__file__), "
            b'"libtidy.so"))\n\n\ndef answer():\n    return _lib.tidy_answer()\n',
            "tidy/__init__.pyi": b"def answer() -> int: ...\n",
            "tidy/py.typed": b"",
            "tidy/libtidy.so": native_library(scratch, "tidy"),
            "tidy/src/tidy.c": b"int tidy_answer(void) { return 42; }\n",
            "tidy/tests/__init__.py": b"",
            "tidy/tests/test_answer.py": b"from tidy import answer\n\n\ndef test_answer():\n    assert answer()\n",
            "tidy/tests/data/table.csv": b"a,b\n1,2\n",
            "tests/__init__.py": b"",  # a top-level test suite, as some wheels ship by mistake
            "tests/test_top.py": b"import tidy\n",
        },
    )
    plant = wheel(
        wheels,
        "plant",
        "py3-none-any",
        {
            "plant/__init__.py": b"from plant.tests.samples import SAMPLE\n",
            "plant/tests/__init__.py": b"",
            "plant/tests/samples.py": b"SAMPLE = {'seed': 1}\n",
        },
    )
    needle = wheel(
        wheels,
        "needle",
        NATIVE_TAG,
        {
            "needle/__init__.py": (
                SECTIONS + "\nif '.debug_info' not in _sections(os.path.join(os.path.dirname(__file__), "
                "'libneedle.so')):\n    raise ImportError('libneedle.so has no .debug_info: needle reads its "
                "own DWARF when imported')\n"
            ).encode(),
            "needle/libneedle.so": native_library(scratch, "needle"),
        },
    )
    handler = "import {0}\n\n\ndef main(event, context):\n    return {{'module': {0}.__name__, 'file': {0}.__file__}}\n"
    package(
        root,
        "shop",
        "tidy",
        tidy,
        handler.format("tidy") + "\n\ndef answer(event, context):\n    return tidy.answer()\n",
    )
    package(root, "sprout", "plant", plant, handler.format("plant"))
    package(root, "pin", "needle", needle, handler.format("needle"))
    locked = subprocess.run([Uv.locate(None).path, "lock"], cwd=root, capture_output=True, text=True, check=False)
    assert locked.returncode == 0, locked.stderr
    return root


@pytest.fixture
def planted(planted_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(planted_template, tmp_path / "ws", symlinks=True))


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def has_debug_info(path: Path) -> bool:
    scope: dict[str, object] = {}
    exec(SECTIONS, scope)
    return ".debug_info" in scope["_sections"](str(path))  # type: ignore[operator]


# --- what slimming does ---------------------------------------------------------------------------


@pytest.mark.slow
def test_slim_leaves_out_third_party_tests_and_unread_files_and_strips_debug_symbols(planted: Path, cache_dir: Path):
    """tidy's tests, stub, py.typed and C source are left out, its library loses its debug symbols, RECORD
    lists what is left; the handler still runs from the slimmed folder; the build's own files are untouched."""
    whole = build_of(planted, "shop", cache_dir=cache_dir)
    slim = slimmed(whole, Slimming("slim"), Runner())
    before, after = files(whole.asset_dir), files(slim.asset_dir)
    gone = before - after
    assert {"tidy/tests/test_answer.py", "tidy/tests/data/table.csv", "tidy/__init__.pyi"} <= gone
    assert {"tidy/py.typed", "tidy/src/tidy.c", "tidy/tests/__pycache__/test_answer.cpython-312.pyc"} <= gone
    assert {"tests/__init__.py", "tests/test_top.py"} <= gone  # a top-level tests/ of a third-party wheel
    assert not any(rel.startswith("tidy/tests/") or rel.startswith("tidy/src/") for rel in after)
    assert {
        "shop/handler.py",
        "tidy/__init__.py",
        "tidy/libtidy.so",
        "tidy/__pycache__/__init__.cpython-312.pyc",
    } <= after
    assert has_debug_info(whole.asset_dir / "tidy/libtidy.so")
    assert not has_debug_info(slim.asset_dir / "tidy/libtidy.so")
    record = (slim.asset_dir / "tidy-1.0.dist-info" / "RECORD").read_text()
    assert "tidy/tests/" not in record and "tidy/__init__.pyi" not in record and "tidy/__init__.py," in record
    assert call_handler(slim.asset_dir, "shop.handler.answer", "3.12").result == 42
    info = slim.info["slim"]
    assert info["mode"] == "slim" and info["bytesBefore"] == whole.info["bytes"] > info["bytes"] == slim.info["bytes"]
    assert info["removed"]["tests"] > 0 and info["removed"]["unreachable"] > 0 and info["removed"]["debugSymbols"] > 0
    assert info["proven"] == "python3.12 x86_64" and info["modules"] >= 1
    assert info["strip"] and info["stripped"] == 1


@pytest.mark.slow
def test_slim_is_byte_reproducible_and_keyed_by_what_decides_it(planted: Path, cache_dir: Path):
    """Slimming the same build again (the cache bypassed, under a umask of 077) gives the same bytes and file
    modes under the same key; the mode changes the key."""
    whole = build_of(planted, "shop", cache_dir=cache_dir)
    first = slimmed(whole, Slimming("slim"), Runner())
    digest = tree_digest(first.asset_dir)  # paths, modes and contents
    again = build_of(planted, "shop", cache_dir=cache_dir, rebuild=True)
    umask = os.umask(0o077)
    try:
        second = slimmed(again, Slimming("slim"), Runner())
    finally:
        os.umask(umask)
    assert not second.cached and second.entry == first.entry and tree_digest(second.asset_dir) == digest
    other = slimmed(whole, Slimming("bytecode-only"), Runner())
    assert other.entry != first.entry
    assert slimmed(whole, Slimming("slim"), Runner()).entry == first.entry  # from the cache, verified


@pytest.mark.slow
def test_bytecode_only_ships_third_party_pyc_beside_where_the_source_was(planted: Path, cache_dir: Path):
    """slim='bytecode-only': tidy's modules are .pyc files at the sources' place (Python imports them from
    there, never from __pycache__ without a source); the workspace's own modules keep their sources."""
    whole = build_of(planted, "shop", cache_dir=cache_dir)
    slim = slimmed(whole, Slimming("bytecode-only"), Runner())
    after = files(slim.asset_dir)
    assert "tidy/__init__.pyc" in after and "tidy/__init__.py" not in after
    assert not any(rel.startswith("tidy/__pycache__/") for rel in after)
    assert {"shop/handler.py", "shop/__pycache__/handler.cpython-312.pyc"} <= after
    assert "tidy/__init__.pyc,," in (slim.asset_dir / "tidy-1.0.dist-info" / "RECORD").read_text()
    called = call_handler(slim.asset_dir, "shop.handler.main", "3.12")
    assert called.result["file"].endswith("/tidy/__init__.pyc"), called
    assert call_handler(slim.asset_dir, "shop.handler.answer", "3.12").result == 42
    assert slim.info["slim"]["removed"]["sources"] > 0


# --- a slimming that would break an import -------------------------------------------------------


@pytest.mark.slow
def test_a_package_importing_its_own_tests_fails_the_build_naming_the_module(planted: Path, cache_dir: Path):
    """plant's __init__ imports plant.tests: slimming would break `import plant`, so the synth fails, naming
    the module, its distribution, what slimming took, the function, the package, the target and the fix."""
    message = synth_error(planted, lambda s: add_function(s, "Fn", "sprout", handler="sprout.handler.main"), slim=True)
    assert_complete_error(
        message,
        construct="Stack/Fn",
        package="sprout",
        target=TARGET_TEXT,
        fix="slim=False",
        also=["slimming would break `import plant` (distribution plant 1.0)", "No module named 'plant.tests'"],
    )
    assert "slimming took from plant: test suite plant/tests/ (4 files)" in message


@pytest.mark.slow
def test_a_library_that_needs_a_stripped_section_fails_the_build_naming_the_module(planted: Path, cache_dir: Path):
    """needle reads its own library's .debug_info when imported: stripping would break `import needle`; the
    synth fails naming it and the library stripped. The marker's slim=False builds the same function whole."""

    def populate(stack):
        fn = add_function(stack, "Fn", None, handler="pin.handler.main")
        mark_package(fn, "pin", slim=True)

    message = synth_error(planted, populate)
    assert_complete_error(
        message,
        construct="Stack/Fn",
        package="pin",
        target=TARGET_TEXT,
        fix='mark_package(fn, "pin", slim=False)',
        also=["slimming would break `import needle` (distribution needle 1.0)", "has no .debug_info"],
    )
    assert "debug symbols of needle/libneedle.so" in message

    def kept_whole(stack):
        fn = add_function(stack, "Fn", None, handler="pin.handler.main")
        mark_package(fn, "pin", slim=False)

    synth_app(planted, kept_whole, slim=True)  # the option says slim, the marker keeps this one whole


# --- where it applies -----------------------------------------------------------------------------


@pytest.mark.slow
def test_slim_applies_to_zip_functions_and_dependencies_layers_and_shows_in_the_report(
    planted: Path, cache_dir: Path, tmp_path: Path
):
    """A slim function's asset and a dependencies layer are slimmed; a function marked slim=False shares
    nothing with them; uv:build records the bytes before and after and the proof; `cdk-uv report` shows them."""
    out = tmp_path / "out"

    def populate(stack):
        add_function(stack, "Slim", "shop", handler="shop.handler.answer")
        whole = add_function(stack, "Whole", None, handler="shop.handler.answer")
        mark_package(whole, "shop", slim=False)
        layered = add_function(stack, "Layered", None, handler="shop.handler.answer")
        mark_package(layered, "shop", dependencies_layer=True)

    synth_app(planted, populate, outdir=out, slim=True)
    metadata = json.loads((out / "Stack.metadata.json").read_text())
    records = {path: e["data"] for path, entries in metadata.items() for e in entries if e["type"] == "uv:build"}
    slim, whole = records["/Stack/Slim"], records["/Stack/Whole"]
    assert "slim" not in whole and slim["assetHash"] != whole["assetHash"]
    assert slim["slim"]["bytesBefore"] == whole["bytes"] > slim["bytes"] == slim["slim"]["bytes"]
    assert slim["slim"]["proven"] == "python3.12 x86_64"
    layer = next(data for path, data in records.items() if "UvDependencies" in path)
    assert layer["slim"]["removed"]["tests"] > 0 and layer["bytes"] < layer["slim"]["bytesBefore"]
    staged = out / f"asset.{layer['assetHash']}" / "python"
    assert (staged / "tidy" / "__init__.py").is_file() and not (staged / "tidy" / "tests").exists()

    # cdk-uv report: a slim column (the size before, proven or not) and the whole record in its JSON.
    cli = Path(sys.executable).parent / "cdk-uv"
    env = {**os.environ, "CDK_UV_CACHE_DIR": str(cache_dir)}
    table = subprocess.run([cli, "report", str(out)], capture_output=True, text=True, env=env, check=True).stdout
    header, _, *rows = table.splitlines()
    assert "slim" in header.split()
    line = {row.split()[0]: row for row in rows}
    assert f"{slim['slim']['bytesBefore'] / 1e3:.0f} kB before, proven" in line["Stack/Slim"], table
    assert line["Stack/Whole"].split()[-1] == "-"
    listed = subprocess.run([cli, "report", str(out), "--json"], capture_output=True, text=True, env=env, check=True)
    reported = {r["function"]: r for r in json.loads(listed.stdout)}
    assert reported["Stack/Slim"]["slim"] == slim["slim"] and reported["Stack/Whole"]["slim"] is None

    # The slimmed function and the one whose code was split from its layer record the build they come from:
    # the one `cdk-uv verify` builds again (the same key as the whole function's).
    assert slim["key"] == whole["key"] == records["/Stack/Layered"]["key"]
    checked = subprocess.run(
        [cli, "verify", str(out), "--workspace", str(planted), "--json"], capture_output=True, text=True, env=env
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [(v["key"], v["verdict"]) for v in json.loads(checked.stdout)] == [(whole["key"], "same")]


@pytest.mark.slow
def test_slim_applies_to_image_functions_and_marked_layers(planted: Path, cache_dir: Path, tmp_path: Path):
    """An image function's build context and a marked layer's python/ folder are the slimmed folders (the
    layer's modules still recorded under /opt/python), and each answers as the whole one does."""
    out = tmp_path / "out"

    def populate(stack):
        image = lambda_.DockerImageFunction(stack, "Img", code=uv_image_code(stack, "shop.handler.answer"))
        mark_package(image, "shop", slim=True)
        layer = lambda_.LayerVersion(stack, "Deps", code=UvCode(), compatible_runtimes=[lambda_.Runtime.PYTHON_3_12])
        mark_package(layer, "shop", slim=True)

    synth_app(planted, populate, outdir=out)
    manifest = json.loads((out / "Stack.assets.json").read_text())
    ((source,),) = [[entry["source"] for entry in manifest["dockerImages"].values()]]
    context = out / source["directory"]
    assert (context / "Dockerfile").is_file() and (context / "tidy" / "__init__.py").is_file()
    assert not (context / "tidy" / "tests").exists() and not (context / "tidy" / "__init__.pyi").exists()
    assert call_handler(context, "shop.handler.answer", "3.12").result == 42
    metadata = json.loads((out / "Stack.metadata.json").read_text())
    record = next(e["data"] for e in metadata["/Stack/Deps"] if e["type"] == "uv:build")
    layer = out / f"asset.{record['assetHash']}" / "python"
    assert (layer / "tidy" / "__init__.py").is_file() and not (layer / "tidy" / "tests").exists()
    assert record["slim"]["proven"] == "python3.12 x86_64" and record["bytes"] < record["slim"]["bytesBefore"]
    pyc = (layer / "shop" / "__pycache__" / "handler.cpython-312.pyc").read_bytes()
    assert b"/opt/python/shop/handler.py" in pyc


# --- the other architecture, under emulation --------------------------------------------------------

EMULATED = emulated_python("arm64", "3.11") if host_architecture() == "x86_64" else "this machine is not x86_64"
needs_emulation = pytest.mark.skipif(
    not isinstance(EMULATED, Emulated), reason=f"no arm64 Python 3.11 under emulation here: {EMULATED}"
)


@needs_emulation
@pytest.mark.slow
def test_an_arm64_slimmed_asset_is_proven_under_emulation(workspace: Path, cache_dir: Path):
    """api's arm64 build for python3.11 (orjson's aarch64 library) slimmed on this x86_64 machine: every module
    imported by an arm64 Python 3.11 under qemu-user, and the record says so."""
    whole = build_of(workspace, "api", python="3.11", arch="arm64", cache_dir=cache_dir)
    said: list[str] = []
    slim = slimmed(whole, Slimming("slim"), Runner(), log=said.append)
    assert slim.info["slim"]["proven"] == "python3.11 arm64 under emulation", slim.info["slim"]
    assert slim.info["slim"]["modules"] >= 1 and slim.info["slim"]["native"] >= 1  # orjson's aarch64 library
    assert any("import (python3.11 arm64 under emulation)" in line for line in said), said


@needs_emulation
@pytest.mark.slow
def test_under_emulation_a_broken_import_fails_the_arm64_build_naming_the_module(planted: Path, cache_dir: Path):
    """The package importing its own tests, in an arm64 python3.11 function: the emulated proof fails the
    synth naming `import plant`, for the arm64 target."""

    def populate(stack):
        add_function(
            stack,
            "Arm",
            "sprout",
            handler="sprout.handler.main",
            runtime=lambda_.Runtime.PYTHON_3_11,
            architecture=lambda_.Architecture.ARM_64,
        )

    message = synth_error(planted, populate, slim=True)
    assert_complete_error(
        message,
        construct="Stack/Arm",
        package="sprout",
        target="python3.11 arm64 (Amazon Linux 2, glibc 2.26)",
        fix="slim=False",
        also=["slimming would break `import plant` (distribution plant 1.0)", "No module named 'plant.tests'"],
    )


@pytest.mark.slow
def test_without_a_strip_tool_nothing_is_stripped_and_the_build_says_so(
    planted: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """No llvm-strip and no binutils for the target on PATH: the strip step is skipped and said, the rest
    of slimming happens, and the entry is another one than with a strip tool."""
    whole = build_of(planted, "shop", cache_dir=cache_dir)
    with_tool = slimmed(whole, Slimming("slim"), Runner())
    empty = cache_dir.parent / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    from cdk_uv_aspect import _state

    _state.TOOLS.clear()  # tools are looked up once per process: as a new process would
    reason = strip_tool("x86_64", Runner())
    assert isinstance(reason, str) and "no strip tool for x86_64" in reason and "apt-get install llvm" in reason
    said: list[str] = []
    slim = slimmed(whole, Slimming("slim"), Runner(), log=said.append)
    assert any("no strip tool for x86_64" in line for line in said), said
    assert slim.entry != with_tool.entry and slim.info["slim"]["strip"] is None
    assert has_debug_info(slim.asset_dir / "tidy/libtidy.so") and not (slim.asset_dir / "tidy" / "tests").exists()


def test_strip_tool_handles_arm64_with_llvm_strip_or_cross_binutils():
    """The strip tool for arm64 on this machine is one that handles aarch64 (llvm-strip or the cross
    binutils), never the host's own strip."""
    tool = strip_tool("arm64", Runner())
    if isinstance(tool, str):
        pytest.fail(f"the slimming tests need a strip tool for arm64 (.ci/run installs llvm): {tool}")
    assert Path(tool.path).name.startswith(("llvm-strip", "aarch64-linux-gnu-strip")), tool
    assert os.access(tool.path, os.X_OK)
