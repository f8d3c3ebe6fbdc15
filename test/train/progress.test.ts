import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress, formatDuration, formatNumber } from '../../src/train/progress.js';

function harness(opts: { tty?: boolean; quiet?: boolean; interval?: number; start?: number; elapsedOffset?: number } = {}) {
  let t = 1_000_000;
  const out: string[] = [];
  const p = new Progress({
    total: 100, label: 'flow', write: (s) => out.push(s), now: () => t, smoothing: 0.5, ...opts,
  });
  return { p, out, advance: (ms: number) => { t += ms; } };
}

test('plain output: periodic lines with step, smoothed loss terms, it/s, elapsed and ETA', () => {
  const { p, out, advance } = harness({ interval: 1000 });
  for (let s = 1; s <= 10; s++) {
    advance(250); // 4 it/s
    p.update(s, { loss: 1 / s, mse: 0.5, l1: 0.001 });
  }
  // first update, then one line per second of clock (steps 5 and 9)
  assert.equal(out.length, 3);
  assert.ok(out.every((l) => l.endsWith('\n') && !l.includes('\r')));
  const last = out[2]!;
  assert.match(last, /^flow 9\/100 9% \| loss \S+ mse 0\.5000 l1 0\.001000 \| 4\.00 it\/s \| 0:02 elapsed \| ETA 0:23\n$/);
  p.update(100, { loss: 0.1 });
  assert.match(out.at(-1)!, /^flow 100\/100 100% .*ETA 0:00\n$/, 'the last step always prints');
  // smoothed with a bias-corrected EMA: constant terms stay exact
  assert.ok(Math.abs(p.smoothed()['mse']! - 0.5) < 1e-12);
  p.finish();
  assert.equal(out.at(-1)!.startsWith('flow 100/100'), true, 'finish adds nothing to plain output');
});

test('TTY output redraws one line in place and log() keeps it intact', () => {
  const { p, out, advance } = harness({ tty: true });
  advance(500);
  p.update(1, { loss: 2 });
  advance(50);
  p.update(2, { loss: 1 }); // within 100 ms: not redrawn
  advance(100);
  p.update(3, { loss: 1 });
  assert.equal(out.length, 2);
  assert.ok(out.every((l) => l.startsWith('\r') && l.endsWith('\x1b[K') && !l.includes('\n')));
  assert.match(out[1]!, /flow 3\/100 3% \| loss \S+ \| 4\.62 it\/s \| 0:01 elapsed \| ETA 0:21/);
  p.log('eval: acc 0.9');
  assert.match(out.at(-1)!, /^\r\x1b\[Keval: acc 0\.9\nflow 3\/100/);
  p.finish();
  assert.equal(out.at(-1), '\n');
});

test('quiet prints nothing; a resumed run counts only new steps and adds earlier time', () => {
  const q = harness({ quiet: true });
  q.advance(100);
  q.p.update(1, { loss: 1 });
  q.p.log('x');
  q.p.finish();
  assert.deepEqual(q.out, []);

  const r = harness({ start: 50, elapsedOffset: 60 });
  r.advance(2000);
  r.p.update(51, { loss: 1 });
  assert.match(r.out[0]!, /flow 51\/100 51% \| loss 1 \| 2\.00 s\/it \| 1:02 elapsed \| ETA 1:38/);
  assert.ok(Math.abs(r.p.eta() - 98) < 1e-9);
});

test('formatting helpers', () => {
  assert.equal(formatDuration(5), '0:05');
  assert.equal(formatDuration(125), '2:05');
  assert.equal(formatDuration(3723), '1:02:03');
  assert.equal(formatDuration(NaN), '?');
  assert.equal(formatNumber(NaN), 'NaN');
  assert.equal(formatNumber(-Infinity), '-Inf');
  assert.equal(formatNumber(0.012345), '0.01235');
  assert.equal(formatNumber(3), '3');
  assert.equal(formatNumber(123456), '1.23e+5');
});

test('work: with steps of unequal estimated cost, the ETA is the cost left over the cost done per second', () => {
  let t = 0;
  // Four steps: a long one (estimated 10) first, then three short ones (1 each).
  const p = new Progress({ total: 4, label: 'bench', write: () => {}, now: () => t, work: [10, 1, 1, 1] });
  t += 20_000; // the long step took 20 s: 0.5 cost units per second
  p.update(1);
  assert.equal(p.eta(), 6, 'three short steps of cost 1 at 0.5 per second');
  t = 0;
  const even = new Progress({ total: 4, label: 'bench', write: () => {}, now: () => t });
  t += 20_000;
  even.update(1);
  assert.equal(even.eta(), 60, 'without work every step counts the same: 3 steps at 20 s');
});
