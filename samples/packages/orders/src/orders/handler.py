import orjson
from common import response


def main(event, context):
    items = event.get("items", [])
    total = sum(item["price"] * item.get("quantity", 1) for item in items)
    return response(200, orjson.loads(orjson.dumps({"items": len(items), "total": round(total, 2)})))
