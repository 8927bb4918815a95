"""Fast unit tests: target mapping, marker parsing, option validation, uv command composition."""

from __future__ import annotations

import ast
import datetime
import re
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO
from pydantic import ValidationError

from cdk_uv_aspect import UvOptions
from cdk_uv_aspect._errors import MarkerError, TargetError, ToolError
from cdk_uv_aspect._marker import package_of
from cdk_uv_aspect._target import Target, target_of
from cdk_uv_aspect._uv import (
    build_wheel,
    compile_bytecode,
    export,
    install_locked,
    install_wheels,
    split_requirements,
)


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
    assert {"python3.8", "python3.12", "python3.13"} <= pythons
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


@pytest.mark.parametrize(
    "data",
    [None, 42, ["api"], {"name": "api"}, "", "../etc", "a/b", "api; rm -rf /", "$(id)", "\u0430pi", "api ", "-api"],
)
def test_marker_with_bad_data_is_refused(data):
    """Wrong types, path separators, shell metacharacters, look-alike letters: refused before use."""
    with pytest.raises(MarkerError, match=r"(?s)(must be a package name|unknown keys).*fix:"):
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
    ],
)
def test_bad_options_fail_when_constructed(fields, message):
    with pytest.raises(ValidationError, match=message):
        UvOptions(**fields)


def test_export_reads_the_lock_without_dev_groups_or_editables():
    args = export("uv", "api", "locked", Path("/w/req.txt"))
    assert args[:2] == ["uv", "export"]
    assert {"--package", "api", "--locked", "--no-dev", "--no-editable"} <= set(args)


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
    from cdk_uv_aspect._aspect import _say

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
    threads = [threading.Thread(target=lambda i=i: [_say(f"build {i}.{n}") for n in range(10)]) for i in range(4)]
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
