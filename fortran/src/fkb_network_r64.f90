module fkb_network_r64
  !! The network in real64; the source is `fkb_network.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_layers_r64, only: layer, layer_slot, new_layer, layer_registry
  use fkb_guard_r64, only: input_guard
  ! the modules fkb_network.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_spec, only:
  use fkb_status, only:
  use fkb_optimizers, only:
  use fkb_spec_query, only:
  use fkb_spec_build, only:
  use fkb_files, only:
  use fkb_model_file, only:
  use fkb_blas, only:
  use fkb_dense_kernel, only:
  use fkb_batch_blocks, only:
  use fkb_training_state, only:
  include 'fkb_network.inc'
end module fkb_network_r64
