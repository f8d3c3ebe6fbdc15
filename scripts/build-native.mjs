#!/usr/bin/env node
// Build the optional native addon build/mce_native.node: native/*.cc compiled with g++ against
// OpenBLAS (Debian libopenblas-dev) and the headers of the running Node. No node-gyp, no downloads.
// Never fails the install: if the compile cannot run it prints one line and exits 0, and mce
// uses the wasm backend. Skips the compile when the addon is newer than every source.
//   node scripts/build-native.mjs [--force] [--verbose]
// Env: CXX (compiler, default g++), MCE_NATIVE_CFLAGS (extra flags), MCE_SKIP_NATIVE=1 (skip).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'native');
const outDir = path.join(root, 'build');
const out = path.join(outDir, 'mce_native.node');
const force = process.argv.includes('--force');
const verbose = process.argv.includes('--verbose');

function skip(why) {
  console.log(`mce: native addon not built (${why}); the wasm backend will be used`);
  process.exit(0);
}

if (process.env.MCE_SKIP_NATIVE === '1') skip('MCE_SKIP_NATIVE=1');
if (!fs.existsSync(srcDir)) skip('no native/ sources');
const names = fs.readdirSync(srcDir).sort();
const sources = names.filter((f) => f.endsWith('.cc')).map((f) => path.join(srcDir, f));
const headers = names.filter((f) => f.endsWith('.h')).map((f) => path.join(srcDir, f));
if (sources.length === 0) skip('no native/*.cc sources');

const mtime = (p) => fs.statSync(p).mtimeMs;
if (!force && fs.existsSync(out)) {
  const newest = Math.max(...[...sources, ...headers, fileURLToPath(import.meta.url)].map(mtime));
  if (mtime(out) > newest) {
    if (verbose) console.log(`mce: ${path.relative(root, out)} is up to date`);
    process.exit(0);
  }
}

const nodeInclude = path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node');
if (!fs.existsSync(path.join(nodeInclude, 'node_api.h'))) skip(`no Node headers at ${nodeInclude}`);

// Portable but fast: AVX2 + FMA (x86-64-v3) where the CPU has them, else the compiler default.
function archFlags() {
  if (process.arch !== 'x64') return [];
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const flags = new Set((/^flags\s*:(.*)$/m.exec(info)?.[1] ?? '').trim().split(/\s+/));
    if (['avx2', 'fma', 'bmi2', 'f16c', 'movbe'].every((f) => flags.has(f))) return ['-march=x86-64-v3'];
    if (['sse4_2', 'popcnt', 'ssse3'].every((f) => flags.has(f))) return ['-march=x86-64-v2'];
  } catch {
    /* not Linux: fall through */
  }
  return [];
}

// OpenBLAS's cblas.h lives in a multiarch directory on Debian.
const includeDirs = [nodeInclude];
for (const d of ['/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu', '/usr/include/openblas']) {
  if (fs.existsSync(path.join(d, 'cblas.h'))) includeDirs.push(d);
}

const cxx = process.env.CXX || 'g++';
const tmp = path.join(outDir, `mce_native.node.tmp-${process.pid}`);
const args = [
  '-std=c++17',
  '-O3',
  ...archFlags(),
  '-fPIC',
  '-shared',
  '-fopenmp-simd',
  '-fno-math-errno',
  '-fno-trapping-math',
  // No peeling for alignment: a vectorised reduction then sums in the same order wherever the
  // row lies in memory, so results are bitwise reproducible (tfjs heap offsets vary run to run).
  '--param=vect-max-peeling-for-alignment=0',
  '-fvisibility=hidden',
  '-pthread',
  '-DNAPI_VERSION=8',
  '-Wall',
  ...includeDirs.map((d) => `-I${d}`),
  ...(process.env.MCE_NATIVE_CFLAGS ? process.env.MCE_NATIVE_CFLAGS.split(/\s+/).filter(Boolean) : []),
  ...sources,
  '-o',
  tmp,
  '-lopenblas',
  ...(os.platform() === 'darwin' ? ['-undefined', 'dynamic_lookup'] : []),
];

fs.mkdirSync(outDir, { recursive: true });
const t0 = Date.now();
if (verbose) console.log(`${cxx} ${args.join(' ')}`);
const r = spawnSync(cxx, args, { cwd: root, encoding: 'utf8' });
if (r.error || r.status !== 0) {
  fs.rmSync(tmp, { force: true });
  // An addon older than its sources may not match src/engine/native.ts: never leave one behind.
  fs.rmSync(out, { force: true });
  const text = `${r.error?.message ?? ''}\n${r.stderr ?? ''}`;
  if (verbose) process.stderr.write(text);
  let why;
  if (r.error && /ENOENT/.test(r.error.message)) why = `${cxx} not found`;
  else if (/cblas\.h|lopenblas|-lopenblas/.test(text)) why = 'OpenBLAS not found: apt-get install libopenblas-dev';
  else why = `${cxx} failed: ${(/error:.*$/m.exec(text)?.[0] ?? text.trim().split('\n')[0] ?? '').slice(0, 160)}`;
  skip(why);
}
fs.renameSync(tmp, out);
console.log(`mce: built ${path.relative(root, out)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
