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
  use iso_fortran_env, only: real32, int64, iostat_end
  use fkb_spec, only: model_spec, layer_spec, tensor_spec
  use fkb_status, only: fkb_ok, fkb_err_format, fkb_err_unsupported, fkb_err_nonfinite, fkb_err_io, &
                        fkb_err_memory, allocation_failure
  use fkb_files, only: width_problem, values_problem
  use fkb_spec_build, only: open_model_file, attribute, finite32, first_nonfinite, int_to_str, &
                            real32_repr
  implicit none
  private
  public :: read_legacy_file

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
    real(real32) :: learning_rate

    msg = ''
    spec%version = 0
    spec%sha256 = ''

    call open_model_file(path, 'sequential', 'formatted', unit, stat, msg)
    if (stat /= fkb_ok) return
    inquire(file=path, size=file_size)

    read(unit, *, iostat=ios) n_lines
    if (ios /= 0) then
      call fail_read(ios, 'the number of layer lines')
      return
    end if
    ! every layer line takes at least 4 bytes ("x 1" and a newline)
    if (n_lines < 1 .or. int(n_lines, int64) * 4 > file_size) then
      call fail(fkb_err_format, 'implausible number of layer lines: ' // int_to_str(n_lines))
      close(unit)
      return
    end if

    allocate(names(n_lines), info(n_lines), stat=ios)
    if (ios /= 0) then
      call fail(fkb_err_memory, allocation_failure('its ' // int_to_str(n_lines) // ' layer lines', &
                                                   int(n_lines, int64), &
                                                   (storage_size(names) + storage_size(info)) / 8))
      close(unit)
      return
    end if
    do n = 1, n_lines
      read(unit, *, iostat=ios) names(n), info(n)
      if (ios /= 0) then
        call fail_read(ios, 'layer line ' // int_to_str(n) // ' of ' // int_to_str(n_lines) // &
                       ' (a name and a number)')
        return
      end if
    end do

    ! Classify the lines: 0 = input, 1 = dense, 2 = dropout,
    ! 3 = batch normalization, -1 = the activation line of a dense layer.
    allocate(kind_of(n_lines), width_of(n_lines), stat=ios)
    if (ios /= 0) then
      call fail(fkb_err_memory, allocation_failure('its ' // int_to_str(n_lines) // ' layer lines', &
                                                   int(n_lines, int64), 8))
      close(unit)
      return
    end if
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
          call fail(fkb_err_format, 'layer line ' // int_to_str(n) // ': ' // trim(names(n)) // &
                    ' layer before the input line')
          exit
        end if
      end select
      select case (trim(names(n)))
      case ('input')
        if (n_in > 0) then
          call fail(fkb_err_format, 'layer line ' // int_to_str(n) // ': a second input line')
          exit
        end if
        n_in = positive_width(info(n))
        if (n_in == 0) then
          call fail(fkb_err_format, 'layer line ' // int_to_str(n) // ': input width ' // &
                    real32_repr(info(n)) // ' is not a positive integer')
          exit
        end if
        kind_of(n) = 0
        width_of(n) = n_in
      case ('dense')
        width = positive_width(info(n))
        if (width == 0) then
          call fail(fkb_err_format, 'layer line ' // int_to_str(n) // ': dense width ' // &
                    real32_repr(info(n)) // ' is not a positive integer')
          exit
        end if
        if (n == n_lines) then
          call fail(fkb_err_format, 'layer line ' // int_to_str(n) // &
                    ': dense layer without an activation line')
          exit
        end if
        if (.not. known_activation(names(n + 1))) then
          call fail(fkb_err_unsupported, 'layer line ' // int_to_str(n + 1) // ': unknown activation ''' // &
                    trim(names(n + 1)) // ''' of the dense layer on layer line ' // int_to_str(n))
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
          call fail(fkb_err_unsupported, 'layer line ' // int_to_str(n) // ': activation ''' // &
                    trim(names(n)) // ''' does not follow a dense layer (the original FKB ignored it)')
        else
          call fail(fkb_err_unsupported, 'layer line ' // int_to_str(n) // ': unknown layer ''' // &
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

    ! The widths and weights the layers declare, against the limits both
    ! readers apply (fkb_files), before a tensor is allocated.
    block
      integer :: widths(n_layers)
      integer(int64) :: n_values
      character(len=:), allocatable :: problem
      width = n_in
      id = 0
      n_values = 0
      do n = 1, n_lines
        select case (kind_of(n))
        case (1)
          n_values = n_values + int(width_of(n), int64) * (int(width, int64) + 1)
          width = width_of(n)
        case (3)
          n_values = n_values + 4 * int(width, int64)
        case (2)
        case default
          cycle
        end select
        id = id + 1
        widths(id) = width
      end do
      problem = width_problem(n_in, widths)
      if (len(problem) == 0) problem = values_problem(n_values)
      if (len(problem) > 0) then
        call fail(fkb_err_format, problem)
        close(unit)
        return
      end if
    end block

    ! Build the layers; widths follow the last dense layer (or the input).
    allocate(spec%layers(n_layers), stat=ios)
    if (ios /= 0) then
      call fail(fkb_err_memory, allocation_failure('its ' // int_to_str(n_layers) // ' layers', &
                                                   int(n_layers, int64), storage_size(spec%layers) / 8))
      close(unit)
      return
    end if
    spec%n_inputs = n_in
    width = n_in
    id = 0
    do n = 1, n_lines
      select case (kind_of(n))
      case (1)
        id = id + 1
        call make_dense(spec%layers(id), id, width, width_of(n), names(n + 1), info(n + 1), stat, msg)
        if (stat /= fkb_ok) then
          msg = path // ': layer line ' // int_to_str(n + 1) // ': ' // msg
          close(unit)
          return
        end if
        width = width_of(n)
      case (2)
        id = id + 1
        width_of(n) = width
        if (.not. finite32(info(n)) .or. info(n) < 0 .or. info(n) >= 1) then
          call fail(fkb_err_format, 'layer line ' // int_to_str(n) // ': dropout rate ' // &
                    real32_repr(info(n)) // ' is not in [0, 1)')
          close(unit)
          return
        end if
        call make_layer(spec%layers(id), 'dropout', id, width)
        spec%layers(id)%attributes = [attribute('variant', 'dropout'), &
                                      attribute('rate', real32_repr(info(n)))]
        allocate(spec%layers(id)%params(0), stat=ios)
        if (ios /= 0) then
          call fail(fkb_err_memory, 'layer line ' // int_to_str(n) // &
                    ': out of memory: cannot allocate its empty list of weights')
          close(unit)
          return
        end if
      case (3)
        id = id + 1
        width_of(n) = width
        call make_layer(spec%layers(id), 'batch_normalization', id, width)
        spec%layers(id)%attributes = [attribute('epsilon', '0.001'), attribute('center', '1'), &
                                      attribute('scale', '1')]
        ! stored in Keras's order; read below in the original's order
        allocate(spec%layers(id)%params(4), stat=ios)
        if (ios == 0) call unread_tensor(spec%layers(id)%params(1), 'gamma', [width], ios)
        if (ios == 0) call unread_tensor(spec%layers(id)%params(2), 'beta', [width], ios)
        if (ios == 0) call unread_tensor(spec%layers(id)%params(3), 'moving_mean', [width], ios)
        if (ios == 0) call unread_tensor(spec%layers(id)%params(4), 'moving_variance', [width], ios)
        if (ios /= 0) then
          call fail(fkb_err_memory, 'layer line ' // int_to_str(n) // ': ' // &
                    allocation_failure('its 4 x ' // int_to_str(width) // ' weights', &
                                       4_int64 * width, 4))
          close(unit)
          return
        end if
      end select
    end do
    spec%n_outputs = width

    read(unit, *, iostat=ios) learning_rate
    if (ios /= 0) then
      call fail_read(ios, 'the learning-rate line')
      return
    end if

    ! biases of every dense layer (params(2)), then weights (params(1))
    do i = 1, n_layers
      if (spec%layers(i)%kind /= 'dense') cycle
      read(unit, *, iostat=ios) spec%layers(i)%params(2)%values
      if (ios /= 0) then
        call fail_read(ios, 'the bias of layer ' // int_to_str(i) // ' (dense, ' // &
                       int_to_str(spec%layers(i)%n_out) // ' values)')
        return
      end if
    end do
    do i = 1, n_layers
      if (spec%layers(i)%kind /= 'dense') cycle
      call read_kernel(unit, spec%layers(i)%params(1), ios)
      if (ios /= 0) then
        call fail_read(ios, 'the weights of layer ' // int_to_str(i) // ' (dense, ' // &
                       int_to_str(size(spec%layers(i)%params(1)%values)) // ' values)')
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
        call fail_read(ios, 'the beta, gamma, mean and variance of layer ' // int_to_str(i) // &
                       ' (batch normalization, ' // int_to_str(spec%layers(i)%n_out) // ' values each)')
        return
      end if
    end do
    close(unit)

    do i = 1, n_layers
      do n = 1, size(spec%layers(i)%params)
        if (first_nonfinite(spec%layers(i)%params(n)%values) > 0) then
          call fail(fkb_err_nonfinite, 'layer ' // int_to_str(i) // ' (' // spec%layers(i)%kind // &
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
      !! A failed read of `what`; closes the file.
      integer, intent(in) :: io_status
      character(len=*), intent(in) :: what
      if (io_status == iostat_end) then
        call fail(fkb_err_format, 'truncated: the file ends before ' // what)
      else
        call fail(fkb_err_format, 'malformed number in ' // what)
      end if
      close(unit)
    end subroutine fail_read

  end subroutine read_legacy_file

  subroutine read_kernel(unit, kernel, ios)
    !! Reads the original `w(n_in, n_out)` in one list-directed read and
    !! stores its transpose, our `kernel(n_out, n_in)`.
    integer, intent(in) :: unit
    type(tensor_spec), intent(inout) :: kernel
    integer, intent(out) :: ios
    real(real32), allocatable :: w(:, :)

    allocate(w(kernel%shape(2), kernel%shape(1)), stat=ios)
    if (ios /= 0) return
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
    character(len=:), allocatable :: keras_name

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
      if (trim(activation_name) == 'leakyrelu') then
        ! the original computed max(alpha x, x), which is Keras's leaky ReLU
        ! only for 0 <= alpha <= 1
        if (alpha < 0 .or. alpha > 1) then
          stat = fkb_err_unsupported
          msg = 'leakyrelu alpha ' // real32_repr(alpha) // ' outside [0, 1]'
          return
        end if
        keras_name = 'leaky_relu'
      else
        keras_name = 'elu'
      end if
      layer%attributes = [attribute('activation', keras_name), &
                          attribute('alpha', real32_repr(alpha)), attribute('use_bias', '1')]
    case default
      ! relu, linear, tanh, sigmoid, softplus, exponential, gaussian, step:
      ! the original ignored their number
      layer%attributes = [attribute('activation', trim(activation_name)), attribute('use_bias', '1')]
    end select
    allocate(layer%params(2), stat=stat)
    if (stat == 0) call unread_tensor(layer%params(1), 'kernel', [n_out, n_in], stat)
    if (stat == 0) call unread_tensor(layer%params(2), 'bias', [n_out], stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      msg = allocation_failure('the weights of the dense layer (' // int_to_str(n_out) // ' x ' // &
                               int_to_str(n_in + 1) // ')', int(n_out, int64) * (n_in + 1), 4)
    end if
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

  pure subroutine unread_tensor(tensor, name, shape, stat)
    !! A tensor of Fortran shape `shape` (one or two extents) whose values
    !! are still to be read, allocated in place: a kernel can be large
    !! (`stat` /= 0 when it cannot be allocated).
    type(tensor_spec), intent(out) :: tensor
    character(len=*), intent(in) :: name
    integer, intent(in) :: shape(:)
    integer, intent(out) :: stat
    tensor%name = name
    tensor%rank = size(shape)
    tensor%shape = 1
    tensor%shape(1:size(shape)) = shape
    allocate(tensor%values(product(int(shape, int64))), stat=stat)
  end subroutine unread_tensor

  pure integer function positive_width(x) result(width)
    !! The width on a layer line; 0 when it is not a whole number of at
    !! least 1 (the original truncated a fraction: refused, as the Python
    !! reader does).
    real(real32), intent(in) :: x
    width = 0
    if (finite32(x) .and. x >= 1 .and. x < 2.0e9) then
      if (x == aint(x)) width = int(x)
    end if
  end function positive_width

end module fkb_legacy
