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
    failures = 0
    for fn in functions(OUT):
        event = HERE / "events" / f"{fn.package}.json"
        print(f"\n$ cdk-uv invoke samples/cdk.out {fn.path} --event {event.relative_to(HERE.parent)}", flush=True)
        print("  event: " + json.dumps(json.loads(event.read_text())), flush=True)
        code = subprocess.run(["cdk-uv", "invoke", str(OUT), fn.path, "--event", str(event)]).returncode
        failures += code not in (0, 3)  # 3: another architecture's native code, can't run on this machine
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
