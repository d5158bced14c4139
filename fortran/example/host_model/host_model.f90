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
  character(len=:), allocatable :: msg
  character(len=4096) :: model, columns, inputs, outputs
  integer :: stat, n_columns, unit

  if (command_argument_count() /= 4) call fail('usage: host_model MODEL N_COLUMNS INPUTS.bin OUTPUTS.bin')
  call get_command_argument(1, model)
  call get_command_argument(2, columns)
  call get_command_argument(3, inputs)
  call get_command_argument(4, outputs)

  ! the library never stops a program: it returns a status and a message
  call net%load(trim(model), stat, msg)
  if (stat /= fkb_ok) call fail(msg)
  read (columns, *, iostat=stat) n_columns
  if (stat /= 0 .or. n_columns < 1) call fail('N_COLUMNS must be a positive integer')

  allocate (x(net%n_inputs(), n_columns), y(net%n_outputs(), n_columns))
  open (newunit=unit, file=trim(inputs), access='stream', form='unformatted', status='old', action='read', &
        iostat=stat)
  if (stat == 0) read (unit, iostat=stat) x
  if (stat /= 0) call fail(trim(inputs) // ': cannot read n_inputs x N_COLUMNS float32 values')
  close (unit)

  call net%predict(x, y, stat, msg)
  if (stat /= fkb_ok) call fail(msg)

  open (newunit=unit, file=trim(outputs), access='stream', form='unformatted', status='replace', &
        action='write', iostat=stat)
  if (stat == 0) write (unit, iostat=stat) y
  if (stat /= 0) call fail(trim(outputs) // ': cannot write the predictions')
  close (unit)

contains

  subroutine fail(message)
    !! The reason on stderr, exit status 1.
    character(len=*), intent(in) :: message
    write (error_unit, '(a)') 'host_model: ' // message
    stop 1, quiet=.true.
  end subroutine fail

end program host_model
