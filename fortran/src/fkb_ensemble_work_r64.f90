module fkb_ensemble_work_r64
  !! The work arrays of `ensemble_any` in real64; the source is `fkb_ensemble_work.inc`.
  use iso_fortran_env, only: wp => real64
  ! the modules fkb_ensemble_work.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_status, only:
  include 'fkb_ensemble_work.inc'
end module fkb_ensemble_work_r64
