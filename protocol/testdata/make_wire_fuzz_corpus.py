#!/usr/bin/env python3
"""Writes the seed corpus of //protocol:wire_fuzz_replay and tools/fuzz-protocol.

    protocol/testdata/make_wire_fuzz_corpus.py [OUTPUT_DIR]

Frames are built here with `struct`, independently of the C++ encoders, straight from
shared/spec/wire-protocol-v1.md. Seeds named `direct_*` are read by the fuzz target's second
mode: byte 0 = opcode, the rest = one payload. Files found by libFuzzer are added beside these
(named by their SHA-1) and are not rewritten by this script.
"""
import os
import struct
import sys

MAGIC = 0xC0FFEE01


def header(opcode, payload_len, request_id, partition=0xFFFF, version=1, magic=MAGIC):
    return struct.pack("<IBBHII", magic, version, opcode, partition, payload_len, request_id)


def frame(opcode, payload, request_id, partition=0xFFFF, version=1):
    return header(opcode, len(payload), request_id, partition, version) + payload


def s(text, width):
    data = text.encode() if isinstance(text, str) else text
    assert len(data) <= width
    return data + b"\0" * (width - len(data))


def wire_event(code, account, ts, value, op=0, props=0):
    return s(code, 64) + struct.pack("<QqQBB", account, ts, value, op, props) + b"\0" * 6


def prop(key, value):
    return s(key, 32) + s(value, 64)


def ingest(events, props, count_override=None):
    e, p = (len(events), len(props)) if count_override is None else count_override
    return struct.pack("<II", e, p) + b"".join(events) + b"".join(props)


def dimension(key, values, value_count=None):
    vc = len(values) if value_count is None else value_count
    return (s(key, 32) + struct.pack("<B", vc) + b"\0" * 3 +
            b"".join(s(v, 32) for v in values) + b"\0" * (32 * (8 - len(values))))


def schema(code, agg, dims, thresholds, period=(0, 1), sections=2, field="", filter_count=None):
    fc = len(dims) if filter_count is None else filter_count
    out = s(code, 64) + struct.pack("<BBBB", agg, 0, fc, 0) + s(field, 64) + b"".join(dims)
    if sections >= 1:
        out += struct.pack("<B", len(thresholds)) + b"\0" * 7
        out += b"".join(s(c, 32) + struct.pack("<QB", v, r) + b"\0" * 7 for c, v, r in thresholds)
    if sections >= 2:
        out += struct.pack("<BB", *period) + b"\0" * 6
    return out


def query(account, start, end, code, count, tail=b""):
    return struct.pack("<Qqq", account, start, end) + s(code, 64) + struct.pack("<B", count) + \
        b"\0" * 7 + tail


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "wire_fuzz_corpus")
    os.makedirs(out_dir, exist_ok=True)
    api = wire_event("api_calls", 42, 0, 1)
    full_schema = schema("api_calls", 1, [dimension("region", ["us-east", "eu-west"])],
                         [("quota", 1000, 0)], period=(1, 15), field="bytes")
    max_schema = schema("m" * 64, 4, [dimension("k%d" % d, ["v%d" % v for v in range(8)])
                                      for d in range(4)],
                        [("t%d" % t, t, t % 2) for t in range(8)], period=(2, 28))
    seeds = {
        "ingest_sync_worked_example": frame(0x01, ingest([api, api], []), 7),
        "ingest_async_props_partition": frame(0x00, ingest(
            [wire_event("a", 1, 5, 10, 1, 2), wire_event("b", 2, -1, 20, 2, 0),
             wire_event("c" * 64, 3, 0, 30, 0, 1)],
            [prop("region", "us-east"), prop("provider", "aws"), prop("k" * 32, "v" * 64)]),
            8, partition=42),
        "ingest_empty": frame(0x01, ingest([], []), 9),
        "ingest_bad_operation": frame(0x01, ingest([wire_event("x", 1, 0, 1, op=3)], []), 10),
        "ingest_props_mismatch": frame(0x01, ingest([wire_event("x", 1, 0, 1, props=2)],
                                                    [prop("a", "b")]), 11),
        "ingest_bad_partition": frame(0x01, ingest([api], []), 12, partition=0x0100),
        "ingest_truncated_body": frame(0x01, ingest([api, api], []), 13)[:16 + 100],
        "get_partition_map": frame(0x10, b"", 14),
        "metric_put_1dim_1threshold": frame(0x20, full_schema, 15),
        "metric_put_maximal": frame(0x20, max_schema, 16),
        "metric_put_base_only": frame(0x20, schema("m", 0, [], [], sections=0), 17),
        "metric_put_no_period": frame(0x20, schema("m", 2, [dimension("d", ["x"])],
                                                   [("t", 5, 1)], sections=1), 18),
        "metric_put_overflow_counts": frame(0x20, schema(
            "m", 3, [dimension("d", ["a", "b"], value_count=200)], [], period=(3, 0)), 19),
        "metric_put_duplicate_keys": frame(0x20, schema(
            "m", 1, [dimension("d", ["a"]), dimension("d", ["b"])], []), 20),
        "metric_delete": frame(0x21, s("api_calls", 64), 21),
        "metric_list": frame(0x22, b"", 22),
        "usage_query_88_bytes": frame(0x30, query(42, 0, 10**18, "api_calls", 3)[:88], 23),
        "usage_query_two_filters": frame(0x30, query(42, -5, 10**18, "api_calls", 2,
                                                     dimension("provider", ["aws"]) +
                                                     dimension("region", ["us-east"])), 24),
        "usage_query_duplicate_filters": frame(0x30, query(1, 0, 1, "m", 2,
                                                           dimension("r", ["a"]) +
                                                           dimension("r", ["b"])), 25),
        "usage_realtime": frame(0x31, struct.pack("<Q", 42) + s("api_calls", 64), 26),
        "events_list": frame(0x32, struct.pack("<Qqq", 42, 0, 2**62), 27),
        "alerts_list": frame(0x33, struct.pack("<QQ", 0, 5), 28),
        "alert_push_enable": frame(0x34, b"", 29),
        "breakdown_two_keys": frame(0x36, query(42, 0, 10**18, "api_calls", 2,
                                                s("provider", 32) + s("region", 32)), 30),
        "breakdown_zero_keys": frame(0x36, query(42, 0, 1, "api_calls", 0), 31),
        "cluster_status": frame(0x40, b"", 32),
        "cluster_rebalance": frame(0x41, b"\x03", 33),
        "reserved_0x43_with_body": frame(0x43, b"\xAB" * 40, 34) + frame(0x40, b"", 35),
        "push_opcode_0x35": frame(0x35, b"\0" * 144, 36) + frame(0x10, b"", 37),
        "extension_0x80": frame(0x80, b"\x08\x01", 38) + frame(0x34, b"", 39),
        "bad_version_then_valid": frame(0x01, ingest([api], []), 40, version=2) +
        frame(0x32, struct.pack("<Qqq", 1, 0, 1), 41),
        "oversize_drained_then_valid": header(0x01, 196_617, 42) + b"\x01" * 196_617 +
        frame(0x40, b"", 43),
        "oversize_header_partial_body": header(0x20, 200_000, 44) + b"\x00" * 64,
        "over_16mib_closes": header(0x01, 16 * 1024 * 1024 + 1, 45) + frame(0x40, b"", 46),
        "bad_magic_then_valid": header(0x10, 0, 0xA1B2C3D4, magic=0xC0FFEE02) +
        frame(0x10, b"", 47),
        "header_truncated": header(0x01, 200, 48)[:10],
        "pipeline_mixed": frame(0x34, b"", 49) + frame(0x01, ingest([api], []), 50) +
        frame(0x21, s("x", 64), 51) + frame(0x31, struct.pack("<Q", 7) + s("m", 64), 52) +
        frame(0x02, b"zz", 53) + frame(0x33, struct.pack("<QQ", 3, 0), 54),
        "direct_metric_put": b"\x20" + full_schema,
        "direct_usage_query": b"\x30" + query(1, 0, 1, "m", 1, dimension("k", ["v"])),
        "direct_ingest": b"\x01" + ingest([api, wire_event("b", 7, 0, 1, props=1)],
                                          [prop("k", "v")]),
    }
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds), out_dir))


if __name__ == "__main__":
    main()
