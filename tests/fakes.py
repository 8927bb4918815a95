"""The one fake runner: the real runner, except for the commands a test scripts. Every call is recorded.

For error paths a real tool can't reach (an index that fails, a Docker engine this machine lacks)::

    runner = ScriptedRunner().when(uv_command("pip", "install"), fail(2, "error: Failed to fetch ..."))
    build(request, runner)
    assert runner.calls_to(uv_command("build"))
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cdk_uv_aspect._runner import Result, Runner

Matcher = Callable[[list[str]], bool]
Answer = Callable[[list[str]], Result]


def uv_command(*words: str) -> Matcher:
    """Matches a uv call whose first arguments are ``words``: ``uv_command("pip", "install")``."""
    return lambda args: Path(args[0]).name.startswith("uv") and args[1 : 1 + len(words)] == list(words)


def program(name: str) -> Matcher:
    """Matches any call of the program ``name`` (``docker``, ``podman``)."""
    return lambda args: Path(args[0]).name == name


def fail(returncode: int, stderr: str, stdout: str = "") -> Answer:
    return lambda args: Result(tuple(args), returncode, stdout, stderr)


def succeed(stdout: str = "") -> Answer:
    return lambda args: Result(tuple(args), 0, stdout, "")


class ScriptedRunner(Runner):
    """Runs real commands, except those matched by ``when``: the first matching rule answers."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []  # what each call added to the environment, by call
        self._rules: list[tuple[Matcher, Answer]] = []

    def when(self, matches: Matcher, answer: Answer) -> ScriptedRunner:
        self._rules.append((matches, answer))
        return self

    def calls_to(self, matches: Matcher) -> list[list[str]]:
        return [call for call in self.calls if matches(call)]

    def run(self, args: Sequence[str], **kwargs: Any) -> Result:
        call = [str(a) for a in args]
        self.calls.append(call)
        self.envs.append(dict(kwargs.get("env") or {}))
        for matches, answer in self._rules:
            if matches(call):
                return answer(call)
        return super().run(call, **kwargs)


def mount_source(args: list[str], target: str) -> str:
    """The host path a ``docker run --mount type=bind,source=...,target=<target>`` binds."""
    for flag, value in itertools.pairwise(args):
        if flag == "--mount" and f"target={target}" in value:
            fields: dict[str, Any] = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
            return str(fields["source"])
    raise AssertionError(f"no mount at {target}: {args}")
