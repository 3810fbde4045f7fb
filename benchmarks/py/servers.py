"""Python's socketserver peers for the benchmark suite, with their defaults.

    python3 servers.py threading-tcp|forking-tcp|threading-udp [HOST:PORT]
    python3 servers.py shutdown-latency RUNS

The servers print `listening on HOST:PORT` once bound and serve until killed.
`shutdown-latency` prints one JSON line: how long `shutdown()` takes to
return on an idle ThreadingTCPServer (serve_forever's 0.5 s poll interval).
"""

import json
import socket
import socketserver
import sys
import threading
import time


class Echo(socketserver.BaseRequestHandler):
    """Echo every byte back as it arrives (16 KiB reads, sendall)."""

    def handle(self):
        sock = self.request
        while True:
            data = sock.recv(16384)
            if not data:
                return
            sock.sendall(data)


class EchoUDP(socketserver.BaseRequestHandler):
    """Send the datagram back to its sender."""

    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)


def announce(server):
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)


def serve(kind, addr):
    host, port = addr.rsplit(":", 1)
    addr = (host, int(port))
    cls = {
        "threading-tcp": (socketserver.ThreadingTCPServer, Echo),
        "forking-tcp": (socketserver.ForkingTCPServer, Echo),
        "threading-udp": (socketserver.ThreadingUDPServer, EchoUDP),
    }[kind]
    with cls[0](addr, cls[1]) as server:
        announce(server)
        server.serve_forever()


def shutdown_latency(runs):
    lat = []
    for _ in range(runs):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
        t = threading.Thread(target=server.serve_forever)
        t.start()
        # Let the loop start polling, at a random point of its interval.
        time.sleep(0.05 + (len(lat) % 10) * 0.043)
        t0 = time.perf_counter()
        server.shutdown()
        lat.append((time.perf_counter() - t0) * 1e6)
        t.join()
        server.server_close()
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, round((len(lat) - 1) * p))]
    print(json.dumps({"runs": runs, "p50_us": q(0.5), "p99_us": q(0.99), "max_us": lat[-1]}))


if __name__ == "__main__":
    if sys.argv[1] == "shutdown-latency":
        shutdown_latency(int(sys.argv[2]))
    else:
        serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:0")
