"""The README's demo: synthesize this workspace with the real CDK CLI, show what was built, run each handler.

Run it with ``./dev demo`` from the repository root (that sets up the environment first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cdk_uv_aspect._assembly import AssemblyFunction, functions
from cdk_uv_aspect._image import lambda_python

HERE = Path(__file__).parent
OUT = HERE / "cdk.out"
sys.path.insert(0, str(HERE.parent / "tests"))  # the image tests' stand-in base images, for podman without a registry
import oci  # noqa: E402


def main() -> int:
    print("$ npx cdk synth --quiet   (in samples/)", flush=True)
    print(
        "  (builds each function's package for its runtime: a minute or so the first time, a few seconds "
        "once the build cache has them; each build prints a line when it ends)",
        flush=True,
    )
    subprocess.run(["npx", "cdk", "synth", "--quiet", "--output", str(OUT)], cwd=HERE, check=True)
    print("\n$ cdk-uv report samples/cdk.out", flush=True)
    subprocess.run(["cdk-uv", "report", str(OUT)], check=True)
    found = functions(OUT)
    images = [fn for fn in found if fn.image is not None]
    engine_env = image_engine(images)
    failures = 0
    for fn in found:
        event = HERE / "events" / f"{fn.package}.json"
        env = engine_env if fn.image is not None else {}
        shown = "".join(f"{k}={v} " for k, v in env.items())
        print(
            f"\n$ {shown}cdk-uv invoke samples/cdk.out {fn.path} --event {event.relative_to(HERE.parent)}", flush=True
        )
        print("  event: " + json.dumps(json.loads(event.read_text())), flush=True)
        invoke = ["cdk-uv", "invoke", str(OUT), fn.path, "--event", str(event)]
        code = subprocess.run(invoke, env={**os.environ, **env}).returncode
        failures += code not in (0, 3)  # 3: another architecture's native code, or no container engine: can't run here
    if engine_env:
        found_engine = oci.find_engine()
        if isinstance(found_engine, oci.Oci):  # the images cdk-uv built in the tests' storage: not kept
            found_engine.remove(*(fn.image.local_tag for fn in images if fn.image))
    return 1 if failures else 0


def image_engine(images: list[AssemblyFunction]) -> dict[str, str]:
    """What `cdk-uv invoke` needs to run the image functions here: nothing with Docker (it pulls AWS's base
    image); with podman, which has no registry on the machines this demo runs on, local stand-ins of the
    Lambda base images (made once by tests/oci.py, in a storage of their own that $CDK_DOCKER points at)."""
    engine = oci.find_engine()
    if not images or isinstance(engine, str) or engine.kind != "podman":
        return {}
    print(f"\n# The image functions' base images, for podman ({engine.origin}), which reaches no registry here:")
    for fn in images:
        python = lambda_python(oci.base_of(fn))
        if python:
            print(f"  preparing {oci.BASE_IMAGE}:{python} ({fn.architecture})...", flush=True)
            base = oci.base_image(engine, python, fn.architecture)
            print(f"  FROM {base.name} ({fn.architecture}): {base.origin}", flush=True)
    return {"CDK_DOCKER": engine.client}


if __name__ == "__main__":
    sys.exit(main())
