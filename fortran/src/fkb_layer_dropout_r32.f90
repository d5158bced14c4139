module fkb_layer_dropout_r32
  !! Dropout and the noise layers in real32; the source is `fkb_layer_dropout.inc`.
  use iso_fortran_env, only: wp => real32
  use fkb_layer_base_r32
  include 'fkb_layer_dropout.inc'
end module fkb_layer_dropout_r32
