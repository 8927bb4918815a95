"""Fast unit tests: target mapping, marker parsing, option validation, uv command composition."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cdk_uv_aspect import UvOptions
from cdk_uv_aspect._errors import MarkerError, TargetError
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
        ("python3.9", "x86_64", "Amazon Linux 2", "2.26", "x86_64-manylinux2014"),
        ("python3.11", "arm64", "Amazon Linux 2", "2.26", "aarch64-manylinux2014"),
        ("python3.12", "x86_64", "Amazon Linux 2023", "2.34", "x86_64-manylinux_2_34"),
        ("python3.13", "arm64", "Amazon Linux 2023", "2.34", "aarch64-manylinux_2_34"),
        ("python3.14", "x86_64", "Amazon Linux 2023", "2.34", "x86_64-manylinux_2_34"),
    ],
)
def test_runtime_and_architecture_map_to_os_glibc_and_uv_platform(runtime, arch, os_name, glibc, platform):
    """Each Lambda Python runtime runs on a known Amazon Linux: its glibc decides the wheels."""
    target = target_of(runtime, True, arch, where="S/F")
    assert (target.python, target.os, target.glibc, target.python_platform) == (
        runtime.removeprefix("python"),
        os_name,
        glibc,
        platform,
    )


def test_target_describes_itself_for_error_messages():
    assert str(Target("3.12", "arm64")) == "python3.12 arm64 (Amazon Linux 2023, glibc 2.34)"


@pytest.mark.parametrize("runtime", ["nodejs20.x", "java21", "provided.al2023", "FROM_IMAGE"])
def test_non_python_runtime_is_refused_with_the_construct_path(runtime):
    with pytest.raises(TargetError, match=r"(?s)not a Python runtime.*construct: S/F.*fix:"):
        target_of(runtime, False, "x86_64", where="S/F")


@pytest.mark.parametrize(
    ("data", "package"), [("api", "api"), ("My_Pkg.Name", "my-pkg-name"), ({"package": "api"}, "api")]
)
def test_marker_data_names_a_normalized_package(data, package):
    assert package_of(data, where="S/F") == package


@pytest.mark.parametrize(
    "data",
    [None, 42, ["api"], {"name": "api"}, "", "../etc", "a/b", "api; rm -rf /", "$(id)", "\u0430pi", "api ", "-api"],
)
def test_marker_with_bad_data_is_refused_naming_the_construct(data):
    """Wrong types, path separators, shell metacharacters, look-alike letters: refused before use."""
    with pytest.raises(MarkerError, match=r"(?s)must be a package name.*construct: S/F"):
        package_of(data, where="S/F")


def test_options_have_documented_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CDK_UV_CACHE_DIR", str(tmp_path))
    options = UvOptions()
    assert (options.workspace, options.lock, options.exclude, options.bytecode, options.uv) == (
        None,
        "locked",
        (),
        True,
        None,
    )
    assert options.cache_dir == tmp_path


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
