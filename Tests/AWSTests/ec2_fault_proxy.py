"""A named fake for the AWS tests: an HTTP proxy in front of moto_server that makes EC2's
RunInstances fail as AWS does when it has no capacity or the account's quota is reached.

moto never runs out of capacity and has no quotas, and no real part here can, so this is the
one seam the tests fake. Every other request (and every RunInstances the rule lets through)
goes to moto unchanged.

    python3 ec2_fault_proxy.py PORT UPSTREAM RULE

RULE is `capacity-only-in:ZONE` (RunInstances fails with InsufficientInstanceCapacity unless
it asks for ZONE; `capacity-only-in:none` fails everywhere), `vcpu-limit` (every
RunInstances fails with VcpuLimitExceeded), or `capacity-then-vcpu-limit` (no capacity where
AWS chooses the zone, the quota reached in any zone asked for).
"""
import http.client
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, UPSTREAM, RULE = int(sys.argv[1]), urllib.parse.urlsplit(sys.argv[2]), sys.argv[3]

ERRORS = {
    "InsufficientInstanceCapacity": "We currently do not have sufficient capacity in the Availability Zone you requested.",
    "VcpuLimitExceeded": "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to.",
}


def refusal(form):
    if form.get("Action") != "RunInstances":
        return None
    if RULE == "vcpu-limit":
        return "VcpuLimitExceeded"
    if RULE == "capacity-then-vcpu-limit":
        return "VcpuLimitExceeded" if form.get("Placement.AvailabilityZone") else "InsufficientInstanceCapacity"
    zone = RULE.split(":", 1)[1]
    if form.get("Placement.AvailabilityZone") != zone:
        return "InsufficientInstanceCapacity"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        form = dict(urllib.parse.parse_qsl(body.decode()))
        code = refusal(form)
        if code:
            answer = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
                      f"<Message>{ERRORS[code]}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>").encode()
            self.send_response(400 if code == "VcpuLimitExceeded" else 500)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        upstream.request("POST", self.path, body=body, headers=headers)
        reply = upstream.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("connection", "content-length", "transfer-encoding", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
