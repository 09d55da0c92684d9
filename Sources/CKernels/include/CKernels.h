// CKernels: hand-written SIMD kernels for the engine's hot paths, with a runtime CPU check.
//
// Each kernel has an AVX-512 path (compiled per function with `target(...)`, so the library still
// runs on CPUs without AVX-512), the products also an AVX2 one, and all a portable C fallback;
// `ck_simd_level()` says which one runs.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kernel set in use: 2 = AVX-512 (F, BW, VL, DQ) with F16C and FMA, 1 = AVX2 with FMA and
/// F16C (the products and conversions; attention runs portable there), 0 = portable C.
int ck_simd_level(void);

/// Caps the kernel set at `level` (0, 1 or 2; a negative value removes the cap) — for tests that
/// compare the paths on one machine. Process-wide.
void ck_set_simd_level(int level);

/// Small-M matrix product against a weight matrix in PyTorch `nn.Linear` layout, streaming each
/// weight row once for all `m` input rows (no packing):
///
///     y[r·ldy + j] (+)= Σ_{k < K} x[r·ldx + k] · w[j·ldw + k]     for r < m, n0 ≤ j < n1
///
/// `accumulate` 0 overwrites `y`, 1 adds to it. Any `m ≥ 1` works; it is fastest for m ≤ 16.
/// Callers split [0, N) into column ranges to run on several threads (ranges must not overlap).
void ck_gemm_nt_f32(
    int m, int n0, int n1, int k, const float *x, ptrdiff_t ldx, const float *w, ptrdiff_t ldw, float *y,
    ptrdiff_t ldy, int accumulate);

/// The same with IEEE half-precision weights (`w` holds binary16 bit patterns); products and sums
/// are in single precision.
void ck_gemm_nt_f16(
    int m, int n0, int n1, int k, const float *x, ptrdiff_t ldx, const uint16_t *w, ptrdiff_t ldw, float *y,
    ptrdiff_t ldy, int accumulate);

/// Attention of one query over `visible` cached positions of one head:
///
///     out[c] = Σ_j softmax_j(scale · q·k_j) · v_j[c]     for c < hd
///
/// Key and value rows of successive positions are `stride` elements apart. `scores` holds
/// `visible` floats of scratch. The `_f16` variant reads binary16 keys and values.
void ck_attend_f32(
    const float *q, const float *k, const float *v, ptrdiff_t stride, int visible, int hd, float scale, float *scores,
    float *out);
void ck_attend_f16(
    const float *q, const uint16_t *k, const uint16_t *v, ptrdiff_t stride, int visible, int hd, float scale,
    float *scores, float *out);

/// Converts `n` floats to binary16 (round to nearest even; overflow becomes ±inf).
void ck_f32_to_f16(const float *src, uint16_t *dst, size_t n);

/// Converts `n` binary16 values to floats (exact).
void ck_f16_to_f32(const uint16_t *src, float *dst, size_t n);

#ifdef __cplusplus
}
#endif

#endif
