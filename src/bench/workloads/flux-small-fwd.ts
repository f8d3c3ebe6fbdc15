// flux-small-fwd: one forward (inference, no tape) of a small schnell-style FLUX transformer
// (flux-small.ts: hidden 256, 2 double + 4 single blocks, 64 image + 16 text tokens, batch 4) on
// packed latents at timesteps t_b = 1 - b/B, through the product code (models/flux fluxForward,
// rotary tables computed inside the forward as the reference does). PyTorch: a compact
// reference-structured FLUX (bench/torch_bench.py) with the same weights, under torch.no_grad().
import { tf } from '../../engine/tf.js';
import { fluxForward } from '../../models/flux/model.js';
import { fro, normalInput } from '../util.js';
import { fluxForwardFlops, fluxSmallInputs, fluxSmallParams, fluxSmallSize, fluxSmallTensors } from './flux-small.js';
import type { OursRun, Workload } from '../types.js';

export const fluxSmallFwd: Workload = {
  name: 'flux-small-fwd',
  description: 'FLUX forward, hidden 256, 2 double + 4 single blocks, 64 img + 16 txt tokens, batch 4 (schnell-style)',
  reps: 15,
  judge: (r) => ({ text: 'ours <= 1.5x PyTorch time', met: r.ratio === null ? null : r.ratio <= 1.5 }),
  prepare(size) {
    const s = fluxSmallSize(size);
    const { cfg, batch: B } = s;
    const seed = 0xf1;
    const tokens = s.grid_h * s.grid_w;
    const timesteps = { name: 'timesteps', shape: [B], data: Float32Array.from({ length: B }, (_, b) => 1 - b / B) };
    const { inputs, weightNames } = fluxSmallInputs(s, seed, [normalInput('img', [B, tokens, cfg.in_channels], seed, 0), timesteps]);
    return {
      flops: fluxForwardFlops(s),
      params: fluxSmallParams(s),
      inputs,
      setup(): OursRun {
        const t = fluxSmallTensors(s, inputs, weightNames);
        const run = () =>
          fluxForward(cfg, t.weights, {
            img: t.named['img']!,
            img_ids: t.img_ids,
            txt: t.named['txt']!,
            txt_ids: t.txt_ids,
            timesteps: t.named['timesteps']!,
            y: t.named['y']!,
          });
        return {
          step: () => tf.dispose(run()),
          checked: () => {
            const out = run();
            const d = out.dataSync();
            let l1 = 0;
            for (let i = 0; i < d.length; i++) l1 += Math.abs(d[i]!);
            const res = { out_norm: fro(out), out_l1: l1 };
            out.dispose();
            return res;
          },
          dispose: () => t.dispose(),
        };
      },
    };
  },
};
