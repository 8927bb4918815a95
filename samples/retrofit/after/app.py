"""The shop: an order totaller (orjson) and a notifier, each deployed from its own handler folder."""

from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_uv_aspect import UvBundlingAspect, UvCode


class ShopStack(Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        runtime = lambda_.Runtime.PYTHON_3_12
        orders = lambda_.Function(
            self, "Orders", runtime=runtime, handler="index.handler",
            code=UvCode(),
        )
        orders.node.add_metadata("uv", "orders")
        notify = lambda_.Function(
            self, "Notify", runtime=runtime, handler="index.handler",
            code=lambda_.Code.from_asset("lambdas/notify"),
        )
        notify.node.add_metadata("uv", "notify")


app = App()
ShopStack(app, "Shop")
Aspects.of(app).add(UvBundlingAspect())
app.synth()
