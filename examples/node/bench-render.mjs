#!/usr/bin/env node
// Times `render` of one I-frame in the jco-transpiled component: the Node figure of the
// benchmark (`cargo bench -p livesnap-tests --bench embedding`), beside wasmtime's for the same
// frame. Prints one JSON line: {"instantiate_ms","render_ms_best","render_ms_median","width","height","jpeg_bytes"}.
//
//   node bench-render.mjs --module gen/livesnap.js CONFIG.bin ACCESS_UNIT.bin [ROUNDS]
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    module: { type: 'string', default: './gen/livesnap.js' },
    codec: { type: 'string', default: 'avc' },
  },
});
const [configPath, auPath, roundsArg] = positionals;
const t0 = performance.now();
const { render } = await import(pathToFileURL(resolve(values.module)).href);
const instantiateMs = performance.now() - t0;
const config = new Uint8Array(readFileSync(configPath));
const au = new Uint8Array(readFileSync(auPath));
const times = [];
let picture;
for (let i = 0; i < Number(roundsArg ?? 7); i++) {
  const t = performance.now();
  picture = render.render(values.codec, config, au, undefined, 80);
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({
  instantiate_ms: instantiateMs,
  render_ms_best: times[0],
  render_ms_median: times[times.length >> 1],
  width: picture.widthPx,
  height: picture.heightPx,
  jpeg_bytes: picture.jpeg.length,
}));
