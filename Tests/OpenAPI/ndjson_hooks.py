"""schemathesis hooks for Tally's OpenAPI conformance test (Tests/TallyCLITests/OpenAPIConformanceTests.swift).

`POST /increments` takes NDJSON, which schemathesis cannot serialize by itself. openapi.yaml
describes the body as an array of increment objects; this serializer sends such an array as
one JSON object per line. Anything else generated for the body (negative testing) is sent
as a single line of JSON, which the server must refuse unless it is a valid increment.
"""
import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, list):
        text = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in value)
    else:
        text = json.dumps(value, separators=(",", ":"))
    return {"data": text.encode("utf-8")}
