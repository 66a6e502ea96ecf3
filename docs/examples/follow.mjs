// follow.mjs: prints the events of a possum store as NDJSON, in position
// order, and follows new ones. Node 18+, no packages.
//
//   node follow.mjs STORE_DIR [NEXT] [COUNT]
//
// NEXT is the first position to print (default 1: a consumer that saved the
// last position it handled passes that plus one); COUNT stops after that many
// events (default: follow until interrupted).
import fs from 'node:fs';
import path from 'node:path';

const [dir, nextArg = '1', countArg = '0'] = process.argv.slice(2);
const events = path.join(dir, 'events');
let next = Number(nextArg);
let left = Number(countArg) || Infinity;

// An event file is named by its position, 20 digits, zero-padded.
const file = (pos) => path.join(events, String(pos).padStart(20, '0') + '.json');

// drain prints events from `next` on while their files exist. A file exists
// only once whole (the store renames it into place) and only for an
// acknowledged event; the first missing one is not written yet.
function drain() {
  for (;;) {
    let text;
    try {
      text = fs.readFileSync(file(next), 'utf8');
    } catch (err) {
      if (err.code === 'ENOENT') return;
      throw err;
    }
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return; // cut short by a power loss: the store rewrites it when it opens
    }
    process.stdout.write(JSON.stringify(event) + '\n');
    next++;
    if (--left === 0) process.exit(0);
  }
}

// A notification is only a hint to look again from `next`: notifications
// can be coalesced or dropped (a full inotify queue), and events/ may not
// exist yet or be recreated by a repair. The timer is the safety net.
let watcher = null;
function watch() {
  if (watcher) return;
  try {
    watcher = fs.watch(events, drain);
    watcher.on('error', () => { watcher = null; });
  } catch {
    watcher = null; // no events/ yet: the timer looks again
  }
}
setInterval(() => { watch(); drain(); }, 250);
watch();
drain();
