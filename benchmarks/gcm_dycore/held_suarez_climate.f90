program held_suarez_climate
  !! Held & Suarez (1994) benchmark of the toy GCM's dynamical core.
  !!
  !! Usage: held_suarez_climate [truncation [nlev [days [spinup_days [out_file]]]]]
  !! (defaults: 21 10 1200 200 held_suarez_T21L10.txt)
  !!
  !! Runs the dry core with Held-Suarez forcing from rest, samples zonal means
  !! of u and T every 6 hours after the spin-up, and writes their time means
  !! as a text table (lat, sigma, u [m/s], T [K]); prints the jet maxima, the
  !! tropical surface easterlies, mass drift and timing.
  use iso_fortran_env, only: int64, output_unit
  use gcm_constants, only: wp, pi
  use gcm_config, only: model_config
  use gcm_model, only: climate_model, model_init, model_step, model_zonal_means, model_global_means, &
                       model_reset_timers
  use gcm_initial_conditions, only: set_held_suarez_start
  use gcm_held_suarez, only: held_suarez_forcing
  implicit none
  type(model_config) :: cfg
  type(climate_model) :: model
  type(held_suarez_forcing) :: hs
  integer :: status, day, sample, nsamples, steps_per_sample, j, k, unit, jn, js, nargs
  integer :: truncation, nlev, days, spinup
  character(len=256) :: message, arg, out_file
  real(wp), allocatable :: u_zm(:, :), v_zm(:, :), t_zm(:, :), q_zm(:, :), ps_zm(:)
  real(wp), allocatable :: u_mean(:, :), t_mean(:, :)
  real(wp) :: ps0, dry0, water, ps1, dry1, umax_n, umax_s, lat_deg
  integer(int64) :: c0, c1, rate
  real :: cpu0, cpu1
  integer :: kn, ks, jmax_n, jmax_s

  truncation = 21; nlev = 10; days = 1200; spinup = 200
  write (out_file, '(a)') ''
  nargs = command_argument_count()
  if (nargs >= 1) then; call get_command_argument(1, arg); read (arg, *) truncation; end if
  if (nargs >= 2) then; call get_command_argument(2, arg); read (arg, *) nlev; end if
  if (nargs >= 3) then; call get_command_argument(3, arg); read (arg, *) days; end if
  if (nargs >= 4) then; call get_command_argument(4, arg); read (arg, *) spinup; end if
  if (nargs >= 5) then
    call get_command_argument(5, out_file)
  else
    write (out_file, '(a,i0,a,i0,a)') 'held_suarez_T', truncation, 'L', nlev, '.txt'
  end if

  cfg%truncation = truncation
  cfg%nlev = nlev
  cfg%humidity = .false.
  cfg%dt = 1800.0_wp * 21.0_wp / real(max(truncation, 21), wp)
  call model_init(model, cfg, status, message)
  if (status /= 0) then
    write (output_unit, '(a)') 'init failed: '//trim(message)
    error stop 1
  end if
  call set_held_suarez_start(model, 1, status, message)
  associate (c => model%config)
    allocate (u_zm(c%nlev, c%nlat), v_zm(c%nlev, c%nlat), t_zm(c%nlev, c%nlat), q_zm(c%nlev, c%nlat), &
              ps_zm(c%nlat), u_mean(c%nlev, c%nlat), t_mean(c%nlev, c%nlat))
    write (output_unit, '(a,i0,a,i0,a,i0,a,i0,a,f6.1,a)') 'Held-Suarez T', c%truncation, ' (', c%nlon, 'x', &
      c%nlat, ') L', c%nlev, ', dt = ', c%dt, ' s'
    steps_per_sample = nint(6.0_wp * 3600.0_wp / c%dt)
  end associate
  call model_global_means(model, ps0, dry0, water, status, message)
  u_mean = 0.0_wp
  t_mean = 0.0_wp
  nsamples = 0
  call model_reset_timers(model)
  call system_clock(c0, rate)
  call cpu_time(cpu0)
  do day = 1, days
    do sample = 1, 4
      call model_step(model, steps_per_sample, status, message, hs)
      if (status /= 0) then
        write (output_unit, '(a,i0,a)') 'run failed on day ', day, ': '//trim(message)
        error stop 1
      end if
      if (day > spinup) then
        call model_zonal_means(model, u_zm, v_zm, t_zm, q_zm, ps_zm, status, message)
        u_mean = u_mean + u_zm
        t_mean = t_mean + t_zm
        nsamples = nsamples + 1
      end if
    end do
    if (mod(day, 100) == 0) then
      call model_zonal_means(model, u_zm, v_zm, t_zm, q_zm, ps_zm, status, message)
      write (output_unit, '(a,i5,a,f7.2,a,f7.2,a,2f8.2)') 'day', day, ': max zonal-mean u', maxval(u_zm), &
        ', min', minval(u_zm), ', T range', minval(t_zm), maxval(t_zm)
      flush (output_unit)
    end if
  end do
  call system_clock(c1)
  call cpu_time(cpu1)
  call model_global_means(model, ps1, dry1, water, status, message)
  u_mean = u_mean / real(max(nsamples, 1), wp)
  t_mean = t_mean / real(max(nsamples, 1), wp)

  associate (c => model%config, lat => model%tr%grid%lat, sig => model%vert%full)
    open (newunit=unit, file=trim(out_file), status='replace', action='write')
    write (unit, '(a,i0,a,i0,a,i0,a,i0,a)') '# Held-Suarez T', c%truncation, 'L', c%nlev, &
      ': time-mean zonal means over days ', spinup + 1, '-', days, ' (6-hourly samples)'
    write (unit, '(a)') '# lat_deg sigma u_m_s T_K'
    do j = 1, c%nlat
      do k = 1, c%nlev
        write (unit, '(f9.3,f9.5,f10.3,f10.3)') lat(j) * 180.0_wp / pi, sig(k), u_mean(k, j), t_mean(k, j)
      end do
    end do
    close (unit)

    ! jets: maximum of the time-mean zonal wind in each hemisphere
    umax_n = -huge(1.0_wp); umax_s = -huge(1.0_wp)
    jmax_n = 0; jmax_s = 0; kn = 0; ks = 0
    do j = 1, c%nlat
      do k = 1, c%nlev
        if (lat(j) > 0.0_wp .and. u_mean(k, j) > umax_n) then
          umax_n = u_mean(k, j); jmax_n = j; kn = k
        end if
        if (lat(j) < 0.0_wp .and. u_mean(k, j) > umax_s) then
          umax_s = u_mean(k, j); jmax_s = j; ks = k
        end if
      end do
    end do
    write (output_unit, '(a)') '--- time mean, days after spin-up ---'
    write (output_unit, '(a,f6.2,a,f6.2,a,f6.0,a)') 'northern jet: ', umax_n, ' m/s at ', &
      lat(jmax_n) * 180.0_wp / pi, ' deg, ~', sig(kn) * 1000.0_wp, ' hPa (sigma level)'
    write (output_unit, '(a,f6.2,a,f6.2,a,f6.0,a)') 'southern jet: ', umax_s, ' m/s at ', &
      lat(jmax_s) * 180.0_wp / pi, ' deg, ~', sig(ks) * 1000.0_wp, ' hPa (sigma level)'
    write (output_unit, '(a)') 'lowest-level zonal-mean u (m/s) by latitude:'
    do j = 1, c%nlat
      lat_deg = lat(j) * 180.0_wp / pi
      write (output_unit, '(f8.2,f8.2)', advance='no') lat_deg, u_mean(c%nlev, j)
      if (mod(j, 4) == 0) write (output_unit, *)
    end do
    jn = minloc(abs(lat), dim=1)
    js = jn
    write (output_unit, '(a,f6.2,a,f6.2,a)') 'surface (lowest level) u at the equator-nearest row: ', &
      u_mean(c%nlev, jn), ' m/s (lat ', lat(jn) * 180.0_wp / pi, ')'
    write (output_unit, '(a,f7.2,a,f7.2,a)') 'temperature: surface equator ', t_mean(c%nlev, jn), &
      ' K, surface pole row ', t_mean(c%nlev, c%nlat), ' K'
  end associate
  write (output_unit, '(a,es10.3,a,es10.3)') 'relative change of global-mean ps over the run: ', &
    ps1 / ps0 - 1.0_wp, ', dry mass: ', dry1 / dry0 - 1.0_wp
  write (output_unit, '(a,f8.1,a,f8.1,a)') 'wall ', real(c1 - c0, wp) / real(rate, wp), ' s, cpu ', &
    cpu1 - cpu0, ' s'
  write (output_unit, '(a,f8.4,a,f8.4,a)') 'cpu per simulated day: ', (cpu1 - cpu0) / days, ' s; wall ', &
    real(c1 - c0, wp) / real(rate, wp) / days, ' s'
  write (output_unit, '(a,4f8.3)') 'wall ms/step: transforms, grid, physics, spectral:', &
    [model%timers%transforms, model%timers%grid, model%timers%physics, model%timers%spectral] &
    * 1.0e3_wp / real(model%timers%steps, wp)
  write (output_unit, '(a,a)') 'zonal means written to ', trim(out_file)
end program held_suarez_climate
