#!/usr/bin/env node
// node_zen: the "zen" protocol on Node's `net`, an extra peer for bench/run.sh.
//
//   node bench/peers/node_zen.js [-p PORT] [HOST]
//
// Same addressing as reactord and raw_zen: HOST default 127.0.0.1, PORT
// default 1060, "-p 0" picks a free port; first line on stdout is
// "node_zen: listening on HOST:PORT". SIGINT/SIGTERM stop it (exit 0).
'use strict';

const net = require('net');

const ANSWERS = new Map([
  ['Beautiful is better than?', 'Ugly.'],
  ['Explicit is better than?', 'Implicit.'],
  ['Simple is better than?', 'Complex.'],
]);
const UNKNOWN = 'Error: unknown zphorism';
const PART_MAX = 24; // longest known question without its '?'

function usage(out) {
  out.write('usage: node_zen.js [-p PORT] [HOST]\n');
}

let port = 1060;
let host = '127.0.0.1';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '-p' || a === '--port') {
    port = Number(args[++i]);
  } else if (a.startsWith('-p') && a.length > 2) {
    port = Number(a.slice(2));
  } else if (a === '-h' || a === '--help') {
    usage(process.stdout);
    process.exit(0);
  } else if (a.startsWith('-')) {
    usage(process.stderr);
    process.exit(2);
  } else {
    host = a;
  }
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('node_zen: bad port\n');
  process.exit(2);
}

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  let part = ''; // unterminated question so far
  let overflow = false; // part grew past any known question
  sock.on('data', (buf) => {
    const s = buf.toString('latin1');
    let out = '';
    let start = 0;
    let qm;
    while ((qm = s.indexOf('?', start)) !== -1) {
      let q = s.slice(start, qm + 1);
      if (part || overflow) {
        q = overflow ? '' : part + q;
        part = '';
        overflow = false;
      }
      out += ANSWERS.get(q) || UNKNOWN;
      start = qm + 1;
    }
    if (start < s.length && !overflow) {
      part += s.slice(start);
      if (part.length > PART_MAX) {
        part = '';
        overflow = true;
      }
    }
    if (out) sock.write(out, 'latin1');
  });
  sock.on('error', () => {});
});

server.on('error', (err) => {
  process.stderr.write(`node_zen: cannot listen on ${host}:${port}: ${err.code}\n`);
  process.exit(1);
});

server.listen({ port, host, backlog: 4096 }, () => {
  const a = server.address();
  const h = a.family === 'IPv6' || a.family === 6 ? `[${a.address}]` : a.address;
  process.stdout.write(`node_zen: listening on ${h}:${a.port}\n`);
});

function stop() {
  server.close();
  process.stderr.write('node_zen: stopped\n');
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
