#!/usr/bin/env python3
"""Writes the protocol test vectors (protocol/vectors/*.json).

The JSON files are the source of truth; this script is only a convenient way to produce
their hex. Run it from anywhere: `python3 protocol/vectors/tools/generate.py`. With
`--check` it writes nothing and fails if a file would change. If the `jsonschema` package
is installed, every expected message is also validated against protocol/schema.
"""

import base64
import hashlib
import hmac
import json
import pathlib
import sys

VECTORS = pathlib.Path(__file__).resolve().parent.parent
SCHEMA = VECTORS.parent / "schema"
TOKEN = "s3cret"
MAX_ID = 2**53 - 1


def payload(obj):
    """Compact UTF-8 JSON, the way a sender would write it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def frame(data):
    if not isinstance(data, (bytes, bytearray)):
        data = payload(data)
    return len(data).to_bytes(4, "big") + data


def frames(*items):
    return b"".join(frame(item) for item in items)


def msg(obj):
    return {"message": obj}


def err(code, path=None, fatal=False, id=None):
    e = {"code": code}
    if path is not None:
        e["path"] = path
    e["fatal"] = fatal
    if id is not None:
        e["id"] = id
    return {"error": e}


FILES = {}


def vector(file, name, description, wire, expect, context=None):
    v = {"name": name, "description": description}
    if context:
        v["context"] = context
    v["hex"] = wire.hex()
    v["expect"] = expect
    FILES.setdefault(file, []).append(v)


CLIENT = {"role": "client"}
CLIENT_NONCE = bytes(range(0x01, 0x21))   # 32 bytes 01 02 .. 20
AGENT_NONCE = bytes(range(0x41, 0x61))    # 32 bytes 41 42 .. 60 (the default context.agentNonce)


def b64(data):
    return base64.b64encode(data).decode()


def proof(label, token, client_nonce, agent_nonce):
    """HMAC-SHA256 keyed by the token's UTF-8 bytes over label, a zero byte and both nonces."""
    return hmac.new(token.encode(), label.encode() + b"\0" + client_nonce + agent_nonce, hashlib.sha256).digest()


def agent_proof(token=TOKEN, cn=CLIENT_NONCE, an=AGENT_NONCE):
    return proof("yonder-agent-proof", token, cn, an)


def client_proof(token=TOKEN, cn=CLIENT_NONCE, an=AGENT_NONCE):
    return proof("yonder-client-proof", token, cn, an)


FRESH = {"role": "agent", "state": "awaiting_hello", "token": TOKEN, "agentNonce": b64(AGENT_NONCE)}
HELLO = {"type": "hello", "protocol": 2, "nonce": b64(CLIENT_NONCE), "name": "yonder-swift", "version": "0.1.0"}
AUTH = {"type": "auth", "proof": b64(client_proof())}
PING = {"type": "ping"}

# ---------------------------------------------------------------- framing.json
F = "framing.json"
vector(F, "single-frame", "One frame holding a ping.", frame(PING), [msg(PING)])
vector(F, "two-frames-in-one-read", "Two frames back to back; a receiver must not assume one frame per read.",
       frames({"type": "ping", "nonce": 1}, {"type": "goodbye", "reason": "done"}),
       [msg({"type": "ping", "nonce": 1}), msg({"type": "goodbye", "reason": "done"})])
long_args = {"text": "x" * 300}
vector(F, "length-prefix-is-big-endian", "A 361-byte payload: the prefix is 00 00 01 69, most significant byte first.",
       frame({"type": "call", "id": 1, "function": "yonder.ping", "arguments": long_args}),
       [msg({"type": "call", "id": 1, "function": "yonder.ping", "arguments": long_args})])
vector(F, "empty-frame", "A length prefix of 0 is a protocol error.", bytes(4), [err("empty_frame", fatal=True)])
vector(F, "empty-frame-stops-the-stream", "Frames before an empty frame are processed; nothing after it is.",
       frame(PING) + bytes(4) + frame(PING), [msg(PING), err("empty_frame", fatal=True)])
vector(F, "too-large-default-limit", "A prefix announcing 64 MiB + 1 bytes is rejected from the prefix alone, before any payload arrives.",
       (64 * 1024 * 1024 + 1).to_bytes(4, "big"), [err("frame_too_large", fatal=True)])
vector(F, "too-large-maximum-prefix", "The largest possible prefix, FF FF FF FF, is rejected (and must not be read as a negative number).",
       bytes.fromhex("ffffffff"), [err("frame_too_large", fatal=True)])
vector(F, "at-the-limit", "A payload exactly as long as the receiver's maximum (15 bytes here) is accepted.",
       frame(PING), [msg(PING)], {"maxFrame": 15})
vector(F, "one-over-the-limit", "A payload one byte over the receiver's maximum (14 bytes here) is rejected.",
       frame(PING), [err("frame_too_large", fatal=True)], {"maxFrame": 14})
vector(F, "too-large-after-good-frame", "A good frame, then a prefix over the limit.",
       frame(PING) + (1025).to_bytes(4, "big") + b"{", [msg(PING), err("frame_too_large", fatal=True)], {"maxFrame": 1024})
vector(F, "truncated-inside-prefix", "The stream ends after 2 bytes of a length prefix.", bytes(2), [err("truncated_frame", fatal=True)])
vector(F, "truncated-after-prefix", "The stream ends right after a length prefix of 15.", (15).to_bytes(4, "big"),
       [err("truncated_frame", fatal=True)])
vector(F, "truncated-mid-payload", "The stream ends 4 bytes short of the end of the payload.", frame(PING)[:-4],
       [err("truncated_frame", fatal=True)])
vector(F, "good-frame-then-truncated", "A complete frame is delivered before the truncated one is reported.",
       frame(PING) + frame({"type": "goodbye"})[:6], [msg(PING), err("truncated_frame", fatal=True)])

# ---------------------------------------------------------------- payload.json
P = "payload.json"
vector(P, "invalid-utf8-byte-ff", "0xFF never occurs in UTF-8.", frame(b'{"type":"goodbye","reason":"\xff"}'),
       [err("invalid_utf8", fatal=True)])
vector(P, "invalid-utf8-overlong", "C0 AF is an overlong encoding of '/', not valid UTF-8.", frame(b'{"type":"goodbye","reason":"\xc0\xaf"}'),
       [err("invalid_utf8", fatal=True)])
vector(P, "invalid-utf8-surrogate", "ED A0 80 encodes a UTF-16 surrogate, not valid UTF-8.", frame(b'{"type":"goodbye","reason":"\xed\xa0\x80"}'),
       [err("invalid_utf8", fatal=True)])
vector(P, "invalid-utf8-cut-sequence", "A 3-byte sequence cut after 2 bytes.", frame(b'{"type":"goodbye","reason":"\xe2\x82"}'),
       [err("invalid_utf8", fatal=True)])
vector(P, "invalid-utf8-checked-before-json", "Bytes that are neither UTF-8 nor JSON: UTF-8 is checked first.", frame(b"\xff\xfe"),
       [err("invalid_utf8", fatal=True)])
vector(P, "utf8-multibyte-text", "Non-ASCII text is carried as raw UTF-8.",
       frame({"type": "goodbye", "reason": "fin \u2713 \u65e5\u672c \U0001f680"}),
       [msg({"type": "goodbye", "reason": "fin \u2713 \u65e5\u672c \U0001f680"})])
vector(P, "json-escapes", "JSON escapes (\\u0041, \\n, \\ud83d\\ude80, \\/) decode to the characters they name.",
       frame(b'{"type":"goodbye","reason":"\\u0041\\n\\ud83d\\ude80\\/"}'),
       [msg({"type": "goodbye", "reason": "A\n\U0001f680/"})])
vector(P, "surrounding-whitespace", "JSON whitespace around the object is allowed.", frame(b' \t{"type":"ping"}\r\n'), [msg(PING)])
vector(P, "invalid-json-bare-word", "Text that is not JSON.", frame(b"not json"), [err("invalid_json", fatal=True)])
vector(P, "invalid-json-unclosed-object", "An object missing its closing brace.", frame(b'{"type":"ping"'),
       [err("invalid_json", fatal=True)])
vector(P, "invalid-json-single-quotes", "Single-quoted strings are not JSON.", frame(b"{'type':'ping'}"),
       [err("invalid_json", fatal=True)])
for label, text in [("leading-zero", "01"), ("trailing-dot", "1."), ("leading-dot", ".5"), ("bare-minus", "-"),
                    ("exponent-without-digits", "1e"), ("plus-sign", "+1"), ("minus-leading-zero", "-01")]:
    vector(P, f"invalid-number-{label}", f"RFC 8259 does not allow the number {text}.",
           frame(b'{"type":"ping","nonce":' + text.encode() + b'}'), [err("invalid_json", fatal=True)])
vector(P, "numbers-rfc-8259-allows", "Zero, minus zero, fractions and exponents as RFC 8259 writes them.",
       frame(b'{"type":"result","id":0,"value":[0,-0,0.5,-1.25e-3,2.5E-1,10]}'),
       [msg({"type": "result", "id": 0, "value": [0, 0, 0.5, -0.00125, 0.25, 10]})], CLIENT)
vector(P, "invalid-json-trailing-text", "Text after the object.", frame(b'{"type":"ping"} x'), [err("invalid_json", fatal=True)])
vector(P, "invalid-json-two-objects", "Two objects in one frame.", frame(b'{"type":"ping"}{"type":"ping"}'),
       [err("invalid_json", fatal=True)])
vector(P, "invalid-json-whitespace-only", "A payload of spaces holds no JSON value.", frame(b"   "), [err("invalid_json", fatal=True)])
vector(P, "invalid-json-comment", "Comments are not JSON.", frame(b'{"type":"ping"} // keep-alive'),
       [err("invalid_json", fatal=True)])
vector(P, "not-an-object-array", "An array, even one holding a message.", frame(b'[{"type":"ping"}]'),
       [err("not_an_object", fatal=True)])
vector(P, "not-an-object-string", "A JSON string.", frame(b'"ping"'), [err("not_an_object", fatal=True)])
vector(P, "not-an-object-number", "A JSON number.", frame(b"42"), [err("not_an_object", fatal=True)])
vector(P, "not-an-object-null", "JSON null.", frame(b"null"), [err("not_an_object", fatal=True)])
vector(P, "not-an-object-boolean", "JSON true.", frame(b"true"), [err("not_an_object", fatal=True)])

# binary attachments (PROTOCOL.md section 3): in an expected message, "attachments" holds
# the base64 of each attachment's bytes, not their lengths.
BINARY = {"binary": True}
vector(F, "attachments-call", "A call whose argument is a 3-byte attachment, to an agent that accepts them.",
       frames({"type": "call", "id": 9, "function": "Echo", "arguments": {"$attachment": 0}, "attachments": [3]},
              bytes([1, 2, 3])),
       [msg({"type": "call", "id": 9, "function": "Echo", "arguments": {"$attachment": 0}, "attachments": ["AQID"]})],
       BINARY)
vector(F, "attachments-result-two", "A result with two attachments, then a ping: the raw frames are never read as JSON.",
       frames({"type": "result", "id": 4, "value": [{"$attachment": 1}, {"$attachment": 0}], "attachments": [2, 1]},
              b"{}", bytes([0xff]), {"type": "ping"}),
       [msg({"type": "result", "id": 4, "value": [{"$attachment": 1}, {"$attachment": 0}], "attachments": ["e30=", "/w=="]}),
        msg({"type": "ping"})],
       dict(BINARY, role="client"))
vector(F, "attachments-not-accepted", "Attachments to a receiver that did not say binary: fatal.",
       frames({"type": "call", "id": 1, "function": "Echo", "attachments": [1]}, b"x"),
       [err("invalid_attachment", ["attachments"], fatal=True)])
vector(F, "attachments-wrong-length", "The attachment's frame is shorter than announced: fatal.",
       frames({"type": "call", "id": 1, "function": "Echo", "attachments": [5]}, b"abc"),
       [err("invalid_attachment", fatal=True)], BINARY)
vector(F, "attachments-zero", "An attachment must hold at least one byte (empty bytes go as \"\").",
       frame({"type": "call", "id": 1, "function": "Echo", "attachments": [0]}),
       [err("invalid_attachment", ["attachments", "0"], fatal=True)], BINARY)
vector(F, "attachments-not-an-array", "\"attachments\" must be an array of byte counts.",
       frame({"type": "result", "id": 1, "attachments": "3"}),
       [err("invalid_attachment", ["attachments"], fatal=True)], dict(BINARY, role="client"))
vector(F, "attachments-truncated", "The stream ends before the announced attachment.",
       frame({"type": "call", "id": 1, "function": "Echo", "attachments": [3]}),
       [err("truncated_frame", fatal=True)], BINARY)

# ---------------------------------------------------------------- messages.json
M = "messages.json"
# type
vector(M, "type-missing", "An object without \"type\"; its valid id is echoed and the connection stays open.",
       frame({"id": 1, "function": "yonder.ping"}), [err("invalid_message", ["type"], id=1)])
vector(M, "type-not-a-string", "\"type\" must be a string.", frame({"type": 7}), [err("invalid_message", ["type"])])
vector(M, "type-null", "A null \"type\" counts as missing.", frame({"type": None, "id": 2}), [err("invalid_message", ["type"], id=2)])
vector(M, "type-unknown", "An unknown type after the handshake is not fatal.", frame({"type": "frobnicate", "id": 4}),
       [err("unknown_type", ["type"], id=4)])
vector(M, "type-is-case-sensitive", "\"Call\" is not \"call\".", frame({"type": "Call", "id": 5, "function": "yonder.ping"}),
       [err("unknown_type", ["type"], id=5)])
vector(M, "message-errors-are-not-fatal", "After a message-level error the receiver carries on with the next frame.",
       frames({"type": "frobnicate"}, {"type": "call", "id": 6}, {"type": "ping", "nonce": 9}),
       [err("unknown_type", ["type"]), err("invalid_message", ["function"], id=6), msg({"type": "ping", "nonce": 9})])

# requests, good
vector(M, "call-minimal", "A call without arguments: arguments default to null.",
       frame({"type": "call", "id": 1, "function": "yonder.ping"}),
       [msg({"type": "call", "id": 1, "function": "yonder.ping", "arguments": None})])
exec_args = {"command": ["sh", "-c", "echo hi; echo oops >&2"], "env": {"LANG": "C.UTF-8"}, "cwd": "/srv/app"}
vector(M, "call-full", "A call with arguments and a timeout in seconds.",
       frame({"type": "call", "id": 2, "function": "yonder.exec", "arguments": exec_args, "timeout": 30}),
       [msg({"type": "call", "id": 2, "function": "yonder.exec", "arguments": exec_args, "timeout": 30})])
vector(M, "call-fractional-timeout", "A timeout may be fractional.",
       frame({"type": "call", "id": 3, "function": "Add", "arguments": [1, 2, 3], "timeout": 0.25}),
       [msg({"type": "call", "id": 3, "function": "Add", "arguments": [1, 2, 3], "timeout": 0.25})])
vector(M, "call-null-optional-field", "An optional field set to null is the same as an absent one.",
       frame({"type": "call", "id": 4, "function": "yonder.ping", "arguments": None, "timeout": None}),
       [msg({"type": "call", "id": 4, "function": "yonder.ping", "arguments": None})])
vector(M, "call-unknown-fields-ignored", "Fields this version does not define are ignored.",
       frame({"type": "call", "id": 5, "function": "yonder.ping", "arguments": "x", "priority": "high", "trace": {"span": 1}}),
       [msg({"type": "call", "id": 5, "function": "yonder.ping", "arguments": "x"})])
vector(M, "call-id-zero", "0 is a valid request id.", frame({"type": "call", "id": 0, "function": "yonder.info"}),
       [msg({"type": "call", "id": 0, "function": "yonder.info", "arguments": None})])
vector(M, "call-id-maximum", "2^53 - 1 is the largest request id.", frame({"type": "call", "id": MAX_ID, "function": "yonder.info"}),
       [msg({"type": "call", "id": MAX_ID, "function": "yonder.info", "arguments": None})])
vector(M, "create-minimal", "A create without arguments or name: arguments default to null, reuse to false.",
       frame({"type": "create", "id": 10, "objectType": "Counter"}),
       [msg({"type": "create", "id": 10, "objectType": "Counter", "arguments": None, "reuse": False})])
vector(M, "create-named-reuse", "A named create that reuses an existing object of the same type.",
       frame({"type": "create", "id": 11, "objectType": "Counter", "arguments": {"start": 10}, "name": "c1", "reuse": True}),
       [msg({"type": "create", "id": 11, "objectType": "Counter", "arguments": {"start": 10}, "name": "c1", "reuse": True})])
vector(M, "lookup", "Find a named object.", frame({"type": "lookup", "id": 12, "name": "c1"}),
       [msg({"type": "lookup", "id": 12, "name": "c1"})])
vector(M, "invoke-minimal", "An invoke without arguments: arguments default to [].",
       frame({"type": "invoke", "id": 13, "object": "o7", "method": "$s4Demo7CounterC5resetyyYaKFTE"}),
       [msg({"type": "invoke", "id": 13, "object": "o7", "method": "$s4Demo7CounterC5resetyyYaKFTE", "arguments": []})])
vector(M, "invoke-full", "An invoke with one JSON value per parameter and a timeout.",
       frame({"type": "invoke", "id": 14, "object": "o7", "method": "$s4Demo7CounterC9increment2byS2i_tYaKFTE",
              "arguments": [5], "timeout": 2.5}),
       [msg({"type": "invoke", "id": 14, "object": "o7", "method": "$s4Demo7CounterC9increment2byS2i_tYaKFTE",
             "arguments": [5], "timeout": 2.5})])
vector(M, "release", "Drop an object.", frame({"type": "release", "id": 15, "object": "o7"}),
       [msg({"type": "release", "id": 15, "object": "o7"})])
vector(M, "cancel", "Cancel request 2; cancel has no reply of its own.", frame({"type": "cancel", "id": 2}),
       [msg({"type": "cancel", "id": 2})])
vector(M, "ping-to-agent", "A keep-alive probe with a nonce.", frame({"type": "ping", "nonce": 77}),
       [msg({"type": "ping", "nonce": 77})])
vector(M, "pong-to-agent", "The client's answer to the agent's ping.", frame({"type": "pong", "nonce": 3}),
       [msg({"type": "pong", "nonce": 3})])
vector(M, "goodbye-minimal", "Closing on purpose, no reason.", frame({"type": "goodbye"}), [msg({"type": "goodbye"})])
vector(M, "pipelined-requests", "Three requests in one read; they may complete in any order.",
       frames({"type": "call", "id": 20, "function": "Sleep", "arguments": 5},
              {"type": "call", "id": 21, "function": "yonder.ping", "arguments": 1},
              {"type": "cancel", "id": 20}),
       [msg({"type": "call", "id": 20, "function": "Sleep", "arguments": 5}),
        msg({"type": "call", "id": 21, "function": "yonder.ping", "arguments": 1}),
        msg({"type": "cancel", "id": 20})])

# replies (the client receives them)
ref = {"object": "o7", "objectType": "Counter", "name": "c1"}
AGENT_HELLO = {"type": "hello", "protocol": 2, "nonce": b64(AGENT_NONCE), "proof": b64(agent_proof()),
               "name": "yonder-agent", "version": "0.1.0", "build": "b5e1c2", "instance": "9f2c41d07be35a68",
               "maxFrame": 67108864}
vector(M, "hello-from-agent", "The agent's hello, as a client receives it: its nonce and its proof for the client's "
       "nonce 0102..20 and the token s3cret.",
       frame(AGENT_HELLO), [msg(AGENT_HELLO)], CLIENT)
vector(M, "result-object-reference", "The result of create or lookup.", frame({"type": "result", "id": 11, "value": ref}),
       [msg({"type": "result", "id": 11, "value": ref})], CLIENT)
vector(M, "result-without-value", "A result without value carries null (a method returning nothing, or release).",
       frame({"type": "result", "id": 15}), [msg({"type": "result", "id": 15, "value": None})], CLIENT)
mixed = [0, 1, True, False, 1.5, -7, "1", None, {"nested": [[]]}]
vector(M, "result-json-types-kept", "Numbers stay numbers and booleans stay booleans (1 is not true).",
       frame({"type": "result", "id": 21, "value": mixed}), [msg({"type": "result", "id": 21, "value": mixed})], CLIENT)
vector(M, "error-for-request", "A request failed in user code: remote_error with the thrown type.",
       frame({"type": "error", "id": 3, "code": "remote_error", "message": "DemoError.tooBig(limit: 10)", "errorType": "Demo.DemoError"}),
       [msg({"type": "error", "id": 3, "code": "remote_error", "message": "DemoError.tooBig(limit: 10)", "errorType": "Demo.DemoError"})],
       CLIENT)
crashed = {"type": "error", "id": 5, "code": "crashed",
           "message": "Counter o3: increment(by:) crashed: the worker process of object o3 (Counter) (pid 41) died of SIGILL, a Swift runtime trap; object o3 (Counter) is lost with its state: create it again"}
vector(M, "error-crashed", "User code crashed the process that ran it: crashed, for that request only.",
       frame(crashed), [msg(crashed)], CLIENT)
vector(M, "error-with-path", "A decode failure names the path into the arguments.",
       frame({"type": "error", "id": 4, "code": "decode_failed", "message": "Point needs the field \"y\"", "path": ["arguments", "y"]}),
       [msg({"type": "error", "id": 4, "code": "decode_failed", "message": "Point needs the field \"y\"", "path": ["arguments", "y"]})],
       CLIENT)
vector(M, "error-without-id", "An error without id answers a message that had no valid id.",
       frame({"type": "error", "code": "unknown_type", "message": "unknown message type \"frobnicate\"", "path": ["type"]}),
       [msg({"type": "error", "code": "unknown_type", "message": "unknown message type \"frobnicate\"", "path": ["type"]})], CLIENT)
vector(M, "error-unknown-code-kept", "A code this version does not know is kept as it came.",
       frame({"type": "error", "id": 5, "code": "quota_exceeded", "message": "too many objects"}),
       [msg({"type": "error", "id": 5, "code": "quota_exceeded", "message": "too many objects"})], CLIENT)
vector(M, "log-full", "A log line with source and metadata.",
       frame({"type": "log", "id": 2, "level": "warning", "message": "disk almost full", "source": "Demo.Store",
              "metadata": {"free": "3%", "volume": "/data"}}),
       [msg({"type": "log", "id": 2, "level": "warning", "message": "disk almost full", "source": "Demo.Store",
             "metadata": {"free": "3%", "volume": "/data"}})], CLIENT)
vector(M, "log-minimal", "A log line with only the required fields.",
       frame({"type": "log", "id": 2, "level": "info", "message": "started"}),
       [msg({"type": "log", "id": 2, "level": "info", "message": "started"})], CLIENT)
vector(M, "output-stdout", "A piece of a command's stdout (\"hi\\n\").",
       frame({"type": "output", "id": 2, "stream": "stdout", "data": "aGkK"}),
       [msg({"type": "output", "id": 2, "stream": "stdout", "data": "aGkK"})], CLIENT)
vector(M, "output-stderr-binary", "Output is bytes, not text: FF 00 FE.", frame({"type": "output", "id": 2, "stream": "stderr", "data": "/wD+"}),
       [msg({"type": "output", "id": 2, "stream": "stderr", "data": "/wD+"})], CLIENT)
vector(M, "output-empty", "Empty data is valid.", frame({"type": "output", "id": 2, "stream": "stdout", "data": ""}),
       [msg({"type": "output", "id": 2, "stream": "stdout", "data": ""})], CLIENT)
vector(M, "ping-from-agent", "The agent may probe the client too.", frame({"type": "ping"}), [msg({"type": "ping"})], CLIENT)
vector(M, "pong-from-agent", "The answer to a client's ping echoes the nonce.", frame({"type": "pong", "nonce": 77}),
       [msg({"type": "pong", "nonce": 77})], CLIENT)
vector(M, "goodbye-from-agent", "The agent is shutting down.", frame({"type": "goodbye", "reason": "SIGTERM"}),
       [msg({"type": "goodbye", "reason": "SIGTERM"})], CLIENT)
vector(M, "exec-reply-sequence", "What yonder.exec sends back: output and logs of request 2, then its result, last.",
       frames({"type": "output", "id": 2, "stream": "stdout", "data": "aGkK"},
              {"type": "log", "id": 2, "level": "debug", "message": "spawned"},
              {"type": "output", "id": 2, "stream": "stderr", "data": "b29wcwo="},
              {"type": "result", "id": 2, "value": {"exitCode": 0, "signal": None}}),
       [msg({"type": "output", "id": 2, "stream": "stdout", "data": "aGkK"}),
        msg({"type": "log", "id": 2, "level": "debug", "message": "spawned"}),
        msg({"type": "output", "id": 2, "stream": "stderr", "data": "b29wcwo="}),
        msg({"type": "result", "id": 2, "value": {"exitCode": 0, "signal": None}})], CLIENT)

# requests, bad fields
def bad(name, description, obj, path, id=None, context=None, code="invalid_message"):
    vector(M, name, description, frame(obj), [err(code, path, id=id)], context)

bad("call-id-string", "An id must be a number; \"1\" is a string, so the error carries no id.",
    {"type": "call", "id": "1", "function": "yonder.ping"}, ["id"])
bad("call-id-negative", "Ids are not negative.", {"type": "call", "id": -1, "function": "yonder.ping"}, ["id"])
bad("call-id-fractional", "Ids are integers.", {"type": "call", "id": 1.5, "function": "yonder.ping"}, ["id"])
bad("call-id-too-large", "2^53 is one over the largest id.", {"type": "call", "id": MAX_ID + 1, "function": "yonder.ping"}, ["id"])
bad("call-id-missing", "A request needs an id.", {"type": "call", "function": "yonder.ping"}, ["id"])
bad("call-function-missing", "A call needs a function; the valid id is echoed.", {"type": "call", "id": 7}, ["function"], 7)
bad("call-function-not-a-string", "The function name is a string.", {"type": "call", "id": 7, "function": ["yonder.ping"]}, ["function"], 7)
bad("call-function-null", "A required field set to null is missing.", {"type": "call", "id": 7, "function": None}, ["function"], 7)
bad("call-timeout-string", "A timeout is a number of seconds.", {"type": "call", "id": 8, "function": "yonder.ping", "timeout": "5"},
    ["timeout"], 8)
bad("create-object-type-missing", "A create needs objectType.", {"type": "create", "id": 9, "arguments": {}}, ["objectType"], 9)
bad("create-reuse-not-boolean", "reuse is a boolean, not a string.", {"type": "create", "id": 9, "objectType": "Counter", "reuse": "yes"},
    ["reuse"], 9)
bad("create-name-not-a-string", "A name is a string.", {"type": "create", "id": 9, "objectType": "Counter", "name": 1}, ["name"], 9)
bad("lookup-name-missing", "A lookup needs a name.", {"type": "lookup", "id": 10}, ["name"], 10)
bad("invoke-arguments-not-an-array", "invoke's arguments are an array, one value per parameter.",
    {"type": "invoke", "id": 11, "object": "o7", "method": "m", "arguments": {"by": 5}}, ["arguments"], 11)
bad("invoke-method-missing", "An invoke needs a method.", {"type": "invoke", "id": 11, "object": "o7"}, ["method"], 11)
bad("release-object-not-a-string", "Object ids are strings.", {"type": "release", "id": 12, "object": 7}, ["object"], 12)
bad("cancel-id-missing", "A cancel needs the id of the request to cancel.", {"type": "cancel"}, ["id"])
bad("ping-nonce-not-an-integer", "A nonce is an integer.", {"type": "ping", "nonce": "abc"}, ["nonce"])
bad("goodbye-reason-not-a-string", "A reason is a string.", {"type": "goodbye", "reason": 3}, ["reason"])

# replies, bad fields (received by a client)
bad("output-stream-stdin", "output's stream is stdout or stderr.", {"type": "output", "id": 2, "stream": "stdin", "data": ""},
    ["stream"], 2, CLIENT)
bad("output-data-not-base64", "output's data is base64.", {"type": "output", "id": 2, "stream": "stdout", "data": "not base64!"},
    ["data"], 2, CLIENT)
bad("output-data-unpadded", "Base64 must be padded: \"YQ\" must be written \"YQ==\".",
    {"type": "output", "id": 2, "stream": "stdout", "data": "YQ"}, ["data"], 2, CLIENT)
bad("output-data-missing", "output needs data.", {"type": "output", "id": 2, "stream": "stdout"}, ["data"], 2, CLIENT)
bad("result-id-missing", "A result needs the id of its request.", {"type": "result", "value": 1}, ["id"], None, CLIENT)
bad("log-level-missing", "A log line needs a level.", {"type": "log", "id": 2, "message": "hi"}, ["level"], 2, CLIENT)
bad("log-metadata-value-not-a-string", "Metadata values are strings; the path names the key.",
    {"type": "log", "id": 2, "level": "info", "message": "hi", "metadata": {"count": 3}}, ["metadata", "count"], 2, CLIENT)
bad("error-code-missing", "An error needs a code.", {"type": "error", "id": 2, "message": "?"}, ["code"], 2, CLIENT)
bad("error-message-missing", "An error needs a message.", {"type": "error", "id": 2, "code": "internal"}, ["message"], 2, CLIENT)
bad("error-path-element-not-a-string", "Path elements are strings, array indexes included (\"0\", not 0).",
    {"type": "error", "id": 2, "code": "decode_failed", "message": "m", "path": ["arguments", 0]}, ["path", "1"], 2, CLIENT)
bad("error-id-negative", "An error's id follows the same rules as a request id.",
    {"type": "error", "id": -3, "code": "internal", "message": "m"}, ["id"], None, CLIENT)
bad("error-id-too-large", "An error's id is at most 2^53 - 1.",
    {"type": "error", "id": MAX_ID + 1, "code": "internal", "message": "m"}, ["id"], None, CLIENT)

# direction and state (the agent receives them after the handshake)
bad("result-sent-to-agent", "Replies travel from the agent to the client only; the valid id is echoed.",
    {"type": "result", "id": 3, "value": 1}, None, 3, code="unexpected_message")
bad("output-sent-to-agent", "output travels from the agent to the client only.",
    {"type": "output", "id": 3, "stream": "stdout", "data": ""}, None, 3, code="unexpected_message")
vector(M, "second-hello", "hello is exchanged once; a second one is refused but not fatal.",
       frames(HELLO, PING), [err("unexpected_message"), msg(PING)])

# ---------------------------------------------------------------- handshake.json
H = "handshake.json"
call = {"type": "call", "id": 1, "function": "yonder.ping", "arguments": "hi"}
vector(H, "hello", "The client's hello: protocol 2 and a nonce. The agent answers with its own hello (nonce and "
       "proof); the client's auth comes next.", frame(HELLO), [msg(HELLO)], FRESH)
vector(H, "hello-then-auth", "hello, then auth with the client's proof for both nonces: the handshake is done.",
       frames(HELLO, AUTH), [msg(HELLO), msg(AUTH)], FRESH)
hello_max = dict(HELLO, maxFrame=1048576)
vector(H, "hello-with-max-frame", "The client announces the largest frame it accepts.", frame(hello_max), [msg(hello_max)], FRESH)
minimal = {"type": "hello", "protocol": 2, "nonce": b64(CLIENT_NONCE)}
vector(H, "hello-minimal", "Only protocol and nonce are needed.", frame(minimal), [msg(minimal)], FRESH)
vector(H, "auth-then-pipelined-call", "A client may send requests right after auth, without waiting for anything.",
       frames(HELLO, AUTH, call), [msg(HELLO), msg(AUTH), msg(call)], FRESH)
vector(H, "call-before-auth", "After hello only auth is accepted; anything else is refused and the connection closed.",
       frames(HELLO, call), [msg(HELLO), err("unauthorized", fatal=True)], FRESH)
vector(H, "ping-before-auth", "Not even ping is accepted between hello and auth.",
       frames(HELLO, PING), [msg(HELLO), err("unauthorized", fatal=True)], FRESH)
vector(H, "wrong-proof", "A proof made with another token is refused and the connection closed.",
       frames(HELLO, {"type": "auth", "proof": b64(client_proof(token="guess"))}),
       [msg(HELLO), err("unauthorized", ["proof"], fatal=True)], FRESH)
vector(H, "agent-proof-reflected", "The agent's own proof sent back as the client's is refused (the labels differ).",
       frames(HELLO, {"type": "auth", "proof": b64(agent_proof())}),
       [msg(HELLO), err("unauthorized", ["proof"], fatal=True)], FRESH)
vector(H, "proof-for-another-agent-nonce", "A proof for another agent nonce (a replayed auth) is refused.",
       frames(HELLO, {"type": "auth", "proof": b64(client_proof(an=bytes(32)))}),
       [msg(HELLO), err("unauthorized", ["proof"], fatal=True)], FRESH)
vector(H, "proof-truncated", "A proof is the whole 32-byte HMAC; a prefix is wrong.",
       frames(HELLO, {"type": "auth", "proof": b64(client_proof()[:16])}),
       [msg(HELLO), err("unauthorized", ["proof"], fatal=True)], FRESH)
vector(H, "auth-without-proof", "auth needs proof.", frames(HELLO, {"type": "auth"}),
       [msg(HELLO), err("invalid_message", ["proof"], fatal=True)], FRESH)
vector(H, "proof-not-base64", "proof is base64.", frames(HELLO, {"type": "auth", "proof": "not base64!"}),
       [msg(HELLO), err("invalid_message", ["proof"], fatal=True)], FRESH)
vector(H, "auth-before-hello", "auth cannot come first.", frame(AUTH), [err("hello_required", fatal=True)], FRESH)
vector(H, "hello-then-second-hello", "After the handshake a second hello is unexpected_message, not fatal.",
       frames(HELLO, AUTH, HELLO, PING), [msg(HELLO), msg(AUTH), err("unexpected_message"), msg(PING)], FRESH)
vector(H, "second-auth", "After the handshake a second auth is unexpected_message, not fatal.",
       frames(HELLO, AUTH, AUTH, PING), [msg(HELLO), msg(AUTH), err("unexpected_message"), msg(PING)], FRESH)
vector(H, "call-before-hello", "Nothing but hello is accepted first; the frames after the error are never read.",
       frames({"type": "call", "id": 1, "function": "yonder.ping"}, HELLO), [err("hello_required", fatal=True)], FRESH)
vector(H, "ping-before-hello", "Not even ping is accepted before hello.", frame(PING), [err("hello_required", fatal=True)], FRESH)
vector(H, "goodbye-before-hello", "goodbye before hello is refused too.", frame({"type": "goodbye"}),
       [err("hello_required", fatal=True)], FRESH)
vector(H, "missing-nonce", "A hello without a nonce.", frame({k: v for k, v in HELLO.items() if k != "nonce"}),
       [err("invalid_message", ["nonce"], fatal=True)], FRESH)
vector(H, "null-nonce", "A null nonce is a missing nonce.", frame(dict(HELLO, nonce=None)),
       [err("invalid_message", ["nonce"], fatal=True)], FRESH)
vector(H, "short-nonce", "A nonce has 16 to 64 bytes; 8 is too few.", frame(dict(HELLO, nonce=b64(bytes(8)))),
       [err("invalid_message", ["nonce"], fatal=True)], FRESH)
vector(H, "long-nonce", "A nonce has 16 to 64 bytes; 65 is too many.", frame(dict(HELLO, nonce=b64(bytes(65)))),
       [err("invalid_message", ["nonce"], fatal=True)], FRESH)
vector(H, "nonce-not-base64", "A nonce is base64.", frame(dict(HELLO, nonce="***")),
       [err("invalid_message", ["nonce"], fatal=True)], FRESH)
vector(H, "nonce-not-a-string", "A nonce that is not a string makes the hello malformed.", frame(dict(HELLO, nonce=123)),
       [err("invalid_message", ["nonce"], fatal=True)], FRESH)
vector(H, "protocol-1-client", "A client of protocol 1 (which sent its token in hello) is refused before anything else.",
       frame({"type": "hello", "protocol": 1, "token": TOKEN, "name": "yonder-swift", "version": "0.1.0"}),
       [err("unsupported_version", ["protocol"], fatal=True)], FRESH)
vector(H, "unsupported-version", "Protocol 3 is not spoken by a version-2 agent.", frame(dict(HELLO, protocol=3)),
       [err("unsupported_version", ["protocol"], fatal=True)], FRESH)
vector(H, "version-zero", "Protocol 0 does not exist.", frame(dict(HELLO, protocol=0)),
       [err("unsupported_version", ["protocol"], fatal=True)], FRESH)
vector(H, "version-checked-before-nonce", "With a bad version and no nonce, the version is reported.",
       frame({"type": "hello", "protocol": 1}), [err("unsupported_version", ["protocol"], fatal=True)], FRESH)
vector(H, "version-missing", "hello needs protocol.", frame({k: v for k, v in HELLO.items() if k != "protocol"}),
       [err("invalid_message", ["protocol"], fatal=True)], FRESH)
vector(H, "version-as-string", "protocol is a number, not \"2\".", frame(dict(HELLO, protocol="2")),
       [err("invalid_message", ["protocol"], fatal=True)], FRESH)
vector(H, "max-frame-zero", "maxFrame is at least 1.", frame(dict(HELLO, maxFrame=0)),
       [err("invalid_message", ["maxFrame"], fatal=True)], FRESH)
vector(H, "unknown-type-before-hello", "A message that fails to decode before the handshake is fatal.",
       frame({"type": "frobnicate", "id": 1}), [err("unknown_type", ["type"], fatal=True)], FRESH)
vector(H, "malformed-call-before-hello", "Decoding comes before the handshake check: a malformed call reports its field, fatally.",
       frame({"type": "call", "function": "yonder.ping"}), [err("invalid_message", ["id"], fatal=True)], FRESH)
vector(H, "not-an-object-before-hello", "A payload that is not an object, first.", frame(b"[]"),
       [err("not_an_object", fatal=True)], FRESH)
vector(H, "result-before-hello", "A reply type before hello.", frame({"type": "result", "id": 1}),
       [err("hello_required", fatal=True)], FRESH)

# ---------------------------------------------------------------- proofs (proofs/proofs.json)
PROOFS = []
for token, cn, an, note in [
    (TOKEN, CLIENT_NONCE, AGENT_NONCE, "the nonces of the handshake vectors"),
    ("3f9a0c1d2e4b5a6978877665544332211ffeeddccbbaa99887766554433221100", bytes(16), bytes([0xff]) * 64,
     "a 64-hex-digit token as clusters make them; the shortest and the longest nonce"),
    ("p\u00e4ssw\u00f6rd", b"client-nonce-0123456789", b"agent-nonce-abcdefghij", "a token with non-ASCII characters: its UTF-8 bytes are the key"),
]:
    PROOFS.append({"description": note, "token": token, "clientNonce": b64(cn), "agentNonce": b64(an),
                   "agentProof": b64(agent_proof(token, cn, an)), "clientProof": b64(client_proof(token, cn, an))})


# ---------------------------------------------------------------- output
def check_schemas(files):
    try:
        import jsonschema
        from referencing import Registry, Resource
    except ImportError:
        print("jsonschema not installed: schemas not checked", file=sys.stderr)
        return
    resources = []
    for path in SCHEMA.rglob("*.json"):
        doc = json.loads(path.read_text())
        resources.append((path.resolve().as_uri(), Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    failures = 0
    for file, vectors in files.items():
        for v in vectors:
            for outcome in v["expect"]:
                if "message" not in outcome:
                    continue
                m = outcome["message"]
                if "attachments" in m:
                    m = dict(m, attachments=[len(base64.b64decode(a)) for a in m["attachments"]])
                uri = (SCHEMA / f"{m['type']}.json").resolve().as_uri()
                validator = jsonschema.Draft202012Validator({"$ref": uri}, registry=registry)
                for e in validator.iter_errors(m):
                    failures += 1
                    print(f"{file} {v['name']}: {e.message}", file=sys.stderr)
    if failures:
        sys.exit(f"{failures} schema failures")


def main():
    check = "--check" in sys.argv
    names = set()
    for vectors in FILES.values():
        for v in vectors:
            assert v["name"] not in names, v["name"]
            names.add(v["name"])
    check_schemas(FILES)
    stale = []
    for file, vectors in FILES.items():
        text = json.dumps({"vectors": vectors}, indent=2, ensure_ascii=False) + "\n"
        path = VECTORS / file
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(file)
        else:
            path.write_text(text)
    proofs_text = json.dumps({"proofs": PROOFS}, indent=2, ensure_ascii=False) + "\n"
    proofs_path = VECTORS / "proofs" / "proofs.json"
    if check:
        if not proofs_path.exists() or proofs_path.read_text() != proofs_text:
            stale.append("proofs/proofs.json")
    else:
        proofs_path.parent.mkdir(exist_ok=True)
        proofs_path.write_text(proofs_text)
    if stale:
        sys.exit(f"out of date: {', '.join(stale)}")
    print(f"{sum(len(v) for v in FILES.values())} vectors in {len(FILES)} files")


main()
