module fkb_layer_merge_r32
  !! The merge and concatenate layers in real32; the source is `fkb_layer_merge.inc`.
  use iso_fortran_env, only: wp => real32
  use fkb_layer_base_r32
  include 'fkb_layer_merge.inc'
end module fkb_layer_merge_r32
