"""The ``cdk-uv`` command: look at and run what the bundling aspect built, without deploying.

Exit codes: 0 success; 1 the handler raised or the command failed; 2 bad usage (unknown or ambiguous
function, missing assembly); 3 the function can't run on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._assembly import AssemblyFunction, functions
from ._invoke import CannotRunHere, invoke


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdk-uv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="a table of every Lambda function in a cloud assembly")
    report.add_argument("cdk_out", nargs="?", default="cdk.out", type=Path)
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")

    run = commands.add_parser("invoke", help="run a synthesized function's handler locally")
    run.add_argument("args", nargs="+", metavar="[CDK_OUT] FUNCTION",
                     help="the assembly folder (default cdk.out) and a construct path or a unique part of it")
    run.add_argument("--event", default=None, help="a JSON file with the event, or - for standard input")

    _add_cache_command(commands)

    options = parser.parse_args(argv)
    try:
        if options.command == "cache":
            return _cache(options)
        if options.command == "report":
            return _report(options.cdk_out, as_json=options.json)
        cdk_out, name = (Path(options.args[0]), options.args[1]) if len(options.args) > 1 else (
            Path("cdk.out"), options.args[0])
        return _invoke(cdk_out, name, options.event)
    except UsageError as exc:
        print(f"cdk-uv: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if options.debug:
            raise
        print(f"cdk-uv: {exc}", file=sys.stderr)
        return 1


def _add_cache_command(commands: argparse._SubParsersAction) -> None:
    cache = commands.add_parser("cache", help="where the build cache is, what it holds; prune it")
    cache.add_argument("action", choices=["info", "prune"])
    cache.add_argument("--cache-dir", type=Path, default=None,
                       help="default: $CDK_UV_CACHE_DIR, else $XDG_CACHE_HOME/cdk-uv-aspect, "
                       "else ~/.cache/cdk-uv-aspect")
    cache.add_argument("--older-than", type=float, default=30, metavar="DAYS",
                       help="prune: remove builds no synth used for DAYS days (default 30; 0 removes all)")


def _cache(options: argparse.Namespace) -> int:
    from ._cache import entries, prune
    from ._options import default_cache_dir

    cache_dir = (options.cache_dir or default_cache_dir()).expanduser().absolute()
    if options.action == "prune":
        removed = prune(cache_dir, options.older_than)
        print(f"removed {len(removed)} build(s) unused for {options.older_than:g} days from {cache_dir}")
        return 0
    found = entries(cache_dir)
    size = sum(e.bytes for e in found)
    print(f"{cache_dir}: {sum(e.complete for e in found)} build(s), {_size(size) if size else '0 kB'}")
    return 0


def _load(cdk_out: Path) -> list[AssemblyFunction]:
    if not (cdk_out / "manifest.json").is_file():
        raise UsageError(f"{cdk_out} is not a cloud assembly (no manifest.json): run `cdk synth` first")
    return functions(cdk_out)


def _report(cdk_out: Path, *, as_json: bool) -> int:
    rows = []
    for fn in _load(cdk_out):
        build = fn.build or {}
        rows.append({
            "function": fn.path,
            "package": build.get("package") or "not uv-built",
            "target": build.get("target", "-"),
            "asset": (build.get("assetHash") or "-")[:12],
            "size": _size(build.get("bytes")),
            "files": build.get("files", "-"),
            "build": f"{build['buildSeconds']:.1f}s" if "buildSeconds" in build else "-",
            "cached": {True: "yes", False: "no"}.get(build.get("cached"), "-"),
        })
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_table(rows))
    return 0


def _invoke(cdk_out: Path, name: str, event_arg: str | None) -> int:
    fn = _find(_load(cdk_out), name)
    if fn.asset_dir is None or fn.handler is None or fn.python is None:
        raise UsageError(f"{fn.path} has no Python zip asset in {cdk_out} to run")
    from ._uv import Uv, find_python

    python = find_python(Uv.locate(None).path, fn.python)
    if python is None:
        print(f"cdk-uv: {fn.path}: no Python {fn.python} interpreter on this machine", file=sys.stderr)
        return 3
    event = _event(event_arg)
    try:
        result = invoke(fn.asset_dir, fn.handler, python, event, architecture=fn.architecture,
                        name=fn.path.rsplit("/", 1)[-1])
    except CannotRunHere as exc:
        print(f"cdk-uv: {fn.path} can't run here: {exc}", file=sys.stderr)
        return 3
    if result.logs.strip():
        print(result.logs.rstrip(), file=sys.stderr)
    if not result.ok:
        print(result.result.get("stackTrace") or json.dumps(result.result), file=sys.stderr)
        print(f"{fn.path}: {result.result.get('errorType')} in {result.seconds * 1000:.0f} ms", file=sys.stderr)
        return 1
    print(json.dumps(result.result))
    print(f"{fn.path}: answered in {result.seconds * 1000:.0f} ms (python{fn.python}, {fn.architecture})",
          file=sys.stderr)
    return 0


def _find(candidates: list[AssemblyFunction], name: str) -> AssemblyFunction:
    exact = [f for f in candidates if f.path == name]
    matches = exact or [f for f in candidates if name in f.path]
    if len(matches) == 1:
        return matches[0]
    listed = "\n  ".join(f.path for f in (matches or candidates))
    what = "matches several functions" if matches else "matches no function"
    raise UsageError(f"{name!r} {what}; candidates:\n  {listed}")


def _event(arg: str | None) -> object:
    if arg is None:
        return {}
    text = sys.stdin.read() if arg == "-" else Path(arg).read_text()
    return json.loads(text or "{}")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(no Lambda functions)"
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers)]
    lines.append("  ".join("-" * widths[h] for h in headers))
    lines += ["  ".join(str(r[h]).ljust(widths[h]) for h in headers) for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
