program test_coupling
  !! Tests of the GCM-physics-emulator glue (gcm_toy/src/coupling):
  !!   - the Fortran copy of the emulator interface equals emulators/interface.py;
  !!   - the emulator gathers, predicts and scatters: a linear network whose
  !!     outputs are known functions of the inputs (float32 and float64, one
  !!     network and an ensemble), alone and inside the GCM;
  !!   - a network whose interface differs is refused, naming the difference;
  !!   - a non-finite network output stops the run with a recorded reason;
  !!   - the limiters act only when enabled;
  !!   - the training batch and diagnostics of the reference physics.
  !!
  !! Usage: test_coupling NETWORK_DIR  (files of make_test_networks.py for nlev = 10)
  use iso_fortran_env, only: int64, real64
  use test_support, only: test_counter, check, report
  use gcm_dycore, only: wp, model_config, climate_model, model_init, model_step, gcm_ok, gcm_err_physics, &
                        gcm_err_config, gcm_err_state, gcm_err_unphysical, gcm_err_nonfinite, physics_scheme, &
                        held_suarez_forcing
  use physics_configuration, only: physics_config
  use gcm_constants, only: gravity
  use moist_thermodynamics, only: saturation_humidity
  use gcm_emulator_interface, only: emulator_n_inputs, emulator_n_outputs, emulator_input_name, &
                                    emulator_input_units, emulator_output_name, emulator_output_units, &
                                    pack_emulator_inputs, pack_emulator_outputs, unpack_emulator_outputs
  use gcm_emulator, only: emulator_physics, emulator_options, emulator_physics_setup
  use gcm_physics_choice, only: physics_options, select_physics
  use column_physics_io, only: column_inputs, column_outputs, set_column_inputs
  use gcm_aquaplanet, only: aquaplanet_config, aquaplanet_physics, aquaplanet_physics_setup, &
                            aquaplanet_emulator_setup, aquaplanet_get_training_batch, &
                            aquaplanet_get_surface_diagnostics, aquaplanet_get_cloud_fraction, set_aquaplanet_start
  implicit none

  integer, parameter :: nlev = 10, ncol = 37
  type(test_counter) :: tc
  character(len=1024) :: dir

  if (command_argument_count() < 1) error stop 'usage: test_coupling NETWORK_DIR'
  call get_command_argument(1, dir)

  call test_interface_matches_python(nlev)
  call test_interface_matches_python(3)
  call test_pack_unpack()
  call test_linear_emulator(.false.)
  call test_linear_emulator(.true.)
  call test_ensemble_mean()
  call test_interface_mismatch()
  call test_limiters()
  call test_emulator_in_gcm()
  call test_limiters_in_gcm()
  call test_nonfinite_output_stops_run()
  call test_huge_output_float64_crashes_state()
  call test_reference_batch_and_diagnostics()
  call test_setup_errors()
  call test_select_physics()
  call report(tc)

contains

  function path(name) result(p)
    character(len=*), intent(in) :: name
    character(len=:), allocatable :: p
    p = trim(dir) // '/' // name
  end function path

  function files(first, second) result(list)
    !! Paths of one or two network files as a fixed-length array (gfortran 12
    !! corrupts the heap for [character(len=n) :: f(x)] with a deferred-length f).
    character(len=*), intent(in) :: first
    character(len=*), intent(in), optional :: second
    character(len=512), allocatable :: list(:)
    if (present(second)) then
      allocate (list(2))
      list(2) = path(second)
    else
      allocate (list(1))
    end if
    list(1) = path(first)
  end function files

  ! ------------------------------------------------------------- inputs

  subroutine sample_columns(n, t, q, ps, solin, shflx, lhflx, sigma, sigma_half)
    !! n realistic columns: lapse-rate temperatures, 0-80 % RH, ps 960-1030 hPa.
    integer, intent(in) :: n
    real(wp), intent(out) :: t(nlev, n), q(nlev, n), ps(n), solin(n), shflx(n), lhflx(n)
    real(wp), intent(out) :: sigma(nlev), sigma_half(0:nlev)
    real(wp) :: r(nlev + 5)
    integer :: i, k
    integer, allocatable :: seed(:)
    integer :: nseed
    call random_seed(size=nseed)
    allocate (seed(nseed))
    seed = 12345
    call random_seed(put=seed)
    sigma_half = [(real(k, wp) / nlev, k = 0, nlev)]
    sigma = 0.5_wp * (sigma_half(:nlev - 1) + sigma_half(1:))
    do i = 1, n
      call random_number(r)
      ps(i) = 9.6e4_wp + 7.0e3_wp * r(nlev + 1)
      do k = 1, nlev
        t(k, i) = max(200.0_wp, (275.0_wp + 25.0_wp * r(nlev + 2)) * sigma(k)**0.19_wp)
        q(k, i) = 0.8_wp * r(k) * sigma(k)**2 * saturation_humidity(t(k, i), sigma(k) * ps(i))
      end do
      solin(i) = 1360.0_wp * r(nlev + 3)
      shflx(i) = -10.0_wp + 40.0_wp * r(nlev + 4)
      lhflx(i) = 300.0_wp * r(nlev + 5)
    end do
  end subroutine sample_columns

  subroutine linear_expected(x, y)
    !! The physical map of make_test_networks.linear_coefficients.
    real(wp), intent(in) :: x(:, :)
    real(wp), intent(out) :: y(:, :)
    integer :: k, n
    n = nlev
    do k = 1, n
      y(k, :) = 1e-6_wp * (x(k, :) - 250.0_wp) + 1e-8_wp * k
      y(n + k, :) = -1e-5_wp * x(n + k, :) + 1e-12_wp * x(2 * n + 4, :)
    end do
    y(2 * n + 1, :) = 0.75_wp * x(2 * n + 2, :)
    y(2 * n + 2, :) = 0.625_wp * x(2 * n + 2, :) - 0.125_wp * x(2 * n + 3, :)
    y(2 * n + 3, :) = 200.0_wp + 0.25_wp * (x(n, :) - 250.0_wp) + 1e-3_wp * (x(2 * n + 1, :) - 1e5_wp)
    y(2 * n + 4, :) = 50.0_wp + 0.5_wp * x(2 * n + 3, :)
    y(2 * n + 5, :) = 2e-3_wp * x(2 * n, :) - 1e-5_wp
  end subroutine linear_expected

  real(wp) function scaled_error(y, expected) result(err)
    !! max over elements of |y - expected| / (max over columns of |expected| of that element)
    real(wp), intent(in) :: y(:, :), expected(:, :)
    integer :: i
    err = 0.0_wp
    do i = 1, size(y, 1)
      err = max(err, maxval(abs(y(i, :) - expected(i, :))) / max(maxval(abs(expected(i, :))), tiny(1.0_wp)))
    end do
  end function scaled_error

  ! -------------------------------------------------------------- tests

  subroutine test_interface_matches_python(n)
    !! Every element name and units string equals the Python interface's.
    integer, intent(in) :: n
    character(len=8) :: kind
    character(len=200) :: line, label, expected
    character(len=16) :: tag
    integer :: unit, i, ios, n_in, n_out, p
    logical :: same
    write (tag, '(i0)') n
    open (newunit=unit, file=path('interface_L' // trim(tag) // '.txt'), status='old', action='read', iostat=ios)
    call check(tc, ios == 0, 'interface table from emulators/interface.py exists (nlev ' // trim(tag) // ')')
    if (ios /= 0) return
    same = .true.
    n_in = 0; n_out = 0
    do
      read (unit, '(a)', iostat=ios) line
      if (ios /= 0) exit
      ! "in 12 Q_2|kg kg-1": kind, index, name|units (units may hold blanks)
      p = index(line, ' ')
      kind = line(:p - 1)
      line = line(p + 1:)
      p = index(line, ' ')
      read (line(:p - 1), *) i
      label = line(p + 1:)
      if (kind == 'in') then
        n_in = n_in + 1
        expected = emulator_input_name(n, i) // '|' // emulator_input_units(n, i)
      else
        n_out = n_out + 1
        expected = emulator_output_name(n, i) // '|' // emulator_output_units(n, i)
      end if
      if (trim(label) /= trim(expected)) then
        same = .false.
        write (*, '(a)') '  python: ' // trim(label) // '  fortran: ' // trim(expected)
      end if
    end do
    close (unit)
    call check(tc, same .and. n_in == emulator_n_inputs(n) .and. n_out == emulator_n_outputs(n), &
               'interface: Fortran names, units and sizes equal emulators/interface.py (nlev ' // trim(tag) // ')')
  end subroutine test_interface_matches_python

  function host_batch_inputs(model, phys) result(x)
    !! The emulator inputs of the last physics step as the host saw them:
    !! the dycore's columns (T, q, ps at n-1) and the host's insolation and
    !! surface fluxes, packed in interface order.
    type(climate_model), intent(in) :: model
    type(aquaplanet_physics), intent(in) :: phys
    real(wp), allocatable :: x(:, :)
    type(column_inputs) :: inputs
    call set_column_inputs(inputs, model%columns%t, model%columns%q, model%columns%ps, phys%diag%solin, &
                           phys%diag%shflx, phys%diag%lhflx, model%columns%sigma, model%columns%sigma_half, &
                           model%columns%dt, model%columns%step, phys%column_ids, phys%config%seed)
    allocate (x(emulator_n_inputs(inputs%nlev), inputs%ncol))
    call pack_emulator_inputs(inputs, x)
  end function host_batch_inputs

  subroutine test_pack_unpack()
    real(wp) :: t(nlev, ncol), q(nlev, ncol), ps(ncol), solin(ncol), shflx(ncol), lhflx(ncol)
    real(wp) :: sigma(nlev), sigma_half(0:nlev)
    real(wp) :: x(2 * nlev + 4, ncol), y(2 * nlev + 5, ncol), y2(2 * nlev + 5, ncol)
    type(column_inputs) :: inputs
    type(column_outputs) :: outputs
    integer :: i
    call sample_columns(ncol, t, q, ps, solin, shflx, lhflx, sigma, sigma_half)
    call set_column_inputs(inputs, t, q, ps, solin, shflx, lhflx, sigma, sigma_half, 3600.0_wp, 1_int64, &
                           [(i, i = 1, ncol)], 1_int64)
    call pack_emulator_inputs(inputs, x)
    call check(tc, all(x(1:nlev, :) == t) .and. all(x(nlev + 1:2 * nlev, :) == q) .and. &
               all(x(2 * nlev + 1, :) == ps) .and. all(x(2 * nlev + 2, :) == solin) .and. &
               all(x(2 * nlev + 3, :) == shflx) .and. all(x(2 * nlev + 4, :) == lhflx), &
               'pack inputs: T, Q, PS, SOLIN, SHFLX, LHFLX in interface order')
    call random_number(y)
    call unpack_emulator_outputs(nlev, y, outputs)
    call pack_emulator_outputs(outputs, y2)
    call check(tc, all(y2 == y) .and. all(outputs%dtdt == y(1:nlev, :)) .and. &
               all(outputs%precip == y(2 * nlev + 5, :)), 'unpack/pack outputs round trip')
  end subroutine test_pack_unpack

  subroutine run_emulator(emu, dt, x, y, stat, msg, q_in)
    !! Call the emulated-physics interface on the sample columns; x, y packed
    !! (y zero when the emulator failed before it had outputs).
    type(emulator_physics), intent(inout) :: emu
    real(wp), intent(in) :: dt
    real(wp), intent(out) :: x(2 * nlev + 4, ncol), y(2 * nlev + 5, ncol)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    real(wp), intent(out), optional :: q_in(nlev, ncol)
    real(wp) :: t(nlev, ncol), q(nlev, ncol), ps(ncol), solin(ncol), shflx(ncol), lhflx(ncol)
    real(wp) :: sigma(nlev), sigma_half(0:nlev)
    integer :: ids(ncol), i
    type(physics_config) :: config
    type(column_inputs) :: inputs
    type(column_outputs) :: outputs
    call sample_columns(ncol, t, q, ps, solin, shflx, lhflx, sigma, sigma_half)
    ids = [(100 + i, i = 1, ncol)]
    call set_column_inputs(inputs, t, q, ps, solin, shflx, lhflx, sigma, sigma_half, dt, 5_int64, ids, 1_int64)
    call emu%compute(config, inputs, outputs, stat, msg)
    call pack_emulator_inputs(inputs, x)
    y = 0.0_wp
    if (allocated(outputs%dtdt)) call pack_emulator_outputs(outputs, y)
    if (present(q_in)) q_in = q
  end subroutine run_emulator

  subroutine test_linear_emulator(use_real64)
    logical, intent(in) :: use_real64
    type(emulator_physics) :: emu
    real(wp) :: x(2 * nlev + 4, ncol), y(2 * nlev + 5, ncol), expected(2 * nlev + 5, ncol), tol
    integer :: stat
    character(len=:), allocatable :: msg
    character(len=8) :: label
    label = merge('float64', 'float32', use_real64)
    call emulator_physics_setup(emu, files('linear_L10.fkb'), nlev, &
                                emulator_options(use_real64=use_real64), stat, msg)
    call check(tc, stat == gcm_ok, 'linear emulator (' // trim(label) // ') loads and passes the interface check')
    if (stat /= gcm_ok) then
      write (*, '(a)') '  ' // msg
      return
    end if
    call run_emulator(emu, 3600.0_wp, x, y, stat, msg)
    call linear_expected(x, expected)
    tol = merge(1e-6_wp, 1e-5_wp, use_real64)   ! weights are float32 in the file either way
    call check(tc, stat == gcm_ok .and. scaled_error(y, expected) < tol, &
               'linear emulator (' // trim(label) // '): scattered dT/dt, dq/dt, fluxes, precip = A x + b', &
               scaled_error(y, expected), tol)
    call check(tc, any(y(2 * nlev + 5, :) < 0.0_wp), &
               'linear emulator (' // trim(label) // '): negative precipitation passes through (no limiter)')
  end subroutine test_linear_emulator

  subroutine test_ensemble_mean()
    type(emulator_physics) :: emu
    real(wp) :: x(2 * nlev + 4, ncol), y(2 * nlev + 5, ncol), expected(2 * nlev + 5, ncol)
    integer :: stat
    character(len=:), allocatable :: msg
    call emulator_physics_setup(emu, files('linear_L10.fkb', 'linear3_L10.fkb'), &
                                nlev, emulator_options(), stat, msg)
    call check(tc, stat == gcm_ok .and. emu%n_members() == 2, 'ensemble of 2 networks loads')
    call run_emulator(emu, 3600.0_wp, x, y, stat, msg)
    call linear_expected(x, expected)
    expected = 2.0_wp * expected    ! mean of (A x + b) and 3 (A x + b)
    call check(tc, stat == gcm_ok .and. scaled_error(y, expected) < 1e-5_wp, &
               'ensemble: outputs are the members'' mean', scaled_error(y, expected), 1e-5_wp)
  end subroutine test_ensemble_mean

  subroutine expect_refusal(file, expected, use_real64)
    character(len=*), intent(in) :: file, expected
    logical, intent(in) :: use_real64
    type(emulator_physics) :: emu
    integer :: stat
    character(len=:), allocatable :: msg
    call emulator_physics_setup(emu, files('linear_L10.fkb', file), nlev, &
                                emulator_options(use_real64=use_real64), stat, msg)
    call check(tc, stat == gcm_err_config .and. msg == expected // ' (' // path(file) // ')', &
               'mismatch refused: ' // msg)
    if (msg /= expected // ' (' // path(file) // ')') write (*, '(a)') '  expected: ' // expected
  end subroutine expect_refusal

  subroutine test_interface_mismatch()
    type(emulator_physics) :: emu
    integer :: stat
    character(len=:), allocatable :: msg
    call expect_refusal('swapped_L10.fkb', &
      "emulator input 11 is 'Q_2' [kg kg-1], the GCM expects 'Q_1' [kg kg-1]", .false.)
    call expect_refusal('hpa_L10.fkb', "emulator input 21 is 'PS' [hPa], the GCM expects 'PS' [Pa]", .true.)
    call expect_refusal('mmday_L10.fkb', &
      "emulator output 25 is 'PRECT' [mm day-1], the GCM expects 'PRECT' [kg m-2 s-1]", .false.)
    call expect_refusal('unnamed_L10.fkb', "emulator input 1 is 'x1' [1], the GCM expects 'T_1' [K]", .false.)
    call expect_refusal('linear_L20.fkb', &
      'emulator has 44 inputs, the GCM needs 24 (T and Q on 10 levels, PS, SOLIN, SHFLX, LHFLX)', .false.)
    call expect_refusal('noprect_L10.fkb', &
      'emulator has 24 outputs, the GCM needs 25 (TPHYSTND and PHQ on 10 levels, FSNT, FSNS, FLNT, FLNS, PRECT)', &
      .false.)
    call emulator_physics_setup(emu, files('no_such.fkb'), nlev, emulator_options(), &
                                stat, msg)
    call check(tc, stat == gcm_err_config .and. index(msg, 'cannot load') > 0 .and. &
               index(msg, 'no_such.fkb') > 0, 'missing model file refused: ' // msg)
  end subroutine test_interface_mismatch

  subroutine test_limiters()
    type(emulator_physics) :: emu
    real(wp) :: x(2 * nlev + 4, ncol), y(2 * nlev + 5, ncol), q(nlev, ncol)
    real(wp), parameter :: dt = 3600.0_wp
    integer :: stat
    character(len=:), allocatable :: msg

    call emulator_physics_setup(emu, files('limiter_L10.fkb'), nlev, &
                                emulator_options(use_real64=.true.), stat, msg)
    call run_emulator(emu, dt, x, y, stat, msg, q)
    call check(tc, stat == gcm_ok .and. all(abs(y(nlev + 1:2 * nlev, :) + 1e-3_wp * q) <= 1e-9_wp * q) .and. &
               any(q + dt * y(nlev + 1:2 * nlev, :) < 0.0_wp), &
               'limiters off: dq/dt = -1e-3 q passes through, q + dt dq/dt < 0')
    call check(tc, all(abs(y(2 * nlev + 5, :) + 1e-5_wp) < 1e-12_wp), &
               'limiters off: precipitation -1e-5 kg m-2 s-1 passes through')

    call emulator_physics_setup(emu, files('limiter_L10.fkb'), nlev, &
                                emulator_options(use_real64=.true., limit_humidity=.true.), stat, msg)
    call run_emulator(emu, dt, x, y, stat, msg, q)
    call check(tc, stat == gcm_ok .and. all(q + dt * y(nlev + 1:2 * nlev, :) >= -1e-18_wp) .and. &
               all(abs(y(nlev + 1:2 * nlev, :) + q / dt) <= 1e-12_wp * q / dt + tiny(1.0_wp)), &
               'limit_humidity: dq/dt clipped to -q/dt, q + dt dq/dt >= 0')
    call check(tc, all(abs(y(2 * nlev + 5, :) + 1e-5_wp) < 1e-12_wp), &
               'limit_humidity alone leaves precipitation negative')

    call emulator_physics_setup(emu, files('limiter_L10.fkb'), nlev, &
                                emulator_options(limit_precipitation=.true.), stat, msg)
    call run_emulator(emu, dt, x, y, stat, msg, q)
    call check(tc, stat == gcm_ok .and. all(y(2 * nlev + 5, :) == 0.0_wp) .and. &
               any(q + dt * y(nlev + 1:2 * nlev, :) < 0.0_wp), &
               'limit_precipitation: precip clipped at 0, humidity not limited')
  end subroutine test_limiters

  subroutine small_model(model, truncation)
    type(climate_model), intent(out) :: model
    integer, intent(in) :: truncation
    type(model_config) :: cfg
    integer :: status
    character(len=256) :: message
    cfg%truncation = truncation
    cfg%nlev = nlev
    call model_init(model, cfg, status, message)
    if (status /= gcm_ok) error stop 'model_init failed'
    call set_aquaplanet_start(model, 3, status, message)
    if (status /= gcm_ok) error stop 'set_aquaplanet_start failed'
  end subroutine small_model

  function quick_physics() result(config)
    !! Cheaper reference physics for tests: 4 subcolumns x 2 sub-steps.
    type(aquaplanet_config) :: config
    config%physics%n_subcolumns = 4
    config%physics%n_substeps = 2
    config%keep_training_batch = .true.
  end function quick_physics

  subroutine test_emulator_in_gcm()
    !! Inside the GCM: the batch the emulator saw is the dycore's columns, the
    !! emulated tendencies are the network's outputs for them, dps/dt = 0.
    type(climate_model) :: model
    type(aquaplanet_physics) :: phys
    real(wp), allocatable :: x(:, :), y(:, :), x_expected(:, :), y_expected(:, :)
    integer :: status, ncol_model
    character(len=256) :: message
    call small_model(model, 10)
    call aquaplanet_emulator_setup(phys, model, quick_physics(), files('linear_L10.fkb'), &
                                   emulator_options(), status, message)
    call check(tc, status == gcm_ok .and. phys%mode == 'emulator', 'aquaplanet_emulator_setup with the linear network')
    call model_step(model, 3, status, message, phys)
    call check(tc, status == gcm_ok, 'GCM with the linear emulator: 3 steps run ('//trim(message)//')')
    ncol_model = model%columns%ncol
    allocate (x(2 * nlev + 4, ncol_model), y(2 * nlev + 5, ncol_model), x_expected(2 * nlev + 4, ncol_model), &
              y_expected(2 * nlev + 5, ncol_model))
    call aquaplanet_get_training_batch(phys, x, y, status, message)
    x_expected = host_batch_inputs(model, phys)
    call check(tc, status == gcm_ok .and. all(x == x_expected), &
               'GCM + emulator: the batch holds the dycore''s columns (T, q, ps at n-1) and the host fluxes')
    call linear_expected(x, y_expected)
    call check(tc, scaled_error(y, y_expected) < 1e-5_wp, 'GCM + emulator: emulated outputs = A x + b', &
               scaled_error(y, y_expected), 1e-5_wp)
    call check(tc, all(phys%diag%emulated%dtdt == y(1:nlev, :)) .and. &
               all(phys%diag%emulated%precip == y(2 * nlev + 5, :)) .and. all(model%phys_tend%dpsdt == 0.0_wp), &
               'GCM + emulator: dT/dt and precip scattered, dps/dt = 0')
    call check(tc, phys%last_dt == 2.0_wp * model%config%dt .and. phys%last_step == 1, &
               'GCM + emulator: leapfrog step sees level n-1 and dt = 2 dt')
    call model_step(model, 2 * 48 - 3, status, message, phys)
    call check(tc, status == gcm_ok, 'GCM with the linear emulator: 2 days run ('//trim(message)//')')
  end subroutine test_emulator_in_gcm

  subroutine test_limiters_in_gcm()
    !! Nothing fills the humidity of an emulator without limit_humidity: the
    !! summed tendency drives q negative; with it, q + dt dq/dt >= 0.
    type(climate_model) :: model
    type(aquaplanet_physics) :: phys
    real(wp) :: q_min
    integer :: status
    character(len=256) :: message
    call small_model(model, 10)
    call aquaplanet_emulator_setup(phys, model, quick_physics(), files('limiter_L10.fkb'), &
                                   emulator_options(), status, message)
    call model_step(model, 2, status, message, phys)
    q_min = minval(model%columns%q + model%columns%dt * model%phys_tend%dqdt)
    call check(tc, status == gcm_ok .and. q_min < 0.0_wp .and. all(phys%diag%q_filled == 0.0_wp), &
               'GCM + emulator, no limiter: q + dt dq/dt < 0 is left alone [kg/kg]', q_min)
    call small_model(model, 10)
    call aquaplanet_emulator_setup(phys, model, quick_physics(), files('limiter_L10.fkb'), &
                                   emulator_options(limit_humidity=.true., limit_precipitation=.true.), &
                                   status, message)
    call model_step(model, 2, status, message, phys)
    q_min = minval(model%columns%q + model%columns%dt * model%phys_tend%dqdt)
    call check(tc, status == gcm_ok .and. q_min >= -1e-18_wp .and. all(phys%diag%emulated%precip == 0.0_wp), &
               'GCM + emulator, limiters on: q + dt dq/dt >= 0 and precip = 0 [kg/kg]', q_min)
  end subroutine test_limiters_in_gcm

  subroutine test_nonfinite_output_stops_run()
    type(climate_model) :: model
    type(aquaplanet_physics) :: phys
    integer :: status
    character(len=256) :: message
    call small_model(model, 10)
    call aquaplanet_emulator_setup(phys, model, quick_physics(), files('overflow_L10.fkb'), &
                                   emulator_options(), status, message)
    call check(tc, status == gcm_ok, 'overflowing network passes the interface check')
    call model_step(model, 5, status, message, phys)
    call check(tc, status == gcm_err_physics .and. &
               index(message, "physics: emulator output 3 'TPHYSTND_3' [K s-1] is +Inf in column 1") == 1, &
               'float32 overflow to +Inf stops the run: ' // trim(message))
    call check(tc, model%state%step == 0 .and. phys%failure%status == gcm_err_physics .and. &
               phys%failure%variable == 'TPHYSTND_3' .and. phys%failure%level == 3 .and. &
               phys%failure%lon_index == 1 .and. phys%failure%lat_index == 1 .and. phys%failure%step == 0 .and. &
               phys%failure%value > huge(1.0_wp), &
               'failure record: step 0, column (1, 1), level 3, TPHYSTND_3 = +Inf')
  end subroutine test_nonfinite_output_stops_run

  subroutine test_huge_output_float64_crashes_state()
    !! In float64 the same network gives a finite 2e40 K/s: the physics step
    !! succeeds and the dycore's crash check stops the next step.
    type(climate_model) :: model
    type(aquaplanet_physics) :: phys
    integer :: status
    character(len=256) :: message
    call small_model(model, 10)
    call aquaplanet_emulator_setup(phys, model, quick_physics(), files('overflow_L10.fkb'), &
                                   emulator_options(use_real64=.true.), status, message)
    call model_step(model, 5, status, message, phys)
    call check(tc, (status == gcm_err_unphysical .or. status == gcm_err_nonfinite) .and. &
               model%failure%status == status .and. model%state%step >= 1, &
               'float64: 2e40 K/s stops the run at the crash check: ' // trim(message))
  end subroutine test_huge_output_float64_crashes_state

  subroutine test_reference_batch_and_diagnostics()
    !! The reference's training batch: inputs are the columns, outputs satisfy
    !! the reference's water budget (-sum dq/dt dp/g = precip) per column.
    type(climate_model) :: model
    type(aquaplanet_physics) :: phys
    real(wp), allocatable :: x(:, :), y(:, :), x_expected(:, :), cf(:, :, :), g(:, :, :)
    real(wp) :: worst, water, dsigma(nlev)
    type(aquaplanet_config) :: config
    integer :: status, c, nc
    character(len=256) :: message
    call small_model(model, 10)
    ! In the first steps from the moist start the convection is shallow and, with the
    ! deep-cloud criterion, does not rain; without it the budget check below sees rain.
    config = quick_physics()
    config%physics%sbm_deep_min_depth = 0.0_wp
    call aquaplanet_physics_setup(phys, model, config, status, message)
    call check(tc, status == gcm_ok .and. phys%mode == 'reference', 'reference aquaplanet physics set up')
    allocate (x(2 * nlev + 4, 512), y(2 * nlev + 5, 512))
    call aquaplanet_get_training_batch(phys, x, y, status, message)
    deallocate (x, y)
    call check(tc, status == gcm_err_state, 'no batch before the first step: ' // trim(message))
    call model_step(model, 24, status, message, phys)
    call check(tc, status == gcm_ok, 'reference physics in the GCM: 24 steps')
    nc = model%columns%ncol
    allocate (x(2 * nlev + 4, nc), y(2 * nlev + 5, nc), x_expected(2 * nlev + 4, nc))
    call aquaplanet_get_training_batch(phys, x, y, status, message)
    x_expected = host_batch_inputs(model, phys)
    call check(tc, status == gcm_ok .and. all(x == x_expected), 'reference batch: inputs are the columns')
    dsigma = model%vert%dsigma
    worst = 0.0_wp
    do c = 1, nc
      water = -sum(y(nlev + 1:2 * nlev, c) * dsigma) * x(2 * nlev + 1, c) / gravity
      worst = max(worst, abs(water - y(2 * nlev + 5, c)) / max(abs(y(2 * nlev + 5, c)), 1e-8_wp))
    end do
    call check(tc, worst < 1e-9_wp .and. maxval(y(2 * nlev + 5, :)) > 0.0_wp, &
               'reference batch: outputs close the water budget column by column', worst, 1e-9_wp)
    allocate (cf(nlev, model%config%nlon, model%config%nlat))
    call aquaplanet_get_cloud_fraction(phys, cf, status, message)
    call check(tc, status == gcm_ok .and. all(cf >= 0.0_wp .and. cf <= 1.0_wp) .and. maxval(cf) > 0.0_wp, &
               'reference: cloud fraction in [0, 1]')
    allocate (g(10, model%config%nlon, model%config%nlat))
    call aquaplanet_get_surface_diagnostics(phys, g(1, :, :), g(2, :, :), g(3, :, :), g(4, :, :), g(5, :, :), &
                                            g(6, :, :), g(7, :, :), g(8, :, :), g(9, :, :), g(10, :, :), &
                                            status, message)
    call check(tc, status == gcm_ok .and. all(reshape(g(1, :, :), [nc]) == y(2 * nlev + 5, :)) .and. &
               all(g(5, :, :) > 270.0_wp) .and. all(g(2, :, :) * 2.5e6_wp == g(4, :, :)) .and. &
               all(reshape(g(7, :, :), [nc]) == y(2 * nlev + 1, :)), &
               'surface diagnostics on the (nlon, nlat) grid: precip, evap = LH / L_v, SST, FSNT')
    call aquaplanet_emulator_setup(phys, model, quick_physics(), files('linear_L10.fkb'), &
                                   emulator_options(), status, message)
    call model_step(model, 1, status, message, phys)
    call aquaplanet_get_cloud_fraction(phys, cf, status, message)
    call check(tc, status == gcm_err_state .and. index(message, 'only the reference') > 0, &
               'emulator mode: no cloud fraction (' // trim(message) // ')')
  end subroutine test_reference_batch_and_diagnostics

  subroutine test_setup_errors()
    type(climate_model) :: model
    type(aquaplanet_physics) :: phys
    type(emulator_physics) :: emu
    type(model_config) :: cfg
    type(aquaplanet_config) :: config
    integer :: status, stat
    character(len=256) :: message
    character(len=:), allocatable :: msg
    call aquaplanet_physics_setup(phys, model, config, status, message)
    call check(tc, status == gcm_err_state, 'setup refuses an uninitialised model: ' // trim(message))
    cfg%truncation = 5
    cfg%nlev = nlev
    cfg%humidity = .false.
    call model_init(model, cfg, status, message)
    call aquaplanet_physics_setup(phys, model, config, status, message)
    call check(tc, status == gcm_err_state .and. index(message, 'humidity') > 0, &
               'setup refuses a dry model: ' // trim(message))
    cfg%humidity = .true.
    cfg%nlev = 20
    call model_init(model, cfg, status, message)
    call emulator_physics_setup(emu, files('linear_L10.fkb'), nlev, emulator_options(), &
                                stat, msg)
    call aquaplanet_physics_setup(phys, model, config, status, message, emu)
    call check(tc, status == gcm_err_config .and. &
               trim(message) == 'aquaplanet physics: the emulator was checked for 10 levels, the model has 20', &
               'setup refuses an emulator checked for other levels: ' // trim(message))
    call aquaplanet_emulator_setup(phys, model, config, files('linear_L10.fkb'), &
                                   emulator_options(), status, message)
    call check(tc, status == gcm_err_config .and. index(message, 'emulator has 24 inputs, the GCM needs 44') == 1, &
               'emulator setup for a 20-level model refuses a 10-level network: ' // trim(message))
    config%physics%n_subcolumns = 0
    cfg%nlev = nlev
    call model_init(model, cfg, status, message)
    call aquaplanet_physics_setup(phys, model, config, status, message)
    call check(tc, status == gcm_err_config .and. index(message, 'n_subcolumns') > 0, &
               'setup refuses an invalid physics config: ' // trim(message))
  end subroutine test_setup_errors

  subroutine test_select_physics()
    !! The choice by name, as a Fortran host (or the Python binding) makes it:
    !! every name gives its scheme, a wrong choice is refused with a status
    !! and a one-line message and leaves no scheme.
    type(climate_model) :: model
    type(physics_options) :: options
    class(physics_scheme), allocatable :: physics
    integer :: status
    character(len=256) :: message
    call small_model(model, 10)
    call select_physics('none', model, options, physics, status, message)
    call check(tc, status == gcm_ok .and. .not. allocated(physics), 'select_physics none: dynamics only')
    call select_physics('held-suarez', model, options, physics, status, message)
    call check(tc, status == gcm_ok .and. same_type_as(physics, held_suarez_forcing()), &
               'select_physics held-suarez: the Held-Suarez forcing')
    call select_physics('reference', model, options, physics, status, message)
    call check(tc, status == gcm_ok .and. aquaplanet_mode(physics) == 'reference', &
               'select_physics reference: the aquaplanet physics ' // trim(message))
    options%emulator_paths = files('linear_L10.fkb')
    call select_physics('emulator', model, options, physics, status, message)
    call check(tc, status == gcm_ok .and. aquaplanet_mode(physics) == 'emulator', &
               'select_physics emulator: the aquaplanet physics with the network ' // trim(message))
    call select_physics('ensemble', model, options, physics, status, message)
    call check(tc, status == gcm_err_config .and. .not. allocated(physics) .and. &
               index(message, 'ensemble: needs at least two model files') > 0, &
               'select_physics refuses an ensemble of one: ' // trim(message))
    options%emulator_paths = files('linear_L10.fkb', 'linear_L10.fkb')
    call select_physics('emulator', model, options, physics, status, message)
    call check(tc, status == gcm_err_config .and. .not. allocated(physics) .and. &
               index(message, 'emulator: needs exactly one model file, got 2') > 0, &
               'select_physics refuses two files for one emulator: ' // trim(message))
    call select_physics('superparameterized', model, options, physics, status, message)
    call check(tc, status == gcm_err_config .and. .not. allocated(physics) .and. &
               index(message, "unknown scheme 'superparameterized'") > 0, &
               'select_physics refuses an unknown name: ' // trim(message))
    options%physics_settings = '&physics_settings physics%n_subcolumns = 0 /'
    call select_physics('reference', model, options, physics, status, message)
    call check(tc, status == gcm_err_config .and. .not. allocated(physics), &
               'select_physics refuses invalid physics settings: ' // trim(message))
  end subroutine test_select_physics

  function aquaplanet_mode(physics) result(mode)
    !! The mode of an aquaplanet physics ('reference', 'emulator', ...); '' for any other scheme.
    class(physics_scheme), allocatable, intent(in) :: physics
    character(len=:), allocatable :: mode
    mode = ''
    if (.not. allocated(physics)) return
    select type (physics)
    type is (aquaplanet_physics)
      mode = physics%mode
    end select
  end function aquaplanet_mode

end program test_coupling
