module training_test_losses
  !! A custom loss for the tests (in a module: an internal procedure passed
  !! as an argument would need an executable stack).
  use iso_fortran_env, only: real64
  implicit none
  private
  public :: quartic

contains

  subroutine quartic(y_pred, y_true, value, grad)
    !! sum of (y_pred - y_true)^4
    real(real64), intent(in) :: y_pred(:, :), y_true(:, :)
    real(real64), intent(out) :: value
    real(real64), intent(out) :: grad(:, :)
    value = sum((y_pred - y_true)**4)
    grad = 4 * (y_pred - y_true)**3
  end subroutine quartic

end module training_test_losses

program test_training
  !! Training: the backward pass of every trainable layer and activation
  !! against central finite differences of the loss (real64), every loss,
  !! the optimizers' first steps on a one-weight model computed by hand, the
  !! learning-rate schedules, `fit` (reproducible from its seed, learns a
  !! linear map) and the refusals.
  use iso_fortran_env, only: real32, real64
  use fkb, only: network, network_r64, model_spec, layer_spec, fkb_ok, fkb_err_argument, &
                 fkb_err_unsupported, fkb_err_shape, optimizer, sgd, rmsprop, adam, adamw, &
                 adagrad, exponential_decay, step_decay, learning_rate_at
  use fkb_test_specs, only: layer, attr, param, no_attrs, no_params
  use fkb_testing, only: tester
  use training_test_losses, only: quartic
  implicit none

  type(tester) :: t

  t%suite = 'training'
  call test_activation_gradients(t)
  call test_graph_gradients(t)
  call test_loss_gradients(t)
  call test_optimizer_steps(t)
  call test_schedules(t)
  call test_fit(t)
  call test_real32_matches_real64(t)
  call test_dropout_masks(t)
  call test_noise_layers(t)
  call test_batch_normalization_statistics(t)
  call test_refusals(t)
  call t%finish()

contains

  function values(n, seed) result(v)
    !! `n` deterministic pseudo-random values in (-1, 1).
    integer, intent(in) :: n, seed
    real(real64) :: v(n)
    integer :: i
    do i = 1, n
      v(i) = sin(12.9898d0 * i + 78.233d0 * seed) * 43758.5453d0
      v(i) = 0.9d0 * (2 * (v(i) - floor(v(i))) - 1)
    end do
  end function values

  function dense(n_out, n_in, inputs, activation, seed, alpha) result(l)
    integer, intent(in) :: n_out, n_in, inputs(:), seed
    character(len=*), intent(in) :: activation
    character(len=*), intent(in), optional :: alpha
    type(layer_spec) :: l
    if (present(alpha)) then
      l = layer('dense', n_out, inputs, [attr('activation', activation), attr('alpha', alpha), &
                attr('use_bias', '1')], &
                [param('kernel', [n_out, n_in], values(n_out * n_in, seed)), &
                 param('bias', [n_out, 1], 0.3d0 * values(n_out, seed + 100))])
    else
      l = layer('dense', n_out, inputs, [attr('activation', activation), attr('use_bias', '1')], &
                [param('kernel', [n_out, n_in], values(n_out * n_in, seed)), &
                 param('bias', [n_out, 1], 0.3d0 * values(n_out, seed + 100))])
    end if
  end function dense

  function model(layers, n_in, n_out) result(spec)
    type(layer_spec), intent(in) :: layers(:)
    integer, intent(in) :: n_in, n_out
    type(model_spec) :: spec
    spec%n_inputs = n_in
    spec%n_outputs = n_out
    spec%layers = layers
  end function model

  subroutine check_gradient(t, spec, loss, label, custom_loss)
    !! The gradient of `net%gradient` against central differences of the
    !! loss, weight by weight, on a batch of 5 columns.
    type(tester), intent(inout) :: t
    type(model_spec), intent(in) :: spec
    character(len=*), intent(in) :: loss, label
    procedure(quartic), optional :: custom_loss
    type(network_r64) :: net
    real(real64), allocatable :: x(:, :), y(:, :), w(:), g(:), fd(:), wp(:), scratch(:)
    real(real64) :: value, plus, minus, h, tol
    logical :: ok
    integer :: stat, i
    character(len=:), allocatable :: msg
    tol = 1.0d-5
    call net%from_spec(spec, stat, msg)
    call t%status(stat, fkb_ok, msg, label // ': build')
    if (stat /= fkb_ok) return
    call net%compile(sgd(), loss, stat, msg, custom_loss=custom_loss)
    call t%status(stat, fkb_ok, msg, label // ': compile')
    if (stat /= fkb_ok) return
    x = reshape(1.5d0 * values(spec%n_inputs * 5, 41), [spec%n_inputs, 5])
    y = reshape(values(spec%n_outputs * 5, 43), [spec%n_outputs, 5])
    allocate (w(net%n_trainable()), g(net%n_trainable()), fd(net%n_trainable()), &
              scratch(net%n_trainable()))
    call net%get_weights(w, stat, msg)
    call net%gradient(x, y, g, value, stat, msg)
    call t%status(stat, fkb_ok, msg, label // ': gradient')
    h = 1.0d-6
    do i = 1, size(w)
      ! compiling again with the same seed draws the same dropout masks
      wp = w
      wp(i) = w(i) + h
      call net%compile(sgd(), loss, stat, msg, custom_loss=custom_loss)
      call net%set_weights(wp, stat, msg)
      call net%gradient(x, y, scratch, plus, stat, msg)
      wp(i) = w(i) - h
      call net%compile(sgd(), loss, stat, msg, custom_loss=custom_loss)
      call net%set_weights(wp, stat, msg)
      call net%gradient(x, y, scratch, minus, stat, msg)
      fd(i) = (plus - minus) / (2 * h)
    end do
    ! element by element: relative 1e-5 plus the rounding noise of the
    ! differences (about eps * loss / h)
    ok = all(abs(g - fd) <= tol * abs(fd) + 1.0d-8 * max(1.0d0, abs(value)))
    call t%check(ok, label // ': backward = finite differences')
    if (.not. ok) then
      i = maxloc(abs(g - fd) / (tol * abs(fd) + 1.0d-8), dim=1)
      print '(a, i0, a, 2es14.6)', label // ': weight ', i, ' backward, finite differences:', &
        g(i), fd(i)
    end if
  end subroutine check_gradient

  subroutine test_activation_gradients(t)
    !! Dense(4, act) -> Dense(2, linear) for every activation of the file.
    type(tester), intent(inout) :: t
    character(len=12), parameter :: plain(22) = [character(len=12) :: 'linear', 'relu', 'relu6', &
      'selu', 'gelu', 'gelu_tanh', 'sigmoid', 'hard_sigmoid', 'hard_silu', 'tanh', 'softplus', &
      'softsign', 'silu', 'mish', 'exponential', 'softmax', 'log_softmax', 'hard_tanh', &
      'log_sigmoid', 'tanh_shrink', 'gaussian', 'step']
    character(len=12), parameter :: with_alpha(4) = [character(len=12) :: 'leaky_relu', 'elu', &
      'celu', 'squareplus']
    character(len=4), parameter :: alphas(4) = ['0.2 ', '0.7 ', '1.3 ', '4.0 ']
    integer :: k
    do k = 1, size(plain)
      call check_gradient(t, model([dense(4, 3, [0], trim(plain(k)), 1), &
                                    dense(2, 4, [1], 'linear', 2)], 3, 2), &
                          'mse', 'activation ' // trim(plain(k)))
    end do
    do k = 1, size(with_alpha)
      call check_gradient(t, model([dense(4, 3, [0], trim(with_alpha(k)), 1, trim(alphas(k))), &
                                    dense(2, 4, [1], 'linear', 2)], 3, 2), &
                          'mse', 'activation ' // trim(with_alpha(k)))
    end do
  end subroutine test_activation_gradients

  subroutine test_graph_gradients(t)
    !! Every other trainable layer type in one graph, with input and output
    !! normalization: activation layers, PReLU, rescaling, normalization,
    !! dropout (a fixed seed, so the same mask), batch normalization (batch
    !! statistics) and layer normalization with and without center/scale,
    !! every merge and concatenate.
    type(tester), intent(inout) :: t
    type(model_spec) :: spec
    type(layer_spec), allocatable :: ls(:)
    character(len=8), parameter :: merges(6) = [character(len=8) :: 'add', 'subtract', &
      'multiply', 'average', 'maximum', 'minimum']
    integer :: k
    do k = 1, size(merges)
      ls = [dense(4, 3, [0], 'tanh', 3), &                                         ! 1
            layer('relu', 4, [1], [attr('max_value', '0.5'), attr('negative_slope', '0.1'), &
                  attr('threshold', '0.1')], no_params()), &                         ! 2
            layer('leaky_relu', 4, [1], [attr('negative_slope', '0.25')], no_params()), & ! 3
            layer(trim(merges(k)), 4, [2, 3], no_attrs(), no_params()), &            ! 4
            layer('prelu', 4, [4], no_attrs(), [param('alpha', [4, 1], values(4, 5))]), & ! 5
            layer('rescaling', 4, [5], no_attrs(), [param('scale', [4, 1], values(4, 6)), &
                  param('offset', [4, 1], values(4, 7))]), &                            ! 6
            layer('normalization', 4, [6], [attr('invert', '0')], &
                  [param('mean', [4, 1], values(4, 8)), &
                   param('variance', [4, 1], 1.5d0 + values(4, 9))]), &                 ! 7
            layer('dropout', 4, [7], [attr('variant', 'dropout'), attr('rate', '0.3')], &
                  no_params()), &                                                       ! 8
            layer('elu', 4, [8], [attr('alpha', '0.8')], no_params()), &              ! 9
            layer('concatenate', 7, [9, 0], no_attrs(), no_params()), &               ! 10
            dense(3, 7, [10], 'linear', 11), &                                          ! 11
            layer('activation', 3, [11], [attr('activation', 'sigmoid')], no_params()), & ! 12
            layer('softmax', 3, [12], no_attrs(), no_params()), &                     ! 13
            layer('batch_normalization', 3, [13], [attr('epsilon', '0.001'), &
                  attr('center', '1'), attr('scale', '1'), attr('momentum', '0.9')], &
                  [param('moving_mean', [3, 1], values(3, 15)), &
                   param('moving_variance', [3, 1], 1.0d0 + values(3, 16)), &
                   param('gamma', [3, 1], 1.0d0 + values(3, 17)), &
                   param('beta', [3, 1], values(3, 18))]), &                            ! 14
            layer('layer_normalization', 3, [14], [attr('epsilon', '0.001'), &
                  attr('center', '1'), attr('scale', '1')], &
                  [param('gamma', [3, 1], 1.0d0 + values(3, 19)), &
                   param('beta', [3, 1], values(3, 20))]), &                            ! 15
            layer('batch_normalization', 3, [15], [attr('epsilon', '0.01'), &
                  attr('center', '0'), attr('scale', '1')], &
                  [param('moving_mean', [3, 1], values(3, 21)), &
                   param('moving_variance', [3, 1], 1.0d0 + values(3, 22)), &
                   param('gamma', [3, 1], 1.0d0 + values(3, 23))]), &                   ! 16
            layer('layer_normalization', 3, [16], [attr('epsilon', '0.001'), &
                  attr('center', '1'), attr('scale', '0')], &
                  [param('beta', [3, 1], values(3, 24))]), &                            ! 17
            dense(2, 3, [17], 'linear', 25)]                                            ! 18
      spec = model(ls, 3, 2)
      spec%has_input_normalization = .true.
      spec%input_offset = [0.1, -0.2, 0.3]
      spec%input_scale = [2.0, 0.5, 1.5]
      spec%has_output_normalization = .true.
      spec%output_offset = [1.0, -1.0]
      spec%output_scale = [3.0, 0.25]
      call check_gradient(t, spec, 'mse', 'graph with ' // trim(merges(k)))
    end do
  end subroutine test_graph_gradients

  subroutine test_loss_gradients(t)
    !! Every built-in loss and a custom one through the same network.
    type(tester), intent(inout) :: t
    character(len=8), parameter :: losses(4) = [character(len=8) :: 'mse', 'mae', 'huber', &
      'log_cosh']
    type(model_spec) :: spec
    type(network_r64) :: net
    real(real64) :: x(3, 2), y(2, 2), g(26), value, expected
    integer :: k, stat
    character(len=:), allocatable :: msg
    spec = model([dense(4, 3, [0], 'silu', 21), dense(2, 4, [1], 'linear', 22)], 3, 2)
    do k = 1, size(losses)
      call check_gradient(t, spec, trim(losses(k)), 'loss ' // trim(losses(k)))
    end do
    ! values: one network, predictions p, errors e = p - y set by hand
    call net%from_spec(model([layer('dense', 2, [0], [attr('activation', 'linear'), &
                              attr('use_bias', '0')], &
                              [param('kernel', [2, 3], [1d0, 0d0, 0d0, 1d0, 0d0, 0d0])])], 3, 2), &
                       stat, msg)
    x = reshape([0.5d0, 3d0, 9d0, -2d0, 0.25d0, 9d0], [3, 2])
    y = 0
    ! predictions: (0.5, 3), (-2, 0.25)
    call net%compile(sgd(), 'huber', stat, msg)
    call net%gradient(x, y, g(1:6), value, stat, msg)
    expected = (0.5d0 * 0.25d0 + (3d0 - 0.5d0) + (2d0 - 0.5d0) + 0.5d0 * 0.0625d0) / 4
    call t%close([value], [expected], 1d-14, 0d0, 'huber value (delta 1)')
    call net%compile(sgd(), 'huber', stat, msg, huber_delta=2.0d0)
    call net%gradient(x, y, g(1:6), value, stat, msg)
    expected = (0.5d0 * 0.25d0 + 2d0 * (3d0 - 1d0) + 0.5d0 * 4d0 + 0.5d0 * 0.0625d0) / 4
    call t%close([value], [expected], 1d-14, 0d0, 'huber value (delta 2)')
    call net%compile(sgd(), 'log_cosh', stat, msg)
    call net%gradient(x, y, g(1:6), value, stat, msg)
    expected = (log(cosh(0.5d0)) + log(cosh(3d0)) + log(cosh(2d0)) + log(cosh(0.25d0))) / 4
    call t%close([value], [expected], 1d-14, 0d0, 'log_cosh value')
    call net%compile(sgd(), 'mae', stat, msg)
    call net%gradient(x, y, g(1:6), value, stat, msg)
    call t%close([value], [(0.5d0 + 3d0 + 2d0 + 0.25d0) / 4], 1d-14, 0d0, 'mae value')
    call net%compile(sgd(), 'custom', stat, msg, custom_loss=quartic)
    call t%status(stat, fkb_ok, msg, 'compile with a custom loss')
    call net%gradient(x, y, g(1:6), value, stat, msg)
    call t%close([value], [0.5d0**4 + 3d0**4 + 2d0**4 + 0.25d0**4], 1d-14, 0d0, 'custom loss value')
    ! d/dK(1,1) = 4 e1^3 x1 over both columns: 4 (0.5^3 0.5 + (-2)^3 (-2))
    call t%close(g(1:1), [4 * (0.125d0 * 0.5d0 + 16d0)], 1d-14, 0d0, 'custom loss gradient')
    call check_gradient(t, spec, 'custom', 'loss custom (finite differences)', quartic)
  end subroutine test_loss_gradients

  subroutine check_steps(t, opt, expected, label)
    !! One weight w = 1, x = 1, y = 0, MSE: loss w^2, gradient 2 w. The
    !! weights after each of three steps against `expected`.
    type(tester), intent(inout) :: t
    type(optimizer), intent(in) :: opt
    real(real64), intent(in) :: expected(3)
    character(len=*), intent(in) :: label
    type(network_r64) :: net
    real(real64) :: w(1), got(3), loss
    integer :: stat, k
    character(len=:), allocatable :: msg
    call net%from_spec(model([layer('dense', 1, [0], [attr('activation', 'linear'), &
                              attr('use_bias', '0')], [param('kernel', [1, 1], [1d0])])], 1, 1), &
                       stat, msg)
    call net%compile(opt, 'mse', stat, msg)
    call t%status(stat, fkb_ok, msg, label // ': compile')
    do k = 1, 3
      call net%train_step(reshape([1d0], [1, 1]), reshape([0d0], [1, 1]), stat, msg, loss)
      call net%get_weights(w, stat, msg)
      got(k) = w(1)
    end do
    call t%close(got, expected, 1d-12, 0d0, label)
    call t%check(net%n_iterations() == 3, label // ': three iterations')
  end subroutine check_steps

  subroutine test_optimizer_steps(t)
    type(tester), intent(inout) :: t
    real(real64) :: w, m, v, a, g, e(3), lr
    integer :: k
    ! SGD lr 0.1: w <- w - 0.2 w = 0.8 w
    call check_steps(t, sgd(0.1d0), [0.8d0, 0.64d0, 0.512d0], 'sgd')
    ! momentum 0.5: m1 = -0.2, w1 = 0.8; m2 = -0.1 - 0.16 = -0.26, w2 = 0.54;
    ! m3 = -0.13 - 0.108 = -0.238, w3 = 0.302
    call check_steps(t, sgd(0.1d0, momentum=0.5d0), [0.8d0, 0.54d0, 0.302d0], 'sgd momentum')
    ! Nesterov: w += 0.5 m - 0.1 g with the new m:
    ! w1 = 1 - 0.1 - 0.2 = 0.7; m2 = -0.1 - 0.14 = -0.24, w2 = 0.7 - 0.12 - 0.14 = 0.44;
    ! m3 = -0.12 - 0.088 = -0.208, w3 = 0.44 - 0.104 - 0.088 = 0.248
    call check_steps(t, sgd(0.1d0, momentum=0.5d0, nesterov=.true.), [0.7d0, 0.44d0, 0.248d0], &
                     'sgd nesterov')
    ! RMSprop, Adam, AdamW, Adagrad: the recurrences written out
    lr = 0.01d0
    w = 1; v = 0
    do k = 1, 3
      v = 0.9d0 * v + 0.1d0 * (2 * w)**2
      w = w - lr * 2 * w / sqrt(v + 1d-7)
      e(k) = w
    end do
    call check_steps(t, rmsprop(lr), e, 'rmsprop')
    w = 1; v = 0; m = 0
    do k = 1, 3
      v = 0.9d0 * v + 0.1d0 * (2 * w)**2
      m = 0.5d0 * m + lr * 2 * w / sqrt(v + 1d-7)
      w = w - m
      e(k) = w
    end do
    call check_steps(t, rmsprop(lr, momentum=0.5d0), e, 'rmsprop momentum')
    w = 1; v = 0; m = 0; a = 0
    do k = 1, 3
      v = 0.9d0 * v + 0.1d0 * (2 * w)**2
      a = 0.9d0 * a + 0.1d0 * (2 * w)
      w = w - lr * 2 * w / sqrt(v - a**2 + 1d-7)
      e(k) = w
    end do
    call check_steps(t, rmsprop(lr, centered=.true.), e, 'rmsprop centered')
    w = 1; v = 0; m = 0
    do k = 1, 3
      m = m + (2 * w - m) * 0.1d0
      v = v + ((2 * w)**2 - v) * 0.001d0
      w = w - m * lr * sqrt(1 - 0.999d0**k) / (1 - 0.9d0**k) / (sqrt(v) + 1d-7)
      e(k) = w
    end do
    call check_steps(t, adam(lr), e, 'adam')
    ! AdamW: the gradient is taken at the step's start, then the weight
    ! decays, then the Adam step
    w = 1; v = 0; m = 0
    do k = 1, 3
      g = 2 * w
      w = w - w * 0.004d0 * lr
      m = m + (g - m) * 0.1d0
      v = v + (g**2 - v) * 0.001d0
      w = w - m * lr * sqrt(1 - 0.999d0**k) / (1 - 0.9d0**k) / (sqrt(v) + 1d-7)
      e(k) = w
    end do
    call check_steps(t, adamw(lr), e, 'adamw')
    w = 1; v = 0.1d0
    do k = 1, 3
      v = v + (2 * w)**2
      w = w - lr * 2 * w / sqrt(v + 1d-7)
      e(k) = w
    end do
    call check_steps(t, adagrad(lr), e, 'adagrad')
    ! SGD with exponential decay 0.1 * 0.5^(t/2): rates 0.1, 0.0707.., 0.05
    w = 1
    do k = 1, 3
      w = w - 0.1d0 * 0.5d0**((k - 1) / 2d0) * 2 * w
      e(k) = w
    end do
    call check_steps(t, sgd(schedule=exponential_decay(0.1d0, 2, 0.5d0)), e, 'sgd exponential decay')
    call check_steps(t, sgd(schedule=step_decay(0.1d0, 2, 0.5d0)), &
                     [0.8d0, 0.64d0, 0.64d0 * 0.9d0], 'sgd step decay')
  end subroutine test_optimizer_steps

  subroutine test_schedules(t)
    type(tester), intent(inout) :: t
    type(optimizer) :: opt
    opt = adam(schedule=exponential_decay(1d-2, 10, 0.5d0))
    call t%close([learning_rate_at(opt, 0)], [1d-2], 1d-15, 0d0, 'exponential decay at step 0')
    call t%close([learning_rate_at(opt, 5)], [1d-2 * sqrt(0.5d0)], 1d-15, 0d0, &
                 'exponential decay at step 5')
    opt = adam(schedule=step_decay(1d-2, 10, 0.5d0))
    call t%close([learning_rate_at(opt, 9)], [1d-2], 1d-15, 0d0, 'step decay at step 9')
    call t%close([learning_rate_at(opt, 25)], [2.5d-3], 1d-15, 0d0, 'step decay at step 25')
    opt = rmsprop()
    call t%close([learning_rate_at(opt, 1000)], [1d-3], 0d0, 0d0, 'constant rate')
  end subroutine test_schedules

  subroutine test_fit(t)
    !! Fit y = A x + b with a linear dense layer: the loss falls, the same
    !! seed gives the same weights, another seed other weights.
    type(tester), intent(inout) :: t
    type(network_r64) :: a, b, c
    type(model_spec) :: spec
    real(real64) :: x(3, 100), y(2, 100), history(30), wa(8), wb(8), wc(8)
    integer :: stat, j
    character(len=:), allocatable :: msg
    x = reshape(values(300, 61), [3, 100])
    do j = 1, 100
      y(1, j) = 0.5d0 * x(1, j) - x(2, j) + 0.1d0
      y(2, j) = x(3, j) - 0.2d0
    end do
    spec = model([dense(2, 3, [0], 'linear', 62)], 3, 2)
    call a%from_spec(spec, stat, msg)
    b = a
    c = a
    call a%compile(adam(0.05d0), 'mse', stat, msg)
    call b%compile(adam(0.05d0), 'mse', stat, msg)
    call c%compile(adam(0.05d0), 'mse', stat, msg)
    call a%fit(x, y, 30, 16, stat, msg, seed=7, history=history)
    call t%status(stat, fkb_ok, msg, 'fit')
    call t%check(history(30) < 0.01d0 * history(1), 'fit: the loss falls a hundredfold')
    call t%check(a%n_iterations() == 30 * 7, 'fit: 7 minibatches per epoch')
    call b%fit(x, y, 30, 16, stat, msg, seed=7)
    call c%fit(x, y, 30, 16, stat, msg, seed=8)
    call a%get_weights(wa, stat, msg)
    call b%get_weights(wb, stat, msg)
    call c%get_weights(wc, stat, msg)
    call t%check(all(wa == wb), 'fit: the same seed gives the same weights')
    call t%check(any(wa /= wc), 'fit: another seed gives other weights')
    call t%close(wa(1:6), [0.5d0, 0d0, -1d0, 0d0, 0d0, 1d0], 0d0, 0.05d0, 'fit: learns the kernel')
  end subroutine test_fit

  subroutine test_real32_matches_real64(t)
    !! The 32-bit network trains like the 64-bit one, to float32 precision,
    !! and predicts with its trained weights.
    type(tester), intent(inout) :: t
    type(network) :: n32
    type(network_r64) :: n64
    type(model_spec) :: spec
    real(real64) :: x(3, 8), y(2, 8), w64(26), y64(2, 8)
    real(real32) :: w32(26), y32(2, 8)
    integer :: stat, k
    character(len=:), allocatable :: msg
    spec = model([dense(4, 3, [0], 'gelu', 71), dense(2, 4, [1], 'linear', 72)], 3, 2)
    x = reshape(values(24, 73), [3, 8])
    y = reshape(values(16, 74), [2, 8])
    call n32%from_spec(spec, stat, msg)
    call n64%from_spec(spec, stat, msg)
    call n32%compile(adam(0.01d0), 'mse', stat, msg)
    call n64%compile(adam(0.01d0), 'mse', stat, msg)
    do k = 1, 5
      call n32%train_step(real(x, real32), real(y, real32), stat, msg)
      call n64%train_step(x, y, stat, msg)
    end do
    call n32%get_weights(w32, stat, msg)
    call n64%get_weights(w64, stat, msg)
    call t%close(real(w32, real64), w64, 0d0, 1d-5, 'real32 training = real64 training')
    call n32%predict(real(x, real32), y32, stat, msg)
    call n64%predict(x, y64, stat, msg)
    call t%close(real(y32, real64), y64, 0d0, 1d-5, 'predict after training, real32 = real64')
  end subroutine test_real32_matches_real64

  subroutine test_dropout_masks(t)
    !! Rate 0.25 on a wide layer: about 3/4 of the values kept, each scaled
    !! by 4/3; the same seed gives the same masks, another seed others;
    !! predict stays the identity.
    type(tester), intent(inout) :: t
    type(network_r64) :: net
    type(model_spec) :: spec
    real(real64) :: x(400, 50), y(400, 50), g(0), loss1, loss2, loss3, yp(400, 50)
    integer :: stat
    character(len=:), allocatable :: msg
    spec = model([layer('dropout', 400, [0], [attr('variant', 'dropout'), attr('rate', '0.25')], &
                        no_params())], 400, 400)
    call net%from_spec(spec, stat, msg)
    x = 1
    y = 0
    ! mse against 0 of the output: the mean of mask^2 = kept fraction * 16/9
    call net%compile(sgd(), 'mse', stat, msg, seed=3)
    call t%status(stat, fkb_ok, msg, 'dropout with a rate compiles')
    call net%gradient(x, y, g, loss1, stat, msg)
    call t%close([loss1 * 9 / 16], [0.75d0], 0d0, 0.01d0, 'dropout keeps 3/4, scaled by 4/3')
    call net%gradient(x, y, g, loss2, stat, msg)
    call t%check(loss2 /= loss1, 'dropout draws a new mask each step')
    call net%compile(sgd(), 'mse', stat, msg, seed=3)
    call net%gradient(x, y, g, loss3, stat, msg)
    call t%check(loss3 == loss1, 'dropout masks repeat with the seed')
    call net%compile(sgd(), 'mse', stat, msg, seed=4)
    call net%gradient(x, y, g, loss3, stat, msg)
    call t%check(loss3 /= loss1, 'another seed, other masks')
    call net%predict(x, yp, stat, msg)
    call t%check(all(yp == x), 'dropout is the identity in predict')
  end subroutine test_dropout_masks

  subroutine test_noise_layers(t)
    !! GaussianNoise, GaussianDropout and AlphaDropout in training: the
    !! statistics of their noise on 20000 values (mean squared differences
    !! against targets, as a loss), the identity in predict, and the
    !! backward pass through the drawn noise against finite differences.
    type(tester), intent(inout) :: t
    type(network_r64) :: net
    real(real64) :: x(400, 50), y(400, 50), g(0), loss, yp(400, 50), mean_loss
    integer :: stat, j, i
    character(len=:), allocatable :: msg
    character(len=16), parameter :: variants(3) = [character(len=16) :: 'gaussian_noise', &
                                                   'gaussian_dropout', 'alpha_dropout']
    character(len=6), parameter :: amount_keys(3) = [character(len=6) :: 'stddev', 'rate', 'rate']
    ! gaussian noise, stddev 0.5: E (out - x)^2 = 0.25
    x = 1
    call noise_net(net, 'gaussian_noise', 'stddev', '0.5')
    call net%gradient(x, x, g, loss, stat, msg)
    call t%status(stat, fkb_ok, msg, 'gaussian noise trains')
    call t%close([loss], [0.25d0], 0.03d0, 0d0, 'gaussian noise has variance stddev^2')
    y = 0
    call net%gradient(x, y, g, loss, stat, msg)
    call t%close([loss], [1.25d0], 0.02d0, 0d0, 'gaussian noise has mean 0')
    call net%predict(x, yp, stat, msg)
    call t%check(all(yp == x), 'gaussian noise is the identity in predict')
    ! gaussian dropout, rate 0.2: x times N(1, 0.2 / 0.8), E (out - x)^2 = 0.25 x^2
    x = 2
    call noise_net(net, 'gaussian_dropout', 'rate', '0.2')
    call net%gradient(x, x, g, loss, stat, msg)
    call t%status(stat, fkb_ok, msg, 'gaussian dropout trains')
    call t%close([loss], [1.0d0], 0.03d0, 0d0, 'gaussian dropout: variance rate / (1 - rate) x^2')
    call net%gradient(x, y, g, loss, stat, msg)
    call t%close([loss], [5.0d0], 0.02d0, 0d0, 'gaussian dropout: mean x')
    ! alpha dropout, rate 0.1: inputs of mean 0 and variance 1 keep them
    do j = 1, 50
      x(:, j) = merge(1.0d0, -1.0d0, mod([(i + j, i = 1, 400)], 2) == 0)
    end do
    call noise_net(net, 'alpha_dropout', 'rate', '0.1')
    call net%gradient(x, y, g, loss, stat, msg)
    call t%status(stat, fkb_ok, msg, 'alpha dropout trains')
    call t%close([loss], [1.0d0], 0.03d0, 0d0, 'alpha dropout keeps mean 0 and variance 1')
    ! E (out - x)^2 = E out^2 + 1 - 2 E(out x) = 2 - 2 a (1 - rate); rare
    ! large terms (dropped values): the mean of 5 draws, 1.3% standard error
    mean_loss = 0
    do i = 1, 5
      call net%gradient(x, x, g, loss, stat, msg)
      mean_loss = mean_loss + loss / 5
    end do
    call t%close([mean_loss], [2 - 2 * (0.9d0 / sqrt(0.9d0 * (1 + 0.1d0 * (1.6732632423543772d0 * &
                  1.0507009873554805d0)**2)))], 0.05d0, 0d0, 'alpha dropout: kept values scaled by a')
    ! gradients through the noise of each variant (the same seed, the same noise)
    do j = 1, 3
      call check_gradient(t, model([dense(6, 3, [0], 'tanh', 91), &
                                    layer('dropout', 6, [1], [attr('variant', trim(variants(j))), &
                                          attr(trim(amount_keys(j)), '0.3')], no_params()), &
                                    dense(2, 6, [2], 'linear', 92)], 3, 2), &
                          'mse', 'gradient through ' // trim(variants(j)))
    end do
  end subroutine test_noise_layers

  subroutine noise_net(net, variant, key, amount)
    !! One noise layer of width 400, compiled (seed 9).
    type(network_r64), intent(inout) :: net
    character(len=*), intent(in) :: variant, key, amount
    integer :: stat
    character(len=:), allocatable :: msg
    call net%from_spec(model([layer('dropout', 400, [0], [attr('variant', variant), &
                                    attr(key, amount)], no_params())], 400, 400), stat, msg)
    call net%compile(sgd(), 'mse', stat, msg, seed=9)
  end subroutine noise_net

  subroutine test_batch_normalization_statistics(t)
    !! One step with learning rate 0: the moving statistics move by
    !! momentum toward the batch's mean and biased variance, and predict
    !! uses them.
    type(tester), intent(inout) :: t
    type(network_r64) :: net
    real(real64) :: x(1, 4), y(1, 4), yp(1, 1), mm, mv
    integer :: stat
    character(len=:), allocatable :: msg
    call net%from_spec(model([layer('batch_normalization', 1, [0], [attr('epsilon', '0.5'), &
                        attr('center', '1'), attr('scale', '1'), attr('momentum', '0.75')], &
                        [param('moving_mean', [1, 1], [1d0]), &
                         param('moving_variance', [1, 1], [2d0]), &
                         param('gamma', [1, 1], [3d0]), param('beta', [1, 1], [0.5d0])])], 1, 1), &
                       stat, msg)
    call net%compile(sgd(0d0), 'mse', stat, msg)
    x = reshape([1d0, 2d0, 3d0, 6d0], [1, 4])   ! mean 3, biased variance 3.5
    y = 0
    call net%train_step(x, y, stat, msg)
    call t%status(stat, fkb_ok, msg, 'batch normalization train_step')
    mm = 0.75d0 * 1 + 0.25d0 * 3
    mv = 0.75d0 * 2 + 0.25d0 * 3.5d0
    call net%predict(reshape([2d0], [1, 1]), yp, stat, msg)
    call t%close(yp(:, 1), [(2 - mm) / sqrt(mv + 0.5d0) * 3 + 0.5d0], 1d-14, 0d0, &
                 'moving statistics after one step')
  end subroutine test_batch_normalization_statistics

  subroutine test_refusals(t)
    type(tester), intent(inout) :: t
    type(network_r64) :: net
    real(real64) :: x(3, 2), y(2, 2), loss
    real(real64) :: g(3)
    integer :: stat
    character(len=:), allocatable :: msg
    x = 1
    y = 0
    call net%compile(adam(), 'mse', stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'compile before load', ['not loaded'])
    call net%from_spec(model([dense(2, 3, [0], 'relu', 81)], 3, 2), stat, msg)
    call net%train_step(x, y, stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'train_step before compile', ['compile'])
    call net%compile(adam(), 'cross_entropy', stat, msg)
    call t%status(stat, fkb_err_unsupported, msg, 'unknown loss', ['cross_entropy'])
    call net%compile(adam(), 'custom', stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'custom loss without procedure', ['custom_loss'])
    call net%compile(adam(), 'mse', stat, msg)
    call net%train_step(x(1:2, :), y, stat, msg, loss)
    call t%status(stat, fkb_err_shape, msg, 'train_step with the wrong width', ['(2, 2)'])
    call net%gradient(x, y, g, loss, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'gradient into a vector of the wrong size', ['8'])
    call net%fit(x, y, 1, 0, stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'fit with batch_size 0', ['batch_size'])
    call net%from_spec(model([dense(2, 3, [0], 'relu', 81), &
                              layer('dropout', 2, [1], [attr('variant', 'spatial_dropout1d'), &
                                    attr('rate', '0.5')], no_params())], 3, 2), stat, msg)
    call net%compile(adam(), 'mse', stat, msg)
    call t%status(stat, fkb_err_unsupported, msg, 'spatial dropout (3-D in Keras) refused', &
                  ['layer 2 (dropout)'])
  end subroutine test_refusals

end program test_training
