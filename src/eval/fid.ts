// Fréchet distance between two feature sets, each taken as a Gaussian (mean, covariance):
//   FID = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).
// tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of the symmetric PSD matrix
// S_a^(1/2) S_b S_a^(1/2) (same eigenvalues as S_a S_b), so two symmetric eigensolves in float64
// give it without the complex matrix square root scipy's sqrtm needs. With mce's evaluators the
// features are the emoji classifier's: the metric is "FID (emoji classifier features)".
import { matMul, meanCov, psdValues, sqrtPsd, symmetricEigen, type FeatureSet } from './linalg.js';

/** Fréchet distance of two Gaussians given by their means and covariances (d x d, row-major). */
export function frechetDistance(muA: ArrayLike<number>, covA: Float64Array, muB: ArrayLike<number>, covB: Float64Array): number {
  const d = muA.length;
  if (muB.length !== d || covA.length !== d * d || covB.length !== d * d) throw new Error('frechetDistance: sizes differ');
  let diff = 0;
  let trace = 0;
  for (let i = 0; i < d; i++) {
    diff += (muA[i]! - muB[i]!) ** 2;
    trace += covA[i * d + i]! + covB[i * d + i]!;
  }
  const rootA = sqrtPsd(covA, d);
  const m = matMul(matMul(rootA, covB, d), rootA, d);
  // Symmetrise what rounding left uneven before the symmetric solver sees it.
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) m[i * d + j] = m[j * d + i] = (m[i * d + j]! + m[j * d + i]!) / 2;
  let cross = 0;
  for (const v of psdValues(symmetricEigen(m, d).values)) cross += Math.sqrt(v);
  // A tiny negative result is rounding of identical statistics.
  return Math.max(diff + trace - 2 * cross, 0);
}

/** FID between two feature sets (each needs at least 2 rows). */
export function fid(a: FeatureSet, b: FeatureSet): number {
  if (a.dim !== b.dim) throw new Error(`fid: feature widths differ (${a.dim} vs ${b.dim})`);
  const sa = meanCov(a);
  const sb = meanCov(b);
  return frechetDistance(sa.mean, sa.cov, sb.mean, sb.cov);
}
