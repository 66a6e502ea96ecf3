// api.mjs: checks the shapes of possum's HTTP API as the DCB community test
// suite's default HTTP adapter (and any program in another language) sees
// them. Node 18+, standard library only; run by TestNodeAPIShapes.
//
//   node api.mjs SOCKET_PATH
//
// Exits 0 and prints "ok" when every check holds, 1 with the failed check.
import http from 'node:http';
import assert from 'node:assert/strict';

const socketPath = process.argv[2];

function request(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// As the adapter does: query and options as JSON in the URL.
async function read(query, options) {
  let url = `/read?query=${encodeURIComponent(JSON.stringify(query))}`;
  if (options !== undefined) url += `&options=${encodeURIComponent(JSON.stringify(options))}`;
  const res = await request('GET', url);
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers['content-type'], /^application\/json/);
  const events = JSON.parse(res.text);
  assert.ok(Array.isArray(events));
  for (const e of events) {
    assert.equal(typeof e.type, 'string');
    assert.ok(Array.isArray(e.tags));
    assert.equal(typeof e.position, 'number');
    assert.ok('data' in e);
  }
  return events;
}

async function append(events, condition) {
  const res = await request('POST', '/append', JSON.stringify({ events, condition }),
    { 'Content-Type': 'application/json' });
  assert.equal(res.status, 200, res.text);
  const r = JSON.parse(res.text);
  assert.equal(typeof r.durationInMicroseconds, 'number');
  assert.equal(typeof r.appendConditionFailed, 'boolean');
  return r;
}

async function head() {
  const res = await request('GET', '/head');
  assert.equal(res.status, 200);
  return JSON.parse(res.text).head;
}

const q = (types, tags) => ({ items: [{ types, tags }] });

async function main() {
  let res0;
  assert.equal(await head(), 0);
  assert.deepEqual(await read({ items: [] }), []);

  // data as the suite sends it: a JSON string holding JSON text.
  const batch = [0, 1, 2].map((i) => ({ type: 'SomeEvent', tags: ['batch:1', `i:${i}`], data: JSON.stringify({ batchIndex: i }) }));
  let r = await append(batch);
  assert.equal(r.appendConditionFailed, false);
  assert.equal(r.position, 3);
  // Any other JSON value, byte for byte.
  r = await append([{ type: 'Other', tags: ['batch:2'], data: { nested: [1, 'two', null] } },
    { type: 'Other', data: 7 }, { type: 'Other' }]);
  assert.equal(r.position, 6);

  const got = await read(q(['SomeEvent'], ['batch:1']));
  assert.deepEqual(got.map((e) => e.position), [1, 2, 3]);
  got.forEach((e, i) => {
    assert.equal(e.type, 'SomeEvent');
    assert.deepEqual(e.tags, ['batch:1', `i:${i}`]);
    assert.equal(typeof e.data, 'string', 'a string comes back a string, never unwrapped');
    assert.equal(e.data, JSON.stringify({ batchIndex: i }));
    assert.deepEqual(JSON.parse(e.data), { batchIndex: i });
    assert.equal(typeof e.timestamp, 'string');
  });
  const all = await read({ items: [] });
  assert.deepEqual(all.map((e) => e.position), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(all[3].data, { nested: [1, 'two', null] });
  assert.equal(all[4].data, 7);
  assert.equal(all[5].data, null);
  assert.deepEqual(all[5].tags, []);
  // No query parameter at all: every event.
  assert.equal(JSON.parse((await request('GET', '/read')).text).length, 6);

  // Options: from, limit, backwards; readLastEvent as the adapter does it.
  assert.deepEqual((await read({ items: [] }, { from: 2, limit: 2 })).map((e) => e.position), [2, 3]);
  assert.deepEqual((await read({ items: [] }, { backwards: true, from: 5 })).map((e) => e.position), [5, 4, 3, 2, 1]);
  const last = await read(q(['SomeEvent']), { backwards: true, limit: 1 });
  assert.equal(last[0].position, 3);
  // Types OR'd, tags AND'd, items OR'd.
  assert.deepEqual((await read({ items: [{ types: ['Nope', 'Other'], tags: ['batch:2'] }, { tags: ['i:1'] }] })).map((e) => e.position), [2, 4]);

  // A failed condition: 200, appendConditionFailed, nothing written.
  r = await append([{ type: 'SomeEvent', tags: ['batch:1'], data: '{}' }], { failIfEventsMatch: q(['SomeEvent'], ['batch:1']), after: 2 });
  assert.equal(r.appendConditionFailed, true);
  assert.equal(await head(), 6);
  // After is exclusive; a condition without after counts every event.
  r = await append([{ type: 'SomeEvent', tags: ['batch:1'], data: '{}' }], { failIfEventsMatch: q(['SomeEvent'], ['batch:1']), after: 3 });
  assert.equal(r.appendConditionFailed, false);
  assert.equal(r.position, 7);
  r = await append([{ type: 'SomeEvent', tags: ['vu1-iter0'], data: '{}' }], { failIfEventsMatch: q(['SomeEvent'], ['vu1-iter0']) });
  assert.equal(r.appendConditionFailed, false);
  r = await append([{ type: 'SomeEvent', tags: ['vu1-iter0'], data: '{}' }], { failIfEventsMatch: q(['SomeEvent'], ['vu1-iter0']) });
  assert.equal(r.appendConditionFailed, true);
  assert.equal(await head(), 8);

  // Several independent appends in one request, one result each.
  res0 = await request('POST', '/appends', JSON.stringify({ appends: [
    { events: [{ type: 'Many', tags: ['m:1'], data: '"a"' }] },
    { events: [{ type: 'Many', tags: ['m:1'] }], condition: { failIfEventsMatch: q(undefined, ['vu1-iter0']) } },
    { events: [{ type: '' }] },
  ] }), { 'Content-Type': 'application/json' });
  assert.equal(res0.status, 200, res0.text);
  const many = JSON.parse(res0.text).results;
  assert.equal(many.length, 3);
  assert.equal(many[0].appendConditionFailed, false);
  assert.equal(many[0].position, 9);
  assert.equal(many[1].appendConditionFailed, true);
  assert.equal(many[2].code, 'invalid_event');
  assert.equal(typeof many[2].error, 'string');
  assert.equal(await head(), 9);

  // Errors: a JSON body naming the problem, nothing written.
  let res = await request('POST', '/append', '{"events":[', { 'Content-Type': 'application/json' });
  assert.equal(res.status, 400);
  assert.equal(typeof JSON.parse(res.text).error, 'string');
  res = await request('GET', `/read?query=${encodeURIComponent('{"items":[{}]}')}`);
  assert.equal(res.status, 400);
  assert.equal(JSON.parse(res.text).code, 'invalid_query');
  assert.equal(await head(), 9);

  // The stream of a read: NDJSON, one event per line, then the end line.
  res = await request('GET', `/stream?query=${encodeURIComponent(JSON.stringify(q(['SomeEvent'])))}&from=2&limit=2`);
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^application\/x-ndjson/);
  const lines = res.text.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.position ?? l), [2, 3, { end: true }]);
  assert.equal(lines[0].data, JSON.stringify({ batchIndex: 1 }));

  // Following: what is there after `after`, a heartbeat when idle, then
  // new events as they are appended.
  await new Promise((resolve, reject) => {
    const seen = [];
    let buf = '';
    const req = http.request({ socketPath, path: '/stream?follow=true&after=8&heartbeat=50' }, (res) => {
      assert.equal(res.statusCode, 200);
      res.setEncoding('utf8');
      res.on('data', async (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          seen.push(line.heartbeat ? 'heartbeat' : line.position);
          if (seen.length === 1) assert.equal(line.position, 9);
          if (line.heartbeat && !seen.includes(10)) {
            append([{ type: 'Live', data: '"live"' }]).catch(reject);
          }
          if (line.position === 10) {
            assert.equal(line.data, '"live"');
            req.destroy();
            resolve();
          }
        }
      });
    });
    req.on('error', (e) => { if (!req.destroyed) reject(e); });
    req.end();
  });
  assert.equal(await head(), 10);
}

main().then(() => console.log('ok'), (e) => { console.error(e); process.exit(1); });
