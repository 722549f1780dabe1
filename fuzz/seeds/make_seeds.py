#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into fuzz/corpus/<target>/.

Run once before fuzzing a fresh corpus; the fuzzers grow the corpora from here.
Input layouts are described in fuzz/src/checks.rs.
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /page.html?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
    b"HEAD /a/b/c.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"PUT /read HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET http://example.com:8080/x HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n\r\n",
    b"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
]

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nboom",
    b"HTTP/1.1 200\r\n\r\n",
]

CHUNKED = [
    b"3\r\nabc\r\n0\r\n\r\n",
    b"3;name=value\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n",
    b"A \t;ext\r\n0123456789\r\n0\r\n\r\nNEXT",
    b"ffffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"\r\n",
    b"3\nabc\n0\n\n",
    b"1;a=\"q\\\"uoted\"\r\nx\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
]

RANGES = [
    (100, [b"bytes=0-9"]),
    (100, [b"bytes=-10"]),
    (100, [b"bytes=90-"]),
    (100, [b"bytes=0-9,5-19,50-,-3"]),
    (100, [b"bytes=100-"]),
    (0, [b"bytes=0-"]),
    (2**64 - 1, [b"bytes=18446744073709551615-"]),
    (100, [b"bytes=0-0", b"\"fuzz\""]),
    (100, [b"bytes=0-1", b"", b"W/\"fuzz\", \"other\"", b"", b"", b"\"fuzz\""]),
    (100, [b"", b"", b"", b"Sun, 09 Sep 2001 01:46:40 GMT"]),
    (100, [b"", b"", b"", b"", b"Sat, 01 Jan 2000 00:00:00 GMT"]),
    (100, [b"bytes=5-", b"", b"", b"", b"", b"Sun, 09 Sep 2001 01:46:40 GMT"]),
    (100, [b"", b"*", b"*"]),
    (100, [b"", b"\"a,b\", W/\"c\"", b"\"fuzz"]),
    (100, [b"", b"", b"Sunday, 09-Sep-01 01:46:40 GMT", b"Sun Sep  9 01:46:40 2001"]),
]

PATHS = [
    b"/", b"/index.html", b"/a/b/c.txt", b"/a/", b"/a", b"/%2e%2e/etc/passwd", b"/.%2e/x",
    b"/a%2f..%2fb", b"/a%5c..%5cb", b"/%252e%252e", b"/caf%C3%A9%20b.txt", b"/out/passwd",
    b"/a/in/c.txt", b"/a/passwd", b"/loop", b"/.well-known/security.txt", b"/.env", b"/.git/config",
    b"//evil.com/", b"/c:/windows", b"/%00", b"/%", b"/%c0%ae%c0%ae/", b"/docs/style.css",
]


def pieces(stream, size):
    out = bytearray()
    for i in range(0, len(stream), size):
        part = stream[i:i + size]
        out.append(len(part))
        out += part
    return bytes(out)


DRIVER_STREAMS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /close HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /sized HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /read HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /ignored HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET /204 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /stream HTTP/1.0\r\n\r\n",
    b"HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /%2e%2e/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
]

STATIC_STREAMS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a/b/c.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=0-3,10-12\r\n\r\n",
    b"GET /a/b/c.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=-5\r\nIf-Range: Sun, 09 Sep 2001 01:46:40 GMT\r\n\r\n",
    b"HEAD /docs/big.bin HTTP/1.1\r\nHost: a\r\n\r\nGET /docs/big.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=69990-\r\n\r\n",
    b"GET /docs/style.css HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip, br;q=0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /docs/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /page.html HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\", *\r\n\r\n",
    b"GET /page.html HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n\r\n",
    b"GET /.env HTTP/1.1\r\nHost: a\r\n\r\nGET /out/passwd HTTP/1.1\r\nHost: a\r\n\r\nDELETE / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n",
]

# What a server sends to ClientConn (client_response): the first byte is the mode
# (bits 0-1 method GET/HEAD/POST/CONNECT, bit 2 small limits, bits 3-4 close/stall/
# reset/close after the bytes, bits 5-6 request body none/length/chunked, bit 7
# writes stall), the second the split, the third the request body length and
# write sizes.
CLIENT_STREAMS = RESPONSES + [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\nrest",
    b"HTTP/1.0 200 OK\r\n\r\nuntil the server closes",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * 1100 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * 1100 + b"\x00\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
    b"",
    b"garbage\r\n\r\n",
]
CLIENT_MODES = [
    (0x00, 0, 0),     # GET, server closes
    (0x01, 37, 5),    # HEAD, pieces
    (0x22, 200, 10),  # POST with a length body
    (0x42, 91, 47),   # POST chunked, 1-byte writes
    (0x03, 5, 0),     # CONNECT
    (0x04, 13, 0),    # GET, small limits
    (0x08, 0, 0),     # GET, server stalls
    (0x10, 99, 0),    # GET, reset
    (0xa2, 7, 60),    # POST, writes stall part-way
]


# What a client sends on an HTTP/2 connection after the preface (h2): the
# first byte is the duplex capacity, then pieces as for the driver. Header
# blocks in HPACK by hand: 0x82 :method GET, 0x83 POST, 0x86 :scheme http,
# 0x84 :path /, 0x44 :path literal, 0x41 :authority literal, 0x5c content-length.
def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


H2_GET = b"\x82\x86\x84\x41\x04fuzz"
H2_POST = b"\x83\x86\x44\x05/echo\x41\x04fuzz\x5c\x014"
H2_SETTINGS = h2_frame(4, 0, 0)
H2_STREAMS = [
    H2_SETTINGS + h2_frame(4, 1, 0) + h2_frame(1, 5, 1, H2_GET),
    H2_SETTINGS + h2_frame(1, 4, 1, H2_POST) + h2_frame(0, 1, 1, b"body"),
    H2_SETTINGS + h2_frame(1, 5, 1, b"\x82\x86\x44\x07/stream\x41\x01f") + h2_frame(6, 0, 0, b"12345678"),
    H2_SETTINGS + h2_frame(6, 0, 0, b"1234567"),
    H2_SETTINGS + h2_frame(1, 5, 1, H2_GET) + h2_frame(0, 0, 1, b"late"),
    H2_SETTINGS + h2_frame(8, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2,
    H2_SETTINGS + h2_frame(1, 1, 1, H2_GET[:2]) + h2_frame(9, 4, 1, H2_GET[2:]),
    H2_SETTINGS + h2_frame(1, 4, 3, H2_GET) + h2_frame(3, 0, 3, struct.pack(">I", 8)) + h2_frame(0, 0, 3, b"x"),
    h2_frame(4, 0, 0, struct.pack(">HI", 4, 1 << 31)),
]



# What a client sends on a TLS connection (tls): real ClientHellos from
# Python's ssl (TLS 1.3 and 1.2, SNI fuzz.test, ALPN h2 and http/1.1), the
# same handshake message cut into 7-byte records, and bytes that are not TLS.
def client_hello(version):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname="fuzz.test")
    try:
        conn.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def refragment(records, size):
    """The handshake bytes of `records` again, in records of `size` bytes."""
    body, at = b"", 0
    while at + 5 <= len(records):
        n = struct.unpack(">H", records[at + 3 : at + 5])[0]
        body += records[at + 5 : at + 5 + n]
        at += 5 + n
    return b"".join(b"\x16\x03\x01" + struct.pack(">H", len(body[i : i + size])) + body[i : i + size] for i in range(0, len(body), size))


def tls_streams():
    import ssl
    hellos = [client_hello(ssl.TLSVersion.TLSv1_3), client_hello(ssl.TLSVersion.TLSv1_2)]
    return hellos + [refragment(hellos[0], 7), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\x16\x03\x01\xff\xff" + b"\x00" * 40, b"\x17\x03\x03\x00\x05hello"]

def write(target, inputs):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for data in inputs:
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


write("request_head", REQUESTS)
write("response_head", [bytes([m]) + r for r in RESPONSES for m in (0, 1)] + [b"\x02HTTP/1.1 200 OK\r\n\r\n"])
write("chunked", [bytes([s, l]) + c for c in CHUNKED for (s, l) in ((0, 0), (37, 1))])
write("range_conditional", [struct.pack("<Q", n) + b"\n".join(lines) for n, lines in RANGES])
write("static_path", [bytes([f]) + p for p in PATHS for f in (0, 1)])
write(
    "driver",
    [bytes([mode, cap]) + pieces(s, size) for s in DRIVER_STREAMS for (mode, cap, size) in ((0, 7, 255), (2, 1, 7))]
    + [bytes([mode, 7]) + pieces(s, 255) for s in STATIC_STREAMS for mode in (1, 5)],
)
write(
    "client_response",
    [bytes([m, sp, w]) + r for r in CLIENT_STREAMS for (m, sp, w) in CLIENT_MODES[:2]]
    + [bytes(mode) + CLIENT_STREAMS[0] for mode in CLIENT_MODES[2:]]
    + [bytes(mode) + CLIENT_STREAMS[13] for mode in CLIENT_MODES[2:]]
    + [bytes(mode) + CLIENT_STREAMS[15] for mode in CLIENT_MODES[5:8]],
)
write("h2", [bytes([cap]) + pieces(s, size) for s in H2_STREAMS for (cap, size) in ((3, 255), (0, 5))])
write("tls", [bytes([cap]) + pieces(s, size) for s in tls_streams() for (cap, size) in ((3, 255), (0, 5))])
