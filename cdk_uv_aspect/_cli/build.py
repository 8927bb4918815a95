"""cdk-uv build: build a workspace package for a Lambda target, as the aspect does, without CDK."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK, UsageError, size, wrapped


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    build = commands.add_parser(
        "build",
        parents=[debug],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="build a workspace package for a Lambda target, as the aspect does at synthesis",
        description=wrapped(
            "Build PACKAGE's locked runtime closure for a Lambda target with uv, exactly as UvBundlingAspect "
            "does at synthesis (same build, same build cache), outside CDK: for debugging, other deployment "
            "tools, or CI artefacts. Prints a progress line on stderr and the path of the result on stdout: the "
            "zip, the --out folder, or the built folder in the build cache (read only)."
        ),
        epilog="examples:\n"
        "  cdk-uv build orders --python 3.12 --arch arm64 --zip dist/orders.zip\n"
        "  cdk-uv build report --python 3.13 --out build/report --force\n"
        "The build cache is $CDK_UV_CACHE_DIR, else $XDG_CACHE_HOME/cdk-uv-aspect,\n"
        "else ~/.cache/cdk-uv-aspect.",
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
    build.add_argument(
        "--os",
        choices=["al2", "al2023"],
        help="the Amazon Linux of a Python runtime this version does not know yet (UvOptions(new_runtimes))",
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
    build.add_argument(
        "--extra", action="append", default=[], metavar="NAME", help="deploy the package's extra NAME too; repeatable"
    )
    build.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME",
        help="deploy the package's dependency group NAME too (no group is deployed otherwise); repeatable",
    )
    build.add_argument(
        "--omit-runtime-provided",
        action="store_true",
        help="leave boto3 and botocore (and what only they need) out: the Lambda runtime provides them",
    )
    build.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .._archive import copy_folder, write_zip
    from .._build import build, progress_line
    from .._errors import UvError, WorkspaceError
    from .._marker import package_of
    from .._options import UvOptions
    from .._remote import record_all
    from .._request import BuildRequest
    from .._target import target_of
    from .._workspace import Workspace

    runtime = f"python{options.python.removeprefix('python')}"
    try:
        uv_options = UvOptions(
            new_runtimes=((runtime, options.os),) if options.os else (),
            workspace=options.workspace,
            lock="frozen" if options.frozen else "locked",
            bytecode=not options.no_bytecode,
            exclude=tuple(options.exclude),
            extras=tuple(options.extra),
            groups=tuple(options.group),
            omit_runtime_provided=options.omit_runtime_provided,
        )
    except ValidationError as exc:  # an --extra or --group that is not a name, an --os a runtime does not run
        raise UsageError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
    try:
        package = package_of(options.package)
        target = target_of(runtime, options.arch, new_runtimes=dict(uv_options.new_runtimes))
    except UvError as exc:
        raise UsageError(f"{exc.problem}; {exc.fix}") from None
    try:
        workspace = Workspace.find(uv_options.workspace)
    except WorkspaceError as exc:  # none here, or a uv.lock that can't be read: bad input
        raise UsageError(f"{exc.problem}; {exc.fix}") from None
    if package not in workspace.packages:
        known = ", ".join(sorted(workspace.packages)) or "none"
        raise UsageError(
            f"package {options.package!r} is not in the workspace at {workspace.root} (its packages: {known})"
        )
    if options.zip is not None and options.zip.is_dir():
        raise UsageError(f"--zip {options.zip} is a folder; give the path of the zip file to write")
    if options.out is not None:
        _check_out(options.out, force=options.force, keep=[workspace.root, uv_options.cache_dir])

    request = BuildRequest.create(workspace, package, target, uv_options)
    built = build(request, log=lambda line: print(line, file=sys.stderr))
    record_all(uv_options.cache_dir)  # what the team cache did, for `cdk-uv cache info`
    print(progress_line(built), file=sys.stderr, flush=True)
    info = built.info
    summary = f"{package} for {target}: {info['files']} files, {size(info['bytes'])}"
    print(f"SBOM (CycloneDX 1.5): {built.sbom}", file=sys.stderr)
    if options.zip is not None:
        zipped = write_zip(built.asset_dir, options.zip)
        print(f"{summary} ({size(zipped)} zipped)", file=sys.stderr)
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
