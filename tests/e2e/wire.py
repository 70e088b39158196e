"""An independent codec of the Unimeter wire protocol v1, written from the spec alone.

Source: shared/spec/wire-protocol-v1.md (WP) and shared/spec/product-semantics.md (PS).
Nothing here is derived from the server's code or from the project's protocol/ codec: the
point is a second, independent reading of the byte layouts, the way the existing Go and
Python SDKs talk to the server (raw bytes on a TCP socket, `socket` + `struct` only).

Also: `Node` (a real `unimeter` process on free loopback ports in a temp dir) and
`Connection` (one multiplexed client connection: replies matched by request id, pushes
collected separately).
"""

import collections
import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

# ---------------------------------------------------------------------------------------
# Constants (WP §2, §3, §4, §5)

MAGIC = 0xC0FFEE01
VERSION = 1
AUTO_PARTITION = 0xFFFF
MAX_PAYLOAD = 196_616

OK, DUPLICATE, ERR, UNKNOWN_METRIC, REDIRECT, NOT_LEADER, BACKPRESSURE = range(7)
PUSH_ALERT = 0x35
PUSH_PARTITION_MAP = 0x11

INGEST_ASYNC = 0x00
INGEST_SYNC = 0x01
GET_PARTITION_MAP = 0x10
METRIC_PUT = 0x20
METRIC_DELETE = 0x21
METRIC_LIST = 0x22
USAGE_QUERY = 0x30
USAGE_REALTIME = 0x31
EVENTS_LIST = 0x32
ALERTS_LIST = 0x33
ALERT_PUSH_ENABLE = 0x34
USAGE_QUERY_BREAKDOWN = 0x36
CLUSTER_STATUS = 0x40
CLUSTER_REBALANCE = 0x41

COUNT, SUM, MAX, LATEST, COUNT_UNIQUE = range(5)
FIXED, CALENDAR, DAY = range(3)
OP_NONE, OP_ADD, OP_REMOVE = range(3)

REQ_HEADER = struct.Struct("<IBBHII")  # magic, version, packet_type, partition, len, id
RESP_HEADER = struct.Struct("<B3xII")  # status, pad[3], request_id, payload_len
assert REQ_HEADER.size == 16 and RESP_HEADER.size == 12

SEC = 1_000_000_000
DAY_NS = 86_400 * SEC
FIXED_PERIOD_NS = 2_592_000 * SEC

# ---------------------------------------------------------------------------------------
# Strings (WP §6.1)


def cstr(s, n):
    """char[n]: UTF-8 bytes NUL-padded to n (truncated to n bytes if longer)."""
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    b = b[:n]
    return b + b"\x00" * (n - len(b))


def uncstr(b):
    """The string is the bytes up to the first NUL, or the whole field."""
    i = b.find(b"\x00")
    return (b if i < 0 else b[:i]).decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------
# Headers (WP §2.1, §2.2)


def request_header(packet_type, payload_len, request_id, partition=AUTO_PARTITION,
                   version=VERSION, magic=MAGIC):
    return REQ_HEADER.pack(magic, version, packet_type, partition, payload_len, request_id)


def frame(packet_type, payload, request_id, partition=AUTO_PARTITION, version=VERSION,
          magic=MAGIC):
    return request_header(packet_type, len(payload), request_id, partition, version,
                          magic) + payload


def parse_response_header(b):
    """-> (status, request_id, payload_len)."""
    return RESP_HEADER.unpack(b[:12])


def response_header(status, request_id, payload_len):
    return RESP_HEADER.pack(status, request_id, payload_len)


# ---------------------------------------------------------------------------------------
# Ingest (WP §6.2, §6.3, §6.8, §7.1)


class Ev:
    """One event to ingest. props: list of (key, value)."""

    def __init__(self, code, account, value=1, ts=0, op=OP_NONE, props=(), props_count=None):
        self.code, self.account, self.value, self.ts, self.op = code, account, value, ts, op
        self.props = list(props)
        self.props_count = len(self.props) if props_count is None else props_count


def wire_event(code, account, ts=0, value=1, op=OP_NONE, props_count=0):
    return (cstr(code, 64) + struct.pack("<QqQBB", account, ts, value, op, props_count)
            + b"\x00" * 6)


def prop_pair(key, value):
    return cstr(key, 32) + cstr(value, 64)


def ingest_payload(events, event_count=None, props_count=None):
    """Ingest batch: u32 E, u32 P, E WireEvents, then all PropPairs grouped by event."""
    evs = b"".join(wire_event(e.code, e.account, e.ts, e.value, e.op, e.props_count)
                   for e in events)
    pairs = [prop_pair(k, v) for e in events for (k, v) in e.props]
    e_count = len(events) if event_count is None else event_count
    p_count = len(pairs) if props_count is None else props_count
    return struct.pack("<II", e_count, p_count) + evs + b"".join(pairs)


IngestResult = collections.namedtuple("IngestResult", "n_stored n_duplicates last_offset")


def parse_ingest_result(b):
    assert len(b) == 16, len(b)
    return IngestResult(*struct.unpack("<IIQ", b))


# ---------------------------------------------------------------------------------------
# Metric schema (WP §6.4, §6.5, §6.9)


def dimension_filter(key, values, value_count=None):
    vals = list(values)[:8]
    vc = len(vals) if value_count is None else value_count
    body = b"".join(cstr(v, 32) for v in vals) + b"\x00" * (32 * (8 - len(vals)))
    return cstr(key, 32) + struct.pack("<B3x", vc) + body


def alert_threshold(code, value, recurring=False):
    return cstr(code, 32) + struct.pack("<QB7x", value, 1 if recurring else 0)


def metric_schema(code, agg_type, dims=(), thresholds=None, period_type=None,
                  cycle_day=None, recurring=0, field_name="", filter_count=None,
                  alert_count=None):
    """MetricSchema record. dims: [(key, [values])]; thresholds: [(code, value, recurring)].

    thresholds=None and period_type=None omit the optional sections (allowed on PUT);
    period_type given without thresholds writes an empty threshold section.
    """
    fc = len(dims) if filter_count is None else filter_count
    out = cstr(code, 64) + struct.pack("<BBBx", agg_type, recurring, fc) + cstr(field_name, 64)
    assert len(out) == 132
    for d in dims:
        out += dimension_filter(d[0], d[1], *(d[2:]))
    if thresholds is None and period_type is None:
        return out
    ths = list(thresholds or [])
    ac = len(ths) if alert_count is None else alert_count
    out += struct.pack("<B7x", ac)
    for t in ths:
        out += alert_threshold(*t)
    if period_type is None:
        return out
    out += struct.pack("<BB6x", period_type, 1 if cycle_day is None else cycle_day)
    return out


Schema = collections.namedtuple(
    "Schema", "code agg_type recurring field_name dims thresholds period_type cycle_day size")


def parse_metric_schema(b, off=0):
    """Parses one full (all sections present) MetricSchema record at b[off:]."""
    code = uncstr(b[off:off + 64])
    agg, rec, fc = struct.unpack_from("<BBB", b, off + 64)
    field = uncstr(b[off + 68:off + 132])
    p = off + 132
    dims = []
    for _ in range(fc):
        key = uncstr(b[p:p + 32])
        (vc,) = struct.unpack_from("<B", b, p + 32)
        vals = [uncstr(b[p + 36 + 32 * i:p + 68 + 32 * i]) for i in range(min(vc, 8))]
        dims.append((key, vals))
        p += 292
    (ac,) = struct.unpack_from("<B", b, p)
    p += 8
    ths = []
    for _ in range(ac):
        tcode = uncstr(b[p:p + 32])
        tval, trec = struct.unpack_from("<QB", b, p + 32)
        ths.append((tcode, tval, bool(trec)))
        p += 48
    ptype, cday = struct.unpack_from("<BB", b, p)
    p += 8
    return Schema(code, agg, rec, field, dims, ths, ptype, cday, p - off)


def parse_metric_list(b):
    """count u32, pad u32, then count variable-length records. -> (count, [Schema])."""
    count, _pad = struct.unpack_from("<II", b, 0)
    off, out = 8, []
    for _ in range(count):
        s = parse_metric_schema(b, off)
        out.append(s)
        off += s.size
    assert off == len(b), (off, len(b))
    return count, out


# ---------------------------------------------------------------------------------------
# Queries (WP §6.6, §7.6 - §7.11)

AggValue = collections.namedtuple("AggValue",
                                  "sum count max last_value last_timestamp alert_flags")


def parse_agg_value(b):
    assert len(b) == 56, len(b)
    lo, hi, count, mx, lv, lt, flags = struct.unpack("<QQQQQqQ", b)
    return AggValue(hi << 64 | lo, count, mx, lv, lt, flags)


def usage_query(account, start, end, code, filters=(), filters_count=None):
    """filters: [(key, value)] or [(key, [values...])]; only values[0] counts server-side."""
    fc = len(filters) if filters_count is None else filters_count
    out = struct.pack("<Qqq", account, start, end) + cstr(code, 64) + struct.pack("<B7x", fc)
    for k, v in filters:
        out += dimension_filter(k, [v] if isinstance(v, str) else v)
    return out


def usage_realtime(account, code):
    return struct.pack("<Q", account) + cstr(code, 64)


def events_list(account, since, until):
    return struct.pack("<Qqq", account, since, until)


def alerts_list(account, since_offset):
    return struct.pack("<QQ", account, since_offset)


def breakdown_query(account, start, end, code, keys, group_by_count=None):
    g = len(keys) if group_by_count is None else group_by_count
    out = struct.pack("<Qqq", account, start, end) + cstr(code, 64) + struct.pack("<B7x", g)
    return out + b"".join(cstr(k, 32) for k in keys)


EventRecord = collections.namedtuple("EventRecord",
                                     "offset timestamp account_id metric_code value op")


def parse_event_record(b):
    assert len(b) == 104
    off, ts, acc = struct.unpack_from("<QqQ", b, 0)
    code = uncstr(b[24:88])
    val, op = struct.unpack_from("<QB", b, 88)
    return EventRecord(off, ts, acc, code, val, op)


def parse_events_list(b):
    count, _ = struct.unpack_from("<II", b, 0)
    assert len(b) == 8 + 104 * count, (len(b), count)
    return [parse_event_record(b[8 + 104 * i:112 + 104 * i]) for i in range(count)]


AlertRecord = collections.namedtuple(
    "AlertRecord", "offset account_id metric_code threshold_code value_at_cross event_timestamp")


def parse_alert_record(b):
    assert len(b) == 136
    off, acc = struct.unpack_from("<QQ", b, 0)
    code = uncstr(b[16:80])
    tcode = uncstr(b[80:112])
    val, ts = struct.unpack_from("<Qq", b, 112)
    return AlertRecord(off, acc, code, tcode, val, ts)


def parse_alerts_list(b):
    count, _ = struct.unpack_from("<II", b, 0)
    assert len(b) == 8 + 136 * count, (len(b), count)
    return [parse_alert_record(b[8 + 136 * i:144 + 136 * i]) for i in range(count)]


def parse_alert_push(b):
    """-> (AlertRecord, node_id)."""
    assert len(b) == 144
    return parse_alert_record(b[:136]), b[136]


BreakdownEntry = collections.namedtuple("BreakdownEntry", "keys values agg")


def parse_breakdown(b):
    """No count header: N x 320-byte entries."""
    assert len(b) % 320 == 0, len(b)
    out = []
    for i in range(len(b) // 320):
        e = b[320 * i:320 * (i + 1)]
        n = e[0]
        keys = [uncstr(e[8 + 32 * j:40 + 32 * j]) for j in range(n)]
        vals = [uncstr(e[136 + 32 * j:168 + 32 * j]) for j in range(n)]
        out.append(BreakdownEntry(keys, vals, parse_agg_value(e[264:320])))
    return out


# ---------------------------------------------------------------------------------------
# Partition map, cluster status (WP §6.7, §6.14, §6.15)


def parse_address(b):
    """-> "host:port" string ('' = none)."""
    return uncstr(b[:24])


def split_address(a):
    host, _, port = a.rpartition(":")
    return host, int(port)


def parse_partition_map(b):
    """-> [(leader, replica0, replica1, pad_bytes)] x 256."""
    assert len(b) == 24_576
    return [(parse_address(b[96 * p:96 * p + 24]), parse_address(b[96 * p + 24:96 * p + 48]),
             parse_address(b[96 * p + 48:96 * p + 72]), b[96 * p + 72:96 * p + 96])
            for p in range(256)]


ClusterStatus = collections.namedtuple(
    "ClusterStatus", "node_id n_nodes wal_offset segment_count memtable_entries uptime_ns "
    "partitions")
PartitionStatus = collections.namedtuple("PartitionStatus",
                                         "view_number commit_number role leader")


def parse_cluster_status(b):
    assert len(b) == 2_088
    node_id, n_nodes = struct.unpack_from("<BB", b, 0)
    wal, segs, mem, up = struct.unpack_from("<QQQq", b, 8)
    parts = [PartitionStatus(*struct.unpack_from("<IHBB", b, 40 + 8 * p)) for p in range(256)]
    return ClusterStatus(node_id, n_nodes, wal, segs, mem, up, parts)


# ---------------------------------------------------------------------------------------
# Connection


class Frame(collections.namedtuple("Frame", "status request_id payload")):
    pass


class Connection:
    """One client connection. A reader thread splits the byte stream into frames; replies are
    matched by request id (any order), frames with request_id 0 are pushes."""

    def __init__(self, port, host="127.0.0.1", timeout=60.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.timeout = timeout
        self.cv = threading.Condition()
        self.replies = collections.defaultdict(collections.deque)
        self.pushes = []
        self.all_frames = []  # (status, request_id, payload_len) in arrival order
        self.closed = False
        self.error = None
        self.next_id = 1
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _read_loop(self):
        try:
            while True:
                h = self._recv_exact(12)
                if h is None:
                    break
                status, rid, plen = parse_response_header(h)
                assert h[1:4] == b"\x00\x00\x00", h  # pad written as zero
                payload = self._recv_exact(plen) if plen else b""
                if payload is None:
                    self.error = "connection closed inside a frame"
                    break
                with self.cv:
                    self.all_frames.append((status, rid, plen))
                    if rid == 0:
                        self.pushes.append(Frame(status, rid, payload))
                    else:
                        self.replies[rid].append(Frame(status, rid, payload))
                    self.cv.notify_all()
        except (OSError, AssertionError) as e:  # socket shut down by close(), or bad pad
            self.error = repr(e)
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def new_id(self):
        rid = self.next_id
        self.next_id = self.next_id + 1 if self.next_id < 0xFFFFFFFF else 1
        return rid

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, packet_type, payload=b"", partition=AUTO_PARTITION, request_id=None,
             version=VERSION):
        rid = self.new_id() if request_id is None else request_id
        self.send_raw(frame(packet_type, payload, rid, partition, version))
        return rid

    def wait(self, rid, timeout=None):
        """The next unconsumed reply with this id -> Frame."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self.cv:
            while not self.replies[rid]:
                if self.closed:
                    raise ConnectionError("closed before reply %d (%s)" % (rid, self.error))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no reply for request id %d" % rid)
                self.cv.wait(left)
            return self.replies[rid].popleft()

    def call(self, packet_type, payload=b"", partition=AUTO_PARTITION, timeout=None):
        """Send one request and wait for its reply -> (status, payload)."""
        rid = self.send(packet_type, payload, partition)
        f = self.wait(rid, timeout)
        return f.status, f.payload

    def wait_push(self, predicate=lambda f: True, timeout=None, start=0):
        """First push frame (index >= start) satisfying predicate."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self.cv:
            while True:
                for f in self.pushes[start:]:
                    if predicate(f):
                        return f
                if self.closed:
                    raise ConnectionError("closed while waiting for a push")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching push")
                self.cv.wait(left)

    def wait_closed(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        with self.cv:
            while not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
            return True

    def pending_reply_ids(self):
        with self.cv:
            return [rid for rid, q in self.replies.items() if q]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- typed helpers ------------------------------------------------------------------

    def ingest(self, events, sync=True, partition=AUTO_PARTITION):
        st, p = self.call(INGEST_SYNC if sync else INGEST_ASYNC, ingest_payload(events),
                          partition)
        return st, (parse_ingest_result(p) if st in (OK, DUPLICATE, UNKNOWN_METRIC) else p)

    def put_metric(self, *args, **kw):
        return self.call(METRIC_PUT, metric_schema(*args, **kw))[0]

    def list_metrics(self):
        st, p = self.call(METRIC_LIST)
        assert st == OK, st
        return parse_metric_list(p)[1]

    def query(self, account, start, end, code, filters=()):
        st, p = self.call(USAGE_QUERY, usage_query(account, start, end, code, filters))
        assert st == OK, st
        return parse_agg_value(p)

    def events(self, account, since=-(1 << 63), until=(1 << 63) - 1):
        st, p = self.call(EVENTS_LIST, events_list(account, since, until))
        assert st == OK, st
        return parse_events_list(p)

    def alerts(self, account=0, since_offset=0):
        st, p = self.call(ALERTS_LIST, alerts_list(account, since_offset))
        assert st == OK, st
        return parse_alerts_list(p)

    def wait_alerts(self, account, n, since_offset=0, timeout=60.0, pred=lambda r: True):
        """Crossing records are appended when the committed events are applied, which may be
        after the ingest acknowledgement: poll until at least n matching records are listed
        (no timing is asserted) and return all matching records."""
        deadline = time.monotonic() + timeout
        while True:
            recs = [r for r in self.alerts(account, since_offset) if pred(r)]
            if len(recs) >= n or time.monotonic() > deadline:
                return recs
            time.sleep(0.02)


# ---------------------------------------------------------------------------------------
# HTTP (WP §11): one request per connection, raw bytes.


def http_raw(port, data, host="127.0.0.1", timeout=60.0):
    """Send raw request bytes, read until the server closes -> (status, headers, body)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        buf = bytearray()
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    head, _, body = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return None, {}, bytes(buf)
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def http_request(port, method, path, body=None, headers=None):
    hdrs = {"Host": "127.0.0.1:%d" % port}
    hdrs.update(headers or {})
    if body is not None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        hdrs["Content-Length"] = str(len(body))
    req = "%s %s HTTP/1.1\r\n" % (method, path)
    req += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
    return http_raw(port, req.encode() + (body or b""))


# ---------------------------------------------------------------------------------------
# Node: a real unimeter process


def free_port():
    """A free loopback TCP port whose +1000 neighbour is also free (replication port)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p + 1000 >= 65536:
            continue
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p + 1000))
            return p
        except OSError:
            continue
        finally:
            t.close()


class Node:
    """A single-node `unimeter` process. start() waits for /health and the binary port."""

    def __init__(self, binary, data_dir=None, extra_args=(), start_timeout=120.0):
        self.binary = binary
        # Under Bazel the test's own TEST_TMPDIR, which Bazel removes after the run.
        self.tmp = tempfile.mkdtemp(prefix="unimeter-e2e-", dir=os.environ.get("TEST_TMPDIR"))
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.proc = None
        self.port = self.http_port = None
        self.log_path = os.path.join(self.tmp, "stderr.log")
        self.starts = 0

    def start(self):
        self.port, self.http_port = free_port(), free_port()
        while self.http_port == self.port:
            self.http_port = free_port()
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(b"---- start %d ----\n" % self.starts)
        log.flush()
        args = [self.binary, "--node-id=0", "--port=%d" % self.port,
                "--http-port=%d" % self.http_port, "--data-dir=%s" % self.data_dir]
        self.proc = subprocess.Popen(args + self.extra_args, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("unimeter exited with %d at start:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                st, _, body = http_request(self.http_port, "GET", "/health")
                if st == 200 and json.loads(body).get("status") == "ok":
                    socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                    return self
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("unimeter not healthy in time:\n" + self.log_tail())
            time.sleep(0.1)

    def connect(self, timeout=60.0):
        return Connection(self.port, timeout=timeout)

    def stop(self, timeout=60.0):
        """SIGTERM, then SIGKILL after the timeout -> exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def metrics_text(self):
        st, _, body = http_request(self.http_port, "GET", "/metrics")
        assert st == 200, st
        return body.decode()

    def metric_value(self, name_with_labels):
        for line in self.metrics_text().splitlines():
            if line.startswith(name_with_labels + " "):
                return float(line.split()[-1])
        raise KeyError(name_with_labels)
