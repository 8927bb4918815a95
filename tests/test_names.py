"""Names and versions, read one way everywhere: package names, pinned requirements, Python versions."""

from __future__ import annotations

import pytest

from cdk_uv_aspect import UvOptions
from cdk_uv_aspect._errors import MarkerError
from cdk_uv_aspect._marker import Marker
from cdk_uv_aspect._names import is_name, is_python_version, normalize, pinned, pins


def test_names_are_normalized_as_uv_lock_writes_them():
    """PEP 503: runs of ``-``, ``_`` and ``.`` become one ``-``, letters lower case."""
    assert normalize("Foo_Bar.baz") == normalize("foo--bar-BAZ") == "foo-bar-baz"


@pytest.mark.parametrize(
    ("requirement", "pin"),
    [
        ("orjson==3.11.5 \\", ("orjson", "3.11.5")),
        ("    Typing_Extensions==4.12.2 ; python_full_version < '3.13' \\", ("typing-extensions", "4.12.2")),
        ("boto3[crt]==1.35.0 \\", ("boto3", "1.35.0")),
        ("./packages/api", None),
        ("orjson>=3", None),
        ("    --hash=sha256:aaa", None),
    ],
)
def test_a_pinned_requirement_is_read_with_its_extras_markers_and_hashes(requirement: str, pin: tuple | None):
    """What ``uv export`` writes: the name (normalized) and version of a pin; nothing for a path or a range."""
    assert pinned(requirement) == pin


def test_pins_of_an_export_include_requirements_with_extras():
    """A dependency exported with an extra (``boto3[crt]``) is a pin like any other: when it is left to the
    runtime, the runtime-SDK check knows its locked version."""
    exported = (
        "boto3[crt]==1.35.0 \\\n    --hash=sha256:aaa\nBotoCore==1.35.0 \\\n    --hash=sha256:bbb\n./packages/api\n"
    )
    assert pins(exported) == {"boto3": "1.35.0", "botocore": "1.35.0"}


@pytest.mark.parametrize("value", ["orders\n", "orders ", "-orders", "ördərs", "a/b", "..", ""])
def test_a_name_is_matched_whole(value: str):
    """Nothing before or after a name passes: not a trailing line break, space, or a path."""
    assert not is_name(value)
    with pytest.raises(MarkerError):
        Marker.parse(value)


@pytest.mark.parametrize("value", ["3.12\n", "3", "3.12.1", "python3.12", "2.7", 3.12])
def test_a_python_version_is_a_minor_version_of_python_3(value: object):
    """Markers and options take ``3.12``; anything else is refused the same way by both."""
    assert not is_python_version(value)
    with pytest.raises(MarkerError):
        Marker.parse({"package": "api", "python": value})
    with pytest.raises(ValueError):
        UvOptions(image_python=value)  # type: ignore[arg-type]


def test_the_same_python_version_passes_markers_and_options():
    assert is_python_version("3.13")
    assert Marker.parse({"package": "api", "python": "3.13"}).python == "3.13"
    assert UvOptions(image_python="3.13", base_image_digests={"3.13": "sha256:" + "0" * 64}).image_python == "3.13"
