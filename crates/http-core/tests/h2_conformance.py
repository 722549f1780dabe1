#!/usr/bin/env python3
"""An HTTP/2 conformance run in the manner of h2spec (which Debian, PyPI and
npm do not carry): each case opens its own connection, sends frames built
byte by byte (hyperframe only reads the server's; hpack encodes header
blocks), and checks what RFC 9113 and RFC 7541 require of a server. As h2spec
does, a connection error passes on a GOAWAY with the expected code or on the
connection closing, and a stream error passes on RST_STREAM or GOAWAY with
the expected code or on the connection closing.

    h2_conformance.py HOST PORT

Prints one JSON list: {"case", "section", "want", "got", "pass"} per case.
"""

import json
import socket
import struct
import sys
import time

import hpack
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

# Error codes.
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, FRAME_SIZE_ERROR, COMPRESSION_ERROR = 5, 6, 9

WAIT = 3.0


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(*pairs, flags=0, stream=0):
    return frame(SETTINGS, flags, stream, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


class Conn:
    def __init__(self, host, port, preface=PREFACE, handshake=True):
        self.host, self.port = host, port
        self.s = socket.create_connection((host, port), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False
        self.enc = hpack.Encoder()
        if handshake:
            self.send(preface + settings())
            # The server's SETTINGS, then our ACK of it; its ACK of ours may come later.
            f = self.next_frame()
            if not isinstance(f, SettingsFrame):
                raise RuntimeError(f"no SETTINGS first: {f!r}")
            self.send(settings(flags=ACK))

    def send(self, data):
        try:
            self.s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def next_frame(self, until=None):
        until = until or time.time() + WAIT
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    head, self.buf = self.buf[:9], self.buf[9:]
                    f, length = Frame.parse_frame_header(head)
                    body, self.buf = self.buf[:length], self.buf[length:]
                    f.parse_body(memoryview(body))
                    return f
            left = until - time.time()
            if left <= 0 or self.closed:
                return None
            self.s.settimeout(left)
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError):
                self.closed = True
                return None
            if not data:
                self.closed = True
                return None
            self.buf += data

    def headers(self, stream, extra=(), path="/", end_stream=True, flags=None, replace=None):
        hs = [(":method", "GET"), (":scheme", "http"), (":authority", f"{self.host}:{self.port}"), (":path", path)]
        if replace:
            hs = replace(hs)
        block = self.enc.encode(hs + list(extra))
        if flags is None:
            flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, stream, block)

    def outcome(self, stream=None, skip_answer=False):
        """What the server did next, skipping SETTINGS ACKs, WINDOW_UPDATEs and
        PINGs it sent (and, with `skip_answer`, a response it sent first)."""
        until = time.time() + WAIT
        while True:
            f = self.next_frame(until)
            if f is None:
                return "closed" if self.closed else "nothing"
            if isinstance(f, GoAwayFrame):
                return f"goaway:{f.error_code}"
            if isinstance(f, RstStreamFrame) and (stream is None or f.stream_id == stream):
                return f"rst:{f.error_code}"
            if isinstance(f, HeadersFrame) and (stream is None or f.stream_id == stream) and not skip_answer:
                return "headers"
            if isinstance(f, PingFrame) and "ACK" in f.flags:
                return f"ping-ack:{bytes(f.opaque_data).hex()}"

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def conn_error(code):
    return lambda got: got in (f"goaway:{code}", "closed")


def stream_error(code):
    return lambda got: got in (f"rst:{code}", f"goaway:{code}", "closed")


def answered(got):
    return got == "headers"


CASES = []


def case(section, want, check):
    def add(fn):
        CASES.append((fn.__name__, section, want, check, fn))
        return fn

    return add


# --- 3.4 / 3.5: the connection preface ---------------------------------------


@case("3.4", "connection error PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def invalid_connection_preface(c):
    pass


# --- 4.1 / 4.2: frames --------------------------------------------------------


@case("4.1", "an unknown frame type is ignored", lambda g: g == "ping-ack:0102030405060708")
def unknown_frame_type_is_ignored(c):
    c.send(frame(0x16, 0, 0, b"ignored") + frame(PING, 0, 0, bytes(range(1, 9))))
    return None


@case("4.1", "undefined flags are ignored", lambda g: g == "ping-ack:0102030405060708")
def undefined_flags_are_ignored(c):
    c.send(frame(PING, 0x16, 0, bytes(range(1, 9))))


@case("4.2", "DATA over SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR", stream_error(FRAME_SIZE_ERROR))
def data_over_max_frame_size(c):
    c.send(c.headers(1, [("content-length", "16385")], end_stream=False))
    c.send(frame(DATA, END_STREAM, 1, b"x" * 16385))
    return 1


@case("4.2", "HEADERS over SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR", conn_error(FRAME_SIZE_ERROR))
def headers_over_max_frame_size(c):
    # Without Huffman coding, so that the block is as long as the value.
    hs = [(":method", "GET"), (":scheme", "http"), (":path", "/"), ("x-big", "a" * 17000)]
    block = c.enc.encode(hs, huffman=False)
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))


# --- 5.1: stream states ---------------------------------------------------------


@case("5.1", "DATA on an idle stream: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def data_on_idle_stream(c):
    c.send(frame(DATA, 0, 1, b"x"))


@case("5.1", "RST_STREAM on an idle stream: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def rst_stream_on_idle_stream(c):
    c.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))


@case("5.1", "WINDOW_UPDATE on an idle stream: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def window_update_on_idle_stream(c):
    c.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100)))


@case("5.1", "DATA on a half-closed (remote) stream: STREAM_CLOSED", stream_error(STREAM_CLOSED))
def data_on_half_closed_stream(c):
    c.send(c.headers(1) + frame(DATA, END_STREAM, 1, b"late"))
    return (1, True)


@case("5.1", "HEADERS on a closed stream: STREAM_CLOSED", stream_error(STREAM_CLOSED))
def headers_on_closed_stream(c):
    c.send(c.headers(1))
    # Wait for the answer to end the stream.
    until = time.time() + WAIT
    while time.time() < until:
        f = c.next_frame(until)
        if f is None or "END_STREAM" in getattr(f, "flags", set()):
            break
    c.send(c.headers(1))
    return 1


@case("5.1", "DATA after the client's RST_STREAM: STREAM_CLOSED", stream_error(STREAM_CLOSED))
def data_after_rst_stream(c):
    c.send(c.headers(1, end_stream=False))
    c.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)) + frame(DATA, 0, 1, b"late"))
    return (1, True)


@case("5.1", "HEADERS after the client's RST_STREAM: STREAM_CLOSED", stream_error(STREAM_CLOSED))
def headers_after_rst_stream(c):
    c.send(c.headers(1, end_stream=False))
    c.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)) + c.headers(1))
    return (1, True)


@case("5.1", "WINDOW_UPDATE on a half-closed (remote) stream is allowed", lambda g: g.startswith("ping-ack"))
def window_update_on_half_closed_stream(c):
    c.send(c.headers(1) + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100)) + frame(PING, 0, 0, bytes(8)))
    return (None, True)


# --- 5.1.1: stream identifiers ------------------------------------------------


@case("5.1.1", "an even stream identifier: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def even_stream_identifier(c):
    c.send(c.headers(2))


@case("5.1.1", "a stream identifier lower than one used: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def lower_stream_identifier(c):
    c.send(c.headers(5))
    c.send(c.headers(3))
    # The server may answer stream 5 before it reads stream 3's HEADERS (it
    # answers a ready request at once): that answer is not the outcome.
    return (None, True)


# --- 5.3 / 6.3: priority --------------------------------------------------------


@case("5.3.1", "a stream depending on itself: PROTOCOL_ERROR", stream_error(PROTOCOL_ERROR))
def stream_depends_on_itself(c):
    c.send(frame(PRIORITY, 0, 1, struct.pack(">IB", 1, 15)))
    return 1


@case("6.3", "PRIORITY on stream 0: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def priority_on_stream_zero(c):
    c.send(frame(PRIORITY, 0, 0, struct.pack(">IB", 0, 15)))


@case("6.3", "PRIORITY of length 4: FRAME_SIZE_ERROR", stream_error(FRAME_SIZE_ERROR))
def priority_wrong_length(c):
    c.send(frame(PRIORITY, 0, 1, struct.pack(">I", 0)))
    return 1


# --- 6.1 / 6.2: DATA and HEADERS ------------------------------------------------


@case("6.1", "DATA on stream 0: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def data_on_stream_zero(c):
    c.send(frame(DATA, 0, 0, b"x"))


@case("6.1", "DATA with padding longer than its payload: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def data_padding_too_long(c):
    c.send(c.headers(1, end_stream=False))
    c.send(frame(DATA, PADDED | END_STREAM, 1, bytes([10]) + b"abc"))


@case("6.2", "HEADERS on stream 0: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def headers_on_stream_zero(c):
    c.send(c.headers(0))


@case("6.2", "HEADERS with padding longer than its payload: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def headers_padding_too_long(c):
    block = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/")])
    c.send(frame(HEADERS, PADDED | END_HEADERS | END_STREAM, 1, bytes([200]) + block))


# --- 6.4: RST_STREAM ------------------------------------------------------------


@case("6.4", "RST_STREAM on stream 0: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def rst_stream_on_stream_zero(c):
    c.send(frame(RST_STREAM, 0, 0, struct.pack(">I", 8)))


@case("6.4", "RST_STREAM of length 3: FRAME_SIZE_ERROR", conn_error(FRAME_SIZE_ERROR))
def rst_stream_wrong_length(c):
    c.send(c.headers(1, end_stream=False))
    c.send(frame(RST_STREAM, 0, 1, b"\x00\x00\x08"))


# --- 6.5: SETTINGS --------------------------------------------------------------


@case("6.5", "SETTINGS ACK with a payload: FRAME_SIZE_ERROR", conn_error(FRAME_SIZE_ERROR))
def settings_ack_with_payload(c):
    c.send(settings((4, 65535), flags=ACK))


@case("6.5", "SETTINGS on a stream: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def settings_on_stream(c):
    c.send(settings((4, 65535), stream=1))


@case("6.5", "SETTINGS of length 5: FRAME_SIZE_ERROR", conn_error(FRAME_SIZE_ERROR))
def settings_wrong_length(c):
    c.send(frame(SETTINGS, 0, 0, b"\x00\x04\x00\x00\x01"))


@case("6.5.2", "SETTINGS_ENABLE_PUSH of 2: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def enable_push_two(c):
    c.send(settings((2, 2)))


@case("6.5.2", "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1: FLOW_CONTROL_ERROR", conn_error(FLOW_CONTROL_ERROR))
def initial_window_too_large(c):
    c.send(settings((4, 1 << 31)))


@case("6.5.2", "SETTINGS_MAX_FRAME_SIZE under 16384: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def max_frame_size_too_small(c):
    c.send(settings((5, 16383)))


@case("6.5.2", "SETTINGS_MAX_FRAME_SIZE over 2^24-1: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def max_frame_size_too_large(c):
    c.send(settings((5, 1 << 24)))


@case("6.5.2", "an unknown setting is ignored (and acknowledged)", lambda g: g == "settings-ack")
def unknown_setting_is_acknowledged(c):
    c.send(settings((0xFF, 1)))
    until = time.time() + WAIT
    while True:
        f = c.next_frame(until)
        if f is None:
            return "no-ack"
        if isinstance(f, SettingsFrame) and "ACK" in f.flags:
            # Ours from the handshake may come first: look for a second one.
            c.acks = getattr(c, "acks", 0) + 1
            if c.acks == 2:
                return "settings-ack"
        if isinstance(f, GoAwayFrame):
            return f"goaway:{f.error_code}"


# --- 6.7: PING --------------------------------------------------------------------


@case("6.7", "PING is answered with its payload", lambda g: g == "ping-ack:6162636465666768")
def ping_is_answered(c):
    c.send(frame(PING, 0, 0, b"abcdefgh"))


@case("6.7", "a PING ACK is not answered", lambda g: g == "ping-ack:0102030405060708")
def ping_ack_is_not_answered(c):
    c.send(frame(PING, ACK, 0, b"zzzzzzzz") + frame(PING, 0, 0, bytes(range(1, 9))))


@case("6.7", "PING on a stream: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def ping_on_stream(c):
    c.send(frame(PING, 0, 1, b"abcdefgh"))


@case("6.7", "PING of length 7: FRAME_SIZE_ERROR", conn_error(FRAME_SIZE_ERROR))
def ping_wrong_length(c):
    c.send(frame(PING, 0, 0, b"abcdefg"))


# --- 6.8: GOAWAY ------------------------------------------------------------------


@case("6.8", "GOAWAY on a stream: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def goaway_on_stream(c):
    c.send(frame(GOAWAY, 0, 1, struct.pack(">II", 0, 0)))


# --- 6.9: WINDOW_UPDATE -----------------------------------------------------------


@case("6.9", "WINDOW_UPDATE of 0 on the connection: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def window_update_zero_connection(c):
    c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))


@case("6.9", "WINDOW_UPDATE of 0 on a stream: PROTOCOL_ERROR", stream_error(PROTOCOL_ERROR))
def window_update_zero_stream(c):
    c.send(c.headers(1, end_stream=False))
    c.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)))
    return 1


@case("6.9", "WINDOW_UPDATE of length 3: FRAME_SIZE_ERROR", conn_error(FRAME_SIZE_ERROR))
def window_update_wrong_length(c):
    c.send(frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))


@case("6.9.1", "a connection window over 2^31-1: FLOW_CONTROL_ERROR", conn_error(FLOW_CONTROL_ERROR))
def connection_window_overflow(c):
    c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2)


@case("6.9.1", "a stream window over 2^31-1: FLOW_CONTROL_ERROR", stream_error(FLOW_CONTROL_ERROR))
def stream_window_overflow(c):
    c.send(c.headers(1, end_stream=False))
    c.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0x7FFFFFFF)) * 2)
    return 1


# --- 6.10: CONTINUATION -----------------------------------------------------------


@case("6.10", "CONTINUATION without HEADERS: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def continuation_without_headers(c):
    c.send(frame(CONTINUATION, END_HEADERS, 1, c.enc.encode([("x-a", "1")])))


@case("6.10", "another frame between HEADERS and CONTINUATION: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def frame_between_headers_and_continuation(c):
    block = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/")])
    c.send(frame(HEADERS, END_STREAM, 1, block) + frame(PING, 0, 0, b"abcdefgh"))


@case("6.10", "CONTINUATION on another stream: PROTOCOL_ERROR", conn_error(PROTOCOL_ERROR))
def continuation_on_another_stream(c):
    block = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/")])
    c.send(frame(HEADERS, END_STREAM, 1, block) + frame(CONTINUATION, END_HEADERS, 3, b""))


@case("6.10", "HEADERS then CONTINUATION: answered", answered)
def headers_then_continuation(c):
    block = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "x")])
    c.send(frame(HEADERS, END_STREAM, 1, block[:3]) + frame(CONTINUATION, END_HEADERS, 1, block[3:]))
    return 1


# --- 8.1: HTTP message framing and header fields ----------------------------------


@case("8.1.1", "an unknown pseudo-header: PROTOCOL_ERROR", stream_error(PROTOCOL_ERROR))
def unknown_pseudo_header(c):
    c.send(c.headers(1, [(":foo", "bar")]))
    return 1


@case("8.1.1", "a response pseudo-header in a request: PROTOCOL_ERROR", stream_error(PROTOCOL_ERROR))
def response_pseudo_header(c):
    c.send(c.headers(1, replace=lambda hs: [(":status", "200")] + hs))
    return 1


@case("8.3.1", "an empty :path: PROTOCOL_ERROR", stream_error(PROTOCOL_ERROR))
def empty_path(c):
    c.send(c.headers(1, replace=lambda hs: [h if h[0] != ":path" else (":path", "") for h in hs]))
    return 1


@case("8.3.1", "no :scheme: PROTOCOL_ERROR", stream_error(PROTOCOL_ERROR))
def missing_scheme(c):
    c.send(c.headers(1, replace=lambda hs: [h for h in hs if h[0] != ":scheme"]))
    return 1


@case("8.3.1", "no :path: PROTOCOL_ERROR", stream_error(PROTOCOL_ERROR))
def missing_path(c):
    c.send(c.headers(1, replace=lambda hs: [h for h in hs if h[0] != ":path"]))
    return 1


@case("8.2.2", "TE: trailers is allowed", answered)
def te_trailers_is_allowed(c):
    c.send(c.headers(1, [("te", "trailers")]))
    return 1


@case("8.1", "trailers after DATA end the request: answered", answered)
def trailers_end_the_request(c):
    c.send(c.headers(1, end_stream=False, replace=lambda hs: [(":method", "POST")] + hs[1:]))
    c.send(frame(DATA, 0, 1, b"body"))
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, c.enc.encode([("x-trailer", "1")])))
    return 1


@case("8.1", "a second HEADERS without END_STREAM: PROTOCOL_ERROR", stream_error(PROTOCOL_ERROR))
def trailers_without_end_stream(c):
    c.send(c.headers(1, end_stream=False, replace=lambda hs: [(":method", "POST")] + hs[1:]))
    c.send(frame(DATA, 0, 1, b"body"))
    c.send(frame(HEADERS, END_HEADERS, 1, c.enc.encode([("x-trailer", "1")])))
    return 1


# --- RFC 7541: HPACK ----------------------------------------------------------------


@case("HPACK 2.3.3", "an index beyond both tables: COMPRESSION_ERROR", conn_error(COMPRESSION_ERROR))
def index_out_of_range(c):
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\x7f"))


@case("HPACK 4.2", "a table size update over the setting: COMPRESSION_ERROR", conn_error(COMPRESSION_ERROR))
def table_size_update_too_large(c):
    # 001xxxxx with 5-bit prefix: 31 + continuation for 8192 (over the default 4096).
    size = 8192 - 31
    tail = bytes([0x80 | (size & 0x7F), size >> 7])
    block = b"\x3f" + tail + c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/")])
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))


@case("HPACK 5.2", "a Huffman string with EOS padding over 7 bits: COMPRESSION_ERROR", conn_error(COMPRESSION_ERROR))
def huffman_padding_too_long(c):
    # Literal without indexing, new name: x-a, value Huffman-coded as 4 bytes of all ones.
    block = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/")])
    block += b"\x00\x03x-a" + b"\x84\xff\xff\xff\xff"
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))


def run(host, port):
    results = []
    for name, section, want, check, fn in CASES:
        try:
            if name == "invalid_connection_preface":
                c = Conn(host, port, handshake=False)
                c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings())
                got = c.outcome()
            else:
                c = Conn(host, port)
                r = fn(c)
                if isinstance(r, str):
                    got = r
                elif isinstance(r, tuple):
                    got = c.outcome(r[0], skip_answer=r[1])
                else:
                    got = c.outcome(r)
            c.close()
        except Exception as e:  # a case that cannot even run is a failure
            got = f"error: {e!r}"
        results.append({"case": name, "section": section, "want": want, "got": got, "pass": bool(check(got))})
    return results


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    print(json.dumps(run(host, port)))


if __name__ == "__main__":
    main()
