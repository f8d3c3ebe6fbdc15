// Fused scaled dot-product attention over token-major heads, forward and backward:
//   q [B, L, H*D], k and v [B, S, H*D], o [B, L, H*D]; per (batch b, head h),
//   o = softmax(q k^T / sqrt(D)) v on the D channels h*D .. h*D + D - 1 of every token.
// Token-major is how linear layers lay out q, k and v, so no head split or merge copies are needed;
// [B, H, L, D] is the same layout with B*H batches and one head. One (b, h) pair per task and every
// sum inside one pair, so results do not depend on the thread count. The backward recomputes the
// probabilities a row at a time instead of keeping the L x S matrix.
#include <algorithm>
#include <cmath>
#include <vector>

#include "mce.h"
#include "pool.h"
#include "vecmath.h"

namespace mce {

namespace {

inline float dot(const float* a, const float* b, int64_t d) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < d; c++) s += a[c] * b[c];
  return s;
}

inline void axpy(float alpha, const float* x, float* y, int64_t d) {
#pragma omp simd
  for (int64_t c = 0; c < d; c++) y[c] += alpha * x[c];
}

// p[j] = softmax_j(scale * q_i . k_j) over the S keys of one (b, h) pair (row stride ld).
inline void probs(const float* qi, const float* k, int64_t S, int64_t D, int64_t ld, float scale, float* p) {
  float m = -INFINITY;
  for (int64_t j = 0; j < S; j++) {
    p[j] = scale * dot(qi, k + j * ld, D);
    m = std::max(m, p[j]);
  }
  float z = 0.0f;
  for (int64_t j = 0; j < S; j++) z += (p[j] = exp_f(p[j] - m));
  const float inv = 1.0f / z;
  for (int64_t j = 0; j < S; j++) p[j] *= inv;
}

// Pairs per task: enough work per task that tiny attentions stay on the calling thread.
inline int64_t pair_grain(int64_t L, int64_t S, int64_t D) {
  return std::max<int64_t>(1, (INT64_C(1) << 17) / std::max<int64_t>(1, L * S * D));
}

}  // namespace

void attention(const float* q, const float* k, const float* v, float* o, int64_t B, int64_t L, int64_t S, int64_t H,
               int64_t D) {
  const int64_t ld = H * D;
  const float scale = 1.0f / std::sqrt((float)D);
  parallel_for(B * H, pair_grain(L, S, D), [&](int64_t p0, int64_t p1) {
    std::vector<float> p(S);
    for (int64_t bh = p0; bh < p1; bh++) {
      const int64_t b = bh / H, h = bh % H;
      const float* kb = k + b * S * ld + h * D;
      const float* vb = v + b * S * ld + h * D;
      for (int64_t i = 0; i < L; i++) {
        const int64_t row = (b * L + i) * ld + h * D;
        probs(q + row, kb, S, D, ld, scale, p.data());
        float* oi = o + row;
        std::fill(oi, oi + D, 0.0f);
        for (int64_t j = 0; j < S; j++) axpy(p[j], vb + j * ld, oi, D);
      }
    }
  });
}

// With P = softmax(scale q k^T) and o = P v: dv = P^T do; dP = do v^T; dS = P * (dP - rowsum(P * dP));
// dq = scale dS k; dk = scale dS^T q.
void attention_grad(const float* dout, const float* q, const float* k, const float* v, float* dq, float* dk,
                    float* dv, int64_t B, int64_t L, int64_t S, int64_t H, int64_t D) {
  const int64_t ld = H * D;
  const float scale = 1.0f / std::sqrt((float)D);
  parallel_for(B * H, pair_grain(L, S, D), [&](int64_t p0, int64_t p1) {
    std::vector<float> p(S), ds(S);
    for (int64_t bh = p0; bh < p1; bh++) {
      const int64_t b = bh / H, h = bh % H;
      const int64_t kv = b * S * ld + h * D;
      for (int64_t j = 0; j < S; j++) {
        std::fill(dk + kv + j * ld, dk + kv + j * ld + D, 0.0f);
        std::fill(dv + kv + j * ld, dv + kv + j * ld + D, 0.0f);
      }
      for (int64_t i = 0; i < L; i++) {
        const int64_t row = (b * L + i) * ld + h * D;
        const float* qi = q + row;
        const float* doi = dout + row;
        probs(qi, k + kv, S, D, ld, scale, p.data());
        float c = 0.0f;
        for (int64_t j = 0; j < S; j++) {
          ds[j] = dot(doi, v + kv + j * ld, D);
          c += p[j] * ds[j];
        }
        float* dqi = dq + row;
        std::fill(dqi, dqi + D, 0.0f);
        for (int64_t j = 0; j < S; j++) {
          const float g = scale * p[j] * (ds[j] - c);
          axpy(g, k + kv + j * ld, dqi, D);
          axpy(g, qi, dk + kv + j * ld, D);
          axpy(p[j], doi, dv + kv + j * ld, D);
        }
      }
    }
  });
}

}  // namespace mce
