"""What importing the library costs an app: only what the features it uses need."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

NOT_LOADED = ("aws_cdk.aws_cloudfront", "cdk_uv_aspect._docker", "cdk_uv_aspect._engine")

PROBE = f"""
import json, sys
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
before = [name for name in {NOT_LOADED!r} if name in sys.modules]  # what aws-cdk-lib itself loads
from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package
app = App()
stack = Stack(app, "Stack")
Aspects.of(app).add(UvBundlingAspect())
app.synth()
print(json.dumps([name for name in {NOT_LOADED!r} if name in sys.modules and name not in before]))
"""


@pytest.mark.seconds
def test_an_app_without_edge_functions_or_the_container_fallback_does_not_load_them(tmp_path):
    """A synth with the aspect loads neither aws_cloudfront (for the EdgeFunction check) nor the Docker
    fallback's engine: an app that uses neither does not pay for importing them."""
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
