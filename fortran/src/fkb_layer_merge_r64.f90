module fkb_layer_merge_r64
  !! The merge and concatenate layers in real64; the source is `fkb_layer_merge.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_layer_base_r64
  include 'fkb_layer_merge.inc'
end module fkb_layer_merge_r64
