program host_model
  !! A host model's use of the installed library: load a model file, predict
  !! a batch of columns read from a raw float32 file, write the predictions.
  !!
  !!     host_model MODEL N_COLUMNS INPUTS.bin OUTPUTS.bin
  !!
  !! Array layout: the library takes a batch as x(n_inputs, n_columns),
  !! Fortran's column-major order, one column's inputs contiguous. That is
  !! the bytes of a C-ordered NumPy array of shape (n_columns, n_inputs):
  !! `x.astype(numpy.float32).tofile("inputs.bin")` writes it as is, and
  !! `numpy.fromfile("outputs.bin", numpy.float32).reshape(n_columns, -1)`
  !! reads the predictions back. An array of shape (n_inputs, n_columns)
  !! written with .tofile would be read transposed: write its transpose
  !! (or use order="F").
  use iso_fortran_env, only: error_unit, real32
  use fkb, only: network, fkb_ok
  implicit none

  type(network) :: net
  real(real32), allocatable :: x(:, :), y(:, :)
  character(len=:), allocatable :: msg, columns
  integer :: stat, n_columns, unit

  if (command_argument_count() /= 4) then
    write (error_unit, '(a)') 'usage: host_model MODEL N_COLUMNS INPUTS.bin OUTPUTS.bin'
    stop 2, quiet=.true.
  end if
  call net%load(argument(1), stat, msg)
  call check(stat, msg)
  columns = argument(2)
  read (columns, *, iostat=stat) n_columns
  if (stat /= 0 .or. n_columns < 1) then
    msg = 'N_COLUMNS must be a positive integer, not ' // columns
    call check(1, msg)
  end if

  allocate (x(net%n_inputs(), n_columns), y(net%n_outputs(), n_columns))
  open (newunit=unit, file=argument(3), access='stream', form='unformatted', status='old', action='read', &
        iostat=stat)
  if (stat == 0) read (unit, iostat=stat) x
  if (stat /= 0) then
    msg = argument(3) // ': cannot read ' // itoa(size(x)) // ' float32 values'
    call check(1, msg)
  end if
  close (unit)

  call net%predict(x, y, stat, msg)
  call check(stat, msg)

  open (newunit=unit, file=argument(4), access='stream', form='unformatted', status='replace', action='write', &
        iostat=stat)
  if (stat == 0) write (unit, iostat=stat) y
  if (stat /= 0) then
    msg = argument(4) // ': cannot write the predictions'
    call check(1, msg)
  end if
  close (unit)

contains

  subroutine check(stat, msg)
    !! Stop with the message if `stat` is an error.
    integer, intent(in) :: stat
    character(len=:), allocatable, intent(in) :: msg
    if (stat == fkb_ok) return
    if (allocated(msg)) then
      write (error_unit, '(a)') 'host_model: ' // msg
    else
      write (error_unit, '(a)') 'host_model: failed'
    end if
    stop 1, quiet=.true.
  end subroutine check

  function argument(i) result(arg)
    integer, intent(in) :: i
    character(len=:), allocatable :: arg
    integer :: n
    call get_command_argument(i, length=n)
    allocate (character(len=n) :: arg)
    call get_command_argument(i, arg)
  end function argument

  function itoa(i) result(text)
    integer, intent(in) :: i
    character(len=:), allocatable :: text
    character(len=24) :: buffer
    write (buffer, '(i0)') i
    text = trim(buffer)
  end function itoa

end program host_model
