#ifdef FKB_SCIPY_OPENBLAS
#define BLAS_PREFIX 'scipy_'
#else
#define BLAS_PREFIX ''
#endif
module fkb_blas
  !! Explicit interfaces to the four BLAS routines the networks use. The
  !! kind-generic sources pick theirs by renaming on `use`
  !! (`use fkb_blas, only: gemm => sgemm`), because a generic name would not
  !! resolve for the array-element actual arguments below.
  !!
  !! Matrices are passed by their first element and a leading dimension, the
  !! reference BLAS convention, so that a block of rows of a larger workspace
  !! can be used without a copy.
  !!
  !! The routines are bound by their linker names: `sgemm_` etc. of the
  !! system BLAS, or, built with `-DFKB_SCIPY_OPENBLAS`, `scipy_sgemm_` etc.
  !! of the OpenBLAS that PyPI ships for SciPy (package scipy-openblas32,
  !! whose symbols carry that prefix so that it never clashes with another
  !! BLAS in the same process). The character arguments are single
  !! characters passed by reference, which both conventions accept.
  use iso_c_binding, only: c_char, c_int, c_float, c_double
  implicit none
  private
  public :: sgemm, dgemm, sgemv, dgemv, blas_threads, set_blas_threads

  interface
    !! C := alpha op(A) op(B) + beta C
    subroutine sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) &
        bind(C, name=BLAS_PREFIX//'sgemm_')
      import :: c_char, c_int, c_float
      character(kind=c_char, len=1), intent(in) :: transa, transb
      integer(c_int), intent(in) :: m, n, k, lda, ldb, ldc
      real(c_float), intent(in) :: alpha, beta
      real(c_float), intent(in) :: a(lda, *), b(ldb, *)
      real(c_float), intent(inout) :: c(ldc, *)
    end subroutine sgemm
    subroutine dgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) &
        bind(C, name=BLAS_PREFIX//'dgemm_')
      import :: c_char, c_int, c_double
      character(kind=c_char, len=1), intent(in) :: transa, transb
      integer(c_int), intent(in) :: m, n, k, lda, ldb, ldc
      real(c_double), intent(in) :: alpha, beta
      real(c_double), intent(in) :: a(lda, *), b(ldb, *)
      real(c_double), intent(inout) :: c(ldc, *)
    end subroutine dgemm
  end interface

  interface
    !! y := alpha op(A) x + beta y
    subroutine sgemv(trans, m, n, alpha, a, lda, x, incx, beta, y, incy) &
        bind(C, name=BLAS_PREFIX//'sgemv_')
      import :: c_char, c_int, c_float
      character(kind=c_char, len=1), intent(in) :: trans
      integer(c_int), intent(in) :: m, n, lda, incx, incy
      real(c_float), intent(in) :: alpha, beta
      real(c_float), intent(in) :: a(lda, *), x(*)
      real(c_float), intent(inout) :: y(*)
    end subroutine sgemv
    subroutine dgemv(trans, m, n, alpha, a, lda, x, incx, beta, y, incy) &
        bind(C, name=BLAS_PREFIX//'dgemv_')
      import :: c_char, c_int, c_double
      character(kind=c_char, len=1), intent(in) :: trans
      integer(c_int), intent(in) :: m, n, lda, incx, incy
      real(c_double), intent(in) :: alpha, beta
      real(c_double), intent(in) :: a(lda, *), x(*)
      real(c_double), intent(inout) :: y(*)
    end subroutine dgemv
  end interface

  interface
    !! The BLAS's thread count (fkb_blas_threads.c): 1 if it cannot be queried.
    function blas_threads() result(n) bind(C, name='fkb_blas_get_threads')
      import :: c_int
      integer(c_int) :: n
    end function blas_threads
    !! Use `n` BLAS threads (ignored by a BLAS that cannot be told).
    subroutine set_blas_threads(n) bind(C, name='fkb_blas_set_threads')
      import :: c_int
      integer(c_int), value, intent(in) :: n
    end subroutine set_blas_threads
  end interface

end module fkb_blas
