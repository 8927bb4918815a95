"""An SBOM per built asset: valid CycloneDX 1.5, naming each locked package and version in the asset,
byte-identical for the same input, kept with the build in the cache, written into the cloud assembly."""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from fakes import ScriptedRunner, uv_command
from helpers import FIXTURES, add_function, build_of, synth_app
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

from cdk_uv_aspect import mark_package, uv_image_code
from cdk_uv_aspect._cli import main as cdk_uv
from cdk_uv_aspect._sbom import FILE, installed

pytestmark = pytest.mark.slow


def assert_valid_cyclonedx_1_5(text: str) -> dict[str, Any]:
    """Valid against the CycloneDX 1.5 JSON schema (strict: no unknown properties), as cyclonedx-python-lib
    bundles it."""
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    assert error is None, str(error)[:3000]
    document: dict[str, Any] = json.loads(text)
    return document


def named(document: dict[str, Any]) -> dict[str, str]:
    """Name -> version of every component the SBOM names, the function's own package included."""
    components = [document["metadata"]["component"], *document["components"]]
    return {c["name"].lower().replace("_", "-"): c["version"] for c in components}


def test_the_sbom_names_every_locked_package_and_version_in_the_asset(shared_build, workspace: Path):
    """Valid CycloneDX 1.5; its components are exactly the distributions in the asset, at the versions
    uv.lock pins; the native wheel is the one installed for the target, with the lock's SHA-256."""
    built = shared_build("api")
    text = built.sbom.read_text()
    document = assert_valid_cyclonedx_1_5(text)

    in_asset = {d.name: d.version for d in installed(built.asset_dir)}
    assert named(document) == in_asset == {"api": "0.1.0", "common": "0.1.0", "orjson": "3.13.0"}
    lock = {p["name"]: p for p in tomllib.loads((workspace / "uv.lock").read_text())["package"]}
    assert all(lock[name]["version"] == version for name, version in in_asset.items())

    assert document["metadata"]["component"]["name"] == "api"
    (orjson,) = [c for c in document["components"] if c["name"] == "orjson"]
    assert orjson["purl"] == "pkg:pypi/orjson@3.13.0"
    (wheel,) = orjson["externalReferences"]
    locked = {w["url"]: w["hash"] for w in lock["orjson"]["wheels"]}
    assert locked[wheel["url"]] == "sha256:" + wheel["hashes"][0]["content"]
    _, _, _, tags = parse_wheel_filename(wheel["url"].rsplit("/", 1)[-1])
    assert Tag("cp312", "cp312", "manylinux_2_17_x86_64") in tags
    properties = {p["name"]: p["value"] for p in document["metadata"]["properties"]}
    assert properties == {"cdk-uv:target": "python3.12-x86_64"}
    # Beside the asset, never in it: the asset (and its hash) is what Lambda runs.
    assert not list(built.asset_dir.rglob(FILE)) and FILE not in built.info["manifest"]


def test_an_application_package_is_the_subject_of_its_sbom(shared_build):
    """A package without a build system has no dist-info; the SBOM still names it, from the lock."""
    document = assert_valid_cyclonedx_1_5(shared_build("app").sbom.read_text())
    assert document["metadata"]["component"] == {
        "type": "application",
        "bom-ref": "app@0.1.0",
        "name": "app",
        "version": "0.1.0",
        "properties": [{"name": "cdk-uv:workspace:path", "value": "packages/app"}],
    }
    assert named(document) == {"app": "0.1.0", "common": "0.1.0"}
    assert {"ref": "app@0.1.0", "dependsOn": ["common@0.1.0"]} in document["dependencies"]


def test_the_same_input_gives_a_byte_identical_sbom(shared_build, workspace: Path, tmp_path: Path):
    """Two checkouts at other paths, built into two caches: the same bytes (no timestamp, no random serial)."""
    other = tmp_path / "elsewhere" / "ws"
    shutil.copytree(workspace, other)
    first = shared_build("api").sbom.read_bytes()
    second = build_of(other, "api", cache_dir=tmp_path / "two").sbom.read_bytes()
    assert first == second
    assert b"timestamp" not in first and json.loads(first)["serialNumber"].startswith("urn:uuid:")


def test_a_cached_build_gives_the_same_sbom_without_running_uv(workspace: Path, cache_dir: Path):
    """From the cache: the SBOM kept with the build, no uv export; a damaged SBOM makes the entry a miss."""
    first = build_of(workspace, "api")
    content = first.sbom.read_bytes()
    runner = ScriptedRunner()
    again = build_of(workspace, "api", runner)
    assert again.cached and again.sbom.read_bytes() == content
    assert not runner.calls_to(uv_command("export"))

    first.sbom.write_bytes(content.replace(b'"orjson"', b'"orjsom"'))
    repaired = build_of(workspace, "api", runner)
    assert not repaired.cached and repaired.sbom.read_bytes() == content


def test_chosen_extras_and_groups_are_in_the_sbom_with_their_packages(tmp_path: Path, cache_dir: Path):
    """The fixture whose root is a package: its extra and group are properties, and their packages components."""
    shutil.copytree(FIXTURES / "groups", tmp_path / "groups")
    built = build_of(tmp_path / "groups", "shop", extras=["fast"], groups=["otel"])
    document = assert_valid_cyclonedx_1_5(built.sbom.read_text())
    assert named(document) == {"shop": "0.1.0", "basket": "0.1.0", "orjson": "3.13.0", "idna": "3.20"}
    properties = [(p["name"], p["value"]) for p in document["metadata"]["properties"]]
    assert ("cdk-uv:extra", "fast") in properties and ("cdk-uv:group", "otel") in properties
    root = next(d for d in document["dependencies"] if d["ref"] == "shop@0.1.0")
    assert root["dependsOn"] == ["basket@0.1.0", "pkg:pypi/idna@3.20", "pkg:pypi/orjson@3.13.0"]


def test_synth_writes_each_sbom_into_the_assembly_and_report_lists_them(
    workspace: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """uv-sbom/ in the cloud assembly, one document per build, named by content and recorded in each
    function's uv:build metadata (image functions too); `cdk-uv report --sbom` lists them."""
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        add_function(stack, "Api2", "api")
        add_function(stack, "App", "app", handler="main.handler")
        mark_package(lambda_.DockerImageFunction(stack, "Img", code=uv_image_code(stack, "api.handler.main")), "api")

    _, stack = synth_app(workspace, populate, outdir=out)
    written = sorted(p.name for p in (out / "uv-sbom").iterdir())
    assert len(written) == 2  # api (for the zip functions and the image) and app
    recorded = {}
    for name in ("Api", "Api2", "App", "Img"):
        (build_record,) = [m.data for m in stack.node.find_child(name).node.metadata if m.type == "uv:build"]
        recorded[name] = build_record["sbom"]
    assert recorded["Api"] == recorded["Api2"] == recorded["Img"] != recorded["App"]
    for relative in set(recorded.values()):
        content = (out / relative).read_bytes()
        assert relative.startswith("uv-sbom/") and hashlib.sha256(content).hexdigest()[:16] in relative
        assert_valid_cyclonedx_1_5(content.decode())

    capsys.readouterr()
    assert cdk_uv(["report", str(out), "--sbom", "--json"]) == 0
    rows = {r["function"]: r for r in json.loads(capsys.readouterr().out)}
    assert {name: r["sbom"] for name, r in rows.items()} == {  # relative to the assembly: the same on every runner
        f"Stack/{name}": relative for name, relative in recorded.items()
    }
    assert rows["Stack/Api"]["components"] == 2 and rows["Stack/App"]["components"] == 1
    assert cdk_uv(["report", str(out), "--sbom"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["function", "package", "target", "components", "sbom"]
    assert recorded["App"] in table
