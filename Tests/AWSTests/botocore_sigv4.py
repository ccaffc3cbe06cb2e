#!/usr/bin/env python3
"""Signs requests with botocore's SigV4 signer, for the Swift signer's tests.

Reads {"credentials": {...}, "region": R, "service": S, "timestamp": "YYYYMMDDTHHMMSSZ",
"requests": [{"method", "url", "query": [[name, value]], "headers": [[name, value]],
"body": base64}]} on standard input and writes, for each request, its canonical request,
string to sign, signature and Authorization header, as JSON.
"""
import base64
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    spec = json.load(sys.stdin)
    c = spec["credentials"]
    credentials = Credentials(c["accessKeyID"], c["secretAccessKey"], c.get("sessionToken"))
    auth = SigV4Auth(credentials, spec["service"], spec["region"])
    results = []
    for r in spec["requests"]:
        request = AWSRequest(method=r["method"], url=r["url"], headers=dict(r["headers"]),
                             data=base64.b64decode(r["body"]), params=[tuple(p) for p in r["query"]])
        # add_auth, with the clock fixed.
        request.context["timestamp"] = spec["timestamp"]
        auth._modify_request_before_signing(request)
        canonical = auth.canonical_request(request)
        string_to_sign = auth.string_to_sign(request, canonical)
        signature = auth.signature(string_to_sign, request)
        auth._inject_signature_to_request(request, signature)
        results.append({"canonicalRequest": canonical, "stringToSign": string_to_sign,
                        "signature": signature, "authorization": request.headers["Authorization"]})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
