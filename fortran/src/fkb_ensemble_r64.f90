module fkb_ensemble_r64
  !! The ensemble in real64; the source is `fkb_ensemble.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_network_r64, only: network
  use fkb_layers_r64, only: layer_registry
  ! the modules fkb_ensemble.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_spec, only:
  use fkb_status, only:
  use fkb_spec_build, only:
  use fkb_model_file, only:
  use fkb_dirlist, only:
  use fkb_noise, only:
  use fkb_blas, only:
  include 'fkb_ensemble.inc'
end module fkb_ensemble_r64
