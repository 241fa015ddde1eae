#!/usr/bin/env node
// Replays an FLV file through livesnap.wasm under Node, as `livesnap replay --callbacks` does:
// the same session, the same pictures at OUT/{bucket}/{key}, the same callback lines. The
// component is transpiled to JavaScript with jco (see README "Embedding"); it imports nothing, so
// this file is the whole host: it reads the file, pushes tags, renders, stores, completes.
//
//   npm ci && npx jco transpile --no-typescript -o gen /path/to/livesnap.wasm
//   node replay.mjs clip.flv --out shots --start-ms 1700000000000 --session-id 7 --callbacks -
import { mkdirSync, openSync, readSync, closeSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const MAX_TAG_BYTES = 16 * 1024 * 1024; // as `livesnap replay`

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    out: { type: 'string' },
    module: { type: 'string', default: './gen/livesnap.js' },
    app: { type: 'string', default: 'live' },
    stream: { type: 'string' },
    interval: { type: 'string', default: '20' },
    overwrite: { type: 'boolean', default: false },
    shortside: { type: 'string' },
    quality: { type: 'string' },
    'start-ms': { type: 'string' },
    'session-id': { type: 'string' },
    bucket: { type: 'string', default: 'livesnap' },
    uniqname: { type: 'string', default: 'local' },
    callbacks: { type: 'string' },
  },
});
const file = positionals[0];
if (!file || !opt.out) {
  console.error('usage: node replay.mjs FILE.flv --out DIR [--module gen/livesnap.js] [livesnap replay flags]');
  process.exit(2);
}

const { capture, render } = await import(pathToFileURL(resolve(opt.module)).href);

// FLV framing (Adobe FLV v10.1 Annex E): header, then PreviousTagSize + 11-byte tag headers.
function* flvTags(path) {
  const fd = openSync(path, 'r');
  const read = (n) => {
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const k = readSync(fd, buf, got, n - got, null);
      if (k === 0) break;
      got += k;
    }
    return buf.subarray(0, got);
  };
  try {
    const header = read(9);
    if (header.length < 9 || header.toString('latin1', 0, 3) !== 'FLV') {
      throw new Error(`${path} is not an FLV file`);
    }
    const dataOffset = header.readUInt32BE(5);
    if (dataOffset < 9) throw new Error(`${path}: header size ${dataOffset} is below 9`);
    read(dataOffset - 9);
    for (;;) {
      const head = read(15);
      if (head.length === 0 || head.length === 4) return; // clean end
      if (head.length < 15) throw new Truncated();
      const size = head.readUIntBE(5, 3);
      if (size > MAX_TAG_BYTES) throw new Truncated();
      const timestampMs = ((head[11] << 24) | head.readUIntBE(8, 3)) >>> 0;
      const body = read(size);
      if (body.length < size) throw new Truncated();
      yield { tagType: head[4] & 0x1f, timestampMs, body: new Uint8Array(body) };
    }
  } finally {
    closeSync(fd);
  }
}
class Truncated extends Error {}

const stream = opt.stream ?? basename(file, extname(file));
const info = {
  app: opt.app,
  stream,
  pushStartMs: BigInt(opt['start-ms'] ?? Date.now()),
  sessionId: Number(opt['session-id'] ?? Math.floor(Math.random() * 2 ** 32)),
};
const settings = {
  intervalS: Number(opt.interval),
  mode: opt.overwrite ? 'overwrite' : 'sequence',
  shortsidePx: opt.shortside === undefined ? undefined : Number(opt.shortside),
  quality: opt.quality === undefined ? undefined : Number(opt.quality),
  bucket: opt.bucket,
  uniqname: opt.uniqname,
  alterurl: undefined,
};

const failure = (e) => (e && e.payload ? e.payload : { code: 'decode-failed', message: String(e) });
let session;
try {
  session = capture.Session.create(info, settings);
} catch (e) {
  console.error(`livesnap-node: invalid settings: ${failure(e).message}`);
  process.exit(2);
}

const lines = [];
let tags = 0, stored = 0, failed = 0, skipped = 0;
try {
  for (const tag of flvTags(file)) {
    tags++;
    let action;
    try {
      action = session.pushTag(tag.tagType, tag.timestampMs, tag.body);
    } catch (e) {
      skipped++;
      continue;
    }
    if (action.tag === 'none') continue;
    if (action.tag === 'refused') {
      failed++;
      lines.push(action.val);
      continue;
    }
    const shot = action.val;
    let outcome;
    try {
      // shot.color: the stream's colorInfo (Enhanced RTMP Metadata), used where the VUI is silent.
      const { picture } = render.renderShotWithColor(
        shot.codec, shot.config, shot.accessUnit, shot.color, shot.shortsidePx, shot.jpegQuality, undefined);
      const path = join(opt.out, opt.bucket, ...shot.key.split('/'));
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, picture.jpeg);
      outcome = { tag: 'stored', val: [picture.widthPx, picture.heightPx] };
      stored++;
    } catch (e) {
      outcome = { tag: 'failed', val: failure(e) };
      failed++;
    }
    lines.push(session.complete(shot.seq, outcome));
  }
} catch (e) {
  if (!(e instanceof Truncated)) throw e;
  console.error('livesnap-node: warning: the input ends inside a tag; every complete tag before it was processed');
}

const text = lines.map((l) => l + '\n').join('');
if (opt.callbacks === '-') process.stdout.write(text);
else if (opt.callbacks) writeFileSync(opt.callbacks, text);
console.error(
  `livesnap-node: replayed ${tags} tags: ${stored} captures stored, ${failed} failed` +
    (skipped ? `, ${skipped} unusable tags skipped` : ''),
);
