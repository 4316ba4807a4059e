#!/usr/bin/env python3
"""bench/http_load.py: a closed-loop HTTP/1.1 keep-alive load that checks
every response (status 200, Content-Length, the body), for callgrind counts
of reactord's HTTP path (bench/http_callgrind.sh), not for requests/s.

    bench/http_load.py HOST PORT [-c CONNS] [-n REQUESTS] [-P PIPELINE]
        [--path /] [--body 'Hello from Epoll Server']

Each of CONNS connections sends PIPELINE requests, waits for their
responses, and repeats until REQUESTS responses in all; prints
`http_load: requests=N errors=E` and exits 1 on any error."""
import argparse, selectors, socket, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("host"); ap.add_argument("port", type=int)
ap.add_argument("-c", type=int, default=50); ap.add_argument("-n", type=int, default=20000)
ap.add_argument("-P", type=int, default=1); ap.add_argument("-t", type=float, default=120)
ap.add_argument("--path", default="/"); ap.add_argument("--body", default="Hello from Epoll Server")
a = ap.parse_args()
req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (a.path, a.host)).encode()
want = a.body.encode()
sel = selectors.DefaultSelector()
conns = []
sent = done = errors = 0
deadline = time.monotonic() + a.t

class C:
    def __init__(s):
        s.sock = socket.create_connection((a.host, a.port))
        s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.buf = b""; s.out = 0
        sel.register(s.sock, selectors.EVENT_READ, s)

def ask(c):
    global sent
    k = min(a.P, a.n - sent)
    if k <= 0: return
    c.sock.sendall(req * k); c.out += k; sent += k

def take(c):
    """parse the whole responses in c.buf; -> False on a bad one"""
    global done, errors
    while c.out:
        e = c.buf.find(b"\r\n\r\n")
        if e < 0: return True
        head = c.buf[:e].decode("latin-1").split("\r\n")
        n = None
        for h in head[1:]:
            k, _, v = h.partition(":")
            if k.lower() == "content-length": n = int(v.strip())
        if not head[0].startswith("HTTP/1.1 200 ") or n is None: return False
        if len(c.buf) < e + 4 + n: return True
        if c.buf[e + 4:e + 4 + n] != want: return False
        c.buf = c.buf[e + 4 + n:]; c.out -= 1; done += 1
    return True

for _ in range(a.c): conns.append(C())
for c in conns: ask(c)
while done < a.n and time.monotonic() < deadline:
    for key, _ in sel.select(1):
        c = key.data
        d = c.sock.recv(65536)
        if not d:
            errors += 1; sel.unregister(c.sock); continue
        c.buf += d
        if not take(c):
            errors += 1; sel.unregister(c.sock); c.sock.close(); continue
        if c.out == 0: ask(c)
print("http_load: requests=%d errors=%d" % (done, errors))
sys.exit(0 if done == a.n and errors == 0 else 1)
