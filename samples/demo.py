"""The README's demo: synthesize this workspace with the real CDK CLI, show what was built, run each handler.

Run it with ``./dev demo`` from the repository root (that sets up the environment first).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cdk_uv_aspect._assembly import functions

HERE = Path(__file__).parent
OUT = HERE / "cdk.out"
sys.path.insert(0, str(HERE.parent / "tests"))  # the image tests' OCI helper: engine, base images, build, run
import oci  # noqa: E402


def main() -> int:
    print("$ npx cdk synth --quiet   (in samples/)", flush=True)
    subprocess.run(["npx", "cdk", "synth", "--quiet", "--output", str(OUT)], cwd=HERE, check=True)
    print("\n$ cdk-uv report samples/cdk.out", flush=True)
    subprocess.run(["cdk-uv", "report", str(OUT)], check=True)
    failures = 0
    engine = oci.find_engine()
    for fn in functions(OUT):
        event = HERE / "events" / f"{fn.package}.json"
        if fn.package_type == "Image" and isinstance(engine, oci.Engine):
            failures += not invoke_image(engine, fn.path, event)
            continue
        print(f"\n$ cdk-uv invoke samples/cdk.out {fn.path} --event {event.relative_to(HERE.parent)}", flush=True)
        print("  event: " + json.dumps(json.loads(event.read_text())), flush=True)
        code = subprocess.run(["cdk-uv", "invoke", str(OUT), fn.path, "--event", str(event)]).returncode
        failures += code not in (0, 3)  # 3: another architecture's native code (or no OCI engine), can't run here
    if isinstance(engine, str):
        print(f"\nImage functions were not run: {engine}")
    return 1 if failures else 0


def invoke_image(engine: oci.Engine, path: str, event_file: Path) -> bool:
    """Build an image function's image as `cdk deploy` would, then call its handler inside the image."""
    fn = next(f for f in oci.image_functions(OUT) if f.path == path)
    print(f"\n# {path}: its image, built as `cdk deploy` builds it, with {engine}", flush=True)
    cannot = ""
    for name in fn.asset.base_images():
        if name.startswith(oci.BASE_IMAGE + ":"):
            base = oci.base_image(engine, name.rpartition(":")[2], fn.architecture)
            cannot = cannot or base.runnable
            print(f"  FROM {name} ({fn.architecture}): {base.origin}", flush=True)
    print(
        f"$ cd {fn.asset.directory.relative_to(HERE.parent)} && {' '.join(engine.build_command(fn.asset))}", flush=True
    )
    try:
        tag = engine.build(fn.asset)
        print(f"  built in {oci.TIMINGS[-1][1]:.1f} s", flush=True)
        if cannot:
            print(f"  built only: {cannot}", flush=True)
            return True
        event = json.loads(event_file.read_text())
        print(f"$ {oci.IMAGE_PYTHON} (in the image): call {fn.handler} from /var/task", flush=True)
        print("  event: " + json.dumps(event), flush=True)
        answer = engine.invoke(tag, fn.handler, event, architecture=fn.architecture, name=path.rpartition("/")[2])
    finally:
        engine.cleanup()
    if answer.logs.strip():
        print(answer.logs.rstrip(), file=sys.stderr)
    print(json.dumps(answer.result), flush=True)
    verdict = "answered" if answer.ok else "failed"
    print(
        f"{path}: {verdict} inside the image in {answer.seconds:.1f} s, starting a container included "
        f"({fn.architecture})",
        file=sys.stderr,
    )
    return answer.ok


if __name__ == "__main__":
    sys.exit(main())
