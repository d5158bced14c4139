module fkb_ensemble_work_r32
  !! The work arrays of `ensemble_any` in real32; the source is `fkb_ensemble_work.inc`.
  use iso_fortran_env, only: wp => real32
  ! the modules fkb_ensemble_work.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_status, only:
  include 'fkb_ensemble_work.inc'
end module fkb_ensemble_work_r32
