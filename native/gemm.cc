// GEMM on OpenBLAS, batched GEMM, and convolution as im2col + GEMM.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>

#include "mce.h"
#include "pool.h"

// Declared here too, so the build does not depend on which cblas.h the alternatives system picked.
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace mce {

Pool& pool() {
  static Pool p;
  return p;
}

static int g_threads = 1;

void set_threads(int n) {
  n = std::max(1, std::min(n, 256));
  g_threads = n;
  openblas_set_num_threads(n);
  pool().resize(n);
}

int get_threads() { return g_threads; }

static inline CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

// Products below 2^24 multiply-adds (~33 MFLOP, ~0.6 ms on one core) run on one OpenBLAS thread.
// OpenBLAS splits them over both threads from 65536 * 4 on, and between two small products its
// second thread goes to sleep: waking it costs more than it saves when the machine is busy. On the
// sd-emoji UNet's MCE iteration (every product below 2^24: linears [512, 32] x [32, 32], 3x3 convs
// [512, 288] x [288, 32]) one thread took ~40% less process CPU time than two on a loaded 2-core
// machine (bench/README.md).
// OpenBLAS's 1- and 2-thread paths may round differently (fp32 summation order).
static int64_t kBlasOneThreadMNK = int64_t(1) << 24;

int64_t set_one_thread_mnk(int64_t mnk) {
  int64_t prev = kBlasOneThreadMNK;
  kBlasOneThreadMNK = std::max<int64_t>(0, mnk);
  return prev;
}

static void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                 int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; i++) {
      float* c = C + (int64_t)i * ldc;
      if (beta == 0.0f) std::memset(c, 0, sizeof(float) * N);
      else for (int j = 0; j < N; j++) c[j] *= beta;
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, tr(transA), tr(transB), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/** Whether a product of this size runs on one thread while g_threads > 1 (see kBlasOneThreadMNK). */
static inline bool one_thread(double mnk) { return g_threads > 1 && mnk < (double)kBlasOneThreadMNK; }

void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  const bool one = one_thread((double)M * N * K);
  if (one) openblas_set_num_threads(1);
  gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (one) openblas_set_num_threads(g_threads);
}

// OpenBLAS 0.3.21 runs a GEMM single-threaded when M*N*K <= 65536 * GEMM_MULTITHREAD_THRESHOLD (4).
static const double kBlasSingleThreadMNK = 262144.0;

void sgemm_batched(bool transA, bool transB, int batch, int M, int N, int K, float alpha, const float* A, int lda,
                   int64_t sA, const float* B, int ldb, int64_t sB, float beta, float* C, int ldc, int64_t sC) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  // Raw GEMMs: the thread count is set once for the whole batch below.
  auto one = [&](int b) {
    gemm(transA, transB, M, N, K, alpha, A + b * sA, lda, B + b * sB, ldb, beta, C + b * sC, ldc);
  };
  const int T = g_threads;
  const double mnk = (double)M * N * K;
  // Many small products: one single-threaded GEMM per thread. Medium ones too, when the batch splits
  // evenly over the threads; large ones use OpenBLAS's own threads, one product at a time.
  // A batch with little work in all stays on this thread (see kBlasOneThreadMNK): e.g. the UNet's
  // attention products [16, 16] x [16, 32] over 16 heads and images.
  bool overBatch = T > 1 && batch >= 2 && !one_thread(mnk * batch) &&
                   (mnk <= kBlasSingleThreadMNK || (mnk <= 16777216.0 && (batch >= 4 * T || batch % T == 0)));
  if (!overBatch) {
    const bool single = one_thread(mnk);
    if (single) openblas_set_num_threads(1);
    for (int b = 0; b < batch; b++) one(b);
    if (single) openblas_set_num_threads(T);
    return;
  }
  bool quiet = mnk > kBlasSingleThreadMNK;
  if (quiet) openblas_set_num_threads(1);
  std::atomic<int> next{0};
  std::function<void(int)> job = [&](int) {
    for (int b = next.fetch_add(1); b < batch; b = next.fetch_add(1)) one(b);
  };
  pool().run(std::min(T, batch), job);
  if (quiet) openblas_set_num_threads(T);
}

void parallel_gemms(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  const bool quiet = g_threads > 1;
  if (quiet) openblas_set_num_threads(1);
  parallel_for(n, grain, f);
  if (quiet) openblas_set_num_threads(g_threads);
}

void sgemm_serial(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                  int ldb, float beta, float* C, int ldc) {
  gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void bias_act(float* y, const float* bias, int64_t rows, int64_t n, int64_t biasLen, int act) {
  parallel_for(rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* row = y + r * n;
      if (biasLen == n) {
        for (int64_t j = 0; j < n; j++) row[j] += bias[j];
      } else if (biasLen == 1) {
        const float b = bias[0];
        for (int64_t j = 0; j < n; j++) row[j] += b;
      }
      if (act == 1)
        for (int64_t j = 0; j < n; j++) row[j] = row[j] > 0.0f ? row[j] : 0.0f;
    }
  });
}

// ---- convolution ----------------------------------------------------------------------------

// A grow-only scratch buffer per calling thread (im2col columns); never zeroed on growth.
static float* scratch(size_t n) {
  thread_local std::unique_ptr<float[]> buf;
  thread_local size_t cap = 0;
  if (n > cap) {
    buf.reset();
    buf.reset(new float[n]);
    cap = n;
  }
  return buf.get();
}

// Largest im2col buffer per chunk of images (floats): 8 Mi floats = 32 MiB. Tests lower it.
static int64_t kColLimit = int64_t(8) << 20;

int64_t set_col_limit(int64_t floats) {
  int64_t prev = kColLimit;
  kColLimit = std::max<int64_t>(1, floats);
  return prev;
}

static inline bool pointwise(const ConvGeom& g) {
  return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 && g.PL == 0 && g.OH == g.H && g.OW == g.W;
}

static int64_t images_per_chunk(const ConvGeom& g) {
  int64_t per = g.OH * g.OW * g.KH * g.KW * g.C;
  return std::max<int64_t>(1, std::min<int64_t>(g.N, kColLimit / std::max<int64_t>(1, per)));
}

// Floats per thread below which im2col / col2im run on the calling thread alone. They are memory
// copies (~0.1 ms per 2^18 floats); waking the pool's second thread for less costs more than it
// saves on a busy machine (the sd-emoji UNet's convs move ~2^17 floats each).
static const int64_t kCopyGrain = int64_t(1) << 18;

// col[(n - n0, oh, ow), (kh, kw, c)] = x[n, oh*SH - PT + kh, ow*SW - PL + kw, c] (0 outside).
static void im2col(const ConvGeom& g, const float* x, int64_t n0, int64_t n1, float* col) {
  const int64_t KKC = g.KH * g.KW * g.C;
  const int64_t rows = (n1 - n0) * g.OH;
  const int64_t grain = std::max<int64_t>(1, kCopyGrain / std::max<int64_t>(1, g.OW * KKC));
  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t n = n0 + r / g.OH, oh = r % g.OH;
      for (int64_t ow = 0; ow < g.OW; ow++) {
        float* dst = col + (r * g.OW + ow) * KKC;
        for (int64_t kh = 0; kh < g.KH; kh++) {
          const int64_t ih = oh * g.SH - g.PT + kh;
          float* d = dst + kh * g.KW * g.C;
          if (ih < 0 || ih >= g.H) {
            std::memset(d, 0, sizeof(float) * g.KW * g.C);
            continue;
          }
          const float* src = x + ((n * g.H + ih) * g.W) * g.C;
          for (int64_t kw = 0; kw < g.KW; kw++) {
            const int64_t iw = ow * g.SW - g.PL + kw;
            if (iw < 0 || iw >= g.W) std::memset(d + kw * g.C, 0, sizeof(float) * g.C);
            else std::memcpy(d + kw * g.C, src + iw * g.C, sizeof(float) * g.C);
          }
        }
      }
    }
  });
}

// dx[n, ih, iw, c] = sum over the (kh, kw) that read it of dcol[(n - n0, oh, ow), (kh, kw, c)].
// A gather (each dx element written by one thread), so it is race-free and deterministic.
static void col2im(const ConvGeom& g, const float* dcol, int64_t n0, int64_t n1, float* dx) {
  const int64_t KKC = g.KH * g.KW * g.C;
  const int64_t rows = (n1 - n0) * g.H;
  const int64_t grain = std::max<int64_t>(1, kCopyGrain / std::max<int64_t>(1, g.W * g.C * g.KH * g.KW));
  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t nl = r / g.H, ih = r % g.H, n = n0 + nl;
      for (int64_t iw = 0; iw < g.W; iw++) {
        float* d = dx + ((n * g.H + ih) * g.W + iw) * g.C;
        std::memset(d, 0, sizeof(float) * g.C);
        for (int64_t kh = 0; kh < g.KH; kh++) {
          const int64_t t = ih + g.PT - kh;
          if (t < 0 || t % g.SH != 0) continue;
          const int64_t oh = t / g.SH;
          if (oh >= g.OH) continue;
          for (int64_t kw = 0; kw < g.KW; kw++) {
            const int64_t u = iw + g.PL - kw;
            if (u < 0 || u % g.SW != 0) continue;
            const int64_t ow = u / g.SW;
            if (ow >= g.OW) continue;
            const float* s = dcol + ((nl * g.OH + oh) * g.OW + ow) * KKC + (kh * g.KW + kw) * g.C;
            for (int64_t c = 0; c < g.C; c++) d[c] += s[c];
          }
        }
      }
    }
  });
}

void conv2d(const ConvGeom& g, const float* x, const float* w, float* y) {
  const int64_t KKC = g.KH * g.KW * g.C, P = g.OH * g.OW;
  if (g.N == 0 || P == 0 || g.OC == 0) return;
  if (pointwise(g)) {
    sgemm(false, false, (int)(g.N * P), (int)g.OC, (int)g.C, 1.0f, x, (int)g.C, w, (int)g.OC, 0.0f, y, (int)g.OC);
    return;
  }
  const int64_t chunk = images_per_chunk(g);
  float* col = scratch((size_t)(chunk * P * KKC));
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t n1 = std::min(g.N, n0 + chunk);
    im2col(g, x, n0, n1, col);
    sgemm(false, false, (int)((n1 - n0) * P), (int)g.OC, (int)KKC, 1.0f, col, (int)KKC, w, (int)g.OC, 0.0f,
          y + n0 * P * g.OC, (int)g.OC);
  }
}

void conv2d_backprop_input(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  const int64_t KKC = g.KH * g.KW * g.C, P = g.OH * g.OW;
  if (g.N == 0) return;
  if (P == 0 || g.OC == 0) {
    std::memset(dx, 0, sizeof(float) * g.N * g.H * g.W * g.C);
    return;
  }
  if (pointwise(g)) {
    sgemm(false, true, (int)(g.N * P), (int)g.C, (int)g.OC, 1.0f, dy, (int)g.OC, w, (int)g.OC, 0.0f, dx, (int)g.C);
    return;
  }
  const int64_t chunk = images_per_chunk(g);
  float* dcol = scratch((size_t)(chunk * P * KKC));
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t n1 = std::min(g.N, n0 + chunk);
    sgemm(false, true, (int)((n1 - n0) * P), (int)KKC, (int)g.OC, 1.0f, dy + n0 * P * g.OC, (int)g.OC, w,
          (int)g.OC, 0.0f, dcol, (int)KKC);
    col2im(g, dcol, n0, n1, dx);
  }
}

void conv2d_backprop_filter(const ConvGeom& g, const float* x, const float* dy, float* dw) {
  const int64_t KKC = g.KH * g.KW * g.C, P = g.OH * g.OW;
  if (g.N == 0 || P == 0) {
    std::memset(dw, 0, sizeof(float) * KKC * g.OC);
    return;
  }
  if (pointwise(g)) {
    sgemm(true, false, (int)g.C, (int)g.OC, (int)(g.N * P), 1.0f, x, (int)g.C, dy, (int)g.OC, 0.0f, dw, (int)g.OC);
    return;
  }
  const int64_t chunk = images_per_chunk(g);
  float* col = scratch((size_t)(chunk * P * KKC));
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t n1 = std::min(g.N, n0 + chunk);
    im2col(g, x, n0, n1, col);
    sgemm(true, false, (int)KKC, (int)g.OC, (int)((n1 - n0) * P), 1.0f, col, (int)KKC, dy + n0 * P * g.OC,
          (int)g.OC, n0 == 0 ? 0.0f : 1.0f, dw, (int)g.OC);
  }
}

}  // namespace mce
