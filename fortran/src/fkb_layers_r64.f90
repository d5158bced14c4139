module fkb_layers_r64
  !! Layers in real64; the source is `fkb_layers.inc`.
  use iso_fortran_env, only: wp => real64
  use fkb_layer_base_r64, only: layer, layer_slot
  use fkb_layer_dense_r64, only: dense_layer
  use fkb_layer_activations_r64, only: activation_layer, relu_layer, leaky_relu_layer, elu_layer, &
                                       prelu_layer, softmax_layer
  use fkb_layer_dropout_r64, only: dropout_layer
  use fkb_layer_normalization_r64, only: batch_normalization_layer, layer_normalization_layer, &
                                         normalization_layer, rescaling_layer
  use fkb_layer_merge_r64, only: merge_layer, concatenate_layer
  ! the modules fkb_layers.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_status, only:
  use fkb_spec_build, only:
  include 'fkb_layers.inc'
end module fkb_layers_r64
