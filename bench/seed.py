"""Seeds records (ids s00000000000000 ...) over one keep-alive connection, and
holds many idle keep-alive connections for the memory measurement.

    python3 bench/seed.py seed  HOST:PORT LIST_PATH COUNT [AUTH]
    python3 bench/seed.py hold  HOST:PORT PATH COUNT SECONDS
"""
import http.client
import json
import socket
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


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "seed":
        seed(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "")
    elif cmd == "hold":
        hold(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
