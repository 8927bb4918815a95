"""Runner: every subprocess (uv, the target's Python) goes through here, as an argument list."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("cdk_uv_aspect")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        """The command, its exit status and its stderr, for an error message."""
        shown = " ".join(self.args)
        return f"  command:   {shown}\n  exit code: {self.returncode}\n" + "\n".join(
            "  | " + line for line in (self.stderr.strip() or self.stdout.strip()).splitlines()[-40:]
        )


class Runner:
    """Runs a command and returns its result; tests replace it to reach errors a real tool can't."""

    def run(self, args: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Result:
        full_env = {**os.environ, **(env or {})}
        try:
            done = subprocess.run(list(args), cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
        except OSError as exc:
            result = Result(tuple(args), 127, "", f"{args[0]}: {exc.strerror}")
        else:
            result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
        log.debug("%s -> %s\n%s%s", " ".join(args), result.returncode, result.stdout, result.stderr)
        return result
