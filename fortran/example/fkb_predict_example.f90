program fkb_predict_example
  !! Run a model file on inputs from a text file:
  !!
  !!     fkb_predict_example MODEL INPUTS.txt
  !!
  !! INPUTS.txt holds one sample per line, `n_inputs` numbers separated by
  !! blanks (blank lines and lines starting with `#` are skipped). One line of
  !! `n_outputs` predictions is printed per sample. Without arguments, a tiny
  !! network built in the program is run on two samples instead.
  !!
  !! Array layout: line j becomes column j of x(n_inputs, n_columns), the
  !! library's column-major batch (`numpy.savetxt` of a C-ordered
  !! (n_samples, n_inputs) array writes this file). For raw binary input see
  !! example/host_model: a C-ordered (n_columns, n_inputs) array's `.tofile`
  !! is x as it is, an (n_inputs, n_columns) one's is x transposed.
  !!
  !! On any error the program prints the reason to stderr and exits non-zero.
  use iso_fortran_env, only: error_unit, output_unit, real32
  use fkb, only: network, model_spec, layer_spec, fkb_ok
  implicit none

  type(network) :: net
  real(real32), allocatable :: x(:, :), y(:, :)
  integer :: stat, nargs, j
  character(len=:), allocatable :: msg, model_path, input_path

  nargs = command_argument_count()
  select case (nargs)
  case (0)
    call net%from_spec(demo_model(), stat, msg)
    call check(stat, msg)
    x = reshape([280.0, 0.008, 101325.0, 250.0, 0.001, 98000.0], [3, 2])
  case (2)
    model_path = argument(1)
    input_path = argument(2)
    call net%load(model_path, stat, msg)
    call check(stat, msg)
    call read_samples(input_path, net%n_inputs(), x, stat, msg)
    call check(stat, msg)
  case default
    write (error_unit, '(a)') 'usage: fkb_predict_example [MODEL INPUTS.txt]'
    stop 2, quiet=.true.
  end select

  allocate (y(net%n_outputs(), size(x, 2)))
  call net%predict(x, y, stat, msg)
  call check(stat, msg)
  write (output_unit, '(a)') '# ' // join_outputs(net)
  do j = 1, size(y, 2)
    write (output_unit, '(*(es15.7e2, :, 1x))') y(:, j)
  end do

contains

  subroutine check(stat, msg)
    !! Stop with the message if `stat` is an error.
    integer, intent(in) :: stat
    character(len=:), allocatable, intent(in) :: msg
    if (stat == fkb_ok) return
    if (allocated(msg)) then
      write (error_unit, '(a)') 'fkb_predict_example: ' // msg
    else
      write (error_unit, '(a)') 'fkb_predict_example: failed'
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

  function join_outputs(net) result(text)
    !! "name [units]" of every output, for the header line.
    type(network), intent(in) :: net
    character(len=:), allocatable :: text
    integer :: i
    text = ''
    do i = 1, net%n_outputs()
      text = text // net%output_name(i) // ' [' // net%output_units(i) // ']'
      if (i < net%n_outputs()) text = text // ', '
    end do
  end function join_outputs

  subroutine read_samples(path, n_inputs, x, stat, msg)
    !! Read `x(n_inputs, n_samples)` from a text file, one sample per line.
    character(len=*), intent(in) :: path
    integer, intent(in) :: n_inputs
    real(real32), allocatable, intent(out) :: x(:, :)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer :: unit, ios, pass, n, line_no
    real(real32) :: extra
    character(len=4096) :: line
    character(len=256) :: iomsg
    open (newunit=unit, file=path, status='old', action='read', iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      stat = 1
      msg = path // ': cannot open: ' // trim(iomsg)
      return
    end if
    do pass = 1, 2
      n = 0
      line_no = 0
      rewind (unit)
      do
        read (unit, '(a)', iostat=ios) line
        if (ios /= 0) exit
        line_no = line_no + 1
        line = adjustl(line)
        if (len_trim(line) == 0 .or. line(1:1) == '#') cycle
        n = n + 1
        if (pass == 2) then
          ! One more number than the model takes must not be readable.
          read (line, *, iostat=ios) x(:, n), extra
          if (ios == 0) then
            ios = 1
          else
            read (line, *, iostat=ios) x(:, n)
          end if
          if (ios /= 0) then
            stat = 2
            write (iomsg, '(a, i0, a, i0, a)') ': line ', line_no, ' does not hold exactly ', &
              n_inputs, ' numbers'
            msg = path // trim(iomsg)
            close (unit)
            return
          end if
        end if
      end do
      if (pass == 1) allocate (x(n_inputs, n))
    end do
    close (unit)
    stat = fkb_ok
    if (n == 0) then
      stat = 2
      msg = path // ': no samples'
    end if
  end subroutine read_samples

  function demo_model() result(spec)
    !! A dense layer with ReLU, another, a residual add and a linear head,
    !! with input normalization: the example of docs/model-file.md.
    type(model_spec) :: spec
    spec%name = 'tiny_residual_mlp'
    spec%n_inputs = 3
    spec%n_outputs = 2
    spec%has_input_normalization = .true.
    allocate (spec%input_offset, source=[270.0, 0.005, 100000.0])
    allocate (spec%input_scale, source=[20.0, 0.004, 2000.0])
    allocate (spec%layers(4))
    spec%layers(1) = dense(4, 0, 'relu', [0.5, -0.2, 0.1, 0.3, 0.4, 0.2, -0.3, 0.1, &
                                          0.1, -0.1, 0.2, 0.4], [0.1, 0.0, -0.1, 0.2])
    spec%layers(2) = dense(4, 1, 'linear', [0.2, 0.0, 0.0, 0.1, 0.0, 0.3, 0.1, 0.0, &
                                            0.0, 0.1, 0.2, 0.0, 0.1, 0.0, 0.0, 0.3], &
                           [0.0, 0.1, 0.0, -0.1])
    spec%layers(3)%kind = 'add'
    spec%layers(3)%n_out = 4
    allocate (spec%layers(3)%inputs, source=[1, 2])
    allocate (spec%layers(3)%attributes(0), spec%layers(3)%params(0))
    spec%layers(4) = dense(2, 3, 'linear', [1.0, -0.5, 0.5, 0.25, -0.25, 1.0, 0.1, 0.2], &
                           [0.01, -0.02])
  end function demo_model

  function dense(n_out, input, activation, kernel, bias) result(l)
    !! A dense layer consuming node `input`; `kernel` column-major (n_out, n_in).
    integer, intent(in) :: n_out, input
    character(len=*), intent(in) :: activation
    real(real32), intent(in) :: kernel(:), bias(:)
    type(layer_spec) :: l
    l%kind = 'dense'
    l%n_out = n_out
    allocate (l%inputs, source=[input])
    allocate (l%attributes(2), l%params(2))
    l%attributes(1)%key = 'activation'
    l%attributes(1)%value = activation
    l%attributes(2)%key = 'use_bias'
    l%attributes(2)%value = '1'
    l%params(1)%name = 'kernel'
    l%params(1)%shape = [n_out, size(kernel) / n_out]
    l%params(1)%rank = 2
    allocate (l%params(1)%values, source=kernel)
    l%params(2)%name = 'bias'
    l%params(2)%shape = [n_out, 1]
    allocate (l%params(2)%values, source=bias)
  end function dense

end program fkb_predict_example
