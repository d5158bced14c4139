module fkb_layer_normalization_r32
  !! The normalization layers in real32; the source is `fkb_layer_normalization.inc`.
  use iso_fortran_env, only: wp => real32
  use fkb_layer_base_r32
  include 'fkb_layer_normalization.inc'
end module fkb_layer_normalization_r32
