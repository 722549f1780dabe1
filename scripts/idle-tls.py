#!/usr/bin/env python3
"""RSS per idle TLS keep-alive connection: static-server against nginx.

    python3 scripts/idle-tls.py [--conns 2000] [--impls ours,nginx] [--h2]

Run from the project root after `cargo build --release -p cli`. Starts each
server on an ephemeral port with a fresh self-signed ECDSA P-256 certificate
(as ../shared/bench/bench.py does for --tls), `--threads 1` for ours and one
worker for nginx, serving page.html from a temporary root. Opens --conns TLS
1.3 connections with Python's `ssl`, sends one `GET /page.html` on each and
reads the whole answer, keeps them all open and idle, then reads the server's
RSS (its process tree, /proc VmRSS) and prints the growth per connection. With
--h2 the connections negotiate `h2` by ALPN and send one HTTP/2 request each
(nginx with `listen ... ssl http2`, as bench.py configures it). STATIC_SERVER=PATH runs another static-server binary.
"""
import argparse
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "..", "shared", "bench", "page.html")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    total, todo, kids = 0, [pid], {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read()
                kids.setdefault(int(st[st.rfind(")") + 2:].split()[1]), []).append(int(d))
            except OSError:
                pass
    while todo:
        p = todo.pop()
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo += kids.get(p, [])
    return total


def wait_port(port, ctx):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def h1_exchange(s):
    s.sendall(b"GET /page.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
    buf = b""
    while True:
        data = s.recv(65536)
        if not data:
            return False
        buf += data
        h = buf.find(b"\r\n\r\n")
        if h >= 0:
            m = re.search(rb"(?i)content-length:\s*(\d+)", buf[:h])
            if m and len(buf) >= h + 4 + int(m.group(1)):
                return buf.startswith(b"HTTP/1.1 200")


def h2_exchange(s):
    import h2.config
    import h2.connection
    import h2.events
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", "/page.html"), (":scheme", "https"),
                          (":authority", "localhost")], end_stream=True)
    s.sendall(conn.data_to_send())
    status = None
    while True:
        data = s.recv(65536)
        if not data:
            return False
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(b":status")
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                s.sendall(conn.data_to_send())
                return status == b"200"
        s.sendall(conn.data_to_send())


def hold(port, n, use_h2):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"] if use_h2 else ["http/1.1"])
    socks, ok = [], 0
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port), 10)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        socks.append(s)
        if (h2_exchange if use_h2 else h1_exchange)(s):
            ok += 1
    return socks, ok


def start(impl, tmp, port, cert, key, use_h2):
    www = os.path.join(tmp, "www")
    log = open(os.path.join(tmp, f"{impl}.log"), "ab")
    if impl == "ours":
        binary = os.environ.get("STATIC_SERVER", os.path.join(ROOT, "target/release/static-server"))
        argv = [binary, "--root", www, "--listen",
                f"127.0.0.1:{port}", "--threads", "1", "--tls-cert", cert, "--tls-key", key]
    else:
        conf = os.path.join(tmp, "nginx.conf")
        h2 = " http2" if use_h2 else ""
        open(conf, "w").write(f"""worker_processes 1;
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_timeout 300s;
  types {{ text/html html; }}
  server {{ listen 127.0.0.1:{port} ssl{h2}; ssl_certificate {cert}; ssl_certificate_key {key};
             ssl_protocols TLSv1.2 TLSv1.3; root {www}; }}
}}
""")
        argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", conf, "-e", os.path.join(tmp, "nginx.err")]
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--impls", default="ours,nginx")
    ap.add_argument("--h2", action="store_true", help="negotiate h2 and send one HTTP/2 request per connection")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, "www"))
        shutil.copy(PAGE, os.path.join(tmp, "www", "page.html"))
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        probe = ssl.create_default_context()
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        for impl in args.impls.split(","):
            port = free_port()
            p = start(impl, tmp, port, cert, key, args.h2)
            try:
                wait_port(port, probe)
                time.sleep(0.3)
                before = rss_kb(p.pid)
                socks, ok = hold(port, args.conns, args.h2)
                time.sleep(0.5)
                after = rss_kb(p.pid)
                for s in socks:
                    s.close()
                per = (after - before) / max(ok, 1)
                print(f"{impl}: {ok}/{args.conns} idle TLS{' h2' if args.h2 else ''} connections answered and held, "
                      f"RSS {before} -> {after} KiB, {per:.2f} KiB per connection", flush=True)
            finally:
                os.killpg(p.pid, 15)
                p.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
