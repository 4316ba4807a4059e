#!/usr/bin/env node
// node_http: HTTP hello on Node's `http`, a peer for bench/peers.sh.
//   node bench/peers/node_http.js [-p PORT] [HOST]
// First stdout line: "node_http: listening on HOST:PORT".
'use strict';
const http = require('http');
const args = process.argv.slice(2);
let port = 8800;
let host = '127.0.0.1';
for (let i = 0; i < args.length; i++) {
  if (args[i] === '-p') port = Number(args[++i]);
  else host = args[i];
}
const BODY = 'Hello from Epoll Server';
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
  res.end(BODY);
});
server.keepAliveTimeout = 60000;
server.listen({ port, host, backlog: 4096 }, () => {
  process.stdout.write(`node_http: listening on ${host}:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
