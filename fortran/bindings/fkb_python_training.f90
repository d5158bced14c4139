! Flat training entry points of the Fortran runtime for the Python extension
! `emulators._fkb_runtime` (wrapped by f2py; used through emulators/fkb.py).
! Networks are the handles of fkb_python.f90. Every routine returns a status
! (0 = success) and a one-line message.

subroutine train_compile(handle, optimizer_name, hyper, flags, schedule_kind, schedule, &
                         decay_steps, loss, huber_delta, seed, stat, msg)
  !! Prepare a loaded network for training. The optimizer starts from the
  !! library's constructor (Keras's defaults) and takes each hyperparameter
  !! that is not NaN, each flag that is not negative, so that the defaults
  !! live in one place (fortran/src/fkb_optimizers.f90).
  use, intrinsic :: ieee_arithmetic, only: ieee_is_nan
  use iso_fortran_env, only: real64
  use fkb_python_handles, only: slots, valid_handle
  use fkb, only: fkb_err_argument, optimizer, sgd, rmsprop, adam, adamw, adagrad, &
                 exponential_decay, step_decay
  implicit none
  integer, intent(in) :: handle
  character(len=*), intent(in) :: optimizer_name
    !! sgd, rmsprop, adam, adamw, adagrad
  real(real64), intent(in) :: hyper(8)
    !! learning_rate, momentum, rho, beta_1, beta_2, weight_decay,
    !! initial_accumulator_value, epsilon (NaN: default)
  integer, intent(in) :: flags(3)
    !! nesterov, centered, amsgrad (negative: default)
  integer, intent(in) :: schedule_kind
    !! 0 none, 1 exponential decay, 2 step decay
  real(real64), intent(in) :: schedule(3)
    !! initial_learning_rate, decay_rate, staircase (0 or 1, exponential only)
  integer, intent(in) :: decay_steps
  character(len=*), intent(in) :: loss
  real(real64), intent(in) :: huber_delta
  integer, intent(in) :: seed
    !! seed of the dropout masks
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  type(optimizer) :: opt
  character(len=:), allocatable :: message
  msg = ''
  if (.not. valid_handle(handle)) then
    stat = fkb_err_argument; msg = 'invalid network handle'
    return
  end if
  select case (trim(optimizer_name))
  case ('sgd'); opt = sgd()
  case ('rmsprop'); opt = rmsprop()
  case ('adam'); opt = adam()
  case ('adamw'); opt = adamw()
  case ('adagrad'); opt = adagrad()
  case default
    stat = fkb_err_argument
    msg = 'unknown optimizer ' // trim(optimizer_name) // ' (sgd, rmsprop, adam, adamw, adagrad)'
    return
  end select
  if (.not. ieee_is_nan(hyper(1))) opt%learning_rate = hyper(1)
  if (.not. ieee_is_nan(hyper(2))) opt%momentum = hyper(2)
  if (.not. ieee_is_nan(hyper(3))) opt%rho = hyper(3)
  if (.not. ieee_is_nan(hyper(4))) opt%beta_1 = hyper(4)
  if (.not. ieee_is_nan(hyper(5))) opt%beta_2 = hyper(5)
  if (.not. ieee_is_nan(hyper(6))) opt%weight_decay = hyper(6)
  if (.not. ieee_is_nan(hyper(7))) opt%initial_accumulator_value = hyper(7)
  if (.not. ieee_is_nan(hyper(8))) opt%epsilon = hyper(8)
  if (flags(1) >= 0) opt%nesterov = flags(1) /= 0
  if (flags(2) >= 0) opt%centered = flags(2) /= 0
  if (flags(3) >= 0) opt%amsgrad = flags(3) /= 0
  select case (schedule_kind)
  case (0)
  case (1)
    opt%has_schedule = .true.
    opt%schedule = exponential_decay(schedule(1), decay_steps, schedule(2), &
                                     staircase=schedule(3) /= 0.0_real64)
  case (2)
    opt%has_schedule = .true.
    opt%schedule = step_decay(schedule(1), decay_steps, schedule(2))
  case default
    stat = fkb_err_argument
    msg = 'unknown learning-rate schedule'
    return
  end select
  if (opt%has_schedule .and. decay_steps < 1) then
    stat = fkb_err_argument
    msg = 'the schedule needs decay_steps >= 1'
    return
  end if
  if (slots(handle)%precision == 32) then
    call slots(handle)%net32%compile(opt, trim(loss), stat, message, huber_delta=huber_delta, &
                                     seed=seed)
  else
    call slots(handle)%net64%compile(opt, trim(loss), stat, message, huber_delta=huber_delta, &
                                     seed=seed)
  end if
  if (allocated(message)) msg = message
end subroutine train_compile


subroutine n_trainable(handle, n, stat)
  !! Number of trainable weights of a compiled network (0 before compile).
  use fkb_python_handles, only: slots, valid_handle
  use fkb, only: fkb_ok, fkb_err_argument
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: n, stat
  n = 0
  if (.not. valid_handle(handle)) then
    stat = fkb_err_argument
    return
  end if
  stat = fkb_ok
  if (slots(handle)%precision == 32) then
    n = slots(handle)%net32%n_trainable()
  else
    n = slots(handle)%net64%n_trainable()
  end if
end subroutine n_trainable


subroutine train_step32(handle, x, y, n_in, n_out, n_cols, loss, stat, msg)
  !! One optimizer step on the minibatch x(:, j), y(:, j), 32-bit; `loss`
  !! is the minibatch loss before the step.
  use iso_fortran_env, only: real32
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols
  real(real32), intent(in) :: x(n_in, n_cols), y(n_out, n_cols)
  real(real32), intent(out) :: loss
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  loss = 0
  if (.not. usable(handle, 32, 'train_step', stat, msg)) return
  call slots(handle)%net32%train_step(x, y, stat, message, loss)
  if (allocated(message)) msg = message
end subroutine train_step32


subroutine train_step64(handle, x, y, n_in, n_out, n_cols, loss, stat, msg)
  !! One optimizer step on the minibatch x(:, j), y(:, j), 64-bit.
  use iso_fortran_env, only: real64
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols
  real(real64), intent(in) :: x(n_in, n_cols), y(n_out, n_cols)
  real(real64), intent(out) :: loss
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  loss = 0
  if (.not. usable(handle, 64, 'train_step', stat, msg)) return
  call slots(handle)%net64%train_step(x, y, stat, message, loss)
  if (allocated(message)) msg = message
end subroutine train_step64


subroutine fit32(handle, x, y, n_in, n_out, n_cols, epochs, batch_size, seed, reseed, shuffle, &
                 history, stat, msg)
  !! Train on a whole dataset (see `network%fit`), 32-bit; `history` gets
  !! each epoch's mean loss. `reseed = 0`: the shuffling continues the
  !! network's generator, `seed` unused.
  use iso_fortran_env, only: real32
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols, epochs, batch_size, seed, reseed, shuffle
  real(real32), intent(in) :: x(n_in, n_cols), y(n_out, n_cols)
  real(real32), intent(out) :: history(epochs)
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  history = 0
  if (.not. usable(handle, 32, 'fit', stat, msg)) return
  if (reseed /= 0) then
    call slots(handle)%net32%fit(x, y, epochs, batch_size, stat, message, seed=seed, &
                                 shuffle=shuffle /= 0, history=history)
  else
    call slots(handle)%net32%fit(x, y, epochs, batch_size, stat, message, &
                                 shuffle=shuffle /= 0, history=history)
  end if
  if (allocated(message)) msg = message
end subroutine fit32


subroutine fit64(handle, x, y, n_in, n_out, n_cols, epochs, batch_size, seed, reseed, shuffle, &
                 history, stat, msg)
  !! Train on a whole dataset (see `network%fit`), 64-bit.
  use iso_fortran_env, only: real64
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols, epochs, batch_size, seed, reseed, shuffle
  real(real64), intent(in) :: x(n_in, n_cols), y(n_out, n_cols)
  real(real64), intent(out) :: history(epochs)
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  history = 0
  if (.not. usable(handle, 64, 'fit', stat, msg)) return
  if (reseed /= 0) then
    call slots(handle)%net64%fit(x, y, epochs, batch_size, stat, message, seed=seed, &
                                 shuffle=shuffle /= 0, history=history)
  else
    call slots(handle)%net64%fit(x, y, epochs, batch_size, stat, message, &
                                 shuffle=shuffle /= 0, history=history)
  end if
  if (allocated(message)) msg = message
end subroutine fit64


subroutine gradient32(handle, x, y, n_in, n_out, n_cols, n_train, grad, loss, stat, msg)
  !! The minibatch loss and its gradient with respect to the trainable
  !! weights (the order of `get_weights`), 32-bit; nothing is updated.
  use iso_fortran_env, only: real32
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols, n_train
  real(real32), intent(in) :: x(n_in, n_cols), y(n_out, n_cols)
  real(real32), intent(out) :: grad(n_train), loss
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  grad = 0
  loss = 0
  if (.not. usable(handle, 32, 'gradient', stat, msg)) return
  call slots(handle)%net32%gradient(x, y, grad, loss, stat, message)
  if (allocated(message)) msg = message
end subroutine gradient32


subroutine gradient64(handle, x, y, n_in, n_out, n_cols, n_train, grad, loss, stat, msg)
  !! The minibatch loss and its weight gradient, 64-bit.
  use iso_fortran_env, only: real64
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols, n_train
  real(real64), intent(in) :: x(n_in, n_cols), y(n_out, n_cols)
  real(real64), intent(out) :: grad(n_train), loss
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  grad = 0
  loss = 0
  if (.not. usable(handle, 64, 'gradient', stat, msg)) return
  call slots(handle)%net64%gradient(x, y, grad, loss, stat, message)
  if (allocated(message)) msg = message
end subroutine gradient64


subroutine get_weights(handle, n_train, w, stat, msg)
  !! The trainable weights of a compiled network, as float64.
  use iso_fortran_env, only: real32, real64, int64
  use fkb_python_handles, only: slots, valid_handle
  use fkb, only: fkb_err_argument, fkb_err_memory
  use fkb_status, only: allocation_failure
  implicit none
  integer, intent(in) :: handle, n_train
  real(real64), intent(out) :: w(n_train)
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  real(real32), allocatable :: w32(:)
  msg = ''
  w = 0
  if (.not. valid_handle(handle)) then
    stat = fkb_err_argument; msg = 'invalid network handle'
    return
  end if
  if (slots(handle)%precision == 32) then
    allocate (w32(n_train), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      msg = allocation_failure('get_weights: a float32 copy of the weights', int(n_train, int64), 4)
      return
    end if
    call slots(handle)%net32%get_weights(w32, stat, message)
    w = real(w32, real64)
  else
    call slots(handle)%net64%get_weights(w, stat, message)
  end if
  if (allocated(message)) msg = message
end subroutine get_weights


subroutine save_network(handle, path, stat, msg)
  !! Write the network to a model file (see `network%save`): its current
  !! weights, and its training state when it is compiled.
  use fkb_python_handles, only: slots, valid_handle
  use fkb, only: fkb_err_argument
  implicit none
  integer, intent(in) :: handle
  character(len=*), intent(in) :: path
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  if (.not. valid_handle(handle)) then
    stat = fkb_err_argument; msg = 'invalid network handle'
    return
  end if
  if (slots(handle)%precision == 32) then
    call slots(handle)%net32%save(path, stat, message)
  else
    call slots(handle)%net64%save(path, stat, message)
  end if
  if (allocated(message)) msg = message
end subroutine save_network


subroutine training_info(handle, n_train, iterations, stat)
  !! Trainable weights (0 unless compiled, by `compile` or by loading a
  !! training state) and optimizer steps taken.
  use fkb_python_handles, only: slots, valid_handle
  use fkb, only: fkb_ok, fkb_err_argument
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: n_train, iterations, stat
  n_train = 0
  iterations = 0
  if (.not. valid_handle(handle)) then
    stat = fkb_err_argument
    return
  end if
  stat = fkb_ok
  if (slots(handle)%precision == 32) then
    n_train = slots(handle)%net32%n_trainable()
    iterations = slots(handle)%net32%n_iterations()
  else
    n_train = slots(handle)%net64%n_trainable()
    iterations = slots(handle)%net64%n_iterations()
  end if
end subroutine training_info


subroutine learning_rate(handle, rate, stat)
  !! The learning rate of the next optimizer step.
  use fkb_python_handles, only: slots, valid_handle
  use fkb, only: fkb_ok, fkb_err_argument
  implicit none
  integer, intent(in) :: handle
  double precision, intent(out) :: rate
  integer, intent(out) :: stat
  rate = 0.0d0
  if (.not. valid_handle(handle)) then
    stat = fkb_err_argument
    return
  end if
  stat = fkb_ok
  if (slots(handle)%precision == 32) then
    rate = slots(handle)%net32%learning_rate()
  else
    rate = slots(handle)%net64%learning_rate()
  end if
end subroutine learning_rate


subroutine set_learning_rate(handle, rate, stat, msg)
  !! Set the learning rate of the following steps.
  use fkb_python_handles, only: slots, valid_handle
  use fkb, only: fkb_err_argument
  implicit none
  integer, intent(in) :: handle
  double precision, intent(in) :: rate
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  if (.not. valid_handle(handle)) then
    stat = fkb_err_argument; msg = 'invalid network handle'
    return
  end if
  if (slots(handle)%precision == 32) then
    call slots(handle)%net32%set_learning_rate(rate, stat, message)
  else
    call slots(handle)%net64%set_learning_rate(rate, stat, message)
  end if
  if (allocated(message)) msg = message
end subroutine set_learning_rate
