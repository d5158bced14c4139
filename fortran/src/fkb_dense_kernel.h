/*
 * The dense-layer kernels of fkb_dense_kernel.c for one real kind: included
 * once per kind with REAL (float or double), NAME(x) (x_r32 or x_r64),
 * LANES (values per 512-bit vector), VEC and MASK (its vector and mask
 * types), FULL_MASK and the V_* vector operations defined. A panel is two
 * vectors of rows: PANEL = 2 LANES. Packing (plain C) is compiled on every
 * machine; the kernels only where AVX-512 can be targeted.
 */

int64_t NAME(fkb_dense_packed_size)(int m, int k)
{
    /* REALs of the buffer for the packed copy of an m x k kernel: the panels
     * and room to start them on a cache line */
    return (int64_t)((m + PANEL - 1) / PANEL) * PANEL * (int64_t)k + CACHE_LINE / (int64_t)sizeof(REAL);
}

static int NAME(pack_strided)(int m, int k, const REAL *w, ptrdiff_t row_stride, ptrdiff_t column_stride,
                             REAL *buffer)
{
    /* Pack A(i, kk) = w[i row_stride + kk column_stride], m x k, into `buffer`
     * (fkb_dense_packed_size values) from its first cache line boundary;
     * returns that offset in values. Aligned panels matter for one column: a
     * vector load that straddles two cache lines made the memory-bound GEMV
     * about 25 % slower (14.1 against 10.5 us through the FKB-paper
     * network). */
    int offset = (int)((CACHE_LINE - (uintptr_t)buffer % CACHE_LINE) % CACHE_LINE / sizeof(REAL));
    REAL *packed = buffer + offset;
    int panels = (m + PANEL - 1) / PANEL;
    /* A is read along its contiguous direction (the optimizer's step
     * repacks every layer's kernel both ways after each update) */
    for (int p = 0; p < panels; p++) {
        REAL *panel = packed + (size_t)p * k * PANEL;
        const REAL *rows = w + (ptrdiff_t)p * PANEL * row_stride;
        const int valid = m - p * PANEL < PANEL ? m - p * PANEL : PANEL;
        if (row_stride == 1) {
            for (int kk = 0; kk < k; kk++) {
                const REAL *from = rows + (ptrdiff_t)kk * column_stride;
                REAL *dst = panel + (size_t)kk * PANEL;
                for (int r = 0; r < valid; r++) dst[r] = from[r];
                for (int r = valid; r < PANEL; r++) dst[r] = 0;
            }
        } else {
            for (int r = 0; r < valid; r++) {
                const REAL *from = rows + (ptrdiff_t)r * row_stride;
                for (int kk = 0; kk < k; kk++) panel[(size_t)kk * PANEL + r] = from[(ptrdiff_t)kk * column_stride];
            }
            for (int r = valid; r < PANEL; r++)
                for (int kk = 0; kk < k; kk++) panel[(size_t)kk * PANEL + r] = 0;
        }
    }
    return offset;
}

int NAME(fkb_dense_pack)(int m, int k, const REAL *w, REAL *buffer)
{
    /* the column-major w(m, k) */
    return NAME(pack_strided)(m, k, w, 1, m, buffer);
}

int NAME(fkb_dense_pack_transposed)(int m, int k, const REAL *w, REAL *buffer)
{
    /* the transpose of the column-major w(k, m): training's W^T dy */
    return NAME(pack_strided)(m, k, w, k, 1, buffer);
}

int64_t NAME(fkb_dense_strips_size)(int rows, int width, int n)
{
    /* REALs of the buffer for rows x n values as strips of `width` rows
     * (fkb_dense_pack_strips), with room to start them on a cache line */
    return (int64_t)((rows + width - 1) / width) * width * (int64_t)n + CACHE_LINE / (int64_t)sizeof(REAL);
}

static REAL *NAME(line_start)(REAL *buffer)
{
    /* the first cache-line boundary in `buffer` */
    return buffer + (CACHE_LINE - (uintptr_t)buffer % CACHE_LINE) % CACHE_LINE / sizeof(REAL);
}

static void NAME(pack_strips_plain)(int rows, int width, int n, int j0, int j1, const REAL *src, int ld,
                                    REAL *strips)
{
    const int groups = (rows + width - 1) / width;
    for (int g = 0; g < groups; g++) {
        const int valid = rows - g * width < width ? rows - g * width : width;
        REAL *dst = strips + (size_t)g * n * width;
        for (int j = j0; j < j1; j++) {
            const REAL *from = src + (ptrdiff_t)j * ld + (ptrdiff_t)g * width;
            for (int r = 0; r < width; r++) dst[(size_t)j * width + r] = r < valid ? from[r] : 0;
        }
    }
}

#if FKB_DENSE_AVX512

static inline MASK NAME(row_mask)(int valid)
{
    /* the first `valid` of LANES rows (valid may be <= 0 or >= LANES) */
    if (valid <= 0) return 0;
    if (valid >= LANES) return FULL_MASK;
    return (MASK)((1u << valid) - 1u);
}

static FKB_AVX512 void NAME(pack_strips_vector)(int rows, int width, int n, int j0, int j1, const REAL *src,
                                               int ld, REAL *strips)
{
    /* fkb_dense_pack_strips with masked vector copies (rows past `rows`
     * are not read) */
    const int groups = (rows + width - 1) / width;
    for (int g = 0; g < groups; g++) {
        REAL *dst = strips + (size_t)g * n * width;
        for (int c = 0; c < width; c += LANES) {
            const MASK store = NAME(row_mask)(width - c);
            const MASK load = store & NAME(row_mask)(rows - g * width - c);
            const REAL *from = src + (ptrdiff_t)g * width + c;
            for (int j = j0; j < j1; j++)
                V_MASK_STORE(dst + (size_t)j * width + c, store, V_MASKZ_LOAD(load, from + (ptrdiff_t)j * ld));
        }
    }
}

/* Bias, activation and a masked store of one vector of rows. `aux` (or
 * NULL) is the same rows of a second array: with a relu or leaky relu it
 * receives the value before the activation (training keeps both); with an
 * activation's gradient it holds a value positive where that activation's
 * input z is, and dst += act'(z) v (or dst = act'(z) v) with act'(z) = 1
 * where z > 0, else alpha (0 for relu). */
static inline FKB_AVX512 void NAME(finish)(VEC v, const REAL *bias, MASK rows, int epilogue,
                                       VEC alpha, REAL *dst, REAL *aux)
{
    const VEC zero = V_ZERO();
    if (bias != NULL) v = V_ADD(v, V_MASKZ_LOAD(rows, bias));
    if (epilogue == EPILOGUE_ACCUMULATE) {
        v = V_ADD(V_MASKZ_LOAD(rows, dst), v);
    } else if (epilogue == EPILOGUE_ACCUMULATE_RELU_GRAD || epilogue == EPILOGUE_ACCUMULATE_LEAKY_GRAD) {
        const MASK positive = V_CMP_GT_MASK(rows, V_MASKZ_LOAD(rows, aux), zero);
        const VEC slope = epilogue == EPILOGUE_ACCUMULATE_RELU_GRAD ? zero : alpha;
        v = V_ADD(V_MASKZ_LOAD(rows, dst), V_MASK_BLEND(positive, V_MUL(slope, v), v));
    } else if (epilogue == EPILOGUE_RELU_GRAD || epilogue == EPILOGUE_LEAKY_GRAD) {
        const MASK positive = V_CMP_GT_MASK(rows, V_MASKZ_LOAD(rows, aux), zero);
        const VEC slope = epilogue == EPILOGUE_RELU_GRAD ? zero : alpha;
        v = V_MASK_BLEND(positive, V_MUL(slope, v), v);
    } else if (epilogue == EPILOGUE_RELU) {
        if (aux != NULL) V_MASK_STORE(aux, rows, v);
        v = V_MAX(zero, v);               /* keeps a NaN */
    } else if (epilogue == EPILOGUE_LEAKY_RELU) { /* max(v, 0) + alpha min(v, 0), as the Fortran */
        if (aux != NULL) V_MASK_STORE(aux, rows, v);
        v = V_ADD(V_MAX(zero, v), V_MUL(alpha, V_MIN(zero, v)));
    }
    V_MASK_STORE(dst, rows, v);
}

/* One PANEL x TILE_COLUMNS tile; columns from nc on repeat column 0 and are
 * not stored. Without `both` (a last panel of at most LANES valid rows)
 * only its first vector of rows is computed. */
static inline __attribute__((always_inline)) FKB_AVX512 void NAME(tile_body)(
    const int both, int k, const REAL *ap, const REAL *x, ptrdiff_t ldx, int nc, REAL *y, ptrdiff_t ldy,
    int valid_rows, const REAL *bias, int epilogue, VEC alpha, REAL *aux, ptrdiff_t ldaux)
{
#define COLUMN(j) (x + (ptrdiff_t)((j) < nc ? (j) : 0) * ldx)
    const REAL *x0 = COLUMN(0), *x1 = COLUMN(1), *x2 = COLUMN(2), *x3 = COLUMN(3);
    const REAL *x4 = COLUMN(4), *x5 = COLUMN(5), *x6 = COLUMN(6), *x7 = COLUMN(7);
    const REAL *x8 = COLUMN(8), *x9 = COLUMN(9), *x10 = COLUMN(10), *x11 = COLUMN(11);
#undef COLUMN
    VEC c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b;
    VEC c6a, c6b, c7a, c7b, c8a, c8b, c9a, c9b, c10a, c10b, c11a, c11b;
    c0a = c0b = c1a = c1b = c2a = c2b = c3a = c3b = c4a = c4b = c5a = c5b = V_ZERO();
    c6a = c6b = c7a = c7b = c8a = c8b = c9a = c9b = c10a = c10b = c11a = c11b = V_ZERO();
    for (int kk = 0; kk < k; kk++) {
        const VEC a = V_LOAD(ap + (size_t)kk * PANEL);
        const VEC b = both ? V_LOAD(ap + (size_t)kk * PANEL + LANES) : a;
        VEC s;
#define STEP(ca, cb, xj) s = V_SET1(xj[kk]); ca = V_FMADD(a, s, ca); if (both) cb = V_FMADD(b, s, cb);
        STEP(c0a, c0b, x0) STEP(c1a, c1b, x1) STEP(c2a, c2b, x2) STEP(c3a, c3b, x3)
        STEP(c4a, c4b, x4) STEP(c5a, c5b, x5) STEP(c6a, c6b, x6) STEP(c7a, c7b, x7)
        STEP(c8a, c8b, x8) STEP(c9a, c9b, x9) STEP(c10a, c10b, x10) STEP(c11a, c11b, x11)
#undef STEP
    }
    const MASK ma = NAME(row_mask)(valid_rows), mb = both ? NAME(row_mask)(valid_rows - LANES) : 0;
    const REAL *ba = bias, *bb = bias == NULL ? NULL : bias + LANES;
    if (bb != NULL && mb == 0) bb = NULL;  /* never read past the bias */
#define AUX(j, lane) (aux == NULL ? NULL : aux + (ptrdiff_t)(j) * ldaux + (lane))
#define STORE(j, ca, cb) if ((j) < nc) { \
        NAME(finish)(ca, ba, ma, epilogue, alpha, y + (ptrdiff_t)(j) * ldy, AUX(j, 0)); \
        if (mb != 0) NAME(finish)(cb, bb, mb, epilogue, alpha, y + (ptrdiff_t)(j) * ldy + LANES, AUX(j, LANES)); }
    STORE(0, c0a, c0b) STORE(1, c1a, c1b) STORE(2, c2a, c2b) STORE(3, c3a, c3b)
    STORE(4, c4a, c4b) STORE(5, c5a, c5b) STORE(6, c6a, c6b) STORE(7, c7a, c7b)
    STORE(8, c8a, c8b) STORE(9, c9a, c9b) STORE(10, c10a, c10b) STORE(11, c11a, c11b)
#undef STORE
#undef AUX
}

static FKB_AVX512 void NAME(tile)(int k, const REAL *ap, const REAL *x, ptrdiff_t ldx, int nc,
                            REAL *y, ptrdiff_t ldy, int valid_rows, const REAL *bias, int epilogue,
                            VEC alpha, REAL *aux, ptrdiff_t ldaux)
{
    NAME(tile_body)(1, k, ap, x, ldx, nc, y, ldy, valid_rows, bias, epilogue, alpha, aux, ldaux);
}

static FKB_AVX512 void NAME(tile_one_vector)(int k, const REAL *ap, const REAL *x, ptrdiff_t ldx, int nc,
                                       REAL *y, ptrdiff_t ldy, int valid_rows, const REAL *bias,
                                       int epilogue, VEC alpha, REAL *aux, ptrdiff_t ldaux)
{
    NAME(tile_body)(0, k, ap, x, ldx, nc, y, ldy, valid_rows, bias, epilogue, alpha, aux, ldaux);
}

/* One column through `count` (1 to 4) consecutive panels at once. */
static inline __attribute__((always_inline)) FKB_AVX512 void NAME(column_panels)(
    const int count, int k, const REAL *ap, const REAL *x, REAL *y, int m, int row0,
    const REAL *bias, int epilogue, VEC alpha, REAL *aux)
{
    VEC acc[8];
    const REAL *panel[4];
#pragma GCC unroll 4
    for (int g = 0; g < count; g++) {
        acc[2 * g] = acc[2 * g + 1] = V_ZERO();
        panel[g] = ap + (size_t)g * k * PANEL;
    }
    for (int kk = 0; kk < k; kk++) {
        const VEC s = V_SET1(x[kk]);
        /* the hardware prefetchers alone leave the loads waiting on L2:
         * ask for the panels' rows PREFETCH_STEPS steps ahead (measured on
         * panels off the cache lines: 2.9 against 3.5 us for 256 x 256) */
#pragma GCC unroll 4
        for (int g = 0; g < count; g++) {
            _mm_prefetch((const char *)(panel[g] + (size_t)(kk + PREFETCH_STEPS) * PANEL), _MM_HINT_T0);
            _mm_prefetch((const char *)(panel[g] + (size_t)(kk + PREFETCH_STEPS) * PANEL + LANES), _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int g = 0; g < count; g++) {
            acc[2 * g] = V_FMADD(V_LOAD(panel[g] + (size_t)kk * PANEL), s, acc[2 * g]);
            acc[2 * g + 1] = V_FMADD(V_LOAD(panel[g] + (size_t)kk * PANEL + LANES), s,
                                             acc[2 * g + 1]);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < count; g++) {
        int r = row0 + g * PANEL;
        MASK ma = NAME(row_mask)(m - r), mb = NAME(row_mask)(m - r - LANES);
        NAME(finish)(acc[2 * g], bias == NULL ? NULL : bias + r, ma, epilogue, alpha, y + r,
                     aux == NULL ? NULL : aux + r);
        if (mb != 0)
            NAME(finish)(acc[2 * g + 1], bias == NULL ? NULL : bias + r + LANES, mb, epilogue, alpha,
                         y + r + LANES, aux == NULL ? NULL : aux + r + LANES);
    }
}

static FKB_AVX512 void NAME(column)(int m, int k, const REAL *packed, const REAL *x, const REAL *bias,
                              int epilogue, VEC alpha, REAL *y, REAL *aux, int p, int panels)
{
    /* panels p .. panels - 1 of one column */
    for (; p + 4 <= panels; p += 4)
        NAME(column_panels)(4, k, packed + (size_t)p * k * PANEL, x, y, m, p * PANEL, bias, epilogue, alpha, aux);
    if (p + 2 <= panels) {
        NAME(column_panels)(2, k, packed + (size_t)p * k * PANEL, x, y, m, p * PANEL, bias, epilogue, alpha, aux);
        p += 2;
    }
    if (p < panels)
        NAME(column_panels)(1, k, packed + (size_t)p * k * PANEL, x, y, m, p * PANEL, bias, epilogue, alpha, aux);
}

static inline void NAME(prefetch_rows)(const REAL *y, ptrdiff_t ldy, int nc)
{
    /* PANEL rows of nc columns into L2 */
    for (int c = 0; c < nc; c++) {
        const REAL *col = y + (ptrdiff_t)c * ldy;
        _mm_prefetch((const char *)col, _MM_HINT_T1);
        _mm_prefetch((const char *)(col + LANES), _MM_HINT_T1);
        _mm_prefetch((const char *)(col + PANEL - 1), _MM_HINT_T1);
    }
}

static FKB_AVX512 void NAME(column_part)(int m, int k, const REAL *packed, const REAL *x, const REAL *bias,
                                   int epilogue, REAL alpha, REAL *y, int p0, int p1)
{
    NAME(column)(m, k, packed, x, bias, epilogue, V_SET1(alpha), y, NULL, p0, p1);
}

static FKB_AVX512 void NAME(apply)(int m, int k, int n, const REAL *packed, const REAL *x, int ldx,
                             const REAL *bias, int epilogue, REAL alpha, REAL *y, int ldy,
                             REAL *aux, int ldaux)
{
    const VEC va = V_SET1(alpha);
    const int panels = (m + PANEL - 1) / PANEL;
    if (n == 1) {
        NAME(column)(m, k, packed, x, bias, epilogue, va, y, aux, 0, panels);
        return;
    }
    /* where the epilogue reads (training's dx += W^T dz, through an
     * activation: both arrays come from memory), the next tile's rows are
     * prefetched into L2 while this one runs; a forward pass's stores go to
     * rows in cache (measured: 1-2 % slower inference with the prefetch) */
    const int prefetch = aux != NULL || epilogue >= EPILOGUE_ACCUMULATE;
    for (int j = 0; j < n; j += TILE_COLUMNS) {
        int nc = n - j < TILE_COLUMNS ? n - j : TILE_COLUMNS;
        for (int p = 0; p < panels; p++) {
            /* the next tile's output (and aux) rows, or the epilogue
             * would wait on each of their cache lines */
            const int pn = p + 1 < panels ? p + 1 : 0, jn = p + 1 < panels ? j : j + TILE_COLUMNS;
            if (prefetch && jn < n) {
                const int ncn = n - jn < TILE_COLUMNS ? n - jn : TILE_COLUMNS;
                NAME(prefetch_rows)(y + pn * PANEL + (ptrdiff_t)jn * ldy, ldy, ncn);
                if (aux != NULL) NAME(prefetch_rows)(aux + pn * PANEL + (ptrdiff_t)jn * ldaux, ldaux, ncn);
            }
            (m - p * PANEL > LANES ? NAME(tile) : NAME(tile_one_vector))(
                k, packed + (size_t)p * k * PANEL, x + (ptrdiff_t)j * ldx, ldx, nc,
                y + p * PANEL + (ptrdiff_t)j * ldy, ldy, m - p * PANEL,
                bias == NULL ? NULL : bias + p * PANEL, epilogue, va,
                aux == NULL ? NULL : aux + p * PANEL + (ptrdiff_t)j * ldaux, ldaux);
        }
    }
}

/* The weight gradient's tile with x in strips (fkb_dense_pack_strips):
 * the PANEL rows of dy at column j are dy[j lddy ..] (rows past the mask
 * not read), the TILE_COLUMNS values of x at bp[j TILE_COLUMNS ..]; columns
 * from nc on are zero there and not stored. */
static inline __attribute__((always_inline)) FKB_AVX512 void NAME(strip_tile_body)(
    const int with_db, const int both, int n, const REAL *dy, ptrdiff_t lddy, const REAL *bp, MASK ma,
    MASK mb, int nc, REAL *dw, ptrdiff_t lddw, REAL *db)
{
    /* without `both` (mb = 0: the last panel of m, at most LANES rows)
     * only the first vector of rows is computed */
    VEC c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b;
    VEC c6a, c6b, c7a, c7b, c8a, c8b, c9a, c9b, c10a, c10b, c11a, c11b, da, dbv;
    c0a = c0b = c1a = c1b = c2a = c2b = c3a = c3b = c4a = c4b = c5a = c5b = V_ZERO();
    c6a = c6b = c7a = c7b = c8a = c8b = c9a = c9b = c10a = c10b = c11a = c11b = V_ZERO();
    da = dbv = V_ZERO();
    for (int j = 0; j < n; j++) {
        const REAL *dyj = dy + (ptrdiff_t)j * lddy;
        /* every cache line the rows span (three for a panel off the lines) */
        const REAL *ahead = dyj + GRAD_PREFETCH_COLUMNS * lddy;
        _mm_prefetch((const char *)ahead, _MM_HINT_T0);
        if (both) _mm_prefetch((const char *)(ahead + LANES), _MM_HINT_T0);
        _mm_prefetch((const char *)(ahead + (both ? PANEL : LANES) - 1), _MM_HINT_T0);
        const VEC a = V_MASKZ_LOAD(ma, dyj);
        const VEC b = both ? V_MASKZ_LOAD(mb, dyj + LANES) : a;
        const REAL *xj = bp + (size_t)j * TILE_COLUMNS;
        VEC s;
#define STEP(ca, cb, c) s = V_SET1(xj[c]); ca = V_FMADD(a, s, ca); if (both) cb = V_FMADD(b, s, cb);
        STEP(c0a, c0b, 0) STEP(c1a, c1b, 1) STEP(c2a, c2b, 2) STEP(c3a, c3b, 3)
        STEP(c4a, c4b, 4) STEP(c5a, c5b, 5) STEP(c6a, c6b, 6) STEP(c7a, c7b, 7)
        STEP(c8a, c8b, 8) STEP(c9a, c9b, 9) STEP(c10a, c10b, 10) STEP(c11a, c11b, 11)
#undef STEP
        if (with_db) {
            da = V_ADD(da, a);
            if (both) dbv = V_ADD(dbv, b);
        }
    }
#define STORE(c, ca, cb) if ((c) < nc) { V_MASK_STORE(dw + (ptrdiff_t)(c) * lddw, ma, ca); \
        if (mb != 0) V_MASK_STORE(dw + (ptrdiff_t)(c) * lddw + LANES, mb, cb); }
    STORE(0, c0a, c0b) STORE(1, c1a, c1b) STORE(2, c2a, c2b) STORE(3, c3a, c3b)
    STORE(4, c4a, c4b) STORE(5, c5a, c5b) STORE(6, c6a, c6b) STORE(7, c7a, c7b)
    STORE(8, c8a, c8b) STORE(9, c9a, c9b) STORE(10, c10a, c10b) STORE(11, c11a, c11b)
#undef STORE
    if (with_db) {
        V_MASK_STORE(db, ma, da);
        if (mb != 0) V_MASK_STORE(db + LANES, mb, dbv);
    }
}

static FKB_AVX512 void NAME(strip_tile)(int n, const REAL *dy, ptrdiff_t lddy, const REAL *bp, MASK ma,
                                       MASK mb, int nc, REAL *dw, ptrdiff_t lddw)
{
    if (mb != 0)
        NAME(strip_tile_body)(0, 1, n, dy, lddy, bp, ma, mb, nc, dw, lddw, NULL);
    else
        NAME(strip_tile_body)(0, 0, n, dy, lddy, bp, ma, mb, nc, dw, lddw, NULL);
}

static FKB_AVX512 void NAME(strip_tile_db)(int n, const REAL *dy, ptrdiff_t lddy, const REAL *bp, MASK ma,
                                          MASK mb, int nc, REAL *dw, ptrdiff_t lddw, REAL *db)
{
    if (mb != 0)
        NAME(strip_tile_body)(1, 1, n, dy, lddy, bp, ma, mb, nc, dw, lddw, db);
    else
        NAME(strip_tile_body)(1, 0, n, dy, lddy, bp, ma, mb, nc, dw, lddw, db);
}

void NAME(fkb_dense_weight_grad_strips)(int m, int k, int n, const REAL *dy, int lddy, REAL *x_strips,
                                        REAL *dw, int lddw, REAL *db, int use_db, int row0, int col0,
                                        int col1)
{
    /* Training's weight gradient, rows row0 .. row0 + PANEL - 1 (at most m)
     * and columns col0 .. col1 - 1 of dw(i, c) = sum_j dy(i, j) x(c, j), with
     * x in strips of TILE_COLUMNS rows (fkb_dense_pack_strips), and with
     * use_db and col0 = 0 the same rows of db(i) = sum_j dy(i, j): each
     * element one chain of multiply-adds over j in order, so the bits do
     * not depend on how the tiles are shared among threads */
    const MASK ma = NAME(row_mask)(m - row0), mb = NAME(row_mask)(m - row0 - LANES);
    const REAL *xs = NAME(line_start)(x_strips);
    (void)k;
    for (int c = col0; c < col1; c += TILE_COLUMNS) {
        const int nc = col1 - c < TILE_COLUMNS ? col1 - c : TILE_COLUMNS;
        const REAL *bp = xs + (size_t)(c / TILE_COLUMNS) * n * TILE_COLUMNS;
        REAL *tile = dw + row0 + (ptrdiff_t)c * lddw;
        if (use_db && c == col0)
            NAME(strip_tile_db)(n, dy + row0, lddy, bp, ma, mb, nc, tile, lddw, db + row0);
        else
            NAME(strip_tile)(n, dy + row0, lddy, bp, ma, mb, nc, tile, lddw);
    }
}

void NAME(fkb_dense_apply_aux)(int m, int k, int n, const REAL *packed, const REAL *x, int ldx,
                               const REAL *bias, int use_bias, int epilogue, REAL alpha, REAL *y, int ldy,
                               REAL *aux, int ldaux)
{
    NAME(apply)(m, k, n, packed, x, ldx, use_bias ? bias : NULL, epilogue, alpha, y, ldy, aux, ldaux);
}

void NAME(fkb_dense_apply_part)(int m, int k, const REAL *packed, const REAL *x, const REAL *bias, int use_bias,
                                int epilogue, REAL alpha, REAL *y, int part, int parts)
{
    /* fkb_dense_apply of one column, panels of rows part * panels / parts ..
     * (part + 1) * panels / parts - 1 only: the parts of a column computed
     * on `parts` threads together, each element as in the whole call */
    const int panels = (m + PANEL - 1) / PANEL;
    NAME(column_part)(m, k, packed, x, use_bias ? bias : NULL, epilogue, alpha, y,
                      (int)((int64_t)part * panels / parts), (int)((int64_t)(part + 1) * panels / parts));
}

#else

/* The same arithmetic in plain C, where AVX-512 cannot be targeted (the
 * library then calls the BLAS instead: fkb_dense_kernel_available is 0). */
void NAME(fkb_dense_apply_aux)(int m, int k, int n, const REAL *packed, const REAL *x, int ldx,
                               const REAL *bias, int use_bias, int epilogue, REAL alpha, REAL *y, int ldy,
                               REAL *aux, int ldaux)
{
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            const REAL *a = packed + (size_t)(i / PANEL) * k * PANEL + i % PANEL;
            REAL *z = aux == NULL ? NULL : aux + i + (ptrdiff_t)j * ldaux;
            REAL v = 0;
            for (int kk = 0; kk < k; kk++) v = FMA(a[(size_t)kk * PANEL], x[kk + (ptrdiff_t)j * ldx], v);
            if (use_bias) v = v + bias[i];
            if ((epilogue == EPILOGUE_RELU || epilogue == EPILOGUE_LEAKY_RELU) && z != NULL) *z = v;
            if (epilogue == EPILOGUE_ACCUMULATE) v = y[i + (ptrdiff_t)j * ldy] + v;
            else if (epilogue == EPILOGUE_ACCUMULATE_RELU_GRAD) v = y[i + (ptrdiff_t)j * ldy] + (*z > 0 ? v : 0 * v);
            else if (epilogue == EPILOGUE_ACCUMULATE_LEAKY_GRAD) v = y[i + (ptrdiff_t)j * ldy] + (*z > 0 ? v : alpha * v);
            else if (epilogue == EPILOGUE_RELU_GRAD) v = *z > 0 ? v : 0 * v;
            else if (epilogue == EPILOGUE_LEAKY_GRAD) v = *z > 0 ? v : alpha * v;
            else if (epilogue == EPILOGUE_RELU) v = v > 0 || v != v ? v : 0;
            else if (epilogue == EPILOGUE_LEAKY_RELU) v = (v > 0 ? v : 0) + alpha * (v < 0 ? v : 0);
            y[i + (ptrdiff_t)j * ldy] = v;
        }
}


void NAME(fkb_dense_apply_part)(int m, int k, const REAL *packed, const REAL *x, const REAL *bias, int use_bias,
                                int epilogue, REAL alpha, REAL *y, int part, int parts)
{
    /* the whole column on part 0 (the library calls the BLAS here anyway) */
    if (part == 0) NAME(fkb_dense_apply_aux)(m, k, 1, packed, x, k, bias, use_bias, epilogue, alpha, y, m, NULL, 0);
    (void)parts;
}

void NAME(fkb_dense_weight_grad_strips)(int m, int k, int n, const REAL *dy, int lddy, REAL *x_strips,
                                        REAL *dw, int lddw, REAL *db, int use_db, int row0, int col0,
                                        int col1)
{
    const REAL *xs = NAME(line_start)(x_strips);
    int rows = m - row0 < PANEL ? m - row0 : PANEL;
    (void)k;
    for (int i = row0; i < row0 + rows; i++) {
        for (int c = col0; c < col1; c++) {
            const REAL *bp = xs + (size_t)(c / TILE_COLUMNS) * n * TILE_COLUMNS + c % TILE_COLUMNS;
            REAL v = 0;
            for (int j = 0; j < n; j++) v = FMA(dy[i + (ptrdiff_t)j * lddy], bp[(size_t)j * TILE_COLUMNS], v);
            dw[i + (ptrdiff_t)c * lddw] = v;
        }
        if (use_db && col0 == 0) {
            REAL v = 0;
            for (int j = 0; j < n; j++) v = v + dy[i + (ptrdiff_t)j * lddy];
            db[i] = v;
        }
    }
}

#endif

void NAME(fkb_dense_apply)(int m, int k, int n, const REAL *packed, const REAL *x, int ldx,
                           const REAL *bias, int use_bias, int epilogue, REAL alpha, REAL *y, int ldy)
{
    NAME(fkb_dense_apply_aux)(m, k, n, packed, x, ldx, bias, use_bias, epilogue, alpha, y, ldy, NULL, 0);
}

void NAME(fkb_dense_pack_strips)(int rows, int width, int n, int j0, int j1, const REAL *src, int ld,
                                 REAL *buffer)
{
    /* Columns j0 .. j1 - 1 of the rows x n matrix src (leading dimension
     * ld) into `buffer` as strips of `width` rows: strip g holds rows
     * g width .. g width + width - 1 of column j at
     * [(g n + j) width ..], rows past `rows` zero; from the buffer's first
     * cache line. The weight gradient then streams each strip in order
     * instead of striding through the workspace, column by column. Strip
     * after strip, so that the copies are written in order (column after
     * column, into every strip at once, measured 5x slower). */
    REAL *strips = NAME(line_start)(buffer);
#if FKB_DENSE_AVX512
    if (avx512_present()) {
        NAME(pack_strips_vector)(rows, width, n, j0, j1, src, ld, strips);
        return;
    }
#endif
    NAME(pack_strips_plain)(rows, width, n, j0, j1, src, ld, strips);
}
