"""Seeds records (ids s00000000000000 ...) over one keep-alive connection, and
holds many idle keep-alive connections for the memory measurement.

    python3 bench/seed.py seed  HOST:PORT LIST_PATH COUNT [AUTH]
    python3 bench/seed.py hold  HOST:PORT PATH COUNT SECONDS
    python3 bench/seed.py probe HOST:PORT PATH SECONDS [AUTH]   (latency of 503s, in ms)
"""
import http.client
import json
import socket
import statistics
import sys
import time


def seed(hostport, path, count, auth=""):
    host, port = hostport.split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    for n in range(count):
        body = json.dumps({"id": "s%014d" % n, "title": "Seed %d" % n, "n": n})
        conn.request("POST", path, body, headers)
        r = conn.getresponse()
        r.read()
        if r.status not in (200, 201):
            sys.exit("seeding %s failed: %d" % (path, r.status))


def hold(hostport, path, count, seconds):
    host, port = hostport.split(":")
    socks = []
    request = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, hostport)).encode()
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.sendall(request)
        s.recv(65536)
        socks.append(s)
    print("holding %d connections" % len(socks), flush=True)
    time.sleep(seconds)


def probe(hostport, path, seconds, auth=""):
    """Latency of requests answered 503 while the server is overloaded, over
    one keep-alive connection (so connection set-up is not counted)."""
    host, port = hostport.split(":")
    headers = {"Authorization": auth} if auth else {}
    shed = []
    others = 0
    end = time.monotonic() + seconds
    conn = http.client.HTTPConnection(host, int(port))
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while time.monotonic() < end:
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        elapsed = (time.perf_counter() - start) * 1000
        if r.status == 503 and r.getheader("Retry-After"):
            shed.append(elapsed)
        else:
            others += 1
    shed.sort()
    if shed:
        p99 = shed[min(len(shed) - 1, int(len(shed) * 0.99))]
        print(json.dumps({"shed": len(shed), "admitted": others,
                          "median_ms": statistics.median(shed), "p99_ms": p99}))
    else:
        print(json.dumps({"shed": 0, "admitted": others}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "seed":
        seed(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "")
    elif cmd == "hold":
        hold(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "probe":
        probe(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "")
