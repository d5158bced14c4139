program aquaplanet_climate
  !! Moist aquaplanet climate and cost of the toy GCM with the reference
  !! physics or an emulator (network or ensemble) in its place.
  !!
  !! Usage: aquaplanet_climate [key=value ...]
  !!   truncation=21 nlev=10 days=360 spinup=60 physics=reference|emulator
  !!   emulator=PATH[,PATH...] (several: an ensemble)  real64=0|1
  !!   limit_humidity=0|1 limit_precipitation=0|1 seed=1
  !!   start=FILE (continue from a checkpoint; days counts from its time)
  !!   checkpoint=FILE (written every 30 days and at the end)  out=PREFIX
  !!
  !! Prints progress every 10 days and a summary: global-mean precipitation
  !! and evaporation, the global water budget over the last 360 days (or
  !! after the spin-up if shorter), ITCZ (latitude of the zonal-mean
  !! precipitation maximum and the precipitation centroid within 20 degrees),
  !! the jets (maxima of the time-mean zonal-mean u), and the cost: seconds
  !! of CPU per simulated day, the physics step alone (model timers, wall).
  !! Writes PREFIX_precip.txt (lat, zonal-mean precipitation and evaporation)
  !! and PREFIX_zonal.txt (lat, sigma, u, T, q) of the time means after the spin-up.
  use iso_fortran_env, only: int64, output_unit
  use gcm_dycore, only: wp, model_config, climate_model, model_init, model_step, model_global_means, gcm_ok, &
                        model_zonal_means, model_time_days, model_reset_timers, model_write_checkpoint, &
                        model_read_checkpoint, gcm_status_name
  use gcm_constants, only: gravity, pi
  use gcm_emulator, only: emulator_options
  use gcm_aquaplanet, only: aquaplanet_config, aquaplanet_physics, aquaplanet_physics_setup, &
                            aquaplanet_emulator_setup, set_aquaplanet_start
  implicit none

  type(model_config) :: cfg
  type(climate_model) :: model
  type(aquaplanet_physics) :: phys
  type(aquaplanet_config) :: config
  type(emulator_options) :: options
  integer :: truncation = 21, nlev = 10, days = 360, spinup = 60, status, step, steps_per_day, nsteps
  integer :: steps_per_sample, day0, budget_start_step, nbudget, nmean, nzonal, j, k, unit, i, npaths
  integer(int64) :: seed = 1, clock0, clock1, rate
  character(len=4096) :: physics_mode = 'reference', emulator_list = '', start_file = '', checkpoint_file = ''
  character(len=4096) :: out_prefix = 'aquaplanet', arg, key, value
  character(len=4096), allocatable :: paths(:)
  character(len=256) :: message
  real(wp) :: ps_mean, dry, water_start, water_end, p_step, e_step, p_budget, e_budget, p_mean, e_mean
  real(wp) :: storage, lat_deg, centroid, weight_sum
  real(wp), allocatable :: u_zm(:, :), v_zm(:, :), t_zm(:, :), q_zm(:, :), ps_zm(:)
  real(wp), allocatable :: u_mean(:, :), t_mean(:, :), q_mean(:, :), precip_zm(:), evap_zm(:), lat(:)
  real :: cpu0, cpu1
  logical :: failed

  do i = 1, command_argument_count()
    call get_command_argument(i, arg)
    k = index(arg, '=')
    if (k == 0) error stop 'arguments are key=value'
    key = arg(:k - 1)
    value = arg(k + 1:)
    select case (trim(key))
    case ('truncation'); read (value, *) truncation
    case ('nlev'); read (value, *) nlev
    case ('days'); read (value, *) days
    case ('spinup'); read (value, *) spinup
    case ('physics'); physics_mode = value
    case ('emulator'); emulator_list = value
    case ('real64'); options%use_real64 = trim(value) == '1'
    case ('limit_humidity'); options%limit_humidity = trim(value) == '1'
    case ('limit_precipitation'); options%limit_precipitation = trim(value) == '1'
    case ('seed'); read (value, *) seed
    case ('start'); start_file = value
    case ('checkpoint'); checkpoint_file = value
    case ('out'); out_prefix = value
    case default
      write (output_unit, '(a)') 'unknown argument: '//trim(key)
      error stop 2
    end select
  end do

  cfg%truncation = truncation
  cfg%nlev = nlev
  call model_init(model, cfg, status, message)
  call stop_on_error('model_init')
  if (len_trim(start_file) > 0) then
    call model_read_checkpoint(model, trim(start_file), status, message)
    call stop_on_error('model_read_checkpoint')
  else
    call set_aquaplanet_start(model, 1, status, message)
    call stop_on_error('set_aquaplanet_start')
  end if
  config%seed = seed
  config%cloud_diagnostics = .false.
  if (trim(physics_mode) == 'reference') then
    call aquaplanet_physics_setup(phys, model, config, status, message)
  else
    npaths = 1 + count_char(trim(emulator_list), ',')
    allocate (paths(npaths))
    call split(trim(emulator_list), paths)
    call aquaplanet_emulator_setup(phys, model, config, paths, options, status, message)
  end if
  call stop_on_error('physics setup')

  associate (c => model%config)
    allocate (u_zm(c%nlev, c%nlat), v_zm(c%nlev, c%nlat), t_zm(c%nlev, c%nlat), q_zm(c%nlev, c%nlat), &
              ps_zm(c%nlat), u_mean(c%nlev, c%nlat), t_mean(c%nlev, c%nlat), q_mean(c%nlev, c%nlat), &
              precip_zm(c%nlat), evap_zm(c%nlat), lat(c%nlat))
    lat = model%tr%grid%lat * 180.0_wp / pi
    steps_per_day = nint(86400.0_wp / c%dt)
    steps_per_sample = steps_per_day / 4
    write (output_unit, '(a,i0,a,i0,a,i0,a,i0,a,f6.0,a,a,a,f8.2)') 'aquaplanet T', c%truncation, ' (', c%nlon, &
      'x', c%nlat, ') L', c%nlev, ', dt ', c%dt, ' s, physics ', trim(phys%mode), ', start day ', &
      model_time_days(model)
  end associate
  nsteps = days * steps_per_day
  budget_start_step = max(spinup, days - 360) * steps_per_day
  day0 = nint(model_time_days(model))
  u_mean = 0; t_mean = 0; q_mean = 0; precip_zm = 0; evap_zm = 0
  p_mean = 0; e_mean = 0; p_budget = 0; e_budget = 0
  nmean = 0; nzonal = 0; nbudget = 0
  water_start = 0
  failed = .false.
  call model_reset_timers(model)
  call system_clock(clock0, rate)
  call cpu_time(cpu0)
  do step = 1, nsteps
    if (step == budget_start_step + 1) call model_global_means(model, ps_mean, dry, water_start, status, message)
    call model_step(model, 1, status, message, phys)
    if (status /= gcm_ok) then
      failed = .true.
      write (output_unit, '(a,f9.3,a)') 'run stopped on day ', model_time_days(model), ': '//trim(message)
      if (phys%failure%status /= gcm_ok) write (output_unit, '(a)') '  physics failure: '//trim(phys%failure%message)
      if (model%failure%status /= gcm_ok) write (output_unit, '(a)') '  state failure: '//trim(model%failure%message)
      exit
    end if
    p_step = sum(phys%diag%emulated%precip * model%column_area)
    e_step = sum(phys%diag%evap * model%column_area)
    if (step > spinup * steps_per_day) then
      p_mean = p_mean + p_step
      e_mean = e_mean + e_step
      nmean = nmean + 1
      precip_zm = precip_zm + row_mean(phys%diag%emulated%precip)
      evap_zm = evap_zm + row_mean(phys%diag%evap)
      if (mod(step, steps_per_sample) == 0) then
        call model_zonal_means(model, u_zm, v_zm, t_zm, q_zm, ps_zm, status, message)
        u_mean = u_mean + u_zm
        t_mean = t_mean + t_zm
        q_mean = q_mean + q_zm
        nzonal = nzonal + 1
      end if
    end if
    if (step > budget_start_step) then
      p_budget = p_budget + p_step
      e_budget = e_budget + e_step
      nbudget = nbudget + 1
    end if
    if (mod(step, 10 * steps_per_day) == 0) call progress()
    if (len_trim(checkpoint_file) > 0 .and. mod(step, 30 * steps_per_day) == 0) then
      call model_write_checkpoint(model, trim(checkpoint_file), status, message)
    end if
  end do
  call system_clock(clock1)
  call cpu_time(cpu1)
  if (len_trim(checkpoint_file) > 0 .and. .not. failed) then
    call model_write_checkpoint(model, trim(checkpoint_file), status, message)
  end if
  call summary()

contains

  subroutine stop_on_error(what)
    character(len=*), intent(in) :: what
    if (status /= gcm_ok) then
      write (output_unit, '(a)') what//' failed ('//gcm_status_name(status)//'): '//trim(message)
      error stop 1
    end if
  end subroutine stop_on_error

  integer function count_char(text, ch)
    character(len=*), intent(in) :: text, ch
    integer :: n
    count_char = 0
    do n = 1, len(text)
      if (text(n:n) == ch) count_char = count_char + 1
    end do
  end function count_char

  subroutine split(text, parts)
    character(len=*), intent(in) :: text
    character(len=*), intent(out) :: parts(:)
    integer :: p, n, start
    start = 1
    n = 0
    do p = 1, len(text) + 1
      if (p > len(text)) then
        n = n + 1; parts(n) = text(start:)
      else if (text(p:p) == ',') then
        n = n + 1; parts(n) = text(start:p - 1); start = p + 1
      end if
    end do
  end subroutine split

  function row_mean(field) result(zm)
    !! zonal mean of a per-column field (ncol) -> (nlat)
    real(wp), intent(in) :: field(:)
    real(wp) :: zm(model%config%nlat)
    zm = sum(reshape(field, [model%config%nlon, model%config%nlat]), dim=1) / model%config%nlon
  end function row_mean

  subroutine progress()
    call model_zonal_means(model, u_zm, v_zm, t_zm, q_zm, ps_zm, status, message)
    write (output_unit, '(a,f7.1,a,f6.3,a,f6.3,a,f6.1,a,f6.1,a,f6.1,a,f6.1,a,f7.2)') 'day', model_time_days(model), &
      ': P', p_step * 86400, ' E', e_step * 86400, ' mm/d; zonal-mean u', minval(u_zm), '..', maxval(u_zm), &
      ' m/s; T', minval(t_zm), '..', maxval(t_zm), ' K; s/day', &
      (model%timers%transforms + model%timers%grid + model%timers%physics + model%timers%spectral) / &
      max(1.0_wp, real(model%timers%steps, wp) / steps_per_day)
    flush (output_unit)
  end subroutine progress

  subroutine summary()
    real(wp) :: umax(2), per_step, days_run, wall
    integer :: jmax(2), kmax(2), h, jp
    days_run = real(model%timers%steps, wp) / steps_per_day
    wall = real(clock1 - clock0, wp) / real(rate, wp)
    per_step = 1.0e3_wp / max(1.0_wp, real(model%timers%steps, wp))
    write (output_unit, '(a)') '--- summary'
    write (output_unit, '(a,f9.2,a,f9.2)') 'simulated days ', days_run, ', model day ', model_time_days(model)
    write (output_unit, '(a,f8.4,a,f8.4,a,f8.3,a)') 'cost: ', (cpu1 - cpu0) / days_run, ' s CPU per day, ', &
      wall / days_run, ' s wall per day (', wall, ' s)'
    write (output_unit, '(a,4f9.3)') 'ms per step: transforms, grid, physics, spectral', &
      model%timers%transforms * per_step, model%timers%grid * per_step, model%timers%physics * per_step, &
      model%timers%spectral * per_step
    write (output_unit, '(a,f8.4)') 'physics alone, s per simulated day (wall): ', model%timers%physics / days_run
    if (nmean == 0) return
    write (output_unit, '(a,i0,a,f7.3,a,f7.3,a)') 'after the spin-up (', nmean / steps_per_day, &
      ' days): global mean precip ', p_mean / nmean * 86400, ' mm/day, evap ', e_mean / nmean * 86400, ' mm/day'
    if (nbudget > 0 .and. .not. failed) then
      call model_global_means(model, ps_mean, dry, water_end, status, message)
      storage = (water_end - water_start) / gravity / (nbudget * model%config%dt)
      write (output_unit, '(a,i0,a,f8.4,a,f8.4,a,f8.5,a,f9.3,a,f9.4,a)') 'water budget over the last ', &
        nbudget / steps_per_day, ' days: P ', p_budget / nbudget * 86400, ' E ', e_budget / nbudget * 86400, &
        ' dW/dt ', storage * 86400, ' mm/day; (E-P)/P = ', (e_budget - p_budget) / p_budget * 100, &
        ' %, residual (dW/dt - (E-P))/P = ', (storage - (e_budget - p_budget) / nbudget) / (p_budget / nbudget) * 100, &
        ' %'
    end if
    precip_zm = precip_zm / nmean
    evap_zm = evap_zm / nmean
    jp = maxloc(precip_zm, 1)
    centroid = 0; weight_sum = 0
    do j = 1, size(lat)
      if (abs(lat(j)) < 20.0_wp) then
        centroid = centroid + lat(j) * precip_zm(j) * model%tr%grid%weight(j)
        weight_sum = weight_sum + precip_zm(j) * model%tr%grid%weight(j)
      end if
    end do
    write (output_unit, '(a,f7.2,a,f7.3,a,f6.2,a)') 'ITCZ: precipitation maximum at ', lat(jp), ' deg (', &
      precip_zm(jp) * 86400, ' mm/day); centroid within 20 deg ', centroid / weight_sum, ' deg'
    write (output_unit, '(a)') 'zonal-mean precipitation [mm/day] by latitude:'
    write (output_unit, '(8(f7.1,f6.2))') (lat(j), precip_zm(j) * 86400, j = 1, size(lat))
    if (nzonal > 0) then
      u_mean = u_mean / nzonal; t_mean = t_mean / nzonal; q_mean = q_mean / nzonal
      umax = -huge(1.0_wp); jmax = 0; kmax = 0
      do j = 1, size(lat)
        h = merge(1, 2, lat(j) > 0)
        do k = 1, model%config%nlev
          if (u_mean(k, j) > umax(h)) then
            umax(h) = u_mean(k, j); jmax(h) = j; kmax(h) = k
          end if
        end do
      end do
      write (output_unit, '(a,f6.1,a,f6.1,a,f6.3,a,f6.1,a,f6.1,a,f6.3)') 'jets: N ', umax(1), ' m/s at ', &
        lat(jmax(1)), ' deg, sigma ', model%vert%full(kmax(1)), '; S ', umax(2), ' m/s at ', lat(jmax(2)), &
        ' deg, sigma ', model%vert%full(kmax(2))
      write (output_unit, '(a)') 'lowest-level zonal-mean u [m/s] by latitude:'
      write (output_unit, '(8(f7.1,f6.1))') (lat(j), u_mean(model%config%nlev, j), j = 1, size(lat))
      open (newunit=unit, file=trim(out_prefix)//'_zonal.txt', status='replace', action='write')
      write (unit, '(a)') '# time-mean zonal means after the spin-up: lat_deg sigma u_m_s T_K q_g_kg'
      do j = 1, size(lat)
        do k = 1, model%config%nlev
          write (unit, '(f9.3,f9.5,f10.3,f10.3,f10.4)') lat(j), model%vert%full(k), u_mean(k, j), t_mean(k, j), &
            1e3_wp * q_mean(k, j)
        end do
      end do
      close (unit)
    end if
    open (newunit=unit, file=trim(out_prefix)//'_precip.txt', status='replace', action='write')
    write (unit, '(a)') '# time-mean zonal-mean precipitation and evaporation after the spin-up: lat_deg P E [mm/day]'
    do j = 1, size(lat)
      write (unit, '(f9.3,2f10.4)') lat(j), precip_zm(j) * 86400, evap_zm(j) * 86400
    end do
    close (unit)
  end subroutine summary

end program aquaplanet_climate
