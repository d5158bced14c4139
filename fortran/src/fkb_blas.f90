module fkb_blas
  !! Explicit interfaces to the four BLAS routines the networks use. The
  !! kind-generic sources pick theirs by renaming on `use`
  !! (`use fkb_blas, only: gemm => sgemm`), because a generic name would not
  !! resolve for the array-element actual arguments below.
  !!
  !! Matrices are passed by their first element and a leading dimension, the
  !! reference BLAS convention, so that a block of rows of a larger workspace
  !! can be used without a copy.
  use iso_fortran_env, only: real32, real64
  implicit none
  private
  public :: sgemm, dgemm, sgemv, dgemv

  interface
    !! C := alpha op(A) op(B) + beta C
    subroutine sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
      import :: real32
      character(len=1), intent(in) :: transa, transb
      integer, intent(in) :: m, n, k, lda, ldb, ldc
      real(real32), intent(in) :: alpha, beta
      real(real32), intent(in) :: a(lda, *), b(ldb, *)
      real(real32), intent(inout) :: c(ldc, *)
    end subroutine sgemm
    subroutine dgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
      import :: real64
      character(len=1), intent(in) :: transa, transb
      integer, intent(in) :: m, n, k, lda, ldb, ldc
      real(real64), intent(in) :: alpha, beta
      real(real64), intent(in) :: a(lda, *), b(ldb, *)
      real(real64), intent(inout) :: c(ldc, *)
    end subroutine dgemm
  end interface

  interface
    !! y := alpha op(A) x + beta y
    subroutine sgemv(trans, m, n, alpha, a, lda, x, incx, beta, y, incy)
      import :: real32
      character(len=1), intent(in) :: trans
      integer, intent(in) :: m, n, lda, incx, incy
      real(real32), intent(in) :: alpha, beta
      real(real32), intent(in) :: a(lda, *), x(*)
      real(real32), intent(inout) :: y(*)
    end subroutine sgemv
    subroutine dgemv(trans, m, n, alpha, a, lda, x, incx, beta, y, incy)
      import :: real64
      character(len=1), intent(in) :: trans
      integer, intent(in) :: m, n, lda, incx, incy
      real(real64), intent(in) :: alpha, beta
      real(real64), intent(in) :: a(lda, *), x(*)
      real(real64), intent(inout) :: y(*)
    end subroutine dgemv
  end interface

end module fkb_blas
