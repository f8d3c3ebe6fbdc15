// UCE's closed-form edit of one linear map (Gandikota et al., WACV 2024, train_erase.py): the W'
// that minimises
//
//   lambda ||W' - W||^2 + e sum_i ||W' c_i - v_i||^2 + p sum_j ||W' c_j - W c_j||^2
//
// (c_i erase inputs mapped to targets v_i, c_j preserve inputs kept where W sends them), i.e.
//
//   W' = (lambda W + e sum v_i c_i^T + p sum W c_j c_j^T) (lambda I + e sum c_i c_i^T + p sum c_j c_j^T)^-1
//
// Sums and the solve are float64 (Cholesky: the right factor is symmetric positive definite).

/** Rows of vectors: n rows of `dim` numbers, row-major. */
export interface Rows {
  data: Float32Array | Float64Array;
  n: number;
  dim: number;
}

export interface ClosedFormScales {
  lambda: number;
  eraseScale: number;
  preserveScale: number;
}

/** Add s * sum_r a_r b_r^T (a: rows of dim da, b: rows of dim db) to out [da x db]. */
function addOuter(out: Float64Array, a: Rows, b: Rows, s: number): void {
  const da = a.dim;
  const db = b.dim;
  for (let r = 0; r < a.n; r++) {
    const ao = r * da;
    const bo = r * db;
    for (let i = 0; i < da; i++) {
      const ai = s * a.data[ao + i]!;
      if (ai === 0) continue;
      const oi = i * db;
      for (let j = 0; j < db; j++) out[oi + j]! += ai * b.data[bo + j]!;
    }
  }
}

/** W applied to every row: rows of dim `out`. */
export function applyRows(w: Float32Array | Float64Array, out: number, x: Rows): Rows {
  const d = x.dim;
  const data = new Float64Array(x.n * out);
  for (let r = 0; r < x.n; r++) {
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += w[o * d + i]! * x.data[r * d + i]!;
      data[r * out + o] = s;
    }
  }
  return { data, n: x.n, dim: out };
}

/** Cholesky factor L (lower) of a symmetric positive definite n x n matrix. */
function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      if (i === j) {
        if (!(s > 0)) throw new Error('UCE: the normal matrix is not positive definite (lambda must be > 0)');
        l[i * n + i] = Math.sqrt(s);
      } else {
        l[i * n + j] = s / l[j * n + j]!;
      }
    }
  }
  return l;
}

/**
 * The UCE update of W [out x dim] (row-major, torch's Linear layout): erase inputs mapped to their
 * targets, preserve inputs kept. Returns W' [out x dim] as float32.
 */
export function uceClosedForm(w: Float32Array, out: number, erase: { inputs: Rows; targets: Rows }, preserve: Rows, s: ClosedFormScales): Float32Array {
  const d = erase.inputs.dim;
  if (w.length !== out * d) throw new Error(`UCE: W has ${w.length} numbers, expected ${out} x ${d}`);
  if (erase.targets.n !== erase.inputs.n || erase.targets.dim !== out) throw new Error('UCE: erase targets do not match the inputs');
  if (preserve.n > 0 && preserve.dim !== d) throw new Error('UCE: preserve inputs have another width');
  // A = lambda W + e sum v c^T + p sum (W c) c^T  [out x d];  M = lambda I + e sum c c^T + p sum c c^T  [d x d]
  const a = new Float64Array(out * d);
  for (let i = 0; i < a.length; i++) a[i] = s.lambda * w[i]!;
  addOuter(a, erase.targets, erase.inputs, s.eraseScale);
  if (preserve.n > 0) addOuter(a, applyRows(w, out, preserve), preserve, s.preserveScale);
  const m = new Float64Array(d * d);
  for (let i = 0; i < d; i++) m[i * d + i] = s.lambda;
  addOuter(m, erase.inputs, erase.inputs, s.eraseScale);
  if (preserve.n > 0) addOuter(m, preserve, preserve, s.preserveScale);
  // W' M = A  <=>  M W'^T = A^T (M symmetric): solve per output row with the Cholesky factor.
  const l = cholesky(m, d);
  const res = new Float32Array(out * d);
  const z = new Float64Array(d);
  const x = new Float64Array(d);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < d; i++) {
      let v = a[o * d + i]!;
      for (let k = 0; k < i; k++) v -= l[i * d + k]! * z[k]!;
      z[i] = v / l[i * d + i]!;
    }
    for (let i = d - 1; i >= 0; i--) {
      let v = z[i]!;
      for (let k = i + 1; k < d; k++) v -= l[k * d + i]! * x[k]!;
      x[i] = v / l[i * d + i]!;
    }
    for (let i = 0; i < d; i++) res[o * d + i] = x[i]!;
  }
  return res;
}
