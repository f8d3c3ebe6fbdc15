// Step counts of a chain of training stages, as a manifest reports them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stageSteps, totalSteps, trainingCommand, type RunInfo } from '../../src/train/run-record.js';

test('stage and total steps: from the init checkpoint, or from notes.prior_steps when it counts only its own stage', () => {
  const run: RunInfo = { step: 3900, elapsedSeconds: 0, curve: [], firstLoss: null, init: { checkpoint: 'runs/x/ckpt-00001500', step: 1500 } };
  assert.equal(stageSteps(run), 2400);
  assert.equal(totalSteps(run, undefined), 3900);
  assert.equal(totalSteps(run, { prior_steps: 2500 }), 4900);
  assert.equal(totalSteps({ ...run, step: 40, init: undefined }, {}), 40);
});

test('the training command chains the earlier stages and stops where an early export was taken', () => {
  const run: RunInfo = { step: 3900, elapsedSeconds: 0, curve: [], firstLoss: null, init: { checkpoint: 'runs/x/ckpt-00001500', step: 1500 } };
  const notes = { stage1_command: 'mce train diffusion --config a.json' };
  assert.equal(trainingCommand('diffusion', 'b.json', run, 2400, notes), 'mce train diffusion --config a.json && mce train diffusion --config b.json');
  assert.equal(trainingCommand('diffusion', 'b.json', run, 3000, notes), 'mce train diffusion --config a.json && mce train diffusion --config b.json --max-steps 2400');
  // Without an init stage the chain is not this run's history.
  assert.equal(trainingCommand('flow', 'c.json', { ...run, step: 40, init: undefined }, 40, notes), 'mce train flow --config c.json');
});

test("a model folder's manifest gives the chain before it, over the config's notes", () => {
  const chain = { totalSteps: 26900, command: 'mce train diffusion --config a.json && mce train diffusion --config b.json' };
  const run: RunInfo = { step: 26900 + 100, elapsedSeconds: 0, curve: [], firstLoss: null, init: { checkpoint: 'models/sd-emoji', step: 26900 }, chain };
  const notes = { prior_steps: 18900, stage1_command: 'mce train diffusion --config a.json' };
  assert.equal(totalSteps(run, notes), 27000);
  assert.equal(trainingCommand('diffusion', 'c.json', run, 100, notes), `${chain.command} && mce train diffusion --config c.json`);
  // An older manifest without them: the notes, as before.
  const old: RunInfo = { ...run, step: 26000, init: { checkpoint: 'models/sd-emoji', step: 25900 }, chain: {} };
  assert.equal(totalSteps(old, notes), 19000);
  assert.equal(trainingCommand('diffusion', 'c.json', old, 100, notes), 'mce train diffusion --config a.json && mce train diffusion --config c.json');
});
