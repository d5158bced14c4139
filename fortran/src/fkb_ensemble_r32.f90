module fkb_ensemble_r32
  !! The ensemble in real32; the source is `fkb_ensemble.inc`.
  use iso_fortran_env, only: wp => real32
  use fkb_network_r32, only: network
  use fkb_layers_r32, only: layer_registry
  include 'fkb_ensemble.inc'
end module fkb_ensemble_r32
