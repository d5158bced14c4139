program bench_predict
  !! Time the Fortran runtime without any Python in the way:
  !!     bench_predict MODEL N_COLUMNS
  !! prints "single <us per call>" for the one-column call (repeated on
  !! every column) and "batch <us per column>" for one batched call.
  use iso_fortran_env, only: real32, int64, output_unit, error_unit
  use fkb, only: network, fkb_ok
  implicit none
  type(network) :: net
  real(real32), allocatable :: x(:, :), y(:, :)
  integer :: stat, n_cols, j, rep, n_rep
  character(len=:), allocatable :: msg
  character(len=4096) :: path, arg
  integer(int64) :: t0, t1, rate
  real :: best_single, best_batch, seconds

  call get_command_argument(1, path)
  call get_command_argument(2, arg)
  read (arg, *) n_cols
  call net%load(trim(path), stat, msg)
  if (stat /= fkb_ok) then
    write (error_unit, '(a)') msg
    error stop 1
  end if
  allocate (x(net%n_inputs(), n_cols), y(net%n_outputs(), n_cols))
  call random_number(x)
  call net%predict(x, y, stat, msg)      ! size the workspace once
  n_rep = 5
  best_single = huge(1.0); best_batch = huge(1.0)
  call system_clock(count_rate=rate)
  do rep = 1, n_rep
    call system_clock(t0)
    do j = 1, n_cols
      call net%predict(x(:, j), y(:, j), stat, msg)
    end do
    call system_clock(t1)
    seconds = real(t1 - t0) / real(rate)
    best_single = min(best_single, seconds / n_cols)
    call system_clock(t0)
    call net%predict(x, y, stat, msg)
    call system_clock(t1)
    seconds = real(t1 - t0) / real(rate)
    best_batch = min(best_batch, seconds / n_cols)
  end do
  if (stat /= fkb_ok) then
    write (error_unit, '(a)') msg
    error stop 1
  end if
  write (output_unit, '(a, es12.4)') 'single ', 1e6 * best_single
  write (output_unit, '(a, es12.4)') 'batch ', 1e6 * best_batch
end program bench_predict
