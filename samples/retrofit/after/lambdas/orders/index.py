import orjson


def handler(event, context):
    items = event["items"]
    total = sum(item["price"] * item.get("quantity", 1) for item in items)
    body = orjson.dumps({"items": len(items), "total": round(total, 2)}).decode()
    return {"statusCode": 200, "body": body}
