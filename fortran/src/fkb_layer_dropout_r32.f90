module fkb_layer_dropout_r32
  !! Dropout and the noise layers in real32; the source is `fkb_layer_dropout.inc`.
  use iso_fortran_env, only: wp => real32
  use fkb_layer_base_r32
  ! the modules fkb_layer_dropout.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_spec, only:
  use fkb_status, only:
  use fkb_spec_query, only:
  use fkb_spec_build, only:
  use fkb_activation_codes, only:
  use fkb_batch_blocks, only:
  use fkb_lehmer, only:
  include 'fkb_layer_dropout.inc'
end module fkb_layer_dropout_r32
