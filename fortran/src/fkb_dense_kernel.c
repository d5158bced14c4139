/*
 * Dense layers on weights packed once per layer, with AVX-512F kernels chosen
 * at run time: without AVX-512, or with FKB_DENSE_KERNEL=blas in the
 * environment, fkb_dense_kernel_available() is 0 and the library calls the
 * BLAS instead.
 *
 *     y(:, j) = act(W x(:, j) + b)    for the columns j = 1..n of a batch
 *
 * column-major, W of m rows and k columns. The packed copy of W holds panels
 * of PANEL rows (two vectors): panel p is W(PANEL p + 1 : PANEL p + PANEL, kk)
 * for kk = 1..k one after the other (rows past m are zero), so that a kernel
 * streams it in order. A batch runs in tiles of PANEL rows by TILE_COLUMNS
 * columns held in 24 of the 32 vector registers while the panel streams
 * through them; the x values are broadcast straight from the caller's columns
 * (no packing of x). One column (a GEMV, bound by the speed of reading W)
 * interleaves up to four panels to hide the latency of the multiply-add.
 * The activation after the bias (none, relu or leaky relu) is applied in
 * registers before the store; or the result is added to what y holds
 * (training's dx += W^T dy, on a packed copy of W^T).
 *
 * Training's weight gradient dW = dy x^T (and the bias gradient, the row sums
 * of dy) runs in tiles of PANEL rows of dW by TILE_COLUMNS of its columns
 * that stream the batch's columns j, x read from a copy in strips of
 * TILE_COLUMNS rows, each strip column after column (the training forward
 * pass copies each block of its input while in cache): each element is one
 * chain of fused multiply-adds over j in order, so the result does not
 * depend on how the tiles are shared among threads. The epilogue of
 * dx = W^T dy can also carry the gradient through a relu or leaky relu
 * (y += or = merge(1, alpha, a > 0) v, a read from a second array), and the
 * forward pass can keep the value before a relu or leaky relu in one.
 *
 * Every output element is one chain of fused multiply-adds over kk = 1..k in
 * order, then + b, then the activation. So a column's result has the same
 * bits in a batch of any width, at any tile position and in the one-column
 * path; it is also what a BLAS whose kernel accumulates in that order gives
 * (OpenBLAS's single-threaded SGEMM does, for k up to its blocking depth).
 *
 * The kind-generic code is fkb_dense_kernel.h, included once per real kind.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { TILE_COLUMNS = 12, PREFETCH_STEPS = 8, GRAD_PREFETCH_COLUMNS = 8, CACHE_LINE = 64 };

/* What follows the bias: the values of fkb_dense_kernel's epilogue_* */
enum { EPILOGUE_NONE = 0, EPILOGUE_RELU = 1, EPILOGUE_LEAKY_RELU = 2, EPILOGUE_ACCUMULATE = 3,
       EPILOGUE_ACCUMULATE_RELU_GRAD = 4, EPILOGUE_ACCUMULATE_LEAKY_GRAD = 5, EPILOGUE_RELU_GRAD = 6,
       EPILOGUE_LEAKY_GRAD = 7 };

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FKB_DENSE_AVX512 1
#include <immintrin.h>
#define FKB_AVX512 __attribute__((target("avx512f,fma")))
#else
#define FKB_DENSE_AVX512 0
#endif

int fkb_dense_tile_columns(void)
{
    /* columns a batch is computed in at a time: blocks of a multiple of it
     * waste nothing */
    return TILE_COLUMNS;
}

#if FKB_DENSE_AVX512
static int avx512_present(void)
{
    /* whether this CPU runs the AVX-512 code (asked once) */
    static int present = -1;
    if (present < 0) {
        __builtin_cpu_init();
        present = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return present;
}
#endif

int fkb_dense_kernel_available(void)
{
    const char *choice = getenv("FKB_DENSE_KERNEL");
    if (choice != NULL && strcmp(choice, "blas") == 0) return 0;
#if FKB_DENSE_AVX512
    return avx512_present();
#else
    return 0;
#endif
}

#define REAL float
#define NAME(x) x##_r32
#define LANES 16
#define PANEL 32
#define FMA fmaf
#if FKB_DENSE_AVX512
#define VEC __m512
#define MASK __mmask16
#define FULL_MASK 0xFFFF
#define V_ZERO _mm512_setzero_ps
#define V_LOAD _mm512_loadu_ps
#define V_SET1 _mm512_set1_ps
#define V_FMADD _mm512_fmadd_ps
#define V_ADD _mm512_add_ps
#define V_MUL _mm512_mul_ps
#define V_MAX _mm512_max_ps
#define V_MIN _mm512_min_ps
#define V_MASKZ_LOAD _mm512_maskz_loadu_ps
#define V_MASK_STORE _mm512_mask_storeu_ps
#define V_CMP_GT_MASK(k, a, b) _mm512_mask_cmp_ps_mask(k, a, b, _CMP_GT_OQ)
#define V_MASK_BLEND _mm512_mask_blend_ps
#endif
#include "fkb_dense_kernel.h"
#undef REAL
#undef NAME
#undef LANES
#undef PANEL
#undef FMA
#if FKB_DENSE_AVX512
#undef VEC
#undef MASK
#undef FULL_MASK
#undef V_ZERO
#undef V_LOAD
#undef V_SET1
#undef V_FMADD
#undef V_ADD
#undef V_MUL
#undef V_MAX
#undef V_MIN
#undef V_MASKZ_LOAD
#undef V_MASK_STORE
#undef V_CMP_GT_MASK
#undef V_MASK_BLEND
#endif

#define REAL double
#define NAME(x) x##_r64
#define LANES 8
#define PANEL 16
#define FMA fma
#if FKB_DENSE_AVX512
#define VEC __m512d
#define MASK __mmask8
#define FULL_MASK 0xFF
#define V_ZERO _mm512_setzero_pd
#define V_LOAD _mm512_loadu_pd
#define V_SET1 _mm512_set1_pd
#define V_FMADD _mm512_fmadd_pd
#define V_ADD _mm512_add_pd
#define V_MUL _mm512_mul_pd
#define V_MAX _mm512_max_pd
#define V_MIN _mm512_min_pd
#define V_MASKZ_LOAD _mm512_maskz_loadu_pd
#define V_MASK_STORE _mm512_mask_storeu_pd
#define V_CMP_GT_MASK(k, a, b) _mm512_mask_cmp_pd_mask(k, a, b, _CMP_GT_OQ)
#define V_MASK_BLEND _mm512_mask_blend_pd
#endif
#include "fkb_dense_kernel.h"
