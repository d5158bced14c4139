module fkb_layer_dropout_r64
  !! Dropout and the noise layers in real64; the source is `fkb_layer_dropout.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_layer_base_r64
  include 'fkb_layer_dropout.inc'
end module fkb_layer_dropout_r64
