"""Targets: each Lambda Python runtime and architecture maps to its Amazon Linux, glibc and uv platform."""

from __future__ import annotations

import datetime

import pytest

from cdk_uv_aspect._errors import TargetError
from cdk_uv_aspect._target import Target, target_of


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
