program test_aquaplanet_run
  !! A 30-day moist aquaplanet run at T10 L10 with the reference physics
  !! (cheapened: 4 subcolumns x 2 sub-steps) from the moist resting start:
  !! it must stay physical, rain at a plausible global rate, put the rain
  !! maximum in the tropics, and close the global water budget
  !! (storage change = evaporation - precipitation).
  use iso_fortran_env, only: int64, output_unit
  use test_support, only: test_counter, check, report
  use gcm_dycore, only: wp, model_config, climate_model, model_init, model_step, model_global_means, gcm_ok, &
                        model_get_grid, model_time_days
  use gcm_constants, only: gravity, pi
  use gcm_aquaplanet, only: aquaplanet_config, aquaplanet_physics, aquaplanet_physics_setup, set_aquaplanet_start
  implicit none

  integer, parameter :: days = 30, spinup = 10
  type(test_counter) :: tc
  type(model_config) :: cfg
  type(climate_model) :: model
  type(aquaplanet_physics) :: phys
  type(aquaplanet_config) :: config
  integer :: status, step, steps_per_day, nsteps, nsamples, j
  character(len=256) :: message
  real(wp) :: ps_mean, dry0, dry1, water0, water1, precip, evap, precip_sum, evap_sum
  real(wp) :: target0, storage_rate, budget_error, tropics, extratropics, w_tropics, w_extra
  real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :), precip_zonal(:)
  real :: cpu0, cpu1

  cfg%truncation = 10
  cfg%nlev = 10
  call model_init(model, cfg, status, message)
  call set_aquaplanet_start(model, 1, status, message)
  config%physics%n_subcolumns = 4
  config%physics%n_substeps = 2
  config%seed = 7
  call aquaplanet_physics_setup(phys, model, config, status, message)
  if (status /= gcm_ok) error stop 'setup failed'
  target0 = model%state%dry_mass_target
  steps_per_day = nint(86400.0_wp / model%config%dt)
  associate (c => model%config)
    allocate (u(c%nlev, c%nlon, c%nlat), v(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), &
              q(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat), precip_zonal(c%nlat))
  end associate
  precip_zonal = 0.0_wp
  precip_sum = 0.0_wp
  evap_sum = 0.0_wp
  nsamples = 0
  call cpu_time(cpu0)
  nsteps = days * steps_per_day
  do step = 1, nsteps
    if (step == spinup * steps_per_day + 1) call model_global_means(model, ps_mean, dry0, water0, status, message)
    call model_step(model, 1, status, message, phys)
    if (status /= gcm_ok) exit
    if (step > spinup * steps_per_day) then
      ! the physics of this step saw the state of step-1 (leapfrog n-1):
      ! over the steps spinup*spd+1 .. nsteps it covers the same interval
      ! as the storage change, shifted by one step
      precip = sum(phys%diag%emulated%precip * model%column_area)
      evap = sum(phys%diag%evap * model%column_area)
      precip_sum = precip_sum + precip
      evap_sum = evap_sum + evap
      precip_zonal = precip_zonal + sum(reshape(phys%diag%emulated%precip, [model%config%nlon, model%config%nlat]), dim=1) &
                     / model%config%nlon
      nsamples = nsamples + 1
    end if
  end do
  call cpu_time(cpu1)
  call check(tc, status == gcm_ok, 'aquaplanet T10 reference: 30 days without failure (' // trim(message) // ')')
  if (status /= gcm_ok) then
    write (output_unit, '(a,f8.3)') '  stopped at day ', model_time_days(model)
    call report(tc)
  end if
  call model_global_means(model, ps_mean, dry1, water1, status, message)
  call model_get_grid(model, u, v, t, q, ps, status, message)
  precip = precip_sum / nsamples
  evap = evap_sum / nsamples
  precip_zonal = precip_zonal / nsamples
  storage_rate = (water1 - water0) / gravity / (real(nsamples, wp) * model%config%dt)
  budget_error = abs(storage_rate - (evap - precip)) / precip

  write (output_unit, '(a,f6.1,a)') '  cost: ', cpu1 - cpu0, ' s CPU'
  call check(tc, minval(t) > 170.0_wp .and. maxval(t) < 320.0_wp, 'temperature stays within 170-320 K', &
             minval(t), 170.0_wp)
  call check(tc, maxval(sqrt(u**2 + v**2)) < 120.0_wp, 'wind speed stays below 120 m/s', &
             maxval(sqrt(u**2 + v**2)), 120.0_wp)
  call check(tc, precip * 86400.0_wp > 1.5_wp .and. precip * 86400.0_wp < 6.0_wp, &
             'global-mean precipitation days 11-30 in 1.5-6 mm/day', precip * 86400.0_wp, 6.0_wp)
  ! dps/dt = 0: the mass fixer restores the dry-air mass at the start of each
  ! step, so a state just stepped differs from the target by one step's
  ! evaporation minus precipitation (~1e-6 of the mass)
  call check(tc, model%state%dry_mass_target == target0 .and. abs(dry1 / target0 - 1.0_wp) < 1e-5_wp, &
             'dry-air mass kept by the fixer (relative difference after a step)', dry1 / target0 - 1.0_wp, 1e-5_wp)
  call check(tc, budget_error < 0.02_wp, 'water budget: |dW/dt - (E - P)| / P', budget_error, 0.02_wp)
  ! the rain is tropical: mean over |lat| < 20 deg at least twice that poleward of 40 deg
  tropics = 0.0_wp; extratropics = 0.0_wp; w_tropics = 0.0_wp; w_extra = 0.0_wp
  do j = 1, model%config%nlat
    associate (lat => model%tr%grid%lat(j) * 180.0_wp / pi, w => model%tr%grid%weight(j))
      if (abs(lat) < 20.0_wp) then
        tropics = tropics + w * precip_zonal(j); w_tropics = w_tropics + w
      else if (abs(lat) > 40.0_wp) then
        extratropics = extratropics + w * precip_zonal(j); w_extra = w_extra + w
      end if
    end associate
  end do
  call check(tc, tropics / w_tropics > 2.0_wp * extratropics / w_extra, &
             'tropical (|lat| < 20) precipitation > 2x extratropical (|lat| > 40) [ratio]', &
             (tropics / w_tropics) / (extratropics / w_extra), 2.0_wp)
  write (output_unit, '(a,f7.3,a,f7.3,a)') '  global mean: precip ', precip * 86400.0_wp, ' mm/day, evap ', &
    evap * 86400.0_wp, ' mm/day'
  call report(tc)
end program test_aquaplanet_run
