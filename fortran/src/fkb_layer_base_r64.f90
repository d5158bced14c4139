module fkb_layer_base_r64
  !! The abstract layer and what the layer families share in real64; the source is `fkb_layer_base.inc`.
  use iso_fortran_env, only: wp => real64
  include 'fkb_layer_base.inc'
end module fkb_layer_base_r64
