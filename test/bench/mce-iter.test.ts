// The two MCE-iteration workloads at their tiny size, mce-iter (FLUX, erase/mce/objective.ts
// objectiveGrad) and unet-mce-iter (the UNet, erase/mce/unet.ts unetObjectiveGrad): ours and
// bench/torch_bench.py's twins agree on the loss terms and the mask-logit gradients when PyTorch is
// present; the gradients of each trained group are not zero; the memory probe runs at 2 and 4 steps.
// No timing assertions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBench } from '../../src/bench/harness.js';
import { probeTorch } from '../../src/bench/torch.js';
import { useBackend } from '../../src/engine/backend.js';

for (const [name, groups] of [['mce-iter', ['ffn', 'txt_mod']], ['unet-mce-iter', ['ffn', 'attn_linear']]] as const) {
  test(`${name} (tiny): same loss and mask gradients as PyTorch; memory probe at 2 and 4 steps`, async () => {
    const torch = await probeTorch();
    await useBackend();
    const run = await runBench({ size: 'tiny', smoke: true, reps: 2, only: [name], log: () => {} });
    assert.equal(run.records.length, 1);
    const r = run.records[0]!;
    assert.equal(r.name, name);
    assert.ok(r.flops > 0);
    const ours = r.check.ours;
    assert.ok(ours['loss']! > 0 && ours['erase_mse']! > 0 && ours['preserve_mse']! > 0, JSON.stringify(ours));
    // loss = erase + beta * preserve (beta 0.1).
    assert.ok(Math.abs(ours['loss']! - (ours['erase_mse']! + 0.1 * ours['preserve_mse']!)) < 1e-6 * ours['loss']!, JSON.stringify(ours));
    for (const g of groups) assert.ok(ours[`grad_${g}`]! > 0, JSON.stringify(ours));
    const by = r['peak_mb_by_steps'] as Record<string, number>;
    assert.deepEqual(Object.keys(by).sort(), ['2', '4']);
    assert.ok(by['2']! > 0 && by['4']! > 0);
    if (torch.ok) {
      assert.equal(r.check.ok, true, `ours ${JSON.stringify(ours)} torch ${JSON.stringify(r.check.torch)}`);
      assert.ok(r.check.max_rel_diff !== null && r.check.max_rel_diff < 1e-3);
    }
  });
}
