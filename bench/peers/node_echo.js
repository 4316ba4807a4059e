#!/usr/bin/env node
// node_echo: an echo server on Node's `net`, a peer for bench/peers.sh (-m echo).
//   node bench/peers/node_echo.js [-p PORT] [HOST]
// First stdout line: "node_echo: listening on HOST:PORT". SIGINT/SIGTERM stop it.
'use strict';
const net = require('net');
let port = 1060;
let host = '127.0.0.1';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-p') port = Number(args[++i]);
  else host = args[i];
}
const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.pipe(sock); // pipe() pauses the read side while the write side is full
  sock.on('error', () => {});
});
server.on('error', (err) => {
  process.stderr.write(`node_echo: cannot listen on ${host}:${port}: ${err.code}\n`);
  process.exit(1);
});
server.listen({ port, host, backlog: 4096 }, () => {
  process.stdout.write(`node_echo: listening on ${host}:${server.address().port}\n`);
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
