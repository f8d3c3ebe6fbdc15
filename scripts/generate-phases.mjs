// Where the time of `mce generate` goes: the calls the CLI makes for one 4-step flux-emoji image,
// each phase timed, in one fresh process on the compiled dist/ (run `npm run build` first).
// The tokenizer is built on its own first so its cost is visible; loadFluxEmoji then finds it cached.
// Usage: node scripts/generate-phases.mjs   (Node's own start: time node -e 0)
const t0 = performance.now();
const laps = [];
const lap = (what) => laps.push([what, performance.now()]);
const dist = new URL('../dist/', import.meta.url);
const { tf } = await import(new URL('engine/tf.js', dist).href);
lap('require tfjs (union, core, cpu, wasm)');
const { useBackend } = await import(new URL('engine/backend.js', dist).href);
const gen = await import(new URL('generate/flux-emoji.js', dist).href);
const { writePng } = await import(new URL('io/png.js', dist).href);
const { loadFloat32 } = await import(new URL('io/safetensors.js', dist).href);
const { ClipTokenizer } = await import(new URL('models/text/tokenizer.js', dist).href);
lap("import mce's modules");
await useBackend();
lap('backend init (native addon, wasm)');
const tr = await loadFloat32(new URL('../models/flux-emoji/transformer.safetensors', import.meta.url).pathname);
lap('read transformer + BF16 to F32');
tf.dispose(Object.values(tr.tensors).map((t) => tf.tensor(t.data, t.shape, 'float32')));
lap('transformer weights to tensors');
ClipTokenizer.load();
lap('CLIP BPE tokenizer');
const model = await gen.loadFluxEmoji('flux-emoji');
lap('loadFluxEmoji (tokenizer cached)');
const res = gen.generate(model, { prompt: 'an emoji of a bomb in noto style', seed: 0, steps: 4 });
lap('generate: encode, 4 steps, decode');
const img = res.images[0];
await writePng('/tmp/mce-generate-phases.png', { width: img.width, height: img.height, channels: 3, data: img.data });
lap('PNG');
let prev = t0;
for (const [what, t] of laps) {
  console.log(`${what.padEnd(40)} ${(t - prev).toFixed(0).padStart(5)} ms`);
  prev = t;
}
console.log(`${'total in process'.padEnd(40)} ${(prev - t0).toFixed(0).padStart(5)} ms`);
