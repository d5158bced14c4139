module fkb
  !! The Fortran-Keras Bridge: everything a Fortran user needs.
  !!
  !!     use fkb, only: network, fkb_ok
  !!     type(network) :: net
  !!     call net%load('emulator.fkb', stat, msg)
  !!     call net%predict(x, y, stat, msg)   ! x(n_inputs, n_columns) or x(n_inputs)
  !!
  !! `network` computes in 32-bit reals, `network_r64` in 64-bit reals
  !! (`network_r32` is another name for `network`). Weights are stored as
  !! float32 in the model file either way.
  !!
  !! Training (docs/fortran-api.md, "Training"):
  !!
  !!     call net%compile(adam(), 'mse', stat, msg)
  !!     call net%train_step(x, y, stat, msg, loss)     ! one minibatch
  !!     call net%fit(x, y, epochs, batch_size, stat, msg, seed=1)
  use fkb_network_r32, only: network, network_r32 => network
  use fkb_network_r64, only: network_r64 => network
  use fkb_status, only: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_version, fkb_err_hash, &
                        fkb_err_unsupported, fkb_err_shape, fkb_err_nonfinite, &
                        fkb_err_argument, fkb_status_name
  use fkb_spec, only: model_spec, layer_spec, tensor_spec, attribute_spec, io_spec
  use fkb_model_file, only: read_model_file, write_model_file
  use fkb_optimizers, only: optimizer, lr_schedule, sgd, rmsprop, adam, adamw, adagrad, &
                            exponential_decay, step_decay, learning_rate_at
  implicit none
  private
  public :: network, network_r32, network_r64
  public :: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_version, fkb_err_hash, &
            fkb_err_unsupported, fkb_err_shape, fkb_err_nonfinite, fkb_err_argument, &
            fkb_status_name
  public :: model_spec, layer_spec, tensor_spec, attribute_spec, io_spec
  public :: read_model_file, write_model_file
  public :: optimizer, lr_schedule, sgd, rmsprop, adam, adamw, adagrad, exponential_decay, &
            step_decay, learning_rate_at
end module fkb
