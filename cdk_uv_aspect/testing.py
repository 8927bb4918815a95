"""For your CDK app's own unit tests: the bundling aspect that ``app.py`` adds, in one call.

Unit tests build stacks without running ``app.py``, so the aspect ``app.py`` adds is missing, and every
function created with ``UvCode()`` fails synthesis ("uses UvCode() but no UvBundlingAspect built it").
Give the test's app the aspect::

    from aws_cdk import App
    from aws_cdk.assertions import Template
    from cdk_uv_aspect.testing import with_uv_aspect

    def test_orders_function():
        app = with_uv_aspect(App())
        template = Template.from_stack(ShopStack(app, "Shop"))
        template.has_resource_properties("AWS::Lambda::Function", {"Handler": "index.handler"})
"""

from __future__ import annotations

from typing import Any, TypeVar

from aws_cdk import Aspects
from constructs import IConstruct

from ._aspect import UvBundlingAspect
from ._options import UvOptions

__all__ = ["with_uv_aspect"]

Scope = TypeVar("Scope", bound=IConstruct)


def with_uv_aspect(scope: Scope, options: UvOptions | None = None, /, **fields: Any) -> Scope:
    """Add a :class:`UvBundlingAspect` to ``scope`` (the test's ``App``, or a ``Stage``) and return ``scope``.

    The same as ``Aspects.of(scope).add(UvBundlingAspect(options, **fields))``: give it the options
    ``app.py`` gives its aspect. Functions are built for real, with uv, into the build cache that
    ``cdk synth`` uses, so a test after a synth (or after another test) takes them from the cache::

        app = with_uv_aspect(App())                  # in a test, or in a pytest fixture
        app = with_uv_aspect(App(), bytecode=False)  # options as for UvBundlingAspect

    A function that another aspect already built (one your Stage or Stack adds itself) is left as it
    was built.
    """
    Aspects.of(scope).add(UvBundlingAspect(options, **fields))
    return scope
