"""Fast unit tests: target mapping, marker parsing, option validation, uv command composition."""

from __future__ import annotations

import ast
import datetime
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, assert_complete_error
from packaging.requirements import Requirement
from pydantic import ValidationError

from cdk_uv_aspect import UvOptions
from cdk_uv_aspect._errors import MarkerError, TargetError, ToolError, WorkspaceError
from cdk_uv_aspect._image import final_base, lambda_python
from cdk_uv_aspect._marker import Marker, package_of
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._target import Target, target_of
from cdk_uv_aspect._uv import (
    MIN_UV,
    UV_ENV,
    Uv,
    build_wheel,
    compile_bytecode,
    export,
    install_locked,
    install_wheels,
    split_requirements,
)
from cdk_uv_aspect._workspace import Workspace


@pytest.mark.parametrize(
    ("runtime", "arch", "os_name", "glibc", "platform"),
    [
        ("python3.8", "x86_64", "Amazon Linux 2", "2.26", "x86_64-manylinux2014"),
        ("python3.9", "x86_64", "Amazon Linux 2", "2.26", "x86_64-manylinux2014"),
        ("python3.11", "arm64", "Amazon Linux 2", "2.26", "aarch64-manylinux2014"),
        ("python3.12", "x86_64", "Amazon Linux 2023", "2.34", "x86_64-manylinux_2_34"),
        ("python3.13", "arm64", "Amazon Linux 2023", "2.34", "aarch64-manylinux_2_34"),
        ("python3.14", "x86_64", "Amazon Linux 2023", "2.34", "x86_64-manylinux_2_34"),
        ("python3.7", "x86_64", "Amazon Linux 1", "2.17", "x86_64-manylinux2014"),
    ],
)
def test_runtime_and_architecture_map_to_os_glibc_and_uv_platform(runtime, arch, os_name, glibc, platform):
    """Each Lambda Python runtime runs on a known Amazon Linux: its glibc decides the wheels."""
    target = target_of(runtime, arch, today=datetime.date(2026, 12, 1))
    assert (target.python, target.os.name, target.glibc, target.python_platform) == (
        runtime.removeprefix("python"),
        os_name,
        glibc,
        platform,
    )


def test_target_describes_itself_for_error_messages():
    assert str(Target("3.12", "arm64")) == "python3.12 arm64 (Amazon Linux 2023, glibc 2.34)"


@pytest.mark.parametrize("runtime", ["nodejs20.x", "java21", "provided.al2023", "FROM_IMAGE"])
def test_non_python_runtime_is_refused(runtime):
    with pytest.raises(TargetError, match=r"(?s)not a Python runtime.*fix:"):
        target_of(runtime, "x86_64")


def test_every_python_runtime_the_cdk_knows_maps_to_its_os_or_is_refused_by_name():
    """The CDK's Runtime list, walked: each Python runtime gets its Amazon Linux, or a refusal naming it."""
    from aws_cdk import aws_lambda as lambda_

    today = datetime.date(2026, 12, 1)
    pythons = {
        r.name
        for r in (getattr(lambda_.Runtime, attr) for attr in dir(lambda_.Runtime) if attr.isupper())
        if isinstance(r, lambda_.Runtime) and r.family == lambda_.RuntimeFamily.PYTHON
    }
    assert {"python3.8", "python3.12"} <= pythons  # python3.13 from aws-cdk-lib 2.167
    for name in sorted(pythons):
        if name in ("python2.7", "python3.6"):
            with pytest.raises(TargetError, match=rf"(?s)Lambda retired {name}.*fix:"):
                target_of(name, "x86_64", today=today)
            continue
        target = target_of(name, "x86_64", today=today)
        expected = {"python3.7": "Amazon Linux 1"}.get(name) or (
            "Amazon Linux 2" if name in ("python3.8", "python3.9", "python3.10", "python3.11") else "Amazon Linux 2023"
        )
        assert target.os.name == expected, name


def test_a_python_runtime_newer_than_the_table_is_refused_by_name():
    with pytest.raises(TargetError, match=r"(?s)python3\.99 is not one cdk-uv-aspect knows.*upgrade cdk-uv-aspect"):
        target_of("python3.99", "x86_64")


@pytest.mark.parametrize(
    ("data", "package"), [("api", "api"), ("My_Pkg.Name", "my-pkg-name"), ({"package": "api"}, "api")]
)
def test_marker_data_names_a_normalized_package(data, package):
    assert package_of(data) == package


BAD_MARKERS = [None, 42, ["api"], {"name": "api"}, "", "../etc", "a/b", "api; rm -rf /", "$(id)", "\u0430pi"]
BAD_MARKERS += ["api ", "-api", "orders\n", "orders\r", "orders\n\n"]
BAD_MARKERS += [{"package": "api", "extras": ["fast\n"]}, {"package": "api", "groups": ["otel\n"]}]


@pytest.mark.parametrize("data", BAD_MARKERS)
def test_marker_with_bad_data_is_refused(data):
    """Wrong types, path separators, shell metacharacters, look-alike letters, a line break at the end (a
    regular expression's ``$`` matches before one): refused before use."""
    with pytest.raises(MarkerError, match=r"(?s)(must be a package name|unknown keys|must be names as).*fix:"):
        package_of(data)


def readme_options() -> dict[str, str]:
    """Option name -> its default column, from the README's options table."""
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`[a-z_]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_every_option_is_documented_with_its_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The README's options table and UvOptions agree: the same fields, and each literal default as stated."""
    monkeypatch.delenv("CDK_UV_REBUILD", raising=False)
    monkeypatch.delenv("CDK_UV_CACHE_DIR", raising=False)
    documented = readme_options()
    assert set(documented) == set(UvOptions.model_fields)
    defaults = UvOptions()
    for name, field in UvOptions.model_fields.items():
        stated = re.match(r"`([^`]+)`", documented[name])
        literal = stated and stated.group(1)
        if literal and re.fullmatch(r'None|True|False|\d+|"[^"]*"|\(\)|\{\}', literal):
            # The documented value, as a user would pass it, makes the same options as the default.
            value = ast.literal_eval(literal)
            assert UvOptions(**{name: value}) == defaults, f"{name}: README says {literal}"
        else:  # a computed default: the variables it reads are named where the README states it
            for variable in re.findall(r"\$[A-Z_]+", field.description or ""):
                assert variable in documented[name], f"{name}: README does not name {variable}"
            assert field.default_factory is not None or field.default is None, name


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lock": "sometimes"}, "'locked' or 'frozen'"),
        ({"exclude": "*.pyi"}, "list of glob patterns"),
        ({"bytecode": "maybe"}, "valid boolean"),
        ({"cache": "/tmp"}, "Extra inputs are not permitted"),
        ({"base_image_digests": {"3.12": "sha256:abc"}}, r"digest for 3\.12 must be sha256:<64 hex digits>"),
        ({"base_image_digests": {"3.12": "3.12@sha256:" + "a" * 64}}, "must be sha256:<64 hex digits>"),
        ({"base_image_digests": {"python3.12": "sha256:" + "a" * 64}}, "maps Python versions such as '3.12'"),
    ],
)
def test_bad_options_fail_when_constructed(fields, message):
    with pytest.raises(ValidationError, match=message):
        UvOptions(**fields)


def test_base_image_digests_are_kept_by_python_version():
    digest = "sha256:" + "0123456789abcdef" * 4
    assert UvOptions(base_image_digests={"3.13": digest, "3.12": digest}).base_image_digests == (
        ("3.12", digest),
        ("3.13", digest),
    )


@pytest.mark.parametrize(
    "digest", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha512:" + "a" * 64, "a" * 64, 42, ["sha256:" + "a" * 64]]
)
def test_marker_base_digest_that_is_not_a_sha256_digest_is_refused(digest):
    with pytest.raises(MarkerError, match=r"(?s)base_digest must be an image digest, sha256:<64 hex digits>.*fix:"):
        Marker.parse({"package": "api", "base_digest": digest})


# --- an image function's Dockerfile: the image its final stage builds FROM ------------------------

L = "public.ecr.aws/lambda/python"
# A name -> (Dockerfile, build arguments, the image its final stage builds FROM).
DOCKERFILES = {
    "plain": (f"FROM {L}:3.12\nCOPY . /var/task/\n", {}, f"{L}:3.12"),
    "build-arg": ("ARG BASE\nFROM ${BASE}\n", {"BASE": f"{L}:3.12"}, f"{L}:3.12"),
    "arg-default": (f"ARG PYTHON_VERSION=3.11\nFROM {L}:$PYTHON_VERSION\n", {}, f"{L}:3.11"),
    "build-arg-over-default": (
        f"ARG PYTHON_VERSION=3.11\nFROM {L}:${{PYTHON_VERSION}}\n",
        {"PYTHON_VERSION": "3.12"},
        f"{L}:3.12",
    ),
    "default-in-use": (f"ARG V\nFROM {L}:${{V:-3.12}}\n", {}, f"{L}:3.12"),
    "stage-alias": (f"FROM {L}:3.12 AS base\nRUN x\nFROM base\nCOPY . /var/task/\n", {}, f"{L}:3.12"),
    "builder-stage": (
        f"FROM python:3.11 AS build\nRUN pip wheel .\nFROM {L}:3.12\nCOPY --from=build / /\n",
        {},
        f"{L}:3.12",
    ),
    "platform-flag": (f"FROM --platform=$TARGETPLATFORM {L}:3.12-${{TARGETARCH}}\n", {}, f"{L}:3.12-amd64"),
    "comments-and-continuation": (
        f"# syntax=docker/dockerfile:1\n# FROM {L}:3.9\nFROM \\\n  {L}:3.12\n",
        {},
        f"{L}:3.12",
    ),
    "args-after-from-dont-count": (f"ARG V=3.11\nFROM scratch\nARG V=3.9\nFROM {L}:${{V}}\n", {}, f"{L}:3.11"),
    "unset-arg": ("ARG BASE\nFROM $BASE\n", {}, None),
    "no-from": ("COPY . /var/task/\n", {}, None),
}


@pytest.mark.parametrize(("dockerfile", "build_args", "base"), DOCKERFILES.values(), ids=DOCKERFILES)
def test_final_stage_base_image_is_read_as_docker_build_reads_it(dockerfile, build_args, base):
    assert final_base(dockerfile, build_args, "linux/amd64") == base


@pytest.mark.parametrize(
    ("reference", "python"),
    [
        ("public.ecr.aws/lambda/python:3.12", "3.12"),
        ("public.ecr.aws/lambda/python:3.11@sha256:" + "a" * 64, "3.11"),
        ("public.ecr.aws/lambda/python:3.13-arm64", "3.13"),
        ("public.ecr.aws/lambda/python:3.12.2025.01.08.12-x86_64", "3.12"),
        ("amazon/aws-lambda-python:3.10", "3.10"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecr-public/lambda/python:3.9", "3.9"),
        ("public.ecr.aws/lambda/python:latest", None),
        ("public.ecr.aws/lambda/python@sha256:" + "a" * 64, None),
        ("python:3.12", None),
        ("example.org/lambda/python2:3.12", None),
        (None, None),
    ],
)
def test_lambda_python_base_images_are_known_by_repository_and_tag(reference, python):
    """AWS's images (and their copies) say their Python in the tag; anything else is not judged."""
    assert lambda_python(reference) == python


def test_export_reads_the_lock_without_any_dependency_group_or_editables():
    """--no-default-groups, not --no-dev: a `lint` group in [tool.uv] default-groups is not deployed either."""
    args = export("uv", "api", "locked", Path("/w/req.txt"))
    assert args[:2] == ["uv", "export"]
    assert {"--package", "api", "--locked", "--no-default-groups", "--no-editable"} <= set(args)
    assert "--no-dev" not in args and not [a for a in args if a.startswith(("--group", "--extra", "--prune"))]


def test_export_adds_the_chosen_extras_and_groups_and_prunes_what_the_runtime_provides():
    args = export("uv", "api", "frozen", Path("/w/req.txt"), extras=["fast"], groups=["otel"], prune=["boto3"])
    assert {"--frozen", "--no-default-groups", "--extra=fast", "--group=otel", "--prune=boto3"} <= set(args)


def test_marker_data_chooses_extras_and_groups_normalized():
    """Extras and groups are names, compared as uv compares them; the typed helper writes the same data."""
    marker = Marker.parse({"package": "Api", "extras": ["Fast", "fast"], "groups": ["OTel_Export"]})
    assert (marker.package, marker.extras, marker.groups) == ("api", ("fast",), ("otel-export",))
    assert marker.as_data() == {"package": "api", "extras": ["fast"], "groups": ["otel-export"]}
    assert not marker.image_settings  # they apply to zip functions too


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"package": "api", "extras": "fast"}, "extras must be a list of names"),
        ({"package": "api", "groups": ["ok", "no way"]}, "groups must be names as pyproject.toml writes them"),
        ({"package": "api", "groups": [3]}, "groups must be names"),
    ],
)
def test_marker_with_bad_extras_or_groups_is_refused(data, says):
    with pytest.raises(MarkerError, match=rf"(?s){says}.*fix:"):
        Marker.parse(data)


def test_options_take_extras_and_groups_as_lists_of_names():
    assert UvOptions(groups=["OTel", "otel"], extras=("fast",)) == UvOptions(groups=["otel"], extras=["fast"])
    with pytest.raises(ValidationError, match="groups takes a list of names"):
        UvOptions(groups="otel")
    with pytest.raises(ValidationError, match="is not a name"):
        UvOptions(extras=["../x"])


def test_a_build_request_merges_options_and_marker_and_checks_them_against_the_package(tmp_path: Path):
    """Options apply to every function, a marker adds to them; each must exist in the package (uv.lock and
    pyproject.toml of tests/fixtures/groups), and the choices are part of the build key."""
    shutil.copytree(FIXTURES / "groups", tmp_path / "ws")
    workspace = Workspace.load(tmp_path / "ws")
    assert (workspace.package("shop").extras, workspace.package("shop").groups) == (("fast",), ("dev", "lint", "otel"))
    target = Target("3.12", "x86_64")
    plain = BuildRequest.create(workspace, "shop", target, UvOptions())
    chosen = BuildRequest.create(workspace, "shop", target, UvOptions(groups=["otel"]), extras=["Fast"])
    assert (chosen.extras, chosen.groups) == (("fast",), ("otel",))
    keys = {r.key("0.13.9") for r in (plain, chosen)}
    keys.add(BuildRequest.create(workspace, "shop", target, UvOptions(omit_runtime_provided=True)).key("0.13.9"))
    assert len(keys) == 3
    with pytest.raises(WorkspaceError) as error:
        BuildRequest.create(workspace, "basket", target, UvOptions(groups=["otel"]))
    assert_complete_error(
        str(error.value),
        construct=None,
        package="basket",
        target="python3.12 x86_64",
        fix="choose among the package's groups",
        also=["no dependency group 'otel' (from UvOptions(groups=...)", "its groups: none", "in their marker"],
    )


def test_the_closure_follows_the_chosen_groups_to_workspace_packages(tmp_path: Path):
    """A group that pulls in a workspace package puts that package's sources into the build key."""
    shutil.copytree(FIXTURES / "groups", tmp_path / "ws")
    root = tmp_path / "ws"
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        .replace('otel = ["idna"]', 'otel = ["idna", "cloud"]')
        .replace("basket = { workspace = true }", "basket = { workspace = true }\ncloud = { workspace = true }")
    )
    subprocess.run([Uv.locate(None).path, "lock", "--quiet"], cwd=root, check=True, env={**os.environ, **UV_ENV})
    workspace = Workspace.load(root)
    assert [p.name for p in workspace.closure("shop")] == ["basket", "shop"]
    assert [p.name for p in workspace.closure("shop", ("otel",))] == ["basket", "cloud", "shop"]


def test_locked_install_is_wheels_only_for_the_target_platform_and_hash_checked():
    args = install_locked("uv", Target("3.11", "arm64"), Path("/w/asset"), Path("/w/req.txt"))
    joined = " ".join(args)
    assert "--target /w/asset" in joined
    assert "--python-platform aarch64-manylinux2014" in joined
    assert "--python-version 3.11" in joined
    assert {"--no-build", "--require-hashes", "--no-deps"} <= set(args)


def test_local_packages_are_built_by_uv_build_from_a_copy_then_installed_as_wheels():
    """`uv build` always runs the backend: no wheel cached from older sources is reused."""
    args = build_wheel("uv", Path("/w/src/api"), Path("/w/wheels"))
    assert args[:3] == ["uv", "build", "--wheel"] and args[-1] == "/w/src/api"
    assert "--no-sources" in args
    install = install_wheels("uv", Target("3.12", "arm64"), Path("/a"), [Path("/w/wheels/api-0.1-py3-none-any.whl")])
    assert install[-1].endswith(".whl") and "aarch64-manylinux_2_34" in install


def test_bytecode_compiles_with_the_target_interpreter_for_var_task():
    args = compile_bytecode("/usr/bin/python3.12", Path("/w/asset"))
    assert args[0] == "/usr/bin/python3.12" and args[-2:] == ["/w/asset", "/var/task"]
    assert "UNCHECKED_HASH" in " ".join(args)


def test_exported_requirements_split_into_registry_and_local():
    text = (
        "./packages/api\n"
        "./packages/common\n"
        "    # via api\n"
        "orjson==3.11.5 ; python_full_version < '3.10' \\\n"
        "    --hash=sha256:aaa \\\n"
        "    --hash=sha256:bbb\n"
    )
    registry, local = split_requirements(text)
    assert local == ["./packages/api", "./packages/common"]
    assert registry.startswith("orjson==3.11.5") and "--hash=sha256:bbb" in registry


def test_progress_lines_of_builds_ending_together_never_share_a_line(monkeypatch: pytest.MonkeyPatch):
    """Builds run in threads and each says one line when it ends: every line arrives whole."""
    from cdk_uv_aspect._builds import say

    class SlowStream:
        """A stream that lets other threads run between two writes, as a busy terminal or pipe does."""

        def __init__(self) -> None:
            self.writes: list[str] = []

        def write(self, text: str) -> int:
            time.sleep(0.0005)
            self.writes.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    stream = SlowStream()
    monkeypatch.setattr(sys, "stderr", stream)
    threads = [threading.Thread(target=lambda i=i: [say(f"build {i}.{n}") for n in range(10)]) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = "".join(stream.writes).splitlines()
    assert sorted(lines) == sorted(f"build {i}.{n}" for i in range(4) for n in range(10))


def test_messages_are_plain_text_whatever_colours_a_tool_wrote():
    """uv's colour codes (when something forces them) never reach an error message."""
    error = ToolError(
        "uv said \x1b[1m\x1b[31merror\x1b[39m\x1b[0m\x1b[1m:\x1b[0m no",
        fix="fix it",
        details="  | \x1b[2mUsing CPython 3.12.1\x1b[0m\n  | \x1b]8;;https://x\x07link\x1b]8;;\x07",
    )
    assert "\x1b" not in str(error)
    assert "uv said error: no" in str(error) and "Using CPython 3.12.1" in str(error) and "link" in str(error)


def test_the_uv_range_pyproject_admits_starts_at_the_oldest_uv_the_code_accepts():
    """pyproject.toml's lower bound of uv is _uv.MIN_UV (what the oldest-uv pass tests is what a user may
    have), and the range has an upper bound: the newest minor release the suite passed on."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (uv,) = [Requirement(d) for d in dependencies if Requirement(d).name == "uv"]
    assert {(s.operator, s.version) for s in uv.specifier if s.operator == ">="} == {(">=", str(MIN_UV))}
    assert [s.operator for s in uv.specifier if s.operator == "<"] == ["<"]
