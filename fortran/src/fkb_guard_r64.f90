module fkb_guard_r64
  !! The out-of-distribution guard in real64; the source is `fkb_guard.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_dense_kernel, only: dense_kernel_available, kernel_packed_size => dense_packed_size_r64, &
                              kernel_pack_transposed => dense_pack_transposed_r64, &
                              kernel_apply => dense_apply_r64, epilogue_none
  ! the modules fkb_guard.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_spec, only:
  use fkb_status, only:
  use fkb_spec_build, only:
  include 'fkb_guard.inc'
end module fkb_guard_r64
