program test_errors
  !! Every refusal comes back as a status and a one-line message naming the
  !! problem: bad shapes and non-finite values in `predict`, and every kind
  !! of inconsistent model in `from_spec` (messages name the layer), and a
  !! training batch too large for memory.
  use iso_fortran_env, only: real32, real64, int64
  use ieee_arithmetic, only: ieee_value, ieee_quiet_nan, ieee_positive_inf
  use fkb, only: network, network_r64, model_spec, fkb_ok, fkb_err_format, fkb_err_shape, &
                 fkb_err_nonfinite, fkb_err_unsupported, fkb_err_argument, fkb_err_memory, sgd
  use fkb_test_specs, only: layer, attr, param, no_attrs, no_params
  use fkb_testing, only: tester
  implicit none

  type(tester) :: t

  t%suite = 'errors'
  call test_predict_errors(t)
  call test_model_errors(t)
  call test_batch_beyond_memory(t)
  call t%finish()

contains

  function mlp() result(spec)
    !! 3 -> dense 4 relu -> dense 2 linear
    type(model_spec) :: spec
    integer :: i
    spec%n_inputs = 3
    spec%n_outputs = 2
    spec%layers = [ &
      layer('dense', 4, [0], [attr('activation', 'relu'), attr('use_bias', '1')], &
            [param('kernel', [4, 3], [(0.1d0 * i, i = 1, 12)]), &
             param('bias', [4, 1], [0d0, 0d0, 0d0, 0d0])]), &
      layer('dense', 2, [1], [attr('activation', 'linear'), attr('use_bias', '1')], &
            [param('kernel', [2, 4], [(0.1d0 * i, i = 1, 8)]), &
             param('bias', [2, 1], [0d0, 0d0])])]
  end function mlp

  subroutine expect_refusal(t, spec, expected, fragments, label)
    !! Building from `spec` must fail with `expected` and a message holding
    !! every fragment, and leave the network not loaded.
    type(tester), intent(inout) :: t
    type(model_spec), intent(in) :: spec
    integer, intent(in) :: expected
    character(len=*), intent(in) :: fragments(:)
    character(len=*), intent(in) :: label
    type(network) :: net
    integer :: stat
    character(len=:), allocatable :: msg
    call net%from_spec(mlp(), stat, msg)
    call net%from_spec(spec, stat, msg)
    call t%status(stat, expected, msg, label, fragments)
    call t%check(.not. net%is_loaded(), label // ': network left not loaded')
  end subroutine expect_refusal

  subroutine test_predict_errors(t)
    type(tester), intent(inout) :: t
    type(network) :: net, empty
    type(network_r64) :: net64
    type(model_spec) :: spec
    real(real32) :: x(3, 2), y(2, 2), x4(4, 2), y3(2, 3), v(3), w(2), v2(2)
    real(real64) :: x64(3, 2), y64(2, 2)
    integer :: stat
    character(len=:), allocatable :: msg

    call net%from_spec(mlp(), stat, msg)
    call t%status(stat, fkb_ok, msg, 'the test model builds')
    x = 1.0
    x4 = 1.0
    call net%predict(x4, y, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'x with 4 rows', &
                  [character(len=32) :: 'x has 4 features', 'takes 3'])
    call net%predict(x, y3, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'y of the wrong shape', &
                  [character(len=32) :: 'y has shape (2, 3)', 'expected (2, 2)'])
    call net%predict(v2, w, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'one column of the wrong size', &
                  [character(len=32) :: 'x has 2 features'])
    call net%predict(v, v2(1:1), stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'one output of the wrong size', &
                  [character(len=32) :: 'y has 1 features'])

    x(3, 2) = ieee_value(x(3, 2), ieee_quiet_nan)
    call net%predict(x, y, stat, msg)
    call t%status(stat, fkb_err_nonfinite, msg, 'NaN input', &
                  [character(len=32) :: 'input column 2 feature 3', 'NaN'])
    x(3, 2) = 1.0
    x(2, 1) = ieee_value(x(2, 1), ieee_positive_inf)
    call net%predict(x(:, 1), w, stat, msg)
    call t%status(stat, fkb_err_nonfinite, msg, 'infinite input, one column', &
                  [character(len=32) :: 'input column 1 feature 2', '+Inf'])
    x64 = 1d0
    x64(1, 2) = ieee_value(x64(1, 2), ieee_quiet_nan)
    call net64%from_spec(mlp(), stat, msg)
    call net64%predict(x64, y64, stat, msg)
    call t%status(stat, fkb_err_nonfinite, msg, 'NaN input (r64)', &
                  [character(len=32) :: 'input column 2 feature 1'])

    ! exp(100) overflows float32: a non-finite output.
    spec%n_inputs = 2
    spec%n_outputs = 2
    spec%layers = [layer('activation', 2, [0], [attr('activation', 'exponential')], no_params())]
    call net%from_spec(spec, stat, msg)
    call net%predict([1.0, 100.0], w, stat, msg)
    call t%status(stat, fkb_err_nonfinite, msg, 'infinite output', &
                  [character(len=32) :: 'output column 1 feature 2', '+Inf'])
    y = 0.0
    call net%predict(reshape([1.0, 2.0, 100.0, 3.0], [2, 2]), y, stat, msg)
    call t%status(stat, fkb_err_nonfinite, msg, 'infinite output, batched', &
                  [character(len=32) :: 'output column 2 feature 1'])

    call empty%predict(x, y, stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'predict before loading', &
                  [character(len=32) :: 'not loaded'])
    call empty%predict(v, w, stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'predict one column before loading')
  end subroutine test_predict_errors

  subroutine test_model_errors(t)
    type(tester), intent(inout) :: t
    type(model_spec) :: s

    s = mlp()
    s%layers(1)%attributes(1)%value = 'relu7'
    call expect_refusal(t, s, fkb_err_unsupported, [character(len=40) :: &
                        'layer 1 (dense)', 'unknown activation relu7'], 'unknown activation')
    s = mlp()
    s%layers(2)%kind = 'conv2d'
    call expect_refusal(t, s, fkb_err_unsupported, [character(len=40) :: &
                        'layer 2 (conv2d)', 'unknown layer type'], 'unknown layer type')
    s = mlp()
    s%layers(1)%inputs = [2]
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'layer 1 (dense)', 'input 2 is not'], 'input from a later layer')
    s = mlp()
    s%layers(2)%inputs = [-1]
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'layer 2 (dense)', 'input -1'], 'negative input id')
    s = mlp()
    s%layers(2)%inputs = [integer ::]
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: 'has no inputs'], &
                        'no inputs')
    s = mlp()
    s%layers(1)%params(1)%shape = [4, 2]
    call expect_refusal(t, s, fkb_err_shape, [character(len=60) :: 'layer 1 (dense)', &
                        'param kernel has shape (4, 2), expected (4, 3)'], 'kernel shape')
    s = mlp()
    s%layers(1)%params(1)%values = s%layers(1)%params(1)%values(1:11)
    call expect_refusal(t, s, fkb_err_shape, [character(len=40) :: 'holds 11 values'], &
                        'too few kernel values')
    s = mlp()
    s%layers(2)%params = s%layers(2)%params(1:1)
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'layer 2 (dense)', 'missing param bias'], 'missing bias')
    s = mlp()
    s%layers(2)%attributes(2)%value = '0'
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'unexpected param bias'], 'bias with use_bias=0')
    s = mlp()
    s%layers(2)%params(1)%values(3) = ieee_value(1.0, ieee_quiet_nan)
    call expect_refusal(t, s, fkb_err_nonfinite, [character(len=40) :: &
                        'layer 2 (dense)', 'param kernel', 'element 3'], 'NaN weight')
    s = mlp()
    s%layers(1)%attributes(2)%key = 'units'
    call expect_refusal(t, s, fkb_err_unsupported, [character(len=40) :: &
                        'unknown attribute units'], 'unknown attribute')
    s = mlp()
    s%layers(1)%attributes(2)%value = '2'
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'use_bias=2 is not 0 or 1'], 'bad flag')
    s = mlp()
    s%layers(1)%attributes = [attr('activation', 'leaky_relu'), attr('alpha', 'abc'), &
                              attr('use_bias', '0')]
    s%layers(1)%params = s%layers(1)%params(1:1)
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'alpha=abc is not a number'], 'bad real')
    s = mlp()
    s%layers(1)%attributes = [attr('use_bias', '1')]
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'missing attribute activation'], 'no activation')
    s = mlp()
    s%layers(2)%n_out = 3
    call expect_refusal(t, s, fkb_err_shape, [character(len=40) :: &
                        'layer 2 (dense)', 'shape (2, 4), expected (3, 4)'], &
                        'declared width against kernel')
    s = mlp()
    s%n_outputs = 3
    call expect_refusal(t, s, fkb_err_shape, [character(len=40) :: &
                        'last layer has width 2', '3 outputs'], 'model outputs')
    s = mlp()
    deallocate (s%layers)
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: 'no layers'], 'no layers')
    s = mlp()
    s%has_input_normalization = .true.
    allocate (s%input_offset(3), s%input_scale(2))
    s%input_offset = 0.0
    s%input_scale = 1.0
    call expect_refusal(t, s, fkb_err_shape, [character(len=40) :: 'input_normalization'], &
                        'input normalization size')
    s = mlp()
    s%has_output_normalization = .true.
    allocate (s%output_offset(2), s%output_scale(2))
    s%output_offset = 0.0
    s%output_scale = [1.0, 0.0]
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'output_normalization scale is zero for feature 2'], &
                        'zero output scale')

    ! Merges and widths.
    s = mlp()
    s%n_outputs = 4
    s%layers = [s%layers(1), s%layers(2), layer('add', 4, [1, 2], no_attrs(), no_params())]
    call expect_refusal(t, s, fkb_err_shape, [character(len=40) :: 'layer 3 (add)', &
                        'input 2 has width 2'], 'add of unequal widths')
    s = mlp()
    s%layers = [s%layers(1), layer('subtract', 4, [1, 1, 0], no_attrs(), no_params())]
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'layer 2 (subtract)', 'exactly 2 inputs'], 'subtract of 3')
    s = mlp()
    s%layers = [s%layers(1), layer('maximum', 4, [1], no_attrs(), no_params())]
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: '2 or more inputs'], &
                        'maximum of 1')
    s = mlp()
    s%n_outputs = 4
    s%layers = [s%layers(1), layer('activation', 5, [1], [attr('activation', 'tanh')], &
                                   no_params())]
    call expect_refusal(t, s, fkb_err_shape, [character(len=40) :: &
                        'layer 2 (activation)', 'declares width 5'], 'activation width')
    s = mlp()
    s%layers(2) = layer('softmax', 2, [1, 0], no_attrs(), no_params())
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'layer 2 (softmax)', 'exactly 1 input'], 'softmax of 2 inputs')
    s = mlp()
    s%n_outputs = 4
    s%layers(2) = layer('dropout', 4, [1], [attr('variant', 'spatial_dropout3d')], no_params())
    call expect_refusal(t, s, fkb_err_unsupported, [character(len=40) :: &
                        'unknown variant spatial_dropout3d'], 'dropout variant')
    s = mlp()
    s%n_outputs = 4
    s%layers(2) = layer('batch_normalization', 4, [1], [attr('epsilon', '0.001'), &
                                                        attr('center', '1'), attr('scale', '1')], &
                        [param('moving_mean', [4, 1], [0d0, 0d0, 0d0, 0d0]), &
                         param('moving_variance', [4, 1], [1d0, 1d0, 1d0, 1d0]), &
                         param('gamma', [4, 1], [1d0, 1d0, 1d0, 1d0])])
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'layer 2 (batch_normalization)', 'missing param beta'], &
                        'batch normalization without beta')
    s = mlp()
    s%n_outputs = 4
    s%layers(2) = layer('normalization', 4, [1], [attr('invert', '0')], &
                        [param('mean', [4, 1], [0d0, 0d0, 0d0, 0d0]), &
                         param('variance', [4, 1], [1d0, -1d0, 1d0, 1d0])])
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'variance is negative for feature 2'], 'negative variance')

    ! Required attributes, and alpha exactly when the activation takes one.
    s = mlp()
    s%layers(1)%attributes = s%layers(1)%attributes(1:1)
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'layer 1 (dense)', 'missing attribute use_bias'], 'dense without use_bias')
    s = mlp()
    s%layers(1)%attributes = [s%layers(1)%attributes, attr('alpha', '0.1')]
    call expect_refusal(t, s, fkb_err_format, [character(len=50) :: &
                        'attribute alpha is not used by activation relu'], 'alpha with relu')
    s = mlp()
    s%layers(1)%attributes(1)%value = 'leaky_relu'
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'missing attribute alpha'], 'leaky_relu without alpha')
    s = mlp()
    s%n_outputs = 4
    s%layers(2) = layer('relu', 4, [1], [attr('negative_slope', '0')], no_params())
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'layer 2 (relu)', 'missing attribute threshold'], 'relu without threshold')
    s%layers(2) = layer('relu', 4, [1], [attr('negative_slope', '-0.1'), attr('threshold', '0')], &
                        no_params())
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'attribute negative_slope is negative'], 'negative relu slope')
    s%layers(2) = layer('relu', 4, [1], [attr('negative_slope', '0'), attr('threshold', '0'), &
                                         attr('max_value', 'None')], no_params())
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'max_value=None is not a number'], 'relu max_value None')
    s%layers(2) = layer('dropout', 4, [1], [attr('variant', 'gaussian_noise'), &
                                            attr('rate', '0.1')], no_params())
    call expect_refusal(t, s, fkb_err_unsupported, [character(len=40) :: &
                        'unknown attribute rate'], 'gaussian noise with a rate')
    s%layers(2) = layer('dropout', 4, [1], [attr('variant', 'dropout')], no_params())
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'missing attribute rate'], 'dropout without its rate')
    s%layers(2) = layer('layer_normalization', 4, [1], [attr('epsilon', '0.001'), &
                                                        attr('center', '0')], no_params())
    call expect_refusal(t, s, fkb_err_format, [character(len=40) :: &
                        'missing attribute scale'], 'layer normalization without scale')
  end subroutine test_model_errors

  subroutine test_batch_beyond_memory(t)
    !! A minibatch of 2**18 columns for a network a million wide needs a
    !! workspace of 2**40 bytes: `train_step` says so and the network goes
    !! on training on batches that fit. (Skipped where the system hands out
    !! any amount of address space, as Linux's overcommit_memory=1 does.)
    type(tester), intent(inout) :: t
    integer, parameter :: wide = 1000000, n_huge = 2**18
    type(network) :: net
    type(model_spec) :: spec
    real(real32), allocatable :: x(:, :), y(:, :)
    integer(int64), allocatable :: probe(:)
    real(real64), allocatable :: k1(:), k2(:), b1(:)
    integer :: stat, i
    character(len=:), allocatable :: msg
    allocate (probe(2_int64**37), stat=stat)
    if (stat == 0) then
      write (*, '(a)') 'errors: skipped the batch beyond memory (2**40 bytes can be allocated here)'
      return
    end if
    allocate (k1(wide), k2(wide), b1(wide))
    do i = 1, wide  ! (heap arrays: a million-value constructor overflows the stack)
      k1(i) = 1d-6 * modulo(i, 13)
      k2(i) = 1d-6 * modulo(i, 7)
    end do
    b1 = 0
    spec%n_inputs = 1
    spec%n_outputs = 1
    spec%layers = [ &
      layer('dense', wide, [0], [attr('activation', 'relu'), attr('use_bias', '1')], &
            [param('kernel', [wide, 1], k1), param('bias', [wide, 1], b1)]), &
      layer('dense', 1, [1], [attr('activation', 'linear'), attr('use_bias', '1')], &
            [param('kernel', [1, wide], k2), param('bias', [1, 1], [0d0])])]
    call net%from_spec(spec, stat, msg)
    call t%status(stat, fkb_ok, msg, 'the wide network builds')
    call net%compile(sgd(), 'mse', stat, msg)
    call t%status(stat, fkb_ok, msg, 'the wide network compiles')
    allocate (x(1, n_huge), y(1, n_huge))
    x = 0.5
    y = 1.0
    call net%train_step(x, y, stat, msg)
    call t%status(stat, fkb_err_memory, msg, 'a batch beyond memory', &
                  [character(len=40) :: 'train: out of memory', 'workspace (1000002 x 262144)', &
                   '1048578097152 bytes'])
    call net%train_step(x(:, 1:2), y(:, 1:2), stat, msg)
    call t%status(stat, fkb_ok, msg, 'a batch that fits, after one beyond memory')
    call t%check(net%n_iterations() == 1, 'only the batch that fits took a step')
  end subroutine test_batch_beyond_memory

end program test_errors
