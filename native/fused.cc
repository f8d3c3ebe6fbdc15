// Fused elementwise and row kernels: GELU (tanh), GEGLU (erf), SiLU, LayerNorm (no affine), RMSNorm (scale),
// softmax, AdaLN modulate; forward and backward. Split over the pool by contiguous ranges of
// elements / rows; reductions across rows use one partial buffer per chunk, summed in chunk
// order, so results are deterministic for a given thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "mce.h"
#include "pool.h"
#include "vecmath.h"

namespace mce {

// Below this many elements a kernel runs on the calling thread alone.
static const int64_t kGrain = 32768;

static inline int64_t row_grain(int64_t d) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, d)); }

static const float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
static const float kGeluC = 0.044715f;

// 0.5 * (1 + tanh(u)) == sigmoid(2u): one exp and one division, and no cancellation for x << 0.
void gelu(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      const float v = x[i];
      const float u = kGeluK * (v + kGeluC * v * v * v);
      y[i] = v * (1.0f / (1.0f + exp_f(-2.0f * u)));  // (a reciprocal folds when exp_f clamps)
    }
  });
}

// d/dx [x * s(2u)] = s + x * 2 s (1 - s) u', with s = sigmoid(2u) and 1 - tanh(u)^2 = 4 s (1 - s).
void gelu_grad(const float* dy, const float* x, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      const float v = x[i], v2 = v * v;
      const float u = kGeluK * (v + kGeluC * v2 * v);
      const float s = 1.0f / (1.0f + exp_f(-2.0f * u));
      const float du = kGeluK * (1.0f + 3.0f * kGeluC * v2);
      dx[i] = dy[i] * (s + 2.0f * v * s * (1.0f - s) * du);
    }
  });
}

// GEGLU (diffusers' FeedForward): x is [rows, 2h], the hidden half then the gate half;
// y[r, j] = x[r, j] * gelu(x[r, h + j]) with the exact (erf) GELU g * Phi(g), as torch F.gelu.
void geglu(const float* x, float* y, int64_t rows, int64_t h) {
  parallel_for(rows, row_grain(h), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* a = x + r * 2 * h;
      const float* g = a + h;
      float* yr = y + r * h;
      for (int64_t j = 0; j < h; j++) {
        float cdf, pdf;
        normal_cdf_pdf(g[j], &cdf, &pdf);
        yr[j] = a[j] * g[j] * cdf;
      }
    }
  });
}

// d hidden = dy * gelu(g); d gate = dy * hidden * (Phi(g) + g phi(g)).
void geglu_grad(const float* dy, const float* x, float* dx, int64_t rows, int64_t h) {
  parallel_for(rows, row_grain(h), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* a = x + r * 2 * h;
      const float* g = a + h;
      const float* d = dy + r * h;
      float* da = dx + r * 2 * h;
      float* dg = da + h;
      for (int64_t j = 0; j < h; j++) {
        float cdf, pdf;
        normal_cdf_pdf(g[j], &cdf, &pdf);
        da[j] = d[j] * g[j] * cdf;
        dg[j] = d[j] * a[j] * (cdf + g[j] * pdf);
      }
    }
  });
}

void silu(const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) y[i] = x[i] * sigmoid_f(x[i]);
  });
}

void silu_grad(const float* dy, const float* x, float* dx, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      const float s = sigmoid_f(x[i]);
      dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
  });
}

// Row statistics: mean and 1/sqrt(var + eps), var the biased variance (two passes).
static inline void ln_stats(const float* x, int64_t d, float eps, float* mean, float* rstd) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < d; j++) s += x[j];
  const float m = s / (float)d;
  float v = 0.0f;
#pragma omp simd reduction(+ : v)
  for (int64_t j = 0; j < d; j++) v += (x[j] - m) * (x[j] - m);
  *mean = m;
  *rstd = 1.0f / std::sqrt(v / (float)d + eps);
}

void layer_norm(const float* x, float* y, int64_t rows, int64_t d, float eps) {
  parallel_for(rows, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      float m, rs;
      ln_stats(xr, d, eps, &m, &rs);
      for (int64_t j = 0; j < d; j++) yr[j] = (xr[j] - m) * rs;
    }
  });
}

void layer_norm_grad(const float* dy, const float* x, float* dx, int64_t rows, int64_t d, float eps) {
  parallel_for(rows, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * d;
      const float* gr = dy + r * d;
      float* dr = dx + r * d;
      float m, rs;
      ln_stats(xr, d, eps, &m, &rs);
      float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
      for (int64_t j = 0; j < d; j++) {
        sg += gr[j];
        sgx += gr[j] * (xr[j] - m);
      }
      const float a = sg / (float)d, b = sgx * rs / (float)d;
      for (int64_t j = 0; j < d; j++) dr[j] = rs * (gr[j] - a - (xr[j] - m) * rs * b);
    }
  });
}

static inline float rms_rstd(const float* x, int64_t d, float eps) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < d; j++) s += x[j] * x[j];
  return 1.0f / std::sqrt(s / (float)d + eps);
}

void rms_norm(const float* x, const float* scale, float* y, int64_t rows, int64_t d, float eps) {
  parallel_for(rows, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      const float rs = rms_rstd(xr, d, eps);
      for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * rs * scale[j];
    }
  });
}

void rms_norm_grad(const float* dy, const float* x, const float* scale, float* dx, float* dscale, int64_t rows,
                   int64_t d, float eps) {
  const int chunks = parallel_chunks(rows, row_grain(d));
  std::vector<float> part((size_t)chunks * d, 0.0f);
  parallel_for_chunks(rows, chunks, [&](int c, int64_t r0, int64_t r1) {
    float* ds = part.data() + (size_t)c * d;
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * d;
      const float* gr = dy + r * d;
      float* dr = dx + r * d;
      const float rs = rms_rstd(xr, d, eps);
      float sgx = 0.0f;
#pragma omp simd reduction(+ : sgx)
      for (int64_t j = 0; j < d; j++) sgx += gr[j] * scale[j] * xr[j];
      const float k = rs * rs * sgx / (float)d;
      for (int64_t j = 0; j < d; j++) {
        dr[j] = rs * (gr[j] * scale[j] - xr[j] * k);
        ds[j] += gr[j] * xr[j] * rs;
      }
    }
  });
  std::memcpy(dscale, part.data(), sizeof(float) * d);
  for (int c = 1; c < chunks; c++)
    for (int64_t j = 0; j < d; j++) dscale[j] += part[(size_t)c * d + j];
}

void softmax(const float* x, float* y, int64_t rows, int64_t d) {
  parallel_for(rows, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      float m = -INFINITY;
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < d; j++) m = std::max(m, xr[j]);
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < d; j++) {
        const float e = exp_f(xr[j] - m);
        yr[j] = e;
        s += e;
      }
      const float inv = 1.0f / s;
      for (int64_t j = 0; j < d; j++) yr[j] *= inv;
    }
  });
}

void softmax_grad(const float* dy, const float* y, float* dx, int64_t rows, int64_t d) {
  parallel_for(rows, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y + r * d;
      const float* gr = dy + r * d;
      float* dr = dx + r * d;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < d; j++) s += gr[j] * yr[j];
      for (int64_t j = 0; j < d; j++) dr[j] = yr[j] * (gr[j] - s);
    }
  });
}

void modulate(const float* x, const float* scale, const float* shift, float* y, int64_t B, int64_t T, int64_t d,
              int64_t ss, int64_t hs) {
  parallel_for(B * T, row_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / T;
      const float* xr = x + r * d;
      const float* sc = scale + b * ss;
      const float* sh = shift + b * hs;
      float* yr = y + r * d;
      for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * (1.0f + sc[j]) + sh[j];
    }
  });
}

void modulate_grad(const float* dy, const float* x, const float* scale, float* dx, float* dscale, float* dshift,
                   int64_t B, int64_t T, int64_t d, int64_t ss, int64_t hs) {
  const int64_t rows = B * T;
  const int64_t nS = ss ? B * d : d, nH = hs ? B * d : d;
  const int chunks = parallel_chunks(rows, row_grain(d));
  std::vector<float> part((size_t)chunks * (nS + nH), 0.0f);
  parallel_for_chunks(rows, chunks, [&](int c, int64_t r0, int64_t r1) {
    float* ps = part.data() + (size_t)c * (nS + nH);
    float* ph = ps + nS;
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / T;
      const float* xr = x + r * d;
      const float* gr = dy + r * d;
      const float* sc = scale + b * ss;
      float* dr = dx + r * d;
      float* ds = ps + b * ss;
      float* dh = ph + b * hs;
      for (int64_t j = 0; j < d; j++) {
        dr[j] = gr[j] * (1.0f + sc[j]);
        ds[j] += gr[j] * xr[j];
        dh[j] += gr[j];
      }
    }
  });
  std::memcpy(dscale, part.data(), sizeof(float) * nS);
  std::memcpy(dshift, part.data() + nS, sizeof(float) * nH);
  for (int c = 1; c < chunks; c++) {
    const float* ps = part.data() + (size_t)c * (nS + nH);
    for (int64_t j = 0; j < nS; j++) dscale[j] += ps[j];
    for (int64_t j = 0; j < nH; j++) dshift[j] += ps[nS + j];
  }
}

}  // namespace mce
