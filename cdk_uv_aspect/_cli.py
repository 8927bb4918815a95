"""cdk-uv: build what the bundling aspect builds, and look at and run what it built, without deploying.

commands:
  build PACKAGE               build a workspace package for a Lambda target, as the aspect does
  report [CDK_OUT]            every Lambda function of a synthesized assembly and what was built for it
  invoke [CDK_OUT] FUNCTION   run a synthesized function's handler locally, from its asset alone

exit codes:
  0  success
  1  the handler raised, or the build failed (the message says why and what to do)
  2  bad usage: unknown option, unknown or ambiguous function or package, no cloud assembly,
     an event that is not JSON, an output folder that is not empty
  3  the function can't run on this machine (another architecture's native code, no interpreter
     of the runtime's Python version)
  130 interrupted

Errors are printed without a Python traceback; --debug shows it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._assembly import AssemblyFunction, functions

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3


class UsageError(Exception):
    """Bad input from the command line: exit code 2, no traceback."""


class CannotRun(Exception):
    """The function can't run on this machine: exit code 3."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    options = parser.parse_args(argv)
    try:
        return options.run(options)
    except UsageError as exc:
        print(f"cdk-uv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CannotRun as exc:
        print(f"cdk-uv: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if getattr(options, "debug", False):
            raise
        from ._errors import UvError

        # UvErrors are complete messages (problem, package, target, fix); anything else gets a prefix.
        message = str(exc) if isinstance(exc, UvError) else f"cdk-uv: {type(exc).__name__}: {exc}"
        print(message, file=sys.stderr)
        return EXIT_FAILED


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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        parents=[debug],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="build a workspace package for a Lambda target, as the aspect does at synthesis",
        description="Build PACKAGE's locked runtime closure for a Lambda target with uv, exactly as "
        "UvBundlingAspect does at synthesis (same build, same build cache), outside CDK: for debugging, "
        "other deployment tools, or CI artefacts. Prints a progress line on stderr and the path of the "
        "result on stdout: the zip, the --out folder, or the built folder in the build cache (read only).",
        epilog="examples:\n"
        "  cdk-uv build orders --python 3.12 --arch arm64 --zip dist/orders.zip\n"
        "  cdk-uv build report --python 3.13 --out build/report --force\n"
        "The build cache is $CDK_UV_CACHE_DIR, else $XDG_CACHE_HOME/cdk-uv-aspect, else "
        "~/.cache/cdk-uv-aspect.",
    )
    build.add_argument("package", metavar="PACKAGE", help="the workspace package (its name in pyproject.toml)")
    build.add_argument(
        "--python",
        default="3.12",
        metavar="X.Y",
        help="the Lambda runtime's Python version, e.g. 3.12 or python3.12 (default: 3.12)",
    )
    build.add_argument(
        "--arch",
        default="x86_64",
        choices=["x86_64", "arm64"],
        help="the function's architecture (default: x86_64, as in Lambda)",
    )
    where = build.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="copy the built folder to DIR (refused if DIR is not empty, unless --force)",
    )
    where.add_argument(
        "--zip",
        type=Path,
        metavar="FILE",
        help="write a deterministic zip (sorted entries, fixed dates and modes) to FILE",
    )
    build.add_argument("--force", action="store_true", help="with --out: replace what DIR holds")
    build.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="the uv workspace or project: the folder with its uv.lock (default: the "
        "nearest folder with a uv.lock, upward from the current directory)",
    )
    build.add_argument(
        "--frozen", action="store_true", help="use uv.lock without checking it against pyproject.toml (uv --frozen)"
    )
    build.add_argument("--no-bytecode", action="store_true", help="do not compile .pyc files")
    build.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave files matching GLOB (asset-relative, e.g. '*/tests/*') out; repeatable",
    )
    build.set_defaults(run=_build)

    report = commands.add_parser(
        "report",
        parents=[debug],
        help="every Lambda function of a synthesized assembly and what was built for it",
        description="A table of every Lambda function in the cloud assembly (nested stages included): "
        "construct path, uv package (or 'not uv-built'), target, asset hash, size unzipped and zipped, "
        "file count, build time and whether the build came from the build cache.",
    )
    report.add_argument(
        "cdk_out",
        nargs="?",
        default=Path("cdk.out"),
        type=Path,
        metavar="CDK_OUT",
        help="the cloud assembly folder (default: cdk.out)",
    )
    report.add_argument("--json", action="store_true", help="print a JSON list with full values instead")
    report.set_defaults(run=_report)
    _add_cache_command(commands, debug)

    run = commands.add_parser(
        "invoke",
        parents=[debug],
        help="run a synthesized function's handler locally, from its asset alone",
        description="Run a function's handler the way the Lambda Python runtime would: with the "
        "runtime's Python version, only the asset folder and the standard library importable, the "
        "function's literal environment variables, a context object with the usual attributes, and "
        "the event as JSON. Prints the result as JSON on stdout and the duration on stderr; when the "
        "handler raises, prints its traceback and exits 1.",
        epilog="FUNCTION is a construct path (UvSample/Orders), its last part(s) (Orders), or any unique "
        "part of it; an unknown or ambiguous name lists the candidates.",
    )
    run.add_argument(
        "args", nargs="+", metavar="[CDK_OUT] FUNCTION", help="the assembly folder (default: cdk.out) and the function"
    )
    run.add_argument(
        "--event",
        default=None,
        metavar="FILE",
        help="a JSON file with the event, or - for standard input (default: {})",
    )
    run.set_defaults(run=_invoke)
    return parser


# --- build ----------------------------------------------------------------------------------------


def _build(options: argparse.Namespace) -> int:
    from ._archive import copy_folder, write_zip
    from ._aspect import progress_line
    from ._build import BuildRequest, build
    from ._errors import UvError
    from ._marker import package_of
    from ._options import UvOptions
    from ._target import target_of
    from ._workspace import Workspace

    python = options.python.removeprefix("python")
    try:
        package = package_of(options.package, where="cdk-uv build")
        target = target_of(f"python{python}", True, options.arch, where="cdk-uv build")
    except UvError as exc:
        raise UsageError(exc.problem) from None
    uv_options = UvOptions(
        workspace=options.workspace,
        lock="frozen" if options.frozen else "locked",
        bytecode=not options.no_bytecode,
        exclude=tuple(options.exclude),
    )
    workspace = Workspace.find(uv_options.workspace)
    if package not in workspace.packages:
        known = ", ".join(sorted(workspace.packages)) or "none"
        raise UsageError(
            f"package {options.package!r} is not in the workspace at {workspace.root} (its packages: {known})"
        )
    if options.zip is not None and options.zip.is_dir():
        raise UsageError(f"--zip {options.zip} is a folder; give the path of the zip file to write")
    if options.out is not None:
        _check_out(options.out, force=options.force, keep=[workspace.root, uv_options.cache_dir])

    built = build(BuildRequest(workspace, package, target, uv_options), log=lambda line: print(line, file=sys.stderr))
    print(progress_line(built), file=sys.stderr, flush=True)
    info = json.loads((built.folder / "build.json").read_text())
    summary = f"{package} for {target}: {info['files']} files, {_size(info['bytes'])}"
    if options.zip is not None:
        zipped = write_zip(built.asset_dir, options.zip)
        print(f"{summary} ({_size(zipped)} zipped)", file=sys.stderr)
        print(options.zip)
    elif options.out is not None:
        copy_folder(built.asset_dir, options.out, replace=options.force)
        print(summary, file=sys.stderr)
        print(options.out)
    else:
        print(f"{summary} (in the build cache: read it, do not change it)", file=sys.stderr)
        print(built.asset_dir)
    return EXIT_OK


def _check_out(out: Path, *, force: bool, keep: list[Path]) -> None:
    """Refuse an --out that would overwrite something: a non-empty folder, or one holding the sources."""
    target = out.expanduser().absolute().resolve()
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not force:
        raise UsageError(
            f"--out {out} is not empty; choose an empty or new folder, or add --force to replace what it holds"
        )
    # --force replaces the folder whole: never when it holds the workspace, the build cache or the
    # current directory (a typo such as `--out .` must not delete the sources).
    for precious in [*keep, Path.cwd(), Path.home()]:
        p = precious.absolute().resolve()
        if target == p or target in p.parents:
            raise UsageError(f"--out {out} holds {p}; --force would delete it. Choose a folder of its own.")


# --- cache ----------------------------------------------------------------------------------------


def _add_cache_command(commands: argparse._SubParsersAction, debug: argparse.ArgumentParser) -> None:
    cache = commands.add_parser("cache", parents=[debug], help="where the build cache is, what it holds; prune it")
    cache.set_defaults(run=_cache)
    cache.add_argument("action", choices=["info", "prune"])
    cache.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="default: $CDK_UV_CACHE_DIR, else $XDG_CACHE_HOME/cdk-uv-aspect, else ~/.cache/cdk-uv-aspect",
    )
    cache.add_argument(
        "--older-than",
        type=float,
        default=30,
        metavar="DAYS",
        help="prune: remove builds no synth used for DAYS days (default 30; 0 removes all)",
    )


def _cache(options: argparse.Namespace) -> int:
    from ._cache import entries, prune
    from ._options import default_cache_dir

    cache_dir = (options.cache_dir or default_cache_dir()).expanduser().absolute()
    if options.action == "prune":
        removed = prune(cache_dir, options.older_than)
        print(f"removed {len(removed)} entries unused for {options.older_than:g} days from {cache_dir}")
        return 0
    found = entries(cache_dir)
    size = sum(e.bytes for e in found)
    builds, wheels = (sum(e.complete and e.kind == kind for e in found) for kind in ("builds", "wheels"))
    print(f"{cache_dir}: {builds} build(s), {wheels} local wheel(s), {_size(size) if size else '0 kB'}")
    return 0


# --- report ---------------------------------------------------------------------------------------


def _load(cdk_out: Path) -> list[AssemblyFunction]:
    if not (cdk_out / "manifest.json").is_file():
        raise UsageError(
            f"{cdk_out} is not a cloud assembly (no manifest.json): run `cdk synth` first, "
            "or give the assembly folder (cdk synth --output DIR)"
        )
    return functions(cdk_out)


def _report(options: argparse.Namespace) -> int:
    records = [_record(fn) for fn in _load(options.cdk_out)]
    if options.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    rows = [
        {
            "function": r["function"],
            "package": r["package"] or "not uv-built",
            "target": r["target"],
            "asset": (r["assetHash"] or "-")[:12],
            "unzipped": _size(r["bytes"]),
            "zipped": _size(r["zippedBytes"]),
            "files": "-" if r["files"] is None else r["files"],
            "build": "-" if r["buildSeconds"] is None else f"{r['buildSeconds']:.1f}s",
            "cache hit": {True: "yes", False: "no"}.get(r["cached"], "-"),
        }
        for r in records
    ]
    print(_table(rows))
    return EXIT_OK


def _record(fn: AssemblyFunction) -> dict[str, Any]:
    """What the report says about one function, with full values (the JSON form)."""
    from ._archive import files_of, write_zip

    build = fn.build or {}
    files = bytes_ = zipped = None
    if fn.asset_dir is not None:
        found = files_of(fn.asset_dir)
        files, bytes_ = len(found), sum(p.stat().st_size for p in found)
        # The size of the zip `cdk-uv build --zip` writes; the CDK's own zip differs by a few bytes.
        with tempfile.TemporaryDirectory() as tmp:
            zipped = write_zip(fn.asset_dir, Path(tmp, "asset.zip"))
    runtime_key = f"{fn.runtime}-{fn.architecture}" if fn.runtime else fn.package_type
    return {
        "function": fn.path,
        "stack": fn.stack,
        "package": build.get("package") or None,
        "target": build.get("target") or runtime_key,
        "handler": fn.handler,
        "assetHash": build.get("assetHash") or (fn.asset_dir.name.removeprefix("asset.") if fn.asset_dir else None),
        "assetDir": str(fn.asset_dir) if fn.asset_dir else None,
        "bytes": build.get("bytes", bytes_),
        "zippedBytes": zipped,
        "files": build.get("files", files),
        "buildSeconds": build.get("buildSeconds"),
        "cached": build.get("cached"),
    }


# --- invoke ---------------------------------------------------------------------------------------


def _invoke(options: argparse.Namespace) -> int:
    from ._invoke import CannotRunHere, invoke
    from ._uv import Uv, find_python

    if len(options.args) > 2:
        extra = " ".join(options.args[2:])
        raise UsageError(f"invoke takes [CDK_OUT] FUNCTION; {extra!r} is one argument too many")
    cdk_out, name = (
        (Path(options.args[0]), options.args[1]) if len(options.args) == 2 else (Path("cdk.out"), options.args[0])
    )
    fn = find_function(_load(cdk_out), name)
    if fn.package_type == "Image":
        raise CannotRun(
            f"{fn.path} is an image function: running it needs Docker (build the image from "
            f"{fn.asset_dir or 'its image asset'} and run it with the Lambda Runtime Interface "
            "Emulator); cdk-uv invoke runs zip functions only"
        )
    if fn.asset_dir is None or fn.handler is None or fn.python is None:
        raise UsageError(
            f"{fn.path} has no Python zip asset in {cdk_out} to run "
            f"(runtime {fn.runtime}, package type {fn.package_type})"
        )
    event = _event(options.event)
    python = find_python(Uv.locate(None).path, fn.python)
    if python is None:
        raise CannotRun(
            f"{fn.path}: no Python {fn.python} interpreter on this machine; install one where uv "
            f"finds it (`uv python install {fn.python}`)"
        )
    try:
        result = invoke(
            fn.asset_dir,
            fn.handler,
            python,
            event,
            architecture=fn.architecture,
            name=fn.path.rsplit("/", 1)[-1],
            memory=fn.memory,
            timeout=fn.timeout,
            environment=fn.environment,
            runtime=fn.runtime or "",
        )
    except CannotRunHere as exc:
        raise CannotRun(f"{fn.path} can't run here: {exc}") from None
    if result.logs.strip():
        print(result.logs.rstrip(), file=sys.stderr)
    took = f"{result.seconds * 1000:.0f} ms"
    if not result.ok:
        print(result.result.get("stackTrace") or json.dumps(result.result), file=sys.stderr)
        print(
            f"{fn.path}: {result.result.get('errorType')}: {result.result.get('errorMessage')} after {took}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(json.dumps(result.result))
    print(f"{fn.path}: answered in {took} ({fn.runtime}, {fn.architecture})", file=sys.stderr)
    return EXIT_OK


def find_function(candidates: list[AssemblyFunction], name: str) -> AssemblyFunction:
    """The one function ``name`` means: its full path, its last path parts, or a unique part of its path."""
    name = name.strip("/")
    tiers = (
        [f for f in candidates if f.path == name],
        [f for f in candidates if f.path.endswith("/" + name)],
        [f for f in candidates if name in f.path],
    )
    matches = next((tier for tier in tiers if tier), [])
    if len(matches) == 1:
        return matches[0]
    if not candidates:
        raise UsageError("the assembly has no Lambda functions")
    listed = "\n  ".join(f.path for f in (matches or candidates))
    what = "matches several functions" if matches else "matches no function"
    raise UsageError(f"{name!r} {what}; candidates:\n  {listed}")


def _event(arg: str | None) -> object:
    if arg is None:
        return {}
    where = "standard input" if arg == "-" else arg
    try:
        text = sys.stdin.read() if arg == "-" else Path(arg).read_text()
    except OSError as exc:
        raise UsageError(f"can't read the event from {where}: {exc.strerror}") from None
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise UsageError(f"the event in {where} is not JSON: {exc}") from None


# --- output ---------------------------------------------------------------------------------------


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(no Lambda functions)"
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers).rstrip()]
    lines.append("  ".join("-" * widths[h] for h in headers))
    lines += ["  ".join(str(r[h]).ljust(widths[h]) for h in headers).rstrip() for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
