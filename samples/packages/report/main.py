import statistics

from common import response


def handler(event, context):
    values = event.get("values", [])
    summary = {"count": len(values)}
    if values:
        summary |= {"mean": statistics.fmean(values), "median": statistics.median(values)}
    return response(200, summary)
