program bench_dycore
  !! Cost of the toy GCM's dynamical core per time step and per simulated
  !! day, split into transforms (Legendre + Fourier), grid-point work,
  !! physics and spectral work, for several configurations.
  !!
  !! Usage: bench_dycore [days]   (default 10 simulated days per case)
  !! Wall-clock and CPU time are both printed: on a shared machine the CPU
  !! time is the fairer measure of the code.
  use iso_fortran_env, only: int64, output_unit
  use gcm_constants, only: wp
  use gcm_config, only: model_config
  use gcm_model, only: climate_model, model_init, model_step, model_reset_timers
  use gcm_initial_conditions, only: set_held_suarez_start
  use gcm_held_suarez, only: held_suarez_forcing
  implicit none
  integer :: days, nargs
  character(len=64) :: arg

  days = 10
  nargs = command_argument_count()
  if (nargs >= 1) then
    call get_command_argument(1, arg)
    read (arg, *) days
  end if
  write (output_unit, '(a)') 'case                          ms/step(cpu)  s/day(cpu)  s/day(wall) | wall ms/step: ' // &
    'transforms  grid  physics  spectral'
  call run_case('T21 L10 dry dynamics', 21, 10, 1800.0_wp, .false., .false.)
  call run_case('T21 L10 dry + Held-Suarez', 21, 10, 1800.0_wp, .false., .true.)
  call run_case('T21 L10 moist dynamics', 21, 10, 1800.0_wp, .true., .false.)
  call run_case('T21 L20 dry + Held-Suarez', 21, 20, 1800.0_wp, .false., .true.)
  call run_case('T15 L10 dry + Held-Suarez', 15, 10, 2400.0_wp, .false., .true.)
  call run_case('T10 L10 dry + Held-Suarez', 10, 10, 3600.0_wp, .false., .true.)

contains

  subroutine run_case(name, truncation, nlev, dt, humidity, forcing)
    character(len=*), intent(in) :: name
    integer, intent(in) :: truncation, nlev
    real(wp), intent(in) :: dt
    logical, intent(in) :: humidity, forcing
    type(model_config) :: cfg
    type(climate_model) :: model
    type(held_suarez_forcing) :: hs
    integer :: status, nsteps
    character(len=256) :: message
    integer(int64) :: c0, c1, rate
    real :: cpu0, cpu1
    real(wp) :: wall, cpu
    cfg%truncation = truncation
    cfg%nlev = nlev
    cfg%dt = dt
    cfg%humidity = humidity
    call model_init(model, cfg, status, message)
    call set_held_suarez_start(model, 1, status, message)
    ! spin up a little so that the flow is not at rest
    call model_step(model, nint(20 * 86400.0_wp / dt), status, message, hs)
    nsteps = nint(days * 86400.0_wp / dt)
    call model_reset_timers(model)
    call system_clock(c0, rate)
    call cpu_time(cpu0)
    if (forcing) then
      call model_step(model, nsteps, status, message, hs)
    else
      call model_step(model, nsteps, status, message)
    end if
    call cpu_time(cpu1)
    call system_clock(c1)
    if (status /= 0) write (output_unit, '(a)') 'run failed: '//trim(message)
    wall = real(c1 - c0, wp) / real(rate, wp)
    cpu = real(cpu1 - cpu0, wp)
    write (output_unit, '(a30,f10.3,f12.4,f12.4,a,4f9.3)') name, cpu / nsteps * 1.0e3_wp, cpu / days, &
      wall / days, '   |', [model%timers%transforms, model%timers%grid, model%timers%physics, &
      model%timers%spectral] * 1.0e3_wp / real(nsteps, wp)
    flush (output_unit)
  end subroutine run_case

end program bench_dycore
