module fkb_layer_activations_r64
  !! The activation layers in real64; the source is `fkb_layer_activations.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_activations_r64, only: apply_activation, activation_backward
  use fkb_layer_base_r64
  include 'fkb_layer_activations.inc'
end module fkb_layer_activations_r64
