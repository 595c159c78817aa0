#!/usr/bin/env python3
"""What connections cost hotline: memory per idle TCP and TLS connection, CPU per TLS
handshake (finished, and ClientHellos never finished), CPU of a message dribbled one byte per
segment against the same message sent whole.

Runs the release binary on [::1] with its own data directory; prints figures, asserts nothing.
CPU is the server's own on-CPU time (/proc/PID/schedstat), so the clients' cost is left out.

    cargo build --release && python3 bench/connections.py [CONNECTIONS]
"""

import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "hotline")
CONNECTIONS = min(int(sys.argv[1]), 5000) if len(sys.argv) > 1 else 500
# Every blocking socket call gives up after this: a stalled server must not hang the run.
socket.setdefaulttimeout(10)
HANDSHAKES = 300
DRIBBLED = 5


def start(data):
    config = os.path.join(data, "hotline.toml")
    with open(config, "w") as f:
        f.write(
            f'domain = "hotline.test"\ndata_dir = "{data}/data"\n'
            '[listen]\nudp = ["[::1]:0"]\ntcp = ["[::1]:0"]\ntls = ["[::1]:0"]\n'
            "[flood]\nper_address = 1000000\nper_prefix = [[64, 1000000]]\n"
            f"[limits]\nmax_connections = {4 * CONNECTIONS}\n"
            f"max_connections_per_address = {4 * CONNECTIONS}\n"
            f"max_connections_per_prefix = [[64, {4 * CONNECTIONS}]]\n"
            "anonymous_timeout = 600\n"
        )
    server = subprocess.Popen(
        [BINARY, "--config", config, "serve"],
        stderr=subprocess.PIPE,
        text=True,
    )
    ports = {}
    for line in server.stderr:
        found = re.search(r"listening transport=(\w+) address=\[::1\]:(\d+)", line)
        if found:
            ports[found.group(1)] = int(found.group(2))
        if line.rstrip().endswith("ready"):
            break
    # Keep reading stderr so that the server never blocks on a full pipe.
    subprocess.Popen(["cat"], stdin=server.stderr, stdout=subprocess.DEVNULL)
    return server, ports


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def cpu_ns(pid):
    """On-CPU time of every thread of the process."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def settle(pid):
    time.sleep(1.5)
    return rss_kib(pid)


def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def options(body_length):
    body = b"x" * body_length
    head = (
        "OPTIONS sip:hotline.test SIP/2.0\r\n"
        "Via: SIP/2.0/TCP [::1]:5999;branch=z9hG4bK{n}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:bench@hotline.test>;tag=1\r\n"
        "To: <sip:hotline.test>\r\nCall-ID: bench{n}\r\nCSeq: 1 OPTIONS\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return lambda n: head.format(n=n).encode() + body


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("closed")
        data += chunk
    return data


def main():
    with tempfile.TemporaryDirectory() as data:
        server, ports = start(data)
        pid = server.pid
        try:
            base = settle(pid)
            print(f"idle server: {base} KiB RSS")

            tcp = []
            for _ in range(CONNECTIONS):
                s = socket.create_connection(("::1", ports["TCP"]))
                s.sendall(b"\r\n\r\n")
                tcp.append(s)
            after_tcp = settle(pid)
            per = (after_tcp - base) / CONNECTIONS
            print(f"{CONNECTIONS} idle TCP connections: +{after_tcp - base} KiB, {per:.1f} KiB each")

            context = tls_context()
            tls = []
            for _ in range(CONNECTIONS):
                raw = socket.create_connection(("::1", ports["TLS"]))
                s = context.wrap_socket(raw, server_hostname="hotline.test")
                s.sendall(b"\r\n\r\n")
                tls.append(s)
            after_tls = settle(pid)
            per = (after_tls - after_tcp) / CONNECTIONS
            print(f"{CONNECTIONS} idle TLS connections: +{after_tls - after_tcp} KiB, {per:.1f} KiB each")

            # Each TLS connection holds a partial message of 15 KiB: buffers at their largest.
            partial = options(15_000)(0)[:-10]
            for s in tls:
                s.sendall(partial)
            after_partial = settle(pid)
            per = (after_partial - after_tls) / CONNECTIONS
            print(f"... each holding a 15 KiB partial message: +{after_partial - after_tls} KiB, {per:.1f} KiB more each")
            for s in tcp + tls:
                s.close()
            settle(pid)

            before = cpu_ns(pid)
            started = time.monotonic()
            for _ in range(HANDSHAKES):
                raw = socket.create_connection(("::1", ports["TLS"]))
                s = context.wrap_socket(raw, server_hostname="hotline.test")
                s.close()
            spent = (cpu_ns(pid) - before) / 1e9
            wall = time.monotonic() - started
            print(
                f"{HANDSHAKES} full TLS handshakes: server CPU {spent * 1000 / HANDSHAKES:.2f} ms each, "
                f"{HANDSHAKES / spent:.0f} handshakes per CPU-second ({wall:.1f} s wall, client included)"
            )

            # ClientHellos never finished: the server answers each and waits.
            hellos = []
            before = cpu_ns(pid)
            for _ in range(HANDSHAKES):
                raw = socket.create_connection(("::1", ports["TLS"]))
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                client = context.wrap_bio(incoming, outgoing, server_hostname="hotline.test")
                try:
                    client.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                raw.sendall(outgoing.read())
                raw.recv(65536)
                hellos.append(raw)
            spent = (cpu_ns(pid) - before) / 1e9
            print(
                f"{HANDSHAKES} ClientHellos never finished: server CPU {spent * 1000 / HANDSHAKES:.2f} ms each, "
                f"{HANDSHAKES / spent:.0f} per CPU-second"
            )
            for s in hellos:
                s.close()
            settle(pid)

            # CRLF pings, as fast as one client sends them, for a second.
            s = socket.create_connection(("::1", ports["TCP"]))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            before = cpu_ns(pid)
            pings = 0
            end = time.monotonic() + 1
            while time.monotonic() < end:
                try:
                    s.send(b"\r\n\r\n")
                    pings += 1
                    s.recv(65536)
                except BlockingIOError:
                    pass
            spent = (cpu_ns(pid) - before) / 1e6
            print(f"{pings} CRLF pings in one second from one connection: {spent:.1f} ms server CPU")
            s.close()

            message = options(15_000)
            whole_ns = []
            for n in range(DRIBBLED):
                s = socket.create_connection(("::1", ports["TCP"]))
                time.sleep(0.2)
                before = cpu_ns(pid)
                s.sendall(message(n))
                read_response(s)
                whole_ns.append(cpu_ns(pid) - before)
                s.close()
            whole = sorted(whole_ns)[DRIBBLED // 2] / 1e6
            print(f"{len(message(0))}-byte message sent whole: {whole:.2f} ms CPU (median of {DRIBBLED})")
            # As fast as the client can, then with a pause after each byte (one segment each).
            for pause in (0, 50e-6):
                dribbled_ns = []
                for n in range(DRIBBLED):
                    s = socket.create_connection(("::1", ports["TCP"]))
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    time.sleep(0.2)
                    before = cpu_ns(pid)
                    started = time.monotonic()
                    sent = 0
                    try:
                        for byte in message(100 + n):
                            s.send(bytes([byte]))
                            sent += 1
                            if pause:
                                time.sleep(pause)
                        outcome = "answered" if read_response(s) else ""
                    except (BrokenPipeError, ConnectionResetError, RuntimeError):
                        outcome = "cut off"
                    took = time.monotonic() - started
                    dribbled_ns.append(cpu_ns(pid) - before)
                    s.close()
                dribbled = sorted(dribbled_ns)[DRIBBLED // 2] / 1e6
                print(
                    f"... one byte per segment{' with a pause' if pause else ''}: {outcome} after "
                    f"{sent} bytes and {took:.3f} s, {dribbled:.2f} ms CPU ({dribbled / whole:.1f}x whole)"
                )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
