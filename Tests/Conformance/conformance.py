#!/usr/bin/env python3
"""An independent client of the Yonder wire protocol, written from protocol/PROTOCOL.md alone.

It starts an agent executable, speaks raw frames to it over loopback TCP and checks the
behaviour PROTOCOL.md promises. It uses nothing but Python's standard library, so it also
shows how little a client in another language needs.

    python3 Tests/Conformance/conformance.py PATH/TO/yonder-test-agent
"""
import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
import unittest

AGENT = None  # set from argv


class Agent:
    """A running agent process, started the way a bootstrapper starts one."""

    def __init__(self, executable, *extra, descriptors=None):
        self.token = secrets.token_hex(16)
        env = dict(os.environ, CONFORMANCE_TOKEN=self.token)

        def limit():
            if descriptors:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

        self.process = subprocess.Popen(
            [executable, "serve", "--port", "0", "--token-env", "CONFORMANCE_TOKEN", "--build", "conformance", *extra],
            stdout=subprocess.PIPE, stderr=None if os.environ.get("CONFORMANCE_STDERR") else subprocess.DEVNULL, env=env, preexec_fn=limit)
        deadline = time.time() + 30
        self.listening = None
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "listening":
                self.listening = event
                break
        if self.listening is None:
            self.process.kill()
            raise RuntimeError("the agent never printed its listening line")

    def stop(self):
        stop_process(self.process)


def stop_process(process):
    """SIGTERM, then SIGKILL if the process has not ended within 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def proof(label, token, client_nonce, agent_nonce):
    """PROTOCOL.md section 5: HMAC-SHA256 keyed by the token's UTF-8 bytes over the label, a
    zero byte, the client's nonce and the agent's nonce."""
    return hmac.new(token.encode(), label.encode() + b"\0" + client_nonce + agent_nonce, hashlib.sha256).digest()


def rss_mib(agent, pid=None):
    """The agent process's resident memory (or that of process `pid`), in MiB."""
    with open(f"/proc/{pid or agent.process.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def cpu_seconds(agent):
    """CPU time the agent process has used so far (user and system), in seconds."""
    with open(f"/proc/{agent.process.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    """The processes whose parent is `pid` (an agent's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


class Client:
    def __init__(self, agent, token=None, hello=True, port=None, binary=False):
        self.sock = socket.create_connection(("127.0.0.1", port or agent.listening["port"]), timeout=20)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.next_id = 0
        # Replies that came while another request's reply was awaited (requests in flight
        # together are answered in any order).
        self.early = {}
        self.agent_hello = None
        self.agent_proved = None
        if hello:
            self.handshake(token or agent.token, binary=binary)

    def handshake(self, token, binary=False):
        """hello with a nonce; check the agent's proof; answer with auth (even when the proof
        did not match, so that tests can see the agent refuse a wrong token). `binary`: say
        that this client accepts binary attachments (section 3)."""
        nonce = secrets.token_bytes(32)
        hello = {"type": "hello", "protocol": 2, "nonce": base64.b64encode(nonce).decode(),
                 "name": "conformance-py", "version": "1"}
        if binary:
            hello["binary"] = True
        self.send(hello)
        self.agent_hello = self.receive()
        assert self.agent_hello is not None and self.agent_hello["type"] == "hello", self.agent_hello
        agent_nonce = base64.b64decode(self.agent_hello["nonce"], validate=True)
        expected = proof("yonder-agent-proof", token, nonce, agent_nonce)
        self.agent_proved = hmac.compare_digest(base64.b64decode(self.agent_hello["proof"], validate=True), expected)
        client_proof = proof("yonder-client-proof", token, nonce, agent_nonce)
        self.send({"type": "auth", "proof": base64.b64encode(client_proof).decode()})

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, message, attachments=()):
        """Sends a message; `attachments` (bytes) are announced in it and follow it, one frame each."""
        if attachments:
            message = dict(message, attachments=[len(a) for a in attachments])
        payload = json.dumps(message).encode()
        frames = [struct.pack(">I", len(payload)) + payload]
        frames += [struct.pack(">I", len(a)) + a for a in attachments]
        self.send_raw(b"".join(frames))

    def frame(self):
        """The next frame's payload, or None at end of stream."""
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack(">I", self.buffer[:4])
                assert 0 < length <= 64 * 1024 * 1024, f"bad frame length {length}"
                if len(self.buffer) >= 4 + length:
                    payload, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
                    return payload
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return None
            self.buffer += chunk

    def receive(self):
        """The next message, or None at end of stream. The bytes of the attachments a message
        announces are read with it, into its `_attachments`."""
        payload = self.frame()
        if payload is None:
            return None
        message = json.loads(payload.decode("utf-8"))
        assert isinstance(message, dict) and isinstance(message.get("type"), str)
        if message.get("attachments"):
            message["_attachments"] = []
            for length in message["attachments"]:
                data = self.frame()
                assert data is not None and len(data) == length, (length, data and len(data))
                message["_attachments"].append(data)
        return message

    def request(self, message):
        self.next_id += 1
        message = dict(message, id=self.next_id)
        self.send(message)
        return self.next_id

    def reply(self, request_id):
        """Collects log/output messages of a request, then its reply. Replies to other
        requests that come first are kept for their own `reply` call."""
        extras = []
        while True:
            if request_id in self.early:
                return self.early.pop(request_id), extras
            message = self.receive()
            assert message is not None, "the connection closed before the reply"
            if message.get("id") != request_id:
                if message.get("id") is not None and message["type"] not in ("log", "output"):
                    self.early[message["id"]] = message
                continue
            if message["type"] in ("log", "output"):
                extras.append(message)
                continue
            return message, extras

    def call(self, function, arguments=None, attachments=(), **fields):
        self.next_id += 1
        self.send(dict({"type": "call", "function": function, "arguments": arguments, "id": self.next_id}, **fields),
                  attachments)
        return self.reply(self.next_id)

    def ping_latencies(self, count, pause=0.0):
        """Seconds each of `count` sequential yonder.ping calls took (each answer checked)."""
        latencies = []
        for i in range(count):
            started = time.monotonic()
            reply, _ = self.call("yonder.ping", i)
            latencies.append(time.monotonic() - started)
            assert reply.get("value") == i, reply
            time.sleep(pause)
        return latencies

    def close(self):
        self.sock.close()


class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.agent = Agent(AGENT)

    @classmethod
    def tearDownClass(cls):
        cls.agent.stop()

    def connect(self, **kwargs):
        client = Client(self.agent, **kwargs)
        self.addCleanup(client.close)
        return client

    def test_listening_line(self):
        line = self.agent.listening
        self.assertEqual(line["host"], "127.0.0.1")
        self.assertEqual(line["protocol"], 2)
        self.assertEqual(line["build"], "conformance")
        self.assertGreater(line["port"], 0)

    def test_handshake_and_ping_pipelined(self):
        client = self.connect()
        hello = client.agent_hello
        self.assertEqual(hello["protocol"], 2)
        self.assertEqual(hello["build"], "conformance")
        self.assertTrue(client.agent_proved, "the agent's proof does not match the token")
        self.assertNotIn("token", hello)
        self.assertIsInstance(hello.get("instance"), str)
        # Requests may follow auth at once, without waiting for anything.
        request_id = client.request({"type": "call", "function": "yonder.ping", "arguments": {"a": [1, 2.5, None, "x"]}})
        reply, _ = client.reply(request_id)
        self.assertEqual(reply, {"type": "result", "id": request_id, "value": {"a": [1, 2.5, None, "x"]}})

    def test_agent_nonce_is_fresh_per_connection(self):
        a, b = self.connect(), self.connect()
        self.assertNotEqual(a.agent_hello["nonce"], b.agent_hello["nonce"])
        self.assertEqual(a.agent_hello["instance"], b.agent_hello["instance"])

    def test_protocol_1_hello_is_refused(self):
        client = self.connect(hello=False)
        client.send({"type": "hello", "protocol": 1, "token": self.agent.token})
        message = client.receive()
        self.assertEqual((message["type"], message["code"]), ("error", "unsupported_version"))
        self.assertIsNone(client.receive())

    def test_call_between_hello_and_auth_is_fatal(self):
        client = self.connect(hello=False)
        nonce = secrets.token_bytes(16)
        client.send({"type": "hello", "protocol": 2, "nonce": base64.b64encode(nonce).decode()})
        self.assertEqual(client.receive()["type"], "hello")
        client.send({"type": "call", "id": 1, "function": "yonder.ping"})
        message = client.receive()
        self.assertEqual((message["type"], message["code"]), ("error", "unauthorized"))
        self.assertIsNone(client.receive())

    def test_new_token_file(self):
        import tempfile
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "agent.json")
        process = subprocess.Popen([AGENT, "serve", "--port", "0", "--new-token-file", path, "--build", "fresh"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            listening = json.loads(process.stdout.readline())
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            with open(path) as f:
                record = json.load(f)
            self.assertEqual((record["port"], record["instance"]), (listening["port"], listening["instance"]))
            self.assertNotIn("token", listening)
            client = Client(None, token=record["token"], port=record["port"])
            self.addCleanup(client.close)
            self.assertTrue(client.agent_proved)
            reply, _ = client.call("yonder.ping", 7)
            self.assertEqual(reply["value"], 7)
        finally:
            process.terminate()
            process.wait(10)
            import shutil
            shutil.rmtree(folder)

    def test_handshake_has_a_deadline(self):
        agent = Agent(AGENT, "--handshake-timeout", "1")
        self.addCleanup(agent.stop)
        started = time.time()
        client = Client(agent, hello=False)
        self.addCleanup(client.close)
        message = client.receive()
        self.assertEqual((message["type"], message["code"]), ("error", "timed_out"))
        self.assertIsNone(client.receive())
        self.assertLess(time.time() - started, 3)

    def test_first_frame_is_small(self):
        client = self.connect(hello=False)
        # A hello is tiny: a peer without the token cannot make the agent buffer 64 MiB.
        client.send_raw(struct.pack(">I", 100000) + b"{")
        message = client.receive()
        self.assertEqual((message["type"], message["code"]), ("error", "frame_too_large"))
        self.assertIsNone(client.receive())

    def test_unauthenticated_connections_are_capped(self):
        agent = Agent(AGENT, "--max-unauthenticated", "4")
        self.addCleanup(agent.stop)
        idle = [Client(agent, hello=False) for _ in range(4)]
        for c in idle:
            self.addCleanup(c.close)
        time.sleep(0.2)
        extra = Client(agent, hello=False)
        self.addCleanup(extra.close)
        self.assertIsNone(extra.receive(), "a fifth connection in the handshake is closed at once")
        # Authenticated connections do not count: once the idle ones are gone, a client works.
        for c in idle:
            c.close()
        time.sleep(0.2)
        client = Client(agent)
        self.addCleanup(client.close)
        self.assertTrue(client.agent_proved)
        reply, _ = client.call("yonder.ping", 3)
        self.assertEqual(reply["value"], 3)

    def test_a_client_that_stops_reading_slows_only_itself(self):
        import threading
        agent = Agent(AGENT, "--max-in-flight", "64")
        self.addCleanup(agent.stop)

        client = Client(agent)
        self.addCleanup(client.close)
        before = rss_mib(agent)
        count = 100000
        payload = "x" * 200
        frames = b"".join(
            (lambda body: struct.pack(">I", len(body)) + body)(
                json.dumps({"type": "call", "id": i, "function": "yonder.ping", "arguments": payload}).encode())
            for i in range(1, count + 1))
        sender = threading.Thread(target=client.send_raw, args=(frames,))
        sender.start()
        time.sleep(3)  # the client reads nothing meanwhile
        peak = rss_mib(agent)
        # Another client is served at once all the same.
        other = Client(agent)
        self.addCleanup(other.close)
        latencies = other.ping_latencies(500)
        ordered = sorted(latencies)
        p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
        print(f"\n  another client's ping p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms meanwhile",
              file=sys.stderr)
        # An agent stuck on the first client's backlog would answer late or never, and one that
        # spins on it would answer every ping late; either fails here. The bounds are loose
        # enough for a machine busy with other work (a quiet one measures well under 1 ms).
        self.assertLess(p50, 0.005)
        self.assertLess(p99, 0.1)
        # Now the first client reads: every request is answered, none is lost.
        answered = 0
        while answered < count:
            message = client.receive()
            self.assertIsNotNone(message)
            if message["type"] == "result":
                answered += 1
        sender.join()
        print(f"\n  agent RSS {before:.0f} MiB -> {peak:.0f} MiB with {count} unread requests", file=sys.stderr)
        self.assertLess(peak - before, 48, f"the agent grew from {before:.0f} to {peak:.0f} MiB for a client that read nothing")

    def test_memory_is_given_back_after_large_calls(self):
        agent = Agent(AGENT)
        self.addCleanup(agent.stop)
        client = Client(agent)
        reply, _ = client.call("Echo", "warm")  # the functions' worker is up
        client.close()
        time.sleep(0.5)
        (worker,) = children(agent.process.pid)
        idle = (rss_mib(agent), rss_mib(agent, worker))
        big = "y" * (40 << 20)
        for _ in range(3):
            client = Client(agent)
            for function in ("yonder.ping", "Echo"):  # a built-in, and a user function in the worker
                reply, _ = client.call(function, big)
                self.assertEqual(len(reply["value"]), len(big))
            client.close()
        time.sleep(1)
        after = (rss_mib(agent), rss_mib(agent, worker))
        print(f"\n  agent RSS {idle[0]:.0f} MiB idle, {after[0]:.0f} MiB after 40 MiB calls; its worker {idle[1]:.0f} -> {after[1]:.0f} MiB",
              file=sys.stderr)
        self.assertLess(after[0] - idle[0], 8, f"the agent kept {after[0] - idle[0]:.0f} MiB after the calls ended")
        self.assertLess(after[1] - idle[1], 8, f"the worker kept {after[1] - idle[1]:.0f} MiB after the calls ended")

    def test_memory_is_given_back_after_large_files_on_an_open_connection(self):
        agent = Agent(AGENT)
        self.addCleanup(agent.stop)
        client = Client(agent, binary=True)
        self.addCleanup(client.close)
        path = f"/tmp/yonder-conformance-{secrets.token_hex(4)}"
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        piece = 8 << 20
        with open(path, "wb") as f:
            f.write(secrets.token_bytes(8 * piece))
        client.call("yonder.ping", "warm")
        time.sleep(0.5)
        idle = rss_mib(agent)
        for _ in range(2):  # the file's pieces, four asked for at a time, as clients do
            for first in range(0, 8, 4):
                ids = [client.request({"type": "call", "function": "yonder.getFile",
                                       "arguments": {"path": path, "offset": index * piece, "length": piece}})
                       for index in range(first, first + 4)]
                for request in ids:
                    reply, _ = client.reply(request)
                    self.assertEqual(len(reply["_attachments"][0]), piece)
        busy = rss_mib(agent)
        time.sleep(1.5)  # the connection stays open
        after = rss_mib(agent)
        print(f"\n  agent RSS {idle:.0f} MiB idle, {busy:.0f} MiB just after reading 128 MiB in 8 MiB pieces, "
              f"{after:.0f} MiB a moment later", file=sys.stderr)
        self.assertLess(after - idle, 8, f"the agent kept {after - idle:.0f} MiB after its requests ended")

    def test_thousands_of_idle_connections_cost_almost_nothing(self):
        agent = Agent(AGENT, "--handshake-timeout", "4")
        self.addCleanup(agent.stop)
        client = Client(agent)
        self.addCleanup(client.close)
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096 and (hard == resource.RLIM_INFINITY or hard >= 4096):
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
        idle = []
        self.addCleanup(lambda: [c.close() for c in idle])
        for _ in range(2000):  # no hello, ever: 64 wait for the deadline, the rest are closed at once
            idle.append(socket.create_connection(("127.0.0.1", agent.listening["port"]), timeout=5))
        time.sleep(0.5)
        before = cpu_seconds(agent)
        latencies = client.ping_latencies(20, pause=0.1)
        used = cpu_seconds(agent) - before
        print(f"\n  2000 idle connections: {used:.2f} s of CPU in 2 s, slowest ping {max(latencies) * 1000:.1f} ms", file=sys.stderr)
        self.assertLess(used, 0.1, f"the agent used {used:.2f} s of CPU in 2 s (over 5%) with idle connections")
        self.assertLess(max(latencies), 0.05, "an authenticated client waited over 50 ms")

    def test_out_of_descriptors_the_agent_backs_off_and_serves_its_clients(self):
        agent = Agent(AGENT, "--max-unauthenticated", "1000", "--handshake-timeout", "3", descriptors=64)
        self.addCleanup(agent.stop)
        client = Client(agent)
        self.addCleanup(client.close)
        reply, _ = client.call("yonder.ping", 1)

        # Idle connections until the agent has no descriptor left (the kernel still queues more).
        idle = []
        for _ in range(90):
            idle.append(socket.create_connection(("127.0.0.1", agent.listening["port"]), timeout=5))
        self.addCleanup(lambda: [c.close() for c in idle])
        time.sleep(0.5)
        before = cpu_seconds(agent)
        time.sleep(2)
        used = cpu_seconds(agent) - before
        self.assertLess(used, 0.1, f"the agent used {used:.2f} s of CPU in 2 s (over 5%) while out of descriptors")
        # Its authenticated client is served all along, at once.
        self.assertLess(max(client.ping_latencies(1)), 0.05)
        # Once the idle connections go (the handshake deadline), new clients get in again.
        for c in idle:
            c.close()
        time.sleep(1.5)
        again = Client(agent)
        self.addCleanup(again.close)
        reply, _ = again.call("yonder.ping", 3)
        self.assertEqual(reply["value"], 3)
        self.assertIsNone(agent.process.poll(), "the agent is still running")

    def test_a_stream_ending_inside_a_frame_gets_truncated_frame(self):
        client = self.connect()
        client.send_raw(struct.pack(">I", 50) + b'{"type":"call"')
        client.sock.shutdown(socket.SHUT_WR)
        message = client.receive()
        self.assertEqual((message["type"], message["code"]), ("error", "truncated_frame"))
        self.assertIsNone(client.receive())

    def test_the_token_is_not_left_in_the_agents_environment(self):
        with open(f"/proc/{self.agent.process.pid}/environ", "rb") as f:
            environment = f.read()
        self.assertNotIn(self.agent.token.encode(), environment)

    def test_exec_output_to_a_client_that_stops_reading_pauses_the_command(self):
        agent = Agent(AGENT)
        self.addCleanup(agent.stop)

        client = Client(agent)
        self.addCleanup(client.close)
        before = rss_mib(agent)
        total = 200 * 1024 * 1024
        request_id = client.request({"type": "call", "function": "yonder.exec",
                                     "arguments": {"command": ["head", "-c", str(total), "/dev/zero"]}})
        time.sleep(3)  # the client reads nothing meanwhile
        peak = rss_mib(agent)
        received = 0
        while True:
            message = client.receive()
            self.assertIsNotNone(message)
            if message.get("id") != request_id:
                continue
            if message["type"] == "output":
                received += len(base64.b64decode(message["data"]))
            elif message["type"] == "result":
                self.assertEqual(message["value"]["exitCode"], 0)
                break
            else:
                self.fail(f"unexpected {message}")
        self.assertEqual(received, total)
        print(f"\n  agent RSS {before:.0f} MiB -> {peak:.0f} MiB while exec wrote {total >> 20} MiB to a client that read nothing", file=sys.stderr)
        self.assertLess(peak - before, 48, f"the agent grew from {before:.0f} to {peak:.0f} MiB")

    def test_wrong_token_is_fatal(self):
        client = self.connect(token="not-the-token")
        self.assertFalse(client.agent_proved)
        message = client.receive()
        self.assertEqual(message["type"], "error")
        self.assertEqual(message["code"], "unauthorized")
        self.assertNotIn("id", message)
        self.assertNotIn(self.agent.token, json.dumps(message))
        self.assertIsNone(client.receive())

    def test_call_before_hello(self):
        client = self.connect(hello=False)
        client.send({"type": "call", "id": 1, "function": "yonder.ping"})
        message = client.receive()
        self.assertEqual(message["code"], "hello_required")
        self.assertIsNone(client.receive())

    def test_zero_length_frame_is_fatal(self):
        client = self.connect()
        self.assertEqual(client.agent_hello["type"], "hello")
        client.send_raw(b"\x00\x00\x00\x00")
        message = client.receive()
        self.assertEqual((message["type"], message["code"]), ("error", "empty_frame"))
        self.assertIsNone(client.receive())

    def test_unknown_type_is_not_fatal(self):
        client = self.connect()
        self.assertEqual(client.agent_hello["type"], "hello")
        client.send({"type": "teleport", "id": 77})
        message = client.receive()
        self.assertEqual((message["code"], message.get("id")), ("unknown_type", 77))
        reply, _ = client.call("yonder.ping", 5)
        self.assertEqual(reply["value"], 5)

    def test_user_function_and_decode_error_path(self):
        client = self.connect()
        reply, _ = client.call("Add", [1, 2, 3, 4])
        self.assertEqual(reply["value"], 10)
        reply, _ = client.call("Mirror", {"x": 1, "y": "two"})
        self.assertEqual(reply["type"], "error")
        self.assertEqual(reply["code"], "decode_failed")
        self.assertEqual(reply["path"], ["arguments", "y"])

    def test_binary_attachments_both_ways(self):
        client = self.connect(binary=True)
        self.assertIs(client.agent_hello.get("binary"), True)
        big = secrets.token_bytes(5 << 20)
        reply, _ = client.call("yonder.ping", {"blob": {"$attachment": 0}}, attachments=[big])
        self.assertEqual(reply["value"], {"blob": {"$attachment": 0}})
        self.assertEqual(reply["_attachments"], [big])
        # A user function (in its worker) reads Data from attachments and from base64 alike,
        # and answers with attachments; an empty Data is always "".
        parts = [{"$attachment": 1}, base64.b64encode(b"\x07\x08").decode(), {"$attachment": 0}, ""]
        reply, _ = client.call("ReverseChunks", {"label": "mix", "parts": parts}, attachments=[b"\x00\x01\x02", b"\xff"])
        self.assertEqual(reply["type"], "result", reply)
        self.assertEqual(reply["value"]["label"], "MIX")
        values = reply["value"]["parts"]
        self.assertEqual(values[0], "")
        decoded = [reply["_attachments"][p["$attachment"]] for p in values[1:]]
        self.assertEqual(decoded, [b"\x02\x01\x00", b"\x08\x07", b"\xff"])

    def test_a_client_without_binary_gets_base64(self):
        client = self.connect()
        self.assertIs(client.agent_hello.get("binary"), True)
        # It may still send attachments (the agent accepts them); the answer has none.
        reply, _ = client.call("yonder.ping", [{"$attachment": 0}], attachments=[b"\x00\xff"])
        self.assertEqual(reply["value"], [base64.b64encode(b"\x00\xff").decode()])
        self.assertNotIn("attachments", reply)
        reply, _ = client.call("ReverseChunks", {"label": "b", "parts": [base64.b64encode(b"ab").decode()]})
        self.assertEqual(reply["value"], {"label": "B", "parts": [base64.b64encode(b"ba").decode()]})

    def test_a_bad_attachment_is_fatal(self):
        client = self.connect(binary=True)
        payload = json.dumps({"type": "call", "id": 1, "function": "yonder.ping", "attachments": [5]}).encode()
        client.send_raw(struct.pack(">I", len(payload)) + payload + struct.pack(">I", 3) + b"abc")
        error = client.receive()
        self.assertEqual((error["type"], error["code"], error.get("id")), ("error", "invalid_attachment", None))
        self.assertIsNone(client.receive())
        other = self.connect(binary=True)
        other.send({"type": "call", "id": 2, "function": "yonder.ping", "attachments": [0]})
        error = other.receive()
        self.assertEqual((error["code"], error.get("path")), ("invalid_attachment", ["attachments", "0"]))
        self.assertIsNone(other.receive())

    def test_remote_error_and_unknown_function(self):
        client = self.connect()
        reply, _ = client.call("Fail", "on purpose")
        self.assertEqual(reply["code"], "remote_error")
        self.assertIn("FixtureError", reply["errorType"])
        self.assertIn("on purpose", reply["message"])
        reply, _ = client.call("NoSuchFunction")
        self.assertEqual(reply["code"], "unknown_function")

    def test_a_trapping_function_fails_with_crashed_and_the_agent_lives_on(self):
        client = self.connect()
        running = client.request({"type": "call", "function": "Sleep", "arguments": 5_000})
        trapping = client.request({"type": "call", "function": "Overflow", "arguments": 1})
        replies = {}
        while len(replies) < 2:
            message = client.receive()
            self.assertIsNotNone(message)
            if message.get("id") in (running, trapping):
                replies[message["id"]] = message
        reply = replies[trapping]
        self.assertEqual(reply["code"], "crashed")
        self.assertIn("Overflow", reply["message"])
        self.assertTrue("SIGILL" in reply["message"] or "SIGTRAP" in reply["message"], reply["message"])
        # A call running in the same worker process fails with it; the agent serves on.
        self.assertEqual(replies[running]["code"], "crashed")
        reply, _ = client.call("Add", [1, 2])
        self.assertEqual(reply["value"], 3)
        reply, _ = client.call("yonder.ping", "still here")
        self.assertEqual(reply["value"], "still here")

    def test_objects_are_capped_and_each_has_a_process(self):
        agent = Agent(AGENT, "--max-objects", "2")
        self.addCleanup(agent.stop)
        client = Client(agent)
        self.addCleanup(client.close)
        references = []
        for start in range(2):
            reply, _ = client.reply(client.request({"type": "create", "objectType": "Counter", "arguments": {"start": start}}))
            references.append(reply["value"]["object"])
        reply, _ = client.reply(client.request({"type": "create", "objectType": "Counter", "arguments": {"start": 9}}))
        self.assertEqual(reply["code"], "unavailable")
        self.assertIn("--max-objects", reply["message"])
        # One worker for the functions, one per object.
        self.assertEqual(len(children(agent.process.pid)), 3)
        reply, _ = client.reply(client.request({"type": "release", "object": references[0]}))
        self.assertEqual(reply["type"], "result")
        reply, _ = client.reply(client.request({"type": "create", "objectType": "Counter", "arguments": {"start": 9}}))
        self.assertEqual(reply["type"], "result")

    def test_named_object_outlives_its_connection(self):
        first = Client(self.agent)
        name = "conformance-" + secrets.token_hex(4)
        reply, _ = first.reply(first.request({"type": "create", "objectType": "Counter", "arguments": {"start": 3}, "name": name}))
        self.assertEqual(reply["type"], "result")
        reference = reply["value"]
        self.assertEqual((reference["objectType"], reference["name"]), ("Counter", name))
        first.close()
        second = self.connect()
        reply, _ = second.reply(second.request({"type": "lookup", "name": name}))
        self.assertEqual(reply["value"]["object"], reference["object"])
        reply, _ = second.reply(second.request({"type": "create", "objectType": "Counter", "arguments": {"start": 0}, "name": name}))
        self.assertEqual(reply["code"], "name_taken")
        reply, _ = second.reply(second.request({"type": "release", "object": reference["object"]}))
        self.assertEqual(reply["type"], "result")
        reply, _ = second.reply(second.request({"type": "lookup", "name": name}))
        self.assertEqual(reply["code"], "unknown_object")

    def test_exec_streams_output_before_result(self):
        client = self.connect()
        reply, extras = client.call("yonder.exec", {
            "command": ["sh", "-c", "echo out; echo err >&2; exit 3"],
            "env": {"CONFORMANCE": "1"}})
        self.assertEqual(reply["value"], {"exitCode": 3, "signal": None})
        streams = {"stdout": b"", "stderr": b""}
        for message in extras:
            streams[message["stream"]] += base64.b64decode(message["data"])
        self.assertEqual(streams, {"stdout": b"out\n", "stderr": b"err\n"})

    def test_exec_does_not_inherit_the_token(self):
        client = self.connect()
        reply, extras = client.call("yonder.exec", {"command": ["env"]})
        output = b"".join(base64.b64decode(m["data"]) for m in extras)
        self.assertEqual(reply["value"]["exitCode"], 0)
        self.assertNotIn(self.agent.token.encode(), output)

    def test_put_and_get_file(self):
        client = self.connect()
        data = secrets.token_bytes(300_000)
        path = f"/tmp/yonder-conformance-{secrets.token_hex(4)}"
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        reply, _ = client.call("yonder.putFile", {"path": path, "data": base64.b64encode(data[:100_000]).decode(), "mode": 0o600})
        self.assertEqual(reply["value"], {"size": 100_000, "offset": 0})
        reply, _ = client.call("yonder.putFile", {"path": path, "data": base64.b64encode(data[100_000:]).decode(), "append": True})
        self.assertEqual(reply["value"], {"size": 300_000, "offset": 100_000})
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        received, offset = b"", 0
        while True:
            reply, _ = client.call("yonder.getFile", {"path": path, "offset": offset, "length": 128_000})
            chunk = base64.b64decode(reply["value"]["data"])
            received += chunk
            offset += len(chunk)
            if reply["value"]["eof"]:
                break
        self.assertEqual(received, data)
        reply, _ = client.call("yonder.getFile", {"path": path + "-missing"})
        self.assertEqual(reply["code"], "file_error")

    def test_put_and_get_file_with_attachments(self):
        client = self.connect(binary=True)
        data = secrets.token_bytes(3 << 20)
        path = f"/tmp/yonder-conformance-{secrets.token_hex(4)}"
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        reply, _ = client.call("yonder.putFile", {"path": path, "data": {"$attachment": 0}}, attachments=[data])
        self.assertEqual(reply["value"], {"size": len(data), "offset": 0})
        reply, _ = client.call("yonder.getFile", {"path": path, "offset": 1, "length": 2 << 20})
        self.assertEqual(reply["value"]["data"], {"$attachment": 0})
        self.assertEqual(reply["_attachments"], [data[1:1 + (2 << 20)]])
        self.assertEqual((reply["value"]["size"], reply["value"]["eof"]), (len(data), False))
        # An empty piece is "" (an attachment holds at least one byte).
        reply, _ = client.call("yonder.getFile", {"path": path, "offset": len(data)})
        self.assertEqual((reply["value"]["data"], reply["value"]["eof"]), ("", True))

    def test_put_file_pieces_at_offsets_at_once(self):
        client = self.connect()
        data = secrets.token_bytes(400_000)
        path = f"/tmp/yonder-conformance-{secrets.token_hex(4)}"
        self.addCleanup(lambda: os.path.exists(path) and os.remove(path))
        piece = lambda start, **more: {"path": path, "data": base64.b64encode(data[start:start + 100_000]).decode(), **more}
        reply, _ = client.call("yonder.putFile", piece(0))
        self.assertEqual(reply["value"], {"size": 100_000, "offset": 0})
        # The other three in flight together, the last first: each lands where it says.
        ids = [client.request({"type": "call", "function": "yonder.putFile", "arguments": piece(start, offset=start)})
               for start in (300_000, 100_000, 200_000)]
        sizes = []
        for id, start in zip(ids, (300_000, 100_000, 200_000)):
            # The agent runs them at once: their replies come in any order.
            reply, _ = client.reply(id)
            self.assertEqual(reply["value"]["offset"], start)
            sizes.append(reply["value"]["size"])
        self.assertEqual(max(sizes), 400_000)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)
        # An offset rewrites in place: neither truncates nor appends.
        reply, _ = client.call("yonder.putFile", {"path": path, "data": base64.b64encode(b"abc").decode(), "offset": 10})
        self.assertEqual(reply["value"], {"size": 400_000, "offset": 10})
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data[:10] + b"abc" + data[13:])
        for bad in ({"offset": -1}, {"offset": 5, "append": True}):
            reply, _ = client.call("yonder.putFile", {"path": path, "data": "", **bad})
            self.assertEqual(reply["code"], "invalid_arguments", bad)
            self.assertEqual(reply["path"], ["arguments", "offset"])
        with open(path, "rb") as f:
            self.assertEqual(len(f.read()), 400_000)

    def test_cancel_and_concurrency(self):
        client = self.connect()
        slow = client.request({"type": "call", "function": "Sleep", "arguments": 30_000})
        fast = client.request({"type": "call", "function": "yonder.ping", "arguments": "fast"})
        reply, _ = client.reply(fast)
        self.assertEqual(reply["value"], "fast")
        client.send({"type": "cancel", "id": slow})
        reply, _ = client.reply(slow)
        self.assertEqual(reply["code"], "cancelled")

    def test_timeout(self):
        client = self.connect()
        reply, _ = client.call("Sleep", 30_000, timeout=0.2)
        self.assertEqual(reply["code"], "timed_out")

    def test_logs_arrive_before_result(self):
        client = self.connect()
        reply, extras = client.call("LogLines", 5)
        self.assertEqual(reply["value"], 5)
        self.assertEqual([m["message"] for m in extras if m["type"] == "log"], [f"line {i}" for i in range(5)])

    def test_ping_pong_and_goodbye(self):
        client = self.connect()
        self.assertEqual(client.agent_hello["type"], "hello")
        client.send({"type": "ping", "nonce": 42})
        self.assertEqual(client.receive(), {"type": "pong", "nonce": 42})
        client.send({"type": "goodbye"})
        while True:
            message = client.receive()
            if message is None:
                break
            self.assertEqual(message["type"], "goodbye")


    def test_pipelined_pings_then_goodbye_are_all_answered_before_the_close(self):
        client = self.connect()
        frames = []
        for i in range(200):
            payload = json.dumps({"type": "call", "id": 1000 + i, "function": "yonder.ping", "arguments": i}).encode()
            frames.append(struct.pack(">I", len(payload)) + payload)
        for payload in (b'{"type":"ping","nonce":7}', b'{"type":"goodbye"}'):
            frames.append(struct.pack(">I", len(payload)) + payload)
        client.send_raw(b"".join(frames))
        for i in range(200):
            self.assertEqual(client.receive(), {"type": "result", "id": 1000 + i, "value": i})
        self.assertEqual(client.receive(), {"type": "pong", "nonce": 7})
        self.assertIsNone(client.receive())

    def test_list_files_gives_sizes_and_hashes(self):
        import tempfile
        folder = tempfile.mkdtemp(prefix="yonder-conformance-list-")
        self.addCleanup(lambda: __import__("shutil").rmtree(folder, ignore_errors=True))
        os.makedirs(f"{folder}/sub")
        with open(f"{folder}/a.txt", "wb") as f:
            f.write(b"alpha\n")
        with open(f"{folder}/sub/run.sh", "wb") as f:
            f.write(b"#!/bin/sh\n")
        os.chmod(f"{folder}/sub/run.sh", 0o755)
        os.symlink("/etc/passwd", f"{folder}/link")
        client = self.connect()
        reply, _ = client.call("yonder.listFiles", {"path": folder})
        self.assertEqual(reply["value"], {"exists": True, "files": [
            {"path": "a.txt", "size": 6, "sha256": hashlib.sha256(b"alpha\n").hexdigest(), "executable": False},
            {"path": "sub/run.sh", "size": 10, "sha256": hashlib.sha256(b"#!/bin/sh\n").hexdigest(), "executable": True}]})
        reply, _ = client.call("yonder.listFiles", {"path": f"{folder}/a.txt"})
        self.assertEqual([f["path"] for f in reply["value"]["files"]], [""])
        reply, _ = client.call("yonder.listFiles", {"path": f"{folder}/none"})
        self.assertEqual(reply["value"], {"exists": False, "files": []})


class Jobs(unittest.TestCase):
    """The job table (PROTOCOL.md section 9, yonder.job.*), on an agent started with --jobs-dir."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.folder = tempfile.mkdtemp(prefix="yonder-conformance-jobs-")
        cls.agent = Agent(AGENT, "--jobs-dir", cls.folder)

    @classmethod
    def tearDownClass(cls):
        cls.agent.stop()
        import shutil
        shutil.rmtree(cls.folder, ignore_errors=True)

    def connect(self):
        client = Client(self.agent)
        self.addCleanup(client.close)
        return client

    def output(self, extras):
        return b"".join(base64.b64decode(m["data"]) for m in extras)

    def test_a_job_outlives_its_connection_and_its_output_is_kept(self):
        first = self.connect()
        reply, _ = first.call("yonder.job.start", {"command": ["sh", "-c", "echo one; echo two >&2; sleep 1; echo three; exit 4"],
                                                   "env": {"WHO": "conformance"}})
        job = reply["value"]
        self.assertEqual(job["state"], "running")
        self.assertIsInstance(job["id"], int)
        first.close()  # the job goes on without its client
        second = self.connect()
        reply, extras = second.call("yonder.job.logs", {"id": job["id"], "follow": True})
        self.assertEqual(self.output(extras), b"one\ntwo\nthree\n")
        result = reply["value"]
        self.assertEqual(result["offset"], len(b"one\ntwo\nthree\n"))
        self.assertEqual(result["job"]["state"], "failed")
        self.assertEqual(result["job"]["status"], {"exitCode": 4, "signal": None})
        # Read again from an offset, without following: only the rest.
        reply, extras = second.call("yonder.job.logs", {"id": job["id"], "offset": 8})
        self.assertEqual(self.output(extras), b"three\n")
        reply, _ = second.call("yonder.job.list")
        listed = [j for j in reply["value"] if j["id"] == job["id"]]
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["command"][0], "sh")
        self.assertIsNotNone(listed[0]["ended"])

    def test_cancel_stops_the_process_group_and_ids_are_taken_once(self):
        client = self.connect()
        reply, _ = client.call("yonder.job.start", {"command": ["sh", "-c", "sleep 300 & sleep 300; wait"], "id": 4242})
        self.assertEqual(reply["value"]["id"], 4242)
        reply, _ = client.call("yonder.job.start", {"command": ["true"], "id": 4242})
        self.assertEqual(reply["code"], "invalid_arguments")
        self.assertIn("exists already", reply["message"])
        reply, _ = client.call("yonder.job.cancel", {"id": 4242})
        self.assertEqual(reply["value"]["state"], "cancelled")
        self.assertEqual(reply["value"]["status"]["signal"], 15)
        # Nothing of the job's process group is left, its background sleep included (given a
        # moment: the answer comes once the job's own process has ended, and its orphaned
        # child may still be on its way out on a busy machine).
        deadline = time.time() + 3
        while True:
            left = []
            for entry in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{entry}/environ", "rb") as f:
                        if b"YONDER_JOB_ID=4242\0" in f.read():
                            left.append(entry)
                except OSError:
                    continue
            if not left or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(left, [])
        reply, _ = client.call("yonder.job.cancel", {"id": 999999})
        self.assertEqual(reply["code"], "invalid_arguments")
        self.assertIn("no job 999999", reply["message"])

    def test_a_job_that_cannot_start_is_exec_failed_and_leaves_no_record(self):
        client = self.connect()
        reply, _ = client.call("yonder.job.list")
        before = len(reply["value"])
        reply, _ = client.call("yonder.job.start", {"command": ["/no/such/program"]})
        self.assertEqual(reply["code"], "exec_failed")
        reply, _ = client.call("yonder.job.start", {"command": []})
        self.assertEqual(reply["code"], "invalid_arguments")
        reply, _ = client.call("yonder.job.list")
        self.assertEqual(len(reply["value"]), before)

    def test_an_agent_without_a_jobs_folder_says_so(self):
        agent = Agent(AGENT)
        self.addCleanup(agent.stop)
        client = Client(agent)
        self.addCleanup(client.close)
        reply, _ = client.call("yonder.job.start", {"command": ["true"]})
        self.assertEqual(reply["code"], "unavailable")
        self.assertIn("--jobs-dir", reply["message"])
        reply, _ = client.call("yonder.job.list")
        self.assertEqual(reply["value"], [])


class Swap(unittest.TestCase):
    """yonder.swap (PROTOCOL.md section 9): an agent started with --build-file replaces its own
    file and executes it in place, keeping its pid, port and token."""

    def setUp(self):
        import shutil
        import tempfile
        self.folder = tempfile.mkdtemp(prefix="yonder-conformance-swap-")
        self.addCleanup(shutil.rmtree, self.folder, True)
        # The agent runs from a copy, which the swap replaces.
        self.executable = os.path.join(self.folder, "agent")
        shutil.copy(AGENT, self.executable)
        self.build_file = os.path.join(self.folder, "build")
        with open(self.build_file, "w") as f:
            f.write("first\n")
        self.token_file = os.path.join(self.folder, "agent.json")
        self.process = subprocess.Popen(
            [self.executable, "serve", "--port", "0", "--new-token-file", self.token_file, "--build-file", self.build_file],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(stop_process, self.process)
        self.listening = json.loads(self.process.stdout.readline())
        with open(self.token_file) as f:
            self.record = json.load(f)

    def connect(self):
        client = Client(None, token=self.record["token"], port=self.record["port"])
        self.addCleanup(client.close)
        self.assertTrue(client.agent_proved)
        return client

    def stage(self, content=None):
        """Puts a new agent file next to the running one; returns its path and SHA-256."""
        import shutil
        path = os.path.join(self.folder, "agent.new")
        if content is None:
            shutil.copy(AGENT, path)
        else:
            with open(path, "wb") as f:
                f.write(content)
        with open(path, "rb") as f:
            return path, hashlib.sha256(f.read()).hexdigest()

    def test_the_new_build_keeps_pid_port_and_token(self):
        client = self.connect()
        self.assertEqual(client.agent_hello["build"], "first")
        old_instance = client.agent_hello["instance"]
        path, digest = self.stage()
        reply, _ = client.call("yonder.swap", {"path": path, "build": "second", "sha256": digest})
        self.assertEqual(reply["type"], "result", reply)
        instance = reply["value"]["instance"]
        self.assertEqual(reply["value"]["build"], "second")
        self.assertNotEqual(instance, old_instance)
        goodbye = client.receive()
        self.assertEqual(goodbye["type"], "goodbye")
        # At once, on the same port with the same token: the new agent, same process.
        again = self.connect()
        self.assertEqual((again.agent_hello["instance"], again.agent_hello["build"]), (instance, "second"))
        reply, _ = again.call("yonder.info")
        self.assertEqual(reply["value"]["pid"], self.process.pid)
        with open(self.build_file) as f:
            self.assertEqual(f.read().strip(), "second")
        self.assertFalse(os.path.exists(path))
        # The file is written again once the new agent listens, which can be just after it
        # took a waiting connection.
        deadline = time.time() + 5
        while True:
            with open(self.token_file) as f:
                record = json.load(f)
            if record["instance"] == instance or time.time() > deadline:
                break
            time.sleep(0.02)
        self.assertEqual((record["port"], record["token"], record["instance"]), (self.record["port"], self.record["token"], instance))
        # And it can swap again (its arguments carry no stale handover).
        path, digest = self.stage()
        reply, _ = again.call("yonder.swap", {"path": path, "build": "third", "sha256": digest})
        self.assertEqual(reply["value"]["build"], "third")
        # Once it has answered, the old agent accepts no connection: one made at once, before
        # its goodbye, waits in the socket's backlog and reaches the new agent.
        self.assertEqual(self.connect().agent_hello["build"], "third")
        self.assertEqual(again.receive()["type"], "goodbye")

    def test_a_bad_file_is_refused_and_the_agent_goes_on(self):
        client = self.connect()
        path, digest = self.stage()
        reply, _ = client.call("yonder.swap", {"path": path, "build": "second", "sha256": "0" * 64})
        self.assertEqual((reply["type"], reply["code"]), ("error", "invalid_arguments"))
        self.assertIn("SHA-256", reply["message"])
        # A file that does not run here (what a build for another system is).
        path, digest = self.stage(b"#!/bin/sh\necho no >&2\nexit 3\n")
        reply, _ = client.call("yonder.swap", {"path": path, "build": "second", "sha256": digest})
        self.assertEqual(reply["code"], "exec_failed")
        self.assertIn("goes on", reply["message"])
        path, digest = self.stage(b"\x7fELF not really")
        reply, _ = client.call("yonder.swap", {"path": path, "build": "second", "sha256": digest})
        self.assertEqual(reply["code"], "exec_failed")
        reply, _ = client.call("yonder.swap", {"path": path, "build": "bad build id", "sha256": digest})
        self.assertEqual(reply["code"], "invalid_arguments")
        reply, _ = client.call("yonder.ping", 5)
        self.assertEqual(reply["value"], 5)
        with open(self.build_file) as f:
            self.assertEqual(f.read().strip(), "first")
        self.assertEqual(self.connect().agent_hello["instance"], client.agent_hello["instance"])

    def test_an_agent_without_a_build_file_says_so(self):
        agent = Agent(AGENT)
        self.addCleanup(agent.stop)
        client = Client(agent)
        self.addCleanup(client.close)
        path, digest = self.stage()
        reply, _ = client.call("yonder.swap", {"path": path, "build": "second", "sha256": digest})
        self.assertEqual(reply["code"], "unavailable")
        self.assertIn("--build-file", reply["message"])


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: conformance.py PATH/TO/AGENT")
    AGENT = sys.argv.pop(1)
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"conformance: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
