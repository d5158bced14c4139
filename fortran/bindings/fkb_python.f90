! Flat entry points of the Fortran runtime for the Python extension
! `emulators._fkb_runtime` (wrapped by f2py; used through emulators/fkb.py).
!
! f2py cannot pass derived types, so loaded networks live in a handle table
! owned by this binding: the Python process is the driver that owns it.
! Every routine returns a status (0 = success) and, where it can fail, a
! one-line message.

subroutine load(path, precision, handle, stat, msg)
  !! Load a model file (or an original FKB text file) at 32 or 64 bit; at
  !! 32 bit with the custom layers of `known_layers`.
  use fkb_python_handles, only: slots, new_slot, known_layers
  use fkb, only: fkb_ok, fkb_err_argument, layer_registry
  implicit none
  character(len=*), intent(in) :: path
  integer, intent(in) :: precision
  integer, intent(out) :: handle
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  type(layer_registry) :: registry
  handle = 0
  msg = ''
  if (precision /= 32 .and. precision /= 64) then
    stat = fkb_err_argument
    msg = 'precision must be 32 or 64'
    return
  end if
  call new_slot(handle, stat, msg)
  if (stat /= fkb_ok) return
  if (precision == 32) then
    call known_layers(registry)
    call slots(handle)%net32%load(path, stat, message, registry=registry)
  else
    call slots(handle)%net64%load(path, stat, message)
  end if
  if (stat /= fkb_ok) then
    msg = message
    handle = 0
    return
  end if
  slots(handle)%used = .true.
  slots(handle)%precision = precision
end subroutine load


subroutine sizes(handle, n_inputs, n_outputs, n_params, stat)
  !! Input and output widths and parameter count of a loaded network.
  use fkb_python_handles, only: slots, valid_handle
  use fkb, only: fkb_ok, fkb_err_argument
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: n_inputs, n_outputs, n_params, stat
  n_inputs = 0; n_outputs = 0; n_params = 0
  if (.not. valid_handle(handle)) then
    stat = fkb_err_argument
    return
  end if
  stat = fkb_ok
  if (slots(handle)%precision == 32) then
    n_inputs = slots(handle)%net32%n_inputs()
    n_outputs = slots(handle)%net32%n_outputs()
    n_params = slots(handle)%net32%n_params()
  else
    n_inputs = slots(handle)%net64%n_inputs()
    n_outputs = slots(handle)%net64%n_outputs()
    n_params = slots(handle)%net64%n_params()
  end if
end subroutine sizes


subroutine predict32(handle, x, y, n_in, n_out, n_cols, stat, msg)
  !! y(:, j) = network(x(:, j)) for every column j, 32-bit.
  use iso_fortran_env, only: real32
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols
  real(real32), intent(in) :: x(n_in, n_cols)
  real(real32), intent(out) :: y(n_out, n_cols)
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  if (.not. usable(handle, 32, 'predict', stat, msg)) then
    y = 0
    return
  end if
  call slots(handle)%net32%predict(x, y, stat, message)
  if (allocated(message)) msg = message
end subroutine predict32


subroutine predict64(handle, x, y, n_in, n_out, n_cols, stat, msg)
  !! y(:, j) = network(x(:, j)) for every column j, 64-bit.
  use iso_fortran_env, only: real64
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols
  real(real64), intent(in) :: x(n_in, n_cols)
  real(real64), intent(out) :: y(n_out, n_cols)
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  if (.not. usable(handle, 64, 'predict', stat, msg)) then
    y = 0
    return
  end if
  call slots(handle)%net64%predict(x, y, stat, message)
  if (allocated(message)) msg = message
end subroutine predict64


subroutine guard32(handle, x, max_abs_z, distance, n_outside, flagged, n_in, n_cols, margin, &
                    distance_factor, stat, msg)
  !! Out-of-distribution scores of the columns of x against the model
  !! file's input statistics, 32-bit (flagged: 1 or 0).
  use iso_fortran_env, only: real32
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_cols
  real(real32), intent(in) :: x(n_in, n_cols)
  real(real32), intent(out) :: max_abs_z(n_cols), distance(n_cols)
  integer, intent(out) :: n_outside(n_cols), flagged(n_cols)
  real(real32), intent(in) :: margin, distance_factor
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  logical :: flags(n_cols)
  msg = ''
  max_abs_z = 0
  distance = 0
  n_outside = 0
  flagged = 0
  if (.not. usable(handle, 32, 'guard', stat, msg)) return
  call slots(handle)%net32%guard(x, max_abs_z, distance, n_outside, flags, stat, message, margin, &
                                  distance_factor)
  if (allocated(message)) msg = message
  if (stat == 0) flagged = merge(1, 0, flags)
end subroutine guard32


subroutine guard64(handle, x, max_abs_z, distance, n_outside, flagged, n_in, n_cols, margin, &
                    distance_factor, stat, msg)
  !! Out-of-distribution scores of the columns of x against the model
  !! file's input statistics, 64-bit (flagged: 1 or 0).
  use iso_fortran_env, only: real64
  use fkb_python_handles, only: slots, usable
  implicit none
  integer, intent(in) :: handle, n_in, n_cols
  real(real64), intent(in) :: x(n_in, n_cols)
  real(real64), intent(out) :: max_abs_z(n_cols), distance(n_cols)
  integer, intent(out) :: n_outside(n_cols), flagged(n_cols)
  real(real64), intent(in) :: margin, distance_factor
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  logical :: flags(n_cols)
  msg = ''
  max_abs_z = 0
  distance = 0
  n_outside = 0
  flagged = 0
  if (.not. usable(handle, 64, 'guard', stat, msg)) return
  call slots(handle)%net64%guard(x, max_abs_z, distance, n_outside, flags, stat, message, margin, &
                                  distance_factor)
  if (allocated(message)) msg = message
  if (stat == 0) flagged = merge(1, 0, flags)
end subroutine guard64


subroutine predict_column32(handle, x, y, n_in, n_out, stat)
  !! One column, 32-bit, with the least per-call work: `y` is the caller's
  !! array (f2py intent(inout)) and no message string crosses into Python
  !! unless the call fails (then `last_message` returns it).
  use iso_fortran_env, only: real32
  use fkb_python_handles, only: slots, usable, keep_message
  implicit none
  integer, intent(in) :: handle, n_in, n_out
  real(real32), intent(in) :: x(n_in)
  real(real32), intent(inout) :: y(n_out)
  integer, intent(out) :: stat
  character(len=1024) :: msg
  character(len=:), allocatable :: message
  if (.not. usable(handle, 32, 'predict_column', stat, msg)) then
    call keep_message(msg)
    return
  end if
  call slots(handle)%net32%predict(x, y, stat, message)
  if (allocated(message)) call keep_message(message)
end subroutine predict_column32


subroutine last_message(msg)
  !! The message of the last failed `predict_column32`.
  use fkb_python_handles, only: kept_message
  implicit none
  character(len=1024), intent(out) :: msg
  msg = kept_message()
end subroutine last_message


subroutine release(handle)
  !! Free a loaded network; the handle becomes invalid.
  use fkb_python_handles, only: slots, valid_handle
  implicit none
  integer, intent(in) :: handle
  if (.not. valid_handle(handle)) return
  call slots(handle)%net32%clear()
  call slots(handle)%net64%clear()
  slots(handle)%used = .false.
end subroutine release


subroutine set_threads(n)
  !! Use `n` threads in the runtime: OpenMP threads for large batches and
  !! ensemble members, BLAS threads for narrow batches and training.
  !$ use omp_lib, only: omp_set_num_threads
  implicit none
  integer, intent(in) :: n
  !$ call omp_set_num_threads(max(1, n))
end subroutine set_threads


subroutine get_threads(n)
  !! The number of OpenMP threads the runtime's parallel regions use (1
  !! when the library was built without OpenMP).
  !$ use omp_lib, only: omp_get_max_threads
  implicit none
  integer, intent(out) :: n
  n = 1
  !$ n = omp_get_max_threads()
end subroutine get_threads


subroutine get_dense_kernel(avx512)
  !! 1 when dense layers (float32 and float64) run on the library's AVX-512
  !! kernels on packed weights, 0 when they call the BLAS (no AVX-512, or
  !! FKB_DENSE_KERNEL=blas in the environment when the network was loaded).
  use fkb, only: dense_kernel_available
  implicit none
  integer, intent(out) :: avx512
  avx512 = merge(1, 0, dense_kernel_available())
end subroutine get_dense_kernel
