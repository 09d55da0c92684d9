// CKernels: small-M GEMM against nn.Linear-layout weights (f32 or f16), half-precision conversion.
//
// Why not OpenBLAS for these: at m ≤ 16 rows, sgemm re-packs the whole weight matrix on every call
// (most of its time at m = 8), and sgemv handles one row only. Here each weight row is read once,
// straight from its storage (a copy or a memory mapping), and multiplied with all `m` input rows
// while it sits in registers: a register tile of MR input rows × NR weight rows, 16 lanes of K per
// step, one dot product per accumulator, reduced horizontally at the end.
#include "CKernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define CK_X86 1
#include <immintrin.h>
#endif

// MARK: - Portable half-precision conversion

static inline float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        mant <<= 1;
        e++;
      } while ((mant & 0x400u) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((absx >> 13) & 0x3ffu));  // nan: quiet, payload kept
  if (absx == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);  // inf
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to ≥ 65520: overflow
  if (absx < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (absx < 0x33000000u) return (uint16_t)sign;  // < 2^-25 rounds to 0
    uint32_t e = absx >> 23;
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;  // value = half · 2^-24 = mant · 2^(e-150)
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = ((absx >> 13) - ((127u - 15u) << 10));
  uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;
  return (uint16_t)(sign | half);
}

// MARK: - CPU check

static int ck_detected = -1;
static int ck_cap = 2;

static int detect(void) {
#if CK_X86 && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
      && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return 2;
  if (avx2) return 1;
#endif
  return 0;
}

int ck_simd_level(void) {
  if (ck_detected < 0) ck_detected = detect();
  return ck_detected < ck_cap ? ck_detected : ck_cap;
}

void ck_set_simd_level(int level) { ck_cap = level < 0 ? 2 : level; }

// MARK: - Portable fallbacks

static void gemm_nt_portable(
    int m, int n0, int n1, int k, const float *x, ptrdiff_t ldx, const void *w, ptrdiff_t ldw, int f16, float *y,
    ptrdiff_t ldy, int accumulate) {
  for (int j = n0; j < n1; j++) {
    for (int r = 0; r < m; r++) {
      const float *xr = x + r * ldx;
      float s = 0;
      if (f16) {
        const uint16_t *wj = (const uint16_t *)w + j * ldw;
        for (int i = 0; i < k; i++) s += xr[i] * half_to_float(wj[i]);
      } else {
        const float *wj = (const float *)w + j * ldw;
        for (int i = 0; i < k; i++) s += xr[i] * wj[i];
      }
      y[r * ldy + j] = accumulate ? y[r * ldy + j] + s : s;
    }
  }
}

static void attend_portable(
    const float *q, const void *k, const void *v, int f16, ptrdiff_t stride, int visible, int hd, float scale,
    float *scores, float *out) {
  float m = -INFINITY;
  for (int j = 0; j < visible; j++) {
    float s = 0;
    for (int c = 0; c < hd; c++) {
      float kc = f16 ? half_to_float(((const uint16_t *)k)[j * stride + c]) : ((const float *)k)[j * stride + c];
      s += q[c] * kc;
    }
    scores[j] = s * scale;
    if (scores[j] > m) m = scores[j];
  }
  float sum = 0;
  for (int j = 0; j < visible; j++) {
    scores[j] = expf(scores[j] - m);
    sum += scores[j];
  }
  for (int c = 0; c < hd; c++) out[c] = 0;
  for (int j = 0; j < visible; j++) {
    float p = scores[j] / sum;
    for (int c = 0; c < hd; c++) {
      float vc = f16 ? half_to_float(((const uint16_t *)v)[j * stride + c]) : ((const float *)v)[j * stride + c];
      out[c] += p * vc;
    }
  }
}

// MARK: - AVX-512

#if CK_X86
// Software prefetch of the weight rows two tiles ahead, into L2. Measured on the 2-core Zen 4
// host, gpt2-medium f16 weights, 8 rows, 2 threads: 52.6 ms per pass over all weights without,
// 39 ms one tile ahead into L1, 33 ms two tiles ahead into L2 (1 row: 28.9 → 20–23 ms).
#ifndef CK_PF_AHEAD
#define CK_PF_AHEAD 2
#endif
#ifndef CK_PF_HINT
#define CK_PF_HINT _MM_HINT_T1
#endif
#define CK_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))
#define CK_INLINE static inline __attribute__((always_inline))

/// The horizontal sums of four vectors, as one 4-lane vector.
CK_TARGET CK_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
  __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
  __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
  __m256 ab = _mm256_hadd_ps(a8, b8);
  __m256 cd = _mm256_hadd_ps(c8, d8);
  __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

CK_TARGET CK_INLINE __m512 load_w(const void *w, ptrdiff_t offset, int f16) {
  if (f16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + offset)));
  return _mm512_loadu_ps((const float *)w + offset);
}

CK_TARGET CK_INLINE __m512 load_w_masked(const void *w, ptrdiff_t offset, __mmask16 mask, int f16) {
  if (f16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)w + offset));
  return _mm512_maskz_loadu_ps(mask, (const float *)w + offset);
}

/// One register tile: MR input rows × NR weight rows over the whole depth `k`. MR·NR ≤ 24.
CK_TARGET CK_INLINE void tile(
    const int MR, const int NR, const int f16, int k, const float *x, ptrdiff_t ldx, const void *w, ptrdiff_t ldw,
    float *y, ptrdiff_t ldy, int accumulate, const char *next) {
  __m512 acc[8][8];
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++)
#pragma clang loop unroll(full)
    for (int j = 0; j < NR; j++) acc[r][j] = _mm512_setzero_ps();
  int i = 0;
  const ptrdiff_t elem = f16 ? 2 : 4;
  for (; i + 16 <= k; i += 16) {
    __m512 wv[8];
    // A later tile's rows, one 64-byte line each per 64 bytes read here: each row is only a few
    // kilobytes long, too short for the hardware prefetchers to ramp up on their own.
    if (next && (i * elem) % 64 == 0) {
#pragma clang loop unroll(full)
      for (int j = 0; j < NR; j++) _mm_prefetch(next + (j * ldw + i) * elem, CK_PF_HINT);
    }
#pragma clang loop unroll(full)
    for (int j = 0; j < NR; j++) wv[j] = load_w(w, j * ldw + i, f16);
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      __m512 xv = _mm512_loadu_ps(x + r * ldx + i);
#pragma clang loop unroll(full)
      for (int j = 0; j < NR; j++) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
  if (i < k) {
    __mmask16 mask = (__mmask16)((1u << (k - i)) - 1);
    __m512 wv[8];
#pragma clang loop unroll(full)
    for (int j = 0; j < NR; j++) wv[j] = load_w_masked(w, j * ldw + i, mask, f16);
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      __m512 xv = _mm512_maskz_loadu_ps(mask, x + r * ldx + i);
#pragma clang loop unroll(full)
      for (int j = 0; j < NR; j++) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
  // Reduce four accumulators at a time (row-major over the tile) and write the results.
  float sums[8 * 8 + 4];
  const int count = MR * NR;
#pragma clang loop unroll(full)
  for (int t = 0; t < count; t += 4) {
    __m512 z = _mm512_setzero_ps();
    __m512 a = acc[t / NR][t % NR];
    __m512 b = t + 1 < count ? acc[(t + 1) / NR][(t + 1) % NR] : z;
    __m512 c = t + 2 < count ? acc[(t + 2) / NR][(t + 2) % NR] : z;
    __m512 d = t + 3 < count ? acc[(t + 3) / NR][(t + 3) % NR] : z;
    _mm_storeu_ps(sums + t, hsum4(a, b, c, d));
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) {
    float *yr = y + r * ldy;
#pragma clang loop unroll(full)
    for (int j = 0; j < NR; j++) yr[j] = accumulate ? yr[j] + sums[r * NR + j] : sums[r * NR + j];
  }
}

/// Columns [n0, n1) for one block of MR ≤ 8 rows: tiles of NR weight rows, then single rows.
#define CK_ROWS(MR, NR, F16)                                                                       \
  CK_TARGET static void rows_##MR##_##F16(                                                         \
      int n0, int n1, int k, const float *x, ptrdiff_t ldx, const void *w, ptrdiff_t ldw, float *y, \
      ptrdiff_t ldy, int accumulate) {                                                             \
    const char *base = (const char *)w;                                                            \
    const ptrdiff_t row = (F16 ? 2 : 4) * ldw;                                                     \
    int j = n0;                                                                                    \
    for (; j + NR <= n1; j += NR)                                                                  \
      tile(MR, NR, F16, k, x, ldx, base + j * row, ldw, y + j, ldy, accumulate,                    \
           j + (CK_PF_AHEAD + 1) * NR <= n1 ? base + (j + CK_PF_AHEAD * NR) * row : NULL);            \
    for (; j < n1; j++) tile(MR, 1, F16, k, x, ldx, base + j * row, ldw, y + j, ldy, accumulate, NULL); \
  }

// NR: enough weight rows in flight to hide memory latency at small MR; MR·NR ≤ 24 so that the
// accumulators, the weight vectors and one input vector fit in the 32 vector registers.
CK_ROWS(1, 8, 0)
CK_ROWS(2, 8, 0)
CK_ROWS(3, 6, 0)
CK_ROWS(4, 4, 0)
CK_ROWS(5, 4, 0)
CK_ROWS(6, 3, 0)
CK_ROWS(7, 3, 0)
CK_ROWS(8, 3, 0)
CK_ROWS(1, 8, 1)
CK_ROWS(2, 8, 1)
CK_ROWS(3, 6, 1)
CK_ROWS(4, 4, 1)
CK_ROWS(5, 4, 1)
CK_ROWS(6, 3, 1)
CK_ROWS(7, 3, 1)
CK_ROWS(8, 3, 1)

typedef void (*rows_fn)(int, int, int, const float *, ptrdiff_t, const void *, ptrdiff_t, float *, ptrdiff_t, int);
static const rows_fn rows_f32[9] = {0, rows_1_0, rows_2_0, rows_3_0, rows_4_0, rows_5_0, rows_6_0, rows_7_0, rows_8_0};
static const rows_fn rows_f16[9] = {0, rows_1_1, rows_2_1, rows_3_1, rows_4_1, rows_5_1, rows_6_1, rows_7_1, rows_8_1};

/// Column panels small enough that a panel's weight rows stay in L2 while every block of 8 input
/// rows passes over them; for m ≤ 8 there is one block and the panel size does not matter.
static void gemm_nt_avx512(
    int m, int n0, int n1, int k, const float *x, ptrdiff_t ldx, const void *w, ptrdiff_t ldw, int f16, float *y,
    ptrdiff_t ldy, int accumulate) {
  const rows_fn *table = f16 ? rows_f16 : rows_f32;
  const int elem = f16 ? 2 : 4;
  int panel = (int)((256 * 1024) / ((size_t)k * elem));
  if (panel < 24) panel = 24;
  panel -= panel % 24;
  for (int p0 = n0; p0 < n1; p0 += panel) {
    int p1 = p0 + panel < n1 ? p0 + panel : n1;
    for (int r = 0; r < m; r += 8) {
      int mr = m - r < 8 ? m - r : 8;
      table[mr](p0, p1, k, x + r * ldx, ldx, w, ldw, y + r * ldy, ldy, accumulate);
    }
  }
}

// MARK: - AVX2 + FMA + F16C (x86 CPUs without AVX-512)

#define CK_TARGET2 __attribute__((target("avx2,fma,f16c")))

CK_TARGET2 CK_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

CK_TARGET2 CK_INLINE __m256 load_w8(const void *w, ptrdiff_t offset, int f16) {
  if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + offset)));
  return _mm256_loadu_ps((const float *)w + offset);
}

/// The AVX2 register tile: MR ≤ 4 input rows × NR ≤ 3 weight rows, 8 lanes of K per step (12
/// accumulators, 3 weight vectors and one input vector: the 16 vector registers). The K tail is
/// summed in scalar code.
CK_TARGET2 CK_INLINE void tile8(
    const int MR, const int NR, const int f16, int k, const float *x, ptrdiff_t ldx, const void *w, ptrdiff_t ldw,
    float *y, ptrdiff_t ldy, int accumulate) {
  __m256 acc[4][3];
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++)
#pragma clang loop unroll(full)
    for (int j = 0; j < NR; j++) acc[r][j] = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[3];
#pragma clang loop unroll(full)
    for (int j = 0; j < NR; j++) wv[j] = load_w8(w, j * ldw + i, f16);
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      __m256 xv = _mm256_loadu_ps(x + r * ldx + i);
#pragma clang loop unroll(full)
      for (int j = 0; j < NR; j++) acc[r][j] = _mm256_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) {
#pragma clang loop unroll(full)
    for (int j = 0; j < NR; j++) {
      float s = hsum8(acc[r][j]);
      for (int t = i; t < k; t++) {
        float wt = f16 ? half_to_float(((const uint16_t *)w)[j * ldw + t]) : ((const float *)w)[j * ldw + t];
        s += x[r * ldx + t] * wt;
      }
      float *out = y + r * ldy + j;
      *out = accumulate ? *out + s : s;
    }
  }
}

#define CK_ROWS8(MR, NR, F16)                                                                       \
  CK_TARGET2 static void rows8_##MR##_##F16(                                                        \
      int n0, int n1, int k, const float *x, ptrdiff_t ldx, const void *w, ptrdiff_t ldw, float *y,  \
      ptrdiff_t ldy, int accumulate) {                                                              \
    const char *base = (const char *)w;                                                             \
    const ptrdiff_t row = (F16 ? 2 : 4) * ldw;                                                      \
    int j = n0;                                                                                     \
    for (; j + NR <= n1; j += NR) tile8(MR, NR, F16, k, x, ldx, base + j * row, ldw, y + j, ldy, accumulate); \
    for (; j < n1; j++) tile8(MR, 1, F16, k, x, ldx, base + j * row, ldw, y + j, ldy, accumulate);  \
  }

CK_ROWS8(1, 3, 0)
CK_ROWS8(2, 3, 0)
CK_ROWS8(3, 3, 0)
CK_ROWS8(4, 3, 0)
CK_ROWS8(1, 3, 1)
CK_ROWS8(2, 3, 1)
CK_ROWS8(3, 3, 1)
CK_ROWS8(4, 3, 1)

static const rows_fn rows8_f32[5] = {0, rows8_1_0, rows8_2_0, rows8_3_0, rows8_4_0};
static const rows_fn rows8_f16[5] = {0, rows8_1_1, rows8_2_1, rows8_3_1, rows8_4_1};

static void gemm_nt_avx2(
    int m, int n0, int n1, int k, const float *x, ptrdiff_t ldx, const void *w, ptrdiff_t ldw, int f16, float *y,
    ptrdiff_t ldy, int accumulate) {
  const rows_fn *table = f16 ? rows8_f16 : rows8_f32;
  const int elem = f16 ? 2 : 4;
  int panel = (int)((256 * 1024) / ((size_t)k * elem));
  if (panel < 12) panel = 12;
  panel -= panel % 12;
  for (int p0 = n0; p0 < n1; p0 += panel) {
    int p1 = p0 + panel < n1 ? p0 + panel : n1;
    for (int r = 0; r < m; r += 4) {
      int mr = m - r < 4 ? m - r : 4;
      table[mr](p0, p1, k, x + r * ldx, ldx, w, ldw, y + r * ldy, ldy, accumulate);
    }
  }
}

CK_TARGET2 static void f32_to_f16_avx2(const float *src, uint16_t *dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(
        (__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; i++) dst[i] = float_to_half(src[i]);
}

CK_TARGET2 static void f16_to_f32_avx2(const uint16_t *src, float *dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
  for (; i < n; i++) dst[i] = half_to_float(src[i]);
}

/// `exp(x)` for x ≤ 0 (below -87 gives ~0): x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor
/// series to degree 7, scaled by 2^n from the exponent bits.
CK_TARGET CK_INLINE __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.442695040888963f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

CK_TARGET CK_INLINE __m512 load_kv(const void *p, ptrdiff_t offset, __mmask16 mask, int f16) {
  if (f16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, (const uint16_t *)p + offset));
  return _mm512_maskz_loadu_ps(mask, (const float *)p + offset);
}

/// Scores four keys at a time (one horizontal reduction per four), a vector softmax, then the
/// weighted sum of values in register accumulators, 64 lanes of the head per pass.
CK_TARGET static void attend_avx512(
    const float *q, const void *k, const void *v, int f16, ptrdiff_t stride, int visible, int hd, float scale,
    float *scores, float *out) {
  if (hd > 256) {  // wider heads than any CLIP-GEN model: keep it simple
    attend_portable(q, k, v, f16, stride, visible, hd, scale, scores, out);
    return;
  }
  const int chunks = (hd + 15) / 16;
  __m512 qv[16];
  __mmask16 masks[16];
  for (int c = 0; c < chunks; c++) {
    int lanes = hd - 16 * c < 16 ? hd - 16 * c : 16;
    masks[c] = (__mmask16)((1u << lanes) - 1);
    qv[c] = _mm512_mul_ps(_mm512_maskz_loadu_ps(masks[c], q + 16 * c), _mm512_set1_ps(scale));
  }
  int j = 0;
  for (; j + 4 <= visible; j += 4) {
    __m512 a[4];
    for (int t = 0; t < 4; t++) {
      __m512 acc = _mm512_setzero_ps();
      for (int c = 0; c < chunks; c++) acc = _mm512_fmadd_ps(qv[c], load_kv(k, (j + t) * stride + 16 * c, masks[c], f16), acc);
      a[t] = acc;
    }
    _mm_storeu_ps(scores + j, hsum4(a[0], a[1], a[2], a[3]));
  }
  for (; j < visible; j++) {
    __m512 acc = _mm512_setzero_ps();
    for (int c = 0; c < chunks; c++) acc = _mm512_fmadd_ps(qv[c], load_kv(k, j * stride + 16 * c, masks[c], f16), acc);
    scores[j] = _mm512_reduce_add_ps(acc);
  }
  // Softmax numerators and their sum.
  __m512 m16 = _mm512_set1_ps(-INFINITY);
  for (j = 0; j < visible; j += 16) {
    __mmask16 mk = visible - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (visible - j)) - 1);
    m16 = _mm512_mask_max_ps(m16, mk, m16, _mm512_maskz_loadu_ps(mk, scores + j));
  }
  __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m16));
  __m512 s16 = _mm512_setzero_ps();
  for (j = 0; j < visible; j += 16) {
    __mmask16 mk = visible - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (visible - j)) - 1);
    __m512 e = _mm512_maskz_mov_ps(mk, exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, scores + j), mx)));
    _mm512_mask_storeu_ps(scores + j, mk, e);
    s16 = _mm512_add_ps(s16, e);
  }
  __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(s16));
  // out = Σ p_j v_j, 64 lanes (4 vectors) per pass over the positions.
  for (int c0 = 0; c0 < chunks; c0 += 4) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int width = chunks - c0 < 4 ? chunks - c0 : 4;
    for (j = 0; j < visible; j++) {
      __m512 p = _mm512_set1_ps(scores[j]);
      for (int c = 0; c < width; c++)
        acc[c] = _mm512_fmadd_ps(p, load_kv(v, j * stride + 16 * (c0 + c), masks[c0 + c], f16), acc[c]);
    }
    for (int c = 0; c < width; c++) _mm512_mask_storeu_ps(out + 16 * (c0 + c), masks[c0 + c], _mm512_mul_ps(acc[c], inv));
  }
}

CK_TARGET static void f32_to_f16_avx512(const float *src, uint16_t *dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(
        (__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; i++) dst[i] = float_to_half(src[i]);
}

CK_TARGET static void f16_to_f32_avx512(const uint16_t *src, float *dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
  for (; i < n; i++) dst[i] = half_to_float(src[i]);
}
#endif

// MARK: - Entry points

void ck_gemm_nt_f32(
    int m, int n0, int n1, int k, const float *x, ptrdiff_t ldx, const float *w, ptrdiff_t ldw, float *y,
    ptrdiff_t ldy, int accumulate) {
  if (m <= 0 || n1 <= n0) return;
#if CK_X86
  if (ck_simd_level() >= 2) {
    gemm_nt_avx512(m, n0, n1, k, x, ldx, w, ldw, 0, y, ldy, accumulate);
    return;
  }
  if (ck_simd_level() >= 1) {
    gemm_nt_avx2(m, n0, n1, k, x, ldx, w, ldw, 0, y, ldy, accumulate);
    return;
  }
#endif
  gemm_nt_portable(m, n0, n1, k, x, ldx, w, ldw, 0, y, ldy, accumulate);
}

void ck_gemm_nt_f16(
    int m, int n0, int n1, int k, const float *x, ptrdiff_t ldx, const uint16_t *w, ptrdiff_t ldw, float *y,
    ptrdiff_t ldy, int accumulate) {
  if (m <= 0 || n1 <= n0) return;
#if CK_X86
  if (ck_simd_level() >= 2) {
    gemm_nt_avx512(m, n0, n1, k, x, ldx, w, ldw, 1, y, ldy, accumulate);
    return;
  }
  if (ck_simd_level() >= 1) {
    gemm_nt_avx2(m, n0, n1, k, x, ldx, w, ldw, 1, y, ldy, accumulate);
    return;
  }
#endif
  gemm_nt_portable(m, n0, n1, k, x, ldx, w, ldw, 1, y, ldy, accumulate);
}

void ck_attend_f32(
    const float *q, const float *k, const float *v, ptrdiff_t stride, int visible, int hd, float scale, float *scores,
    float *out) {
  if (visible <= 0) return;
#if CK_X86
  if (ck_simd_level() >= 2) {
    attend_avx512(q, k, v, 0, stride, visible, hd, scale, scores, out);
    return;
  }
#endif
  attend_portable(q, k, v, 0, stride, visible, hd, scale, scores, out);
}

void ck_attend_f16(
    const float *q, const uint16_t *k, const uint16_t *v, ptrdiff_t stride, int visible, int hd, float scale,
    float *scores, float *out) {
  if (visible <= 0) return;
#if CK_X86
  if (ck_simd_level() >= 2) {
    attend_avx512(q, k, v, 1, stride, visible, hd, scale, scores, out);
    return;
  }
#endif
  attend_portable(q, k, v, 1, stride, visible, hd, scale, scores, out);
}

void ck_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
#if CK_X86
  if (ck_simd_level() >= 2) {
    f32_to_f16_avx512(src, dst, n);
    return;
  }
  if (ck_simd_level() >= 1) {
    f32_to_f16_avx2(src, dst, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) dst[i] = float_to_half(src[i]);
}

void ck_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
#if CK_X86
  if (ck_simd_level() >= 2) {
    f16_to_f32_avx512(src, dst, n);
    return;
  }
  if (ck_simd_level() >= 1) {
    f16_to_f32_avx2(src, dst, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) dst[i] = half_to_float(src[i]);
}
