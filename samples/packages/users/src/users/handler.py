from common import response
from pydantic import BaseModel, ValidationError


class NewUser(BaseModel):
    name: str
    email: str


def main(event, context):
    try:
        user = NewUser.model_validate(event)
    except ValidationError as exc:
        return response(400, {"errors": exc.error_count()})
    return response(201, {"created": user.name, "domain": user.email.split("@")[1]})
