"""Helpers shared by every sample handler."""

import platform


def response(status: int, body: object) -> dict:
    """An API Gateway style response, stamped with the Python that served it."""
    return {"statusCode": status, "python": platform.python_version(), "body": body}
