program test_ensemble
  !! Ensembles: the noise generator against Threefry's published answers,
  !! members equal to the single networks bit for bit, mean and standard
  !! deviation against a hand computation (32 and 64 bit), folder loading in
  !! name order, results independent of the number of OpenMP threads, the
  !! seeded input perturbation reproduced by hand, the kind-agnostic handle
  !! `ensemble_any` against the ensemble of each kind, and the errors.
  use iso_fortran_env, only: real32, real64, int64
  !$ use omp_lib, only: omp_set_num_threads
  use fkb, only: network, network_r64, ensemble, ensemble_r64, ensemble_any, ensemble_noise, model_spec, &
                 io_spec, write_model_file, fkb_ok, fkb_err_shape, fkb_err_io, &
                 fkb_err_argument, fkb_err_nonfinite
  use fkb_noise, only: threefry4x32
  use fkb_test_specs, only: layer, attr, param
  use fkb_testing, only: tester
  implicit none

  character(len=*), parameter :: models = 'test_ensemble_models', &
                                 odd = 'test_ensemble_mismatch', &
                                 empty = 'test_ensemble_empty'
  integer, parameter :: n_in = 3, n_col = 600
    !! more columns than a noise block (512)
  type(tester) :: t

  t%suite = 'ensemble'
  call write_models()
  call test_threefry(t)
  call test_noise_statistics(t)
  call test_mean_and_std(t)
  call test_r64(t)
  call test_folder(t)
  call test_threads(t)
  call test_noise(t)
  call test_any_kind(t)
  call test_errors(t)
  call t%finish()

contains

  function member_spec(k, n_inputs, output_units, activation) result(spec)
    !! Member `k`: normalize, dense(5, tanh unless `activation`),
    !! dense(2, linear), de-normalize; weights differ between members.
    integer, intent(in) :: k, n_inputs
    character(len=*), intent(in) :: output_units
    character(len=*), intent(in), optional :: activation
    type(model_spec) :: spec
    character(len=:), allocatable :: hidden
    integer :: i
    hidden = 'tanh'
    if (present(activation)) hidden = activation
    spec%name = 'member'
    spec%n_inputs = n_inputs
    spec%n_outputs = 2
    allocate (spec%inputs(n_inputs), spec%outputs(2))
    do i = 1, n_inputs
      spec%inputs(i) = io_spec('x' // achar(iachar('a') + i - 1), 'K')
    end do
    spec%outputs(1) = io_spec('heating', output_units)
    spec%outputs(2) = io_spec('moistening', 'kg kg-1 s-1')
    spec%has_input_normalization = .true.
    spec%input_offset = [(0.5 * i, i = 1, n_inputs)]
    spec%input_scale = [(2.0 / i, i = 1, n_inputs)]
    spec%has_output_normalization = .true.
    spec%output_offset = [1.0, -1.0]
    spec%output_scale = [3.0, 0.25]
    spec%layers = [ &
      layer('dense', 5, [0], [attr('activation', hidden), attr('use_bias', '1')], &
            [param('kernel', [5, n_inputs], [(0.8d0 * sin(1.3d0 * k + 0.7d0 * i), &
                                              i = 1, 5 * n_inputs)]), &
             param('bias', [5, 1], [(0.1d0 * cos(real(k + i, real64)), i = 1, 5)])]), &
      layer('dense', 2, [1], [attr('activation', 'linear'), attr('use_bias', '1')], &
            [param('kernel', [2, 5], [(0.6d0 * cos(2.1d0 * k + 0.9d0 * i), i = 1, 10)]), &
             param('bias', [2, 1], [0.05d0 * k, -0.02d0 * k])])]
  end function member_spec

  subroutine write_models()
    !! Three members written out of name order, a file that is not a model,
    !! two members that do not match, and a folder without models.
    integer :: stat, k, unit
    character(len=:), allocatable :: msg
    call execute_command_line('mkdir -p ' // models // ' ' // odd // ' ' // empty)
    do k = 3, 1, -1
      call write_model_file(models // '/m' // achar(iachar('0') + k) // '.fkb', &
                            member_spec(k, n_in, 'K s-1'), stat, msg)
      call t%status(stat, fkb_ok, msg, 'write member')
    end do
    open (newunit=unit, file=models // '/notes.txt', status='replace', action='write')
    write (unit, '(a)') 'not a model'
    close (unit)
    open (newunit=unit, file=empty // '/notes.txt', status='replace', action='write')
    write (unit, '(a)') 'not a model'
    close (unit)
    call write_model_file(odd // '/units.fkb', member_spec(4, n_in, 'K day-1'), stat, msg)
    call t%status(stat, fkb_ok, msg, 'write member with other units')
    call write_model_file(odd // '/wide.fkb', member_spec(5, n_in + 1, 'K s-1'), stat, msg)
    call t%status(stat, fkb_ok, msg, 'write member with more inputs')
    call write_model_file(odd // '/linear.fkb', member_spec(6, n_in, 'K s-1', 'linear'), stat, msg)
    call t%status(stat, fkb_ok, msg, 'write member without a bounded activation')
  end subroutine write_models

  function member_paths() result(paths)
    character(len=len(models) + 7) :: paths(3)
    paths = [models // '/m1.fkb', models // '/m2.fkb', models // '/m3.fkb']
  end function member_paths

  function inputs() result(x)
    real(real32) :: x(n_in, n_col)
    integer :: i, j
    do j = 1, n_col
      do i = 1, n_in
        x(i, j) = real(0.5 * i + 1.5 * sin(0.37 * j + i), real32)
      end do
    end do
  end function inputs

  subroutine test_threefry(t)
    !! Known answers of Threefry-4x32-20 (Random123's kat_vectors).
    type(tester), intent(inout) :: t
    integer(int64) :: got(4)
    integer(int64), parameter :: ones = 4294967295_int64
    got = threefry4x32([0_int64, 0_int64, 0_int64, 0_int64], [0_int64, 0_int64, 0_int64, 0_int64])
    call t%check(all(got == [int(z'9c6ca96a', int64), int(z'e17eae66', int64), &
                             int(z'fc10ecd4', int64), int(z'5256a7d8', int64)]), &
                 'threefry4x32 of zeros')
    got = threefry4x32([ones, ones, ones, ones], [ones, ones, ones, ones])
    call t%check(all(got == [int(z'2a881696', int64), int(z'57012287', int64), &
                             int(z'f6c7446e', int64), int(z'a16a6732', int64)]), &
                 'threefry4x32 of ones')
    got = threefry4x32([int(z'243f6a88', int64), int(z'85a308d3', int64), &
                        int(z'13198a2e', int64), int(z'03707344', int64)], &
                       [int(z'a4093822', int64), int(z'299f31d0', int64), &
                        int(z'082efa98', int64), int(z'ec4e6c89', int64)])
    call t%check(all(got == [int(z'59cd1dbb', int64), int(z'b8879579', int64), &
                             int(z'86b5d00c', int64), int(z'ac8b6d84', int64)]), &
                 'threefry4x32 of digits of pi')
  end subroutine test_threefry

  subroutine test_noise_statistics(t)
    !! The noise is standard normal: mean, variance and the fraction
    !! beyond two standard deviations over 40000 values.
    type(tester), intent(inout) :: t
    real(real64) :: z, s1, s2, beyond
    integer :: j, i, n
    s1 = 0; s2 = 0; beyond = 0; n = 0
    do j = 1, 4000
      do i = 1, 10
        z = ensemble_noise(7_int64, 1 + mod(j, 3), j, i)
        s1 = s1 + z
        s2 = s2 + z * z
        if (abs(z) > 2.0_real64) beyond = beyond + 1
        n = n + 1
      end do
    end do
    s1 = s1 / n
    s2 = s2 / n - s1**2
    call t%check(abs(s1) < 0.02_real64, 'noise mean is 0')
    call t%check(abs(s2 - 1.0_real64) < 0.03_real64, 'noise variance is 1')
    call t%check(abs(beyond / n - 0.0455_real64) < 0.005_real64, 'noise has normal tails')
    call t%check(ensemble_noise(7_int64, 1, 1, 1) /= ensemble_noise(7_int64, 2, 1, 1), &
                 'members get different noise')
    call t%check(ensemble_noise(7_int64, 1, 1, 1) /= ensemble_noise(8_int64, 1, 1, 1), &
                 'seeds give different noise')
    call t%check(ensemble_noise(-3_int64, 2, 5, 4) == ensemble_noise(-3_int64, 2, 5, 4), &
                 'noise is a function of its arguments')
  end subroutine test_noise_statistics

  subroutine test_mean_and_std(t)
    !! Members are the single networks bit for bit; mean and population
    !! standard deviation as computed by hand.
    type(tester), intent(inout) :: t
    type(ensemble) :: ens
    type(network) :: net
    real(real32) :: x(n_in, n_col), y(2, n_col), mean(2, n_col), std(2, n_col)
    real(real32) :: members(2, n_col, 3), mean_only(2, n_col), std_only(2, n_col)
    real(real64) :: mu(2, n_col), var(2, n_col)
    integer :: stat, k
    character(len=:), allocatable :: msg
    character(len=len(models) + 7) :: paths(3)
    paths = member_paths()
    x = inputs()
    call ens%load(paths, stat, msg)
    call t%status(stat, fkb_ok, msg, 'load three members')
    call t%check(ens%n_members() == 3 .and. ens%n_inputs() == n_in .and. &
                 ens%n_outputs() == 2 .and. ens%is_loaded(), 'sizes')
    call t%check(ens%member_path(2) == paths(2) .and. ens%member_path(4) == '', 'member paths')
    call ens%predict(x, mean, std, stat, msg, members=members)
    call t%status(stat, fkb_ok, msg, 'predict with members')
    mu = 0
    var = 0
    do k = 1, 3
      call net%load(paths(k), stat, msg)
      call net%predict(x, y, stat, msg)
      call t%check(all(members(:, :, k) == y), 'member equals its network, bit for bit')
      mu = mu + real(y, real64) / 3
    end do
    do k = 1, 3
      var = var + (real(members(:, :, k), real64) - mu)**2 / 3
    end do
    call t%close(mean, mu, 1.0d-6, 1.0d-6, 'mean over members')
    call t%close(std, sqrt(var), 1.0d-5, 1.0d-6, 'population standard deviation')
    call t%check(all(std > 0), 'members differ')
    call ens%predict(x, mean_only, std_only, stat, msg)
    call t%status(stat, fkb_ok, msg, 'predict without members')
    call t%check(all(mean_only == mean) .and. all(std_only == std), &
                 'mean and std do not depend on asking for members')
    call ens%predict(x(:, 1:0), mean(:, 1:0), std(:, 1:0), stat, msg)
    call t%status(stat, fkb_ok, msg, 'empty batch')
    call ens%clear()
    call t%check(.not. ens%is_loaded() .and. ens%n_members() == 0, 'clear')
  end subroutine test_mean_and_std

  subroutine test_r64(t)
    !! The 64-bit ensemble against its 64-bit networks.
    type(tester), intent(inout) :: t
    type(ensemble_r64) :: ens
    type(network_r64) :: net
    real(real64) :: x(n_in, n_col), y(2, n_col), mean(2, n_col), std(2, n_col)
    real(real64) :: members(2, n_col, 3), mu(2, n_col), var(2, n_col)
    integer :: stat, k
    character(len=:), allocatable :: msg
    character(len=len(models) + 7) :: paths(3)
    paths = member_paths()
    x = real(inputs(), real64)
    call ens%load(paths, stat, msg)
    call t%status(stat, fkb_ok, msg, 'load r64')
    call ens%predict(x, mean, std, stat, msg, members=members)
    call t%status(stat, fkb_ok, msg, 'predict r64')
    mu = 0
    do k = 1, 3
      call net%load(paths(k), stat, msg)
      call net%predict(x, y, stat, msg)
      call t%check(all(members(:, :, k) == y), 'r64 member equals its network')
      mu = mu + y
    end do
    mu = mu / 3
    var = 0
    do k = 1, 3
      var = var + (members(:, :, k) - mu)**2
    end do
    call t%close(mean, mu, 1.0d-14, 1.0d-14, 'r64 mean')
    call t%close(std, sqrt(var / 3), 1.0d-12, 1.0d-14, 'r64 std')
  end subroutine test_r64

  subroutine test_folder(t)
    !! A folder gives its *.fkb files in name order, other files ignored.
    type(tester), intent(inout) :: t
    type(ensemble) :: by_list, by_folder
    real(real32) :: x(n_in, n_col), m1(2, n_col), s1(2, n_col), m2(2, n_col), s2(2, n_col)
    real(real32) :: y1(2, n_col, 3), y2(2, n_col, 3)
    integer :: stat
    character(len=:), allocatable :: msg
    x = inputs()
    call by_list%load(member_paths(), stat, msg)
    call by_folder%load_folder(models, stat, msg)
    call t%status(stat, fkb_ok, msg, 'load folder')
    call t%check(by_folder%n_members() == 3, 'three models in the folder')
    call t%check(by_folder%member_path(1) == models // '/m1.fkb' .and. &
                 by_folder%member_path(3) == models // '/m3.fkb', 'folder in name order')
    call by_list%predict(x, m1, s1, stat, msg, members=y1)
    call by_folder%predict(x, m2, s2, stat, msg, members=y2)
    call t%check(all(y1 == y2) .and. all(m1 == m2) .and. all(s1 == s2), &
                 'folder and list give the same results')
    call by_folder%load_folder(models // '/', stat, msg)
    call t%status(stat, fkb_ok, msg, 'folder with a trailing slash')
  end subroutine test_folder

  subroutine test_threads(t)
    !! Results, with and without noise, are bitwise the same for 1, 2 and 3
    !! threads.
    type(tester), intent(inout) :: t
    type(ensemble) :: ens
    real(real32) :: x(n_in, n_col), mean(2, n_col, 3), std(2, n_col, 3), y(2, n_col, 3, 3)
    real(real32) :: noisy(2, n_col, 3)
    integer :: stat, threads
    character(len=:), allocatable :: msg
    x = inputs()
    call ens%load_folder(models, stat, msg)
    do threads = 1, 3
      !$ call omp_set_num_threads(threads)
      call ens%predict(x, mean(:, :, threads), std(:, :, threads), stat, msg, &
                       members=y(:, :, :, threads))
      call t%status(stat, fkb_ok, msg, 'predict with some threads')
      call ens%predict(x, noisy(:, :, threads), std(:, :, threads), stat, msg, &
                       noise_std=0.3_real32, seed=11_int64)
    end do
    !$ write (*, '(a)') 'ensemble: compared 1, 2 and 3 OpenMP threads'
    call t%check(all(mean(:, :, 1) == mean(:, :, 2)) .and. all(mean(:, :, 1) == mean(:, :, 3)), &
                 'mean independent of the thread count')
    call t%check(all(y(:, :, :, 1) == y(:, :, :, 2)) .and. all(y(:, :, :, 1) == y(:, :, :, 3)), &
                 'members independent of the thread count')
    call t%check(all(std(:, :, 1) == std(:, :, 2)) .and. all(std(:, :, 1) == std(:, :, 3)), &
                 'noisy std independent of the thread count')
    call t%check(all(noisy(:, :, 1) == noisy(:, :, 2)) .and. &
                 all(noisy(:, :, 1) == noisy(:, :, 3)), 'noisy mean independent of the thread count')
  end subroutine test_threads

  subroutine test_noise(t)
    !! Perturbed members equal their networks on inputs perturbed by hand;
    !! the same seed repeats, another seed differs, noise_std = 0 is no noise.
    type(tester), intent(inout) :: t
    type(ensemble) :: ens
    type(network) :: net
    real(real32) :: x(n_in, n_col), xp(n_in, n_col), y(2, n_col), mean(2, n_col), std(2, n_col)
    real(real32) :: a(2, n_col, 3), b(2, n_col, 3), c(2, n_col, 3), clean(2, n_col, 3)
    real(real32), parameter :: sigma = 0.25
    real(real32) :: scale(n_in)
    integer :: stat, k, i, j
    character(len=:), allocatable :: msg
    character(len=len(models) + 7) :: paths(3)
    paths = member_paths()
    x = inputs()
    scale = [(2.0 / i, i = 1, n_in)]
    call ens%load(paths, stat, msg)
    call ens%predict(x, mean, std, stat, msg, members=a, noise_std=sigma, seed=42_int64)
    call t%status(stat, fkb_ok, msg, 'predict with noise')
    call ens%predict(x, mean, std, stat, msg, members=b, noise_std=sigma, seed=42_int64)
    call ens%predict(x, mean, std, stat, msg, members=c, noise_std=sigma, seed=43_int64)
    call ens%predict(x, mean, std, stat, msg, members=clean, noise_std=0.0_real32)
    call t%check(all(a == b), 'the same seed gives the same noise')
    call t%check(count(a /= c) > size(a) / 2, 'another seed gives other noise')
    call t%check(count(a /= clean) > size(a) / 2, 'noise changes the members')
    do k = 1, 3
      do j = 1, n_col
        do i = 1, n_in
          xp(i, j) = real(real(x(i, j), real64) + real(sigma, real64) * real(scale(i), real64) &
                          * ensemble_noise(42_int64, k, j, i), real32)
        end do
      end do
      call net%load(paths(k), stat, msg)
      call net%predict(xp, y, stat, msg)
      call t%check(all(a(:, :, k) == y), 'noisy member = network on x + noise_std scale z')
      call net%predict(x, y, stat, msg)
      call t%check(all(clean(:, :, k) == y), 'noise_std = 0 is the plain prediction')
    end do
  end subroutine test_noise

  subroutine test_any_kind(t)
    !! `ensemble_any` in either precision, called with arrays of either
    !! kind, is the ensemble of its precision on the inputs rounded to it,
    !! bit for bit (noise included); a bad precision and a call before
    !! loading are errors.
    type(tester), intent(inout) :: t
    type(ensemble_any) :: any
    type(ensemble) :: e32
    type(ensemble_r64) :: e64
    real(real32) :: x32(n_in, n_col), m32(2, n_col), s32(2, n_col), y32(2, n_col, 3)
    real(real32) :: am32(2, n_col), as32(2, n_col), ay32(2, n_col, 3)
    real(real64) :: x64(n_in, n_col), m64(2, n_col), s64(2, n_col), y64(2, n_col, 3)
    real(real64) :: am64(2, n_col), as64(2, n_col), ay64(2, n_col, 3)
    integer :: stat
    character(len=:), allocatable :: msg
    character(len=len(models) + 7) :: paths(3)
    paths = member_paths()
    x32 = inputs()
    x64 = real(x32, real64) + 1.0d-9           ! not representable in 32 bits: rounded by the handle
    call any%predict(x64, am64, as64, stat, msg)
    call t%check(stat == fkb_err_argument .and. msg == 'predict: the ensemble is not loaded', 'any: not loaded')
    call any%load(paths, stat, msg, precision=16)
    call t%check(stat == fkb_err_argument .and. msg == 'load: precision must be 32 or 64, not 16', &
                 'any: precision 16 refused')
    call t%check(.not. any%is_loaded(), 'any: a refused load leaves nothing loaded')
    ! 32-bit members, called with real64 and with real32 arrays
    call e32%load(paths, stat, msg)
    call e32%predict(real(x64, real32), m32, s32, stat, msg, members=y32, noise_std=0.25, seed=7_int64)
    call any%load(paths, stat, msg)
    call t%status(stat, fkb_ok, msg, 'any: load at 32 bits')
    call t%check(any%precision() == 32 .and. any%n_members() == 3 .and. any%n_inputs() == n_in .and. &
                 any%n_outputs() == 2 .and. any%member_path(2) == paths(2), 'any: sizes and paths at 32 bits')
    call any%predict(x64, am64, as64, stat, msg, members=ay64, noise_std=0.25d0, seed=7_int64)
    call t%status(stat, fkb_ok, msg, 'any: predict real64 arrays with 32-bit members')
    call t%check(all(am64 == real(m32, real64)) .and. all(as64 == real(s32, real64)) .and. &
                 all(ay64 == real(y32, real64)), 'any(32) on real64 arrays = ensemble on rounded inputs')
    call any%predict(real(x64, real32), am32, as32, stat, msg)
    call e32%predict(real(x64, real32), m32, s32, stat, msg)
    call t%check(all(am32 == m32) .and. all(as32 == s32), 'any(32) on real32 arrays = ensemble')
    ! 64-bit members, called with real32 and with real64 arrays
    call e64%load(paths, stat, msg)
    call e64%predict(real(x32, real64), m64, s64, stat, msg, members=y64)
    call any%load(paths, stat, msg, precision=64)
    call t%status(stat, fkb_ok, msg, 'any: load at 64 bits')
    call any%predict(x32, am32, as32, stat, msg, members=ay32)
    call t%status(stat, fkb_ok, msg, 'any: predict real32 arrays with 64-bit members')
    call t%check(all(am32 == real(m64, real32)) .and. all(as32 == real(s64, real32)) .and. &
                 all(ay32 == real(y64, real32)), 'any(64) on real32 arrays = ensemble_r64, rounded')
    call e64%predict(x64, m64, s64, stat, msg)
    call any%predict(x64, am64, as64, stat, msg)
    call t%check(all(am64 == m64) .and. all(as64 == s64), 'any(64) on real64 arrays = ensemble_r64')
    call any%predict(x64(:, 1:10), am64(:, 1:9), as64(:, 1:9), stat, msg)
    call t%check(stat == fkb_err_shape, 'any: a shape the members refuse is refused')
    call any%clear()
    call t%check(.not. any%is_loaded() .and. any%n_members() == 0, 'any: cleared')
  end subroutine test_any_kind

  subroutine test_errors(t)
    type(tester), intent(inout) :: t
    type(ensemble) :: ens
    real(real32) :: x(n_in, 4), mean(2, 4), std(2, 4), y(2, 4, 3)
    integer :: stat
    character(len=:), allocatable :: msg
    character(len=40) :: paths(3)
    x = 1.0
    call ens%predict(x, mean, std, stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'predict before load', ['not loaded'])
    paths = [character(len=40) :: models // '/m1.fkb', models // '/m2.fkb', odd // '/units.fkb']
    call ens%load(paths, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'other output units', &
                  [character(len=40) :: 'member 3', 'units.fkb', 'output 1 (heating) units', &
                   'K day-1'])
    call t%check(.not. ens%is_loaded(), 'a failed load leaves the ensemble cleared')
    paths(3) = odd // '/wide.fkb'
    call ens%load(paths, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'other input count', &
                  [character(len=40) :: 'member 3', 'wide.fkb', 'n_inputs is 4, not 3'])
    paths(2) = models // '/none.fkb'
    call ens%load(paths, stat, msg)
    call t%status(stat, fkb_err_io, msg, 'missing member', &
                  [character(len=40) :: 'member 2', 'none.fkb'])
    call ens%load(paths(1:0), stat, msg)
    call t%status(stat, fkb_err_argument, msg, 'no paths', ['no model files'])
    call ens%load_folder(empty, stat, msg)
    call t%status(stat, fkb_err_io, msg, 'folder without models', &
                  [character(len=40) :: empty, 'no *.fkb'])
    call ens%load_folder('no_such_folder_here', stat, msg)
    call t%status(stat, fkb_err_io, msg, 'missing folder', ['no_such_folder_here'])
    call ens%load_folder(odd, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'mismatched folder', &
                  [character(len=40) :: 'member 2', 'units.fkb', 'member 1', 'linear.fkb'])

    call ens%load_folder(models, stat, msg)
    call ens%predict(x(1:2, :), mean, std, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'wrong input width', ['2 features'])
    call ens%predict(x, mean(:, 1:3), std, stat, msg)
    call t%status(stat, fkb_err_shape, msg, 'wrong mean shape', ['mean has shape (2, 3)'])
    call ens%predict(x, mean, std, stat, msg, members=y(:, :, 1:2))
    call t%status(stat, fkb_err_shape, msg, 'wrong members shape', ['(2, 4, 3)'])
    call ens%predict(x, mean, std, stat, msg, noise_std=-1.0)
    call t%status(stat, fkb_err_argument, msg, 'negative noise_std', ['noise_std'])
    x(2, 3) = ieee_nan()
    call ens%predict(x, mean, std, stat, msg)
    call t%status(stat, fkb_err_nonfinite, msg, 'NaN input', ['column 3 feature 2 is NaN'])
    x(2, 3) = 1.0
    x(3, 4) = huge(1.0_real32)  ! Inf once normalized: tanh members stay finite
    paths = [character(len=40) :: models // '/m1.fkb', models // '/m2.fkb', odd // '/linear.fkb']
    call ens%load(paths, stat, msg)
    call t%status(stat, fkb_ok, msg, 'load with an unbounded member')
    call ens%predict(x, mean, std, stat, msg)
    call t%status(stat, fkb_err_nonfinite, msg, 'member error names the member', &
                  [character(len=40) :: 'predict: member 3 (', 'linear.fkb', 'output column 4'])
  end subroutine test_errors

  function ieee_nan() result(v)
    use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
    real(real32) :: v
    v = ieee_value(v, ieee_quiet_nan)
  end function ieee_nan

end program test_ensemble
