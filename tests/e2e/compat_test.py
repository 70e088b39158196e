"""Black-box end-to-end and compatibility tests of a real `unimeter` process.

Written from shared/spec/wire-protocol-v1.md (WP) and shared/spec/product-semantics.md (PS)
alone, with the independent codec in wire.py (socket + struct only), the way the existing Go
and Python SDKs talk to the server.

The binary: $UNIMETER_BINARY (the Bazel target passes $(location //node:unimeter)).
"""

import calendar
import itertools
import json
import os
import re
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402
from wire import Ev  # noqa: E402

BINARY = os.environ.get("UNIMETER_BINARY", "")
# Old, fixed timestamps (2025/2026) are used for the bucket examples: keep retention far away
# so that no sweep can evict them while a test runs (PS §10).
NODE_ARGS = ["--retention-days=36500"]

SHARED = None  # the node shared by most test classes
_accounts = itertools.count(100_000)
_codes = itertools.count(1)


def account():
    """A fresh account id for one test, so tests never see each other's data."""
    return next(_accounts)


def code(prefix):
    """A fresh metric code."""
    return "%s_%d" % (prefix, next(_codes))


def ts(y, mo, d, h=0, mi=0, s=0, ns=0):
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * wire.SEC + ns


ALL_TIME = (-(1 << 63), (1 << 63) - 1)


def setUpModule():
    global SHARED
    if not BINARY or not os.path.exists(BINARY):
        raise RuntimeError("set UNIMETER_BINARY to the unimeter binary (got %r)" % BINARY)
    SHARED = wire.Node(BINARY, extra_args=NODE_ARGS).start()


def tearDownModule():
    if SHARED is not None:
        rc = SHARED.stop()
        if rc != 0:
            sys.stderr.write("shared node exit code %r; log tail:\n%s\n"
                             % (rc, SHARED.log_tail()))


class Base(unittest.TestCase):
    node = None

    def setUp(self):
        self.node = SHARED
        self.c = SHARED.connect()

    def tearDown(self):
        self.c.close()

    def sync_ok(self, events):
        st, r = self.c.ingest(events, sync=True)
        self.assertIn(st, (wire.OK, wire.UNKNOWN_METRIC), r)
        return r

    def assertStillInSync(self, conn=None):
        """A fresh request on the same connection gets its own, well-formed reply."""
        conn = conn or self.c
        st, p = conn.call(wire.CLUSTER_STATUS)
        self.assertEqual(st, wire.OK)
        self.assertEqual(len(p), 2_088)
        self.assertEqual(conn.pending_reply_ids(), [], "stray replies on the connection")


# -----------------------------------------------------------------------------------------


class WorkedExampleTest(unittest.TestCase):
    """WP §13 byte for byte, each on a fresh node (partition 42 must be empty)."""

    REQUEST_HEADER = bytes.fromhex("01 EE FF C0 01 01 FF FF C8 00 00 00 07 00 00 00")
    FIRST_EVENT = (b"api_calls" + b"\x00" * 55 + bytes.fromhex(
        "2A 00 00 00 00 00 00 00" "00 00 00 00 00 00 00 00" "01 00 00 00 00 00 00 00"
        "00" "00" "00 00 00 00 00 00"))
    RESULT = bytes.fromhex("02 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00")

    def setUp(self):
        self.node = wire.Node(BINARY, extra_args=NODE_ARGS).start()

    def tearDown(self):
        self.assertEqual(self.node.stop(), 0)

    def example_request(self):
        payload = wire.ingest_payload([Ev("api_calls", 42), Ev("api_calls", 42)])
        req = wire.frame(wire.INGEST_SYNC, payload, 7)
        # Our encoder reproduces the spec's bytes exactly.
        self.assertEqual(req[:16], self.REQUEST_HEADER)
        self.assertEqual(payload[:8], bytes.fromhex("02 00 00 00 00 00 00 00"))
        self.assertEqual(payload[8:104], self.FIRST_EVENT)
        self.assertEqual(len(payload), 200)
        return req

    def read_exact(self, sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            self.assertTrue(chunk, "connection closed after %d bytes" % len(buf))
            buf += chunk
        return buf

    def exchange(self, register):
        """Optionally registers "api_calls" (no events), sends the spec's request bytes on a
        raw socket and returns the 28 reply bytes."""
        if register:
            with self.node.connect() as c:
                self.assertEqual(c.put_metric("api_calls", wire.COUNT), wire.OK)
        s = socket.create_connection(("127.0.0.1", self.node.port), timeout=60)
        try:
            s.sendall(self.example_request())
            return self.read_exact(s, 28)
        finally:
            s.close()

    def test_worked_example_reply_header(self):
        """Goal: WP §13: the spec's request bytes get exactly the reply header
        `00 00 00 00 07 00 00 00 10 00 00 00` and an IngestResult with n_stored 2,
        n_duplicates 0. The example shows status OK, which per §7.1 requires "api_calls" to
        be registered (otherwise the status is UNKNOWN_METRIC), so we register it first
        (no events, so partition 42 stays empty)."""
        reply = self.exchange(register=True)
        self.assertEqual(reply[:12], bytes.fromhex("00 00 00 00 07 00 00 00 10 00 00 00"))
        self.assertEqual(reply[12:20], self.RESULT[:8])

    def test_worked_example_ingest_result_bytes(self):
        """Goal: WP §13: the IngestResult is byte for byte
        `02 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00`: both events land in the still-empty
        partition 42 "stored as offsets 0 and 1", so last_offset = 1."""
        reply = self.exchange(register=True)
        self.assertEqual(reply[12:], self.RESULT)

    def test_worked_example_unregistered_metric(self):
        """Goal: the spec's example as literally given — "api_calls" never registered: §7.1
        (and PS §8.3) make the reply status UNKNOWN_METRIC (3) with n_stored 2 (the events are
        stored, not aggregated), so the header is `03 00 00 00 07 00 00 00 10 00 00 00`; both
        events are listed with consecutive offsets, the code as sent, and server-assigned
        timestamps now + index (PS §8.2)."""
        reply = self.exchange(register=False)
        self.assertEqual(reply[:12], bytes.fromhex("03 00 00 00 07 00 00 00 10 00 00 00"))
        self.assertEqual(reply[12:20], self.RESULT[:8])
        last_offset = struct.unpack_from("<Q", reply, 20)[0]
        with self.node.connect() as c:
            evs = c.events(42)
            self.assertEqual(c.query(42, *ALL_TIME, "api_calls"),
                             wire.AggValue(0, 0, 0, 0, 0, 0))
        self.assertEqual([(e.offset, e.metric_code, e.value, e.account_id) for e in evs],
                         [(last_offset - 1, "api_calls", 1, 42),
                          (last_offset, "api_calls", 1, 42)])
        self.assertGreater(evs[0].timestamp, 0)
        self.assertEqual(evs[1].timestamp, evs[0].timestamp + 1)

    def test_worked_example_offsets_start_at_zero(self):
        """Goal: WP §13: the first two events of an empty partition are "stored as offsets 0
        and 1" (seen in EVENTS_LIST, unregistered metric variant)."""
        reply = self.exchange(register=False)
        self.assertEqual(reply[12:], self.RESULT)
        with self.node.connect() as c:
            self.assertEqual([e.offset for e in c.events(42)], [0, 1])

    def test_codec_vectors(self):
        """Goal: our independent encoders agree with the spec's size summary (WP §6.16) and
        the REDIRECT example bytes (WP §13)."""
        self.assertEqual(len(wire.wire_event("x", 1)), 96)
        self.assertEqual(len(wire.prop_pair("k", "v")), 96)
        self.assertEqual(len(wire.dimension_filter("k", ["a"])), 292)
        self.assertEqual(len(wire.alert_threshold("t", 1)), 48)
        self.assertEqual(len(wire.metric_schema("m", 0, [("k", ["a"])], [("t", 1, False)],
                                                wire.FIXED)), 488)
        self.assertEqual(len(wire.metric_schema("m", 0, [("k", ["a"] * 8)] * 4,
                                                [("t", 1, False)] * 8, wire.FIXED)), 1_700)
        self.assertEqual(len(wire.usage_query(1, 0, 1, "m")), 96)
        self.assertEqual(len(wire.usage_realtime(1, "m")), 72)
        self.assertEqual(len(wire.events_list(1, 0, 1)), 24)
        self.assertEqual(len(wire.alerts_list(1, 0)), 16)
        self.assertEqual(wire.response_header(4, 7, 24),
                         bytes.fromhex("04 00 00 00 07 00 00 00 18 00 00 00"))
        self.assertEqual(wire.cstr("10.0.0.2:7001", 24),
                         bytes.fromhex("31 30 2E 30 2E 30 2E 32 3A 37 30 30 31") + b"\0" * 11)


# -----------------------------------------------------------------------------------------


class FramingTest(Base):
    """WP §1, §2: multiplexing, pipelining, request ids, header validation and stream sync."""

    def test_pipelined_multiplexed_requests(self):
        """Goal: many requests of different opcodes written back to back in one write, before
        reading anything, each get exactly one reply with their own id (matched by id, in any
        order)."""
        acc = account()
        m = code("pipe")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        data, expect = b"", {}
        for i in range(1, 61):
            kind = i % 4
            if kind == 0:
                data += wire.frame(wire.CLUSTER_STATUS, b"", 1000 + i)
                expect[1000 + i] = (wire.OK, 2_088)
            elif kind == 1:
                data += wire.frame(wire.GET_PARTITION_MAP, b"", 1000 + i)
                expect[1000 + i] = (wire.OK, 24_576)
            elif kind == 2:
                data += wire.frame(wire.INGEST_SYNC, wire.ingest_payload([Ev(m, acc, i)]),
                                   1000 + i)
                expect[1000 + i] = (wire.OK, 16)
            else:
                data += wire.frame(wire.USAGE_REALTIME, wire.usage_realtime(acc, m), 1000 + i)
                expect[1000 + i] = (wire.OK, 56)
        self.c.send_raw(data)
        for rid, (st, n) in expect.items():
            f = self.c.wait(rid)
            self.assertEqual((f.status, len(f.payload)), (st, n), rid)
        self.assertStillInSync()
        total = sum(i for i in range(1, 61) if i % 4 == 2)
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, total)

    def test_reused_request_id_gets_two_replies(self):
        """Goal: two requests in flight with the same id (WP §2.5) each get their own reply
        carrying that id."""
        self.c.send_raw(wire.frame(wire.CLUSTER_STATUS, b"", 77)
                        + wire.frame(wire.GET_PARTITION_MAP, b"", 77))
        a, b = self.c.wait(77), self.c.wait(77)
        self.assertEqual(sorted([len(a.payload), len(b.payload)]), [2_088, 24_576])
        self.assertEqual((a.status, b.status), (wire.OK, wire.OK))

    def test_large_request_ids_echoed(self):
        """Goal: ids are opaque (WP §2.5): 0xFFFFFFFF and other large values are echoed."""
        for rid in (0xFFFFFFFF, 0x80000000, 0x01020304):
            self.c.send_raw(wire.frame(wire.CLUSTER_STATUS, b"", rid))
            self.assertEqual(self.c.wait(rid).status, wire.OK)

    def test_bad_magic_closes_connection(self):
        """Goal: WP §2.4 step 1: a bad magic gets ERR (empty) echoing bytes 12-15 as the
        request id, then the server closes the connection."""
        hdr = struct.pack("<IBBHII", 0xDEADBEEF, 1, wire.CLUSTER_STATUS, 0xFFFF, 0, 0x12345678)
        self.c.send_raw(hdr)
        f = self.c.wait(0x12345678)
        self.assertEqual((f.status, f.payload), (wire.ERR, b""))
        self.assertTrue(self.c.wait_closed(60), "connection not closed after bad magic")
        # The server is fine for other connections.
        with self.node.connect() as c2:
            self.assertStillInSync(c2)

    def test_oversized_payload_len_drained(self):
        """Goal: WP §2.4 step 2: payload_len 196,617 (> 196,616): the body is read and
        discarded, ERR echoes the id, and the next request on the same connection works.
        The discarded body is made of valid-looking request frames: none may be answered."""
        n = wire.MAX_PAYLOAD + 1
        inner = wire.frame(wire.CLUSTER_STATUS, b"", 999)
        body = (inner * (n // len(inner) + 1))[:n]
        self.c.send_raw(wire.request_header(wire.INGEST_SYNC, n, 4242) + body)
        f = self.c.wait(4242)
        self.assertEqual((f.status, f.payload), (wire.ERR, b""))
        self.assertStillInSync()
        self.assertNotIn(999, self.c.pending_reply_ids())
        self.assertFalse(self.c.closed)

    def test_max_payload_accepted(self):
        """Goal: a request of exactly 196,616 bytes (1,024 events + 1,024 property pairs,
        WP §3) is accepted and all events stored."""
        acc = account()
        m = code("maxreq")
        self.assertEqual(self.c.put_metric(m, wire.COUNT, [("k", ["v"])]), wire.OK)
        evs = [Ev(m, acc, 1, props=[("k", "v")]) for _ in range(1024)]
        payload = wire.ingest_payload(evs)
        self.assertEqual(len(payload), wire.MAX_PAYLOAD)
        st, r = self.c.ingest(evs)
        self.assertEqual(st, wire.OK)
        self.assertEqual((r.n_stored, r.n_duplicates), (1024, 0))
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).count, 1024)
        self.assertEqual(self.c.query(acc, *ALL_TIME, m, [("k", "v")]).count, 1024)

    def test_bad_version(self):
        """Goal: WP §2.4 step 3: version != 1 (with a body) -> ERR echoing the id, body
        drained, connection in sync."""
        acc = account()
        m = code("ver")
        body = wire.ingest_payload([Ev(m, acc, 5)])
        for version in (0, 2, 255):
            rid = self.c.send(wire.INGEST_SYNC, body, version=version)
            f = self.c.wait(rid)
            self.assertEqual((f.status, f.payload), (wire.ERR, b""), version)
            self.assertStillInSync()
        self.assertEqual(self.c.events(acc), [])

    def test_unknown_opcodes(self):
        """Goal: WP §2.4 step 4 / §5 / §7.14: push-only (0x11, 0x35), reserved (0x42-0x44),
        unassigned (0x02, 0x50) and unimplemented extension (0x80, 0xFF) opcodes -> ERR
        echoing the id, body drained, still in sync."""
        body = wire.frame(wire.CLUSTER_STATUS, b"", 31337) * 3  # must not be executed
        for op in (0x11, 0x35, 0x42, 0x43, 0x44, 0x50, 0xFF, 0xFE, 0x02, 0x37, 0x12, 0x45):
            rid = self.c.send(op, body)
            f = self.c.wait(rid)
            self.assertEqual((f.status, f.payload), (wire.ERR, b""), hex(op))
            self.assertStillInSync()
        self.assertNotIn(31337, self.c.pending_reply_ids())

    def test_extension_opcode_in_sync(self):
        """Goal: WP §7.14: 0x80 is in the extension range (implemented in this server: it
        answers rather than ERR-ing as unknown), so only framing is asserted: a junk body
        gets exactly one reply with the request's id and a valid status, and the stream
        stays in sync."""
        body = wire.frame(wire.CLUSTER_STATUS, b"", 31338) * 3
        rid = self.c.send(0x80, body)
        f = self.c.wait(rid)
        self.assertIn(f.status, (wire.OK, wire.ERR))
        self.assertStillInSync()
        self.assertNotIn(31338, self.c.pending_reply_ids())

    def test_malformed_ingest_payloads(self):
        """Goal: WP §7.1 validation: E > 1,024, P > 1,024, props sum mismatch,
        operation_type 3, a payload shorter than its counts, a payload shorter than 8 bytes,
        explicit partition 300 or 256 -> ERR, nothing stored, connection in sync."""
        m = code("malformed")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        cases = []
        a = account()
        cases.append(("E=1025", a, wire.ingest_payload([Ev(m, a, 1)] * 1025), 0xFFFF))
        a = account()
        many = [Ev(m, a, 1, props=[("k", "v%d" % j) for j in range(205)]) for _ in range(5)]
        cases.append(("P=1025", a, wire.ingest_payload(many), 0xFFFF))
        a = account()
        cases.append(("props sum mismatch", a,
                      wire.ingest_payload([Ev(m, a, 1, props=[("k", "v")], props_count=0)]),
                      0xFFFF))
        a = account()
        cases.append(("props sum mismatch 2", a,
                      wire.ingest_payload([Ev(m, a, 1, props=[("k", "v")]),
                                           Ev(m, a, 2, props_count=1)]), 0xFFFF))
        a = account()
        cases.append(("operation_type 3", a,
                      wire.ingest_payload([Ev(m, a, 1), Ev(m, a, 2, op=3)]), 0xFFFF))
        a = account()
        short = wire.ingest_payload([Ev(m, a, 1), Ev(m, a, 2)])[:8 + 96 + 50]
        cases.append(("short payload", a, short, 0xFFFF))
        a = account()
        short2 = wire.ingest_payload([Ev(m, a, 1, props=[("k", "v")])])[:-1]
        cases.append(("short props", a, short2, 0xFFFF))
        cases.append(("4-byte payload", None, b"\x01\x00\x00\x00", 0xFFFF))
        a = account()
        cases.append(("partition 300", a, wire.ingest_payload([Ev(m, a, 1)]), 300))
        a = account()
        cases.append(("partition 256", a, wire.ingest_payload([Ev(m, a, 1)]), 256))
        for name, acc, payload, partition in cases:
            for op in (wire.INGEST_SYNC, wire.INGEST_ASYNC):
                rid = self.c.send(op, payload, partition=partition)
                f = self.c.wait(rid)
                self.assertEqual((f.status, f.payload), (wire.ERR, b""), name)
                self.assertStillInSync()
        for name, acc, _, _ in cases:
            if acc is not None:
                self.assertEqual(self.c.events(acc), [], name)
                self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 0, name)

    def test_body_split_across_small_writes(self):
        """Goal: a request whose header and body arrive in many 1-7 byte TCP segments is
        reassembled: the reply is OK and the event is stored."""
        acc = account()
        m = code("split")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        data = wire.frame(wire.INGEST_SYNC,
                          wire.ingest_payload([Ev(m, acc, 11, props=[("a", "b")])]), 555)
        i = 0
        while i < len(data):
            n = 1 + i % 7
            self.c.send_raw(data[i:i + n])
            i += n
            time.sleep(0.002)
        f = self.c.wait(555)
        self.assertEqual(f.status, wire.OK)
        self.assertEqual(wire.parse_ingest_result(f.payload).n_stored, 1)
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 11)

    def test_extra_payload_bytes_ignored(self):
        """Goal: WP §2.4: bytes beyond what an opcode needs are ignored (CLUSTER_STATUS,
        GET_PARTITION_MAP, ALERT_PUSH_ENABLE with junk payloads; EVENTS_LIST with 40 bytes)."""
        for op, n in ((wire.CLUSTER_STATUS, 2_088), (wire.GET_PARTITION_MAP, 24_576),
                      (wire.ALERT_PUSH_ENABLE, 0)):
            st, p = self.c.call(op, b"\xAB" * 37)
            self.assertEqual((st, len(p)), (wire.OK, n), hex(op))
        st, p = self.c.call(wire.EVENTS_LIST, wire.events_list(account(), 0, 1) + b"\x01" * 16)
        self.assertEqual((st, p), (wire.OK, b"\x00" * 8))

    def test_short_payloads_err(self):
        """Goal: payloads too short for their opcode -> ERR, still in sync (USAGE_QUERY < 88,
        USAGE_REALTIME < 72, EVENTS_LIST < 24, ALERTS_LIST < 16, METRIC_PUT < 132,
        METRIC_DELETE < 64, CLUSTER_REBALANCE empty)."""
        m = code("short")
        cases = [(wire.USAGE_QUERY, wire.usage_query(1, 0, 1, m)[:87]),
                 (wire.USAGE_REALTIME, wire.usage_realtime(1, m)[:71]),
                 (wire.EVENTS_LIST, wire.events_list(1, 0, 1)[:23]),
                 (wire.ALERTS_LIST, wire.alerts_list(1, 0)[:15]),
                 (wire.METRIC_PUT, wire.metric_schema(m, wire.SUM)[:131]),
                 (wire.METRIC_DELETE, wire.cstr(m, 64)[:63]),
                 (wire.CLUSTER_REBALANCE, b""),
                 (wire.USAGE_QUERY_BREAKDOWN, wire.breakdown_query(1, 0, 1, m, ["k"])[:127])]
        for op, payload in cases:
            st, p = self.c.call(op, payload)
            self.assertEqual((st, p), (wire.ERR, b""), hex(op))
            self.assertStillInSync()
        self.assertNotIn(m, [s.code for s in self.c.list_metrics()])

    def test_256_concurrent_connections(self):
        """Goal: WP §1: at least 256 concurrent client connections are served."""
        conns = []
        try:
            for _ in range(256):
                conns.append(self.node.connect())
            for c in conns:
                c.send(wire.CLUSTER_STATUS, request_id=5)
            for c in conns:
                self.assertEqual(c.wait(5).status, wire.OK)
        finally:
            for c in conns:
                c.close()


# -----------------------------------------------------------------------------------------


class IngestTest(Base):
    """WP §7.1, §6.8; PS §8."""

    def test_empty_batch(self):
        """Goal: E = 0 is valid: OK with an all-zero IngestResult, both modes."""
        for op in (wire.INGEST_SYNC, wire.INGEST_ASYNC):
            st, p = self.c.call(op, wire.ingest_payload([]))
            self.assertEqual((st, p), (wire.OK, b"\x00" * 16))

    def test_ok_and_unknown_metric(self):
        """Goal: status OK when every stored event's metric is registered; UNKNOWN_METRIC (3)
        when at least one stored event names an unregistered metric: stored (n_stored, events
        list) but not aggregated."""
        acc = account()
        m, unk = code("known"), code("unknown")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        st, r = self.c.ingest([Ev(m, acc, 5)])
        self.assertEqual((st, r.n_stored, r.n_duplicates), (wire.OK, 1, 0))
        st, r = self.c.ingest([Ev(m, acc, 7), Ev(unk, acc, 100)])
        self.assertEqual((st, r.n_stored, r.n_duplicates), (wire.UNKNOWN_METRIC, 2, 0))
        st, r = self.c.ingest([Ev(unk, acc, 100)], sync=False)
        self.assertEqual((st, r.n_stored), (wire.UNKNOWN_METRIC, 1))
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 12)
        self.assertEqual(self.c.query(acc, *ALL_TIME, unk), wire.AggValue(0, 0, 0, 0, 0, 0))
        # Registering the metric later does not retro-aggregate (PS §8.3).
        self.assertEqual(self.c.put_metric(unk, wire.SUM), wire.OK)
        self.assertEqual(self.c.query(acc, *ALL_TIME, unk).sum, 0)
        self._wait_events(acc, 4)
        self.assertEqual([e.metric_code for e in self.c.events(acc)], [m, m, unk, unk])

    def _wait_events(self, acc, n, timeout=60):
        """ASYNC writes become visible once committed (PS §6.5): poll, no timing asserted."""
        deadline = time.monotonic() + timeout
        while len(self.c.events(acc)) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    def test_duplicates(self):
        """Goal: PS §8.4: a resent client-timestamped event is a DUPLICATE (nothing stored,
        last_offset 0); a batch with one new and one duplicate event is OK with n_duplicates
        1; duplicates within one request are detected; server-stamped events are never
        deduplicated; the key includes the value but not operation_type."""
        acc = account()
        m = code("dup")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        t = ts(2026, 6, 1, 12)
        st, r = self.c.ingest([Ev(m, acc, 3, ts=t)])
        self.assertEqual((st, r.n_stored, r.n_duplicates), (wire.OK, 1, 0))
        first_offset = r.last_offset
        for sync in (True, False):
            st, r = self.c.ingest([Ev(m, acc, 3, ts=t)], sync=sync)
            self.assertEqual((st, r), (wire.DUPLICATE, wire.IngestResult(0, 1, 0)))
        # Different operation_type, same key -> still a duplicate.
        st, r = self.c.ingest([Ev(m, acc, 3, ts=t, op=wire.OP_ADD)])
        self.assertEqual((st, r), (wire.DUPLICATE, wire.IngestResult(0, 1, 0)))
        # One new + one duplicate: OK, last_offset = the new event's offset.
        st, r = self.c.ingest([Ev(m, acc, 4, ts=t), Ev(m, acc, 3, ts=t)])
        self.assertEqual((st, r.n_stored, r.n_duplicates), (wire.OK, 1, 1))
        self.assertGreater(r.last_offset, first_offset)
        evs = self.c.events(acc)
        self.assertEqual([e.value for e in evs], [3, 4])
        self.assertEqual(r.last_offset, evs[-1].offset)
        # Duplicates inside one request.
        st, r = self.c.ingest([Ev(m, acc, 9, ts=t + 1), Ev(m, acc, 9, ts=t + 1)])
        self.assertEqual((st, r.n_stored, r.n_duplicates), (wire.OK, 1, 1))
        # Server-stamped events are never duplicates.
        st, r = self.c.ingest([Ev(m, acc, 1), Ev(m, acc, 1)])
        self.assertEqual((st, r.n_stored, r.n_duplicates), (wire.OK, 2, 0))
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 3 + 4 + 9 + 2)
        # Unknown-metric duplicates: still DUPLICATE when nothing stored.
        unk = code("dupunk")
        st, r = self.c.ingest([Ev(unk, acc, 1, ts=t)])
        self.assertEqual(st, wire.UNKNOWN_METRIC)
        st, r = self.c.ingest([Ev(unk, acc, 1, ts=t)])
        self.assertEqual((st, r), (wire.DUPLICATE, wire.IngestResult(0, 1, 0)))

    def test_auto_partition_batch_spanning_partitions(self):
        """Goal: WP §12(a): with partition 0xFFFF one request may hold events of several
        partitions; all are stored; last_offset is the offset of the last stored event in
        request order (offsets are per partition)."""
        m = code("span")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        accs = [50_000_000 + 37 * i for i in range(10)]  # 10 different partitions
        self.assertEqual(len({a % 256 for a in accs}), 10)
        evs = [Ev(m, a, 10 + i) for i, a in enumerate(accs)]
        for sync in (True, False):
            st, r = self.c.ingest(evs, sync=sync)
            self.assertEqual((st, r.n_stored, r.n_duplicates), (wire.OK, 10, 0))
            if sync:
                last = self.c.events(accs[-1])
                self.assertEqual(r.last_offset, last[-1].offset)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(len(self.c.events(a)) == 2 for a in accs):
                break
            time.sleep(0.05)
        for i, a in enumerate(accs):
            self.assertEqual(self.c.query(a, *ALL_TIME, m).sum, 2 * (10 + i))

    def test_last_offset_in_request_order(self):
        """Goal: last_offset is the offset of the last stored event *in request order*, even
        when an earlier event of another partition is stored later in some other log."""
        m = code("lastoff")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        a1 = account()
        a2 = account()
        # Give a2's partition some history so that its offsets differ from a1's.
        st, r = self.c.ingest([Ev(m, a1, 1), Ev(m, a2, 2), Ev(m, a1, 3)])
        self.assertEqual(st, wire.OK)
        self.assertEqual(r.last_offset, self.c.events(a1)[-1].offset)
        st, r = self.c.ingest([Ev(m, a1, 4), Ev(m, a2, 5)])
        self.assertEqual(r.last_offset, self.c.events(a2)[-1].offset)
        # A duplicate last: the last *stored* event counts.
        t = ts(2026, 5, 5)
        st, r = self.c.ingest([Ev(m, a2, 6, ts=t)])
        st, r = self.c.ingest([Ev(m, a1, 7), Ev(m, a2, 6, ts=t)])
        self.assertEqual((st, r.n_stored, r.n_duplicates), (wire.OK, 1, 1))
        self.assertEqual(r.last_offset, self.c.events(a1)[-1].offset)

    def test_explicit_partition(self):
        """Goal: WP §7.1 step 2: an explicit partition owned by this (single) node is handled
        like 0xFFFF, including events of other partitions in the batch."""
        m = code("explicit")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        a1 = account()
        a2 = account()
        st, r = self.c.ingest([Ev(m, a1, 2), Ev(m, a2, 3)], partition=a1 % 256)
        self.assertEqual((st, r.n_stored), (wire.OK, 2))
        st, r = self.c.ingest([Ev(m, a1, 4)], partition=0)
        self.assertEqual((st, r.n_stored), (wire.OK, 1))
        st, r = self.c.ingest([Ev(m, a2, 5)], partition=255)
        self.assertEqual((st, r.n_stored), (wire.OK, 1))
        self.assertEqual(self.c.query(a1, *ALL_TIME, m).sum, 6)
        self.assertEqual(self.c.query(a2, *ALL_TIME, m).sum, 8)

    def test_offsets_per_partition_increasing(self):
        """Goal: PS §8.6: offsets strictly increase in log order within a partition; offsets
        of one request's events in one partition are consecutive log positions."""
        m = code("offs")
        self.assertEqual(self.c.put_metric(m, wire.COUNT), wire.OK)
        acc = account()
        self.sync_ok([Ev(m, acc, 0) for _ in range(5)])
        self.sync_ok([Ev(m, acc, 0) for _ in range(3)])
        offs = [e.offset for e in self.c.events(acc)]
        self.assertEqual(len(offs), 8)
        self.assertEqual(offs, sorted(set(offs)))


# -----------------------------------------------------------------------------------------


class MetricRegistryTest(Base):
    """WP §7.3 - §7.5, §6.9; PS §2.3, §9."""

    def test_put_upsert_and_list_roundtrip(self):
        """Goal: PUT is an upsert (a second PUT of the same code is OK and replaces the
        schema); METRIC_LIST has a count header, records ascending by code bytes, variable
        length with all sections, and returns every field as sent."""
        p = code("reg")
        m1, m2, m3 = p + "_b", p + "_a", p + "_c"
        self.assertEqual(self.c.put_metric(m1, wire.SUM), wire.OK)
        self.assertEqual(self.c.put_metric(m1, wire.MAX, [("provider", ["aws", "gcp"])],
                                           [("warn", 10, False), ("crit", 20, True)],
                                           wire.CALENDAR, 15, recurring=1,
                                           field_name="bytes"), wire.OK)
        self.assertEqual(self.c.put_metric(m2, wire.COUNT_UNIQUE,
                                           [("a", ["1"]), ("b", ["x", "y", "z"])], [],
                                           wire.DAY, 1), wire.OK)
        self.assertEqual(self.c.put_metric(m3, wire.LATEST), wire.OK)
        st, payload = self.c.call(wire.METRIC_LIST)
        self.assertEqual(st, wire.OK)
        count, schemas = wire.parse_metric_list(payload)  # asserts exact total length
        self.assertEqual(count, len(schemas))
        codes = [s.code.encode() for s in schemas]
        self.assertEqual(codes, sorted(codes))
        by = {s.code: s for s in schemas}
        s1 = by[m1]
        self.assertEqual((s1.agg_type, s1.recurring, s1.field_name), (wire.MAX, 1, "bytes"))
        self.assertEqual(s1.dims, [("provider", ["aws", "gcp"])])
        self.assertEqual(s1.thresholds, [("warn", 10, False), ("crit", 20, True)])
        self.assertEqual((s1.period_type, s1.cycle_day), (wire.CALENDAR, 15))
        self.assertEqual(s1.size, 132 + 292 + 8 + 96 + 8)
        s2 = by[m2]
        self.assertEqual(s2.dims, [("a", ["1"]), ("b", ["x", "y", "z"])])
        self.assertEqual((s2.agg_type, s2.thresholds, s2.period_type), (wire.COUNT_UNIQUE, [],
                                                                         wire.DAY))
        self.assertEqual(s2.size, 132 + 2 * 292 + 16)
        s3 = by[m3]
        self.assertEqual((s3.agg_type, s3.dims, s3.thresholds, s3.period_type, s3.cycle_day),
                         (wire.LATEST, [], [], wire.FIXED, 1))
        self.assertEqual(s3.size, 148)

    def test_optional_sections(self):
        """Goal: WP §6.9/§7.3: a PUT ending after the dimensions means no thresholds + FIXED;
        ending after the thresholds means FIXED; a trailing fragment < 8 bytes is ignored."""
        p = code("opt")
        a, b, c = p + "_dims_only", p + "_thr_only", p + "_fragment"
        self.assertEqual(self.c.call(wire.METRIC_PUT, wire.metric_schema(
            a, wire.SUM, [("k", ["v"])]))[0], wire.OK)
        self.assertEqual(self.c.call(wire.METRIC_PUT, wire.metric_schema(
            b, wire.SUM, [], [("t", 5, True)]))[0], wire.OK)
        self.assertEqual(self.c.call(wire.METRIC_PUT, wire.metric_schema(
            c, wire.SUM, [], [("t", 5, False)]) + b"\x02\x05\x00")[0], wire.OK)
        by = {s.code: s for s in self.c.list_metrics()}
        self.assertEqual((by[a].dims, by[a].thresholds, by[a].period_type, by[a].cycle_day),
                         ([("k", ["v"])], [], wire.FIXED, 1))
        self.assertEqual((by[b].thresholds, by[b].period_type), ([("t", 5, True)], wire.FIXED))
        self.assertEqual((by[c].thresholds, by[c].period_type), ([("t", 5, False)], wire.FIXED))

    def test_billing_cycle_day_normalised(self):
        """Goal: billing_cycle_day 0 -> 1 and 31 -> 28 (29 -> 28) as seen in METRIC_LIST;
        a period_type outside 0-2 is stored as sent (WP §7.3 rules 6-7)."""
        p = code("cycle")
        for suffix, day in (("0", 0), ("31", 31), ("29", 29), ("28", 28), ("1", 1)):
            self.assertEqual(self.c.put_metric(p + "_" + suffix, wire.SUM, [], [],
                                               wire.CALENDAR, day), wire.OK)
        self.assertEqual(self.c.put_metric(p + "_week", wire.SUM, [], [], 3, 1), wire.OK)
        by = {s.code: s for s in self.c.list_metrics()}
        self.assertEqual(by[p + "_0"].cycle_day, 1)
        self.assertEqual(by[p + "_31"].cycle_day, 28)
        self.assertEqual(by[p + "_29"].cycle_day, 28)
        self.assertEqual(by[p + "_28"].cycle_day, 28)
        self.assertEqual(by[p + "_1"].cycle_day, 1)
        self.assertEqual(by[p + "_week"].period_type, 3)

    def test_invalid_puts(self):
        """Goal: WP §7.3 validation: empty code, agg_type 5, filter_count 5, payload too short
        for filter_count, duplicate dimension keys, alert_count 9, alert_count larger than the
        bytes present -> ERR and nothing changed."""
        m = code("bad")
        bad = [
            wire.metric_schema("", wire.SUM),
            wire.metric_schema(m, 5),
            wire.metric_schema(m, wire.SUM, [("k%d" % i, ["v"]) for i in range(5)]),
            wire.metric_schema(m, wire.SUM, [("k", ["v"])], filter_count=2),
            wire.metric_schema(m, wire.SUM, [("k", ["v"]), ("k", ["w"])]),
            wire.metric_schema(m, wire.SUM, [], [("t", 1, False)] * 9),
            wire.metric_schema(m, wire.SUM, [], [("t", 1, False)], alert_count=2),
        ]
        for i, payload in enumerate(bad):
            st, p = self.c.call(wire.METRIC_PUT, payload)
            self.assertEqual((st, p), (wire.ERR, b""), i)
        self.assertNotIn(m, [s.code for s in self.c.list_metrics()])

    def test_value_count_above_8_treated_as_8(self):
        """Goal: WP §7.3 rule 5: a dimension value_count above 8 is treated as 8."""
        m = code("vc")
        vals = ["v%d" % i for i in range(8)]
        payload = wire.metric_schema(m, wire.SUM, [("k", vals, 12)], [], wire.FIXED)
        self.assertEqual(self.c.call(wire.METRIC_PUT, payload)[0], wire.OK)
        by = {s.code: s for s in self.c.list_metrics()}
        self.assertEqual(by[m].dims, [("k", vals)])

    def test_full_width_code_echoed(self):
        """Goal: WP §6.1/§6.10: a 64-byte metric_code field without NUL. The spec is two-sided
        here (§6.1 and §10 read such a field as a 64-byte string and echo it filling the
        field; §3 / PS §2.2 limit codes to 63 bytes), so either outcome is accepted, but it
        must be consistent: stored and echoed filling the whole field, or ERR with nothing
        stored. A 63-byte code (the SDK maximum) is a normal, registrable metric."""
        m = ("full" + "x" * 64)[:64]
        acc = account()
        st, r = self.c.ingest([Ev(m, acc, 3)])
        if st == wire.ERR:
            self.assertEqual(self.c.events(acc), [])
        else:
            self.assertEqual((st, r.n_stored), (wire.UNKNOWN_METRIC, 1))
            st, p = self.c.call(wire.EVENTS_LIST, wire.events_list(acc, *ALL_TIME))
            self.assertEqual(p[8 + 24:8 + 88], m.encode())
        self.assertStillInSync()
        # A 63-byte code (the SDK maximum) is a registrable metric.
        m63 = m[:63]
        self.assertEqual(self.c.put_metric(m63, wire.SUM), wire.OK)
        self.sync_ok([Ev(m63, acc, 4)])
        self.assertIn(m63, [s.code for s in self.c.list_metrics()])
        self.assertEqual(self.c.query(acc, *ALL_TIME, m63).sum, 4)
        self.assertEqual(self.c.events(acc)[-1].metric_code, m63)

    def test_delete(self):
        """Goal: METRIC_DELETE is OK even when absent; after DELETE the code is gone from
        LIST, queries read zero and new events are UNKNOWN_METRIC; re-registering makes the
        earlier aggregates visible again (PS §9)."""
        m = code("del")
        acc = account()
        self.assertEqual(self.c.call(wire.METRIC_DELETE, wire.cstr(m, 64)), (wire.OK, b""))
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        self.sync_ok([Ev(m, acc, 5)])
        self.assertEqual(self.c.call(wire.METRIC_DELETE, wire.cstr(m, 64)), (wire.OK, b""))
        self.assertNotIn(m, [s.code for s in self.c.list_metrics()])
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 0)
        st, r = self.c.ingest([Ev(m, acc, 7)])
        self.assertEqual((st, r.n_stored), (wire.UNKNOWN_METRIC, 1))
        self.assertEqual(self.c.call(wire.METRIC_DELETE, wire.cstr(m, 64)), (wire.OK, b""))
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 5)
        self.assertEqual(len(self.c.events(acc)), 2)  # stored events are kept


# -----------------------------------------------------------------------------------------


class UsageQueryTest(Base):
    """WP §7.6, §7.7; PS §3, §5, §6."""

    def bucket_case(self, period_type, cycle_day, points, queries):
        """points: [(timestamp, value)]; queries: [((start, end), expected_sum)]."""
        m = code("bucket")
        acc = account()
        self.assertEqual(self.c.put_metric(m, wire.SUM, [], [], period_type, cycle_day),
                         wire.OK)
        self.sync_ok([Ev(m, acc, v, ts=t) for t, v in points])
        for (start, end), want in queries:
            self.assertEqual(self.c.query(acc, start, end, m).sum, want,
                             (period_type, cycle_day, start, end))

    def test_fixed_buckets(self):
        """Goal: PS §3 FIXED examples: t = 2026-01-01 is in bucket 681 = [2025-12-08,
        2026-01-07), epoch-aligned; a query [2026-01-01, 2026-02-01) returns whole buckets
        681 and 682 (usage 2025-12-08 .. 2026-02-06)."""
        P = wire.FIXED_PERIOD_NS
        self.assertEqual(ts(2026, 1, 1) // P, 681)
        self.assertEqual(681 * P, ts(2025, 12, 8))
        self.assertEqual(682 * P, ts(2026, 1, 7))
        self.assertEqual(683 * P, ts(2026, 2, 6))
        points = [(ts(2025, 12, 8) - 1, 1),           # bucket 680
                  (ts(2025, 12, 8), 2),               # 681 first ns
                  (ts(2026, 1, 7) - 1, 4),            # 681 last ns
                  (ts(2026, 1, 7), 8),                # 682
                  (ts(2026, 2, 6) - 1, 16),           # 682 last ns
                  (ts(2026, 2, 6), 32)]               # 683
        t = ts(2026, 1, 1)
        self.bucket_case(wire.FIXED, 1, points, [
            ((t, t + 1), 6),
            ((t, ts(2026, 2, 1)), 6 + 24),
            ((ts(2026, 1, 7) - 1, ts(2026, 1, 7) + 1), 30),
            ((ts(2026, 2, 6), ts(2026, 2, 6) + 1), 32),
            ((ts(2020, 1, 1), ts(2030, 1, 1)), 63),
            ((t, t), 0),           # period_end <= period_start -> zeros
            ((t + 5, t), 0),
        ])

    def test_calendar_buckets(self):
        """Goal: PS §3 CALENDAR examples: d = 1, t = 2026-03-10 -> [03-01, 04-01); d = 15,
        t = 2026-03-10 -> [02-15, 03-15); d = 15, t = 2026-01-05 -> [2025-12-15,
        2026-01-15); multi-bucket queries merge every overlapping bucket."""
        self.bucket_case(wire.CALENDAR, 1, [
            (ts(2026, 3, 1) - 1, 1), (ts(2026, 3, 1), 2), (ts(2026, 4, 1) - 1, 4),
            (ts(2026, 4, 1), 8)], [
            ((ts(2026, 3, 10), ts(2026, 3, 10) + 1), 6),
            ((ts(2026, 2, 27), ts(2026, 3, 10)), 7),
            ((ts(2026, 3, 31), ts(2026, 4, 2)), 14)])
        self.bucket_case(wire.CALENDAR, 15, [
            (ts(2026, 2, 15) - 1, 1), (ts(2026, 2, 15), 2), (ts(2026, 3, 15) - 1, 4),
            (ts(2026, 3, 15), 8),
            (ts(2025, 12, 15) - 1, 16), (ts(2025, 12, 15), 32), (ts(2026, 1, 15) - 1, 64),
            (ts(2026, 1, 15), 128)], [
            ((ts(2026, 3, 10), ts(2026, 3, 10) + 1), 6),
            ((ts(2026, 1, 5), ts(2026, 1, 5) + 1), 96),
            ((ts(2026, 1, 5), ts(2026, 3, 10)), 32 + 64 + 128 + 1 + 2 + 4)])
        # billing_cycle_day 31 behaves as 28: 2026-03-27 is in [2026-02-28, 2026-03-28).
        self.bucket_case(wire.CALENDAR, 31, [
            (ts(2026, 2, 28) - 1, 1), (ts(2026, 2, 28), 2), (ts(2026, 3, 28) - 1, 4),
            (ts(2026, 3, 28), 8)], [
            ((ts(2026, 3, 27), ts(2026, 3, 27) + 1), 6)])
        # billing_cycle_day 0 behaves as 1.
        self.bucket_case(wire.CALENDAR, 0, [
            (ts(2026, 3, 1) - 1, 1), (ts(2026, 3, 1), 2), (ts(2026, 4, 1) - 1, 4),
            (ts(2026, 4, 1), 8)], [
            ((ts(2026, 3, 10), ts(2026, 3, 10) + 1), 6)])

    def test_day_buckets(self):
        """Goal: PS §3 DAY example: t = 2026-03-10T23:59:59.999999999Z is in [03-10, 03-11);
        other period_type values behave as FIXED."""
        last = ts(2026, 3, 11) - 1
        self.bucket_case(wire.DAY, 1, [
            (ts(2026, 3, 10) - 1, 1), (ts(2026, 3, 10), 2), (last, 4), (ts(2026, 3, 11), 8)], [
            ((last, last + 1), 6),
            ((ts(2026, 3, 9, 12), ts(2026, 3, 10, 1)), 7)])
        t = ts(2026, 1, 1)
        self.bucket_case(3, 1, [(ts(2025, 12, 8), 2), (ts(2026, 1, 7) - 1, 4),
                                (ts(2026, 1, 7), 8)], [((t, t + 1), 6)])

    def test_negative_timestamp_bucket_zero(self):
        """Goal: PS §3: a negative timestamp is bucketed as 0 (FIXED bucket 0, DAY bucket 0)
        and the stored event keeps its own timestamp."""
        for period in (wire.FIXED, wire.DAY):
            m, acc = code("neg"), account()
            self.assertEqual(self.c.put_metric(m, wire.SUM, [], [], period), wire.OK)
            self.sync_ok([Ev(m, acc, 3, ts=-5 * wire.SEC), Ev(m, acc, 4, ts=1)])
            self.assertEqual(self.c.query(acc, 0, 1, m).sum, 7)
            self.assertEqual(self.c.query(acc, -10 * wire.SEC, -1, m).sum, 7)
            self.assertEqual([e.timestamp for e in self.c.events(acc, -10 * wire.SEC, 1)],
                             [-5 * wire.SEC, 1])

    def test_filters(self):
        """Goal: PS §5 filters: first matching property per dimension; values outside the
        allowed list and undeclared keys are ignored; the unfiltered total has every event;
        AND semantics; a filter on an undeclared key or value reads zeros; only values[0] of
        a filter is used; filter order is irrelevant; filtered results have alert_flags 0."""
        m = code("filt")
        acc = account()
        self.assertEqual(self.c.put_metric(
            m, wire.SUM, [("provider", ["aws", "gcp", "azure"]), ("region", ["us-east",
                                                                             "eu-west"]),
                          ("tier", ["free", "pro"])], [("t0", 0, False)]), wire.OK)
        self.sync_ok([
            Ev(m, acc, 1, props=[("provider", "aws"), ("region", "us-east"), ("tier", "pro")]),
            Ev(m, acc, 2, props=[("region", "us-east"), ("provider", "aws")]),
            Ev(m, acc, 4, props=[("provider", "aws")]),
            Ev(m, acc, 8, props=[("provider", "gcp"), ("region", "us-east")]),
            Ev(m, acc, 16, props=[("provider", "oracle"), ("region", "us-east")]),
            Ev(m, acc, 32, props=[("color", "red")]),
            Ev(m, acc, 64, props=[("provider", "gcp"), ("provider", "aws")]),
            Ev(m, acc, 128, props=[("Provider", "aws"), ("provider", "AWS")]),
        ])
        q = lambda *f: self.c.query(acc, *ALL_TIME, m, list(f))  # noqa: E731
        total = q()
        self.assertEqual(total.sum, 255)
        self.assertEqual(total.alert_flags, 1)
        self.assertEqual(q(("provider", "aws")).sum, 1 + 2 + 4)
        self.assertEqual(q(("provider", "gcp")).sum, 8 + 64)
        self.assertEqual(q(("region", "us-east")).sum, 1 + 2 + 8 + 16)
        self.assertEqual(q(("tier", "pro")).sum, 1)
        # Reference difference (WP §12 item 6): event 1 also matched tier=pro; the 2-filter
        # query must still count it.
        self.assertEqual(q(("provider", "aws"), ("region", "us-east")).sum, 1 + 2)
        self.assertEqual(q(("region", "us-east"), ("provider", "aws")).sum, 1 + 2)
        self.assertEqual(q(("provider", "aws"), ("tier", "pro")).sum, 1)
        self.assertEqual(q(("provider", "aws"), ("region", "us-east"), ("tier", "pro")).sum, 1)
        self.assertEqual(q(("provider", "gcp"), ("region", "us-east")).sum, 8)
        self.assertEqual(q(("provider", "azure")), wire.AggValue(0, 0, 0, 0, 0, 0))
        self.assertEqual(q(("provider", "oracle")).sum, 0)
        self.assertEqual(q(("color", "red")).sum, 0)
        self.assertEqual(q(("provider", "AWS")).sum, 0)
        self.assertEqual(q(("provider", "aws"), ("color", "red")).sum, 0)
        self.assertEqual(q(("provider", ["aws", "gcp"])).sum, 7)  # only values[0]
        self.assertEqual(q(("provider", ["gcp", "aws"])).sum, 72)
        for f in (q(("provider", "aws")), q(("provider", "aws"), ("region", "us-east"))):
            self.assertEqual(f.alert_flags, 0)
            self.assertEqual(f.count, 0)  # SUM maintains only sum

    def test_filter_payload_rules(self):
        """Goal: WP §7.6: a payload of 88-95 bytes = no filters; > 4 filters, the same key
        twice, or a payload too short for filters_count -> ERR."""
        m = code("fpay")
        acc = account()
        self.assertEqual(self.c.put_metric(m, wire.SUM, [("a", ["1"]), ("b", ["1"])]), wire.OK)
        self.sync_ok([Ev(m, acc, 5, props=[("a", "1")]), Ev(m, acc, 6)])
        full = wire.usage_query(acc, *ALL_TIME, m)
        for n in range(88, 96):
            st, p = self.c.call(wire.USAGE_QUERY, full[:n])
            self.assertEqual(st, wire.OK, n)
            self.assertEqual(wire.parse_agg_value(p).sum, 11, n)
        # 88-95 bytes: even a non-zero filters_count byte present at 88 is not used.
        with_count = wire.usage_query(acc, *ALL_TIME, m, [("a", "1")])
        st, p = self.c.call(wire.USAGE_QUERY, with_count[:92])
        self.assertEqual((st, wire.parse_agg_value(p).sum), (wire.OK, 11))
        st, p = self.c.call(wire.USAGE_QUERY, with_count)
        self.assertEqual((st, wire.parse_agg_value(p).sum), (wire.OK, 5))
        errs = [
            wire.usage_query(acc, *ALL_TIME, m, [("a", "1"), ("b", "1"), ("c", "1"),
                                                ("d", "1"), ("e", "1")]),
            wire.usage_query(acc, *ALL_TIME, m, [("a", "1"), ("a", "1")]),
            with_count[:96 + 291],
            wire.usage_query(acc, *ALL_TIME, m, [("a", "1")], filters_count=2),
            full[:87],
        ]
        for i, payload in enumerate(errs):
            st, p = self.c.call(wire.USAGE_QUERY, payload)
            self.assertEqual((st, p), (wire.ERR, b""), i)
            self.assertStillInSync()

    def test_unregistered_metric_query_zero(self):
        """Goal: USAGE_QUERY and USAGE_REALTIME of an unregistered code: OK with zeros."""
        acc = account()
        st, p = self.c.call(wire.USAGE_QUERY, wire.usage_query(acc, *ALL_TIME, code("nope")))
        self.assertEqual((st, p), (wire.OK, b"\x00" * 56))
        st, p = self.c.call(wire.USAGE_REALTIME, wire.usage_realtime(acc, code("nope")))
        self.assertEqual((st, p), (wire.OK, b"\x00" * 56))

    def test_realtime(self):
        """Goal: WP §7.7: USAGE_REALTIME returns the unfiltered aggregate of the bucket that
        contains the server's current time (server-stamped events land there; an event of a
        past bucket does not count)."""
        m = code("rt")
        acc = account()
        self.assertEqual(self.c.put_metric(m, wire.SUM, [("k", ["v"])], [], wire.FIXED),
                         wire.OK)
        self.sync_ok([Ev(m, acc, 5, props=[("k", "v")]), Ev(m, acc, 6),
                      Ev(m, acc, 1000, ts=ts(2020, 1, 1))])
        st, p = self.c.call(wire.USAGE_REALTIME, wire.usage_realtime(acc, m))
        self.assertEqual(st, wire.OK)
        v = wire.parse_agg_value(p)
        if v.sum != 11:  # the 30-day bucket may have rolled over between ingest and query
            self.assertEqual(v.sum, 0)
        # Extra bytes ignored.
        st, p = self.c.call(wire.USAGE_REALTIME, wire.usage_realtime(acc, m) + b"\x07" * 20)
        self.assertEqual((st, len(p)), (wire.OK, 56))


# -----------------------------------------------------------------------------------------


class AggregationTest(Base):
    """PS §4: every aggregation type maintains only its own fields."""

    T = ts(2026, 7, 1, 10)

    def metric(self, agg, **kw):
        m = code("agg%d" % agg)
        self.assertEqual(self.c.put_metric(m, agg, **kw), wire.OK)
        return m

    def total(self, acc, m):
        return self.c.query(acc, *ALL_TIME, m)

    def test_count(self):
        """Goal: COUNT: count += 1 per event whatever the value; other fields 0."""
        m, acc = self.metric(wire.COUNT), account()
        self.sync_ok([Ev(m, acc, v, ts=self.T + i) for i, v in enumerate([0, 1, 99, 5])])
        self.assertEqual(self.total(acc, m), wire.AggValue(0, 4, 0, 0, 0, 0))

    def test_sum_128_bit(self):
        """Goal: SUM is 128-bit: two 2^64-1 values give sum_hi 1, sum_lo 2^64-2."""
        m, acc = self.metric(wire.SUM), account()
        big = (1 << 64) - 1
        self.sync_ok([Ev(m, acc, big, ts=self.T), Ev(m, acc, big, ts=self.T + 1),
                      Ev(m, acc, 2, ts=self.T + 2)])
        st, p = self.c.call(wire.USAGE_QUERY, wire.usage_query(acc, *ALL_TIME, m))
        lo, hi = struct.unpack_from("<QQ", p, 0)
        self.assertEqual((lo, hi), (0, 2))
        self.assertEqual(wire.parse_agg_value(p), wire.AggValue(2 << 64, 0, 0, 0, 0, 0))

    def test_max(self):
        """Goal: MAX keeps the maximum, never decreases; other fields 0; merge = max."""
        m, acc = self.metric(wire.MAX, period_type=wire.DAY, thresholds=[]), account()
        self.sync_ok([Ev(m, acc, 5, ts=self.T), Ev(m, acc, 17, ts=self.T + 1),
                      Ev(m, acc, 3, ts=self.T + 2), Ev(m, acc, 9, ts=self.T + wire.DAY_NS)])
        self.assertEqual(self.total(acc, m), wire.AggValue(0, 0, 17, 0, 0, 0))
        nxt = self.T + wire.DAY_NS
        self.assertEqual(self.c.query(acc, nxt, nxt + 1, m).max, 9)

    def test_latest(self):
        """Goal: LATEST replaces last_value/last_timestamp only for a strictly newer timestamp
        (equal or older never overwrite); multi-bucket merge takes the greatest timestamp."""
        m, acc = self.metric(wire.LATEST, period_type=wire.DAY, thresholds=[]), account()
        T = self.T
        self.sync_ok([Ev(m, acc, 10, ts=T + 100)])
        self.sync_ok([Ev(m, acc, 20, ts=T + 50)])    # older: ignored
        self.sync_ok([Ev(m, acc, 30, ts=T + 100)])   # equal: ignored
        self.assertEqual(self.total(acc, m), wire.AggValue(0, 0, 0, 10, T + 100, 0))
        self.sync_ok([Ev(m, acc, 7, ts=T + 101)])    # newer, smaller value: replaces
        self.assertEqual(self.total(acc, m), wire.AggValue(0, 0, 0, 7, T + 101, 0))
        self.sync_ok([Ev(m, acc, 1, ts=T - wire.DAY_NS)])  # previous day bucket
        self.assertEqual(self.total(acc, m), wire.AggValue(0, 0, 0, 7, T + 101, 0))
        prev = T - wire.DAY_NS
        self.assertEqual(self.c.query(acc, prev, prev + 1, m).last_value, 1)

    def test_count_unique(self):
        """Goal: COUNT_UNIQUE: NONE/ADD insert, REMOVE deletes (absent -> no-op, never
        negative); sets are per bucket and multi-bucket queries add per-bucket counts."""
        m, acc = self.metric(wire.COUNT_UNIQUE, period_type=wire.DAY, thresholds=[]), account()
        T = self.T
        A, R, N = wire.OP_ADD, wire.OP_REMOVE, wire.OP_NONE
        self.sync_ok([Ev(m, acc, 1, ts=T, op=A), Ev(m, acc, 2, ts=T + 1, op=N),
                      Ev(m, acc, 2, ts=T + 2, op=A), Ev(m, acc, 3, ts=T + 3, op=A)])
        self.assertEqual(self.total(acc, m), wire.AggValue(0, 3, 0, 0, 0, 0))
        self.sync_ok([Ev(m, acc, 1, ts=T + 4, op=R), Ev(m, acc, 99, ts=T + 5, op=R)])
        self.assertEqual(self.total(acc, m).count, 2)
        self.sync_ok([Ev(m, acc, 2, ts=T + 6, op=R), Ev(m, acc, 3, ts=T + 7, op=R),
                      Ev(m, acc, 3, ts=T + 8, op=R)])
        self.assertEqual(self.total(acc, m).count, 0)
        self.sync_ok([Ev(m, acc, 5, ts=T + 9, op=A)])
        # The next day's bucket starts with an empty set; member 5 counts again there.
        nxt = T + wire.DAY_NS
        self.sync_ok([Ev(m, acc, 5, ts=nxt, op=A), Ev(m, acc, 6, ts=nxt + 1, op=A)])
        self.assertEqual(self.c.query(acc, T, T + 1, m).count, 1)
        self.assertEqual(self.c.query(acc, nxt, nxt + 1, m).count, 2)
        self.assertEqual(self.total(acc, m).count, 3)  # sum of per-bucket distinct counts

    def test_operation_type_ignored_by_other_types(self):
        """Goal: operation_type is ignored by COUNT/SUM/MAX (REMOVE does not subtract)."""
        m, acc = self.metric(wire.SUM), account()
        self.sync_ok([Ev(m, acc, 5, ts=self.T, op=wire.OP_ADD),
                      Ev(m, acc, 5, ts=self.T + 1, op=wire.OP_REMOVE)])
        self.assertEqual(self.total(acc, m).sum, 10)


# -----------------------------------------------------------------------------------------


class AlertsTest(Base):
    """PS §7; WP §6.11, §6.12, §7.9, §7.10, §8.1."""

    T = ts(2026, 8, 1, 9)

    SENTINEL = "alert_sentinel"
    sentinels = {}

    def records(self, acc):
        """This account's crossing records once everything ingested so far is recorded.

        Records are appended when committed events are applied, possibly after the ingest
        acknowledgement, in the partition's log order. Barrier: a sentinel event (COUNT with a
        recurring threshold 0: one record per event) in the same account's partition; once its
        record is listed, every earlier crossing of that partition is too. No timing asserted.
        """
        if not AlertsTest.sentinels:
            self.assertEqual(self.c.put_metric(self.SENTINEL, wire.COUNT, [],
                                               [("sentinel", 0, True)]), wire.OK)
        n = AlertsTest.sentinels.get(acc, 0) + 1
        AlertsTest.sentinels[acc] = n
        self.sync_ok([Ev(self.SENTINEL, acc, 1)])
        got = self.c.wait_alerts(acc, n, pred=lambda r: r.metric_code == self.SENTINEL)
        self.assertEqual(len(got), n, "sentinel crossing never listed")
        return [r for r in self.c.alerts(acc, 0) if r.metric_code != self.SENTINEL]

    def test_non_recurring_and_recurring(self):
        """Goal: a non-recurring threshold fires once per crossing; a recurring one fires on
        every event at/above it; alert_flags bit i <-> threshold i; records carry account,
        code, threshold code, value at crossing and the event's timestamp."""
        m, acc = code("alrt"), account()
        self.assertEqual(self.c.put_metric(m, wire.SUM, [], [("t50", 50, False),
                                                             ("t100", 100, True),
                                                             ("t1000", 1000, False)]), wire.OK)
        T = self.T
        for i, v in enumerate([30, 30, 30, 20, 5]):
            self.sync_ok([Ev(m, acc, v, ts=T + i)])
        recs = self.records(acc)
        self.assertEqual([(r.threshold_code, r.value_at_cross, r.event_timestamp)
                          for r in recs],
                         [("t50", 60, T + 1), ("t100", 110, T + 3), ("t100", 115, T + 4)])
        for r in recs:
            self.assertEqual((r.account_id, r.metric_code), (acc, m))
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).alert_flags, 0b011)
        # A threshold of 0 fires on the first event (COUNT).
        m0, acc0 = code("alrt0"), account()
        self.assertEqual(self.c.put_metric(m0, wire.COUNT, [], [("zero", 0, False)]), wire.OK)
        self.sync_ok([Ev(m0, acc0, 1, ts=T), Ev(m0, acc0, 1, ts=T + 1)])
        self.assertEqual([(r.threshold_code, r.value_at_cross) for r in self.records(acc0)],
                         [("zero", 1)])

    def test_latest_clears_and_refires(self):
        """Goal: LATEST going back below a threshold clears its bit, and a later re-crossing
        fires again; an older reading still triggers evaluation but cannot change the value."""
        m, acc = code("alat"), account()
        self.assertEqual(self.c.put_metric(m, wire.LATEST, [], [("hi", 10, False)]), wire.OK)
        T = self.T
        self.sync_ok([Ev(m, acc, 5, ts=T)])
        self.assertEqual(self.records(acc), [])
        self.sync_ok([Ev(m, acc, 12, ts=T + 1)])
        self.sync_ok([Ev(m, acc, 15, ts=T + 2)])
        self.assertEqual(len(self.records(acc)), 1)
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).alert_flags, 1)
        self.sync_ok([Ev(m, acc, 3, ts=T + 3)])
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).alert_flags, 0)
        self.sync_ok([Ev(m, acc, 50, ts=T - 10)])  # older reading: ignored, no crossing
        self.assertEqual(len(self.records(acc)), 1)
        self.sync_ok([Ev(m, acc, 11, ts=T + 4)])
        recs = self.records(acc)
        self.assertEqual([(r.threshold_code, r.value_at_cross, r.event_timestamp)
                          for r in recs], [("hi", 12, T + 1), ("hi", 11, T + 4)])
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).alert_flags, 1)

    def test_count_unique_add_remove(self):
        """Goal: COUNT_UNIQUE threshold with ADD/REMOVE: crossing at 2 distinct members fires,
        a repeated ADD does not re-fire, a REMOVE below clears, a new ADD re-fires."""
        m, acc = code("acu"), account()
        self.assertEqual(self.c.put_metric(m, wire.COUNT_UNIQUE, [], [("two", 2, False)]),
                         wire.OK)
        T, A, R = self.T, wire.OP_ADD, wire.OP_REMOVE
        self.sync_ok([Ev(m, acc, 1, ts=T, op=A), Ev(m, acc, 2, ts=T + 1, op=A),
                      Ev(m, acc, 2, ts=T + 2, op=A)])
        self.assertEqual([r.value_at_cross for r in self.records(acc)], [2])
        self.sync_ok([Ev(m, acc, 1, ts=T + 3, op=R)])
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).alert_flags, 0)
        self.sync_ok([Ev(m, acc, 3, ts=T + 4, op=A)])
        recs = self.records(acc)
        self.assertEqual([(r.value_at_cross, r.event_timestamp) for r in recs],
                         [(2, T + 1), (2, T + 4)])

    def test_alerts_list_offsets(self):
        """Goal: WP §7.9 / §12(d): ALERTS_LIST offsets are the real, dense log indices;
        account 0 = all accounts; since_offset filters; records ascending by offset; unknown
        metrics are never evaluated."""
        m, a1, a2 = code("aoff"), account(), account()
        self.assertEqual(self.c.put_metric(m, wire.COUNT, [], [("every", 1, True)]), wire.OK)
        T = self.T
        for i in range(3):
            self.sync_ok([Ev(m, a1, 1, ts=T + i), Ev(m, a2, 1, ts=T + i)])
        st, r = self.c.ingest([Ev(code("aoff_unknown"), a1, 1000, ts=T)])
        self.assertEqual(st, wire.UNKNOWN_METRIC)
        self.assertEqual(len(self.records(a1)), 3)  # the unknown metric did not fire
        self.assertEqual(len(self.records(a2)), 3)
        everything = self.c.alerts(0, 0)
        self.assertLessEqual(len(everything), 256)
        self.assertEqual([r.offset for r in everything], list(range(len(everything))))
        mine = [r for r in everything if r.metric_code == m]
        self.assertEqual(len(mine), 6)
        self.assertEqual({r.account_id for r in mine}, {a1, a2})
        r1 = self.c.alerts(a1, 0)
        self.assertEqual([r for r in everything if r.account_id == a1], r1)
        self.assertEqual(len(r1), 4)  # 3 crossings + 1 sentinel record
        cut = r1[1].offset
        self.assertEqual(self.c.alerts(a1, cut), r1[1:])
        self.assertEqual(self.c.alerts(a1, r1[-1].offset + 1), [])
        self.assertEqual(self.c.alerts(0, everything[-1].offset + 1), [])

    def test_alert_push(self):
        """Goal: WP §8.1: after ALERT_PUSH_ENABLE (OK, empty) a threshold crossing caused by
        another connection arrives as a push frame: status 0x35, request_id 0, 144 bytes, the
        record equals ALERTS_LIST's record with the same offset, node_id 0. A connection that
        did not enable pushes gets none."""
        sub = self.node.connect()
        other = self.node.connect()
        try:
            self.assertEqual(sub.call(wire.ALERT_PUSH_ENABLE), (wire.OK, b""))
            self.assertEqual(sub.call(wire.ALERT_PUSH_ENABLE), (wire.OK, b""))  # idempotent
            m, acc = code("apush"), account()
            self.assertEqual(self.c.put_metric(m, wire.SUM, [], [("big", 100, False)]),
                             wire.OK)
            self.sync_ok([Ev(m, acc, 60, ts=self.T), Ev(m, acc, 60, ts=self.T + 1)])
            f = sub.wait_push(lambda f: f.status == wire.PUSH_ALERT and
                              wire.parse_alert_push(f.payload)[0].metric_code == m, 60)
            self.assertEqual((f.status, f.request_id, len(f.payload)), (0x35, 0, 144))
            self.assertEqual(f.payload[137:144], b"\x00" * 7)
            rec, node_id = wire.parse_alert_push(f.payload)
            self.assertEqual(node_id, 0)
            self.assertEqual((rec.account_id, rec.threshold_code, rec.value_at_cross,
                              rec.event_timestamp), (acc, "big", 120, self.T + 1))
            listed = self.c.alerts(acc, 0)
            self.assertEqual(listed, [rec])
            # The raw frame header as it came on the wire.
            self.assertIn((0x35, 0, 144), sub.all_frames)
            self.assertStillInSync(other)
            self.assertEqual([p for p in other.pushes if p.status == 0x35], [])
        finally:
            sub.close()
            other.close()


class AlertsCapTest(unittest.TestCase):
    """WP §7.9: ALERTS_LIST returns at most 256 matching records (own node: the log must
    start empty)."""

    def test_alerts_list_cap_and_paging(self):
        """Goal: with 300 records (recurring threshold), ALERTS_LIST since 0 returns the first
        256 (offsets 0..255, ascending); since 256 returns the remaining 44; filtering by
        account counts matching records only (records of another account are skipped)."""
        node = wire.Node(BINARY, extra_args=NODE_ARGS).start()
        try:
            with node.connect() as c:
                self.assertEqual(c.put_metric("cap", wire.COUNT, [], [("r", 1, True)]), wire.OK)
                T = ts(2026, 8, 2)
                st, _ = c.ingest([Ev("cap", 9, 1, ts=T + i) for i in range(100)])
                self.assertEqual(st, wire.OK)
                st, _ = c.ingest([Ev("cap", 10, 1, ts=T + i) for i in range(200)])
                self.assertEqual(st, wire.OK)
                deadline = time.monotonic() + 60
                while len(c.alerts(0, 256)) < 44 and time.monotonic() < deadline:
                    time.sleep(0.05)
                first = c.alerts(0, 0)
                self.assertEqual([r.offset for r in first], list(range(256)))
                rest = c.alerts(0, 256)
                self.assertEqual([r.offset for r in rest], list(range(256, 300)))
                self.assertEqual(c.alerts(0, 300), [])
                only10 = c.alerts(10, 0)
                self.assertEqual([r.offset for r in only10], list(range(100, 300))[:256])
                self.assertTrue(all(r.account_id == 10 for r in only10))
                self.assertEqual([r.value_at_cross for r in only10], list(range(1, 201)))
        finally:
            self.assertEqual(node.stop(), 0)


# -----------------------------------------------------------------------------------------


class BreakdownTest(Base):
    """WP §7.11, §6.13; PS §6.3."""

    def setUp(self):
        super().setUp()
        self.m, self.acc = code("bd"), account()
        self.assertEqual(self.c.put_metric(
            self.m, wire.SUM, [("provider", ["aws", "gcp", "azure"]),
                               ("region", ["us-east", "eu-west"]), ("tier", ["free"])],
            [("t", 1, False)]), wire.OK)
        self.sync_ok([
            Ev(self.m, self.acc, 1, props=[("provider", "aws"), ("region", "us-east")]),
            Ev(self.m, self.acc, 2, props=[("provider", "azure"), ("region", "eu-west")]),
            Ev(self.m, self.acc, 4, props=[("provider", "gcp")]),
            Ev(self.m, self.acc, 8, props=[("region", "eu-west"), ("provider", "aws"),
                                           ("tier", "free")]),
            Ev(self.m, self.acc, 0, props=[("provider", "gcp"), ("region", "us-east")]),
        ])

    def bd(self, keys, start=ALL_TIME[0], end=ALL_TIME[1]):
        st, p = self.c.call(wire.USAGE_QUERY_BREAKDOWN,
                            wire.breakdown_query(self.acc, start, end, self.m, keys))
        self.assertEqual(st, wire.OK)
        self.assertEqual(len(p) % 320, 0)  # no count header
        return [(e.keys, e.values, e.agg.sum, e.agg.alert_flags) for e in
                wire.parse_breakdown(p)]

    def test_cartesian_order_non_empty_cells(self):
        """Goal: cells in cartesian order of declared values (last key fastest), only
        non-empty cells (a cell with a 0-valued event is non-empty), keys echoed in the
        requested order, alert_flags 0."""
        self.assertEqual(self.bd(["provider", "region"]), [
            (["provider", "region"], ["aws", "us-east"], 1, 0),
            (["provider", "region"], ["aws", "eu-west"], 8, 0),
            (["provider", "region"], ["gcp", "us-east"], 0, 0),
            (["provider", "region"], ["azure", "eu-west"], 2, 0)])
        self.assertEqual(self.bd(["region", "provider"]), [
            (["region", "provider"], ["us-east", "aws"], 1, 0),
            (["region", "provider"], ["us-east", "gcp"], 0, 0),
            (["region", "provider"], ["eu-west", "aws"], 8, 0),
            (["region", "provider"], ["eu-west", "azure"], 2, 0)])
        self.assertEqual(self.bd(["provider"]), [
            (["provider"], ["aws"], 9, 0), (["provider"], ["gcp"], 4, 0),
            (["provider"], ["azure"], 2, 0)])
        # A 3-key cell counts events that matched all three pairs.
        self.assertEqual(self.bd(["tier", "provider", "region"]), [
            (["tier", "provider", "region"], ["free", "aws", "eu-west"], 8, 0)])
        # Entry layout details: dims_count and zeroed unused slots.
        st, p = self.c.call(wire.USAGE_QUERY_BREAKDOWN,
                            wire.breakdown_query(self.acc, *ALL_TIME, self.m, ["provider"]))
        self.assertEqual(p[0], 1)
        self.assertEqual(p[1:8], b"\x00" * 7)
        self.assertEqual(p[40:136], b"\x00" * 96)
        self.assertEqual(p[168:264], b"\x00" * 96)

    def test_empty_result(self):
        """Goal: no events in the range -> OK with payload_len 0."""
        self.assertEqual(self.bd(["provider"], ts(2001, 1, 1), ts(2001, 1, 2)), [])

    def test_errors(self):
        """Goal: ERR for an undeclared key, G = 0, G = 5, a repeated key, an unregistered
        metric, a payload too short for G; connection in sync."""
        q = wire.breakdown_query
        cases = [q(self.acc, *ALL_TIME, self.m, ["color"]),
                 q(self.acc, *ALL_TIME, self.m, ["provider", "color"]),
                 q(self.acc, *ALL_TIME, self.m, []),
                 q(self.acc, *ALL_TIME, self.m, ["provider", "region", "tier", "provider",
                                                  "region"]),
                 q(self.acc, *ALL_TIME, self.m, ["provider", "provider"]),
                 q(self.acc, *ALL_TIME, code("bd_unregistered"), ["provider"]),
                 q(self.acc, *ALL_TIME, self.m, ["provider", "region"])[:96 + 40]]
        for i, payload in enumerate(cases):
            st, p = self.c.call(wire.USAGE_QUERY_BREAKDOWN, payload)
            self.assertEqual((st, p), (wire.ERR, b""), i)
            self.assertStillInSync()


# -----------------------------------------------------------------------------------------


class EventsListTest(Base):
    """WP §7.8, §6.10; PS §6.4."""

    def test_bounds_order_and_content(self):
        """Goal: since and until are both inclusive; ascending offsets; records carry offset,
        timestamp, account, metric code (also for unknown metrics), value, operation type;
        account matched exactly."""
        m, acc = code("el"), account()
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        unk = code("el_unknown")
        T = ts(2026, 4, 4)
        self.sync_ok([Ev(m, acc, 1, ts=T + 300), Ev(m, acc, 2, ts=T + 100, op=wire.OP_ADD),
                      Ev(unk, acc, 3, ts=T + 200, op=wire.OP_REMOVE),
                      Ev(m, acc + 256 * 4096, 4, ts=T + 200)])  # same partition, other account
        evs = self.c.events(acc, T + 100, T + 300)
        self.assertEqual([(e.timestamp, e.account_id, e.metric_code, e.value, e.op)
                          for e in evs],
                         [(T + 300, acc, m, 1, 0), (T + 100, acc, m, 2, 1),
                          (T + 200, acc, unk, 3, 2)])
        offs = [e.offset for e in evs]
        self.assertEqual(offs, sorted(offs))
        self.assertEqual(len(set(offs)), 3)
        self.assertEqual([e.value for e in self.c.events(acc, T + 101, T + 299)], [3])
        self.assertEqual([e.value for e in self.c.events(acc, T + 200, T + 200)], [3])
        self.assertEqual(self.c.events(acc, T + 301, T + 400), [])
        self.assertEqual(self.c.events(acc, T + 300, T + 100), [])
        st, p = self.c.call(wire.EVENTS_LIST, wire.events_list(acc, T, T + 1000))
        self.assertEqual(p[4:8], b"\x00" * 4)
        for i in range(3):
            rec = p[8 + 104 * i:112 + 104 * i]
            self.assertEqual(rec[97:104], b"\x00" * 7)
            self.assertEqual(rec[24:88], wire.cstr(evs[i].metric_code, 64))

    def test_at_most_1024(self):
        """Goal: with more than 1,024 matching events, the first 1,024 by offset."""
        m, acc = code("el1024"), account()
        self.assertEqual(self.c.put_metric(m, wire.COUNT), wire.OK)
        self.sync_ok([Ev(m, acc, i) for i in range(1024)])
        self.sync_ok([Ev(m, acc, 5000 + i) for i in range(100)])
        evs = self.c.events(acc)
        self.assertEqual(len(evs), 1024)
        self.assertEqual([e.value for e in evs], list(range(1024)))
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).count, 1124)

    def test_account_zero(self):
        """Goal: account 0 is a legal account for ingest, queries and EVENTS_LIST (matched
        exactly, not "all")."""
        m = code("acc0")
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        T = ts(2026, 4, 5) + next(_accounts)
        self.sync_ok([Ev(m, 0, 7, ts=T), Ev(m, 256, 8, ts=T)])
        self.assertEqual([(e.account_id, e.value) for e in self.c.events(0, T, T)], [(0, 7)])
        self.assertEqual(self.c.query(0, T, T + 1, m).sum, 7)


# -----------------------------------------------------------------------------------------


class ClusterTest(Base):
    """WP §7.2, §6.14, §7.12, §6.15, §7.13."""

    def test_partition_map(self):
        """Goal: exactly 24,576 bytes; every leader non-empty and a parseable host:port that
        reaches this node (no --bind: the client connection's local IP + --port); replicas
        empty on a single node; pad zero."""
        st, p = self.c.call(wire.GET_PARTITION_MAP)
        self.assertEqual((st, len(p)), (wire.OK, 24_576))
        entries = wire.parse_partition_map(p)
        for leader, r0, r1, pad in entries:
            self.assertTrue(leader)
            self.assertLessEqual(len(leader.encode()), 23)
            host, port = wire.split_address(leader)
            self.assertEqual((host, port), ("127.0.0.1", self.node.port))
            self.assertEqual((r0, r1, pad), ("", "", b"\x00" * 24))
        host, port = wire.split_address(entries[0][0])
        with wire.Connection(port, host) as c2:
            self.assertStillInSync(c2)

    def test_cluster_status(self):
        """Goal: 2,088 bytes; node_id 0, n_nodes 1; wal_offset monotonic and growing with
        SYNC writes; uptime > 0; every partition owned by this node (role 0, leader 0)."""
        st, p = self.c.call(wire.CLUSTER_STATUS)
        self.assertEqual((st, len(p)), (wire.OK, 2_088))
        s1 = wire.parse_cluster_status(p)
        self.assertEqual((s1.node_id, s1.n_nodes), (0, 1))
        self.assertEqual(p[2:8], b"\x00" * 6)
        self.assertGreater(s1.uptime_ns, 0)
        for part in s1.partitions:
            self.assertEqual((part.role, part.leader), (0, 0))
        m, acc = code("cs"), account()
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        self.sync_ok([Ev(m, acc, 1)])
        s2 = wire.parse_cluster_status(self.c.call(wire.CLUSTER_STATUS)[1])
        self.assertGreater(s2.wal_offset, s1.wal_offset)
        self.assertGreaterEqual(s2.uptime_ns, s1.uptime_ns)
        self.assertGreater(s2.memtable_entries, 0)

    def test_rebalance(self):
        """Goal: CLUSTER_REBALANCE with the configured size 1 -> OK (empty); 2 or 0 -> ERR;
        the node still owns everything afterwards."""
        self.assertEqual(self.c.call(wire.CLUSTER_REBALANCE, b"\x01"), (wire.OK, b""))
        self.assertEqual(self.c.call(wire.CLUSTER_REBALANCE, b"\x02"), (wire.ERR, b""))
        self.assertEqual(self.c.call(wire.CLUSTER_REBALANCE, b"\x00"), (wire.ERR, b""))
        s = wire.parse_cluster_status(self.c.call(wire.CLUSTER_STATUS)[1])
        self.assertTrue(all(p.role == 0 and p.leader == 0 for p in s.partitions))
        m, acc = code("rb"), account()
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        self.sync_ok([Ev(m, acc, 4)])
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 4)

    def test_never_not_leader_or_bad_status(self):
        """Goal: WP §4: no reply ever carries NOT_LEADER or a status outside 0-6 (checked on
        every frame this connection received during a burst of mixed requests)."""
        acc = account()
        for op, payload in ((wire.GET_PARTITION_MAP, b""), (wire.METRIC_LIST, b""),
                            (wire.USAGE_REALTIME, wire.usage_realtime(acc, "x")),
                            (wire.EVENTS_LIST, wire.events_list(acc, 0, 1)),
                            (wire.ALERTS_LIST, wire.alerts_list(acc, 0)),
                            (wire.INGEST_ASYNC, wire.ingest_payload([Ev("x", acc)]))):
            self.c.call(op, payload)
        for status, rid, _ in self.c.all_frames:
            self.assertNotEqual(rid, 0)
            self.assertIn(status, (0, 1, 2, 3, 4, 6))


# -----------------------------------------------------------------------------------------


class HttpTest(Base):
    """WP §11; PS §15."""

    def test_health(self):
        """Goal: GET /health -> 200 JSON {"status":"ok","uptime_seconds":N,...},
        Content-Type application/json, Connection: close."""
        st, h, body = wire.http_request(self.node.http_port, "GET", "/health")
        self.assertEqual(st, 200)
        self.assertIn("application/json", h.get("content-type", ""))
        self.assertEqual(h.get("connection", "").lower(), "close")
        doc = json.loads(body)
        self.assertEqual(doc["status"], "ok")
        self.assertIsInstance(doc["uptime_seconds"], int)
        self.assertGreaterEqual(doc["uptime_seconds"], 0)
        self.assertTrue(body.startswith(b'{"status":"ok","uptime_seconds":'), body)

    def test_metrics(self):
        """Goal: GET /metrics: Prometheus text 0.0.4 with every billing_* name of PS §15, with
        its type, the mode labels, and the exact histogram bucket bounds."""
        st, h, body = wire.http_request(self.node.http_port, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertEqual(h.get("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        text = body.decode()
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        counters = ["billing_events_ingested_total", "billing_events_duplicate_total",
                    "billing_wal_writes_total", "billing_wal_syncs_total",
                    "billing_view_changes_total", "billing_alerts_recorded_total",
                    "billing_alerts_pushed_total"]
        gauges = ["billing_connections_active", "billing_http_connections_active",
                  "billing_wal_offset_bytes", "billing_alert_subscribers",
                  "billing_agg_keys_total", "billing_memtable_bytes",
                  "billing_checkpoint_bytes"]
        hists = ["billing_ingest_async_duration_seconds",
                 "billing_ingest_sync_duration_seconds", "billing_wal_sync_duration_seconds"]
        for n in counters:
            self.assertEqual(types.get(n), "counter", n)
        for n in gauges:
            self.assertEqual(types.get(n), "gauge", n)
            self.assertRegex(text, r"(?m)^%s [0-9.e+-]+$" % n)
        for n in hists:
            self.assertEqual(types.get(n), "histogram", n)
            les = re.findall(r'(?m)^%s_bucket\{le="([^"]+)"\} [0-9]+$' % n, text)
            self.assertEqual(les, ["0.0005", "0.001", "0.005", "0.01", "0.025", "0.05", "0.1",
                                   "0.25", "0.5", "1.0", "2.5", "+Inf"], n)
            self.assertRegex(text, r"(?m)^%s_sum [0-9.e+-]+$" % n)
            self.assertRegex(text, r"(?m)^%s_count [0-9]+$" % n)
        self.assertRegex(text, r'(?m)^billing_events_ingested_total\{mode="async"\} [0-9]+')
        self.assertRegex(text, r'(?m)^billing_events_ingested_total\{mode="sync"\} [0-9]+')
        for n in counters[1:]:
            self.assertRegex(text, r"(?m)^%s [0-9.e+]+$" % n)

    def test_metrics_count_ingest(self):
        """Goal: billing_events_ingested_total counts stored events by mode and
        billing_events_duplicate_total counts duplicates (single node: owner-side)."""
        m, acc = code("mc"), account()
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        sync0 = self.node.metric_value('billing_events_ingested_total{mode="sync"}')
        dup0 = self.node.metric_value("billing_events_duplicate_total")
        T = ts(2026, 9, 9)
        self.sync_ok([Ev(m, acc, 1, ts=T), Ev(m, acc, 2, ts=T), Ev(m, acc, 1, ts=T)])
        self.assertEqual(self.node.metric_value(
            'billing_events_ingested_total{mode="sync"}') - sync0, 2)
        self.assertEqual(self.node.metric_value("billing_events_duplicate_total") - dup0, 1)

    def test_post_events_aggregated(self):
        """Goal: POST /v1/events -> 200 {"ok":true,"count":N}; the events (server-stamped, op
        NONE, unknown keys ignored, u64 max accepted) are aggregated like binary ingest;
        "sync" on any element makes the request SYNC."""
        m, acc = code("http"), account()
        self.assertEqual(self.c.put_metric(m, wire.SUM), wire.OK)
        sync0 = self.node.metric_value('billing_events_ingested_total{mode="sync"}')
        body = [{"account_id": acc, "metric_code": m, "value": 5, "extra": [1, 2]},
                {"account_id": acc, "metric_code": m, "value": 7, "delivery_mode": "sync"},
                {"account_id": acc + 1, "metric_code": m, "value": (1 << 64) - 1}]
        account()
        st, h, resp = wire.http_request(self.node.http_port, "POST", "/v1/events", body,
                                        {"Content-Type": "application/json"})
        self.assertEqual(st, 200, resp)
        self.assertEqual(json.loads(resp), {"ok": True, "count": 3})
        self.assertEqual(resp.replace(b" ", b""), b'{"ok":true,"count":3}')
        self.assertEqual(h.get("connection", "").lower(), "close")
        self.assertEqual(self.node.metric_value(
            'billing_events_ingested_total{mode="sync"}') - sync0, 3)
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 12)
        self.assertEqual(self.c.query(acc + 1, *ALL_TIME, m).sum, (1 << 64) - 1)
        evs = self.c.events(acc)
        self.assertEqual([(e.value, e.op) for e in evs], [(5, 0), (7, 0)])
        self.assertTrue(all(e.timestamp > 0 for e in evs))
        # ASYNC over HTTP: eventually aggregated too.
        st, _, resp = wire.http_request(self.node.http_port, "POST", "/v1/events",
                                        [{"account_id": acc, "metric_code": m, "value": 100}])
        self.assertEqual((st, json.loads(resp)), (200, {"ok": True, "count": 1}))
        deadline = time.monotonic() + 60
        while self.c.query(acc, *ALL_TIME, m).sum != 112 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 112)
        # HTTP events are server-stamped, hence never deduplicated.
        same = [{"account_id": acc, "metric_code": m, "value": 1000, "delivery_mode": "sync"}]
        for _ in range(2):
            st, _, resp = wire.http_request(self.node.http_port, "POST", "/v1/events", same)
            self.assertEqual((st, json.loads(resp)), (200, {"ok": True, "count": 1}))
        self.assertEqual(self.c.query(acc, *ALL_TIME, m).sum, 2112)
        # Unknown metric over HTTP: stored (count), not aggregated.
        st, _, resp = wire.http_request(self.node.http_port, "POST", "/v1/events",
                                        [{"account_id": acc, "metric_code": code("hx"),
                                          "value": 1, "delivery_mode": "sync"}])
        self.assertEqual((st, json.loads(resp)), (200, {"ok": True, "count": 1}))

    def test_post_errors(self):
        """Goal: 400 {"error":"empty body"} for no body / Content-Length 0; 400
        {"error":"invalid json"} for malformed JSON, non-arrays, non-objects, missing keys,
        wrong types, negative / fractional / > u64 numbers; nothing stored."""
        port = self.node.http_port
        acc = account()
        st, _, body = wire.http_request(port, "POST", "/v1/events", b"")
        self.assertEqual((st, json.loads(body)), (400, {"error": "empty body"}))
        st, _, body = wire.http_raw(port, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((st, json.loads(body)), (400, {"error": "empty body"}))
        ok = {"account_id": acc, "metric_code": "m", "value": 1}
        bad = [b"not json", b"[", b'{"account_id":1}', b"[1,2]", b'["x"]',
               json.dumps([dict(ok, account_id=-1)]).encode(),
               json.dumps([dict(ok, value=1.5)]).encode(),
               json.dumps([dict(ok, value="1")]).encode(),
               json.dumps([dict(ok, value=1 << 64)]).encode(),
               json.dumps([dict(ok, metric_code=5)]).encode(),
               json.dumps([{"metric_code": "m", "value": 1}]).encode(),
               json.dumps([{"account_id": acc, "value": 1}]).encode(),
               json.dumps([{"account_id": acc, "metric_code": "m"}]).encode(),
               json.dumps([ok, {"account_id": acc, "metric_code": "m"}]).encode()]
        for b in bad:
            st, _, body = wire.http_request(port, "POST", "/v1/events", b)
            self.assertEqual(st, 400, b)
            self.assertEqual(json.loads(body), {"error": "invalid json"}, b)
        self.assertEqual(self.c.events(acc), [])

    def test_too_large(self):
        """Goal: 413 when the body does not fit in the 16,384-byte request; 431 when the
        request line + headers do not fit."""
        port = self.node.http_port
        big = b"[" + b",".join([b'{"account_id":1,"metric_code":"m","value":1}'] * 400) + b"]"
        self.assertGreater(len(big), 16_384)
        st, _, body = wire.http_request(port, "POST", "/v1/events", big)
        self.assertEqual(st, 413)
        self.assertEqual(json.loads(body), {"error": "payload too large"})
        hdr = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000 + b"\r\n"
        st, _, body = wire.http_raw(port, hdr + b"Content-Length: 2\r\n\r\n[]")
        self.assertEqual(st, 431)
        self.assertEqual(json.loads(body), {"error": "headers too large"})
        st, _, _ = wire.http_request(self.node.http_port, "GET", "/health")
        self.assertEqual(st, 200)

    def test_not_found(self):
        """Goal: any other method/path -> 404 {"error":"not found"}."""
        for method, path in (("GET", "/"), ("GET", "/v1/event"), ("POST", "/health"),
                             ("GET", "/v1/events"), ("DELETE", "/metrics")):
            st, _, body = wire.http_request(self.node.http_port, method, path)
            self.assertEqual(st, 404, (method, path))
            self.assertEqual(json.loads(body), {"error": "not found"}, (method, path))


# -----------------------------------------------------------------------------------------


class ConfigTest(unittest.TestCase):
    """PS §14 flags, PS §11 backpressure: each on its own node."""

    def test_bind_advertised_in_partition_map(self):
        """Goal: --bind is the advertised address written into every leader slot of the
        partition map; unknown flags only warn."""
        node = wire.Node(BINARY, extra_args=NODE_ARGS + ["--bind=10.1.2.3:4567",
                                                         "--no-such-flag=1"]).start()
        try:
            with node.connect() as c:
                st, p = c.call(wire.GET_PARTITION_MAP)
                self.assertEqual((st, len(p)), (wire.OK, 24_576))
                self.assertEqual({e[0] for e in wire.parse_partition_map(p)}, {"10.1.2.3:4567"})
        finally:
            self.assertEqual(node.stop(), 0)

    def test_bind_too_long_refused(self):
        """Goal: a --bind longer than 23 bytes makes the node refuse to start (non-zero
        exit)."""
        node = wire.Node(BINARY, extra_args=["--bind=abcdefghijklmnopqrs:7001"], start_timeout=60)
        try:
            with self.assertRaises(RuntimeError):
                node.start()
            self.assertNotEqual(node.proc.returncode, 0)
        finally:
            node.kill()

    def test_disk_backpressure(self):
        """Goal: PS §11: with free disk below --min-free-disk-mb, writes (ingest, METRIC_PUT,
        METRIC_DELETE, HTTP ingest) get BACKPRESSURE (empty payload) / HTTP 503 and nothing is
        accepted, while reads keep working."""
        node = wire.Node(BINARY, extra_args=NODE_ARGS + ["--min-free-disk-mb=1000000000"])
        node.start()
        try:
            with node.connect() as c:
                deadline = time.monotonic() + 60  # "checked at least every 5 s"
                st = None
                while time.monotonic() < deadline:
                    st, p = c.call(wire.INGEST_SYNC, wire.ingest_payload([Ev("bp", 1, 1)]))
                    if st == wire.BACKPRESSURE:
                        break
                    time.sleep(0.2)
                self.assertEqual((st, p), (wire.BACKPRESSURE, b""))
                before = len(c.events(2))
                self.assertEqual(before, 0)
                for op in (wire.INGEST_SYNC, wire.INGEST_ASYNC):
                    self.assertEqual(c.call(op, wire.ingest_payload([Ev("bp", 2, 1)])),
                                     (wire.BACKPRESSURE, b""))
                self.assertEqual(c.call(wire.METRIC_PUT, wire.metric_schema("bp", wire.SUM)),
                                 (wire.BACKPRESSURE, b""))
                self.assertEqual(c.call(wire.METRIC_DELETE, wire.cstr("bp", 64)),
                                 (wire.BACKPRESSURE, b""))
                st, _, body = wire.http_request(node.http_port, "POST", "/v1/events",
                                                [{"account_id": 2, "metric_code": "bp",
                                                  "value": 1, "delivery_mode": "sync"}])
                self.assertEqual((st, json.loads(body)), (503, {"error": "backpressure"}))
                self.assertEqual(c.events(2), [])
                self.assertEqual(c.list_metrics(), [])
                self.assertEqual(c.call(wire.CLUSTER_STATUS)[0], wire.OK)
                self.assertEqual(c.call(wire.USAGE_QUERY, wire.usage_query(2, *ALL_TIME, "bp")),
                                 (wire.OK, b"\x00" * 56))
        finally:
            self.assertEqual(node.stop(), 0)


# -----------------------------------------------------------------------------------------


class DurabilityTest(unittest.TestCase):
    """PS §12.3, WP §12(f), (g): restart durability on one node, own data dir."""

    def test_sigkill_restart(self):
        """Goal: SYNC-acked events (with their offsets), metric schemas, aggregates (incl.
        COUNT_UNIQUE sets and alert flags), dedup state and alert records with their offsets
        survive SIGKILL + restart on the same data dir; afterwards SIGTERM exits 0."""
        node = wire.Node(BINARY, extra_args=NODE_ARGS).start()
        try:
            T = ts(2026, 10, 1)
            acc = 4242
            with node.connect() as c:
                self.assertEqual(c.put_metric("dur_sum", wire.SUM, [("k", ["v", "w"])],
                                              [("ten", 10, False), ("rec", 3, True)],
                                              wire.CALENDAR, 31, field_name="f"), wire.OK)
                self.assertEqual(c.put_metric("dur_cu", wire.COUNT_UNIQUE), wire.OK)
                self.assertEqual(c.put_metric("dur_gone", wire.SUM), wire.OK)
                self.assertEqual(c.call(wire.METRIC_DELETE, wire.cstr("dur_gone", 64))[0],
                                 wire.OK)
                for i in range(5):
                    st, r = c.ingest([Ev("dur_sum", acc, 3, ts=T + i,
                                         props=[("k", "v" if i % 2 else "w")]),
                                      Ev("dur_cu", acc, i % 3, ts=T + i, op=wire.OP_ADD)])
                    self.assertEqual(st, wire.OK)
                st, r = c.ingest([Ev("dur_unknown", acc + 1, 9, ts=T)])
                self.assertEqual(st, wire.UNKNOWN_METRIC)
                # Crossing records follow the acknowledgement: wait until all 6 are listed.
                self.assertEqual(len(c.wait_alerts(0, 6)), 6)
                before = dict(
                    schemas=c.list_metrics(),
                    events=c.events(acc), events2=c.events(acc + 1),
                    sum=c.query(acc, *ALL_TIME, "dur_sum"),
                    sum_v=c.query(acc, *ALL_TIME, "dur_sum", [("k", "v")]),
                    cu=c.query(acc, *ALL_TIME, "dur_cu"),
                    alerts=c.alerts(0, 0))
            self.assertEqual(before["sum"].sum, 15)
            self.assertEqual(before["sum"].alert_flags, 0b11)
            self.assertEqual(before["cu"].count, 3)
            self.assertEqual(len(before["alerts"]), 1 + 5)  # "ten" once, "rec" 5x (>=3)
            node.kill()
            node.start()
            with node.connect() as c:
                after = dict(
                    schemas=c.list_metrics(),
                    events=c.events(acc), events2=c.events(acc + 1),
                    sum=c.query(acc, *ALL_TIME, "dur_sum"),
                    sum_v=c.query(acc, *ALL_TIME, "dur_sum", [("k", "v")]),
                    cu=c.query(acc, *ALL_TIME, "dur_cu"),
                    alerts=c.alerts(0, 0))
                for k in before:
                    self.assertEqual(after[k], before[k], k)
                self.assertEqual([s.code for s in after["schemas"]], ["dur_cu", "dur_sum"])
                # Dedup state survived: the resent client-timestamped event is a duplicate.
                st, r = c.ingest([Ev("dur_sum", acc, 3, ts=T + 4, props=[("k", "w")])])
                self.assertEqual((st, r), (wire.DUPLICATE, wire.IngestResult(0, 1, 0)))
                # The COUNT_UNIQUE set survived: re-adding members does not count them again.
                st, r = c.ingest([Ev("dur_cu", acc, 1, ts=T + 100, op=wire.OP_ADD),
                                  Ev("dur_cu", acc, 7, ts=T + 101, op=wire.OP_ADD)])
                self.assertEqual(st, wire.OK)
                self.assertEqual(c.query(acc, *ALL_TIME, "dur_cu").count, 4)
                # New events get new offsets after the old ones; alerts continue densely.
                st, r = c.ingest([Ev("dur_sum", acc, 1, ts=T + 200)])
                self.assertGreater(r.last_offset, before["events"][-1].offset)
                alerts = c.wait_alerts(0, len(before["alerts"]) + 1)
                self.assertEqual([a.offset for a in alerts], list(range(len(alerts))))
                self.assertEqual(alerts[:len(before["alerts"])], before["alerts"])
                self.assertEqual(len(alerts), len(before["alerts"]) + 1)
            self.assertEqual(node.stop(), 0)
            # A graceful stop loses nothing either.
            node.start()
            with node.connect() as c:
                self.assertEqual(c.query(acc, *ALL_TIME, "dur_sum").sum, 16)
                self.assertEqual(len(c.alerts(0, 0)), len(before["alerts"]) + 1)
        finally:
            rc = node.stop()
        self.assertEqual(rc, 0)

    def test_crossing_recorded_despite_sigkill_after_ack(self):
        """Goal: PS §7.2: a committed crossing is never left unrecorded: SIGKILL right after
        the SYNC acknowledgement of the crossing event; after restart the record is listed
        (exactly once, at offset 0) and the flag is set."""
        node = wire.Node(BINARY, extra_args=NODE_ARGS).start()
        try:
            T = ts(2026, 10, 2)
            with node.connect() as c:
                self.assertEqual(c.put_metric("kill_alert", wire.SUM, [], [("five", 5, False)]),
                                 wire.OK)
                st, r = c.ingest([Ev("kill_alert", 77, 9, ts=T)])
                self.assertEqual(st, wire.OK)
                node.kill()
            node.start()
            with node.connect() as c:
                recs = c.wait_alerts(0, 1)
                self.assertEqual([(r.offset, r.account_id, r.metric_code, r.threshold_code,
                                   r.value_at_cross, r.event_timestamp) for r in recs],
                                 [(0, 77, "kill_alert", "five", 9, T)])
                self.assertEqual(c.query(77, *ALL_TIME, "kill_alert").alert_flags, 1)
                # The flag is set, so a further event does not record a second crossing.
                self.assertEqual(c.ingest([Ev("kill_alert", 77, 1, ts=T + 1)])[0], wire.OK)
                self.assertEqual(c.ingest([Ev("kill_alert", 77, 1, ts=T + 2)])[0], wire.OK)
            self.assertEqual(node.stop(), 0)
            node.start()
            with node.connect() as c:
                self.assertEqual(len(c.alerts(0, 0)), 1)
                self.assertEqual(c.query(77, *ALL_TIME, "kill_alert").sum, 11)
        finally:
            rc = node.stop()
        self.assertEqual(rc, 0)

    def test_sigterm_exits_zero_with_open_connections(self):
        """Goal: SIGTERM shuts the server down gracefully (exit 0) even with client
        connections open and a subscriber registered."""
        node = wire.Node(BINARY, extra_args=NODE_ARGS).start()
        c = node.connect()
        try:
            self.assertEqual(c.call(wire.ALERT_PUSH_ENABLE), (wire.OK, b""))
            self.assertEqual(c.call(wire.INGEST_ASYNC, wire.ingest_payload([Ev("x", 1)]))[0],
                             wire.UNKNOWN_METRIC)
            self.assertEqual(node.stop(), 0)
            self.assertTrue(c.wait_closed(60))
        finally:
            c.close()
            node.kill()


if __name__ == "__main__":
    unittest.main()
