// Fused scaled dot-product attention over token-major heads, forward and backward:
//   q [B, L, H*D], k and v [B, S, H*D], o [B, L, H*D]; per (batch b, head h),
//   o = softmax(q k^T / sqrt(D)) v on the D channels h*D .. h*D + D - 1 of every token.
// Token-major is how linear layers lay out q, k and v: the GEMMs read a head in place with leading
// dimension H*D, so no head split or merge copies are made ([B, H, L, D] is the same layout with
// B*H batches and one head). One (b, h) pair per task, its GEMMs on the task's thread: results do not
// depend on the thread count. The backward recomputes the L x S probabilities instead of keeping them.
#include <algorithm>
#include <cmath>
#include <vector>

#include "mce.h"
#include "vecmath.h"

namespace mce {

namespace {

// Rows of p [L, S] := softmax(p) in place, summed in sequence. mce::softmax (fused.cc) does the same
// with vectorised sums, which round differently: docs/results.md was measured with this one, so
// switch to it together with the next complete benchmark run.
void softmax_rows(float* p, int64_t L, int64_t S) {
  for (int64_t i = 0; i < L; i++) {
    float* r = p + i * S;
    float m = -INFINITY;
    for (int64_t j = 0; j < S; j++) m = std::max(m, r[j]);
    float z = 0.0f;
    for (int64_t j = 0; j < S; j++) z += (r[j] = exp_f(r[j] - m));
    const float inv = 1.0f / z;
    for (int64_t j = 0; j < S; j++) r[j] *= inv;
  }
}

struct Geom {
  int64_t B, L, S, H, D;
  int64_t ld() const { return H * D; }
  float scale() const { return 1.0f / std::sqrt((float)D); }
  // Offsets of pair bh's first query row and first key row.
  int64_t qoff(int64_t bh) const { return (bh / H) * L * ld() + (bh % H) * D; }
  int64_t koff(int64_t bh) const { return (bh / H) * S * ld() + (bh % H) * D; }
  // Pairs per task: enough work per task that tiny attentions stay on the calling thread.
  int64_t grain() const { return std::max<int64_t>(1, (INT64_C(1) << 17) / std::max<int64_t>(1, L * S * D)); }
};

// p [L, S] = softmax(scale q_h k_h^T) of one pair.
void probs(const Geom& g, const float* q, const float* k, float* p) {
  const int ld = (int)g.ld();
  sgemm_serial(false, true, (int)g.L, (int)g.S, (int)g.D, g.scale(), q, ld, k, ld, 0.0f, p, (int)g.S);
  softmax_rows(p, g.L, g.S);
}

}  // namespace

void attention(const float* q, const float* k, const float* v, float* o, int64_t B, int64_t L, int64_t S, int64_t H,
               int64_t D) {
  const Geom g{B, L, S, H, D};
  const int ld = (int)g.ld();
  parallel_gemms(B * H, g.grain(), [&](int64_t p0, int64_t p1) {
    std::vector<float> p(L * S);
    for (int64_t bh = p0; bh < p1; bh++) {
      probs(g, q + g.qoff(bh), k + g.koff(bh), p.data());
      sgemm_serial(false, false, (int)L, (int)D, (int)S, 1.0f, p.data(), (int)S, v + g.koff(bh), ld, 0.0f, o + g.qoff(bh), ld);
    }
  });
}

// With P = softmax(scale q k^T) and o = P v: dv = P^T do; dP = do v^T; dS = P * (dP - rowsum(P * dP));
// dq = scale dS k; dk = scale dS^T q.
void attention_grad(const float* dout, const float* q, const float* k, const float* v, float* dq, float* dk,
                    float* dv, int64_t B, int64_t L, int64_t S, int64_t H, int64_t D) {
  const Geom g{B, L, S, H, D};
  const int ld = (int)g.ld(), l = (int)L, s = (int)S, d = (int)D;
  const float scale = g.scale();
  parallel_gemms(B * H, g.grain(), [&](int64_t p0, int64_t p1) {
    std::vector<float> p(L * S), ds(L * S);
    for (int64_t bh = p0; bh < p1; bh++) {
      const int64_t qo = g.qoff(bh), ko = g.koff(bh);
      probs(g, q + qo, k + ko, p.data());
      sgemm_serial(true, false, s, d, l, 1.0f, p.data(), s, dout + qo, ld, 0.0f, dv + ko, ld);
      sgemm_serial(false, true, l, s, d, 1.0f, dout + qo, ld, v + ko, ld, 0.0f, ds.data(), s);
      for (int64_t i = 0; i < L; i++) {
        const float* pr = p.data() + i * S;
        float* dr = ds.data() + i * S;
        float c = 0.0f;
        for (int64_t j = 0; j < S; j++) c += pr[j] * dr[j];
        for (int64_t j = 0; j < S; j++) dr[j] = scale * pr[j] * (dr[j] - c);
      }
      sgemm_serial(false, false, l, d, s, 1.0f, ds.data(), s, k + ko, ld, 0.0f, dq + qo, ld);
      sgemm_serial(true, false, s, d, l, 1.0f, ds.data(), s, q + qo, ld, 0.0f, dk + ko, ld);
    }
  });
}

}  // namespace mce
