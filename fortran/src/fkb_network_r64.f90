module fkb_network_r64
  !! The network in real64; the source is `fkb_network.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_layers_r64, only: layer, layer_slot, new_layer, layer_registry
  use fkb_guard_r64, only: input_guard
  include 'fkb_network.inc'
end module fkb_network_r64
