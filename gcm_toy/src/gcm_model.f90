module gcm_model
  !! The toy GCM's driver: a `climate_model` value the caller owns, set up
  !! from a `model_config`, stepped with an optional column-physics scheme,
  !! inspected and restarted through plain subroutines (arrays in and out,
  !! integer status and a one-line message; never `stop`).
  !!
  !! One step (n-1, n -> n+1):
  !!   1. transform time level n to the grid;
  !!   2. check it (first NaN/Inf, else first value outside the bounds) and
  !!      stop with a failure report if it fails;
  !!   3. fill negative humidity conservatively and restore the dry-air mass;
  !!   4. physics: the scheme sees the columns of level n-1 and returns
  !!      tendencies of u, v, T, q, ps;
  !!   5. dynamics tendencies on the grid plus the physics tendencies;
  !!   6. transform the tendencies back to spectral space;
  !!   7. semi-implicit leapfrog, hyperdiffusion, time filter.
  use iso_fortran_env, only: int64
  use gcm_constants, only: wp
  use gcm_status, only: gcm_ok, gcm_err_state, gcm_err_physics
  use gcm_config, only: model_config, gcm_config_resolve
  use gcm_spectral_transform, only: spectral_transform, transform_init, spec_to_grid, grid_to_spec, &
                                    uv_grid, vector_divcurl
  use gcm_vertical, only: sigma_levels, vertical_init
  use gcm_state, only: model_state, state_init, previous, current
  use gcm_dynamics, only: dynamics_workspace, dynamics_workspace_init, semi_implicit, semi_implicit_init, &
                          transform_current, transform_previous, grid_tendencies, spectral_tendencies, &
                          advance, add_humidity_correction
  use gcm_physics_interface, only: physics_scheme, physics_columns, physics_tendencies, &
                                   physics_columns_init, physics_tendencies_init
  use gcm_moisture_fixer, only: fill_negative_humidity
  use gcm_diagnostics, only: failure_report, state_bounds, check_state, dry_air_mass, water_mass, &
                             global_mean, zonal_mean
  use gcm_checkpoint, only: write_checkpoint, read_checkpoint
  implicit none
  private
  public :: climate_model, model_timers, model_init, model_step, model_check, &
            model_get_grid, model_set_grid, model_get_spectral, model_set_spectral, &
            model_set_surface_geopotential, model_write_checkpoint, model_read_checkpoint, &
            model_time_days, model_global_means, model_zonal_means, model_reset_timers, model_grid

  type :: model_timers
    !! Wall-clock seconds spent in the parts of `model_step`.
    real(wp) :: transforms = 0.0_wp
      !! Legendre and Fourier transforms (including those for the physics state)
    real(wp) :: grid = 0.0_wp
      !! grid-point dynamics, fixers and the crash check
    real(wp) :: physics = 0.0_wp
      !! the physics scheme itself
    real(wp) :: spectral = 0.0_wp
      !! spectral operators, semi-implicit solve, diffusion, filter
    integer(int64) :: steps = 0
  end type model_timers

  type :: climate_model
    logical :: initialized = .false.
    type(model_config) :: config
    type(spectral_transform) :: tr
    type(sigma_levels) :: vert
    type(semi_implicit) :: si
    type(model_state) :: state
      !! the prognostic state: all a restart needs
    type(dynamics_workspace) :: work
    type(physics_columns) :: columns
    type(physics_tendencies) :: phys_tend
    type(state_bounds) :: bounds
    type(failure_report) :: failure
      !! the last failed check (status gcm_ok while the run is healthy)
    real(wp) :: humidity_filled = 0.0_wp
      !! water moved by the humidity filler in the last step [Pa kg/kg]
    type(model_timers) :: timers
    real(wp), allocatable :: ps(:, :)
      !! surface pressure of time level n [Pa] (nlon, nlat), work
    real(wp), allocatable :: q_work(:, :, :), q_delta(:, :, :)
    real(wp), allocatable :: column_area(:)
      !! fraction of the globe of each column (ncol)
  end type climate_model

contains

  subroutine model_init(model, config, status, message)
    !! Set up a model from a configuration. The state starts at rest,
    !! isothermal at 288 K, with ps = 1000 hPa, no humidity and no orography.
    type(climate_model), intent(out) :: model
    type(model_config), intent(in) :: config
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), allocatable :: zero(:, :, :), t(:, :, :), ps(:, :)
    model%config = config
    call gcm_config_resolve(model%config, status, message)
    if (status /= gcm_ok) return
    associate (c => model%config)
      call transform_init(model%tr, c%truncation, c%nlon, c%nlat)
      call vertical_init(model%vert, c%sigma_half, c%t_ref)
      call semi_implicit_init(model%si, model%tr, model%vert, c%dt, c%t_ref, c%diffusion_order, &
                              c%diffusion_time)
      call state_init(model%state, c%nlev, model%tr%nspec)
      call dynamics_workspace_init(model%work, model%tr, c%nlev, c%humidity)
      call physics_columns_init(model%columns, model%tr%grid%lat, model%tr%grid%lon, model%vert%full, &
                                model%vert%half)
      call physics_tendencies_init(model%phys_tend, c%nlev, model%columns%ncol)
      model%bounds = state_bounds(c%t_min, c%t_max, c%wind_max, c%ps_min, c%ps_max)
      allocate (model%ps(c%nlon, c%nlat), model%q_work(c%nlev, c%nlon, c%nlat), &
                model%q_delta(c%nlev, c%nlon, c%nlat), model%column_area(c%nlon * c%nlat))
      model%column_area = reshape(spread(0.5_wp * model%tr%grid%weight / real(c%nlon, wp), 1, c%nlon), &
                                  [c%nlon * c%nlat])
      model%initialized = .true.
      allocate (zero(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat))
      zero = 0.0_wp
      t = 288.0_wp
      ps = 1.0e5_wp
      call model_set_grid(model, zero, zero, t, zero, ps, status, message)
    end associate
  end subroutine model_init

  subroutine model_step(model, nsteps, status, message, physics)
    !! Advance nsteps time steps. A failing state stops the run before it is
    !! stepped: status gcm_err_nonfinite or gcm_err_unphysical, the report in
    !! model%failure, the state left at the failing time level.
    type(climate_model), intent(inout) :: model
    integer, intent(in) :: nsteps
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    class(physics_scheme), intent(inout), optional :: physics
    integer :: istep
    integer(int64) :: t0, t1, t2, rate

    status = gcm_err_state
    if (.not. model%initialized) then
      message = 'model_step: model not initialised'
      return
    end if
    call system_clock(count_rate=rate)
    do istep = 1, nsteps
      call system_clock(t0)
      call transform_current(model%tr, model%state, model%work)
      call system_clock(t1)
      model%timers%transforms = model%timers%transforms + real(t1 - t0, wp) / real(rate, wp)

      ! 2. crash check of level n
      model%ps = exp(model%work%grid_in(model%work%i_lnps, :, :))
      call check_current(model)
      if (model%failure%status /= gcm_ok) then
        status = model%failure%status
        message = model%failure%message
        return
      end if
      ! 3. fixers
      if (model%config%humidity .and. model%config%humidity_fixer) call fix_humidity(model)
      if (model%config%mass_fixer) call fix_mass(model)
      call system_clock(t2)
      model%timers%grid = model%timers%grid + real(t2 - t1, wp) / real(rate, wp)

      ! 4-5. physics and grid-point dynamics
      if (present(physics)) then
        call physics_columns_from_state(model)
        call system_clock(t0)
        model%timers%transforms = model%timers%transforms + real(t0 - t2, wp) / real(rate, wp)
        call zero_tendencies(model%phys_tend)
        call physics%compute(model%columns, model%phys_tend, status, message)
        call system_clock(t2)
        model%timers%physics = model%timers%physics + real(t2 - t0, wp) / real(rate, wp)
        if (status /= gcm_ok) then
          message = 'physics: '//trim(message)
          status = gcm_err_physics
          return
        end if
        call grid_tendencies(model%tr, model%vert, model%config%t_ref, model%work, model%phys_tend, &
                             model%columns%ps)
      else
        call grid_tendencies(model%tr, model%vert, model%config%t_ref, model%work)
      end if
      call system_clock(t0)
      model%timers%grid = model%timers%grid + real(t0 - t2, wp) / real(rate, wp)

      ! 6-7. back to spectral space and step
      call spectral_tendencies(model%tr, model%state, model%work)
      call system_clock(t1)
      model%timers%transforms = model%timers%transforms + real(t1 - t0, wp) / real(rate, wp)
      call advance(model%tr, model%vert, model%si, model%config%dt, model%config%robert_coefficient, &
                   model%config%williams_alpha, model%config%diffuse_humidity, model%work, model%state)
      call system_clock(t2)
      model%timers%spectral = model%timers%spectral + real(t2 - t1, wp) / real(rate, wp)
      model%timers%steps = model%timers%steps + 1
    end do
    status = gcm_ok
    message = ''
  end subroutine model_step

  subroutine check_current(model)
    !! The crash check on work%grid_in (time level n) and model%ps.
    type(climate_model), intent(inout) :: model
    integer :: nl
    nl = model%config%nlev
    associate (w => model%work, g => model%work%grid_in, tr => model%tr)
      if (w%humidity) then
        call check_state(model%bounds, g(w%i_u + 1:w%i_u + nl, :, :), g(w%i_v + 1:w%i_v + nl, :, :), &
                         g(w%i_t + 1:w%i_t + nl, :, :), model%ps, tr%grid%coslat, tr%grid%lat, tr%grid%lon, &
                         model%vert%full, model%state%step, model%config%dt, model%failure, &
                         g(w%i_q + 1:w%i_q + nl, :, :))
      else
        call check_state(model%bounds, g(w%i_u + 1:w%i_u + nl, :, :), g(w%i_v + 1:w%i_v + nl, :, :), &
                         g(w%i_t + 1:w%i_t + nl, :, :), model%ps, tr%grid%coslat, tr%grid%lat, tr%grid%lon, &
                         model%vert%full, model%state%step, model%config%dt, model%failure)
      end if
    end associate
  end subroutine check_current

  subroutine fix_humidity(model)
    !! Fill negative grid humidity of level n and feed the change back into
    !! its spectral coefficients.
    type(climate_model), intent(inout) :: model
    integer :: nl
    nl = model%config%nlev
    associate (q => model%work%grid_in(model%work%i_q + 1:model%work%i_q + nl, :, :))
      if (all(q >= 0.0_wp)) then
        model%humidity_filled = 0.0_wp
        return
      end if
      model%q_work = q
      call fill_negative_humidity(nl, size(model%column_area), model%q_work, model%ps, &
                                  model%vert%dsigma, model%column_area, model%humidity_filled)
      model%q_delta = model%q_work - q
      q = model%q_work
    end associate
    call add_humidity_correction(model%tr, model%q_delta, model%state)
  end subroutine fix_humidity

  subroutine fix_mass(model)
    !! Restore the global dry-air mass of level n by a uniform factor on ps:
    !! ln ps changes by a constant, which only touches its (0,0) coefficient.
    type(climate_model), intent(inout) :: model
    real(wp) :: dry, shift
    integer :: nl
    nl = model%config%nlev
    if (model%work%humidity) then
      dry = dry_air_mass(model%ps, model%work%grid_in(model%work%i_q + 1:model%work%i_q + nl, :, :), &
                         model%vert%dsigma, model%tr%grid%weight)
    else
      dry = global_mean(model%ps, model%tr%grid%weight)
    end if
    if (model%state%dry_mass_target <= 0.0_wp) then
      model%state%dry_mass_target = dry
      return
    end if
    shift = log(model%state%dry_mass_target / dry)
    ! a constant c has the coefficient c * sqrt(2) on P_00 = 1/sqrt(2)
    model%state%lnps(1, current) = model%state%lnps(1, current) + cmplx(shift * sqrt(2.0_wp), 0.0_wp, wp)
    model%work%grid_in(model%work%i_lnps, :, :) = model%work%grid_in(model%work%i_lnps, :, :) + shift
    model%ps = model%ps * exp(shift)
  end subroutine fix_mass

  subroutine physics_columns_from_state(model)
    !! Columns of time level n-1 (n on a forward step) for the physics.
    type(climate_model), intent(inout) :: model
    integer :: nl, i, j, c
    real(wp) :: moved
    nl = model%config%nlev
    associate (col => model%columns, tr => model%tr, w => model%work, gp => model%work%grid_phys, &
               gi => model%work%grid_in)
      if (model%state%leapfrog_started) then
        call transform_previous(tr, model%state, w, previous)
        do j = 1, tr%nlat
          do i = 1, tr%nlon
            c = i + (j - 1) * tr%nlon
            col%u(:, c) = gp(1:nl, i, j) / tr%grid%coslat(j)
            col%v(:, c) = gp(nl + 1:2 * nl, i, j) / tr%grid%coslat(j)
            col%t(:, c) = gp(2 * nl + 1:3 * nl, i, j)
            if (w%humidity) col%q(:, c) = gp(3 * nl + 1:4 * nl, i, j)
            col%ps(c) = exp(gp(w%nphys, i, j))
          end do
        end do
        col%dt = 2.0_wp * model%config%dt
        col%step = model%state%step - 1
      else
        do j = 1, tr%nlat
          do i = 1, tr%nlon
            c = i + (j - 1) * tr%nlon
            col%u(:, c) = gi(w%i_u + 1:w%i_u + nl, i, j) / tr%grid%coslat(j)
            col%v(:, c) = gi(w%i_v + 1:w%i_v + nl, i, j) / tr%grid%coslat(j)
            col%t(:, c) = gi(w%i_t + 1:w%i_t + nl, i, j)
            if (w%humidity) col%q(:, c) = gi(w%i_q + 1:w%i_q + nl, i, j)
            col%ps(c) = model%ps(i, j)
          end do
        end do
        col%dt = model%config%dt
        col%step = model%state%step
      end if
      if (.not. w%humidity) col%q = 0.0_wp
      col%time_seconds = real(col%step, wp) * model%config%dt
      if (any(col%q < 0.0_wp)) then
        call fill_negative_humidity(nl, col%ncol, col%q, col%ps, model%vert%dsigma, &
                                    model%column_area, moved)
      end if
    end associate
  end subroutine physics_columns_from_state

  subroutine zero_tendencies(tend)
    type(physics_tendencies), intent(inout) :: tend
    tend%dudt = 0.0_wp
    tend%dvdt = 0.0_wp
    tend%dtdt = 0.0_wp
    tend%dqdt = 0.0_wp
    tend%dpsdt = 0.0_wp
  end subroutine zero_tendencies

  subroutine model_check(model, status, message)
    !! The crash check of the current state (time level n) without stepping;
    !! the report goes to model%failure.
    type(climate_model), intent(inout) :: model
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. model%initialized) then
      status = gcm_err_state
      message = 'model_check: model not initialised'
      return
    end if
    call transform_current(model%tr, model%state, model%work)
    model%ps = exp(model%work%grid_in(model%work%i_lnps, :, :))
    call check_current(model)
    status = model%failure%status
    message = model%failure%message
  end subroutine model_check

  subroutine model_get_grid(model, u, v, t, q, ps, status, message)
    !! Grid-point state of time level n: u, v [m s-1], t [K], q [kg kg-1]
    !! (nlev, nlon, nlat) and ps [Pa] (nlon, nlat). q is shown as the model
    !! uses it, after filling of negative values.
    type(climate_model), intent(inout) :: model
    real(wp), intent(out) :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp) :: lnps(1, size(ps, 1), size(ps, 2)), moved
    if (.not. shapes_ok(model, u, v, t, q, ps, 'model_get_grid', status, message)) return
    call uv_grid(model%tr, model%state%vor(:, :, current), model%state%div(:, :, current), u, v)
    call spec_to_grid(model%tr, model%state%tmp(:, :, current), t)
    if (model%config%humidity) then
      call spec_to_grid(model%tr, model%state%hum(:, :, current), q)
    else
      q = 0.0_wp
    end if
    call spec_to_grid(model%tr, reshape(model%state%lnps(:, current), [1, model%tr%nspec]), lnps)
    ps = exp(lnps(1, :, :))
    if (model%config%humidity_fixer .and. any(q < 0.0_wp)) then
      call fill_negative_humidity(size(q, 1), size(model%column_area), q, ps, model%vert%dsigma, &
                                  model%column_area, moved)
    end if
    status = gcm_ok
    message = ''
  end subroutine model_get_grid

  subroutine model_set_grid(model, u, v, t, q, ps, status, message)
    !! Set both time levels from grid-point fields (projected onto the
    !! truncation); the next step is a forward step and the dry-air mass of
    !! this state becomes the mass fixer's target. The step counter is kept.
    type(climate_model), intent(inout) :: model
    real(wp), intent(in) :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), allocatable :: a(:, :, :), b(:, :, :), lnps(:, :, :), qg(:, :, :), psg(:, :)
    complex(wp), allocatable :: lnps_spec(:, :)
    integer :: j
    if (.not. shapes_ok(model, u, v, t, q, ps, 'model_set_grid', status, message)) return
    if (any(ps <= 0.0_wp)) then
      status = gcm_err_state
      message = 'model_set_grid: surface pressure must be positive'
      return
    end if
    allocate (a, mold=u)
    allocate (b, mold=v)
    do j = 1, model%tr%nlat
      a(:, :, j) = u(:, :, j) * model%tr%grid%coslat(j)
      b(:, :, j) = v(:, :, j) * model%tr%grid%coslat(j)
    end do
    associate (s => model%state)
      call vector_divcurl(model%tr, a, b, s%div(:, :, current), s%vor(:, :, current))
      call grid_to_spec(model%tr, t, s%tmp(:, :, current))
      if (model%config%humidity) then
        call grid_to_spec(model%tr, q, s%hum(:, :, current))
      else
        s%hum(:, :, current) = (0.0_wp, 0.0_wp)
      end if
      allocate (lnps(1, size(ps, 1), size(ps, 2)), lnps_spec(1, model%tr%nspec))
      lnps(1, :, :) = log(ps)
      call grid_to_spec(model%tr, lnps, lnps_spec)
      s%lnps(:, current) = lnps_spec(1, :)
      call copy_to_previous(s)
      ! target of the mass fixer: the dry mass of the projected state
      allocate (qg, mold=q)
      allocate (psg, mold=ps)
      call spec_to_grid(model%tr, s%hum(:, :, current), qg)
      call spec_to_grid(model%tr, lnps_spec, lnps)
      psg = exp(lnps(1, :, :))
      s%dry_mass_target = dry_air_mass(psg, qg, model%vert%dsigma, model%tr%grid%weight)
    end associate
    status = gcm_ok
    message = ''
  end subroutine model_set_grid

  subroutine copy_to_previous(s)
    type(model_state), intent(inout) :: s
    s%vor(:, :, previous) = s%vor(:, :, current)
    s%div(:, :, previous) = s%div(:, :, current)
    s%tmp(:, :, previous) = s%tmp(:, :, current)
    s%hum(:, :, previous) = s%hum(:, :, current)
    s%lnps(:, previous) = s%lnps(:, current)
    s%leapfrog_started = .false.
  end subroutine copy_to_previous

  logical function shapes_ok(model, u, v, t, q, ps, caller, status, message)
    type(climate_model), intent(in) :: model
    real(wp), intent(in) :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    character(len=*), intent(in) :: caller
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    integer :: expected(3)
    character(len=80) :: buf
    shapes_ok = .false.
    status = gcm_err_state
    if (.not. model%initialized) then
      message = caller//': model not initialised'
      return
    end if
    expected = [model%config%nlev, model%config%nlon, model%config%nlat]
    if (any(shape(u) /= expected) .or. any(shape(v) /= expected) .or. any(shape(t) /= expected) .or. &
        any(shape(q) /= expected) .or. any(shape(ps) /= expected(2:3))) then
      write (buf, '(a,i0,a,i0,a,i0,a)') '(', expected(1), ', ', expected(2), ', ', expected(3), ')'
      message = caller//': u, v, t, q must have shape (nlev, nlon, nlat) = '//trim(buf)// &
                ' and ps (nlon, nlat)'
      return
    end if
    shapes_ok = .true.
    status = gcm_ok
    message = ''
  end function shapes_ok

  subroutine model_get_spectral(model, vor, div, tmp, hum, lnps, step, leapfrog_started, &
                                dry_mass_target, status, message)
    !! The full prognostic state: (nlev, nspec, 2) and (nspec, 2) arrays with
    !! index 1 = time level n-1, 2 = n, the step counter, the leapfrog flag
    !! and the mass fixer's target [Pa].
    type(climate_model), intent(in) :: model
    complex(wp), intent(out) :: vor(:, :, :), div(:, :, :), tmp(:, :, :), hum(:, :, :), lnps(:, :)
    integer(int64), intent(out) :: step
    logical, intent(out) :: leapfrog_started
    real(wp), intent(out) :: dry_mass_target
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. spectral_shapes_ok(model, shape(vor), shape(div), shape(tmp), shape(hum), shape(lnps), &
                                 'model_get_spectral', status, message)) return
    vor = model%state%vor
    div = model%state%div
    tmp = model%state%tmp
    hum = model%state%hum
    lnps = model%state%lnps
    step = model%state%step
    leapfrog_started = model%state%leapfrog_started
    dry_mass_target = model%state%dry_mass_target
  end subroutine model_get_spectral

  subroutine model_set_spectral(model, vor, div, tmp, hum, lnps, step, leapfrog_started, &
                                dry_mass_target, status, message)
    !! Inverse of `model_get_spectral`: continuing from the values set is
    !! bit-identical to continuing the run they were taken from.
    type(climate_model), intent(inout) :: model
    complex(wp), intent(in) :: vor(:, :, :), div(:, :, :), tmp(:, :, :), hum(:, :, :), lnps(:, :)
    integer(int64), intent(in) :: step
    logical, intent(in) :: leapfrog_started
    real(wp), intent(in) :: dry_mass_target
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. spectral_shapes_ok(model, shape(vor), shape(div), shape(tmp), shape(hum), shape(lnps), &
                                 'model_set_spectral', status, message)) return
    model%state%vor = vor
    model%state%div = div
    model%state%tmp = tmp
    model%state%hum = hum
    model%state%lnps = lnps
    model%state%step = step
    model%state%leapfrog_started = leapfrog_started
    model%state%dry_mass_target = dry_mass_target
  end subroutine model_set_spectral

  logical function spectral_shapes_ok(model, s1, s2, s3, s4, s5, caller, status, message)
    type(climate_model), intent(in) :: model
    integer, intent(in) :: s1(3), s2(3), s3(3), s4(3), s5(2)
    character(len=*), intent(in) :: caller
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    integer :: e3(3)
    character(len=80) :: buf
    spectral_shapes_ok = .false.
    status = gcm_err_state
    if (.not. model%initialized) then
      message = caller//': model not initialised'
      return
    end if
    e3 = [model%config%nlev, model%tr%nspec, 2]
    if (any(s1 /= e3) .or. any(s2 /= e3) .or. any(s3 /= e3) .or. any(s4 /= e3) .or. any(s5 /= e3(2:3))) then
      write (buf, '(a,i0,a,i0,a)') '(', e3(1), ', ', e3(2), ', 2)'
      message = caller//': spectral fields must have shape (nlev, nspec, 2) = '//trim(buf)// &
                ' and lnps (nspec, 2)'
      return
    end if
    spectral_shapes_ok = .true.
    status = gcm_ok
    message = ''
  end function spectral_shapes_ok

  subroutine model_set_surface_geopotential(model, phis, status, message)
    !! Orography as surface geopotential [m2 s-2] on the grid (nlon, nlat),
    !! projected onto the truncation.
    type(climate_model), intent(inout) :: model
    real(wp), intent(in) :: phis(:, :)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp) :: g(1, size(phis, 1), size(phis, 2))
    complex(wp) :: s(1, model%tr%nspec)
    status = gcm_err_state
    if (.not. model%initialized) then
      message = 'model_set_surface_geopotential: model not initialised'
      return
    end if
    if (size(phis, 1) /= model%config%nlon .or. size(phis, 2) /= model%config%nlat) then
      message = 'model_set_surface_geopotential: phis must have shape (nlon, nlat)'
      return
    end if
    g(1, :, :) = phis
    call grid_to_spec(model%tr, g, s)
    model%state%phis = s(1, :)
    status = gcm_ok
    message = ''
  end subroutine model_set_surface_geopotential

  subroutine model_write_checkpoint(model, path, status, message)
    !! Raw binary checkpoint of the full state (see gcm_checkpoint).
    type(climate_model), intent(in) :: model
    character(len=*), intent(in) :: path
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. model%initialized) then
      status = gcm_err_state
      message = 'model_write_checkpoint: model not initialised'
      return
    end if
    call write_checkpoint(path, model%config, model%state, status, message)
  end subroutine model_write_checkpoint

  subroutine model_read_checkpoint(model, path, status, message)
    !! Replace the state of an initialised model with a checkpoint's.
    type(climate_model), intent(inout) :: model
    character(len=*), intent(in) :: path
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. model%initialized) then
      status = gcm_err_state
      message = 'model_read_checkpoint: model not initialised'
      return
    end if
    call read_checkpoint(path, model%config, model%state, status, message)
  end subroutine model_read_checkpoint

  subroutine model_grid(model, lat, lon, weight, sigma, sigma_half, status, message)
    !! Coordinates: Gaussian latitudes [rad] south to north and their weights
    !! (sum 2) (nlat), longitudes [rad] from 0 (nlon), full-level sigma (nlev)
    !! and half-level sigma from 0 to 1 (nlev+1).
    type(climate_model), intent(in) :: model
    real(wp), intent(out) :: lat(:), lon(:), weight(:), sigma(:), sigma_half(:)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    status = gcm_err_state
    if (.not. model%initialized) then
      message = 'model_grid: model not initialised'
      return
    end if
    if (size(lat) /= model%config%nlat .or. size(weight) /= model%config%nlat .or. &
        size(lon) /= model%config%nlon .or. size(sigma) /= model%config%nlev .or. &
        size(sigma_half) /= model%config%nlev + 1) then
      message = 'model_grid: outputs must have sizes nlat, nlon, nlat, nlev, nlev+1'
      return
    end if
    lat = model%tr%grid%lat
    lon = model%tr%grid%lon
    weight = model%tr%grid%weight
    sigma = model%vert%full
    sigma_half = model%vert%half
    status = gcm_ok
    message = ''
  end subroutine model_grid

  pure real(wp) function model_time_days(model)
    !! Model time of time level n [days].
    type(climate_model), intent(in) :: model
    model_time_days = real(model%state%step, wp) * model%config%dt / 86400.0_wp
  end function model_time_days

  subroutine model_global_means(model, ps_mean, dry_mass, water, status, message)
    !! Global means of time level n: surface pressure, dry-air surface
    !! pressure ps (1 - sum q dsigma), and water ps sum q dsigma [Pa].
    type(climate_model), intent(inout) :: model
    real(wp), intent(out) :: ps_mean, dry_mass, water
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    associate (c => model%config)
      allocate (u(c%nlev, c%nlon, c%nlat), v(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), &
                q(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat))
    end associate
    call model_get_grid(model, u, v, t, q, ps, status, message)
    if (status /= gcm_ok) return
    ps_mean = global_mean(ps, model%tr%grid%weight)
    dry_mass = dry_air_mass(ps, q, model%vert%dsigma, model%tr%grid%weight)
    water = water_mass(ps, q, model%vert%dsigma, model%tr%grid%weight)
  end subroutine model_global_means

  subroutine model_zonal_means(model, u_zm, v_zm, t_zm, q_zm, ps_zm, status, message)
    !! Zonal means of time level n: (nlev, nlat) and ps (nlat).
    type(climate_model), intent(inout) :: model
    real(wp), intent(out) :: u_zm(:, :), v_zm(:, :), t_zm(:, :), q_zm(:, :), ps_zm(:)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    real(wp) :: p3(1, model%config%nlat)
    associate (c => model%config)
      allocate (u(c%nlev, c%nlon, c%nlat), v(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), &
                q(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat))
      if (any(shape(u_zm) /= [c%nlev, c%nlat]) .or. any(shape(v_zm) /= [c%nlev, c%nlat]) .or. &
          any(shape(t_zm) /= [c%nlev, c%nlat]) .or. any(shape(q_zm) /= [c%nlev, c%nlat]) .or. &
          size(ps_zm) /= c%nlat) then
        status = gcm_err_state
        message = 'model_zonal_means: outputs must have shape (nlev, nlat) and (nlat)'
        return
      end if
    end associate
    call model_get_grid(model, u, v, t, q, ps, status, message)
    if (status /= gcm_ok) return
    u_zm = zonal_mean(u)
    v_zm = zonal_mean(v)
    t_zm = zonal_mean(t)
    q_zm = zonal_mean(q)
    p3 = zonal_mean(reshape(ps, [1, size(ps, 1), size(ps, 2)]))
    ps_zm = p3(1, :)
  end subroutine model_zonal_means

  subroutine model_reset_timers(model)
    type(climate_model), intent(inout) :: model
    model%timers = model_timers()
  end subroutine model_reset_timers

end module gcm_model
