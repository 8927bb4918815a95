"""The sample CDK app: the sample service (``service.py``) in one stack, bundled by the aspect.

``-c assets-bucket=NAME`` makes the stack upload its assets to that existing bucket with the CLI's own
credentials (``CliCredentialsStackSynthesizer``): no ``cdk bootstrap`` needed, which is how the deploy
tests reach a local AWS emulator. Without a bootstrap stack there is no ECR repository for images, so
the image function is left out then. Without the switch: CDK's default synthesizer, every function.
"""

from aws_cdk import App, Aspects, CliCredentialsStackSynthesizer
from service import SampleStack

from cdk_uv_aspect import UvBundlingAspect

app = App()
bucket = app.node.try_get_context("assets-bucket")
synthesizer = CliCredentialsStackSynthesizer(file_assets_bucket_name=bucket) if bucket else None
SampleStack(app, "UvSample", synthesizer=synthesizer, images=not bucket)
Aspects.of(app).add(UvBundlingAspect())
app.synth()
