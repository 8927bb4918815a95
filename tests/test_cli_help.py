"""`cdk-uv --help` and each command's: every command listed once, each text within a terminal's width."""

from __future__ import annotations

import re

import pytest

COMMANDS = ("build", "report", "invoke", "profile", "verify", "cache")


def cli_help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from cdk_uv_aspect._cli import main

    with pytest.raises(SystemExit) as done:
        main([*args, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_cli_help_lists_each_command_once_with_its_line(capsys: pytest.CaptureFixture[str]):
    text = cli_help(capsys)
    for command in COMMANDS:
        listed = re.findall(rf"^ +{command} {{2,}}\S", text, flags=re.M)  # a listing: the name, then a column
        assert len(listed) == 1, f"{command} is listed {len(listed)} times:\n{text}"


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_cli_help_fits_a_terminal(command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Every line of every command's help within 100 columns (argparse wraps at the terminal's width)."""
    monkeypatch.setenv("COLUMNS", "100")
    text = cli_help(capsys, *filter(None, [command]))
    long = [line for line in text.splitlines() if len(line) > 100]
    assert long == [], long


def test_cache_help_says_what_info_and_prune_do(capsys: pytest.CaptureFixture[str]):
    text = cli_help(capsys, "cache")
    assert re.search(r"^ +info +print where the build cache is", text, flags=re.M), text
    assert re.search(r"^ +prune +remove the builds and wheels no synth used", text, flags=re.M), text
