module fkb_ensemble_work_r32
  !! `ensemble_any`'s calls of real32 members with real64 arrays; the source
  !! is `fkb_ensemble_work.inc`.
  use iso_fortran_env, only: wp => real32, op => real64
  use fkb_ensemble_r32, only: ensemble
  ! the modules fkb_ensemble_work.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_status, only:
  include 'fkb_ensemble_work.inc'
end module fkb_ensemble_work_r32
