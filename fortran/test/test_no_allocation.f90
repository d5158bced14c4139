program test_no_allocation
  !! Once its workspace is sized, `predict` allocates nothing: neither the
  !! single-column form nor a batch no wider than an earlier one (malloc
  !! calls are counted by malloc_counter.c). A failing call may allocate its
  !! message, which is the point of the message.
  use iso_c_binding, only: c_long
  use iso_fortran_env, only: real32, real64
  use fkb, only: network, network_r64, model_spec, fkb_ok
  use fkb_test_specs, only: layer, attr, param, no_attrs, no_params
  use fkb_testing, only: tester
  implicit none

  interface
    function allocation_count() bind(c, name='fkb_test_allocation_count') result(n)
      import :: c_long
      integer(c_long) :: n
    end function allocation_count
  end interface

  type(tester) :: t
  type(network) :: net
  type(network_r64) :: net64
  real(real32) :: x(6), y(3), xb(6, 64), yb(3, 64)
  real(real64) :: x64(6), y64(3)
  integer :: stat, i
  integer(c_long) :: before, counted
  character(len=:), allocatable :: msg

  t%suite = 'no allocation'
  call net%from_spec(model(), stat, msg)
  call t%status(stat, fkb_ok, msg, 'build')
  call net64%from_spec(model(), stat, msg)
  x = [(0.3 * i, i = 1, 6)]
  xb = 0.5
  x64 = real(x, real64)

  call net%predict(x, y, stat, msg)       ! sizes the workspace
  call net64%predict(x64, y64, stat, msg)
  before = allocation_count()
  do i = 1, 100
    call net%predict(x, y, stat, msg)
    call net64%predict(x64, y64, stat, msg)
  end do
  counted = allocation_count() - before
  call t%status(stat, fkb_ok, msg, 'single-column predict')
  call t%check(counted == 0, 'single-column predict allocates nothing')
  if (counted /= 0) print '(a, i0, a)', 'single-column predict: ', counted, ' allocations'

  call net%predict(xb, yb, stat, msg)     ! sizes the workspace for 64 columns
  before = allocation_count()
  do i = 1, 20
    call net%predict(xb, yb, stat, msg)
    call net%predict(xb(:, 1:10), yb(:, 1:10), stat, msg)
    call net%predict(x, y, stat, msg)
  end do
  counted = allocation_count() - before
  call t%status(stat, fkb_ok, msg, 'batched predict')
  call t%check(counted == 0, 'batched predict allocates nothing once sized')
  if (counted /= 0) print '(a, i0, a)', 'batched predict: ', counted, ' allocations'
  call t%check(allocation_count() > 0, 'the counter counts')
  call t%finish()

contains

  function model() result(spec)
    !! Every layer type that has its own code path in forward.
    type(model_spec) :: spec
    spec%n_inputs = 6
    spec%n_outputs = 3
    spec%has_input_normalization = .true.
    allocate (spec%input_offset(6), spec%input_scale(6))
    spec%input_offset = 0.1
    spec%input_scale = 2.0
    spec%has_output_normalization = .true.
    allocate (spec%output_offset(3), spec%output_scale(3))
    spec%output_offset = 0.1
    spec%output_scale = 2.0
    spec%layers = [ &
      layer('dense', 8, [0], [attr('activation', 'softmax'), attr('use_bias', '1')], &
            [param('kernel', [8, 6], [(0.01d0 * i, i = 1, 48)]), param('bias', [8, 1], [(0d0, i = 1, 8)])]), &
      layer('layer_normalization', 8, [1], [attr('epsilon', '0.001'), attr('center', '0'), &
            attr('scale', '0')], no_params()), &
      layer('batch_normalization', 8, [2], [attr('epsilon', '0.001'), attr('center', '0'), &
                                            attr('scale', '0')], &
            [param('moving_mean', [8, 1], [(0d0, i = 1, 8)]), &
             param('moving_variance', [8, 1], [(1d0, i = 1, 8)])]), &
      layer('relu', 8, [3], [attr('max_value', '6'), attr('threshold', '0.1'), &
                             attr('negative_slope', '0.05')], no_params()), &
      layer('prelu', 8, [4], no_attrs(), [param('alpha', [8, 1], [(0.1d0, i = 1, 8)])]), &
      layer('dropout', 8, [5], [attr('variant', 'dropout'), attr('rate', '0.1')], no_params()), &
      layer('concatenate', 16, [6, 3], no_attrs(), no_params()), &
      layer('activation', 16, [7], [attr('activation', 'log_softmax')], no_params()), &
      layer('dense', 3, [8], [attr('activation', 'mish'), attr('use_bias', '0')], &
            [param('kernel', [3, 16], [(0.02d0 * i, i = 1, 48)])]), &
      layer('dense', 3, [9], [attr('activation', 'gelu'), attr('use_bias', '1')], &
            [param('kernel', [3, 3], [(0.1d0 * i, i = 1, 9)]), param('bias', [3, 1], [0d0, 0d0, 0d0])]), &
      layer('average', 3, [9, 10], no_attrs(), no_params()), &
      layer('rescaling', 3, [11], no_attrs(), &
            [param('scale', [3, 1], [1d0, 2d0, 3d0]), param('offset', [3, 1], [0d0, 0d0, 0d0])]), &
      layer('normalization', 3, [12], [attr('invert', '1')], &
            [param('mean', [3, 1], [0d0, 0d0, 0d0]), param('variance', [3, 1], [1d0, 1d0, 1d0])])]
  end function model

end program test_no_allocation
