module test_dycore_physics
  !! A test physics scheme: constant heating and surface-pressure source.
  use gcm_constants, only: wp
  use gcm_physics_interface, only: physics_scheme, physics_columns, physics_tendencies
  implicit none
  private
  public :: uniform_heating

  type, extends(physics_scheme) :: uniform_heating
    !! Test physics: constant heating rate and surface-pressure source.
    real(wp) :: heating = 0.0_wp       !! [K s-1]
    real(wp) :: ps_source = 0.0_wp     !! [Pa s-1]
    logical :: fail = .false.
  contains
    procedure :: compute => uniform_heating_compute
  end type uniform_heating

contains

  subroutine uniform_heating_compute(self, columns, tendencies, status, message)
    class(uniform_heating), intent(inout) :: self
    type(physics_columns), intent(in) :: columns
    type(physics_tendencies), intent(inout) :: tendencies
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (self%fail) then
      status = 1
      message = 'test scheme refuses'
      return
    end if
    tendencies%dtdt = self%heating
    tendencies%dpsdt = self%ps_source
    status = 0
    message = ''
    if (columns%ncol < 0) status = 1
  end subroutine uniform_heating_compute

end module test_dycore_physics

program test_dycore
  !! Behaviour of the dynamical core: rest stays rest (flat and with
  !! orography), Rossby-Haurwitz wave 4 propagates stably, dry mass and water
  !! are conserved, humidity stays non-negative, Held-Suarez stays physical,
  !! runs are deterministic and restart bit for bit, failures are reported
  !! (not stopped), the physics hook acts, bad configurations are refused.
  use iso_fortran_env, only: int64
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use gcm_constants, only: wp, pi, earth_radius, earth_omega, rd, seconds_per_day
  use gcm_status, only: gcm_ok, gcm_err_config, gcm_err_nonfinite, gcm_err_unphysical, gcm_err_state, &
                        gcm_err_format, gcm_err_physics
  use gcm_config, only: model_config
  use gcm_model, only: climate_model, model_init, model_step, model_get_grid, model_set_grid, &
                       model_get_spectral, model_set_spectral, model_set_surface_geopotential, &
                       model_write_checkpoint, model_read_checkpoint, model_global_means, &
                       model_zonal_means, model_check
  use gcm_diagnostics, only: failure_report, check_state
  use gcm_initial_conditions, only: set_rest_isothermal, set_held_suarez_start, set_rossby_haurwitz, &
                                    set_jablonowski_williamson
  use gcm_held_suarez, only: held_suarez_forcing
  use test_dycore_physics, only: uniform_heating
  use test_support, only: test_counter, check, report
  implicit none

  type(test_counter) :: tc

  call test_rest_flat()
  call test_rest_orography()
  call test_rossby_haurwitz()
  call test_jablonowski_williamson()
  call test_mass_conservation()
  call test_humidity()
  call test_held_suarez_short()
  call test_determinism_and_restart()
  call test_failure_reports()
  call test_physics_hook()
  call test_config_errors()
  call report(tc)

contains

  subroutine make(model, truncation, nlev, dt, humidity)
    type(climate_model), intent(out) :: model
    integer, intent(in) :: truncation, nlev
    real(wp), intent(in) :: dt
    logical, intent(in) :: humidity
    type(model_config) :: cfg
    integer :: status
    character(len=256) :: message
    cfg%truncation = truncation
    cfg%nlev = nlev
    cfg%dt = dt
    cfg%humidity = humidity
    call model_init(model, cfg, status, message)
    if (status /= gcm_ok) then
      print *, 'init failed: ', trim(message)
      error stop 1
    end if
  end subroutine make

  subroutine grids(model, u, v, t, q, ps)
    type(climate_model), intent(inout) :: model
    real(wp), allocatable, intent(out) :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    integer :: status
    character(len=256) :: message
    associate (c => model%config)
      allocate (u(c%nlev, c%nlon, c%nlat), v(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), &
                q(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat))
    end associate
    call model_get_grid(model, u, v, t, q, ps, status, message)
  end subroutine grids

  subroutine test_rest_flat()
    type(climate_model) :: m
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    integer :: status
    character(len=256) :: message
    call make(m, 15, 10, 2400.0_wp, .true.)
    call set_rest_isothermal(m, 280.0_wp, 1.0e5_wp, status, message)
    call model_step(m, 36 * 5, status, message)
    call check(tc, status == gcm_ok, 'rest (flat): 5 days run without failure')
    call grids(m, u, v, t, q, ps)
    call check(tc, max(maxval(abs(u)), maxval(abs(v))) < 1.0e-9_wp, 'rest (flat): max wind after 5 days [m/s]', &
               max(maxval(abs(u)), maxval(abs(v))), 1.0e-9_wp)
    call check(tc, maxval(abs(t - 280.0_wp)) < 1.0e-9_wp, 'rest (flat): max |T - 280 K| after 5 days', &
               maxval(abs(t - 280.0_wp)), 1.0e-9_wp)
  end subroutine test_rest_flat

  subroutine test_rest_orography()
    !! An isothermal atmosphere at rest over a mountain, with ln ps balancing
    !! the surface geopotential (R T ln ps + Phi_s = const), is a steady state.
    type(climate_model) :: m
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :), phis(:, :)
    integer :: status, i, j
    character(len=256) :: message
    real(wp), parameter :: t0 = 270.0_wp
    real(wp) :: mu, lon
    call make(m, 15, 10, 2400.0_wp, .false.)
    call grids(m, u, v, t, q, ps)
    allocate (phis(m%config%nlon, m%config%nlat))
    do j = 1, m%config%nlat
      do i = 1, m%config%nlon
        mu = m%tr%grid%mu(j)
        lon = m%tr%grid%lon(i)
        ! band-limited "mountain" of about 1.5 km (degree 4)
        phis(i, j) = 9.81_wp * 1500.0_wp * (1.0_wp - mu * mu) * (1.0_wp + cos(2.0_wp * lon)) * 0.5_wp &
                     * (1.0_wp + mu)
      end do
    end do
    call model_set_surface_geopotential(m, phis, status, message)
    u = 0.0_wp
    v = 0.0_wp
    t = t0
    q = 0.0_wp
    ps = 1.0e5_wp * exp(-phis / (rd * t0))
    call model_set_grid(m, u, v, t, q, ps, status, message)
    call model_step(m, 36 * 5, status, message)
    call check(tc, status == gcm_ok, 'rest (orography): 5 days run without failure')
    call grids(m, u, v, t, q, ps)
    call check(tc, max(maxval(abs(u)), maxval(abs(v))) < 1.0e-6_wp, &
               'rest (orography): max wind after 5 days [m/s]', max(maxval(abs(u)), maxval(abs(v))), 1.0e-6_wp)
  end subroutine test_rest_orography

  subroutine test_rossby_haurwitz()
    !! The wave keeps its shape and strength and drifts east at close to the
    !! nondivergent phase speed (R(3+R) w - 2 Omega)/((1+R)(2+R)); divergence
    !! (finite R T0) makes it a little slower. Phase measured in ps at 45 N
    !! from day 1 to day 6, after the initial adjustment.
    type(climate_model) :: m
    type(model_config) :: cfg
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :), ps0(:, :)
    integer :: status, j45
    character(len=256) :: message
    complex(wp) :: c0, c1, c6
    real(wp) :: shift, speed, speed_theory, umax0, w
    cfg%truncation = 21
    cfg%humidity = .false.
    cfg%ps_max = 1.5e5_wp   ! the balanced wave has ps up to 1340 hPa
    call model_init(m, cfg, status, message)
    call set_rossby_haurwitz(m, 300.0_wp, status, message)
    call grids(m, u, v, t, q, ps0)
    umax0 = maxval(u)
    j45 = minloc(abs(m%tr%grid%lat - pi / 4), dim=1)
    c0 = wave4_at(ps0, j45, m%tr%grid%lon)
    call model_step(m, 48, status, message)
    call grids(m, u, v, t, q, ps)
    c1 = wave4_at(ps, j45, m%tr%grid%lon)
    call model_step(m, 48 * 5, status, message)
    call check(tc, status == gcm_ok, 'Rossby-Haurwitz 4: 6 days run without failure')
    call grids(m, u, v, t, q, ps)
    c6 = wave4_at(ps, j45, m%tr%grid%lon)
    ! the wave moves less than 90 degrees (one wavelength) in 5 days
    shift = -atan2(aimag(c6 * conjg(c1)), real(c6 * conjg(c1), wp)) / 4.0_wp * 180.0_wp / pi
    if (shift < 0.0_wp) shift = shift + 90.0_wp
    speed = shift / 5.0_wp
    w = 7.848e-6_wp
    speed_theory = (28.0_wp * w - 2.0_wp * earth_omega) / 30.0_wp * seconds_per_day * 180.0_wp / pi
    call check(tc, abs(speed / speed_theory - 1.0_wp) < 0.1_wp, &
               'Rossby-Haurwitz 4: eastward phase speed [deg/day] within 10% of theory', speed, speed_theory)
    call check(tc, abs(maxval(u) / umax0 - 1.0_wp) < 0.05_wp, 'Rossby-Haurwitz 4: max u after 6 days / initial', &
               maxval(u) / umax0, 1.05_wp)
    call check(tc, abs(abs(c6) / abs(c0) - 1.0_wp) < 0.3_wp, &
               'Rossby-Haurwitz 4: wave-4 ps amplitude after 6 days / initial', abs(c6) / abs(c0), 1.3_wp)
  end subroutine test_rossby_haurwitz

  complex(wp) function wave4_at(p, j, lon)
    !! Zonal wavenumber-4 Fourier coefficient of row j of p(nlon, nlat).
    real(wp), intent(in) :: p(:, :), lon(:)
    integer, intent(in) :: j
    wave4_at = sum(p(:, j) * exp(cmplx(0.0_wp, -4.0_wp, wp) * lon))
  end function wave4_at

  subroutine test_jablonowski_williamson()
    !! The balanced baroclinic jet of Jablonowski & Williamson (2006) over its
    !! orography stays steady: the pressure-gradient and hydrostatic terms are
    !! consistent in a baroclinic state.
    type(climate_model) :: m
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :), u0(:, :, :), t0(:, :, :)
    integer :: status
    character(len=256) :: message
    call make(m, 21, 10, 1800.0_wp, .false.)
    call set_jablonowski_williamson(m, status, message)
    call check(tc, status == gcm_ok, 'Jablonowski-Williamson: initial state set')
    call grids(m, u0, v, t0, q, ps)
    call model_step(m, 48 * 5, status, message)
    call check(tc, status == gcm_ok, 'Jablonowski-Williamson: 5 days run without failure')
    call grids(m, u, v, t, q, ps)
    call check(tc, maxval(abs(u - u0)) < 1.0_wp, 'Jablonowski-Williamson: max |u - u(0)| after 5 days [m/s]', &
               maxval(abs(u - u0)), 1.0_wp)
    call check(tc, maxval(abs(v)) < 0.5_wp, 'Jablonowski-Williamson: max |v| after 5 days [m/s]', &
               maxval(abs(v)), 0.5_wp)
    call check(tc, maxval(abs(ps - 1.0e5_wp)) < 100.0_wp, 'Jablonowski-Williamson: max |ps - 1000 hPa| [Pa]', &
               maxval(abs(ps - 1.0e5_wp)), 100.0_wp)
  end subroutine test_jablonowski_williamson

  subroutine test_mass_conservation()
    !! Without the fixer: the global-mean surface pressure of a Held-Suarez
    !! flow drifts by less than 0.1 % per year; with it, by (almost) nothing.
    type(climate_model) :: m
    type(held_suarez_forcing) :: hs
    type(model_config) :: cfg
    integer :: status
    character(len=256) :: message
    real(wp) :: ps0, ps1, dry, water, per_year, days
    cfg%truncation = 10
    cfg%dt = 3600.0_wp
    cfg%humidity = .false.
    cfg%mass_fixer = .false.
    call model_init(m, cfg, status, message)
    call set_held_suarez_start(m, 3, status, message)
    call model_step(m, 24 * 60, status, message, hs)      ! spin up 60 days
    call model_global_means(m, ps0, dry, water, status, message)
    days = 120.0_wp
    call model_step(m, 24 * nint(days), status, message, hs)
    call check(tc, status == gcm_ok, 'mass: 180-day T10 Held-Suarez run without fixer')
    call model_global_means(m, ps1, dry, water, status, message)
    per_year = abs(ps1 / ps0 - 1.0_wp) * 365.0_wp / days
    call check(tc, per_year < 1.0e-3_wp, 'mass: |global-mean ps drift| per year without fixer', per_year, 1.0e-3_wp)
    m%config%mass_fixer = .true.
    m%state%dry_mass_target = ps1
    call model_step(m, 24 * 30, status, message, hs)
    call model_global_means(m, ps0, dry, water, status, message)
    call check(tc, abs(ps0 / ps1 - 1.0_wp) < 1.0e-8_wp, 'mass: relative drift in 30 days with fixer', &
               abs(ps0 / ps1 - 1.0_wp), 1.0e-8_wp)
  end subroutine test_mass_conservation

  subroutine test_humidity()
    !! Advect a humidity field with sharp edges in a Held-Suarez flow:
    !! q never negative on the grid and global water conserved.
    type(climate_model) :: m
    type(held_suarez_forcing) :: hs
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    integer :: status, i, j, k, day
    character(len=256) :: message
    real(wp) :: ps_mean, dry, w0, w1, qmin, moved_total
    call make(m, 15, 10, 2400.0_wp, .true.)
    call set_held_suarez_start(m, 5, status, message)
    call model_step(m, 36 * 30, status, message, hs)   ! 30 days of spin-up to get eddies
    call grids(m, u, v, t, q, ps)
    ! a blob of 10 g/kg in the lower troposphere, zero elsewhere
    do j = 1, m%config%nlat
      do i = 1, m%config%nlon
        do k = 1, m%config%nlev
          q(k, i, j) = 0.0_wp
          if (abs(m%tr%grid%lat(j)) < 0.5_wp .and. m%vert%full(k) > 0.6_wp .and. &
              m%tr%grid%lon(i) < pi) q(k, i, j) = 0.01_wp
        end do
      end do
    end do
    call model_set_grid(m, u, v, t, q, ps, status, message)
    call model_global_means(m, ps_mean, dry, w0, status, message)
    qmin = huge(1.0_wp)
    moved_total = 0.0_wp
    do day = 1, 10
      call model_step(m, 36, status, message, hs)
      moved_total = moved_total + m%humidity_filled
      qmin = min(qmin, minval(m%work%grid_in(m%work%i_q + 1:m%work%i_q + m%config%nlev, :, :)))
    end do
    call check(tc, status == gcm_ok, 'humidity: 10 days of advection without failure')
    call check(tc, qmin >= 0.0_wp, 'humidity: minimum grid q seen by the dynamics', qmin, 0.0_wp)
    call check(tc, moved_total > 0.0_wp, 'humidity: the filler had negative values to fill [Pa]', moved_total)
    call model_global_means(m, ps_mean, dry, w1, status, message)
    call check(tc, abs(w1 / w0 - 1.0_wp) < 1.0e-4_wp, 'humidity: relative change of global water in 10 days', &
               abs(w1 / w0 - 1.0_wp), 1.0e-4_wp)
  end subroutine test_humidity

  subroutine test_held_suarez_short()
    type(climate_model) :: m
    type(held_suarez_forcing) :: hs
    real(wp), allocatable :: uz(:, :), vz(:, :), tz(:, :), qz(:, :), psz(:)
    integer :: status, nlat
    character(len=256) :: message
    call make(m, 10, 10, 3600.0_wp, .false.)
    call set_held_suarez_start(m, 1, status, message)
    call model_step(m, 24 * 60, status, message, hs)
    call check(tc, status == gcm_ok, 'Held-Suarez T10: 60 days stay physical')
    call model_check(m, status, message)
    call check(tc, status == gcm_ok, 'Held-Suarez T10: final state passes the check')
    nlat = m%config%nlat
    allocate (uz(10, nlat), vz(10, nlat), tz(10, nlat), qz(10, nlat), psz(nlat))
    call model_zonal_means(m, uz, vz, tz, qz, psz, status, message)
    call check(tc, maxval(uz) > 10.0_wp .and. maxval(uz) < 60.0_wp, &
               'Held-Suarez T10: westerly jet forms (max zonal-mean u) [m/s]', maxval(uz))
    call check(tc, tz(10, nlat / 2) - tz(10, nlat) > 20.0_wp, &
               'Held-Suarez T10: surface equator-pole contrast [K]', tz(10, nlat / 2) - tz(10, nlat))
  end subroutine test_held_suarez_short

  subroutine test_determinism_and_restart()
    type(climate_model) :: a, b, c
    type(held_suarez_forcing) :: hs
    integer :: status
    character(len=256) :: message
    character(len=*), parameter :: path = 'test_dycore_checkpoint.bin'
    complex(wp), allocatable :: vor(:, :, :), div(:, :, :), tmp(:, :, :), hum(:, :, :), lnps(:, :)
    integer(int64) :: step
    logical :: started, same
    real(wp) :: target
    call make(a, 10, 10, 3600.0_wp, .true.)
    call make(b, 10, 10, 3600.0_wp, .true.)
    call set_held_suarez_start(a, 7, status, message)
    call model_step(a, 24 * 10, status, message, hs)
    call moisten(a)
    b%state = a%state
    call model_step(a, 48, status, message, hs)
    call model_step(b, 48, status, message, hs)
    call check(tc, same_state(a, b), 'determinism: two identical moist runs agree bit for bit')
    call check(tc, a%humidity_filled > 0.0_wp, 'determinism: the humidity filler was active')
    ! checkpoint a, continue both; the copy restarted from the file must match
    call model_write_checkpoint(a, path, status, message)
    call check(tc, status == gcm_ok, 'restart: checkpoint written')
    call make(c, 10, 10, 3600.0_wp, .true.)
    call model_read_checkpoint(c, path, status, message)
    call check(tc, status == gcm_ok, 'restart: checkpoint read')
    call model_step(a, 30, status, message, hs)
    call model_step(c, 30, status, message, hs)
    call check(tc, same_state(a, c), 'restart: checkpoint restart continues bit for bit')
    ! the same through get/set of the spectral state
    allocate (vor, mold=a%state%vor)
    allocate (div, mold=a%state%div)
    allocate (tmp, mold=a%state%tmp)
    allocate (hum, mold=a%state%hum)
    allocate (lnps, mold=a%state%lnps)
    call model_get_spectral(a, vor, div, tmp, hum, lnps, step, started, target, status, message)
    call model_set_spectral(b, vor, div, tmp, hum, lnps, step, started, target, status, message)
    call model_step(a, 20, status, message, hs)
    call model_step(b, 20, status, message, hs)
    same = same_state(a, b)
    call check(tc, same, 'restart: get/set of the spectral state continues bit for bit')
    ! a checkpoint of another resolution is refused with a message
    call make(c, 15, 10, 3600.0_wp, .true.)
    call model_read_checkpoint(c, path, status, message)
    call check(tc, status == gcm_err_format .and. index(message, 'resolution') > 0, &
               'restart: mismatched checkpoint refused ('//trim(message)//')')
    call model_read_checkpoint(c, 'no/such/file.bin', status, message)
    call check(tc, status /= gcm_ok, 'restart: missing checkpoint reported')
    open (newunit=status, file=path)
    close (status, status='delete')
  end subroutine test_determinism_and_restart

  subroutine moisten(m)
    !! Replace humidity by a sharp-edged blob (so that the filler works).
    type(climate_model), intent(inout) :: m
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    integer :: status
    character(len=256) :: message
    call grids(m, u, v, t, q, ps)
    q = 0.0_wp
    q(6:, 1:m%config%nlon / 2, m%config%nlat / 4:3 * m%config%nlat / 4) = 0.015_wp
    call model_set_grid(m, u, v, t, q, ps, status, message)
    call model_step(m, 2, status, message)
  end subroutine moisten

  logical function same_state(x, y)
    type(climate_model), intent(in) :: x, y
    same_state = all(x%state%vor == y%state%vor) .and. all(x%state%div == y%state%div) .and. &
                 all(x%state%tmp == y%state%tmp) .and. all(x%state%hum == y%state%hum) .and. &
                 all(x%state%lnps == y%state%lnps) .and. x%state%step == y%state%step
  end function same_state

  subroutine test_failure_reports()
    type(climate_model) :: m
    type(model_config) :: cfg
    type(failure_report) :: rep
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    integer :: status, j
    character(len=256) :: message
    call make(m, 10, 10, 3600.0_wp, .true.)
    call set_rest_isothermal(m, 280.0_wp, 1.0e5_wp, status, message)
    call model_step(m, 3, status, message)
    ! a NaN in one temperature coefficient of level 4 reaches every grid point
    m%state%tmp(4, 7, 2) = ieee_value(1.0_wp, ieee_quiet_nan)
    call model_step(m, 5, status, message)
    call check(tc, status == gcm_err_nonfinite, 'failure: NaN reported as non-finite ('//trim(message)//')')
    call check(tc, m%failure%step == 3 .and. m%failure%level == 4 .and. m%failure%variable == 'temperature' &
               .and. m%failure%lat_index == 1 .and. m%failure%lon_index == 1, &
               'failure: report names step 3, level 4, temperature, first grid point')
    call check(tc, m%state%step == 3, 'failure: the failing state is kept, not stepped')
    ! level 5 warmed by 100 K: unphysical temperature at level 5
    call set_rest_isothermal(m, 280.0_wp, 1.0e5_wp, status, message)
    m%state%tmp(5, 1, :) = m%state%tmp(5, 1, :) + 100.0_wp * sqrt(2.0_wp)
    call model_step(m, 2, status, message)
    call check(tc, status == gcm_err_unphysical .and. m%failure%variable == 'temperature' .and. &
               m%failure%level == 5 .and. m%failure%step == 0, &
               'failure: 380 K reported as unphysical temperature ('//trim(message)//')')
    ! solid-body rotation of 300 m/s at the equator: too fast where |lat| < 33.6 deg
    call set_rest_isothermal(m, 280.0_wp, 1.0e5_wp, status, message)
    call grids(m, u, v, t, q, ps)
    do j = 1, m%config%nlat
      u(:, :, j) = 300.0_wp * m%tr%grid%coslat(j)
    end do
    cfg = m%config
    call model_set_grid(m, u, v, t, q, ps, status, message)
    call model_check(m, status, message)
    call check(tc, status == gcm_err_unphysical .and. m%failure%variable == 'wind_speed' .and. &
               abs(m%failure%lat_deg) < 33.6_wp .and. m%failure%value > 250.0_wp, &
               'failure: wind above 250 m/s reported ('//trim(message)//')')
    ! low surface pressure
    call set_rest_isothermal(m, 280.0_wp, 3.0e4_wp, status, message)
    call model_step(m, 1, status, message)
    call check(tc, status == gcm_err_unphysical .and. m%failure%variable == 'surface_pressure' .and. &
               m%failure%level == 0, 'failure: ps below 400 hPa reported ('//trim(message)//')')
    ! the check on a grid with a single hot point names its place
    call set_rest_isothermal(m, 280.0_wp, 1.0e5_wp, status, message)
    call grids(m, u, v, t, q, ps)
    t(6, 10, 12) = 351.0_wp
    call check_state(m%bounds, u, v, t, ps, [(1.0_wp, j = 1, m%config%nlat)], m%tr%grid%lat, m%tr%grid%lon, &
                     m%vert%full, 42_int64, 1800.0_wp, rep, q)
    call check(tc, rep%status == gcm_err_unphysical .and. rep%level == 6 .and. rep%lon_index == 10 .and. &
               rep%lat_index == 12 .and. abs(rep%lat_deg - m%tr%grid%lat(12) * 180 / pi) < 1e-9_wp .and. &
               abs(rep%lon_deg - 101.25_wp) < 1e-9_wp .and. abs(rep%time_days - 42 * 1800.0_wp / 86400) < 1e-12_wp, &
               'failure: check_state locates a single hot point ('//trim(rep%message)//')')
  end subroutine test_failure_reports

  subroutine test_physics_hook()
    type(climate_model) :: m
    type(uniform_heating) :: heat
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    real(wp) :: ps_mean, dry, water, mean_t
    integer :: status
    character(len=256) :: message
    call make(m, 10, 10, 3600.0_wp, .false.)
    m%config%mass_fixer = .false.
    call set_rest_isothermal(m, 250.0_wp, 1.0e5_wp, status, message)
    heat%heating = 2.0_wp / seconds_per_day
    heat%ps_source = 100.0_wp / seconds_per_day
    call model_step(m, 48, status, message, heat)
    call grids(m, u, v, t, q, ps)
    mean_t = sum(t) / size(t)
    call check(tc, abs(mean_t - 254.0_wp) < 0.02_wp, 'physics hook: 2 K/day heating for 2 days -> mean T [K]', &
               mean_t, 254.0_wp)
    call model_global_means(m, ps_mean, dry, water, status, message)
    call check(tc, abs(ps_mean - 1.0e5_wp - 200.0_wp) < 1.0_wp, &
               'physics hook: 100 Pa/day mass source for 2 days -> global ps [Pa]', ps_mean, 1.002e5_wp)
    heat%fail = .true.
    call model_step(m, 1, status, message, heat)
    call check(tc, status == gcm_err_physics .and. index(message, 'refuses') > 0, &
               'physics hook: a failing scheme stops the step with its message ('//trim(message)//')')
  end subroutine test_physics_hook

  subroutine test_config_errors()
    type(climate_model) :: m
    type(model_config) :: cfg
    integer :: status
    character(len=256) :: message
    real(wp) :: a1(2, 2, 2), a2(2, 2, 2), a3(2, 2, 2), a4(2, 2, 2), b(2, 2)
    cfg%truncation = 0
    call model_init(m, cfg, status, message)
    call check(tc, status == gcm_err_config, 'config: truncation 0 refused ('//trim(message)//')')
    cfg = model_config()
    cfg%nlon = 50
    call model_init(m, cfg, status, message)
    call check(tc, status == gcm_err_config, 'config: nlon not a multiple of 4 refused ('//trim(message)//')')
    cfg = model_config()
    cfg%nlev = 3
    cfg%sigma_half = [0.0_wp, 0.5_wp, 0.4_wp, 1.0_wp]
    call model_init(m, cfg, status, message)
    call check(tc, status == gcm_err_config, 'config: decreasing sigma refused ('//trim(message)//')')
    cfg = model_config()
    cfg%truncation = 10
    call model_init(m, cfg, status, message)
    call model_get_grid(m, a1, a2, a3, a4, b, status, message)
    call check(tc, status == gcm_err_state, 'config: wrong array shapes refused ('//trim(message)//')')
  end subroutine test_config_errors

end program test_dycore
