// cluster-read.mjs: prints the events of a possum store kept in a NATS
// JetStream stream as NDJSON, in position order. Node 18+, no packages: it
// speaks the NATS protocol itself and reads message after message with
// JetStream's direct get (the stream allows it), so any NATS client can do
// the same with its own API.
//
//   node cluster-read.mjs HOST:PORT STREAM [PREFIX]
//
// PREFIX is the subject prefix (default: the stream's name). It stops at
// the first position the stream does not hold yet.
import net from 'node:net';

const [addr, stream, prefix = stream] = process.argv.slice(2);
const [host, port] = addr.split(':');
const inbox = '_INBOX.possum-example';
const sock = net.connect(Number(port), host);
let buf = Buffer.alloc(0);
let position = 1;

// The type is escaped into one subject token: bytes other than A-Z a-z
// 0-9 - _ are %XX (upper-case hex) of the type's UTF-8.
function typeOf(subject) {
  const token = subject.slice(prefix.length + 1);
  if (token === '%') return null; // a lost position of unknown type
  const bytes = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '%') {
      bytes.push(parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(token.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

// Headers are "Key: Value" lines after the status line; possum's values
// are JSON (tags, metadata, id) or plain ASCII (time, batch).
function headersOf(block) {
  const lines = block.toString('latin1').split('\r\n');
  const status = lines[0]; // "NATS/1.0", or "NATS/1.0 404 Message Not Found"
  const h = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) h[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return { status, h };
}

function ask() {
  const body = JSON.stringify({ seq: position });
  sock.write(`PUB $JS.API.DIRECT.GET.${stream} ${inbox} ${body.length}\r\n${body}\r\n`);
}

function onMessage(hdr, payload) {
  const { status, h } = headersOf(hdr);
  if (status.includes(' 404')) {
    sock.end(); // no message at this position yet: done
    return;
  }
  if (status.length > 'NATS/1.0'.length) throw new Error(status);
  const pos = Number(h['Nats-Sequence']);
  const type = typeOf(h['Nats-Subject']);
  const tags = h['Possum-Tags'] ? JSON.parse(h['Possum-Tags']) : [];
  let event;
  if (h['Possum-Lost'] === '1') {
    // A lost position: its event is gone; its type and tags when known.
    event = type === null ? { position: pos, lost: true } : { position: pos, lost: true, type, tags };
  } else {
    event = {
      position: pos,
      type,
      tags,
      data: payload.length ? JSON.parse(payload.toString('utf8')) : null,
      metadata: h['Possum-Metadata'] ? JSON.parse(h['Possum-Metadata']) : {},
      timestamp: h['Possum-Time'],
    };
    if (h['Possum-Id']) event.id = JSON.parse(h['Possum-Id']);
  }
  process.stdout.write(JSON.stringify(event) + '\n');
  position++;
  ask();
}

// The protocol: INFO from the server, CONNECT and SUB from us, then one
// request per position; the server answers with HMSG (headers and data,
// sized in bytes) and asks PING now and then.
sock.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  for (;;) {
    const eol = buf.indexOf('\r\n');
    if (eol < 0) return;
    const line = buf.subarray(0, eol).toString('latin1');
    if (line.startsWith('HMSG ')) {
      const f = line.split(' '); // HMSG subject sid [reply] hdrLen totalLen
      const hdrLen = Number(f[f.length - 2]);
      const total = Number(f[f.length - 1]);
      if (buf.length < eol + 2 + total + 2) return; // wait for the rest
      const body = buf.subarray(eol + 2, eol + 2 + total);
      buf = buf.subarray(eol + 2 + total + 2);
      onMessage(body.subarray(0, hdrLen), body.subarray(hdrLen));
      continue;
    }
    buf = buf.subarray(eol + 2);
    if (line.startsWith('INFO ')) {
      sock.write('CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n');
      sock.write(`SUB ${inbox} 1\r\n`);
      ask();
    } else if (line === 'PING') {
      sock.write('PONG\r\n');
    } else if (line.startsWith('-ERR')) {
      throw new Error(line);
    }
  }
});
