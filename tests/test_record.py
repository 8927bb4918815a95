"""What was built, recorded once: the ``uv:build`` entry has one form for zip and image functions, marked layers
and the layers of functions' dependencies, and every reader gets it through one function."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from helpers import add_function, synth_app

from cdk_uv_aspect import UvCode, mark_package, uv_image_code
from cdk_uv_aspect._assembly import functions
from cdk_uv_aspect._marker import marked_package
from cdk_uv_aspect._record import BUILT, BuildRecord, ImageRecord, recorded


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


KEYS = {_camel(f.name) for f in fields(BuildRecord)}
# What every record has, whatever was built (a field that is None is left out, as the CDK leaves out nulls).
ALWAYS = {"package", "target", "assetHash", "extras", "groups", "omitted", "files", "bytes", "buildSeconds", "cached"}


def test_a_record_reads_back_as_it_was_written():
    """The JSON form a reader finds in a cloud assembly is the record the aspect wrote, field for field."""
    record = BuildRecord(
        "api",
        "python3.12-arm64",
        "abc123",
        extras=("fast",),
        groups=("otel",),
        omitted={"boto3": "1.35.0"},
        sbom="uv-sbom/api.cdx.json",
        files=12,
        bytes=3400,
        build_seconds=1.25,
        cached=True,
        origin="team cache",
        key="api-python3.12-arm64-" + "0" * 32,
        requires_python=">=3.11",
        image=ImageRecord("3.12", "default", "public.ecr.aws/lambda/python:3.12"),
        slim={"mode": "slim", "bytesBefore": 5000, "bytes": 3400, "unproven": "no arm64 Python 3.12 runs here"},
    )
    data = json.loads(json.dumps(record.as_data()))  # as the CDK writes it into manifest.json
    assert set(data) == KEYS - {"asset"}  # an image has no zip asset
    assert recorded([("uv", "api"), (BUILT, data)]) == record


def test_what_this_library_did_not_write_is_no_record():
    """A ``uv:build`` entry without a package (written by hand, or damaged) is not taken for a build."""
    assert recorded([(BUILT, {"target": "python3.12-x86_64"})]) is None
    assert recorded([(BUILT, "api")]) is None
    assert recorded([("uv", "api")]) is None


def test_the_marker_is_read_as_the_aspect_reads_it():
    """Readers of an assembly or a tree name the package as the aspect built it (normalized); a marker the
    aspect refuses still reads as marked, by the name written."""
    assert marked_package([("aws:cdk:logicalId", "Fn"), ("uv", {"package": "Api_Svc", "extras": ["x"]})]) == "api-svc"
    assert marked_package([("uv", "Api.Svc")]) == "api-svc"
    assert marked_package([("uv", "../etc")]) == "../etc"
    assert marked_package([("uv:build", {"package": "api"})]) is None


@pytest.mark.slow
def test_functions_images_and_layers_carry_one_form_of_record(workspace: Path, cache_dir: Path, tmp_path: Path):
    """Every uv:build entry of a synthesized app (a zip function, one with its dependencies in a layer, the
    layer made for them, an image function, a marked layer) has the same keys, and reads back unchanged."""
    out = tmp_path / "cdk.out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Zip", "api")
        split = add_function(stack, "Split", None)
        mark_package(split, "api", dependencies_layer=True)
        image = lambda_.DockerImageFunction(stack, "Image", code=uv_image_code(stack, "api.handler.main"))
        mark_package(image, "api")
        layer = lambda_.LayerVersion(stack, "Shared", code=UvCode(), compatible_runtimes=[lambda_.Runtime.PYTHON_3_12])
        mark_package(layer, "api")

    synth_app(workspace, populate, outdir=out)
    artifact = json.loads((out / "manifest.json").read_text())["artifacts"]["Stack"]
    metadata = artifact.get("metadata") or json.loads((out / artifact["additionalMetadataFile"]).read_text())
    entries = {path: e["data"] for path, found in metadata.items() for e in found if e["type"] == BUILT}
    by_name = {path.rsplit("/", 1)[-1]: data for path, data in entries.items()}
    assert {"Zip", "Split", "Image", "Shared"} <= set(by_name)
    made = [data for path, data in entries.items() if "UvDependencies" in path]
    assert len(made) == 1 and len(entries) == 5
    for path, data in entries.items():
        assert ALWAYS | {"layer"} <= set(data) <= KEYS, path
        record = recorded([(BUILT, data)])
        assert record is not None and record.as_data() == data, path
    assert by_name["Image"]["image"]["dockerfile"] == "default"
    assert by_name["Shared"]["layer"] is True and made[0]["layer"] is True and by_name["Zip"]["layer"] is False
    assert by_name["Shared"]["requiresPython"] == by_name["Zip"]["requiresPython"]
    built = {fn.path: fn.build for fn in functions(out)}
    assert {path: (b.package, b.target) for path, b in built.items() if b} == {
        "Stack/Zip": ("api", "python3.12-x86_64"),
        "Stack/Split": ("api", "python3.12-x86_64"),
        "Stack/Image": ("api", "python3.12-x86_64"),
    }
