"""uv's command lines: what is exported from the lock, installed for the target, built from a copy, compiled."""

from __future__ import annotations

import tomllib
from pathlib import Path

from helpers import REPO
from packaging.requirements import Requirement

from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import (
    MIN_UV,
    build_wheel,
    compile_bytecode,
    export,
    install_locked,
    install_wheels,
    split_requirements,
)


def test_export_reads_the_lock_without_any_dependency_group_or_editables():
    """--no-default-groups, not --no-dev: a `lint` group in [tool.uv] default-groups is not deployed either."""
    args = export("uv", "api", "locked", Path("/w/req.txt"))
    assert args[:2] == ["uv", "export"]
    assert {"--package", "api", "--locked", "--no-default-groups", "--no-editable"} <= set(args)
    assert "--no-dev" not in args and not [a for a in args if a.startswith(("--group", "--extra", "--prune"))]


def test_export_adds_the_chosen_extras_and_groups_and_prunes_what_the_runtime_provides():
    args = export("uv", "api", "frozen", Path("/w/req.txt"), extras=["fast"], groups=["otel"], prune=["boto3"])
    assert {"--frozen", "--no-default-groups", "--extra=fast", "--group=otel", "--prune=boto3"} <= set(args)


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


def test_the_uv_range_pyproject_admits_starts_at_the_oldest_uv_the_code_accepts():
    """pyproject.toml's lower bound of uv is _uv.MIN_UV (what the oldest-uv pass tests is what a user may
    have), and the range has an upper bound: the newest minor release the suite passed on."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (uv,) = [Requirement(d) for d in dependencies if Requirement(d).name == "uv"]
    assert {(s.operator, s.version) for s in uv.specifier if s.operator == ">="} == {(">=", str(MIN_UV))}
    assert [s.operator for s in uv.specifier if s.operator == "<"] == ["<"]
