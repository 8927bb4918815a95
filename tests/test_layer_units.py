"""Which wheel tags load on a Lambda runtime: the check a layer spanning several runtimes passes (no build)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk_uv_aspect._derive import _source_of, unloadable
from cdk_uv_aspect._target import Target

AL2_311 = Target("3.11", "x86_64")  # Amazon Linux 2, glibc 2.26
AL2023_312 = Target("3.12", "x86_64")  # Amazon Linux 2023, glibc 2.34
AL2023_313_ARM = Target("3.13", "arm64")


@pytest.mark.parametrize(
    ("tag", "target", "loads"),
    [
        ("py3-none-any", AL2_311, True),
        ("py2.py3-none-any", AL2023_313_ARM, True),
        ("cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64", AL2023_312, True),
        ("cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64", Target("3.13", "x86_64"), False),
        ("cp311-cp311-manylinux_2_28_x86_64", AL2_311, False),  # glibc 2.28 > 2.26
        ("cp311-cp311-manylinux2014_x86_64", AL2_311, True),
        ("cp39-abi3-manylinux2014_x86_64", AL2023_312, True),
        ("cp312-abi3-manylinux2014_x86_64", AL2_311, False),  # abi3 from 3.12 up
        ("cp312-cp312-manylinux2014_aarch64", AL2023_312, False),  # the other architecture
        ("cp313-cp313-manylinux2014_aarch64", AL2023_313_ARM, True),
        ("cp312-cp312-musllinux_1_2_x86_64", AL2023_312, False),
    ],
)
def test_a_wheel_tag_loads_where_its_python_abi_glibc_and_architecture_allow(
    tmp_path: Path, tag: str, target: Target, loads: bool
):
    dist = tmp_path / "pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "WHEEL").write_text(f"Wheel-Version: 1.0\nTag: {tag}\n")
    refused = unloadable(tmp_path, [target])
    assert refused == ([] if loads else [f"pkg-1.0 ({tag}) on {target}"])


def test_bytecode_belongs_to_its_source():
    assert _source_of("orjson/__pycache__/__init__.cpython-312.pyc") == "orjson/__init__.py"
    assert _source_of("__pycache__/six.cpython-312.opt-1.pyc") == "six.py"
    assert _source_of("orjson/__init__.py") is None
