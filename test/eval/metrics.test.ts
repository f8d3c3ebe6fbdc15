// The metrics against analytic values and against independent float64 references computed with
// PyTorch 1.13 (the script is in the comments next to each number).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { Rng } from '../../src/engine/rng.js';
import { fid, frechetDistance, kid, ssim, featureDistance, stageMaps, symmetricEigen, meanCov, type FeatureSet } from '../../src/eval/metrics.js';
import { Classifier, initClassifier, type ClassifierConfig } from '../../src/models/classifier/classifier.js';
import { imagesToInput, type RgbImage } from '../../src/models/classifier/images.js';

before(async () => { await useBackend(); });

const close = (got: number, want: number, tol: number, what: string): void =>
  assert.ok(Math.abs(got - want) <= tol, `${what}: got ${got}, want ${want}`);

test('Jacobi eigensolver: A = V diag(values) V^T with orthonormal V', () => {
  const n = 7;
  const rng = new Rng(3);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng.normal();
  const { values, vectors: V } = symmetricEigen(a, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let rec = 0;
      let dot = 0;
      for (let k = 0; k < n; k++) {
        rec += V[i * n + k]! * values[k]! * V[j * n + k]!;
        dot += V[k * n + i]! * V[k * n + j]!;
      }
      close(rec, a[i * n + j]!, 1e-12, `A[${i}][${j}]`);
      close(dot, i === j ? 1 : 0, 1e-12, `V^T V[${i}][${j}]`);
    }
  }
  // Eigenvalues of a known matrix: [[2,1],[1,2]] has 1 and 3.
  const two = [...symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2).values].sort();
  close(two[0]!, 1, 1e-14, 'lambda0');
  close(two[1]!, 3, 1e-14, 'lambda1');
});

test('Fréchet distance of Gaussians: diagonal and non-commuting covariances, analytic', () => {
  // Diagonal: |dmu|^2 + sum (s1 + s2 - 2 sqrt(s1 s2)).
  const d1 = frechetDistance([0, 1, 2], Float64Array.from([1, 0, 0, 0, 4, 0, 0, 0, 9]), [1, 1, 0], Float64Array.from([4, 0, 0, 0, 1, 0, 0, 0, 9]));
  close(d1, 1 + 4 + (1 + 4 - 4) + (4 + 1 - 4) + 0, 1e-12, 'diagonal');
  // S1 = [[2,1],[1,2]], S2 = diag(1,4) do not commute. For a 2x2 matrix M with positive
  // eigenvalues, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); here tr(S1 S2) = 10, det = 3 * 4.
  const cross = Math.sqrt(10 + 2 * Math.sqrt(12));
  const d2 = frechetDistance([0, 0], Float64Array.from([2, 1, 1, 2]), [0, 0], Float64Array.from([1, 0, 0, 4]));
  close(d2, 4 + 5 - 2 * cross, 1e-12, 'non-commuting');
  // The same Gaussian: 0.
  close(frechetDistance([1, 2], Float64Array.from([2, 1, 1, 2]), [1, 2], Float64Array.from([2, 1, 1, 2])), 0, 1e-12, 'same');
});

// Formula features (the same in the PyTorch script): X[i][j] = sin(1.3 i + 0.7 j) + 0.1 j (30 x 5),
// Y[i][j] = 1.5 cos(0.9 i + 1.1 j) + 0.05 i (25 x 5).
const feats = (n: number, d: number, f: (i: number, j: number) => number): FeatureSet => ({
  dim: d,
  data: Float64Array.from({ length: n * d }, (_, k) => f(Math.floor(k / d), k % d)),
});
const X = feats(30, 5, (i, j) => Math.sin(i * 1.3 + j * 0.7) + 0.1 * j);
const Y = feats(25, 5, (i, j) => Math.cos(i * 0.9 + j * 1.1) * 1.5 + 0.05 * i);

test('FID of feature sets: the PyTorch float64 reference, identical sets give 0, unbiased covariance', () => {
  // torch: ((m1-m2)**2).sum() + tr(S1) + tr(S2) - 2 * eigvalsh(sqrt(S1) S2 sqrt(S1)).sqrt().sum()
  // X's covariance has rank 2 (sin(a + b) splits into two terms): square roots of eigenvalues that
  // are 0 up to rounding (~1e-17) differ by ~1e-9 between any two solvers.
  close(fid(X, Y), 2.8013230633442445, 1e-7, 'fid(X, Y)');
  close(fid(X, Y), fid(Y, X), 1e-9, 'symmetric');
  close(fid(X, X), 0, 1e-9, 'fid(X, X)');
  const { mean, cov } = meanCov({ dim: 2, data: [1, 2, 3, 6] });
  assert.deepEqual([...mean], [2, 4]);
  assert.deepEqual([...cov], [2, 4, 4, 8]);
  assert.throws(() => fid(X, { dim: 4, data: new Float64Array(8) }), /feature widths differ/);
});

test('KID: unbiased MMD^2 with the cubic kernel, analytic and PyTorch values; seeded subsets', () => {
  // d = 1, X = {0, 1}, Y = {1, 2}: k(x, y) = (xy + 1)^3. Off-diagonal k(X,X) = 1 (twice, / 2),
  // k(Y,Y) = 27, mean k(X,Y) = (1 + 1 + 8 + 27) / 4 = 9.25: MMD^2 = 1 + 27 - 18.5 = 9.5.
  const r = kid({ dim: 1, data: [0, 1] }, { dim: 1, data: [1, 2] }, { subsets: 5 });
  close(r.mean, 9.5, 1e-9, 'analytic');
  close(r.std, 0, 1e-9, 'one possible subset');
  // Whole sets of 25 (any subset order gives the same value): the PyTorch reference.
  const x25 = { dim: 5, data: (X.data as Float64Array).subarray(0, 125) };
  close(kid(x25, Y, { subsets: 3 }).mean, 1.6115703232363634, 1e-5, 'torch mmd');
  // Subsets smaller than the sets: seeded, deterministic, and the std says they differ.
  const a = kid(X, Y, { subsetSize: 10, subsets: 20, seed: 1 });
  const b = kid(X, Y, { subsetSize: 10, subsets: 20, seed: 1 });
  const c = kid(X, Y, { subsetSize: 10, subsets: 20, seed: 2 });
  assert.deepEqual(a, b);
  assert.notEqual(a.mean, c.mean);
  assert.ok(a.std > 0);
  assert.equal(a.subsetSize, 10);
  // A set against itself is small next to a different set (not 0: the two "samples" are the same rows).
  assert.ok(Math.abs(kid(X, X).mean) < 0.2 * kid(X, Y).mean);
});

// Formula images (the same in the PyTorch script), 20 wide x 16 high.
function formulaImage(f: (x: number, y: number, c: number) => number, W = 20, H = 16): RgbImage {
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) data[(y * W + x) * 3 + c] = f(x, y, c);
  return { width: W, height: H, data };
}
const base = (x: number, y: number, c: number): number => (x * 7 + y * 13 + c * 29 + x * y) % 256;
const A = formulaImage(base);
const B = formulaImage((x, y, c) => Math.min(255, Math.max(0, base(x, y, c) + ((x * y * 3 + c * 5) % 41) - 20)));

test('SSIM: 1 for identical images; 11x11 Gaussian (sigma 1.5) and 7x7 uniform match PyTorch', () => {
  close(ssim(A, A), 1, 1e-12, 'ssim(A, A)');
  // torch: conv2d with the normalised outer product of exp(-(i-5)^2 / (2 * 1.5^2)), valid, on /255.
  close(ssim(A, B), 0.9817170016345388, 1e-12, 'gaussian');
  close(ssim(A, B), ssim(B, A), 1e-12, 'symmetric');
  // 7x7 uniform with n/(n-1) covariance (scikit-image defaults; mce erase's SSIM).
  close(ssim(A, B, { window: 'uniform', size: 7, sampleCovariance: true }), 0.9845131493403597, 1e-12, 'uniform');
  // Unrelated images score far lower.
  const noise = formulaImage((x, y, c) => (x * 97 + y * 61 + c * 13) * 2654435761 % 251);
  assert.ok(ssim(A, noise) < 0.3, `ssim(A, noise) = ${ssim(A, noise)}`);
  assert.throws(() => ssim(A, formulaImage(base, 16, 16)), /differ in size/);
});

test('feature distance (emoji classifier, LPIPS-style): 0 for the same image, symmetric, grows with change; stage maps end in the features', () => {
  const cfg: ClassifierConfig = { backbone: { size: 16, widths: [8, 16], depths: [1, 1], groups: 4 }, concepts: ['a', 'b'], styles: ['noto', 'fluent', 'twemoji'] };
  const init = initClassifier(cfg, 7);
  const clf = new Classifier(cfg, Object.fromEntries(Object.entries(init).map(([k, v]) => [k, tf.tensor(v.data, v.shape)])));
  const C = formulaImage((x, y, c) => Math.min(255, base(x, y, c) + 3));
  const [same, ab, ba, ac] = featureDistance(clf, [A, A, B, A], [A, B, A, C]);
  close(same!, 0, 1e-6, 'same image');
  close(ab!, ba!, 1e-6, 'symmetric');
  assert.ok(ab! > ac! && ac! > 0, `d(A,B) ${ab} should exceed d(A,C) ${ac} > 0`);
  assert.ok(ab! <= 4);
  const x = imagesToInput([A, B], 16);
  const maps = stageMaps(cfg.backbone, clf.weights, x);
  assert.deepEqual(maps.map((m) => m.shape), [[2, 16, 16, 8], [2, 8, 8, 16]]);
  const pooled = tf.mean(maps[1]!, [1, 2]);
  const feats = clf.features(x);
  assert.ok(tf.max(tf.abs(tf.sub(pooled, feats))).dataSync()[0]! < 1e-5);
  tf.dispose([x, pooled, feats, ...maps]);
  clf.dispose();
});
