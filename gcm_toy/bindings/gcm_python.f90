! Flat entry points of the toy GCM for the Python extension
! `gcm_toy._gcm_core` (wrapped by f2py; used through gcm_toy/model.py).
!
! Models live in the handle table of gcm_python_handles.f90. Every routine
! takes a handle and returns a status (0 = success, the codes of gcm_status)
! and, where it can fail, a one-line message. Grid arrays are (nlev, nlon, nlat)
! and (nlon, nlat) in Fortran order: C-ordered (nlat, nlon, nlev) NumPy arrays.
! Logical options cross as integers (0 = false).

subroutine gcm_create(truncation, nlon, nlat, nlev, n_sigma_half, sigma_half, dt, t_ref, diffusion_order, &
                      diffusion_time, diffuse_humidity, robert_coefficient, williams_alpha, humidity, &
                      mass_fixer, humidity_fixer, t_min, t_max, wind_max, ps_min, ps_max, physics, &
                      physics_seed, emulator_paths, use_real64, limit_humidity, limit_precipitation, &
                      guard, guard_margin, guard_factor, network_weight, ramp, ramp_start_step, ramp_steps, &
                      network_start_step, reference_outputs, finetune, finetune_every_steps, finetune_columns, &
                      finetune_steps, finetune_learning_rate, finetune_seed, finetune_start_step, &
                      keep_training_batch, physics_settings, handle, stat, msg)
  !! A new model from configuration values (see gcm_config for their meaning
  !! and units; nlon = nlat = 0 and n_sigma_half = 0 select the defaults) and
  !! the name of its physics. The state starts at rest, isothermal 288 K.
  !! The moist physics ('reference', 'emulator', 'ensemble') takes the
  !! physics_seed of its random numbers; the emulator modes the model files
  !! in emulator_paths (separated by new lines), checked against the
  !! emulator interface here, and the options use_real64, limit_humidity,
  !! limit_precipitation (0/1) and the out-of-distribution guard (policy
  !! guard 0 off, 1 clip, 2 fallback; its margin and distance factor) and
  !! partial coupling (network_weight, ramp 0 constant / 1 linear / 2 step,
  !! ramp_start_step, ramp_steps, network_start_step: model steps;
  !! reference_outputs(7): 0/1 per output group, gcm_emulator) and online
  !! fine-tuning (finetune 0/1, a round every finetune_every_steps steps
  !! from finetune_start_step on, of finetune_steps optimizer steps on
  !! finetune_columns columns chosen with finetune_seed, Adam at
  !! finetune_learning_rate; gcm_finetune).
  !! keep_training_batch /= 0 keeps the emulator
  !! inputs and outputs of every column of the last step (gcm_get_training_batch).
  !! physics_settings: namelist text changing the moist physics' settings
  !! (physics_config_read in physics_configuration.f90); blank = defaults.
  use iso_fortran_env, only: real64, int64
  use gcm_dycore, only: model_config, model_init, gcm_ok
  use gcm_python_handles, only: slots, new_slot, free_slot, reset_means, n_diagnostics, split_paths
  use gcm_physics_choice, only: select_physics, physics_options
  implicit none
  integer, intent(in) :: truncation, nlon, nlat, nlev, n_sigma_half, diffusion_order
  real(real64), intent(in) :: sigma_half(n_sigma_half)
  real(real64), intent(in) :: dt, t_ref, diffusion_time, robert_coefficient, williams_alpha
  integer, intent(in) :: diffuse_humidity, humidity, mass_fixer, humidity_fixer
  real(real64), intent(in) :: t_min, t_max, wind_max, ps_min, ps_max
  character(len=*), intent(in) :: physics
  integer, intent(in) :: physics_seed
  character(len=*), intent(in) :: emulator_paths
  integer, intent(in) :: use_real64, limit_humidity, limit_precipitation, keep_training_batch, guard
  real(real64), intent(in) :: guard_margin, guard_factor, network_weight
  integer, intent(in) :: ramp
  integer(int64), intent(in) :: ramp_start_step, ramp_steps, network_start_step
  integer, intent(in) :: reference_outputs(7)
  integer, intent(in) :: finetune, finetune_columns, finetune_steps
  integer(int64), intent(in) :: finetune_every_steps, finetune_seed, finetune_start_step
  real(real64), intent(in) :: finetune_learning_rate
  character(len=*), intent(in) :: physics_settings
  integer, intent(out) :: handle, stat
  character(len=1024), intent(out) :: msg
  type(model_config) :: config
  type(physics_options) :: options

  config%truncation = truncation
  config%nlon = nlon
  config%nlat = nlat
  config%nlev = nlev
  if (n_sigma_half > 0) config%sigma_half = sigma_half
  config%dt = dt
  config%t_ref = t_ref
  config%diffusion_order = diffusion_order
  config%diffusion_time = diffusion_time
  config%diffuse_humidity = diffuse_humidity /= 0
  config%robert_coefficient = robert_coefficient
  config%williams_alpha = williams_alpha
  config%humidity = humidity /= 0
  config%mass_fixer = mass_fixer /= 0
  config%humidity_fixer = humidity_fixer /= 0
  config%t_min = t_min
  config%t_max = t_max
  config%wind_max = wind_max
  config%ps_min = ps_min
  config%ps_max = ps_max

  options%seed = physics_seed
  call split_paths(trim(emulator_paths), options%emulator_paths)
  options%keep_training_batch = keep_training_batch /= 0
  options%physics_settings = trim(physics_settings)
  options%emulator%use_real64 = use_real64 /= 0
  options%emulator%limit_humidity = limit_humidity /= 0
  options%emulator%limit_precipitation = limit_precipitation /= 0
  options%emulator%guard = guard
  options%emulator%guard_margin = guard_margin
  options%emulator%guard_factor = guard_factor
  options%emulator%network_weight = network_weight
  options%emulator%ramp = ramp
  options%emulator%ramp_start_step = ramp_start_step
  options%emulator%ramp_steps = ramp_steps
  options%emulator%network_start_step = network_start_step
  options%emulator%reference_outputs = reference_outputs /= 0
  options%emulator%finetune%enabled = finetune /= 0
  options%emulator%finetune%every_steps = finetune_every_steps
  options%emulator%finetune%columns = finetune_columns
  options%emulator%finetune%steps = finetune_steps
  options%emulator%finetune%learning_rate = finetune_learning_rate
  options%emulator%finetune%seed = finetune_seed
  options%emulator%finetune%start_step = finetune_start_step

  call new_slot(handle)
  associate (s => slots(handle)%s)
    call model_init(s%model, config, stat, msg)
    if (stat == gcm_ok) call select_physics(physics, s%model, options, s%physics, stat, msg)
    if (stat /= gcm_ok) then
      call free_slot(handle)
      handle = 0
      return
    end if
    s%physics_name = physics
    associate (c => s%model%config)
      allocate (s%u(c%nlev, c%nlon, c%nlat), s%v(c%nlev, c%nlon, c%nlat), s%t(c%nlev, c%nlon, c%nlat), &
                s%q(c%nlev, c%nlon, c%nlat), s%ps(c%nlon, c%nlat))
      allocate (s%sum_u, s%sum_v, s%sum_t, s%sum_q, mold=s%u)
      allocate (s%sum_ps, mold=s%ps)
      allocate (s%sum_diag(c%nlon, c%nlat, n_diagnostics), s%diag(c%nlon, c%nlat, n_diagnostics))
      allocate (s%sum_cloud, s%cloud, mold=s%u)
      allocate (s%sum_precc, s%precc, mold=s%ps)
    end associate
    call reset_means(s)
  end associate
end subroutine gcm_create


subroutine gcm_default_config(truncation, nlon, nlat, nlev, dt, t_ref, diffusion_order, diffusion_time, &
                              diffuse_humidity, robert_coefficient, williams_alpha, humidity, mass_fixer, &
                              humidity_fixer, t_min, t_max, wind_max, ps_min, ps_max)
  !! The defaults of gcm_config's model_config, so that the Python side does
  !! not keep a second copy of them (sigma_half: default equally spaced).
  use iso_fortran_env, only: real64
  use gcm_dycore, only: model_config
  implicit none
  integer, intent(out) :: truncation, nlon, nlat, nlev, diffusion_order
  real(real64), intent(out) :: dt, t_ref, diffusion_time, robert_coefficient, williams_alpha
  integer, intent(out) :: diffuse_humidity, humidity, mass_fixer, humidity_fixer
  real(real64), intent(out) :: t_min, t_max, wind_max, ps_min, ps_max
  type(model_config) :: c
  truncation = c%truncation
  nlon = c%nlon
  nlat = c%nlat
  nlev = c%nlev
  dt = c%dt
  t_ref = c%t_ref
  diffusion_order = c%diffusion_order
  diffusion_time = c%diffusion_time
  diffuse_humidity = merge(1, 0, c%diffuse_humidity)
  robert_coefficient = c%robert_coefficient
  williams_alpha = c%williams_alpha
  humidity = merge(1, 0, c%humidity)
  mass_fixer = merge(1, 0, c%mass_fixer)
  humidity_fixer = merge(1, 0, c%humidity_fixer)
  t_min = c%t_min
  t_max = c%t_max
  wind_max = c%wind_max
  ps_min = c%ps_min
  ps_max = c%ps_max
end subroutine gcm_default_config


subroutine gcm_grid_size(truncation, nlon, nlat)
  !! The core's default (alias-free) Gaussian grid of a truncation.
  use gcm_config, only: default_grid_size
  implicit none
  integer, intent(in) :: truncation
  integer, intent(out) :: nlon, nlat
  call default_grid_size(truncation, nlon, nlat)
end subroutine gcm_grid_size


subroutine gcm_set_initial_state(handle, name, seed, t0, stat, msg)
  !! Start a new run (step 0) from a named initial state: 'rest' (isothermal
  !! t0 [K], ps = 1000 hPa), 'held-suarez' (rest at 285 K plus +-0.1 K noise
  !! from `seed`), 'rossby-haurwitz' (wave 4 in an isothermal t0 atmosphere),
  !! 'jablonowski-williamson' (the steady baroclinic jet, with its orography),
  !! 'aquaplanet' (moist, at rest, from the Qobs SST, noise from `seed`).
  use iso_fortran_env, only: real64
  use gcm_dycore, only: gcm_err_config, set_rest_isothermal, set_held_suarez_start, &
                        set_rossby_haurwitz, set_jablonowski_williamson
  use gcm_aquaplanet, only: set_aquaplanet_start
  use gcm_python_handles, only: slots, missing_model, initial_state_names, reset_means
  implicit none
  integer, intent(in) :: handle, seed
  character(len=*), intent(in) :: name
  real(real64), intent(in) :: t0
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  if (missing_model(handle, stat, msg)) return
  associate (model => slots(handle)%s%model)
    select case (trim(name))
    case ('rest')
      call set_rest_isothermal(model, t0, 1.0e5_real64, stat, msg)
    case ('held-suarez')
      call set_held_suarez_start(model, seed, stat, msg)
    case ('rossby-haurwitz')
      call set_rossby_haurwitz(model, t0, stat, msg)
    case ('jablonowski-williamson')
      call set_jablonowski_williamson(model, stat, msg)
    case ('aquaplanet')
      call set_aquaplanet_start(model, seed, stat, msg)
    case default
      stat = gcm_err_config
      msg = "initial_state: unknown state '"//trim(name)//"' (known: "//initial_state_names//")"
    end select
  end associate
  call reset_means(slots(handle)%s)
end subroutine gcm_set_initial_state


subroutine gcm_step(handle, nsteps, accumulate, steps_done, stat, msg)
  !! Advance nsteps time steps with the model's physics. accumulate /= 0 adds
  !! the grid state after every step to the running sums of the means. A
  !! failing state stops early: steps_done < nsteps, stat is the failure's
  !! code (see gcm_failure for the report).
  use iso_fortran_env, only: int64
  use gcm_dycore, only: gcm_ok, model_get_grid
  use gcm_python_handles, only: slots, missing_model, step_slot, accumulate_diagnostics
  implicit none
  integer, intent(in) :: handle, nsteps, accumulate
  integer, intent(out) :: steps_done, stat
  character(len=1024), intent(out) :: msg
  integer(int64) :: first
  integer :: i
  steps_done = 0
  if (missing_model(handle, stat, msg)) return
  associate (s => slots(handle)%s)
    first = s%model%state%step
    if (accumulate == 0) then
      call step_slot(s, nsteps, stat, msg)
    else
      stat = gcm_ok
      msg = ''
      do i = 1, nsteps
        call step_slot(s, 1, stat, msg)
        if (stat /= gcm_ok) exit
        call model_get_grid(s%model, s%u, s%v, s%t, s%q, s%ps, stat, msg)
        if (stat /= gcm_ok) exit
        s%sum_u = s%sum_u + s%u
        s%sum_v = s%sum_v + s%v
        s%sum_t = s%sum_t + s%t
        s%sum_q = s%sum_q + s%q
        s%sum_ps = s%sum_ps + s%ps
        s%n_mean = s%n_mean + 1
        s%sum_filled = s%sum_filled + s%model%humidity_filled
        call accumulate_diagnostics(s, stat, msg)
        if (stat /= gcm_ok) exit
      end do
    end if
    steps_done = int(s%model%state%step - first)
  end associate
end subroutine gcm_step


subroutine gcm_check(handle, stat, msg)
  !! The crash check of the current state without stepping: stat is 0 or the
  !! failure's code (see gcm_failure for the report).
  use gcm_dycore, only: model_check
  use gcm_python_handles, only: slots, missing_model
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  if (missing_model(handle, stat, msg)) return
  call model_check(slots(handle)%s%model, stat, msg)
end subroutine gcm_check


subroutine gcm_failure(handle, failure_status, step, time_days, lat_deg, lon_deg, level, sigma, variable, &
                       value, msg, stat)
  !! The report of the last failed state check: failure_status 0 = none;
  !! level 1 = top, 0 for surface pressure; value in SI units.
  use iso_fortran_env, only: real64
  use gcm_dycore, only: gcm_ok
  use gcm_python_handles, only: slots, missing_model, physics_failure
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: failure_status, step, level, stat
  real(real64), intent(out) :: time_days, lat_deg, lon_deg, sigma, value
  character(len=16), intent(out) :: variable
  character(len=1024), intent(out) :: msg
  failure_status = 0; step = 0; level = 0; time_days = 0; lat_deg = 0; lon_deg = 0; sigma = 0; value = 0
  variable = ''
  msg = ''
  if (missing_model(handle, stat, msg)) return
  associate (f => slots(handle)%s%model%failure)
    failure_status = f%status
    step = int(f%step)
    time_days = f%time_days
    lat_deg = f%lat_deg
    lon_deg = f%lon_deg
    level = f%level
    sigma = f%sigma
    variable = f%variable
    value = f%value
    msg = f%message
  end associate
  ! a physics error is not the dycore's failure: the aquaplanet physics keeps its report
  if (failure_status == gcm_ok) call physics_failure(slots(handle)%s, failure_status, step, time_days, &
                                                     lat_deg, lon_deg, level, sigma, variable, value, msg)
  stat = gcm_ok
end subroutine gcm_failure


subroutine gcm_sizes(handle, truncation, nlon, nlat, nlev, humidity, stat)
  !! Resolution of a model (after defaults were filled in); humidity 0/1.
  use gcm_dycore, only: gcm_ok, gcm_err_state
  use gcm_python_handles, only: slots, valid_handle
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: truncation, nlon, nlat, nlev, humidity, stat
  truncation = 0; nlon = 0; nlat = 0; nlev = 0; humidity = 0
  if (.not. valid_handle(handle)) then
    stat = gcm_err_state
    return
  end if
  associate (c => slots(handle)%s%model%config)
    truncation = c%truncation
    nlon = c%nlon
    nlat = c%nlat
    nlev = c%nlev
    if (c%humidity) humidity = 1
  end associate
  stat = gcm_ok
end subroutine gcm_sizes


subroutine gcm_grid(handle, nlat, nlon, nlev, lat, lon, weight, sigma, sigma_half, stat, msg)
  !! Coordinates: Gaussian latitudes [rad] south to north and their weights
  !! (sum 2), longitudes [rad] from 0, full-level sigma (top first) and the
  !! nlev+1 half levels from 0 to 1.
  use iso_fortran_env, only: real64
  use gcm_dycore, only: model_grid
  use gcm_python_handles, only: slots, missing_model
  implicit none
  integer, intent(in) :: handle, nlat, nlon, nlev
  real(real64), intent(out) :: lat(nlat), lon(nlon), weight(nlat), sigma(nlev), sigma_half(nlev + 1)
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  lat = 0; lon = 0; weight = 0; sigma = 0; sigma_half = 0
  if (missing_model(handle, stat, msg)) return
  call model_grid(slots(handle)%s%model, lat, lon, weight, sigma, sigma_half, stat, msg)
end subroutine gcm_grid


subroutine gcm_get_grid(handle, nlev, nlon, nlat, u, v, t, q, ps, stat, msg)
  !! Grid state of the current time level: u, v [m s-1], t [K], q [kg kg-1]
  !! (nlev, nlon, nlat), ps [Pa] (nlon, nlat).
  use iso_fortran_env, only: real64
  use gcm_dycore, only: model_get_grid
  use gcm_python_handles, only: slots, missing_model
  implicit none
  integer, intent(in) :: handle, nlev, nlon, nlat
  real(real64), intent(out) :: u(nlev, nlon, nlat), v(nlev, nlon, nlat), t(nlev, nlon, nlat), &
                               q(nlev, nlon, nlat), ps(nlon, nlat)
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  u = 0; v = 0; t = 0; q = 0; ps = 0
  if (missing_model(handle, stat, msg)) return
  call model_get_grid(slots(handle)%s%model, u, v, t, q, ps, stat, msg)
end subroutine gcm_get_grid


subroutine gcm_set_grid(handle, nlev, nlon, nlat, u, v, t, q, ps, stat, msg)
  !! Replace the state by grid fields (projected onto the truncation); the
  !! next step is a forward step. The step counter is kept.
  use iso_fortran_env, only: real64
  use gcm_dycore, only: model_set_grid
  use gcm_python_handles, only: slots, missing_model
  implicit none
  integer, intent(in) :: handle, nlev, nlon, nlat
  real(real64), intent(in) :: u(nlev, nlon, nlat), v(nlev, nlon, nlat), t(nlev, nlon, nlat), &
                              q(nlev, nlon, nlat), ps(nlon, nlat)
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  if (missing_model(handle, stat, msg)) return
  call model_set_grid(slots(handle)%s%model, u, v, t, q, ps, stat, msg)
end subroutine gcm_set_grid


subroutine gcm_get_mean(handle, nlev, nlon, nlat, u, v, t, q, ps, count, stat, msg)
  !! Means of the states summed by gcm_step since the last reset, and their
  !! number (count = 0: no state summed, the fields are zero).
  use iso_fortran_env, only: real64
  use gcm_dycore, only: gcm_ok, gcm_err_state
  use gcm_python_handles, only: slots, missing_model
  implicit none
  integer, intent(in) :: handle, nlev, nlon, nlat
  real(real64), intent(out) :: u(nlev, nlon, nlat), v(nlev, nlon, nlat), t(nlev, nlon, nlat), &
                               q(nlev, nlon, nlat), ps(nlon, nlat)
  integer, intent(out) :: count, stat
  character(len=1024), intent(out) :: msg
  u = 0; v = 0; t = 0; q = 0; ps = 0; count = 0
  msg = ''
  if (missing_model(handle, stat, msg)) return
  associate (s => slots(handle)%s)
    if (any(shape(u) /= shape(s%sum_u)) .or. any(shape(ps) /= shape(s%sum_ps))) then
      stat = gcm_err_state; msg = 'gcm_get_mean: arrays must have shape (nlev, nlon, nlat) and (nlon, nlat)'
      return
    end if
    count = s%n_mean
    if (count > 0) then
      u = s%sum_u / count
      v = s%sum_v / count
      t = s%sum_t / count
      q = s%sum_q / count
      ps = s%sum_ps / count
    end if
  end associate
  stat = gcm_ok
end subroutine gcm_get_mean


subroutine gcm_get_diag_mean(handle, nlon, nlat, nlev, ndiag, diag, cloud, precc, count, cloud_count, stat, msg)
  !! Means of the aquaplanet physics' diagnostics summed by gcm_step since
  !! the last reset: diag(:, :, k) for k = precip, evap [kg m-2 s-1], shflx,
  !! lhflx [W m-2, upward], sst [K], solin, fsnt, fsns [W m-2, net down],
  !! flnt, flns [W m-2, net up], the fractions of steps the emulator guard
  !! flagged a column and sent it to the reference physics; cloud fraction (nlev, nlon, nlat) [1] and
  !! convective precipitation (nlon, nlat) [kg m-2 s-1].
  !! count: physics steps summed (0 for other physics: zeros);
  !! cloud_count: of those with a cloud fraction (reference physics only).
  use iso_fortran_env, only: real64
  use gcm_dycore, only: gcm_ok, gcm_err_state
  use gcm_python_handles, only: slots, missing_model, n_diagnostics
  implicit none
  integer, intent(in) :: handle, nlon, nlat, nlev, ndiag
  real(real64), intent(out) :: diag(nlon, nlat, ndiag), cloud(nlev, nlon, nlat), precc(nlon, nlat)
  integer, intent(out) :: count, cloud_count, stat
  character(len=1024), intent(out) :: msg
  diag = 0; cloud = 0; precc = 0; count = 0; cloud_count = 0
  msg = ''
  if (missing_model(handle, stat, msg)) return
  associate (s => slots(handle)%s)
    if (ndiag /= n_diagnostics .or. any(shape(diag(:, :, 1)) /= shape(s%sum_diag(:, :, 1))) .or. &
        any(shape(cloud) /= shape(s%sum_cloud))) then
      stat = gcm_err_state
      msg = 'gcm_get_diag_mean: arrays must have shape (nlon, nlat, 12) and (nlev, nlon, nlat)'
      return
    end if
    count = s%n_diag
    cloud_count = s%n_cloud
    if (count > 0) diag = s%sum_diag / count
    if (cloud_count > 0) cloud = s%sum_cloud / cloud_count
    if (cloud_count > 0) precc = s%sum_precc / cloud_count
  end associate
  stat = gcm_ok
end subroutine gcm_get_diag_mean


subroutine gcm_get_filled_mean(handle, filled, count, stat)
  !! Mean over the steps summed by gcm_step (accumulate /= 0) since the last
  !! reset of the water moved per step by the dycore's negative-humidity
  !! filler (humidity_fixer), as the global mean of ps q [Pa]; count: steps.
  use iso_fortran_env, only: real64
  use gcm_dycore, only: gcm_ok, gcm_err_state
  use gcm_python_handles, only: slots, valid_handle
  implicit none
  integer, intent(in) :: handle
  real(real64), intent(out) :: filled
  integer, intent(out) :: count, stat
  filled = 0
  count = 0
  stat = gcm_err_state
  if (.not. valid_handle(handle)) return
  associate (s => slots(handle)%s)
    count = s%n_mean
    if (count > 0) filled = s%sum_filled / count
  end associate
  stat = gcm_ok
end subroutine gcm_get_filled_mean


subroutine gcm_get_training_batch(handle, n_in, n_out, ncol, x, y, step, time_seconds, dt, stat, msg)
  !! The emulator inputs x(2 nlev + 4, ncol) and outputs y(2 nlev + 5, ncol)
  !! of every column in the last physics step (interface order and units;
  !! columns longitude fastest, south to north), the step number and model
  !! time [s] of the state the physics saw and the time its tendencies act
  !! over [s]. Needs the moist physics created with keep_training_batch.
  use iso_fortran_env, only: real64
  use gcm_python_handles, only: slots, missing_model, slot_training_batch
  implicit none
  integer, intent(in) :: handle, n_in, n_out, ncol
  real(real64), intent(out) :: x(n_in, ncol), y(n_out, ncol)
  integer, intent(out) :: step, stat
  real(real64), intent(out) :: time_seconds, dt
  character(len=1024), intent(out) :: msg
  x = 0; y = 0; step = 0; time_seconds = 0; dt = 0
  if (missing_model(handle, stat, msg)) return
  call slot_training_batch(slots(handle)%s, x, y, step, time_seconds, dt, stat, msg)
end subroutine gcm_get_training_batch


subroutine gcm_physics_mode(handle, mode, stat)
  !! The emulated physics of the moist aquaplanet physics: 'reference',
  !! 'emulator', 'ensemble'; '' for other physics.
  use gcm_dycore, only: gcm_ok, gcm_err_state
  use gcm_python_handles, only: slots, valid_handle, slot_physics_mode
  implicit none
  integer, intent(in) :: handle
  character(len=32), intent(out) :: mode
  integer, intent(out) :: stat
  mode = ''
  stat = gcm_err_state
  if (.not. valid_handle(handle)) return
  stat = gcm_ok
  call slot_physics_mode(slots(handle)%s, mode)
end subroutine gcm_physics_mode


subroutine gcm_reset_mean(handle)
  !! Start new means: zero the running sums.
  use gcm_python_handles, only: slots, valid_handle, reset_means
  implicit none
  integer, intent(in) :: handle
  if (valid_handle(handle)) call reset_means(slots(handle)%s)
end subroutine gcm_reset_mean


subroutine gcm_time(handle, step, time_days, dt, stat)
  !! Step counter and model time [days] of the current time level; dt [s].
  use iso_fortran_env, only: real64
  use gcm_dycore, only: gcm_ok, gcm_err_state, model_time_days
  use gcm_python_handles, only: slots, valid_handle
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: step, stat
  real(real64), intent(out) :: time_days, dt
  step = 0; time_days = 0; dt = 0
  if (.not. valid_handle(handle)) then
    stat = gcm_err_state
    return
  end if
  associate (model => slots(handle)%s%model)
    step = int(model%state%step)
    time_days = model_time_days(model)
    dt = model%config%dt
  end associate
  stat = gcm_ok
end subroutine gcm_time


subroutine gcm_write_checkpoint(handle, path, stat, msg)
  !! The full prognostic state to a raw binary file (see gcm_checkpoint).
  use gcm_dycore, only: model_write_checkpoint
  use gcm_python_handles, only: slots, missing_model
  implicit none
  integer, intent(in) :: handle
  character(len=*), intent(in) :: path
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  if (missing_model(handle, stat, msg)) return
  call model_write_checkpoint(slots(handle)%s%model, path, stat, msg)
end subroutine gcm_write_checkpoint


subroutine gcm_read_checkpoint(handle, path, stat, msg)
  !! Replace the state by a checkpoint's (same resolution, levels and dt);
  !! the running means start again.
  use gcm_dycore, only: model_read_checkpoint
  use gcm_python_handles, only: slots, missing_model, reset_means
  implicit none
  integer, intent(in) :: handle
  character(len=*), intent(in) :: path
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  if (missing_model(handle, stat, msg)) return
  call model_read_checkpoint(slots(handle)%s%model, path, stat, msg)
  call reset_means(slots(handle)%s)
end subroutine gcm_read_checkpoint


subroutine gcm_finetune_status(handle, enabled, loss_sum, loss_count, rounds, iterations, stopped_step, &
                               stop_reason, stat)
  !! The emulator's online fine-tuning: enabled (0/1), the sum and number of
  !! the rounds' losses since the last reset of the means, the rounds of
  !! this model, the optimizer steps since compile (restarts included), the
  !! step whose round failed (-1: none) and why (see gcm_finetune).
  use iso_fortran_env, only: real64, int64
  use gcm_python_handles, only: slots, valid_handle, slot_finetune_status
  use gcm_dycore, only: gcm_ok, gcm_err_state
  implicit none
  integer, intent(in) :: handle
  integer, intent(out) :: enabled, loss_count, iterations, stat
  real(real64), intent(out) :: loss_sum
  integer(int64), intent(out) :: rounds, stopped_step
  character(len=256), intent(out) :: stop_reason
  stat = gcm_err_state
  enabled = 0
  loss_sum = 0
  loss_count = 0
  iterations = 0
  rounds = 0
  stopped_step = -1
  stop_reason = ''
  if (.not. valid_handle(handle)) return
  stat = gcm_ok
  call slot_finetune_status(slots(handle)%s, enabled, loss_sum, loss_count, rounds, iterations, stopped_step, &
                            stop_reason)
end subroutine gcm_finetune_status


subroutine gcm_finetune_save(handle, path, with_state, stat, msg)
  !! The fine-tuned network (weights and training state) to the model file
  !! `path` and, with with_state /= 0, whether tuning stopped to
  !! `path.state` (what a restart needs; gcm_finetune).
  use gcm_python_handles, only: slots, missing_model, slot_finetune_save
  implicit none
  integer, intent(in) :: handle
  character(len=*), intent(in) :: path
  integer, intent(in) :: with_state
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  if (missing_model(handle, stat, msg)) return
  call slot_finetune_save(slots(handle)%s, path, with_state /= 0, stat, msg)
end subroutine gcm_finetune_save


subroutine gcm_finetune_load(handle, path, stat, msg)
  !! Continue fine-tuning from gcm_finetune_save's files (a restart).
  use gcm_python_handles, only: slots, missing_model, slot_finetune_load
  implicit none
  integer, intent(in) :: handle
  character(len=*), intent(in) :: path
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  if (missing_model(handle, stat, msg)) return
  call slot_finetune_load(slots(handle)%s, path, stat, msg)
end subroutine gcm_finetune_load


subroutine gcm_global_means(handle, ps_mean, dry_mass, water, stat, msg)
  !! Global means of the current state [Pa]: surface pressure, dry-air
  !! surface pressure, water-vapour "surface pressure" (divide by g for kg m-2).
  use iso_fortran_env, only: real64
  use gcm_dycore, only: model_global_means
  use gcm_python_handles, only: slots, missing_model
  implicit none
  integer, intent(in) :: handle
  real(real64), intent(out) :: ps_mean, dry_mass, water
  integer, intent(out) :: stat
  character(len=1024), intent(out) :: msg
  ps_mean = 0; dry_mass = 0; water = 0
  if (missing_model(handle, stat, msg)) return
  call model_global_means(slots(handle)%s%model, ps_mean, dry_mass, water, stat, msg)
end subroutine gcm_global_means


subroutine gcm_timers(handle, transforms, grid, physics, spectral, steps, stat)
  !! Wall-clock seconds spent in the parts of the time step since the last
  !! reset (see model_timers), and the number of steps timed.
  use iso_fortran_env, only: real64
  use gcm_dycore, only: gcm_ok, gcm_err_state
  use gcm_python_handles, only: slots, valid_handle
  implicit none
  integer, intent(in) :: handle
  real(real64), intent(out) :: transforms, grid, physics, spectral
  integer, intent(out) :: steps, stat
  transforms = 0; grid = 0; physics = 0; spectral = 0; steps = 0
  if (.not. valid_handle(handle)) then
    stat = gcm_err_state
    return
  end if
  associate (tm => slots(handle)%s%model%timers)
    transforms = tm%transforms
    grid = tm%grid
    physics = tm%physics
    spectral = tm%spectral
    steps = int(tm%steps)
  end associate
  stat = gcm_ok
end subroutine gcm_timers


subroutine gcm_reset_timers(handle)
  use gcm_dycore, only: model_reset_timers
  use gcm_python_handles, only: slots, valid_handle
  implicit none
  integer, intent(in) :: handle
  if (valid_handle(handle)) call model_reset_timers(slots(handle)%s%model)
end subroutine gcm_reset_timers


subroutine gcm_names(physics, initial_states)
  !! Comma-separated names of the physics schemes and initial states known.
  use gcm_python_handles, only: initial_state_names
  use gcm_physics_choice, only: physics_names
  implicit none
  character(len=256), intent(out) :: physics, initial_states
  physics = physics_names
  initial_states = initial_state_names
end subroutine gcm_names


subroutine gcm_physics_defaults(text, stat)
  !! The column physics' default settings as namelist text (group
  !! physics_settings, object physics), one setting per line.
  use physics_configuration, only: physics_config, physics_config_write
  implicit none
  character(len=16384), intent(out) :: text
  integer, intent(out) :: stat
  type(physics_config) :: defaults
  character(len=160) :: lines(200)
  integer :: k
  call physics_config_write(defaults, lines, stat)
  text = ''
  if (stat /= 0) return
  do k = 1, size(lines)
    if (len_trim(lines(k)) > 0) text = trim(text) // trim(lines(k)) // achar(10)
  end do
end subroutine gcm_physics_defaults


subroutine gcm_free(handle)
  !! Release a model; the handle becomes invalid.
  use gcm_python_handles, only: free_slot
  implicit none
  integer, intent(in) :: handle
  call free_slot(handle)
end subroutine gcm_free
