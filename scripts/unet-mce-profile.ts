// CPU time and kernel profile of one MCE training iteration on the shipped sd-emoji UNet at the
// erasure benchmark's settings (src/bench/erasure/units.ts: 20 DDIM steps, CFG from the bundle, 2 erase
// + 2 preserve items, the trained groups ffn + attn_linear): unetObjectiveGrad, what trainMce's
// gradFn calls once per iteration. Process CPU time (user + system) is reported beside wall time, so
// other jobs on a shared machine distort it less.
//   node --import tsx scripts/unet-mce-profile.ts [--iters N] [--steps N] [--profile] [--dump FILE]
// --profile: one more iteration with every kernel metered: process CPU time (all threads) and wall
// time by kernel name, and the CPU time spent outside kernels (tfjs's engine and tape, our JS).
// --dump: the loss and every logit gradient as JSON (compare two builds numerically).
// Env: TOP=n kernels listed (default 30); SHAPES=Kernel lists that kernel's calls by input shapes;
// ONE_MNK=n sets the addon's one-BLAS-thread product size (native/gemm.cc kBlasOneThreadMNK).
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { useBackend } from '../src/engine/backend.js';
import { tf } from '../src/engine/tf.js';
import { nativeAddon } from '../src/engine/native.js';
import { buildPromptSets } from '../src/erase/mce/prompts.js';
import { loadEraseSubject } from '../src/erase/mce/subject.js';
import { defaultMceSettings, trainingSamples } from '../src/erase/mce/train.js';
import { DEFAULT_INIT_LOGIT, groupOf } from '../src/erase/mce/masks.js';
import { UnetPromptCache, unetBuildItems, unetObjectiveGrad, type DdimSettings, type UnetEraseModel } from '../src/erase/mce/unet.js';
import { unetMaskSpecs } from '../src/models/unet/masks.js';

const { values: a } = parseArgs({
  options: { iters: { type: 'string', default: '3' }, steps: { type: 'string', default: '20' }, profile: { type: 'boolean', default: false }, dump: { type: 'string' } },
});
const backend = await useBackend();
if (process.env['ONE_MNK']) nativeAddon()!._setOneThreadMnk(Number(process.env['ONE_MNK']));
const subject = await loadEraseSubject('sd-emoji', { steps: Number(a.steps) });
const model = subject.model as UnetEraseModel;
const sampler = subject.sampler as DdimSettings;
const lr = { ffn: 0.5, txt_mod: 0.5, heads: 0, single_mlp: 0.5, attn_linear: 0.5 };
const s = defaultMceSettings(sampler, { seed: 0, noises: 2, lr });
const sets = buildPromptSets(['kitchen knife'], { erasePerTarget: 12, preserve: 12, seed: 0 });
const { erase, preserve } = trainingSamples(sets, s);
const cache = new UnetPromptCache(model);
const items = unetBuildItems(model, cache, [erase[0]!, erase[1]!, preserve[0]!, preserve[1]!], { sampler, objective: 'final' }, s.seed);
const specs = unetMaskSpecs(model.cfg).filter((m) => (lr[groupOf(m.name)] ?? 0) > 0);
const names = specs.map((m) => m.name);
const logits = specs.map((m) => tf.fill([m.size], DEFAULT_INIT_LOGIT));
const st = { sampler, objective: 'final' as const, beta: s.beta, sparsity: s.sparsity, hc: s.hc };
const iterate = () => unetObjectiveGrad(model, cache, names, logits, items, st, 12345);

console.log(`backend ${backend}, ${sampler.plan.timesteps.length} DDIM steps, CFG ${sampler.cfg}, ${names.length} trained hook points`);
for (let i = 0; i < Number(a.iters); i++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = iterate();
  const c = process.cpuUsage(c0);
  console.log(`iteration ${i}: CPU ${((c.user + c.system) / 1000).toFixed(0)} ms, wall ${(performance.now() - t0).toFixed(0)} ms, loss ${r.loss}`);
  if (i === 0 && a.dump) {
    const grads = Object.fromEntries(names.map((n, j) => [n, Array.from(r.grads[j]!.dataSync())]));
    fs.writeFileSync(a.dump, JSON.stringify({ loss: r.loss, terms: r.terms, grads }));
  }
  tf.dispose(r.grads);
}
if (a.profile) {
  // Every wasm kernel wrapped with a process-CPU-time (all threads) and wall-time meter.
  const byKernel = new Map<string, { cpu: number; wall: number; calls: number }>();
  let depth = 0;
  // Wrapped in place: the registry keeps the same config objects (hasNativeKernel checks identity).
  for (const k of tf.getKernelsForBackend('wasm')) {
    const inner = k.kernelFunc;
    (k as { kernelFunc: typeof inner }).kernelFunc = (args) => {
      if (depth > 0) return inner(args); // a kernel running another: counted in the outer one
      depth++;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      try {
        return inner(args);
      } finally {
        const c = process.cpuUsage(c0);
        // SHAPES=Name: that kernel's calls listed by input shapes.
        const key = process.env['SHAPES'] === k.kernelName ? `${k.kernelName} ${JSON.stringify(Object.values(args.inputs).map((t) => t?.shape))}` : k.kernelName;
        const e = byKernel.get(key) ?? { cpu: 0, wall: 0, calls: 0 };
        e.cpu += (c.user + c.system) / 1000;
        e.wall += performance.now() - t0;
        e.calls++;
        byKernel.set(key, e);
        depth--;
      }
    };
  }
  const c0 = process.cpuUsage();
  tf.dispose(iterate().grads);
  const c = process.cpuUsage(c0);
  const total = (c.user + c.system) / 1000;
  const inKernels = [...byKernel.values()].reduce((x, e) => x + e.cpu, 0);
  const calls = [...byKernel.values()].reduce((x, e) => x + e.calls, 0);
  console.log(`profiled iteration: CPU ${total.toFixed(0)} ms, in ${calls} kernel calls ${inKernels.toFixed(0)} ms, outside kernels (tfjs engine, tape, JS) ${(total - inKernels).toFixed(0)} ms`);
  for (const [n, e] of [...byKernel].sort((x, y) => y[1].cpu - x[1].cpu).slice(0, Number(process.env['TOP'] ?? 30))) {
    console.log(`  ${n.padEnd(26)} CPU ${e.cpu.toFixed(0).padStart(6)} ms ${(100 * e.cpu / total).toFixed(1).padStart(5)}%  wall ${e.wall.toFixed(0).padStart(6)} ms  ${e.calls} calls`);
  }
}
