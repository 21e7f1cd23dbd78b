/* layers.h: convolution (im2col + GEMM), dense, ReLU and layout helpers, each with a
 * plain-loop reference version used by the tests.
 *
 * Activation layout. Convolution activations are stored channel-major over the batch,
 * "CNHW": x[c][b][h][w], row-major float32. With this layout one GEMM per image chunk
 * writes its output straight into place (Cout rows, stride N*Hout*Wout), with no
 * transposes. Weights use PyTorch's shapes: conv (Cout, Cin, K, K), dense (out, in), so
 * checkpoints load into torch.nn.Conv2d / nn.Linear as they are.
 *
 * Gradient convention (llm.c): parameter gradients dw, db ACCUMULATE (+=); the caller
 * clears them once per step. Input gradients dx are OVERWRITTEN. When a layer was run
 * with a fused ReLU, its backward takes the layer's output y and masks dy in place.
 * None of these functions fail: shapes are the caller's contract (checked with CHECK). */
#ifndef SIMCLR_LAYERS_H
#define SIMCLR_LAYERS_H

#include <stddef.h>

typedef struct {
    int cin, cout, k, stride, pad; /* kernel k x k, zero padding `pad` on each side */
    int hin, win, hout, wout;      /* hout = (hin + 2 pad - k) / stride + 1 */
} conv_geom;

/* Fills a conv_geom; hout/wout as in torch.nn.Conv2d (floor). CHECKs hout, wout >= 1. */
conv_geom conv_geom_make(int cin, int cout, int k, int stride, int pad, int hin, int win);

/* Floats of im2col workspace needed for a chunk of nb images: cin*k*k * nb*hout*wout. */
size_t conv_col_floats(const conv_geom *g, size_t nb);

/* im2col for images b0..b0+nb-1 of x (cin, n, hin, win) CNHW. Writes (overwrites)
 * col (cin*k*k, nb*hout*wout) row-major; row index (c*k + kh)*k + kw, column index
 * (b-b0)*hout*wout + oh*wout + ow; out-of-image taps are 0 (zero padding). */
void im2col(const conv_geom *g, const float *x, size_t n, size_t b0, size_t nb, float *col);

/* Adjoint of im2col: ACCUMULATES col (cin*k*k, nb*hout*wout) into dx (cin, n, hin, win). */
void col2im(const conv_geom *g, const float *col, size_t n, size_t b0, size_t nb, float *dx);

/* y (cout, n, hout, wout) = conv(x (cin, n, hin, win), w (cout, cin, k, k)) + b (cout)
 * (no bias when b is NULL: a conv followed by batch normalisation), then ReLU when
 * relu != 0. y is overwritten. ws is a workspace of ws_floats floats (>= conv_col_floats(g, 1)); images are processed in chunks that fit it, each one
 * im2col + one gemm. Same math as torch.nn.functional.conv2d (cross-correlation). */
void conv_forward(const conv_geom *g, const float *x, const float *w, const float *b, float *y,
                  size_t n, int relu, float *ws, size_t ws_floats);

/* Backward of conv_forward. y: the forward output when it was run with relu (dy is then
 * masked in place by y > 0), else NULL. dw (cout, cin, k, k) and db (cout) accumulate
 * (db NULL: no bias); dx (cin, n, hin, win) is overwritten, or skipped when NULL (first
 * layer). */
void conv_backward(const conv_geom *g, const float *x, const float *w, const float *y,
                   float *dy, float *dw, float *db, float *dx, size_t n, float *ws,
                   size_t ws_floats);

/* Plain-loop references of conv_forward / conv_backward (double accumulation, no ReLU,
 * no workspace). Same layouts and overwrite/accumulate rules. */
void conv_forward_ref(const conv_geom *g, const float *x, const float *w, const float *b,
                      float *y, size_t n);
void conv_backward_ref(const conv_geom *g, const float *x, const float *w, const float *dy,
                       float *dw, float *db, float *dx, size_t n);

/* y (n, out) = x (n, in) w^T + b, w (out, in), b (out); ReLU when relu != 0. Overwrites
 * y. As torch.nn.Linear. */
void dense_forward(const float *x, const float *w, const float *b, float *y, size_t n,
                   size_t in, size_t out, int relu);

/* Backward of dense_forward. y: forward output if relu was used (dy masked in place),
 * else NULL. dw (out, in), db (out) accumulate; dx (n, in) overwritten, or skipped when
 * NULL. */
void dense_backward(const float *x, const float *w, const float *y, float *dy, float *dw,
                    float *db, float *dx, size_t n, size_t in, size_t out);

/* Plain-loop reference of dense_forward/dense_backward without ReLU. */
void dense_forward_ref(const float *x, const float *w, const float *b, float *y, size_t n,
                       size_t in, size_t out);
void dense_backward_ref(const float *x, const float *w, const float *dy, float *dw,
                        float *db, float *dx, size_t n, size_t in, size_t out);

/* Batch normalisation over CNHW activations (Ioffe & Szegedy 2015, Algorithm 1; the
 * math of torch.nn.BatchNorm2d / SyncBatchNorm): channel ci is the contiguous block
 * x[ci*len .. ci*len+len), len = n*h*w. In training mode the statistics are the mean and
 * biased variance over every image of the GLOBAL batch: `reduce` (when not NULL) sums a
 * double buffer in place across ranks (MPI_Allreduce), so each rank normalises with the
 * same numbers a single rank would use on the whole batch. eps 1e-5, momentum 0.1 and the
 * unbiased running variance are PyTorch's defaults. */
typedef struct {
    void (*fn)(double *buf, size_t n, void *ctx); /* in-place sum across ranks */
    void *ctx;
} bn_reduce;

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

/* y (c, len) = gamma * (x - mean) * invstd + beta, then ReLU when relu != 0; y is
 * overwritten and may not alias x. train != 0: mean/invstd are the batch statistics
 * (global through `reduce`), written to mean (c) and invstd (c) for the backward pass, and
 * run_mean/run_var (c) move 10 % toward them (variance scaled by M/(M-1), M = global
 * count). train == 0: mean = run_mean, invstd = 1/sqrt(run_var + eps), run_* untouched.
 * The sums are taken around run_mean (identical on all ranks), so the variance does not
 * lose digits to a large mean. sums is a workspace of 2c+1 doubles. A global count of 0 is
 * a CHECK. */
void batchnorm_forward(const float *x, float *y, size_t c, size_t len, const float *gamma,
                       const float *beta, float *mean, float *invstd, float *run_mean,
                       float *run_var, int train, int relu, double *sums, const bn_reduce *reduce);

/* Backward of a training-mode batchnorm_forward. x: its input, y: its output when it ran
 * with relu (dy is first masked in place by y > 0), else NULL; mean/invstd: what the
 * forward wrote. dgamma, dbeta (c) ACCUMULATE this rank's share (sum over its own
 * images; the caller's gradient allreduce adds the ranks); dy (c, len) is OVERWRITTEN
 * in place by dx = gamma*invstd*(dy - S1/M - xhat*S2/M), with S1 = sum dy, S2 =
 * sum dy*xhat and M summed over the global batch through `reduce`. sums: 2c+1 doubles. */
void batchnorm_backward(const float *x, const float *y, float *dy, size_t c, size_t len,
                        const float *gamma, const float *mean, const float *invstd,
                        float *dgamma, float *dbeta, double *sums, const bn_reduce *reduce);

/* In place: x = max(x, 0) over n floats. */
void relu_forward(float *x, size_t n);

/* In place: dy *= (y > 0) over n floats (y is the ReLU output). */
void relu_backward(const float *y, float *dy, size_t n);

/* CNHW (c, n, hw) -> row-major (n, c*hw), the order of torch.flatten on NCHW.
 * dst is overwritten. cnhw_from_flat is its inverse (also overwrites). */
void cnhw_to_flat(const float *src, float *dst, size_t c, size_t n, size_t hw);
void cnhw_from_flat(const float *src, float *dst, size_t c, size_t n, size_t hw);

#endif
