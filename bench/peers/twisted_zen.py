#!/usr/bin/env python3
"""twisted_zen: the zen protocol on Twisted (epoll reactor, LineOnlyReceiver
with "?" as the delimiter), a peer for bench/peers.sh.
`twisted_zen.py [-p PORT] [HOST]`; first stdout line: "twisted_zen: listening on HOST:PORT"."""
import argparse, sys
from twisted.internet import epollreactor
epollreactor.install()
from twisted.internet import reactor, protocol
from twisted.protocols.basic import LineOnlyReceiver

ANSWERS = {b"Beautiful is better than": b"Ugly.", b"Explicit is better than": b"Implicit.",
           b"Simple is better than": b"Complex."}


class Zen(LineOnlyReceiver):
    delimiter = b"?"
    MAX_LENGTH = 4096

    def lineReceived(self, q):
        self.transport.write(ANSWERS.get(q, b"Error: unknown zphorism"))


ap = argparse.ArgumentParser()
ap.add_argument("-p", type=int, default=1060)
ap.add_argument("host", nargs="?", default="127.0.0.1")
a = ap.parse_args()
f = protocol.ServerFactory()
f.protocol = Zen
port = reactor.listenTCP(a.p, f, backlog=4096, interface=a.host)
print("twisted_zen: listening on %s:%d" % (a.host, port.getHost().port), flush=True)
reactor.run()
