module fkb_layer_activations_r32
  !! The activation layers in real32; the source is `fkb_layer_activations.inc`.
  use iso_fortran_env, only: wp => real32
  use fkb_activations_r32, only: apply_activation, activation_backward
  use fkb_layer_base_r32
  ! the modules fkb_layer_activations.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_spec, only:
  use fkb_status, only:
  use fkb_spec_query, only:
  use fkb_spec_build, only:
  use fkb_activation_codes, only:
  use fkb_batch_blocks, only:
  include 'fkb_layer_activations.inc'
end module fkb_layer_activations_r32
