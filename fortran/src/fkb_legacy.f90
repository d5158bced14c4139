module fkb_legacy
  !! Reader of the original FKB text format (Ott et al. 2020), the files
  !! written by `KerasWeightsProcessing/convert_weights.py` and by the
  !! original library's `network_type % save`.
  !!
  !! The file is read exactly as the original `network_type % load` read it,
  !! with Fortran list-directed input: the layer count; one
  !! `<name> <number>` entry per layer line; the learning rate; the biases of
  !! every dense layer; the weights `w(n_in, n_out)` of every dense layer;
  !! then `beta`, `gamma`, `mean`, `variance` of every batch-normalization
  !! layer. Each of these reads starts at a new record and may continue over
  !! as many records as it needs; what is left of its last record is skipped.
  !!
  !! Where the original silently went wrong, this reader refuses with a
  !! message instead: an unknown activation (the original used a sigmoid), an
  !! unknown layer name or a stray activation line (the original ignored
  !! them), a truncated file (the original kept random weights).
  use iso_fortran_env, only: real32, int32, int64, iostat_end
  use fkb_spec, only: model_spec, layer_spec, tensor_spec, attribute_spec
  use fkb_status, only: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_unsupported, &
                        fkb_err_nonfinite
  implicit none
  private
  public :: read_legacy_file, real32_repr

  integer, parameter :: name_length = 100
    !! the original stored layer names in `character(len=100)`

contains

  subroutine read_legacy_file(path, spec, stat, msg)
    !! Reads an original FKB text file into a model spec.
    !!
    !! Every `dense N` with its activation line becomes a `dense` layer
    !! (`kernel(n_out, n_in)`, the transpose of the original `w(n_in, n_out)`,
    !! and `bias(n_out)`); `dropout` a `dropout` layer; `batchnormalization`
    !! a `batch_normalization` layer with epsilon 0.001. The spec has
    !! `version = 0`, an empty `sha256`, no io names and no normalization.
    character(len=*), intent(in) :: path
      !! file to read
    type(model_spec), intent(out) :: spec
      !! the model, valid when `stat == fkb_ok`
    integer, intent(out) :: stat
      !! `fkb_ok` or an error code from `fkb_status`
    character(len=:), allocatable, intent(out) :: msg
      !! empty on success, else one line starting with `path`

    character(len=name_length), allocatable :: names(:)
    real(real32), allocatable :: info(:)
    integer, allocatable :: kind_of(:), width_of(:)
    integer :: unit, ios, n_lines, n, i, n_layers, width, n_in, id
    integer(int64) :: file_size
    logical :: exists
    real(real32) :: learning_rate
    character(len=512) :: iomsg

    msg = ''
    stat = fkb_ok
    spec%version = 0
    spec%sha256 = ''

    inquire(file=path, exist=exists, size=file_size)
    if (.not. exists) then
      call fail(fkb_err_io, 'no such file')
      return
    end if
    open(newunit=unit, file=path, status='old', action='read', form='formatted', &
         access='sequential', iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      call fail(fkb_err_io, 'cannot open: ' // trim(iomsg))
      return
    end if

    read(unit, *, iostat=ios) n_lines
    if (ios /= 0) then
      call fail_read(ios, 'the number of layer lines')
      close(unit)
      return
    end if
    ! every layer line takes at least 4 bytes ("x 1" and a newline)
    if (n_lines < 1 .or. int(n_lines, int64) * 4 > file_size) then
      call fail(fkb_err_format, 'implausible number of layer lines: ' // itoa(n_lines))
      close(unit)
      return
    end if

    allocate(names(n_lines), info(n_lines))
    do n = 1, n_lines
      read(unit, *, iostat=ios) names(n), info(n)
      if (ios /= 0) then
        call fail_read(ios, 'layer line ' // itoa(n) // ' of ' // itoa(n_lines) // &
                       ' (a name and a number)')
        close(unit)
        return
      end if
    end do

    ! Classify the lines: 0 = input, 1 = dense, 2 = dropout,
    ! 3 = batch normalization, -1 = the activation line of a dense layer.
    allocate(kind_of(n_lines), width_of(n_lines))
    kind_of = -2
    width_of = 0
    n_in = 0
    n_layers = 0
    n = 0
    do while (n < n_lines)
      n = n + 1
      select case (trim(names(n)))
      case ('dense', 'dropout', 'batchnormalization')
        if (n_in == 0) then
          call fail(fkb_err_format, 'layer line ' // itoa(n) // ': ' // trim(names(n)) // &
                    ' layer before the input line')
          exit
        end if
      end select
      select case (trim(names(n)))
      case ('input')
        if (n_in > 0) then
          call fail(fkb_err_format, 'layer line ' // itoa(n) // ': a second input line')
          exit
        end if
        n_in = positive_width(info(n))
        if (n_in == 0) then
          call fail(fkb_err_format, 'layer line ' // itoa(n) // ': input width ' // &
                    real32_repr(info(n)) // ' is not a positive integer')
          exit
        end if
        kind_of(n) = 0
        width_of(n) = n_in
      case ('dense')
        width = positive_width(info(n))
        if (width == 0) then
          call fail(fkb_err_format, 'layer line ' // itoa(n) // ': dense width ' // &
                    real32_repr(info(n)) // ' is not a positive integer')
          exit
        end if
        if (n == n_lines) then
          call fail(fkb_err_format, 'layer line ' // itoa(n) // &
                    ': dense layer without an activation line')
          exit
        end if
        if (.not. known_activation(names(n + 1))) then
          call fail(fkb_err_unsupported, 'layer line ' // itoa(n + 1) // ': unknown activation ''' // &
                    trim(names(n + 1)) // ''' of the dense layer on layer line ' // itoa(n))
          exit
        end if
        kind_of(n) = 1
        width_of(n) = width
        kind_of(n + 1) = -1
        n_layers = n_layers + 1
        n = n + 1
      case ('dropout')
        kind_of(n) = 2
        n_layers = n_layers + 1
      case ('batchnormalization')
        kind_of(n) = 3
        n_layers = n_layers + 1
      case default
        if (known_activation(names(n))) then
          call fail(fkb_err_unsupported, 'layer line ' // itoa(n) // ': activation ''' // &
                    trim(names(n)) // ''' does not follow a dense layer (the original FKB ignored it)')
        else
          call fail(fkb_err_unsupported, 'layer line ' // itoa(n) // ': unknown layer ''' // &
                    trim(names(n)) // '''')
        end if
        exit
      end select
    end do
    if (stat == fkb_ok .and. n_layers == 0) call fail(fkb_err_format, 'no layers')
    if (stat /= fkb_ok) then
      close(unit)
      return
    end if

    ! Build the layers; widths follow the last dense layer (or the input).
    allocate(spec%layers(n_layers))
    spec%n_inputs = n_in
    width = n_in
    id = 0
    do n = 1, n_lines
      select case (kind_of(n))
      case (1)
        id = id + 1
        call make_dense(spec%layers(id), id, width, width_of(n), names(n + 1), info(n + 1), stat, msg)
        if (stat /= fkb_ok) then
          msg = path // ': layer line ' // itoa(n + 1) // ': ' // msg
          close(unit)
          return
        end if
        width = width_of(n)
      case (2)
        id = id + 1
        width_of(n) = width
        if (.not. finite32(info(n)) .or. info(n) < 0 .or. info(n) >= 1) then
          call fail(fkb_err_format, 'layer line ' // itoa(n) // ': dropout rate ' // &
                    real32_repr(info(n)) // ' is not in [0, 1)')
          close(unit)
          return
        end if
        call make_layer(spec%layers(id), 'dropout', id, width)
        allocate(spec%layers(id)%attributes(2))
        spec%layers(id)%attributes(1) = attribute('variant', 'dropout')
        spec%layers(id)%attributes(2) = attribute('rate', real32_repr(info(n)))
        allocate(spec%layers(id)%params(0))
      case (3)
        id = id + 1
        width_of(n) = width
        call make_layer(spec%layers(id), 'batch_normalization', id, width)
        allocate(spec%layers(id)%attributes(3))
        spec%layers(id)%attributes(1) = attribute('epsilon', '0.001')
        spec%layers(id)%attributes(2) = attribute('center', '1')
        spec%layers(id)%attributes(3) = attribute('scale', '1')
        ! stored in Keras's order; read below in the original's order
        allocate(spec%layers(id)%params(4))
        spec%layers(id)%params(1) = vector_tensor('gamma', width)
        spec%layers(id)%params(2) = vector_tensor('beta', width)
        spec%layers(id)%params(3) = vector_tensor('moving_mean', width)
        spec%layers(id)%params(4) = vector_tensor('moving_variance', width)
      end select
    end do
    spec%n_outputs = width

    read(unit, *, iostat=ios) learning_rate
    if (ios /= 0) then
      call fail_read(ios, 'the learning-rate line')
      close(unit)
      return
    end if

    ! biases of every dense layer (params(2)), then weights (params(1))
    do i = 1, n_layers
      if (spec%layers(i)%kind /= 'dense') cycle
      read(unit, *, iostat=ios) spec%layers(i)%params(2)%values
      if (ios /= 0) then
        call fail_read(ios, 'the bias of layer ' // itoa(i) // ' (dense, ' // &
                       itoa(spec%layers(i)%n_out) // ' values)')
        close(unit)
        return
      end if
    end do
    do i = 1, n_layers
      if (spec%layers(i)%kind /= 'dense') cycle
      call read_kernel(unit, spec%layers(i)%params(1), ios)
      if (ios /= 0) then
        call fail_read(ios, 'the weights of layer ' // itoa(i) // ' (dense, ' // &
                       itoa(size(spec%layers(i)%params(1)%values)) // ' values)')
        close(unit)
        return
      end if
    end do
    do i = 1, n_layers
      if (spec%layers(i)%kind /= 'batch_normalization') cycle
      associate (params => spec%layers(i)%params)
        read(unit, *, iostat=ios) params(2)%values
        if (ios == 0) read(unit, *, iostat=ios) params(1)%values
        if (ios == 0) read(unit, *, iostat=ios) params(3)%values
        if (ios == 0) read(unit, *, iostat=ios) params(4)%values
      end associate
      if (ios /= 0) then
        call fail_read(ios, 'the beta, gamma, mean and variance of layer ' // itoa(i) // &
                       ' (batch normalization, ' // itoa(spec%layers(i)%n_out) // ' values each)')
        close(unit)
        return
      end if
    end do
    close(unit)

    do i = 1, n_layers
      do n = 1, size(spec%layers(i)%params)
        if (.not. all_finite(spec%layers(i)%params(n)%values)) then
          call fail(fkb_err_nonfinite, 'layer ' // itoa(i) // ' (' // spec%layers(i)%kind // &
                    ') param ' // spec%layers(i)%params(n)%name // ' has a non-finite value')
          return
        end if
      end do
    end do

  contains

    subroutine fail(code, text)
      integer, intent(in) :: code
      character(len=*), intent(in) :: text
      stat = code
      msg = path // ': ' // text
    end subroutine fail

    subroutine fail_read(io_status, what)
      integer, intent(in) :: io_status
      character(len=*), intent(in) :: what
      if (io_status == iostat_end) then
        call fail(fkb_err_format, 'truncated: the file ends before ' // what)
      else
        call fail(fkb_err_format, 'malformed number in ' // what)
      end if
    end subroutine fail_read

  end subroutine read_legacy_file

  subroutine read_kernel(unit, kernel, ios)
    !! Reads the original `w(n_in, n_out)` in one list-directed read and
    !! stores its transpose, our `kernel(n_out, n_in)`.
    integer, intent(in) :: unit
    type(tensor_spec), intent(inout) :: kernel
    integer, intent(out) :: ios
    real(real32), allocatable :: w(:, :)

    allocate(w(kernel%shape(2), kernel%shape(1)))
    read(unit, *, iostat=ios) w
    if (ios == 0) kernel%values = reshape(transpose(w), [size(w)])
  end subroutine read_kernel

  subroutine make_dense(layer, id, n_in, n_out, activation_name, alpha, stat, msg)
    !! A dense layer with the activation of the original's activation line.
    type(layer_spec), intent(out) :: layer
    integer, intent(in) :: id, n_in, n_out
    character(len=*), intent(in) :: activation_name
    real(real32), intent(in) :: alpha
      !! the number on the activation line
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg

    stat = fkb_ok
    msg = ''
    call make_layer(layer, 'dense', id, n_out)
    select case (trim(activation_name))
    case ('leakyrelu', 'elu')
      if (.not. finite32(alpha)) then
        stat = fkb_err_format
        msg = trim(activation_name) // ' parameter is not finite'
        return
      end if
      ! the original computed max(alpha x, x), which is Keras's leaky ReLU
      ! only for 0 <= alpha <= 1
      if (trim(activation_name) == 'leakyrelu' .and. (alpha < 0 .or. alpha > 1)) then
        stat = fkb_err_unsupported
        msg = 'leakyrelu alpha ' // real32_repr(alpha) // ' outside [0, 1]'
        return
      end if
      allocate(layer%attributes(3))
      if (trim(activation_name) == 'leakyrelu') then
        layer%attributes(1) = attribute('activation', 'leaky_relu')
      else
        layer%attributes(1) = attribute('activation', 'elu')
      end if
      layer%attributes(2) = attribute('alpha', real32_repr(alpha))
      layer%attributes(3) = attribute('use_bias', '1')
    case default
      ! relu, linear, tanh, sigmoid, softplus, exponential, gaussian, step:
      ! the original ignored their number
      allocate(layer%attributes(2))
      layer%attributes(1) = attribute('activation', trim(activation_name))
      layer%attributes(2) = attribute('use_bias', '1')
    end select
    allocate(layer%params(2))
    layer%params(1)%name = 'kernel'
    layer%params(1)%rank = 2
    layer%params(1)%shape = [n_out, n_in]
    allocate(layer%params(1)%values(n_out * n_in))
    layer%params(2) = vector_tensor('bias', n_out)
  end subroutine make_dense

  subroutine make_layer(layer, kind, id, n_out)
    !! Kind, width and input (the previous layer) of a layer.
    type(layer_spec), intent(inout) :: layer
    character(len=*), intent(in) :: kind
    integer, intent(in) :: id, n_out
    layer%kind = kind
    layer%n_out = n_out
    layer%inputs = [id - 1]
  end subroutine make_layer

  pure function known_activation(name) result(known)
    !! Whether the original's dense layer knew this activation.
    character(len=*), intent(in) :: name
    logical :: known
    select case (trim(name))
    case ('linear', 'relu', 'leakyrelu', 'tanh', 'sigmoid', 'elu', 'softplus', &
          'exponential', 'gaussian', 'step')
      known = .true.
    case default
      known = .false.
    end select
  end function known_activation

  pure function vector_tensor(name, n) result(tensor)
    !! A rank-1 tensor of `n` values (to be read).
    character(len=*), intent(in) :: name
    integer, intent(in) :: n
    type(tensor_spec) :: tensor
    tensor%name = name
    tensor%rank = 1
    tensor%shape = [n, 1]
    allocate(tensor%values(n))
  end function vector_tensor

  pure function attribute(key, value) result(attr)
    character(len=*), intent(in) :: key, value
    type(attribute_spec) :: attr
    attr%key = key
    attr%value = value
  end function attribute

  pure integer function positive_width(x) result(width)
    !! The width on a layer line, truncated to an integer as the original
    !! did; 0 when it is not at least 1.
    real(real32), intent(in) :: x
    width = 0
    if (finite32(x) .and. x >= 1 .and. x < 2.0e9) width = int(x)
  end function positive_width

  elemental logical function finite32(x)
    !! Finite test on the bits, immune to compiler flags like -ffast-math.
    real(real32), intent(in) :: x
    integer(int32), parameter :: exponent_bits = int(z'7F800000', int32)
    finite32 = iand(transfer(x, 0_int32), exponent_bits) /= exponent_bits
  end function finite32

  pure logical function all_finite(values)
    real(real32), intent(in) :: values(:)
    integer :: i
    all_finite = .true.
    do i = 1, size(values)
      if (.not. finite32(values(i))) then
        all_finite = .false.
        return
      end if
    end do
  end function all_finite

  function real32_repr(x) result(text)
    !! The shortest decimal that reads back as the same `real32`, written
    !! like Python's `repr` of a float (`0.3`, `1.0`, `1e-05`, `2.5e+20`).
    real(real32), intent(in) :: x
      !! a finite value (non-finite values give `nan` or `inf`)
    character(len=:), allocatable :: text
    character(len=40) :: buffer, fmt
    character(len=:), allocatable :: digits
    real(real32) :: y
    integer :: precision, ios, e_at, exponent, i, n

    if (.not. finite32(x)) then
      if (iand(transfer(x, 0_int32), int(z'007FFFFF', int32)) /= 0) then
        text = 'nan'
      else if (x > 0) then
        text = 'inf'
      else
        text = '-inf'
      end if
      return
    end if
    if (iand(transfer(x, 0_int32), huge(0_int32)) == 0) then
      text = '0.0'
      if (transfer(x, 0_int32) < 0) text = '-0.0'
      return
    end if
    do precision = 1, 9
      write(fmt, '(a, i0, a)') '(es40.', precision - 1, 'e4)'
      write(buffer, fmt) x
      read(buffer, *, iostat=ios) y
      ! compared as bits: the same float32, not merely equal values
      if (ios == 0) then
        if (transfer(y, 0_int32) == transfer(x, 0_int32)) exit
      end if
    end do
    buffer = adjustl(buffer)
    e_at = index(buffer, 'E')
    read(buffer(e_at + 1:), *) exponent
    digits = ''
    do i = 1, e_at - 1
      if (buffer(i:i) >= '0' .and. buffer(i:i) <= '9') digits = digits // buffer(i:i)
    end do
    n = len(digits)
    do while (n > 1 .and. digits(n:n) == '0')
      n = n - 1
    end do
    digits = digits(1:n)

    if (exponent >= -4 .and. exponent < 16) then
      if (exponent >= 0) then
        if (n <= exponent + 1) then
          text = digits // repeat('0', exponent + 1 - n) // '.0'
        else
          text = digits(1:exponent + 1) // '.' // digits(exponent + 2:)
        end if
      else
        text = '0.' // repeat('0', -exponent - 1) // digits
      end if
    else
      text = digits(1:1)
      if (n > 1) text = text // '.' // digits(2:)
      if (exponent < 0) then
        text = text // 'e-' // two_digits(-exponent)
      else
        text = text // 'e+' // two_digits(exponent)
      end if
    end if
    if (x < 0) text = '-' // text

  contains

    pure function two_digits(k) result(s)
      integer, intent(in) :: k
      character(len=:), allocatable :: s
      character(len=12) :: b
      write(b, '(i0.2)') k
      s = trim(b)
    end function two_digits

  end function real32_repr

  pure function itoa(i) result(s)
    integer, intent(in) :: i
    character(len=:), allocatable :: s
    character(len=12) :: b
    write(b, '(i0)') i
    s = trim(b)
  end function itoa

end module fkb_legacy
