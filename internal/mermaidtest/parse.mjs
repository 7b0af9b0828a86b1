// parse.mjs checks Mermaid charts with Mermaid's own parser
// (mermaid.parse), under node with jsdom as the DOM Mermaid expects; the
// mermaid CLI cannot run where no browser can be downloaded.
//
//   PHASEGUARD_MERMAID=DIR node parse.mjs < charts.json
//
// DIR is where `npm install --prefix DIR mermaid@11 jsdom@26` put its
// node_modules. Standard input is a JSON array of chart texts; standard
// output is one JSON object: {"mermaid": version, "errors": [...]}, with
// one entry per chart, null when it parses and Mermaid's message when it
// does not. Exit status 2 when the packages cannot be loaded or the input
// is not a JSON array of strings.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

function die(msg) {
  process.stderr.write(`parse.mjs: ${msg}\n`);
  process.exit(2);
}

const dir = process.env.PHASEGUARD_MERMAID;
if (!dir) die('PHASEGUARD_MERMAID is not set (the directory npm installed mermaid and jsdom into)');
const require = createRequire(path.join(path.resolve(dir), 'node_modules', 'parse.cjs'));

let mermaid, version;
try {
  // Mermaid reads window and document when it loads (DOMPurify, d3).
  const { JSDOM } = require('jsdom');
  const dom = new JSDOM('<!doctype html><html><body></body></html>', { pretendToBeVisual: true });
  globalThis.window = dom.window;
  globalThis.document = dom.window.document;
  const entry = require.resolve('mermaid');
  mermaid = (await import(pathToFileURL(entry).href)).default;
  version = require(path.join(path.dirname(require.resolve('mermaid/package.json')), 'package.json')).version;
} catch (e) {
  die(`cannot load mermaid and jsdom from ${dir}: ${e && e.message}`);
}

let input = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) input += chunk;
let charts;
try {
  charts = JSON.parse(input);
} catch (e) {
  die(`standard input is not JSON: ${e.message}`);
}
if (!Array.isArray(charts) || charts.some((c) => typeof c !== 'string')) die('standard input is not a JSON array of strings');

mermaid.initialize({ startOnLoad: false });
const errors = [];
for (const text of charts) {
  try {
    const ok = await mermaid.parse(text);
    errors.push(ok ? null : 'mermaid.parse returned false');
  } catch (e) {
    errors.push(String((e && e.message) || e));
  }
}
process.stdout.write(JSON.stringify({ mermaid: version, errors }) + '\n');
