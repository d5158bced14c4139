module fkb_layer_activations_r32
  !! The activation layers in real32; the source is `fkb_layer_activations.inc`.
  use iso_fortran_env, only: wp => real32
  use fkb_activations_r32, only: apply_activation, activation_backward
  use fkb_layer_base_r32
  include 'fkb_layer_activations.inc'
end module fkb_layer_activations_r32
