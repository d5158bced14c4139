/* The thread count of the BLAS under the runtime, where that BLAS lets a
 * program set it (OpenBLAS). fkb_network runs the blocks of a large batch on
 * OpenMP threads and wants one BLAS thread inside each: a threaded OpenBLAS
 * (pthreads build) called from several threads at once serializes on its
 * thread pool and runs three times slower than single-threaded calls.
 *
 * Built with -DFKB_SCIPY_OPENBLAS the library links the OpenBLAS of
 * scipy-openblas32 (symbols prefixed scipy_); otherwise the functions are
 * weak references, resolved when the system BLAS is OpenBLAS and null
 * (count 1, setting ignored) for any other BLAS. */
#ifdef FKB_SCIPY_OPENBLAS
int scipy_openblas_get_num_threads(void);
void scipy_openblas_set_num_threads(int n);

/* Threads the BLAS uses. */
int fkb_blas_get_threads(void) { return scipy_openblas_get_num_threads(); }

/* Use n >= 1 BLAS threads. */
void fkb_blas_set_threads(int n)
{
    if (n >= 1) scipy_openblas_set_num_threads(n);
}
#else
int openblas_get_num_threads(void) __attribute__((weak));
void openblas_set_num_threads(int n) __attribute__((weak));

/* Threads the BLAS uses (1 if it cannot be queried). */
int fkb_blas_get_threads(void)
{
    return openblas_get_num_threads ? openblas_get_num_threads() : 1;
}

/* Use n >= 1 BLAS threads (ignored if the BLAS cannot be told). */
void fkb_blas_set_threads(int n)
{
    if (openblas_set_num_threads && n >= 1) openblas_set_num_threads(n);
}
#endif
