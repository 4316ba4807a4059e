#!/usr/bin/env python3
"""twisted_echo: an echo server on Twisted (epoll reactor), a peer for bench/peers.sh.
`twisted_echo.py [-p PORT] [HOST]`; first stdout line: "twisted_echo: listening on HOST:PORT"."""
import argparse
from twisted.internet import epollreactor
epollreactor.install()
from twisted.internet import reactor, protocol


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


ap = argparse.ArgumentParser()
ap.add_argument("-p", type=int, default=1060)
ap.add_argument("host", nargs="?", default="127.0.0.1")
a = ap.parse_args()
f = protocol.ServerFactory()
f.protocol = Echo
port = reactor.listenTCP(a.p, f, backlog=4096, interface=a.host)
print("twisted_echo: listening on %s:%d" % (a.host, port.getHost().port), flush=True)
reactor.run()
