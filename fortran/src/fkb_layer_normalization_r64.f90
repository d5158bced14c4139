module fkb_layer_normalization_r64
  !! The normalization layers in real64; the source is `fkb_layer_normalization.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_layer_base_r64
  include 'fkb_layer_normalization.inc'
end module fkb_layer_normalization_r64
