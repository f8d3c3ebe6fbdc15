// Times the kernels the Slice / SplitV / leading-axis Sum fills replace (src/engine/fills.ts), on
// the shapes of a flux-emoji training step (batch 32, 32 tokens). Run it twice to compare:
//   node --import tsx scripts/copy-kernels-time.ts
//   MCE_DISABLE_FILLS=Slice,SplitV,Sum node --import tsx scripts/copy-kernels-time.ts
import { useBackend } from '../src/engine/backend.js';
import { tf, type Tensor } from '../src/engine/tf.js';

const backend = await useBackend();
const x = tf.randomNormal([32, 32, 3072], 0, 1, 'float32', 1);
const y = tf.randomNormal([32, 32, 1024], 0, 1, 'float32', 2);
function median(name: string, f: () => Tensor | Tensor[], reps = 20): void {
  for (let i = 0; i < 3; i++) tf.dispose(f());
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    tf.dispose(f());
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  console.log(`${name}: ${ms[reps >> 1]!.toFixed(2)} ms`);
}
console.log(`backend ${backend}, fills off: ${process.env['MCE_DISABLE_FILLS'] ?? 'none'}`);
median('split [32,32,3072] into 768/768/1536 on the last axis', () => tf.split(x, [768, 768, 1536], -1));
median('slice [32,32,512] out of [32,32,3072]', () => tf.slice(x, [0, 0, 256], [32, 32, 512]));
median('sum [32,32,1024] over axes [0,1]', () => tf.sum(y, [0, 1]));
