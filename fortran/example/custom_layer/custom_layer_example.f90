program custom_layer_example
  !! A Fortran program that uses a custom layer (docs/custom-layers.md):
  !! it registers the column-water-conservation layer, loads a model file
  !! that holds one, predicts, and trains.
  !!
  !!     custom_layer_example MODEL X.txt
  !!         print the predictions for the samples of X.txt (one per line)
  !!     custom_layer_example MODEL X.txt Y.txt BATCH sgd|adam LEARNING_RATE
  !!         train (MSE) on X.txt, Y.txt in consecutive minibatches of BATCH
  !!         samples, one step each; print `loss <step> <value>` per step,
  !!         `weight <value>` per trainable weight, then the predictions
  !!     custom_layer_example MODEL X.txt Y.txt gradient
  !!         print the MSE loss of the whole set (`loss 0 <value>`) and its
  !!         gradient (`weight <value>` per trainable weight)
  !!     custom_layer_example --self-test
  !!         build a small model in code and check the layer without files
  !!
  !! Samples are rows: X.txt has n_inputs values per line, Y.txt n_outputs.
  !! Errors go to stderr as one line, with exit status 1.
  use iso_fortran_env, only: real32, real64, error_unit, output_unit
  use fkb, only: network, layer_registry, sgd, adam, optimizer, fkb_ok, model_spec, layer_spec, &
                 tensor_spec, attribute_spec
  use column_water_conservation, only: make_column_water_layer, column_water_kind
  implicit none
  type(layer_registry) :: registry
  type(network) :: net
  integer :: stat, n_args
  character(len=:), allocatable :: msg
  character(len=4096) :: arg(6)
  integer :: i

  n_args = command_argument_count()
  do i = 1, min(n_args, size(arg))
    call get_command_argument(i, arg(i))
  end do
  ! The program owns its registry: the library keeps no global state.
  call registry%add(column_water_kind, make_column_water_layer, stat, msg)
  call check('registry')

  if (n_args == 1 .and. arg(1) == '--self-test') then
    call self_test()
    stop
  end if
  if (n_args /= 2 .and. n_args /= 4 .and. n_args /= 6) then
    write (error_unit, '(a)') 'usage: custom_layer_example MODEL X.txt [Y.txt BATCH sgd|adam LR | ' // &
      'Y.txt gradient] | --self-test'
    error stop 1
  end if

  call net%load(trim(arg(1)), stat, msg, registry=registry)
  call check('load')
  if (n_args == 2) then
    call print_predictions(trim(arg(2)))
  else if (n_args == 4) then
    call print_gradient(trim(arg(2)), trim(arg(3)))
  else
    call train(trim(arg(2)), trim(arg(3)), trim(arg(4)), trim(arg(5)), trim(arg(6)))
  end if

contains

  subroutine check(what)
    character(len=*), intent(in) :: what
    if (stat == fkb_ok) return
    write (error_unit, '(a)') 'custom_layer_example: ' // what // ': ' // msg
    error stop 1
  end subroutine check

  subroutine print_predictions(x_path)
    character(len=*), intent(in) :: x_path
    real(real32), allocatable :: x(:, :), y(:, :)
    integer :: j
    call read_samples(x_path, net%n_inputs(), x)
    allocate (y(net%n_outputs(), size(x, 2)))
    call net%predict(x, y, stat, msg)
    call check('predict')
    do j = 1, size(y, 2)
      write (output_unit, '(*(es16.8e3, :, 1x))') y(:, j)
    end do
  end subroutine print_predictions

  subroutine print_gradient(x_path, y_path)
    character(len=*), intent(in) :: x_path, y_path
    real(real32), allocatable :: x(:, :), y(:, :), grad(:)
    real(real32) :: loss
    integer :: i
    call read_samples(x_path, net%n_inputs(), x)
    call read_samples(y_path, net%n_outputs(), y)
    call net%compile(sgd(), 'mse', stat, msg)
    call check('compile')
    allocate (grad(net%n_trainable()))
    call net%gradient(x, y, grad, loss, stat, msg)
    call check('gradient')
    write (output_unit, '(a, i0, 1x, es16.8e3)') 'loss ', 0, loss
    do i = 1, size(grad)
      write (output_unit, '(a, es16.8e3)') 'weight ', grad(i)
    end do
  end subroutine print_gradient

  subroutine train(x_path, y_path, batch_text, opt_name, lr_text)
    character(len=*), intent(in) :: x_path, y_path, batch_text, opt_name, lr_text
    real(real32), allocatable :: x(:, :), y(:, :), w(:)
    real(real32) :: loss
    real(real64) :: lr
    type(optimizer) :: opt
    integer :: batch, j0, step, ios
    read (batch_text, *, iostat=ios) batch
    if (ios /= 0 .or. batch < 1) call usage_error('BATCH must be a positive integer')
    read (lr_text, *, iostat=ios) lr
    if (ios /= 0) call usage_error('LEARNING_RATE must be a number')
    select case (opt_name)
    case ('sgd'); opt = sgd(learning_rate=lr)
    case ('adam'); opt = adam(learning_rate=lr)
    case default; call usage_error('the optimizer is sgd or adam')
    end select
    call read_samples(x_path, net%n_inputs(), x)
    call read_samples(y_path, net%n_outputs(), y)
    if (size(y, 2) /= size(x, 2)) call usage_error('X.txt and Y.txt hold different numbers of samples')
    call net%compile(opt, 'mse', stat, msg)
    call check('compile')
    step = 0
    do j0 = 1, size(x, 2), batch
      step = step + 1
      associate (last => min(size(x, 2), j0 + batch - 1))
        call net%train_step(x(:, j0:last), y(:, j0:last), stat, msg, loss)
      end associate
      call check('train_step')
      write (output_unit, '(a, i0, 1x, es16.8e3)') 'loss ', step, loss
    end do
    allocate (w(net%n_trainable()))
    call net%get_weights(w, stat, msg)
    call check('get_weights')
    do j0 = 1, size(w)
      write (output_unit, '(a, es16.8e3)') 'weight ', w(j0)
    end do
    call print_predictions(x_path)
  end subroutine train

  subroutine usage_error(text)
    character(len=*), intent(in) :: text
    write (error_unit, '(a)') 'custom_layer_example: ' // text
    error stop 1
  end subroutine usage_error

  subroutine read_samples(path, n_features, a)
    !! Every non-blank line of `path` is one sample of `n_features` values.
    character(len=*), intent(in) :: path
    integer, intent(in) :: n_features
    real(real32), allocatable, intent(out) :: a(:, :)
    character(len=65536) :: line
    integer :: unit, ios, n, j
    open (newunit=unit, file=path, status='old', action='read', iostat=ios)
    if (ios /= 0) call usage_error(path // ': cannot open')
    n = 0
    do
      read (unit, '(a)', iostat=ios) line
      if (ios /= 0) exit
      if (len_trim(line) > 0) n = n + 1
    end do
    allocate (a(n_features, n))
    rewind (unit)
    j = 0
    do while (j < n)
      read (unit, '(a)') line
      if (len_trim(line) == 0) cycle
      j = j + 1
      read (line, *, iostat=ios) a(:, j)
      if (ios /= 0) call usage_error(path // ': a line does not hold the expected number of values')
    end do
    close (unit)
  end subroutine read_samples

  subroutine self_test()
    !! A model built in code: a dense layer predicting 2 + 3 levels + 1
    !! outputs, then the conservation layer. Checks the budget, that
    !! training lowers the loss and moves the layer's weights, that a saved
    !! network keeps them, that a network without the registry refuses the
    !! model, and that the registry refuses a bad or repeated kind.
    integer, parameter :: nlev = 3, n_in = 4, n_out = 2 + nlev + 1, n = 16
    real(real32), parameter :: g = 9.80665
    type(model_spec) :: spec
    type(network) :: plain
    type(layer_registry) :: other
    real(real32) :: x(n_in, n), y(n_out, n), t(n_out, n), loss0, loss
    real(real32), allocatable :: weights(:)
    real(real64) :: budget, scale_of_terms
    integer :: i, j, k

    spec%n_inputs = n_in
    spec%n_outputs = n_out
    allocate (spec%layers(2))
    spec%layers(1) = layer_spec('dense', n_out, [0], &
      [attribute_spec('activation', 'tanh'), attribute_spec('use_bias', '1')], &
      [tensor_spec('kernel', [n_out, n_in], 2, [(0.1 * sin(real(i)), i = 1, n_out * n_in)]), &
       tensor_spec('bias', [n_out, 1], 1, [(0.05 * i, i = 1, n_out)])])
    spec%layers(2) = layer_spec(column_water_kind, n_out, [1, 0], &
      [attribute_spec('q_first', '3'), attribute_spec('n_levels', '3'), &
       attribute_spec('precip', '6'), attribute_spec('ps', '4'), &
       attribute_spec('gravity', '9.80665'), attribute_spec('precip_offset', '3e-05'), &
       attribute_spec('precip_scale', '2e-05'), attribute_spec('ps_offset', '100000.0'), &
       attribute_spec('ps_scale', '1000.0')], &
      [tensor_spec('dsigma', [nlev, 1], 1, [0.2, 0.3, 0.5]), &
       tensor_spec('q_offset', [nlev, 1], 1, [-1.0e-9, -2.0e-9, -4.0e-9]), &
       tensor_spec('q_scale', [nlev, 1], 1, [1.0e-9, 2.0e-9, 3.0e-9]), &
       tensor_spec('log_weights', [nlev, 1], 1, [0.0, 0.5, -0.5])])

    call other%add('column_water', make_column_water_layer, stat, msg)
    if (stat == fkb_ok) then
      write (error_unit, '(a)') 'self-test: the registry accepted a kind without a namespace'
      error stop 1
    end if
    call registry%add(column_water_kind, make_column_water_layer, stat, msg)
    if (stat == fkb_ok .or. registry%n_kinds() /= 1) then
      write (error_unit, '(a)') 'self-test: the registry accepted a kind twice'
      error stop 1
    end if
    call plain%from_spec(spec, stat, msg)
    if (stat == fkb_ok .or. index(msg, 'unknown layer type ' // column_water_kind) == 0) then
      write (error_unit, '(a)') 'self-test: a network without the registry accepted the layer'
      error stop 1
    end if
    call net%from_spec(spec, stat, msg, registry=registry)
    call check('from_spec')

    do j = 1, n
      x(:, j) = [(cos(real(3 * j + i)), i = 1, n_in)]
      t(:, j) = [(0.5 * sin(real(j + 2 * i)), i = 1, n_out)]
    end do
    call net%predict(x, y, stat, msg)
    call check('predict')
    ! -sum_k q_k ps dsigma_k / g = P, in physical units
    do j = 1, n
      budget = (y(6, j) * 2.0e-5_real64 + 3.0e-5_real64)
      scale_of_terms = abs(budget)
      do k = 1, nlev
        associate (q => y(2 + k, j) * [1.0e-9_real64, 2.0e-9_real64, 3.0e-9_real64] + &
                        [-1.0e-9_real64, -2.0e-9_real64, -4.0e-9_real64], &
                   ps => x(4, j) * 1000.0_real64 + 100000.0_real64, &
                   ds => [0.2_real64, 0.3_real64, 0.5_real64])
          budget = budget + q(k) * ps * ds(k) / g
          scale_of_terms = scale_of_terms + abs(q(k) * ps * ds(k) / g)
        end associate
      end do
      if (abs(budget) > 1.0e-5_real64 * scale_of_terms) then
        write (error_unit, '(a, i0, a, es10.3)') 'self-test: column ', j, &
          ' does not conserve water, residual ', budget
        error stop 1
      end if
    end do

    call net%compile(adam(learning_rate=0.01_real64), 'mse', stat, msg)
    call check('compile')
    if (net%n_trainable() /= n_out * n_in + n_out + nlev) then
      write (error_unit, '(a)') 'self-test: wrong number of trainable weights'
      error stop 1
    end if
    do i = 1, 50
      call net%train_step(x, t, stat, msg, loss)
      call check('train_step')
      if (i == 1) loss0 = loss
    end do
    allocate (weights(net%n_trainable()))
    call net%get_weights(weights, stat, msg)
    call check('get_weights')
    if (.not. (loss < 0.9 * loss0) .or. &
        all(abs(weights(size(weights) - nlev + 1:) - [0.0, 0.5, -0.5]) < 1.0e-3)) then
      write (error_unit, '(a)') 'self-test: training did not lower the loss or move log_weights'
      error stop 1
    end if
    ! a saved trained network keeps the layer's trained weights
    call net%predict(x, y, stat, msg)
    call check('predict')
    call net%save('custom_layer_self_test.fkb', stat, msg)
    call check('save')
    call plain%load('custom_layer_self_test.fkb', stat, msg, registry=registry)
    call check('load the saved network')
    call plain%predict(x, t, stat, msg)
    call check('predict with the saved network')
    if (any(t /= y)) then
      write (error_unit, '(a)') 'self-test: the saved network predicts differently'
      error stop 1
    end if
    write (output_unit, '(a, es10.3, a, es10.3)') 'self-test passed: loss ', loss0, ' -> ', loss
  end subroutine self_test

end program custom_layer_example
