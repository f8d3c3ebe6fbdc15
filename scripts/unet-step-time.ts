// CPU time of one UNet training step (forward + backward of a mean-square loss) for the sd-emoji
// size candidates: batch 32, 8x8x8 latent, 16 x 128 text context. Process CPU time (user + system)
// rather than wall time, so other jobs on a shared machine distort it less. Run with MCE_THREADS=1.
// Usage: MCE_THREADS=1 node --import tsx scripts/unet-step-time.ts [STEPS]
import { useBackend } from '../src/engine/backend.js';
import { tf } from '../src/engine/tf.js';
import { countUnetParams, initUnetWeights, SD_EMOJI_LATENT8, unetForward, type UnetParams } from '../src/models/unet/index.js';

const steps = Number(process.argv[2] ?? 4);
await useBackend();
const L = SD_EMOJI_LATENT8;
const candidates: Record<string, UnetParams> = {
  '[32, 64] attention at both levels': { ...L, block_out_channels: [32, 64], num_attention_heads: [1, 2], norm_num_groups: 16 },
  '[48, 96] attention at both levels': { ...L, block_out_channels: [48, 96], num_attention_heads: [2, 4], norm_num_groups: 16 },
  '[64, 128] attention at both levels (SD_EMOJI_LATENT8)': { ...L },
};
const B = 32;
for (const [name, p] of Object.entries(candidates)) {
  const vars = Object.fromEntries(Object.entries(initUnetWeights(p, 1)).map(([n, t]) => [n, tf.variable(t)]));
  const x = tf.randomNormal([B, 8, 8, 8]);
  const ctx = tf.randomNormal([B, 16, 128]);
  const ts = tf.tensor1d(Array.from({ length: B }, (_, i) => i * 30));
  const ms: number[] = [];
  for (let k = 0; k < steps; k++) {
    const c0 = process.cpuUsage();
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(unetForward(p, vars, { sample: x, timesteps: ts, context: ctx }))) as tf.Scalar);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
    const c = process.cpuUsage(c0);
    ms.push(Math.round((c.user + c.system) / 1000));
  }
  tf.dispose([x, ctx, ts, ...Object.values(vars)]);
  console.log(`${name}: ${countUnetParams(p)} params, CPU ms per batch-${B} step: ${ms.join(', ')}`);
}
