module fkb_ensemble_r64
  !! The ensemble in real64; the source is `fkb_ensemble.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_network_r64, only: network
  use fkb_layers_r64, only: layer_registry
  include 'fkb_ensemble.inc'
end module fkb_ensemble_r64
