program test_allocation_failures
  !! Every allocation the library makes is checked: when memory runs out,
  !! the call returns `fkb_err_memory` and a one-line message naming what
  !! could not be allocated and its size, and leaves the object usable (the
  !! same call succeeds once memory is back). Allocations of 1 MiB and more
  !! are made to fail through the malloc of malloc_counter.c.
  use iso_c_binding, only: c_size_t
  use iso_fortran_env, only: real32
  use fkb, only: network, ensemble, model_spec, write_model_file, sgd, fkb_ok, fkb_err_memory, &
                 fkb_err_argument
  use fkb_test_specs, only: layer, attr, param
  use fkb_testing, only: tester
  implicit none

  interface
    subroutine fail_allocations_from(bytes) bind(c, name='fkb_test_fail_allocations_from')
      import :: c_size_t
      integer(c_size_t), value :: bytes
    end subroutine fail_allocations_from
  end interface

  integer(c_size_t), parameter :: limit = 2_c_size_t**20, no_limit = 0
  character(len=*), parameter :: wide_file = 'test_allocation_failures_wide.fkb', &
                                 member_files(2) = ['test_allocation_failures_m1.fkb', &
                                                    'test_allocation_failures_m2.fkb']
  type(tester) :: t

  t%suite = 'allocation failures'
  call test_compile(t)
  call test_training_workspace(t)
  call test_model_file(t)
  call test_ensemble(t)
  call t%finish()

contains

  function mlp(n_in, n_hidden) result(spec)
    !! n_in -> dense n_hidden relu -> dense 2 linear, small weights.
    integer, intent(in) :: n_in, n_hidden
    type(model_spec) :: spec
    integer :: i
    spec%n_inputs = n_in
    spec%n_outputs = 2
    spec%layers = [ &
      layer('dense', n_hidden, [0], [attr('activation', 'relu'), attr('use_bias', '1')], &
            [param('kernel', [n_hidden, n_in], [(1d-3 * modulo(i, 7), i = 1, n_hidden * n_in)]), &
             param('bias', [n_hidden, 1], [(0d0, i = 1, n_hidden)])]), &
      layer('dense', 2, [1], [attr('activation', 'linear'), attr('use_bias', '1')], &
            [param('kernel', [2, n_hidden], [(1d-2 * modulo(i, 5), i = 1, 2 * n_hidden)]), &
             param('bias', [2, 1], [0d0, 0d0])])]
  end function mlp

  function deep(n) result(spec)
    !! n -> dense n relu -> dense n relu -> dense 2 linear: 1.3 MB of weights
    !! for n = 400, each tensor under 1 MiB.
    integer, intent(in) :: n
    type(model_spec) :: spec
    integer :: i
    spec = mlp(n, n)
    spec%layers = [spec%layers(1), &
      layer('dense', n, [1], [attr('activation', 'relu'), attr('use_bias', '1')], &
            [param('kernel', [n, n], [(1d-3 * modulo(i, 11), i = 1, n * n)]), &
             param('bias', [n, 1], [(0d0, i = 1, n)])]), &
      layer('dense', 2, [2], [attr('activation', 'linear'), attr('use_bias', '1')], &
            [param('kernel', [2, n], [(1d-2 * modulo(i, 5), i = 1, 2 * n)]), &
             param('bias', [2, 1], [0d0, 0d0])])]
  end function deep

  subroutine test_compile(t)
    !! The optimizer's weight, gradient and slot arrays (1.3 MB each).
    type(tester), intent(inout) :: t
    type(network) :: net
    integer :: stat
    character(len=:), allocatable :: msg
    real(real32) :: x(400, 3), y(2, 3)
    call net%from_spec(deep(400), stat, msg)
    call t%status(stat, fkb_ok, msg, 'the wide network builds')
    call fail_allocations_from(limit)
    call net%compile(sgd(), 'mse', stat, msg)
    call fail_allocations_from(no_limit)
    call t%status(stat, fkb_err_memory, msg, 'compile without memory', &
                  [character(len=40) :: 'compile: out of memory', 'optimizer slots (5 x 321602)', &
                   '1608010 values, 6432040 bytes'])
    call t%check(index(msg, new_line('a')) == 0, 'compile without memory: one line')
    x = 0.5
    y = 1.0
    call net%train_step(x, y, stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'after a failed compile the network is not compiled', &
                  [character(len=20) :: 'call compile first'])
    call net%compile(sgd(), 'mse', stat, msg)
    call t%status(stat, fkb_ok, msg, 'compile once memory is back')
    call net%train_step(x, y, stat, msg)
    call t%status(stat, fkb_ok, msg, 'and it trains')
  end subroutine test_compile

  subroutine test_training_workspace(t)
    !! The workspaces of a minibatch of 40000 columns (1.4 MB each).
    type(tester), intent(inout) :: t
    type(network) :: net
    integer :: stat
    character(len=:), allocatable :: msg
    real(real32), allocatable :: x(:, :), y(:, :), p(:, :)
    real(real32) :: loss
    allocate (x(3, 40000), y(2, 40000), p(2, 40000))
    x = 0.25
    y = 1.0
    call net%from_spec(mlp(3, 4), stat, msg)
    call net%compile(sgd(), 'mse', stat, msg)
    call t%status(stat, fkb_ok, msg, 'the small network compiles')
    call fail_allocations_from(limit)
    call net%train_step(x, y, stat, msg, loss)
    call fail_allocations_from(no_limit)
    call t%status(stat, fkb_err_memory, msg, 'a minibatch too large for memory', &
                  [character(len=40) :: 'train: out of memory', 'workspace (9 x 40000)', &
                   '360000 values, 1440000 bytes'])
    call t%check(net%n_iterations() == 0, 'the failed step took no step')
    call net%train_step(x, y, stat, msg, loss)
    call t%status(stat, fkb_ok, msg, 'the same minibatch once memory is back')
    call t%check(net%n_iterations() == 1, 'and that step counts')
    call net%predict(x, p, stat, msg)
    call t%status(stat, fkb_ok, msg, 'and the network still predicts')
  end subroutine test_training_workspace

  subroutine test_model_file(t)
    !! Writing and reading a 1.3 MB model file.
    type(tester), intent(inout) :: t
    type(network) :: net, other
    integer :: stat, unit
    character(len=:), allocatable :: msg
    logical :: exists
    call net%from_spec(deep(400), stat, msg)
    call fail_allocations_from(limit)
    call net%save(wide_file, stat, msg)
    call fail_allocations_from(no_limit)
    call t%status(stat, fkb_err_memory, msg, 'save without memory', &
                  [character(len=40) :: wide_file // ': out of memory', 'the file''s contents'])
    inquire (file=wide_file, exist=exists)
    call t%check(.not. exists, 'save without memory writes no file')
    call net%save(wide_file, stat, msg)
    call t%status(stat, fkb_ok, msg, 'save once memory is back')
    call fail_allocations_from(limit)
    call other%load(wide_file, stat, msg)
    call fail_allocations_from(no_limit)
    call t%status(stat, fkb_err_memory, msg, 'load without memory', &
                  [character(len=40) :: wide_file // ': out of memory', 'its contents'])
    call t%check(.not. other%is_loaded(), 'load without memory leaves the network not loaded')
    call other%load(wide_file, stat, msg)
    call t%status(stat, fkb_ok, msg, 'load once memory is back')
    open (newunit=unit, file=wide_file)
    close (unit, status='delete')
  end subroutine test_model_file

  subroutine test_ensemble(t)
    !! The members' outputs of 100000 columns (2 x 2 x 100000 values).
    type(tester), intent(inout) :: t
    type(ensemble) :: ens
    integer :: stat, k, unit
    character(len=:), allocatable :: msg
    real(real32), allocatable :: x(:, :), mean(:, :), std(:, :)
    do k = 1, 2
      call write_model_file(member_files(k), mlp(3, 4 + k), stat, msg)
      call t%status(stat, fkb_ok, msg, 'an ensemble member is written')
    end do
    call ens%load(member_files, stat, msg)
    call t%status(stat, fkb_ok, msg, 'the ensemble loads')
    allocate (x(3, 100000), mean(2, 100000), std(2, 100000))
    x = 0.5
    call fail_allocations_from(limit)
    call ens%predict(x, mean, std, stat, msg)
    call fail_allocations_from(no_limit)
    call t%status(stat, fkb_err_memory, msg, 'an ensemble prediction without memory', &
                  [character(len=40) :: 'predict: out of memory', 'outputs (2 x 100000 x 2)', &
                   '400000 values, 1600000 bytes'])
    call ens%predict(x, mean, std, stat, msg)
    call t%status(stat, fkb_ok, msg, 'the same prediction once memory is back')
    do k = 1, 2
      open (newunit=unit, file=member_files(k))
      close (unit, status='delete')
    end do
  end subroutine test_ensemble

end program test_allocation_failures
