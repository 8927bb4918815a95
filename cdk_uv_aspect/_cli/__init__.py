"""cdk-uv: build what the bundling aspect builds, and look at and run what it built, without deploying.

`cdk-uv COMMAND --help` says what each command takes.

exit codes:
  0  success
  1  the handler (or its init) raised, the run changed the assembly, the build failed (the message
     says why and what to do), or a build differs from what the caches served (verify)
  2  bad input: unknown option, unknown or ambiguous function or package, no cloud assembly or one
     whose files can't be read (the message names the file), an event that is not JSON or over 6 MB,
     a bad --env or env file, an output folder that is not empty, a setting ($CDK_UV_...) that
     can't be used
  3  the function can't run on this machine (another architecture's native code without qemu-user
     emulation, no interpreter of the runtime's Python version, no container engine for an image
     function)
  130 interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM)

Errors are printed without a Python traceback; --debug shows it.
"""

from __future__ import annotations

import argparse
import sys

from . import build, cache, invoke, profile, report, verify
from .common import EXIT_CANNOT_RUN, EXIT_FAILED, EXIT_USAGE, CannotRun, UsageError


def main(argv: list[str] | None = None) -> int:
    """Run one command: every failure is printed as a message naming what failed and why (the file, for a
    file), with the exit code it means; ``--debug`` raises it instead, with its traceback."""
    from .. import _state
    from .._signals import interruptible

    parser = _parser()
    options = parser.parse_args(argv)
    _state.COMMAND_LINE.set()  # errors' fixes name this command's flags (--workspace), not UvOptions
    try:
        # SIGINT/SIGTERM end every command started here (uv, the handler) and remove private folders;
        # SIGTERM then exits with 143.
        with interruptible():
            code: int = options.run(options)
        return code
    except UsageError as exc:
        print(f"cdk-uv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CannotRun as exc:
        print(f"cdk-uv: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the one boundary: whatever it is, a message and an exit code
        if getattr(options, "debug", False):
            raise
        from .._errors import AssemblyError, SettingError

        error = _as_error(exc)
        print(error, file=sys.stderr)
        return EXIT_USAGE if isinstance(error, (AssemblyError, SettingError)) else EXIT_FAILED
    finally:
        _state.COMMAND_LINE.clear()


def _as_error(exc: Exception) -> Exception:
    """The error a user reads: ours as it is, a file's naming the file and why, anything else as a bug."""
    from .._errors import UnexpectedError, UvError
    from .._files import file_error

    if isinstance(exc, UvError):
        return exc
    if isinstance(exc, (OSError, UnicodeError)):
        return file_error(exc)
    return UnexpectedError(
        f"an unexpected {type(exc).__name__}: {exc}",
        fix="this is a bug in cdk-uv-aspect: run the command again with --debug and report what it prints to "
        "its maintainers",
    )


def _parser() -> argparse.ArgumentParser:
    # --debug is accepted before or after the command; SUPPRESS keeps a subcommand's default from
    # overwriting a --debug given before it (the parsers share this one action: no set_defaults on it).
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the Python traceback of an error"
    )
    parser = argparse.ArgumentParser(
        prog="cdk-uv", description=__doc__, parents=[debug], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # The commands, each with its help line, listed once: by argparse, under this title.
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    for command in (build, report, invoke, profile, verify, cache):
        command.add_parser(commands, debug)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
