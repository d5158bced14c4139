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
  !!     call net%save('tuned.fkb', stat, msg)  ! weights + training state;
  !!                                            ! load resumes exactly
  !!
  !! Custom layers (docs/custom-layers.md): extend `layer` (`layer_r64` for
  !! `network_r64`), register a constructor in a `layer_registry` and pass it
  !! to `load(..., registry=reg)`; the `get_*`/`check_*` procedures read the
  !! layer's attributes and weights from its `layer_spec`.
  !!
  !! Ensembles (docs/fortran-api.md, "Ensembles"): `ensemble` (32-bit) and
  !! `ensemble_r64` load several model files of one interface and return the
  !! members' mean and standard deviation:
  !!
  !!     call ens%load_folder('emulators/', stat, msg)   ! or ens%load(paths, ...)
  !!     call ens%predict(x, mean, std, stat, msg, members=y_all, noise_std=0.1_real32, seed=1_int64)
  !!
  !! `ensemble_any` is one handle for both kinds: the precision is chosen
  !! when loading (`precision=32` or `64`) and `predict` takes real32 or
  !! real64 arrays either way.
  use fkb_network_r32, only: network, network_r32 => network
  use fkb_network_r64, only: network_r64 => network
  use fkb_ensemble_r32, only: ensemble, ensemble_r32 => ensemble
  use fkb_ensemble_r64, only: ensemble_r64 => ensemble
  use fkb_ensemble_any, only: ensemble_any
  use fkb_noise, only: ensemble_noise
  use fkb_layers_r32, only: layer, layer_registry
  use fkb_layers_r64, only: layer_r64 => layer, layer_registry_r64 => layer_registry
  use fkb_spec_query, only: has_attribute, get_real_attribute, get_int_attribute, &
                            get_flag_attribute, get_name_attribute, check_attribute_keys, &
                            check_param_names, get_vector_param, get_matrix_param
  use fkb_status, only: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_version, fkb_err_hash, &
                        fkb_err_unsupported, fkb_err_shape, fkb_err_nonfinite, &
                        fkb_err_argument, fkb_err_memory, fkb_status_name
  use fkb_spec, only: model_spec, layer_spec, tensor_spec, attribute_spec, io_spec
  use fkb_model_file, only: read_model_file, write_model_file
  use fkb_dense_kernel, only: dense_kernel_available
  use fkb_optimizers, only: optimizer, lr_schedule, sgd, rmsprop, adam, adamw, adagrad, &
                            exponential_decay, step_decay, learning_rate_at
  implicit none
  private
  public :: network, network_r32, network_r64
  public :: ensemble, ensemble_r32, ensemble_r64, ensemble_any, ensemble_noise
  public :: layer, layer_registry, layer_r64, layer_registry_r64
  public :: has_attribute, get_real_attribute, get_int_attribute, get_flag_attribute, &
            get_name_attribute, check_attribute_keys, check_param_names, get_vector_param, &
            get_matrix_param
  public :: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_version, fkb_err_hash, &
            fkb_err_unsupported, fkb_err_shape, fkb_err_nonfinite, fkb_err_argument, &
            fkb_err_memory, fkb_status_name
  public :: model_spec, layer_spec, tensor_spec, attribute_spec, io_spec
  public :: read_model_file, write_model_file
  public :: dense_kernel_available
  public :: optimizer, lr_schedule, sgd, rmsprop, adam, adamw, adagrad, exponential_decay, &
            step_decay, learning_rate_at
end module fkb
