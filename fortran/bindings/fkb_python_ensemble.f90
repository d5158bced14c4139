! Flat entry points of the Fortran ensembles for the Python extension
! `emulators._fkb_runtime` (wrapped by f2py; used through emulators/fkb.py,
! class Ensemble). Ensembles live in the handle table of
! fkb_python_ensemble_handles.f90. Every routine returns a status (0 =
! success) and, where it can fail, a one-line message.

subroutine ensemble_load(paths, precision, handle, stat, msg)
  !! Load an ensemble at 32 or 64 bit from model files given as one string,
  !! the paths separated by newlines (f2py passes no arrays of strings);
  !! at 32 bit with the custom layers of `known_layers`.
  use fkb_python_ensemble_handles, only: ensembles, new_ensemble_slot
  use fkb_python_handles, only: known_layers
  use fkb, only: fkb_ok, fkb_err_argument, layer_registry
  implicit none
  character(len=*), intent(in) :: paths
  integer, intent(in) :: precision
  integer, intent(out) :: handle
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  character(len=1), parameter :: newline = achar(10)
  integer :: n, width, start, length
  handle = 0
  msg = ''
  if (precision /= 32 .and. precision /= 64) then
    stat = fkb_err_argument
    msg = 'precision must be 32 or 64'
    return
  end if
  n = 0
  width = 0
  start = 1
  do while (start <= len(paths))  ! count the lines and find the longest
    length = line_length(start)
    n = n + 1
    width = max(width, length)
    start = start + length + 1
  end do
  call new_ensemble_slot(handle, stat, msg)
  if (stat /= fkb_ok) return
  call load_lines(n, width)
  if (stat /= fkb_ok) then
    msg = message
    handle = 0
    return
  end if
  ensembles(handle)%used = .true.
  ensembles(handle)%precision = precision
contains
  integer function line_length(first)
    integer, intent(in) :: first
    line_length = index(paths(first:), newline) - 1
    if (line_length < 0) line_length = len(paths) - first + 1
  end function line_length

  subroutine load_lines(n, width)
    integer, intent(in) :: n, width
    character(len=width) :: list(n)
    integer :: k, first, length
    type(layer_registry) :: registry
    first = 1
    do k = 1, n
      length = line_length(first)
      list(k) = paths(first:first + length - 1)
      first = first + length + 1
    end do
    if (precision == 32) then
      call known_layers(registry)
      call ensembles(handle)%ens32%load(list, stat, message, registry=registry)
    else
      call ensembles(handle)%ens64%load(list, stat, message)
    end if
  end subroutine load_lines
end subroutine ensemble_load


subroutine ensemble_load_folder(folder, precision, handle, stat, msg)
  !! Load every *.fkb file of a folder, in name order, at 32 or 64 bit
  !! (at 32 bit with the custom layers of `known_layers`).
  use fkb_python_ensemble_handles, only: ensembles, new_ensemble_slot
  use fkb_python_handles, only: known_layers
  use fkb, only: fkb_ok, fkb_err_argument, layer_registry
  implicit none
  character(len=*), intent(in) :: folder
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
  call new_ensemble_slot(handle, stat, msg)
  if (stat /= fkb_ok) return
  if (precision == 32) then
    call known_layers(registry)
    call ensembles(handle)%ens32%load_folder(folder, stat, message, registry=registry)
  else
    call ensembles(handle)%ens64%load_folder(folder, stat, message)
  end if
  if (stat /= fkb_ok) then
    msg = message
    handle = 0
    return
  end if
  ensembles(handle)%used = .true.
  ensembles(handle)%precision = precision
end subroutine ensemble_load_folder


subroutine ensemble_sizes(handle, n_members, n_inputs, n_outputs, stat)
  !! Number of members and the input and output widths of an ensemble.
  use fkb_python_ensemble_handles, only: ensembles, valid_ensemble
  use fkb, only: fkb_ok, fkb_err_argument
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: n_members, n_inputs, n_outputs, stat
  n_members = 0; n_inputs = 0; n_outputs = 0
  if (.not. valid_ensemble(handle)) then
    stat = fkb_err_argument
    return
  end if
  stat = fkb_ok
  if (ensembles(handle)%precision == 32) then
    n_members = ensembles(handle)%ens32%n_members()
    n_inputs = ensembles(handle)%ens32%n_inputs()
    n_outputs = ensembles(handle)%ens32%n_outputs()
  else
    n_members = ensembles(handle)%ens64%n_members()
    n_inputs = ensembles(handle)%ens64%n_inputs()
    n_outputs = ensembles(handle)%ens64%n_outputs()
  end if
end subroutine ensemble_sizes


subroutine ensemble_member_path(handle, k, path, stat)
  !! The model file of member k.
  use fkb_python_ensemble_handles, only: ensembles, valid_ensemble
  use fkb, only: fkb_ok, fkb_err_argument
  implicit none
  integer, intent(in) :: handle, k
  character(len=4096), intent(out) :: path
  integer, intent(out) :: stat
  path = ''
  if (.not. valid_ensemble(handle)) then
    stat = fkb_err_argument
    return
  end if
  stat = fkb_ok
  if (ensembles(handle)%precision == 32) then
    path = ensembles(handle)%ens32%member_path(k)
  else
    path = ensembles(handle)%ens64%member_path(k)
  end if
end subroutine ensemble_member_path


subroutine ensemble_predict32(handle, x, mean, std, members, n_in, n_out, n_cols, n_keep, &
                              noise_std, seed, stat, msg)
  !! Mean and standard deviation over members of every column of x, 32-bit;
  !! members(:, :, k) is member k's output when n_keep is the number of
  !! members (n_keep = 0: not kept).
  use iso_fortran_env, only: real32, real64, int64
  use fkb_python_ensemble_handles, only: ensembles, valid_ensemble
  use fkb, only: fkb_err_argument
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols, n_keep
  real(real32), intent(in) :: x(n_in, n_cols)
  real(real32), intent(out) :: mean(n_out, n_cols), std(n_out, n_cols)
  real(real32), intent(out) :: members(n_out, n_cols, n_keep)
  real(real64), intent(in) :: noise_std
  integer(int64), intent(in) :: seed
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  if (.not. valid_ensemble(handle)) then
    stat = fkb_err_argument; msg = 'invalid ensemble handle'
    mean = 0; std = 0; members = 0
    return
  end if
  if (ensembles(handle)%precision /= 32) then
    stat = fkb_err_argument; msg = 'ensemble was loaded at 64 bit; call ensemble_predict64'
    mean = 0; std = 0; members = 0
    return
  end if
  if (n_keep > 0) then
    call ensembles(handle)%ens32%predict(x, mean, std, stat, message, members=members, &
                                         noise_std=real(noise_std, real32), seed=seed)
  else
    call ensembles(handle)%ens32%predict(x, mean, std, stat, message, &
                                         noise_std=real(noise_std, real32), seed=seed)
  end if
  if (allocated(message)) msg = message
end subroutine ensemble_predict32


subroutine ensemble_predict64(handle, x, mean, std, members, n_in, n_out, n_cols, n_keep, &
                              noise_std, seed, stat, msg)
  !! As ensemble_predict32, 64-bit.
  use iso_fortran_env, only: real64, int64
  use fkb_python_ensemble_handles, only: ensembles, valid_ensemble
  use fkb, only: fkb_err_argument
  implicit none
  integer, intent(in) :: handle, n_in, n_out, n_cols, n_keep
  real(real64), intent(in) :: x(n_in, n_cols)
  real(real64), intent(out) :: mean(n_out, n_cols), std(n_out, n_cols)
  real(real64), intent(out) :: members(n_out, n_cols, n_keep)
  real(real64), intent(in) :: noise_std
  integer(int64), intent(in) :: seed
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  character(len=:), allocatable :: message
  msg = ''
  if (.not. valid_ensemble(handle)) then
    stat = fkb_err_argument; msg = 'invalid ensemble handle'
    mean = 0; std = 0; members = 0
    return
  end if
  if (ensembles(handle)%precision /= 64) then
    stat = fkb_err_argument; msg = 'ensemble was loaded at 32 bit; call ensemble_predict32'
    mean = 0; std = 0; members = 0
    return
  end if
  if (n_keep > 0) then
    call ensembles(handle)%ens64%predict(x, mean, std, stat, message, members=members, &
                                         noise_std=noise_std, seed=seed)
  else
    call ensembles(handle)%ens64%predict(x, mean, std, stat, message, noise_std=noise_std, &
                                         seed=seed)
  end if
  if (allocated(message)) msg = message
end subroutine ensemble_predict64


subroutine ensemble_release(handle)
  !! Free an ensemble; the handle becomes invalid.
  use fkb_python_ensemble_handles, only: ensembles, valid_ensemble
  implicit none
  integer, intent(in) :: handle
  if (.not. valid_ensemble(handle)) return
  call ensembles(handle)%ens32%clear()
  call ensembles(handle)%ens64%clear()
  ensembles(handle)%used = .false.
end subroutine ensemble_release
