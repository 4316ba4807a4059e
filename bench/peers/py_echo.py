#!/usr/bin/env python3
"""py_echo: an echo server on asyncio (a Protocol, with flow control: reading
pauses while the transport's write buffer is full), a peer for bench/peers.sh.
`py_echo.py [-u] [-p PORT] [HOST]`: -u runs it on uvloop.
First stdout line: "py_echo: listening on HOST:PORT" (uvloop_echo with -u)."""
import argparse, asyncio, signal


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport

    def data_received(self, data):
        self.t.write(data)

    def pause_writing(self):
        self.t.pause_reading()

    def resume_writing(self):
        self.t.resume_reading()


async def main(host, port, name):
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Echo, host, port, backlog=4096)
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
asyncio.run(main(a.host, a.p, "uvloop_echo" if a.u else "py_echo"))
