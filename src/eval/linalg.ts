// Small dense float64 linear algebra for the metrics: feature statistics and a symmetric
// eigensolver. Matrices are row-major Float64Arrays of n x n. Kept in float64 on the host because
// FID subtracts traces of nearly equal size, which float32 would round away.

/** A set of feature vectors: n rows of `dim` values, row-major. */
export interface FeatureSet {
  dim: number;
  data: ArrayLike<number>;
}

export function rows(f: FeatureSet): number {
  if (f.dim < 1 || f.data.length % f.dim !== 0) throw new Error(`features: ${f.data.length} values are not rows of ${f.dim}`);
  return f.data.length / f.dim;
}

/** Mean vector and unbiased (n - 1) covariance of a feature set. */
export function meanCov(f: FeatureSet): { mean: Float64Array; cov: Float64Array } {
  const n = rows(f);
  const d = f.dim;
  if (n < 2) throw new Error(`features: need at least 2 rows for a covariance, got ${n}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += f.data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) c[j] = f.data[i * d + j]! - mean[j]!;
    for (let a = 0; a < d; a++) {
      const ca = c[a]!;
      if (ca === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b]! += ca * c[b]!;
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b]! / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  return { mean, cov };
}

/** C = A B for n x n matrices. */
export function matMul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) c[i * n + j]! += aik * b[k * n + j]!;
    }
  }
  return c;
}

/**
 * Eigenvalues and eigenvectors of a symmetric n x n matrix by cyclic Jacobi rotations (the input is
 * not changed). vectors is row-major with eigenvector k in column k: A = V diag(values) V^T.
 */
export function symmetricEigen(a: Float64Array, n: number, opts: { tol?: number; maxSweeps?: number } = {}): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  const tol = opts.tol ?? 1e-14;
  const maxSweeps = opts.maxSweeps ?? 100;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += A[i]! * A[i]!;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q]! * A[p * n + q]!;
    if (off <= tol * tol * scale || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q]!;
        if (apq === 0) continue;
        const app = A[p * n + p]!;
        const aqq = A[q * n + q]!;
        // The rotation angle that zeroes A[p][q] (Golub & Van Loan, sym.schur2).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p]!;
          const akq = A[k * n + q]!;
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k]!;
          const aqk = A[q * n + k]!;
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p]!;
          const vkq = V[k * n + q]!;
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = A[i * n + i]!;
  return { values, vectors: V };
}

/**
 * Eigenvalues that are 0 up to rounding, set to 0: below n * 1e-15 of the largest. A rank-deficient
 * covariance (fewer samples than features) has many; their square roots would add noise ~1e-8.
 */
export function psdValues(values: Float64Array): Float64Array {
  const top = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const floor = top * values.length * 1e-15;
  return values.map((v) => (v > floor ? v : 0));
}

/** The PSD square root of a symmetric PSD matrix (eigenvalues 0 up to rounding count as 0). */
export function sqrtPsd(a: Float64Array, n: number): Float64Array {
  const { values: raw, vectors: V } = symmetricEigen(a, n);
  const values = psdValues(raw);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt(values[k]!);
    if (s === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = V[i * n + k]! * s;
      if (vik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += vik * V[j * n + k]!;
    }
  }
  return out;
}
