"""Markers: the data of `uv` metadata names a package (and its extras, groups, image settings) or is refused."""

from __future__ import annotations

import pytest

from cdk_uv_aspect._errors import MarkerError
from cdk_uv_aspect._marker import Marker, package_of


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


@pytest.mark.parametrize(
    "digest", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha512:" + "a" * 64, "a" * 64, 42, ["sha256:" + "a" * 64]]
)
def test_marker_base_digest_that_is_not_a_sha256_digest_is_refused(digest):
    with pytest.raises(MarkerError, match=r"(?s)base_digest must be an image digest, sha256:<64 hex digits>.*fix:"):
        Marker.parse({"package": "api", "base_digest": digest})


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


@pytest.mark.parametrize("budget", [0, -5, "300", True, None])
def test_marker_init_budget_must_be_milliseconds_above_zero(budget):
    """The marker's init_budget_ms: a number above 0 (None: no key at all, the options' budget applies)."""
    if budget is None:
        assert Marker.parse({"package": "api"}).init_budget_ms is None
        return
    with pytest.raises(MarkerError, match=r"(?s)init_budget_ms must be a number of milliseconds above 0.*fix:"):
        Marker.parse({"package": "api", "init_budget_ms": budget})


def test_marker_init_budget_round_trips():
    marker = Marker.parse({"package": "Api", "init_budget_ms": 250})
    assert marker.init_budget_ms == 250
    assert marker.as_data() == {"package": "api", "init_budget_ms": 250}
