"""The shop: an order totaller (orjson) and a notifier, each deployed from its own handler folder."""

from aws_cdk import App, BundlingOptions, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


class ShopStack(Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        runtime = lambda_.Runtime.PYTHON_3_12
        lambda_.Function(
            self, "Orders", runtime=runtime, handler="index.handler",
            code=lambda_.Code.from_asset("lambdas/orders", bundling=BundlingOptions(
                image=runtime.bundling_image,
                command=["bash", "-c",
                         "pip install -r requirements.txt -t /asset-output && cp -au . /asset-output"],
            )),
        )
        lambda_.Function(
            self, "Notify", runtime=runtime, handler="index.handler",
            code=lambda_.Code.from_asset("lambdas/notify"),
        )


app = App()
ShopStack(app, "Shop")
app.synth()
