import json


def handler(event, context):
    message = f"order {event.get('order', '?')} is ready"
    return {"statusCode": 200, "body": json.dumps({"message": message, "function": context.function_name})}
