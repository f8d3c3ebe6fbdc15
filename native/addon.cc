// N-API bindings (plain C API from node_api.h). Every function takes Float32Arrays (zero-copy:
// they may be views onto the tfjs wasm heap; all calls are synchronous) and integer dims, checks
// every extent against the arrays' lengths, and throws a JS Error on bad arguments.
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <new>
#include <string>

#include "mce.h"

extern "C" char* openblas_get_config(void);

namespace {

struct ArgError {
  std::string msg;
};

[[noreturn]] void fail(const std::string& m) { throw ArgError{m}; }

struct F32 {
  float* data = nullptr;
  int64_t len = 0;
};

class Args {
 public:
  Args(napi_env env, napi_callback_info info) : env_(env), name_("mce_native") {
    argc_ = kMax;
    void* data = nullptr;
    if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, &data) != napi_ok) fail("mce_native: bad call");
    if (data) name_ = static_cast<const char*>(data);
  }

  void expect(size_t n) {
    if (argc_ < n) fail(std::string(name_) + ": expected " + std::to_string(n) + " arguments, got " + std::to_string(argc_));
  }

  F32 f32(size_t i, const char* what) {
    napi_value v = argv_[i];
    bool is = false;
    napi_is_typedarray(env_, v, &is);
    if (!is) fail(std::string(name_) + ": " + what + " must be a Float32Array");
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env_, v, &type, &length, &data, &ab, &off) != napi_ok || type != napi_float32_array)
      fail(std::string(name_) + ": " + what + " must be a Float32Array");
    return F32{static_cast<float*>(data), (int64_t)length};
  }

  bool is_null(size_t i) {
    napi_valuetype t;
    napi_typeof(env_, argv_[i], &t);
    return t == napi_null || t == napi_undefined;
  }

  double num(size_t i, const char* what) {
    double d;
    if (napi_get_value_double(env_, argv_[i], &d) != napi_ok) fail(std::string(name_) + ": " + what + " must be a number");
    return d;
  }

  int64_t i64(size_t i, const char* what, int64_t lo = 0, int64_t hi = INT32_MAX) {
    double d = num(i, what);
    if (!(d == std::floor(d)) || d < (double)lo || d > (double)hi)
      fail(std::string(name_) + ": " + what + " must be an integer in [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "], got " + std::to_string(d));
    return (int64_t)d;
  }

  bool flag(size_t i, const char* what) {
    napi_valuetype t;
    napi_typeof(env_, argv_[i], &t);
    if (t == napi_boolean) {
      bool b;
      napi_get_value_bool(env_, argv_[i], &b);
      return b;
    }
    return num(i, what) != 0.0;
  }

  void need(bool ok, const std::string& m) {
    if (!ok) fail(std::string(name_) + ": " + m);
  }

  void need_len(const F32& a, int64_t n, const char* what) {
    if (a.len < n)
      fail(std::string(name_) + ": " + what + " has " + std::to_string(a.len) + " elements, needs " + std::to_string(n));
  }

  napi_env env() const { return env_; }

 private:
  static const size_t kMax = 24;
  napi_env env_;
  const char* name_;
  size_t argc_;
  napi_value argv_[kMax];
};

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// Check a (possibly batched) row-major matrix operand: logical rows x cols, stored transposed if t.
void check_mat(Args& a, const F32& m, bool t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride,
               const char* what) {
  const int64_t sr = t ? cols : rows, sc = t ? rows : cols;
  a.need(ld >= std::max<int64_t>(1, sc), std::string("leading dimension of ") + what + " too small");
  if (sr == 0 || sc == 0 || batch == 0) return;
  a.need_len(m, (batch - 1) * stride + (sr - 1) * ld + sc, what);
}

// sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
napi_value Sgemm(Args& a) {
  a.expect(13);
  bool ta = a.flag(0, "transA"), tb = a.flag(1, "transB");
  int64_t M = a.i64(2, "M"), N = a.i64(3, "N"), K = a.i64(4, "K");
  float alpha = (float)a.num(5, "alpha");
  F32 A = a.f32(6, "A");
  int64_t lda = a.i64(7, "lda");
  F32 B = a.f32(8, "B");
  int64_t ldb = a.i64(9, "ldb");
  float beta = (float)a.num(10, "beta");
  F32 C = a.f32(11, "C");
  int64_t ldc = a.i64(12, "ldc");
  if (K > 0) {
    check_mat(a, A, ta, M, K, lda, 1, 0, "A");
    check_mat(a, B, tb, K, N, ldb, 1, 0, "B");
  }
  check_mat(a, C, false, M, N, ldc, 1, 0, "C");
  mce::sgemm(ta, tb, (int)M, (int)N, (int)K, alpha, A.data, (int)lda, B.data, (int)ldb, beta, C.data, (int)ldc);
  return undefined(a.env());
}

// sgemmBatched(transA, transB, batch, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC)
napi_value SgemmBatched(Args& a) {
  a.expect(17);
  bool ta = a.flag(0, "transA"), tb = a.flag(1, "transB");
  int64_t batch = a.i64(2, "batch"), M = a.i64(3, "M"), N = a.i64(4, "N"), K = a.i64(5, "K");
  float alpha = (float)a.num(6, "alpha");
  F32 A = a.f32(7, "A");
  int64_t lda = a.i64(8, "lda"), sA = a.i64(9, "strideA", 0, INT64_C(1) << 40);
  F32 B = a.f32(10, "B");
  int64_t ldb = a.i64(11, "ldb"), sB = a.i64(12, "strideB", 0, INT64_C(1) << 40);
  float beta = (float)a.num(13, "beta");
  F32 C = a.f32(14, "C");
  int64_t ldc = a.i64(15, "ldc"), sC = a.i64(16, "strideC", 0, INT64_C(1) << 40);
  if (K > 0) {
    check_mat(a, A, ta, M, K, lda, batch, sA, "A");
    check_mat(a, B, tb, K, N, ldb, batch, sB, "B");
  }
  check_mat(a, C, false, M, N, ldc, batch, sC, "C");
  a.need(batch <= 1 || M == 0 || N == 0 || sC >= M * ldc, "strideC must not overlap output matrices");
  mce::sgemm_batched(ta, tb, (int)batch, (int)M, (int)N, (int)K, alpha, A.data, (int)lda, sA, B.data, (int)ldb, sB,
                     beta, C.data, (int)ldc, sC);
  return undefined(a.env());
}

// biasAct(y, bias | null, rows, n, act)
napi_value BiasAct(Args& a) {
  a.expect(5);
  F32 y = a.f32(0, "y");
  F32 bias;
  bool hasBias = !a.is_null(1);
  if (hasBias) bias = a.f32(1, "bias");
  int64_t rows = a.i64(2, "rows", 0, INT64_C(1) << 40), n = a.i64(3, "n"), act = a.i64(4, "act", 0, 1);
  a.need_len(y, rows * n, "y");
  int64_t biasLen = hasBias ? bias.len : 0;
  a.need(biasLen == 0 || biasLen == 1 || biasLen == n, "bias must have 1 or n elements");
  mce::bias_act(y.data, bias.data, rows, n, biasLen, (int)act);
  return undefined(a.env());
}

// conv2d*(p, q, out, N, H, W, C, KH, KW, OC, OH, OW, SH, SW, PT, PL)
enum class ConvKind { Forward, BackpropInput, BackpropFilter };

template <ConvKind kind>
napi_value Conv(Args& a) {
  a.expect(16);
  F32 p = a.f32(0, "arg0"), q = a.f32(1, "arg1"), out = a.f32(2, "out");
  mce::ConvGeom g;
  const char* names[] = {"N", "H", "W", "C", "KH", "KW", "OC", "OH", "OW", "SH", "SW", "PT", "PL"};
  int64_t* f[] = {&g.N, &g.H, &g.W, &g.C, &g.KH, &g.KW, &g.OC, &g.OH, &g.OW, &g.SH, &g.SW, &g.PT, &g.PL};
  for (int i = 0; i < 13; i++) *f[i] = a.i64(3 + i, names[i]);
  // im2col / col2im test every input coordinate against [0, H) x [0, W), so any padding is memory-safe.
  a.need(g.SH >= 1 && g.SW >= 1 && g.KH >= 1 && g.KW >= 1, "strides and filter sizes must be >= 1");
  a.need(g.PT >= 0 && g.PL >= 0 && g.PT < INT32_MAX && g.PL < INT32_MAX, "pads must be >= 0");
  const int64_t xs = g.N * g.H * g.W * g.C, ws = g.KH * g.KW * g.C * g.OC, ys = g.N * g.OH * g.OW * g.OC;
  if (kind == ConvKind::Forward) {
    a.need_len(p, xs, "x");
    a.need_len(q, ws, "filter");
    a.need_len(out, ys, "y");
    mce::conv2d(g, p.data, q.data, out.data);
  } else if (kind == ConvKind::BackpropInput) {
    a.need_len(p, ys, "dy");
    a.need_len(q, ws, "filter");
    a.need_len(out, xs, "dx");
    mce::conv2d_backprop_input(g, p.data, q.data, out.data);
  } else {
    a.need_len(p, xs, "x");
    a.need_len(q, ys, "dy");
    a.need_len(out, ws, "dfilter");
    mce::conv2d_backprop_filter(g, p.data, q.data, out.data);
  }
  return undefined(a.env());
}

// Elementwise: f(x, y) and g(dy, x, dx).
template <void (*Fn)(const float*, float*, int64_t)>
napi_value Unary(Args& a) {
  a.expect(2);
  F32 x = a.f32(0, "x"), y = a.f32(1, "y");
  a.need(y.len == x.len, "x and y must have the same length");
  Fn(x.data, y.data, x.len);
  return undefined(a.env());
}

template <void (*Fn)(const float*, const float*, float*, int64_t)>
napi_value UnaryGrad(Args& a) {
  a.expect(3);
  F32 dy = a.f32(0, "dy"), x = a.f32(1, "x"), dx = a.f32(2, "dx");
  a.need(dy.len == x.len && dx.len == x.len, "dy, x and dx must have the same length");
  Fn(dy.data, x.data, dx.data, x.len);
  return undefined(a.env());
}

int64_t rows_of(Args& a, const F32& x, int64_t d) {
  a.need(d >= 1, "row length must be >= 1");
  a.need(x.len % d == 0, "array length must be a multiple of the row length");
  return x.len / d;
}

// geglu(x, y, h): x [rows, 2h], y [rows, h]
napi_value Geglu(Args& a) {
  a.expect(3);
  F32 x = a.f32(0, "x"), y = a.f32(1, "y");
  int64_t h = a.i64(2, "h");
  const int64_t rows = rows_of(a, x, 2 * h);
  a.need(y.len == rows * h, "y must have half the elements of x");
  mce::geglu(x.data, y.data, rows, h);
  return undefined(a.env());
}

// gegluGrad(dy, x, dx, h): dy [rows, h], x and dx [rows, 2h]
napi_value GegluGrad(Args& a) {
  a.expect(4);
  F32 dy = a.f32(0, "dy"), x = a.f32(1, "x"), dx = a.f32(2, "dx");
  int64_t h = a.i64(3, "h");
  const int64_t rows = rows_of(a, x, 2 * h);
  a.need(dy.len == rows * h, "dy must have half the elements of x");
  a.need(dx.len == x.len, "x and dx must have the same length");
  mce::geglu_grad(dy.data, x.data, dx.data, rows, h);
  return undefined(a.env());
}

// attention(q, k, v, o, B, L, S, H, D) and attentionGrad(do, q, k, v, dq, dk, dv, B, L, S, H, D):
// q, o, do, dq [B, L, H*D]; k, v, dk, dv [B, S, H*D].
void check_attention(Args& a, int first, const F32& q, const F32& k, int64_t* g) {
  const char* names[] = {"B", "L", "S", "H", "D"};
  for (int i = 0; i < 5; i++) g[i] = a.i64(first + i, names[i]);
  a.need(g[1] >= 1 && g[2] >= 1 && g[3] >= 1 && g[4] >= 1, "L, S, H and D must be >= 1");
  a.need(q.len == g[0] * g[1] * g[3] * g[4], "q must have B*L*H*D elements");
  a.need(k.len == g[0] * g[2] * g[3] * g[4], "k must have B*S*H*D elements");
}

napi_value Attention(Args& a) {
  a.expect(9);
  F32 q = a.f32(0, "q"), k = a.f32(1, "k"), v = a.f32(2, "v"), o = a.f32(3, "o");
  int64_t g[5];
  check_attention(a, 4, q, k, g);
  a.need(v.len == k.len, "k and v must have the same length");
  a.need(o.len == q.len, "q and o must have the same length");
  mce::attention(q.data, k.data, v.data, o.data, g[0], g[1], g[2], g[3], g[4]);
  return undefined(a.env());
}

napi_value AttentionGrad(Args& a) {
  a.expect(12);
  F32 dout = a.f32(0, "do"), q = a.f32(1, "q"), k = a.f32(2, "k"), v = a.f32(3, "v");
  F32 dq = a.f32(4, "dq"), dk = a.f32(5, "dk"), dv = a.f32(6, "dv");
  int64_t g[5];
  check_attention(a, 7, q, k, g);
  a.need(v.len == k.len && dk.len == k.len && dv.len == k.len, "k, v, dk and dv must have the same length");
  a.need(dout.len == q.len && dq.len == q.len, "q, do and dq must have the same length");
  mce::attention_grad(dout.data, q.data, k.data, v.data, dq.data, dk.data, dv.data, g[0], g[1], g[2], g[3], g[4]);
  return undefined(a.env());
}

// layerNorm(x, y, d, eps)
napi_value LayerNorm(Args& a) {
  a.expect(4);
  F32 x = a.f32(0, "x"), y = a.f32(1, "y");
  int64_t d = a.i64(2, "d");
  float eps = (float)a.num(3, "eps");
  a.need(y.len == x.len, "x and y must have the same length");
  mce::layer_norm(x.data, y.data, rows_of(a, x, d), d, eps);
  return undefined(a.env());
}

// layerNormGrad(dy, x, dx, d, eps)
napi_value LayerNormGrad(Args& a) {
  a.expect(5);
  F32 dy = a.f32(0, "dy"), x = a.f32(1, "x"), dx = a.f32(2, "dx");
  int64_t d = a.i64(3, "d");
  float eps = (float)a.num(4, "eps");
  a.need(dy.len == x.len && dx.len == x.len, "dy, x and dx must have the same length");
  mce::layer_norm_grad(dy.data, x.data, dx.data, rows_of(a, x, d), d, eps);
  return undefined(a.env());
}

// rmsNorm(x, scale, y, d, eps)
napi_value RmsNorm(Args& a) {
  a.expect(5);
  F32 x = a.f32(0, "x"), s = a.f32(1, "scale"), y = a.f32(2, "y");
  int64_t d = a.i64(3, "d");
  float eps = (float)a.num(4, "eps");
  a.need(y.len == x.len, "x and y must have the same length");
  a.need(s.len == d, "scale must have d elements");
  mce::rms_norm(x.data, s.data, y.data, rows_of(a, x, d), d, eps);
  return undefined(a.env());
}

// rmsNormGrad(dy, x, scale, dx, dscale, d, eps)
napi_value RmsNormGrad(Args& a) {
  a.expect(7);
  F32 dy = a.f32(0, "dy"), x = a.f32(1, "x"), s = a.f32(2, "scale"), dx = a.f32(3, "dx"), ds = a.f32(4, "dscale");
  int64_t d = a.i64(5, "d");
  float eps = (float)a.num(6, "eps");
  a.need(dy.len == x.len && dx.len == x.len, "dy, x and dx must have the same length");
  a.need(s.len == d && ds.len == d, "scale and dscale must have d elements");
  mce::rms_norm_grad(dy.data, x.data, s.data, dx.data, ds.data, rows_of(a, x, d), d, eps);
  return undefined(a.env());
}

// groupNorm(x, weight, bias, y, B, C, G, eps): x and y [B, S, C] (S from the length)
napi_value GroupNorm(Args& a) {
  a.expect(8);
  F32 x = a.f32(0, "x"), w = a.f32(1, "weight"), b = a.f32(2, "bias"), y = a.f32(3, "y");
  int64_t B = a.i64(4, "B", 1), C = a.i64(5, "C", 1), G = a.i64(6, "G", 1);
  float eps = (float)a.num(7, "eps");
  a.need(C % G == 0, "C must be a multiple of G");
  a.need(w.len == C && b.len == C, "weight and bias must have C elements");
  a.need(x.len % (B * C) == 0 && y.len == x.len, "x and y must have the same length, a multiple of B * C");
  mce::group_norm(x.data, w.data, b.data, y.data, B, x.len / (B * C), C, G, eps);
  return undefined(a.env());
}

// groupNormGrad(dy, x, weight, dx, dweight, dbias, B, C, G, eps)
napi_value GroupNormGrad(Args& a) {
  a.expect(10);
  F32 dy = a.f32(0, "dy"), x = a.f32(1, "x"), w = a.f32(2, "weight"), dx = a.f32(3, "dx");
  F32 dw = a.f32(4, "dweight"), db = a.f32(5, "dbias");
  int64_t B = a.i64(6, "B", 1), C = a.i64(7, "C", 1), G = a.i64(8, "G", 1);
  float eps = (float)a.num(9, "eps");
  a.need(C % G == 0, "C must be a multiple of G");
  a.need(w.len == C && dw.len == C && db.len == C, "weight, dweight and dbias must have C elements");
  a.need(x.len % (B * C) == 0 && dy.len == x.len && dx.len == x.len, "dy, x and dx must have the same length, a multiple of B * C");
  mce::group_norm_grad(dy.data, x.data, w.data, dx.data, dw.data, db.data, B, x.len / (B * C), C, G, eps);
  return undefined(a.env());
}

// softmax(x, y, d)
napi_value Softmax(Args& a) {
  a.expect(3);
  F32 x = a.f32(0, "x"), y = a.f32(1, "y");
  int64_t d = a.i64(2, "d");
  a.need(y.len == x.len, "x and y must have the same length");
  mce::softmax(x.data, y.data, rows_of(a, x, d), d);
  return undefined(a.env());
}

// softmaxGrad(dy, y, dx, d)
napi_value SoftmaxGrad(Args& a) {
  a.expect(4);
  F32 dy = a.f32(0, "dy"), y = a.f32(1, "y"), dx = a.f32(2, "dx");
  int64_t d = a.i64(3, "d");
  a.need(dy.len == y.len && dx.len == y.len, "dy, y and dx must have the same length");
  mce::softmax_grad(dy.data, y.data, dx.data, rows_of(a, y, d), d);
  return undefined(a.env());
}

void check_mod(Args& a, const F32& x, int64_t B, int64_t d, int64_t ss, int64_t hs, const F32& scale,
               const F32& shift, int64_t* T) {
  a.need(B >= 1 && d >= 1, "B and d must be >= 1");
  a.need(x.len % (B * d) == 0, "x length must be a multiple of B * d");
  a.need(ss == 0 || ss == d, "scale stride must be 0 or d");
  a.need(hs == 0 || hs == d, "shift stride must be 0 or d");
  a.need(scale.len == (ss ? B * d : d), "scale must have B*d (stride d) or d (stride 0) elements");
  a.need(shift.len == (hs ? B * d : d), "shift must have B*d (stride d) or d (stride 0) elements");
  *T = x.len / (B * d);
}

// modulate(x, scale, shift, y, B, d, scaleStride, shiftStride)
napi_value Modulate(Args& a) {
  a.expect(8);
  F32 x = a.f32(0, "x"), sc = a.f32(1, "scale"), sh = a.f32(2, "shift"), y = a.f32(3, "y");
  int64_t B = a.i64(4, "B"), d = a.i64(5, "d"), ss = a.i64(6, "scaleStride"), hs = a.i64(7, "shiftStride");
  int64_t T;
  check_mod(a, x, B, d, ss, hs, sc, sh, &T);
  a.need(y.len == x.len, "x and y must have the same length");
  mce::modulate(x.data, sc.data, sh.data, y.data, B, T, d, ss, hs);
  return undefined(a.env());
}

// modulateGrad(dy, x, scale, dx, dscale, dshift, B, d, scaleStride, shiftStride)
napi_value ModulateGrad(Args& a) {
  a.expect(10);
  F32 dy = a.f32(0, "dy"), x = a.f32(1, "x"), sc = a.f32(2, "scale"), dx = a.f32(3, "dx"), ds = a.f32(4, "dscale"),
      dh = a.f32(5, "dshift");
  int64_t B = a.i64(6, "B"), d = a.i64(7, "d"), ss = a.i64(8, "scaleStride"), hs = a.i64(9, "shiftStride");
  int64_t T;
  check_mod(a, x, B, d, ss, hs, sc, dh, &T);
  a.need(ds.len == sc.len, "dscale must have as many elements as scale");
  a.need(dy.len == x.len && dx.len == x.len, "dy, x and dx must have the same length");
  mce::modulate_grad(dy.data, x.data, sc.data, dx.data, ds.data, dh.data, B, T, d, ss, hs);
  return undefined(a.env());
}

napi_value SetThreads(Args& a) {
  a.expect(1);
  mce::set_threads((int)a.i64(0, "threads", 1, 256));
  return undefined(a.env());
}

// _setColLimit(floats) -> previous: the im2col chunk size (testing hook).
napi_value SetColLimit(Args& a) {
  a.expect(1);
  napi_value v;
  napi_create_double(a.env(), (double)mce::set_col_limit(a.i64(0, "floats", 1, INT64_C(1) << 40)), &v);
  return v;
}

// _setOneThreadMnk(mnk) -> previous: products with M*N*K below it run on one BLAS thread (testing hook).
napi_value SetOneThreadMnk(Args& a) {
  a.expect(1);
  napi_value v;
  napi_create_double(a.env(), (double)mce::set_one_thread_mnk(a.i64(0, "mnk", 0, INT64_C(1) << 50)), &v);
  return v;
}

napi_value GetThreads(Args& a) {
  napi_value v;
  napi_create_int32(a.env(), mce::get_threads(), &v);
  return v;
}

napi_value Info(Args& a) {
  napi_value v;
  const char* cfg = openblas_get_config();
  std::string s = cfg ? cfg : "OpenBLAS (unknown config)";
  napi_create_string_utf8(a.env(), s.c_str(), s.size(), &v);
  return v;
}

typedef napi_value (*Impl)(Args&);

template <Impl F>
napi_value entry(napi_env env, napi_callback_info info) {
  try {
    Args a(env, info);
    return F(a);
  } catch (const ArgError& e) {
    napi_throw_error(env, "ERR_MCE_NATIVE", e.msg.c_str());
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, "ERR_MCE_NATIVE", "mce_native: out of memory");
  } catch (...) {
    napi_throw_error(env, "ERR_MCE_NATIVE", "mce_native: internal error");
  }
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  struct Fn {
    const char* name;
    napi_callback cb;
  };
  static const Fn fns[] = {
      {"sgemm", entry<Sgemm>},
      {"sgemmBatched", entry<SgemmBatched>},
      {"biasAct", entry<BiasAct>},
      {"conv2d", entry<Conv<ConvKind::Forward>>},
      {"conv2dBackpropInput", entry<Conv<ConvKind::BackpropInput>>},
      {"conv2dBackpropFilter", entry<Conv<ConvKind::BackpropFilter>>},
      {"gelu", entry<Unary<mce::gelu>>},
      {"geluGrad", entry<UnaryGrad<mce::gelu_grad>>},
      {"geglu", entry<Geglu>},
      {"gegluGrad", entry<GegluGrad>},
      {"attention", entry<Attention>},
      {"attentionGrad", entry<AttentionGrad>},
      {"silu", entry<Unary<mce::silu>>},
      {"siluGrad", entry<UnaryGrad<mce::silu_grad>>},
      {"layerNorm", entry<LayerNorm>},
      {"layerNormGrad", entry<LayerNormGrad>},
      {"rmsNorm", entry<RmsNorm>},
      {"rmsNormGrad", entry<RmsNormGrad>},
      {"groupNorm", entry<GroupNorm>},
      {"groupNormGrad", entry<GroupNormGrad>},
      {"softmax", entry<Softmax>},
      {"softmaxGrad", entry<SoftmaxGrad>},
      {"modulate", entry<Modulate>},
      {"modulateGrad", entry<ModulateGrad>},
      {"setThreads", entry<SetThreads>},
      {"getThreads", entry<GetThreads>},
      {"_setColLimit", entry<SetColLimit>},
      {"_setOneThreadMnk", entry<SetOneThreadMnk>},
      {"info", entry<Info>},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    void* name = const_cast<char*>(f.name);
    if (napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, name, &fn) != napi_ok) return nullptr;
    if (napi_set_named_property(env, exports, f.name, fn) != napi_ok) return nullptr;
  }
  return exports;
}
