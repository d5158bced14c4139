module gcm_aquaplanet
  !! The moist aquaplanet physics as the dynamical core's `physics_scheme`.
  !!
  !! `aquaplanet_physics` adapts the dycore's columns and tendencies to the
  !! column physics' `physics_driver_step` (SST, insolation, surface fluxes,
  !! boundary layer, then the emulated cloud and radiation physics) and holds
  !! that emulated physics as a polymorphic component chosen at setup: the
  !! reference (toy superparameterization) or a network / ensemble
  !! (`gcm_emulator`), or any other `emulated_physics_scheme`.
  !!
  !! Per step it passes dt = columns%dt (the time the tendencies act over),
  !! column ids c = i + (j-1) nlon, the configured seed, and the columns'
  !! latitude and longitude. Precipitation and evaporation change the water
  !! but not the total mass in this model: dps/dt = 0, and the dycore's mass
  !! fixer keeps the dry-air mass.
  !!
  !! For output and training it keeps, from the last successful step, the
  !! driver's per-column diagnostics (SST, insolation, sensible and latent
  !! heat flux, evaporation, radiative fluxes, precipitation; cloud fraction
  !! with the reference) and, when asked, the emulator-interface batch:
  !! inputs x(2 nlev + 4, ncol) and outputs y(2 nlev + 5, ncol) of every
  !! column, as computed by whichever emulated physics ran. A failing step
  !! fills `failure` (status gcm_err_physics, step, time, place, variable).
  use iso_fortran_env, only: int64
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use gcm_dycore, only: wp, gcm_ok, gcm_err_config, gcm_err_state, gcm_err_physics, climate_model, &
                        physics_scheme, physics_columns, physics_tendencies, failure_report, model_set_grid
  use gcm_status, only: gcm_ok
  use physics_configuration, only: physics_config, physics_config_validate
  use physics_driver, only: physics_diagnostics, physics_driver_step
  use emulated_physics, only: emulated_physics_scheme, reference_emulated_physics
  use moist_thermodynamics, only: saturation_humidity
  use sea_surface, only: sst_qobs
  use gcm_emulator, only: emulator_physics, emulator_options, emulator_physics_setup, emulator_finetune_load
  use gcm_emulator_interface, only: emulator_n_inputs, emulator_n_outputs, emulator_output_name, &
                                    pack_emulator_inputs, pack_emulator_outputs, int_text
  implicit none
  private
  public :: aquaplanet_config, aquaplanet_physics, aquaplanet_physics_setup, aquaplanet_emulator_setup, &
            aquaplanet_get_training_batch, aquaplanet_get_surface_diagnostics, aquaplanet_get_guard_diagnostics, &
            aquaplanet_get_cloud_fraction, &
            aquaplanet_get_convective_precip, &
            aquaplanet_finetune_status, aquaplanet_finetune_save, aquaplanet_finetune_load, &
            aquaplanet_finetune_reset_loss, &
            set_aquaplanet_start

  type :: aquaplanet_config
    !! Settings of the aquaplanet physics (configuration as data).
    type(physics_config) :: physics
      !! the column physics' settings (subcolumns, convection, radiation, ...)
    integer(int64) :: seed = 1
      !! run seed of the reference physics' random numbers
    logical :: keep_training_batch = .false.
      !! keep the emulator-interface inputs and outputs of every column of
      !! the last step (`aquaplanet_get_training_batch`)
    logical :: cloud_diagnostics = .true.
      !! reference physics: keep the cloud fraction of the last step
  end type aquaplanet_config

  type, extends(physics_scheme) :: aquaplanet_physics
    logical :: ready = .false.
    type(aquaplanet_config) :: config
    class(emulated_physics_scheme), allocatable :: scheme
      !! the emulated physics: reference_emulated_physics or emulator_physics
    character(len=:), allocatable :: mode
      !! 'reference', 'emulator', 'ensemble' or 'custom'
    logical :: fill_humidity = .true.
      !! let the physics driver fill negative humidity of the summed
      !! tendencies: always with the reference; with an emulator only when
      !! its limit_humidity option is on (nothing repairs it otherwise)
    integer :: nlon = 0, nlat = 0, nlev = 0, ncol = 0
    integer, allocatable :: column_ids(:)
    type(physics_diagnostics) :: diag
      !! per-column diagnostics of the last step (physics_driver)
    logical :: has_step = .false.
      !! a step has completed since setup
    integer(int64) :: last_step = 0
      !! step number of the state the last physics step saw
    real(wp) :: last_time_seconds = 0.0_wp
      !! model time of that state [s]
    real(wp) :: last_dt = 0.0_wp
      !! time the last tendencies acted over [s]
    real(wp), allocatable :: batch_inputs(:, :)
      !! emulator inputs of the last step (2 nlev + 4, ncol), with keep_training_batch
    real(wp), allocatable :: batch_outputs(:, :)
      !! emulated-physics outputs of the last step (2 nlev + 5, ncol), with keep_training_batch
    type(failure_report) :: failure
      !! the last failed physics step (status gcm_ok while healthy)
  contains
    procedure :: compute => aquaplanet_compute
  end type aquaplanet_physics

contains

  subroutine aquaplanet_physics_setup(self, model, config, status, message, scheme)
    !! Set up the aquaplanet physics for an initialised moist model. Without
    !! `scheme` the emulated physics is the reference; with it, a copy of
    !! `scheme` (an `emulator_physics` set up with `emulator_physics_setup`,
    !! or any other `emulated_physics_scheme`). An emulator checked for
    !! another number of levels than the model's is refused.
    type(aquaplanet_physics), intent(out) :: self
    type(climate_model), intent(in) :: model
    type(aquaplanet_config), intent(in) :: config
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    class(emulated_physics_scheme), intent(in), optional :: scheme
    character(len=:), allocatable :: msg
    integer :: stat, c

    status = gcm_err_state
    if (.not. model%initialized) then
      message = 'aquaplanet physics: the model is not initialised'
      return
    end if
    if (.not. model%config%humidity) then
      message = 'aquaplanet physics: the model has no humidity (set config%humidity = .true.)'
      return
    end if
    status = gcm_err_config
    call physics_config_validate(config%physics, stat, msg)
    if (stat /= gcm_ok) then
      message = 'aquaplanet physics: ' // msg
      return
    end if
    self%config = config
    self%nlon = model%config%nlon
    self%nlat = model%config%nlat
    self%nlev = model%config%nlev
    self%ncol = self%nlon * self%nlat
    self%column_ids = [(c, c = 1, self%ncol)]
    if (present(scheme)) then
      select type (scheme)
      type is (emulator_physics)
        if (scheme%n_members() == 0) then
          message = 'aquaplanet physics: the emulator has no network (call emulator_physics_setup first)'
          return
        end if
        if (scheme%nlev /= self%nlev) then
          message = 'aquaplanet physics: the emulator was checked for ' // int_text(scheme%nlev) // &
                    ' levels, the model has ' // int_text(self%nlev)
          return
        end if
        self%fill_humidity = scheme%options%limit_humidity
        self%mode = 'emulator'
        if (scheme%n_members() > 1) self%mode = 'ensemble'
      type is (reference_emulated_physics)
        self%mode = 'reference'
      class default
        self%mode = 'custom'
      end select
      allocate (self%scheme, source=scheme)
    else
      allocate (self%scheme, source=reference_emulated_physics(keep_diagnostics=config%cloud_diagnostics))
      self%mode = 'reference'
    end if
    if (config%keep_training_batch) then
      allocate (self%batch_inputs(emulator_n_inputs(self%nlev), self%ncol), &
                self%batch_outputs(emulator_n_outputs(self%nlev), self%ncol))
    end if
    self%ready = .true.
    status = gcm_ok
    message = ''
  end subroutine aquaplanet_physics_setup

  subroutine aquaplanet_emulator_setup(self, model, config, paths, options, status, message)
    !! Shortcut: load the networks (`emulator_physics_setup` for the model's
    !! nlev; several paths make an ensemble) and set up the aquaplanet
    !! physics with them. A refused network gives gcm_err_config and the
    !! emulator's one-line reason.
    type(aquaplanet_physics), intent(out) :: self
    type(climate_model), intent(in) :: model
    type(aquaplanet_config), intent(in) :: config
    character(len=*), intent(in) :: paths(:)
    type(emulator_options), intent(in) :: options
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    type(emulator_physics) :: emulator
    character(len=:), allocatable :: msg
    integer :: stat

    if (.not. model%initialized) then
      status = gcm_err_state
      message = 'aquaplanet physics: the model is not initialised'
      return
    end if
    call emulator_physics_setup(emulator, paths, model%config%nlev, options, stat, msg)
    if (stat /= gcm_ok) then
      status = gcm_err_config
      message = msg
      return
    end if
    call aquaplanet_physics_setup(self, model, config, status, message, emulator)
  end subroutine aquaplanet_emulator_setup

  subroutine aquaplanet_compute(self, columns, tendencies, status, message)
    !! One physics step of every column (the dycore's hook).
    class(aquaplanet_physics), intent(inout) :: self
    type(physics_columns), intent(in) :: columns
    type(physics_tendencies), intent(inout) :: tendencies
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    character(len=:), allocatable :: msg
    integer :: stat

    status = gcm_err_state
    if (.not. self%ready) then
      message = 'aquaplanet physics: not set up (call aquaplanet_physics_setup)'
      return
    end if
    if (columns%ncol /= self%ncol .or. columns%nlev /= self%nlev) then
      message = 'aquaplanet physics: set up for ' // int_text(self%ncol) // ' columns and ' // &
                int_text(self%nlev) // ' levels, called with ' // int_text(columns%ncol) // ' and ' // &
                int_text(columns%nlev)
      return
    end if
    call physics_driver_step(self%config%physics, self%scheme, columns%ncol, columns%nlev, columns%dt, &
                             columns%time_seconds, columns%step, self%config%seed, self%column_ids, &
                             columns%lat, columns%lon, columns%sigma, columns%sigma_half, &
                             columns%t, columns%q, columns%u, columns%v, columns%ps, &
                             tendencies%dtdt, tendencies%dqdt, tendencies%dudt, tendencies%dvdt, &
                             self%diag, stat, msg, fill_humidity=self%fill_humidity)
    if (stat /= gcm_ok) then
      call record_failure(self, columns, msg)
      status = gcm_err_physics
      message = msg
      return
    end if
    tendencies%dpsdt = 0.0_wp
    if (self%config%keep_training_batch) then
      call pack_emulator_inputs(self%diag%emulated_inputs, self%batch_inputs)
      call pack_emulator_outputs(self%diag%emulated, self%batch_outputs)
    end if
    self%has_step = .true.
    self%last_step = columns%step
    self%last_time_seconds = columns%time_seconds
    self%last_dt = columns%dt
    status = gcm_ok
    message = ''
  end subroutine aquaplanet_compute

  subroutine record_failure(self, columns, msg)
    !! Fill the failure report of a failed physics step; an emulator's
    !! non-finite output gives its column, level and variable.
    type(aquaplanet_physics), intent(inout) :: self
    type(physics_columns), intent(in) :: columns
    character(len=*), intent(in) :: msg
    integer :: c, element
    real(wp), parameter :: degrees = 180.0_wp / 3.141592653589793238462643383279502884_wp

    self%failure = failure_report()
    self%failure%status = gcm_err_physics
    self%failure%step = columns%step
    self%failure%time_days = columns%time_seconds / 86400.0_wp
    self%failure%message = 'physics: ' // msg
    self%failure%value = ieee_value(0.0_wp, ieee_quiet_nan)
    select type (scheme => self%scheme)
    type is (emulator_physics)
      c = scheme%failed_column
      element = scheme%failed_output
      if (c < 1 .or. element < 1) return
      self%failure%lon_index = mod(c - 1, self%nlon) + 1
      self%failure%lat_index = (c - 1) / self%nlon + 1
      self%failure%lon_deg = columns%lon(c) * degrees
      self%failure%lat_deg = columns%lat(c) * degrees
      if (element <= 2 * self%nlev) then
        self%failure%level = mod(element - 1, self%nlev) + 1
        self%failure%sigma = columns%sigma(self%failure%level)
      else
        self%failure%level = 0
        self%failure%sigma = 1.0_wp
      end if
      self%failure%variable = emulator_output_name(self%nlev, element)
      self%failure%value = scheme%failed_value
    end select
  end subroutine record_failure

  subroutine aquaplanet_get_training_batch(self, x, y, status, message)
    !! The emulator inputs x(2 nlev + 4, ncol) and outputs y(2 nlev + 5, ncol)
    !! of every column in the last step (columns ordered longitude fastest,
    !! south to north; units of the interface). Needs keep_training_batch.
    !! Labels: self%last_step, self%last_time_seconds, self%last_dt.
    type(aquaplanet_physics), intent(in) :: self
    real(wp), intent(out) :: x(:, :), y(:, :)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. ready_with_step(self, status, message)) return
    status = gcm_err_state
    if (.not. self%config%keep_training_batch) then
      message = 'aquaplanet physics: training batch not kept (set keep_training_batch)'
      return
    end if
    if (any(shape(x) /= shape(self%batch_inputs)) .or. any(shape(y) /= shape(self%batch_outputs))) then
      message = 'aquaplanet physics: x and y must have shape (' // int_text(size(self%batch_inputs, 1)) // &
                ', ncol) and (' // int_text(size(self%batch_outputs, 1)) // ', ncol), ncol = ' // &
                int_text(self%ncol)
      return
    end if
    x = self%batch_inputs
    y = self%batch_outputs
    status = gcm_ok
    message = ''
  end subroutine aquaplanet_get_training_batch

  subroutine aquaplanet_get_surface_diagnostics(self, precip, evap, shflx, lhflx, sst, solin, &
                                                fsnt, fsns, flnt, flns, status, message)
    !! Surface and TOA diagnostics of the last step on the grid (nlon, nlat):
    !! precipitation and evaporation [kg m-2 s-1], sensible and latent heat
    !! flux (upward), insolation and the CAM-sign radiative fluxes [W m-2],
    !! SST [K].
    type(aquaplanet_physics), intent(in) :: self
    real(wp), intent(out) :: precip(:, :), evap(:, :), shflx(:, :), lhflx(:, :), sst(:, :), solin(:, :)
    real(wp), intent(out) :: fsnt(:, :), fsns(:, :), flnt(:, :), flns(:, :)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    integer :: grid(2)
    if (.not. ready_with_step(self, status, message)) return
    grid = [self%nlon, self%nlat]
    if (any(shape(precip) /= grid) .or. any(shape(evap) /= grid) .or. any(shape(shflx) /= grid) .or. &
        any(shape(lhflx) /= grid) .or. any(shape(sst) /= grid) .or. any(shape(solin) /= grid) .or. &
        any(shape(fsnt) /= grid) .or. any(shape(fsns) /= grid) .or. any(shape(flnt) /= grid) .or. &
        any(shape(flns) /= grid)) then
      status = gcm_err_state
      message = 'aquaplanet physics: diagnostics must have shape (nlon, nlat) = (' // int_text(self%nlon) // &
                ', ' // int_text(self%nlat) // ')'
      return
    end if
    precip = reshape(self%diag%emulated%precip, grid)
    evap = reshape(self%diag%evap, grid)
    shflx = reshape(self%diag%shflx, grid)
    lhflx = reshape(self%diag%lhflx, grid)
    sst = reshape(self%diag%sst, grid)
    solin = reshape(self%diag%solin, grid)
    fsnt = reshape(self%diag%emulated%fsnt, grid)
    fsns = reshape(self%diag%emulated%fsns, grid)
    flnt = reshape(self%diag%emulated%flnt, grid)
    flns = reshape(self%diag%emulated%flns, grid)
    status = gcm_ok
    message = ''
  end subroutine aquaplanet_get_surface_diagnostics

  subroutine aquaplanet_get_guard_diagnostics(self, flagged, on_fallback, status, message)
    !! The emulator guard's columns of the last step on the grid (nlon,
    !! nlat): flagged out of distribution, computed by the reference physics
    !! (1 or 0; zeros without an emulator guard).
    type(aquaplanet_physics), intent(in) :: self
    real(wp), intent(out) :: flagged(:, :), on_fallback(:, :)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. ready_with_step(self, status, message)) return
    flagged = 0.0_wp
    on_fallback = 0.0_wp
    select type (scheme => self%scheme)
    type is (emulator_physics)
      if (allocated(scheme%flagged)) then
        flagged = reshape(scheme%flagged(1:self%nlon * self%nlat), [self%nlon, self%nlat])
        on_fallback = reshape(scheme%on_fallback(1:self%nlon * self%nlat), [self%nlon, self%nlat])
      end if
    end select
    status = gcm_ok
    message = ''
  end subroutine aquaplanet_get_guard_diagnostics

  subroutine aquaplanet_finetune_status(self, enabled, loss_sum, loss_count, rounds, iterations, &
                                       stopped_step, stop_reason)
    !! The emulator's online fine-tuning (gcm_finetune): whether it runs,
    !! the sum and number of the rounds' losses since the last reset, the
    !! rounds of this model, the optimizer steps since compile (restarts
    !! included), and the step whose round failed (-1: none) and why.
    type(aquaplanet_physics), intent(in) :: self
    logical, intent(out) :: enabled
    real(wp), intent(out) :: loss_sum
    integer, intent(out) :: loss_count, iterations
    integer(int64), intent(out) :: rounds, stopped_step
    character(len=*), intent(out) :: stop_reason
    enabled = .false.
    loss_sum = 0.0_wp
    loss_count = 0
    iterations = 0
    rounds = 0
    stopped_step = -1
    stop_reason = ''
    select type (scheme => self%scheme)
    type is (emulator_physics)
      if (.not. scheme%options%finetune%enabled) return
      enabled = .true.
      loss_sum = scheme%tuner%loss_sum
      loss_count = scheme%tuner%loss_count
      rounds = scheme%tuner%rounds
      iterations = scheme%tuner%net%n_iterations()
      stopped_step = scheme%tuner%stopped_step
      if (allocated(scheme%tuner%stop_reason)) stop_reason = scheme%tuner%stop_reason
    end select
  end subroutine aquaplanet_finetune_status

  subroutine aquaplanet_finetune_reset_loss(self)
    !! Start a new sum of the fine-tuning losses (an output interval).
    type(aquaplanet_physics), intent(inout) :: self
    select type (scheme => self%scheme)
    type is (emulator_physics)
      call scheme%tuner%reset_loss()
    end select
  end subroutine aquaplanet_finetune_reset_loss

  subroutine aquaplanet_finetune_save(self, path, with_state, status, message)
    !! The fine-tuned network with its training state to the model file
    !! `path`, and with `with_state` whether tuning stopped to `path.state`.
    type(aquaplanet_physics), intent(in) :: self
    character(len=*), intent(in) :: path
    logical, intent(in) :: with_state
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    character(len=:), allocatable :: msg
    integer :: stat
    status = gcm_err_state
    message = 'aquaplanet physics: no fine-tuned emulator (options finetune, physics emulator)'
    select type (scheme => self%scheme)
    type is (emulator_physics)
      if (.not. scheme%options%finetune%enabled) return
      call scheme%tuner%save_state(path, stat, msg, with_state)
      message = msg
      if (stat == gcm_ok) status = gcm_ok
    end select
  end subroutine aquaplanet_finetune_save

  subroutine aquaplanet_finetune_load(self, path, status, message)
    !! Continue fine-tuning from `aquaplanet_finetune_save`'s files.
    type(aquaplanet_physics), intent(inout) :: self
    character(len=*), intent(in) :: path
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    character(len=:), allocatable :: msg
    integer :: stat
    status = gcm_err_state
    message = 'aquaplanet physics: no fine-tuned emulator (options finetune, physics emulator)'
    select type (scheme => self%scheme)
    type is (emulator_physics)
      call emulator_finetune_load(scheme, path, stat, msg)
      message = msg
      if (stat == gcm_ok) status = gcm_ok
    end select
  end subroutine aquaplanet_finetune_load

  subroutine aquaplanet_get_cloud_fraction(self, cloud_fraction, status, message)
    !! Cloud fraction of the last step (nlev, nlon, nlat), subcolumn mean;
    !! only the reference physics diagnoses clouds (with cloud_diagnostics).
    type(aquaplanet_physics), intent(in) :: self
    real(wp), intent(out) :: cloud_fraction(:, :, :)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. ready_with_step(self, status, message)) return
    status = gcm_err_state
    if (any(shape(cloud_fraction) /= [self%nlev, self%nlon, self%nlat])) then
      message = 'aquaplanet physics: cloud_fraction must have shape (nlev, nlon, nlat) = (' // &
                int_text(self%nlev) // ', ' // int_text(self%nlon) // ', ' // int_text(self%nlat) // ')'
      return
    end if
    select type (scheme => self%scheme)
    type is (reference_emulated_physics)
      if (.not. allocated(scheme%cloud_fraction)) then
        message = 'aquaplanet physics: cloud fraction not kept (set cloud_diagnostics)'
        return
      end if
      cloud_fraction = reshape(scheme%cloud_fraction, [self%nlev, self%nlon, self%nlat])
    class default
      message = 'aquaplanet physics: only the reference physics diagnoses cloud fraction (mode ' // &
                self%mode // ')'
      return
    end select
    status = gcm_ok
    message = ''
  end subroutine aquaplanet_get_cloud_fraction

  subroutine aquaplanet_get_convective_precip(self, precip_convective, status, message)
    !! Convective part of the precipitation of the last step (nlon, nlat)
    !! [kg m-2 s-1], subcolumn mean; only the reference physics knows it
    !! (with cloud_diagnostics).
    type(aquaplanet_physics), intent(in) :: self
    real(wp), intent(out) :: precip_convective(:, :)
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (.not. ready_with_step(self, status, message)) return
    status = gcm_err_state
    if (any(shape(precip_convective) /= [self%nlon, self%nlat])) then
      message = 'aquaplanet physics: precip_convective must have shape (nlon, nlat) = (' // &
                int_text(self%nlon) // ', ' // int_text(self%nlat) // ')'
      return
    end if
    select type (scheme => self%scheme)
    type is (reference_emulated_physics)
      if (.not. allocated(scheme%precip_convective)) then
        message = 'aquaplanet physics: convective precipitation not kept (set cloud_diagnostics)'
        return
      end if
      precip_convective = reshape(scheme%precip_convective, [self%nlon, self%nlat])
    class default
      message = 'aquaplanet physics: only the reference physics knows its convective precipitation (mode ' // &
                self%mode // ')'
      return
    end select
    status = gcm_ok
    message = ''
  end subroutine aquaplanet_get_convective_precip

  logical function ready_with_step(self, status, message)
    type(aquaplanet_physics), intent(in) :: self
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    ready_with_step = .false.
    status = gcm_err_state
    if (.not. self%ready) then
      message = 'aquaplanet physics: not set up'
    else if (.not. self%has_step) then
      message = 'aquaplanet physics: no physics step has completed yet'
    else
      ready_with_step = .true.
      status = gcm_ok
      message = ''
    end if
  end function ready_with_step

  subroutine set_aquaplanet_start(model, seed, status, message)
    !! A moist aquaplanet start at rest: surface air 1 K colder than the Qobs
    !! SST, a 6.5 K/km lapse rate (T = T_s sigma^(R_d Gamma / g)) down to a
    !! 200 K floor, relative humidity 0.7 sigma^3 (at most 0.7), ps = 1000
    !! hPa, and +-0.1 K of Park-Miller noise (seeded) to break the zonal
    !! symmetry. Starts a new run (step 0, forward first step).
    type(climate_model), intent(inout) :: model
    integer, intent(in) :: seed
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), parameter :: lapse_exponent = 287.04_wp * 6.5e-3_wp / 9.80616_wp, p0 = 1.0e5_wp
    real(wp), allocatable :: zero(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    real(wp) :: t_surface, sigma
    integer(int64) :: x
    integer :: i, j, k

    if (.not. model%initialized) then
      status = gcm_err_state
      message = 'set_aquaplanet_start: model not initialised'
      return
    end if
    associate (c => model%config, lat => model%tr%grid%lat)
      allocate (zero(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), q(c%nlev, c%nlon, c%nlat), &
                ps(c%nlon, c%nlat))
      x = 1_int64 + modulo(int(seed, int64), 2147483646_int64)
      do j = 1, c%nlat
        t_surface = sst_qobs(lat(j)) - 1.0_wp
        do i = 1, c%nlon
          do k = 1, c%nlev
            sigma = model%vert%full(k)
            x = modulo(16807_int64 * x, 2147483647_int64)
            t(k, i, j) = max(200.0_wp, t_surface * sigma**lapse_exponent) + &
                         0.2_wp * (real(x, wp) / 2147483647.0_wp - 0.5_wp)
            q(k, i, j) = 0.7_wp * sigma**3 * saturation_humidity(t(k, i, j), sigma * p0)
          end do
        end do
      end do
    end associate
    zero = 0.0_wp
    ps = p0
    call model_set_grid(model, zero, zero, t, q, ps, status, message)
    model%state%step = 0
  end subroutine set_aquaplanet_start

end module gcm_aquaplanet
