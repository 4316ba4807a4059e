#!/usr/bin/env python3
"""py_zen: the zen protocol on asyncio (a Protocol, the fast asyncio API),
a peer for bench/peers.sh.  `py_zen.py [-u] [-p PORT] [HOST]`: -u runs it on
uvloop.  First stdout line: "py_zen: listening on HOST:PORT"."""
import argparse, asyncio, signal, sys

ANSWERS = {b"Beautiful is better than": b"Ugly.", b"Explicit is better than": b"Implicit.",
           b"Simple is better than": b"Complex."}
UNKNOWN = b"Error: unknown zphorism"


class Zen(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf = transport, b""

    def data_received(self, data):
        parts = (self.buf + data).split(b"?")
        self.buf = parts.pop()
        if len(self.buf) > 4096:  # no "?" in sight: cut off, as zen.lua does
            self.t.close()
        if parts:
            self.t.write(b"".join(ANSWERS.get(q, UNKNOWN) for q in parts))


async def main(host, port, name):
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Zen, host, port, backlog=4096)
    print("%s: listening on %s:%d" % (name, host, srv.sockets[0].getsockname()[1]), flush=True)
    stop = loop.create_future()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set_result, None)
    await stop


ap = argparse.ArgumentParser()
ap.add_argument("-u", action="store_true", help="run on uvloop")
ap.add_argument("-p", type=int, default=1060)
ap.add_argument("host", nargs="?", default="127.0.0.1")
a = ap.parse_args()
if a.u:
    import uvloop
    uvloop.install()
asyncio.run(main(a.host, a.p, "uvloop_zen" if a.u else "py_zen"))
