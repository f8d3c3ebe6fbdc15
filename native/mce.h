// mce native kernels: OpenBLAS GEMM, im2col convolution and fused elementwise / norm kernels.
// All arrays are dense row-major float32; the N-API layer (addon.cc) checks every extent first.
#pragma once

#include <cstdint>
#include <functional>

namespace mce {

/** Threads for OpenBLAS and for the fused kernels' pool (both the same count). */
void set_threads(int n);
int get_threads();

// ---- GEMM: C = alpha * op(A) op(B) + beta * C, row-major, op(A) is M x K, op(B) is K x N.
void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);
/** Products with M*N*K below `mnk` run on one OpenBLAS thread; returns the previous limit. For tests. */
int64_t set_one_thread_mnk(int64_t mnk);
/** The same over `batch` matrices at element strides sA, sB, sC (a stride of 0 broadcasts). */
void sgemm_batched(bool transA, bool transB, int batch, int M, int N, int K, float alpha, const float* A,
                   int lda, int64_t sA, const float* B, int ldb, int64_t sB, float beta, float* C, int ldc,
                   int64_t sC);
/**
 * parallel_for over [0, n) with OpenBLAS held to one thread meanwhile, so that each task's GEMMs
 * (sgemm_serial) run whole on the task's thread: as sgemm_batched does with many small products.
 */
void parallel_gemms(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);
/** A GEMM on the calling thread, for use inside parallel_gemms (same arguments as sgemm). */
void sgemm_serial(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                  int ldb, float beta, float* C, int ldc);
/** y[r, j] = act(y[r, j] + bias[j or 0]); biasLen is 0 (none), 1 or n; act 0 = linear, 1 = relu. */
void bias_act(float* y, const float* bias, int64_t rows, int64_t n, int64_t biasLen, int act);

// ---- Conv2D, NHWC input, filter [KH, KW, C, OC], output NHWC [N, OH, OW, OC], dilation 1.
struct ConvGeom {
  int64_t N, H, W, C, KH, KW, OC, OH, OW, SH, SW, PT, PL;
};
void conv2d(const ConvGeom& g, const float* x, const float* w, float* y);
void conv2d_backprop_input(const ConvGeom& g, const float* dy, const float* w, float* dx);
void conv2d_backprop_filter(const ConvGeom& g, const float* x, const float* dy, float* dw);
/** Largest im2col buffer (floats) per chunk of images; returns the previous limit. For tests. */
int64_t set_col_limit(int64_t floats);

// ---- Fused elementwise / row kernels (rows of length d over the last axis).
void gelu(const float* x, float* y, int64_t n);
void gelu_grad(const float* dy, const float* x, float* dx, int64_t n);
/** GEGLU: x [rows, 2h] (hidden | gate), y [rows, h] = hidden * gelu_erf(gate); dx has x's shape. */
void geglu(const float* x, float* y, int64_t rows, int64_t h);
void geglu_grad(const float* dy, const float* x, float* dx, int64_t rows, int64_t h);
void silu(const float* x, float* y, int64_t n);
void silu_grad(const float* dy, const float* x, float* dx, int64_t n);
void layer_norm(const float* x, float* y, int64_t rows, int64_t d, float eps);
void layer_norm_grad(const float* dy, const float* x, float* dx, int64_t rows, int64_t d, float eps);
void rms_norm(const float* x, const float* scale, float* y, int64_t rows, int64_t d, float eps);
void rms_norm_grad(const float* dy, const float* x, const float* scale, float* dx, float* dscale, int64_t rows,
                   int64_t d, float eps);
void softmax(const float* x, float* y, int64_t rows, int64_t d);
void softmax_grad(const float* dy, const float* y, float* dx, int64_t rows, int64_t d);
/** y[b, t, :] = x[b, t, :] * (1 + scale[b * ss + :]) + shift[b * hs + :]; ss, hs are 0 or d. */
void modulate(const float* x, const float* scale, const float* shift, float* y, int64_t B, int64_t T, int64_t d,
              int64_t ss, int64_t hs);
/** Gradients of modulate; dscale / dshift have ss ? B*d : d and hs ? B*d : d elements. */
void modulate_grad(const float* dy, const float* x, const float* scale, float* dx, float* dscale, float* dshift,
                   int64_t B, int64_t T, int64_t d, int64_t ss, int64_t hs);

// ---- GroupNorm over channels-last x [B, S, C], G groups of C/G consecutive channels, affine per channel
// (groupnorm.cc). weight, bias, dweight, dbias have C elements.
void group_norm(const float* x, const float* w, const float* b, float* y, int64_t B, int64_t S, int64_t C,
                int64_t G, float eps);
void group_norm_grad(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int64_t B,
                     int64_t S, int64_t C, int64_t G, float eps);

// ---- Scaled dot-product attention over token-major heads (attention.cc): q [B, L, H*D], k and v
// [B, S, H*D], o [B, L, H*D]; o = softmax(q k^T / sqrt(D)) v per batch and head.
void attention(const float* q, const float* k, const float* v, float* o, int64_t B, int64_t L, int64_t S, int64_t H,
               int64_t D);
void attention_grad(const float* dout, const float* q, const float* k, const float* v, float* dq, float* dk,
                    float* dv, int64_t B, int64_t L, int64_t S, int64_t H, int64_t D);

}  // namespace mce
