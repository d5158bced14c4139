module fkb_network_r32
  !! The network in real32; the source is `fkb_network.inc`.
  use iso_fortran_env, only: wp => real32
  use fkb_layers_r32, only: layer, layer_slot, new_layer, layer_registry
  use fkb_guard_r32, only: input_guard
  include 'fkb_network.inc'
end module fkb_network_r32
