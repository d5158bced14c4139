module fkb_activations_r64
  !! Activation kernels in real64; the source is `fkb_activations.inc`.
  use iso_fortran_env, only: wp => real64
  ! the modules fkb_activations.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_activation_codes, only:
  use fkb_libm, only:
  include 'fkb_activations.inc'
end module fkb_activations_r64
