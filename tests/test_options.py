"""Options: UvOptions as docs/options.md documents it, bad values refused when constructed, boolean variables
read one way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from helpers import REPO
from pydantic import ValidationError

from cdk_uv_aspect._env import env_flag
from cdk_uv_aspect._errors import SettingError
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._target import target_of


def readme_options() -> dict[str, str]:
    """Option name -> its default column, from the options table (docs/options.md, linked from the README)."""
    rows = {}
    for line in (REPO / "docs" / "options.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`[a-z_]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_every_option_is_documented_with_its_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The options table and UvOptions agree: the same fields, and each literal default as stated."""
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
            assert UvOptions(**{name: value}) == defaults, f"{name}: docs/options.md says {literal}"
        else:  # a computed default: the variables it reads are named where the table states it
            for variable in re.findall(r"\$[A-Z_]+", field.description or ""):
                assert variable in documented[name], f"{name}: docs/options.md does not name {variable}"
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


def test_options_take_extras_and_groups_as_lists_of_names():
    assert UvOptions(groups=["OTel", "otel"], extras=("fast",)) == UvOptions(groups=["otel"], extras=["fast"])
    with pytest.raises(ValidationError, match="groups takes a list of names"):
        UvOptions(groups="otel")
    with pytest.raises(ValidationError, match="is not a name"):
        UvOptions(extras=["../x"])


@pytest.mark.parametrize(
    ("value", "meaning"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("On", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("OFF", False),
        ("", False),
        (None, False),
    ],
)
def test_boolean_variables_are_read_one_way(monkeypatch: pytest.MonkeyPatch, value: str | None, meaning: bool):
    """1/true/yes/on and 0/false/no/off/empty/unset, any case: CDK_UV_REBUILD and env_flag agree."""
    if value is None:
        monkeypatch.delenv("CDK_UV_REBUILD", raising=False)
    else:
        monkeypatch.setenv("CDK_UV_REBUILD", value)
    assert env_flag("CDK_UV_REBUILD") is meaning
    assert UvOptions().rebuild is meaning


@pytest.mark.parametrize("value", ["2", "maybe", "y", "enable", "-1", "truee"])
def test_a_boolean_variable_that_is_neither_is_refused(monkeypatch: pytest.MonkeyPatch, value: str):
    """Not silently on (as "maybe" was) or off: refused, naming the variable, its value and what it takes."""
    monkeypatch.setenv("CDK_UV_REBUILD", value)
    with pytest.raises(SettingError) as error:
        UvOptions()
    message = str(error.value)
    assert f"$CDK_UV_REBUILD is {value!r}" in message and "1, true, yes or on" in message and "fix:" in message


# --- new runtimes -------------------------------------------------------------------------------------


def test_new_runtimes_declare_an_os_lambda_names_and_never_contradict_the_table():
    assert UvOptions(new_runtimes={"python3.15": "al2023"}).new_runtimes == (("python3.15", "al2023"),)
    assert UvOptions(new_runtimes={"python3.12": "al2023"}).new_runtimes == ()  # known already, and alike
    for bad, says in [
        ({"python3.12": "al2"}, "python3.12 runs on Amazon Linux 2023, not Amazon Linux 2"),
        ({"python3.15": "amazonlinux"}, "must be one of al2, al2023"),
        ({"nodejs24.x": "al2023"}, "runtime names such as 'python3.15'"),
    ]:
        with pytest.raises(ValidationError, match=re.escape(says)):
            UvOptions(new_runtimes=bad)
    target = target_of("python3.15", "arm64", new_runtimes={"python3.15": "al2"})
    assert str(target) == "python3.15 arm64 (Amazon Linux 2, glibc 2.26)"
    assert target.python_platform == "aarch64-manylinux2014"
