program test_network
  !! The network as a whole: a hand-computed residual MLP with input and
  !! output normalization (32 and 64 bit), accessors, batched against
  !! column-by-column prediction over several workspace blocks, strided
  !! inputs, rebuilding, clearing and copying.
  use iso_fortran_env, only: real32, real64
  use fkb, only: network, network_r32, network_r64, model_spec, io_spec, fkb_ok, &
                 fkb_err_argument
  use fkb_test_specs, only: layer, attr, param, no_attrs, no_params
  use fkb_testing, only: tester
  implicit none

  type(tester) :: t

  t%suite = 'network'
  call test_residual_mlp(t)
  call test_accessors(t)
  call test_blocks_and_columns(t)
  call test_strided_and_empty(t)
  call test_lifecycle(t)
  call t%finish()

contains

  function residual_mlp(output_normalization) result(spec)
    !! The tiny residual MLP of docs/model-file.md: normalize, dense(4, relu),
    !! dense(4, linear), add the two, dense(2, linear), optionally
    !! de-normalize.
    logical, intent(in) :: output_normalization
    type(model_spec) :: spec
    spec%name = 'tiny_residual_mlp'
    spec%sha256 = repeat('ab', 32)
    spec%n_inputs = 3
    spec%n_outputs = 2
    allocate (spec%inputs(3), spec%outputs(2))
    spec%inputs(1) = io_spec('T_850', 'K')
    spec%inputs(2) = io_spec('q_850', 'kg kg-1')
    spec%inputs(3) = io_spec('ps', 'Pa')
    spec%outputs(1) = io_spec('dTdt', 'K s-1')
    spec%outputs(2) = io_spec('precip', 'kg m-2 s-1')
    spec%has_input_normalization = .true.
    allocate (spec%input_offset, source=[270.0, 0.005, 100000.0])
    allocate (spec%input_scale, source=[20.0, 0.004, 2000.0])
    if (output_normalization) then
      spec%has_output_normalization = .true.
      allocate (spec%output_offset, source=[1.5, -2.0])
      allocate (spec%output_scale, source=[10.0, 0.5])
    end if
    spec%layers = [ &
      layer('dense', 4, [0], [attr('activation', 'relu'), attr('use_bias', '1')], &
            [param('kernel', [4, 3], [0.5d0, -0.2d0, 0.1d0, 0.3d0, 0.4d0, 0.2d0, -0.3d0, &
                                      0.1d0, 0.1d0, -0.1d0, 0.2d0, 0.4d0]), &
             param('bias', [4, 1], [0.1d0, 0.0d0, -0.1d0, 0.2d0])]), &
      layer('dense', 4, [1], [attr('activation', 'linear'), attr('use_bias', '1')], &
            [param('kernel', [4, 4], [0.2d0, 0.0d0, 0.0d0, 0.1d0, 0.0d0, 0.3d0, 0.1d0, &
                                      0.0d0, 0.0d0, 0.1d0, 0.2d0, 0.0d0, 0.1d0, 0.0d0, &
                                      0.0d0, 0.3d0]), &
             param('bias', [4, 1], [0.0d0, 0.1d0, 0.0d0, -0.1d0])]), &
      layer('add', 4, [1, 2], no_attrs(), no_params()), &
      layer('dense', 2, [3], [attr('activation', 'linear'), attr('use_bias', '1')], &
            [param('kernel', [2, 4], [1.0d0, -0.5d0, 0.5d0, 0.25d0, -0.25d0, 1.0d0, 0.1d0, &
                                      0.2d0]), &
             param('bias', [2, 1], [0.01d0, -0.02d0])])]
  end function residual_mlp

  subroutine test_residual_mlp(t)
    !! For x = (280 K, 0.008, 101325 Pa) the normalized input is
    !! (0.5, 0.75, 0.6625), the first layer gives relu(K1 xn + b1) =
    !! (0.71625, 0, 0, 0.69), the second K2 h1 + b2 = (0.21225, 0.1, 0, 0.178625),
    !! their sum h3 = (0.9285, 0.1, 0, 0.868625) and the head K4 h3 + b4 =
    !! (1.0753625, -0.285525); de-normalized (12.253625, -2.1427625). Written
    !! to float64 precision from the float32-rounded weights and inputs;
    !! likewise the second column.
    type(tester), intent(inout) :: t
    real(real64), parameter :: x(3, 2) = reshape([280d0, 0.008d0, 101325d0, &
                                                  250d0, 0.001d0, 98000d0], [3, 2])
    real(real64), parameter :: expected(2, 2) = reshape( &
      [1.0753625616541587d0, -0.2855250161234748d0, &
       0.11250001262756973d0, 0.02750000872532822d0], [2, 2])
    real(real64), parameter :: expected_denorm(2, 2) = reshape( &
      [12.253625616541587d0, -2.1427625080617374d0, &
       2.6250001262756975d0, -1.9862499956373358d0], [2, 2])
    type(network_r32) :: n32
    type(network_r64) :: n64
    real(real32) :: y32(2, 2), v32(2)
    real(real64) :: y64(2, 2), v64(2)
    real(real32), allocatable :: x32(:, :)
    integer :: stat
    character(len=:), allocatable :: msg

    x32 = real(x, real32)
    call n32%from_spec(residual_mlp(.false.), stat, msg)
    call t%status(stat, fkb_ok, msg, 'residual mlp builds (r32)')
    call n32%predict(x32, y32, stat, msg)
    call t%status(stat, fkb_ok, msg, 'residual mlp predicts (r32)')
    call t%close(y32, expected, 1d-6, 1d-6, 'residual mlp, hand-computed (r32)')
    call n32%predict(x32(:, 2), v32, stat, msg)
    call t%close(v32, expected(:, 2), 1d-6, 1d-6, 'residual mlp, one column (r32)')

    call n64%from_spec(residual_mlp(.false.), stat, msg)
    call t%status(stat, fkb_ok, msg, 'residual mlp builds (r64)')
    ! The inputs as float32 values, which the hand computation used.
    call n64%predict(real(x32, real64), y64, stat, msg)
    call t%status(stat, fkb_ok, msg, 'residual mlp predicts (r64)')
    call t%close(y64, expected, 1d-14, 1d-15, 'residual mlp, hand-computed (r64)')

    call n64%from_spec(residual_mlp(.true.), stat, msg)
    call n64%predict(real(x32, real64), y64, stat, msg)
    call t%close(y64, expected_denorm, 1d-14, 1d-15, 'output normalization (r64)')
    call n64%predict(real(x32(:, 1), real64), v64, stat, msg)
    call t%close(v64, expected_denorm(:, 1), 1d-14, 1d-15, 'output normalization, one column')
    call n32%from_spec(residual_mlp(.true.), stat, msg)
    call n32%predict(x32, y32, stat, msg)
    call t%close(y32, expected_denorm, 1d-6, 1d-6, 'output normalization (r32)')
  end subroutine test_residual_mlp

  subroutine test_accessors(t)
    type(tester), intent(inout) :: t
    type(network) :: net
    type(model_spec) :: spec
    integer :: stat
    character(len=:), allocatable :: msg
    call t%check(.not. net%is_loaded(), 'a new network is not loaded')
    call t%check(net%n_inputs() == 0 .and. net%n_layers() == 0, 'a new network is empty')
    call net%from_spec(residual_mlp(.true.), stat, msg)
    call t%status(stat, fkb_ok, msg, 'accessors: build')
    call t%check(allocated(msg), 'from_spec sets msg on success')
    if (allocated(msg)) call t%check(msg == '', 'from_spec leaves msg empty on success')
    call t%check(net%is_loaded(), 'is_loaded')
    call t%check(net%n_inputs() == 3, 'n_inputs')
    call t%check(net%n_outputs() == 2, 'n_outputs')
    call t%check(net%n_layers() == 4, 'n_layers')
    call t%check(net%n_params() == 12 + 4 + 16 + 4 + 8 + 2, 'n_params')
    call t%check(net%layer_kind(3) == 'add', 'layer_kind')
    call t%check(net%layer_kind(5) == '', 'layer_kind out of range')
    call t%check(net%model_name() == 'tiny_residual_mlp', 'model_name')
    call t%check(net%model_sha256() == repeat('ab', 32), 'model_sha256')
    call t%check(net%input_name(2) == 'q_850', 'input_name')
    call t%check(net%input_units(2) == 'kg kg-1', 'input_units')
    call t%check(net%output_name(2) == 'precip', 'output_name')
    call t%check(net%output_units(2) == 'kg m-2 s-1', 'output_units')
    call t%check(net%input_name(4) == '', 'input_name out of range')
    ! Without names in the model: x1.., y1.., units 1.
    spec = residual_mlp(.false.)
    deallocate (spec%inputs, spec%outputs)
    call net%from_spec(spec, stat, msg)
    call t%check(net%input_name(3) == 'x3' .and. net%input_units(3) == '1', 'default input names')
    call t%check(net%output_name(1) == 'y1' .and. net%output_units(1) == '1', &
                 'default output names')
  end subroutine test_accessors

  function wide_mlp() result(spec)
    !! 20 -> dense 64 relu -> layer norm -> dense 64 tanh -> dense 10, with
    !! deterministic weights.
    type(model_spec) :: spec
    spec%n_inputs = 20
    spec%n_outputs = 10
    spec%layers = [ &
      layer('dense', 64, [0], [attr('activation', 'relu'), attr('use_bias', '1')], &
            [param('kernel', [64, 20], wave(64 * 20, 0.3d0)), param('bias', [64, 1], wave(64, 0.1d0))]), &
      layer('layer_normalization', 64, [1], [attr('epsilon', '0.001'), attr('center', '1'), &
                                             attr('scale', '1')], &
            [param('gamma', [64, 1], 1d0 + wave(64, 0.2d0)), param('beta', [64, 1], wave(64, 0.1d0))]), &
      layer('dense', 64, [2], [attr('activation', 'tanh'), attr('use_bias', '1')], &
            [param('kernel', [64, 64], wave(64 * 64, 0.2d0)), param('bias', [64, 1], wave(64, 0.1d0))]), &
      layer('dense', 10, [3], [attr('activation', 'linear'), attr('use_bias', '0')], &
            [param('kernel', [10, 64], wave(640, 0.3d0))])]
  end function wide_mlp

  pure function wave(n, amplitude) result(v)
    integer, intent(in) :: n
    real(real64), intent(in) :: amplitude
    real(real64) :: v(n)
    integer :: i
    v = [(amplitude * sin(1.7d0 * i + 0.3d0), i = 1, n)]
  end function wave

  subroutine test_blocks_and_columns(t)
    !! 5000 columns span three workspace blocks; each column must come out
    !! as when predicted alone (GEMM against GEMV).
    type(tester), intent(inout) :: t
    integer, parameter :: n = 5000
    type(network_r32) :: n32
    type(network_r64) :: n64
    real(real32), allocatable :: x32(:, :), y32(:, :), c32(:, :)
    real(real64), allocatable :: x64(:, :), y64(:, :), c64(:, :)
    integer :: stat, j
    character(len=:), allocatable :: msg
    x64 = reshape(wave(20 * n, 2d0), [20, n])
    x32 = real(x64, real32)
    allocate (y32(10, n), c32(10, n), y64(10, n), c64(10, n))
    call n32%from_spec(wide_mlp(), stat, msg)
    call t%status(stat, fkb_ok, msg, 'wide mlp builds (r32)')
    call n64%from_spec(wide_mlp(), stat, msg)
    call t%status(stat, fkb_ok, msg, 'wide mlp builds (r64)')
    call n32%predict(x32, y32, stat, msg)
    call t%status(stat, fkb_ok, msg, 'big batch (r32)')
    call n64%predict(x64, y64, stat, msg)
    call t%status(stat, fkb_ok, msg, 'big batch (r64)')
    do j = 1, n
      call n32%predict(x32(:, j), c32(:, j), stat, msg)
      call n64%predict(x64(:, j), c64(:, j), stat, msg)
    end do
    call t%close(y32, real(c32, real64), 1d-5, 1d-5, 'batched = column by column (r32)')
    call t%close(y64, c64, 1d-12, 1d-12, 'batched = column by column (r64)')
    call t%close(y32, y64, 1d-4, 1d-4, 'real32 close to real64')
    ! A smaller batch after a big one reuses the workspace.
    call n64%predict(x64(:, 101:103), y64(:, 1:3), stat, msg)
    call t%close(y64(:, 1:3), c64(:, 101:103), 1d-12, 1d-12, 'small batch after a big one')
  end subroutine test_blocks_and_columns

  subroutine test_strided_and_empty(t)
    type(tester), intent(inout) :: t
    type(network_r64) :: net
    real(real64) :: x(3, 6), y(2, 3), y_ref(2, 3), y0(2, 0)
    integer :: stat, j
    character(len=:), allocatable :: msg
    call net%from_spec(residual_mlp(.true.), stat, msg)
    do j = 1, 6
      x(:, j) = [260d0 + 5 * j, 0.002d0 * j, 99000d0 + 500 * j]
    end do
    call net%predict(x(:, 1:5:2), y, stat, msg)
    call t%status(stat, fkb_ok, msg, 'strided columns')
    call net%predict(x(:, [1, 3, 5]), y_ref, stat, msg)
    call t%close(y, y_ref, 0d0, 0d0, 'strided columns = copied columns')
    call net%predict(x(:, 1:0), y0, stat, msg)
    call t%status(stat, fkb_ok, msg, 'an empty batch is fine')
  end subroutine test_strided_and_empty

  subroutine test_lifecycle(t)
    type(tester), intent(inout) :: t
    type(network) :: a, b
    real(real32) :: x(3), y(2), ya(2), yb(2)
    integer :: stat
    character(len=:), allocatable :: msg
    x = [275.0, 0.004, 100500.0]
    call a%from_spec(residual_mlp(.false.), stat, msg)
    call a%predict(x, ya, stat, msg)
    b = a
    call a%from_spec(residual_mlp(.true.), stat, msg)
    call b%predict(x, yb, stat, msg)
    call t%close(yb, real(ya, real64), 0d0, 0d0, 'a copy is independent of its original')
    call a%predict(x, y, stat, msg)
    call t%check(any(y /= ya), 'rebuilding replaces the model')
    call a%clear()
    call t%check(.not. a%is_loaded() .and. a%n_params() == 0, 'clear empties the network')
    call a%predict(x, y, stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'predict after clear', ['not loaded'])
  end subroutine test_lifecycle

end program test_network
