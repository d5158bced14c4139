program scm_rce
  !! Single-column model: radiative-convective equilibrium of a tropical column.
  !!
  !! One column on the equator (perpetual equinox, diurnal cycle) over a fixed
  !! 28 degC sea, 1000 hPa surface pressure, a fixed 5 m/s wind for the
  !! surface fluxes, and a prescribed large-scale cooling standing in for the
  !! adiabatic cooling of large-scale ascent: a first-baroclinic-mode profile,
  !! zero at the surface and at sigma = 0.2, peaking (default 0.1 K/day) at
  !! sigma = 0.6. The full physics driver (surface fluxes,
  !! boundary layer, reference emulated physics) is stepped forward from an
  !! isothermal-ish dry-ish start for 100 days; the last 30 days are averaged.
  !!
  !! Usage: scm_rce [days] [cooling_K_per_day] [nlev] [dt_seconds]
  use iso_fortran_env, only: real64, int64, output_unit
  use gcm_constants, only: pi, gravity, cp, latent_heat_vap, seconds_per_day, t_freeze
  use gcm_status, only: gcm_ok
  use physics_configuration, only: physics_config
  use moist_thermodynamics, only: saturation_humidity
  use emulated_physics, only: reference_emulated_physics
  use physics_driver, only: physics_diagnostics, physics_driver_step
  use physics_test_support, only: check, check_summary, uniform_sigma, column_mass
  implicit none

  integer :: nlev, nsteps, n_average, istep, k, stat
  real(real64) :: days, cooling, dt, sst
  real(real64), allocatable :: sigma(:), sigma_half(:), t(:, :), q(:, :), u(:, :), v(:, :)
  real(real64), allocatable :: dtdt(:, :), dqdt(:, :), dudt(:, :), dvdt(:, :), q_ls(:), mass(:)
  real(real64), allocatable :: t_mean(:), rh_mean(:), cf_mean(:), qrad_mean(:)
  real(real64) :: ps(1), lat(1), lon(1), precip, olr, fsnt, fsns, flns, lh, sh, cwv, pconv, rad_conv, ls_col
  real(real64) :: imbalance, water_imbalance, solin, enthalpy_start, enthalpy_trend
  integer :: ids(1)
  character(len=32) :: arg
  character(len=:), allocatable :: msg
  type(physics_config) :: config
  type(reference_emulated_physics) :: reference
  type(physics_diagnostics) :: diag

  days = 100
  cooling = 0.1_real64
  nlev = 20
  dt = 1200
  if (command_argument_count() >= 1) then
    call get_command_argument(1, arg); read(arg, *) days
  end if
  if (command_argument_count() >= 2) then
    call get_command_argument(2, arg); read(arg, *) cooling
  end if
  if (command_argument_count() >= 3) then
    call get_command_argument(3, arg); read(arg, *) nlev
  end if
  if (command_argument_count() >= 4) then
    call get_command_argument(4, arg); read(arg, *) dt
  end if

  allocate(sigma(nlev), sigma_half(0:nlev), t(nlev, 1), q(nlev, 1), u(nlev, 1), v(nlev, 1))
  allocate(dtdt(nlev, 1), dqdt(nlev, 1), dudt(nlev, 1), dvdt(nlev, 1), q_ls(nlev), mass(nlev))
  allocate(t_mean(nlev), rh_mean(nlev), cf_mean(nlev), qrad_mean(nlev))
  call uniform_sigma(nlev, sigma, sigma_half)

  config = physics_config()
  reference%keep_diagnostics = .true.
  sst = t_freeze + 28
  ps = 1.0e5_real64
  lat = 0
  lon = 0
  ids = 1
  mass = column_mass(nlev, ps(1), sigma_half)
  do k = 1, nlev
    t(k, 1) = max(200.0_real64, (sst - 2) * sigma(k)**0.19_real64)
    q(k, 1) = 0.5_real64 * saturation_humidity(t(k, 1), sigma(k) * ps(1))
    ! First-baroclinic-mode shape: zero at the surface and at sigma = 0.2, peak at sigma = 0.6.
    q_ls(k) = -cooling / seconds_per_day * sin(pi * max(0.0_real64, (1 - sigma(k)) / 0.8_real64))
    if (sigma(k) < 0.2_real64) q_ls(k) = 0
  end do
  u = 5
  v = 0

  nsteps = nint(days * seconds_per_day / dt)
  n_average = min(nsteps, nint(30 * seconds_per_day / dt))
  precip = 0; olr = 0; fsnt = 0; fsns = 0; flns = 0; lh = 0; sh = 0; cwv = 0; pconv = 0; solin = 0
  t_mean = 0; rh_mean = 0; cf_mean = 0; qrad_mean = 0; rad_conv = 0
  do istep = 1, nsteps
    call physics_driver_step(config, reference, 1, nlev, dt, (istep - 1) * dt, int(istep, int64), 2024_int64, ids, &
                            lat, lon, sigma, sigma_half, t, q, u, v, ps, dtdt, dqdt, dudt, dvdt, diag, stat, msg, &
                            sst=[sst])
    if (stat /= gcm_ok) then
      write(output_unit, '(a,i0,a,a)') 'scm_rce: physics failed at step ', istep, ': ', msg
      error stop 1
    end if
    if (istep == nsteps - n_average + 1) enthalpy_start = sum(cp * t(:, 1) * mass)
    if (istep > nsteps - n_average) then
      precip = precip + diag%emulated%precip(1) / n_average
      pconv = pconv + reference%precip_convective(1) / n_average
      olr = olr + diag%emulated%flnt(1) / n_average
      fsnt = fsnt + diag%emulated%fsnt(1) / n_average
      fsns = fsns + diag%emulated%fsns(1) / n_average
      flns = flns + diag%emulated%flns(1) / n_average
      lh = lh + diag%lhflx(1) / n_average
      sh = sh + diag%shflx(1) / n_average
      solin = solin + diag%solin(1) / n_average
      cwv = cwv + sum(q(:, 1) * mass) / n_average
      t_mean = t_mean + t(:, 1) / n_average
      rh_mean = rh_mean + q(:, 1) / saturation_humidity(t(:, 1), sigma * ps(1)) / n_average
      cf_mean = cf_mean + reference%cloud_fraction(:, 1) / n_average
      qrad_mean = qrad_mean + reference%radiative_heating(:, 1) / n_average
    end if
    t = t + dt * dtdt
    t(:, 1) = t(:, 1) + dt * q_ls
    q = q + dt * dqdt
  end do
  enthalpy_trend = (sum(cp * t(:, 1) * mass) - enthalpy_start) / (n_average * dt)
  ls_col = sum(cp * q_ls * mass)
  rad_conv = fsnt - fsns - olr + flns
  imbalance = sh + latent_heat_vap * precip + rad_conv + ls_col
  water_imbalance = lh / latent_heat_vap - precip

  write(output_unit, '(a)') '--- single-column RCE: equator, SST 28 degC, perpetual equinox, diurnal cycle'
  write(output_unit, '(a,f6.1,a,f5.2,a,i0,a,f6.0,a)') '    ', days, ' days, large-scale cooling ', cooling, &
    ' K/day, ', nlev, ' levels, dt = ', dt, ' s; means over the last 30 days'
  write(output_unit, '(a,f7.2,a,f5.2,a)') 'precipitation        ', precip * seconds_per_day, ' mm/day (convective ', &
    pconv * seconds_per_day, ')'
  write(output_unit, '(a,f7.1,a)') 'OLR (FLNT)           ', olr, ' W/m2'
  write(output_unit, '(a,f7.1,a,f7.1,a)') 'FSNT                 ', fsnt, ' W/m2   (insolation ', solin, ')'
  write(output_unit, '(a,f7.1,a)') 'FSNS                 ', fsns, ' W/m2'
  write(output_unit, '(a,f7.1,a)') 'FLNS                 ', flns, ' W/m2'
  write(output_unit, '(a,f7.1,a,f7.1,a)') 'LH, SH               ', lh, ', ', sh, ' W/m2'
  write(output_unit, '(a,f7.1,a)') 'radiative cooling    ', -rad_conv, ' W/m2 (column)'
  write(output_unit, '(a,f7.1,a)') 'large-scale cooling  ', -ls_col, ' W/m2 (column)'
  write(output_unit, '(a,f7.2,a)') 'energy imbalance     ', imbalance, ' W/m2 (SH + LP + R + LS)'
  write(output_unit, '(a,f7.2,a)') 'enthalpy trend       ', enthalpy_trend, ' W/m2 (d/dt sum cp T dp/g: the drift)'
  write(output_unit, '(a,f7.2,a)') 'water imbalance      ', water_imbalance * seconds_per_day, ' mm/day (E - P)'
  write(output_unit, '(a,f7.1,a)') 'column water vapour  ', cwv, ' kg/m2'
  write(output_unit, '(a,f7.2,a)') 'SST - T_air(lowest)  ', diag%sst(1) - t_mean(nlev) * sigma(nlev)**(-0.2857_real64), ' K'
  write(output_unit, '(a)') '   sigma    T [K]   RH [%]  cloud [%]  Q_rad [K/day]'
  do k = 1, nlev
    write(output_unit, '(f8.3,f9.1,f9.1,f10.1,f13.2)') sigma(k), t_mean(k), 100 * rh_mean(k), 100 * cf_mean(k), &
      qrad_mean(k) * seconds_per_day
  end do

  call check(precip * seconds_per_day > 2 .and. precip * seconds_per_day < 5, 'scm: precipitation 2-5 mm/day')
  ! Clear-sky OLR over a 28 degC ocean is observed near 280-300 W/m2 (the window
  ! band lets part of the surface emission out; a purely gray column gives ~245).
  call check(olr > 240 .and. olr < 300, 'scm: OLR 240-300 W/m2')
  call check(abs(imbalance) < 5, 'scm: atmospheric energy balance within 5 W/m2 over the last 30 days')
  call check(abs(imbalance - enthalpy_trend) < 1e-6_real64 * abs(latent_heat_vap * precip), &
             'scm: the enthalpy trend equals the flux imbalance (budget closes over 30 days)')
  call check(abs(water_imbalance) * seconds_per_day < 0.2_real64, 'scm: E = P within 0.2 mm/day')
  call check(t_mean(nlev) > 290 .and. t_mean(nlev) < 300, 'scm: near-surface air 290-300 K')
  call check(minval(t_mean) > 190 .and. minval(t_mean) < 235 .and. sigma(minloc(t_mean, 1)) < 0.3_real64, &
             'scm: tropopause (coldest level) above sigma 0.3 at 190-235 K (gray radiation: no cold TTL)')
  call check(cwv > 30 .and. cwv < 70, 'scm: column water vapour 30-70 kg/m2')
  call check_summary('scm_rce')
end program scm_rce
