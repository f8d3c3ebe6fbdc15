// GroupNorm over channels-last x [B, S, C] (S = the spatial positions), affine per channel:
// y = (x - mean) * rstd * weight + bias with mean and biased variance over the S * C/G values of each
// (sample, group); and its gradient for x, weight and bias. One kernel each way replaces the ~12
// forward and ~25 backward tfjs ops of the composite (models/unet/blocks.ts groupNormNHWC). Channel
// sums are accumulated in double over a sample's rows, so the statistics are as exact as the
// composite's two-pass float32 ones. Split over samples; dweight / dbias are summed over samples in
// order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "mce.h"
#include "pool.h"

namespace mce {

// Below this many elements per chunk of samples a call runs on the calling thread alone.
static const int64_t kGnGrain = 1 << 16;

struct GnStats {
  std::vector<double> mean, rstd;  // per group
};

// Mean and 1/sqrt(var + eps) of every group of sample x (S rows of C), two passes over x.
static void gn_stats(const float* x, int64_t S, int64_t C, int64_t G, float eps, std::vector<double>& acc,
                     GnStats& st) {
  const int64_t cg = C / G;
  const double n = (double)(S * cg);
  std::fill(acc.begin(), acc.end(), 0.0);
  for (int64_t s = 0; s < S; s++) {
    const float* r = x + s * C;
    for (int64_t c = 0; c < C; c++) acc[c] += r[c];
  }
  for (int64_t g = 0; g < G; g++) {
    double m = 0.0;
    for (int64_t c = g * cg; c < (g + 1) * cg; c++) m += acc[c];
    st.mean[g] = m / n;
  }
  std::fill(acc.begin(), acc.end(), 0.0);
  for (int64_t s = 0; s < S; s++) {
    const float* r = x + s * C;
    for (int64_t c = 0; c < C; c++) {
      const double d = r[c] - st.mean[c / cg];
      acc[c] += d * d;
    }
  }
  for (int64_t g = 0; g < G; g++) {
    double v = 0.0;
    for (int64_t c = g * cg; c < (g + 1) * cg; c++) v += acc[c];
    st.rstd[g] = 1.0 / std::sqrt(v / n + (double)eps);
  }
}

void group_norm(const float* x, const float* w, const float* b, float* y, int64_t B, int64_t S, int64_t C,
                int64_t G, float eps) {
  const int64_t cg = C / G;
  parallel_for(B, std::max<int64_t>(1, kGnGrain / std::max<int64_t>(1, S * C)), [&](int64_t b0, int64_t b1) {
    std::vector<double> acc(C);
    GnStats st{std::vector<double>(G), std::vector<double>(G)};
    std::vector<float> scale(C), shift(C);
    for (int64_t bi = b0; bi < b1; bi++) {
      const float* xb = x + bi * S * C;
      float* yb = y + bi * S * C;
      gn_stats(xb, S, C, G, eps, acc, st);
      for (int64_t c = 0; c < C; c++) {
        const double a = st.rstd[c / cg] * w[c];
        scale[c] = (float)a;
        shift[c] = (float)(b[c] - st.mean[c / cg] * a);
      }
      for (int64_t s = 0; s < S; s++) {
        const float* r = xb + s * C;
        float* o = yb + s * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) o[c] = r[c] * scale[c] + shift[c];
      }
    }
  });
}

void group_norm_grad(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int64_t B,
                     int64_t S, int64_t C, int64_t G, float eps) {
  const int64_t cg = C / G;
  const double n = (double)(S * cg);
  // Per-sample channel sums of dy and dy * xhat; dweight and dbias add them up in sample order.
  std::vector<double> sdy(B * C), sdyx(B * C);
  parallel_for(B, std::max<int64_t>(1, kGnGrain / std::max<int64_t>(1, S * C)), [&](int64_t b0, int64_t b1) {
    std::vector<double> acc(C);
    GnStats st{std::vector<double>(G), std::vector<double>(G)};
    std::vector<double> m1(G), m2(G);
    for (int64_t bi = b0; bi < b1; bi++) {
      const float* xb = x + bi * S * C;
      const float* gb = dy + bi * S * C;
      float* ob = dx + bi * S * C;
      double* ady = sdy.data() + bi * C;
      double* adyx = sdyx.data() + bi * C;
      gn_stats(xb, S, C, G, eps, acc, st);
      for (int64_t s = 0; s < S; s++) {
        const float* r = xb + s * C;
        const float* g = gb + s * C;
        for (int64_t c = 0; c < C; c++) {
          ady[c] += g[c];
          adyx[c] += g[c] * ((r[c] - st.mean[c / cg]) * st.rstd[c / cg]);
        }
      }
      // dxhat = dy * w; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) per group.
      for (int64_t gi = 0; gi < G; gi++) {
        double a = 0.0, bsum = 0.0;
        for (int64_t c = gi * cg; c < (gi + 1) * cg; c++) {
          a += ady[c] * w[c];
          bsum += adyx[c] * w[c];
        }
        m1[gi] = a / n;
        m2[gi] = bsum / n;
      }
      for (int64_t s = 0; s < S; s++) {
        const float* r = xb + s * C;
        const float* g = gb + s * C;
        float* o = ob + s * C;
        for (int64_t c = 0; c < C; c++) {
          const int64_t gi = c / cg;
          const double xh = (r[c] - st.mean[gi]) * st.rstd[gi];
          o[c] = (float)(st.rstd[gi] * ((double)g[c] * w[c] - m1[gi] - xh * m2[gi]));
        }
      }
    }
  });
  for (int64_t c = 0; c < C; c++) {
    double a = 0.0, bsum = 0.0;
    for (int64_t bi = 0; bi < B; bi++) {
      a += sdyx[bi * C + c];
      bsum += sdy[bi * C + c];
    }
    dw[c] = (float)a;
    db[c] = (float)bsum;
  }
}

}  // namespace mce
