// The engine benchmark's workloads, in run order. Adding a workload: one file in this folder, one
// line here, and its PyTorch twin in bench/torch_bench.py (WORKLOADS), unless it has none (torch:
// false, e.g. generate-cli, a whole CLI process). Names are stable.
import type { Workload } from '../types.js';
import { sgemm1024 } from './sgemm-1024.js';
import { blockFwdBwd } from './block-fwd-bwd.js';
import { euler8Ckpt } from './euler8-ckpt.js';
import { fluxSmallFwd } from './flux-small-fwd.js';
import { fluxSmallCkpt4 } from './flux-small-ckpt4.js';
import { generateCli } from './generate-cli.js';
import { mceIter } from './mce-iter.js';
import { unetMceIter } from './unet-mce-iter.js';

export const workloads: Workload[] = [
  sgemm1024,
  blockFwdBwd,
  euler8Ckpt,
  fluxSmallFwd,
  fluxSmallCkpt4,
  generateCli,
  mceIter,
  unetMceIter,
];
