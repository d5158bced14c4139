module fkb_layer_dense_r64
  !! The dense layer in real64; the source is `fkb_layer_dense.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_blas, only: gemm => dgemm, gemv => dgemv
  use fkb_dense_kernel, only: dense_kernel_available, kernel_packed_size => dense_packed_size_r64, &
                              kernel_pack => dense_pack_r64, kernel_apply => dense_apply_r64, &
                              kernel_apply_aux => dense_apply_aux_r64, &
                              kernel_apply_part => dense_apply_part_r64, &
                              kernel_pack_transposed => dense_pack_transposed_r64, &
                              dense_tile_columns, &
                              kernel_strips_size => dense_strips_size_r64, &
                              kernel_pack_strips => dense_pack_strips_r64, &
                              kernel_weight_grad_strips => dense_weight_grad_strips_r64, &
                              epilogue_none, epilogue_relu, epilogue_leaky_relu, epilogue_accumulate, &
                              epilogue_accumulate_relu_grad, epilogue_accumulate_leaky_relu_grad, &
                              epilogue_relu_grad, epilogue_leaky_relu_grad
  use fkb_activations_r64, only: apply_activation, activation_backward
  use fkb_layer_base_r64
  ! the modules fkb_layer_dense.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_spec, only:
  use fkb_status, only:
  use fkb_spec_query, only:
  use fkb_spec_build, only:
  use fkb_activation_codes, only:
  use fkb_batch_blocks, only:
  include 'fkb_layer_dense.inc'
end module fkb_layer_dense_r64
