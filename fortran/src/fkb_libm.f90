module fkb_libm
  !! `log1p` and `expm1` from the C standard library (C99), which Fortran
  !! lacks. They keep softplus, ELU, SELU and CELU accurate to the last bit for
  !! arguments near zero, as TensorFlow's kernels are.
  use iso_c_binding, only: c_float, c_double
  implicit none
  private
  public :: log1p, expm1

  interface log1p
    !! log(1 + x)
    pure function log1pf(x) bind(c, name='log1pf') result(y)
      import :: c_float
      real(c_float), value :: x
      real(c_float) :: y
    end function log1pf
    pure function log1p_double(x) bind(c, name='log1p') result(y)
      import :: c_double
      real(c_double), value :: x
      real(c_double) :: y
    end function log1p_double
  end interface log1p

  interface expm1
    !! exp(x) - 1
    pure function expm1f(x) bind(c, name='expm1f') result(y)
      import :: c_float
      real(c_float), value :: x
      real(c_float) :: y
    end function expm1f
    pure function expm1_double(x) bind(c, name='expm1') result(y)
      import :: c_double
      real(c_double), value :: x
      real(c_double) :: y
    end function expm1_double
  end interface expm1

end module fkb_libm
