module gcm_emulator
  !! A neural network (or an ensemble of them) as the GCM's emulated physics.
  !!
  !! `emulator_physics` extends the column physics' `emulated_physics_scheme`:
  !! each call gathers every column of the batch into one matrix
  !! x(2 nlev + 4, ncol) in the interface order (`gcm_emulator_interface`),
  !! makes one call of the `fkb` library's ensemble on it (a single network
  !! is an ensemble of one; members run in parallel, each a GEMM per layer)
  !! and scatters the members' mean y(2 nlev + 5, ncol) back to dT/dt,
  !! dq/dt, the four radiative fluxes and precipitation.
  !!
  !! The networks apply their own input/output normalization (model file), so
  !! x and y are in physical units. `emulator_physics_setup` loads the
  !! members and refuses any whose declared inputs or outputs (sizes, names,
  !! units) differ from the GCM's interface for the model's nlev, naming the
  !! first difference. Besides the library's layers, a 32-bit member may hold
  !! the custom column-water-conservation layer (`column_water_conservation`,
  !! fortran/example/custom_layer; registered here); the 64-bit networks
  !! (`use_real64`) have no version of it and refuse such a file.
  !!
  !! Nothing repairs the networks' output unless the options ask for it:
  !! `limit_humidity` clips dq/dt so that q + dt dq/dt >= 0, and
  !! `limit_precipitation` clips precipitation at zero (both off by default).
  !! A non-finite output is a failure (status physics_err_nonfinite) whose
  !! message names the output element and the column; `failed_column` and
  !! `failed_output` keep them for the host's failure record.
  use iso_fortran_env, only: real32, real64, int64
  use fkb, only: network, ensemble, ensemble_r64, fkb_ok, fkb_err_nonfinite, layer_registry
  use column_water_conservation, only: make_column_water_layer, column_water_kind
  use physics_status, only: physics_ok, physics_err_config, physics_err_state, physics_err_nonfinite
  use physics_configuration, only: physics_config
  use emulated_physics, only: emulated_physics_scheme
  use gcm_emulator_interface, only: emulator_n_inputs, emulator_n_outputs, emulator_output_name, &
                                    emulator_output_units, pack_emulator_inputs, unpack_emulator_outputs, &
                                    compare_interface, element_label, int_text
  implicit none
  private
  public :: emulator_physics, emulator_options, emulator_physics_setup

  type :: emulator_options
    !! How the networks run and what may be corrected (configuration as data).
    logical :: use_real64 = .false.
      !! compute in 64-bit reals (`network_r64`); default: 32-bit networks,
      !! inputs converted from and outputs to 64 bits
    logical :: limit_humidity = .false.
      !! clip dq/dt at -q/dt so that q + dt dq/dt >= 0
    logical :: limit_precipitation = .false.
      !! clip precipitation at zero
  end type emulator_options

  type, extends(emulated_physics_scheme) :: emulator_physics
    !! One network, or an ensemble whose mean output is used.
    integer :: nlev = 0
      !! levels the members were checked for
    type(emulator_options) :: options
    type(ensemble) :: ens32
    type(ensemble_r64) :: ens64
      !! the members, in the kind `options%use_real64` chose
    real(real64), allocatable :: x(:, :), y(:, :), spread(:, :), members(:, :, :)
    real(real32), allocatable :: x32(:, :), y32(:, :), spread32(:, :), members32(:, :, :)
      !! work arrays (inputs, members' mean and standard deviation, each
      !! member's outputs), kept between calls (no allocation once sized)
    integer :: failed_column = 0
      !! after a non-finite output: its column in the batch (0 otherwise)
    integer :: failed_output = 0
      !! after a non-finite output: the output element (0 otherwise)
    integer :: failed_member = 0
      !! after a non-finite output: the member that produced it (0 otherwise)
    real(real64) :: failed_value = 0.0_real64
      !! after a non-finite output: the value (NaN or +-Inf)
  contains
    procedure :: compute => emulator_compute
    procedure :: n_members => emulator_n_members
    procedure :: member_path => emulator_member_path
  end type emulator_physics

contains

  subroutine emulator_physics_setup(self, paths, nlev, options, status, message)
    !! Load the member networks from their model files (one path: a single
    !! emulator; several: an ensemble, outputs averaged) and check each
    !! against the interface for nlev levels. status = physics_ok, or
    !! physics_err_config with a one-line message naming the file and the
    !! first problem (unreadable file, size, name or units mismatch).
    type(emulator_physics), intent(out) :: self
    character(len=*), intent(in) :: paths(:)
      !! model files (trailing blanks ignored)
    integer, intent(in) :: nlev
    type(emulator_options), intent(in) :: options
    integer, intent(out) :: status
    character(len=:), allocatable, intent(out) :: message
    type(element_label), allocatable :: inputs(:), outputs(:)
    type(network) :: probe
    type(layer_registry) :: registry
      !! the custom layers a 32-bit member may hold: column water conservation
    character(len=:), allocatable :: msg
    integer :: m, i, stat
    logical :: ok

    status = physics_err_config
    if (size(paths) < 1) then
      message = 'emulator: no model file given'
      return
    end if
    if (nlev < 2) then
      message = 'emulator: nlev must be >= 2'
      return
    end if
    self%nlev = nlev
    self%options = options
    call registry%add(column_water_kind, make_column_water_layer, stat, msg)
    ! each member against the GCM's interface first (a message naming what
    ! the GCM expects), then all of them as one ensemble
    do m = 1, size(paths)
      call probe%load(trim(paths(m)), stat, msg, registry=registry)
      if (stat /= fkb_ok) then
        message = 'emulator: cannot load ' // trim(paths(m)) // ': ' // msg
        return
      end if
      allocate (inputs(probe%n_inputs()), outputs(probe%n_outputs()))
      do i = 1, size(inputs)
        inputs(i) = element_label(probe%input_name(i), probe%input_units(i))
      end do
      do i = 1, size(outputs)
        outputs(i) = element_label(probe%output_name(i), probe%output_units(i))
      end do
      call compare_interface(nlev, inputs, outputs, ok, msg)
      deallocate (inputs, outputs)
      if (.not. ok) then
        message = msg // ' (' // trim(paths(m)) // ')'
        return
      end if
    end do
    call probe%clear()
    if (options%use_real64) then
      call self%ens64%load(paths, stat, msg)
    else
      call self%ens32%load(paths, stat, msg, registry=registry)
    end if
    if (stat /= fkb_ok) then
      message = 'emulator: cannot load ' // msg
      return
    end if
    status = physics_ok
    message = ''
  end subroutine emulator_physics_setup

  pure integer function emulator_n_members(self)
    !! Number of member networks (0 before setup).
    class(emulator_physics), intent(in) :: self
    if (self%options%use_real64) then
      emulator_n_members = self%ens64%n_members()
    else
      emulator_n_members = self%ens32%n_members()
    end if
  end function emulator_n_members

  pure function emulator_member_path(self, m) result(path)
    !! The model file of member `m`.
    class(emulator_physics), intent(in) :: self
    integer, intent(in) :: m
    character(len=:), allocatable :: path
    if (self%options%use_real64) then
      path = self%ens64%member_path(m)
    else
      path = self%ens32%member_path(m)
    end if
  end function emulator_member_path

  subroutine emulator_compute(self, config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, &
                              shflx, lhflx, dt, step, column_ids, seed, dtdt, dqdt, &
                              fsnt, fsns, flnt, flns, precip, stat, msg)
    !! The emulated physics of a batch: gather, predict (each member once),
    !! average, scatter, then the optional limiters.
    class(emulator_physics), intent(inout) :: self
    type(physics_config), intent(in) :: config
    integer, intent(in) :: ncol, nlev
    real(real64), intent(in) :: t(:, :), q(:, :), ps(:)
    real(real64), intent(in) :: sigma(:), sigma_half(0:)
    real(real64), intent(in) :: solin(:), shflx(:), lhflx(:)
    real(real64), intent(in) :: dt
    integer(int64), intent(in) :: step
    integer, intent(in) :: column_ids(:)
    integer(int64), intent(in) :: seed
    real(real64), intent(out) :: dtdt(:, :), dqdt(:, :)
    real(real64), intent(out) :: fsnt(:), fsns(:), flnt(:), flns(:), precip(:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer :: n_in, n_out

    self%failed_column = 0
    self%failed_output = 0
    self%failed_member = 0
    stat = physics_err_state
    if (self%n_members() == 0) then
      msg = 'emulator: no network loaded (call emulator_physics_setup first)'
      return
    end if
    if (nlev /= self%nlev) then
      msg = 'emulator: checked for ' // int_text(self%nlev) // ' levels, called with ' // int_text(nlev)
      return
    end if
    if (any(shape(t) /= [nlev, ncol]) .or. any(shape(q) /= [nlev, ncol]) .or. size(ps) /= ncol .or. &
        size(solin) /= ncol .or. size(shflx) /= ncol .or. size(lhflx) /= ncol) then
      msg = 'emulator: inputs must have shape (nlev, ncol) and (ncol)'
      return
    end if
    n_in = emulator_n_inputs(nlev)
    n_out = emulator_n_outputs(nlev)
    call reserve(self, n_in, n_out, ncol)

    call pack_emulator_inputs(nlev, t, q, ps, solin, shflx, lhflx, self%x(:, 1:ncol))
    if (self%options%use_real64) then
      call self%ens64%predict(self%x(:, 1:ncol), self%y(:, 1:ncol), self%spread(:, 1:ncol), stat, msg, &
                              members=self%members(:, 1:ncol, :))
    else
      self%x32(:, 1:ncol) = real(self%x(:, 1:ncol), real32)
      call self%ens32%predict(self%x32(:, 1:ncol), self%y32(:, 1:ncol), self%spread32(:, 1:ncol), stat, msg, &
                              members=self%members32(:, 1:ncol, :))
      if (stat == fkb_ok) self%y(:, 1:ncol) = real(self%y32(:, 1:ncol), real64)
    end if
    if (stat /= fkb_ok) then
      call report_failure(self, ncol, nlev, column_ids, stat, msg)
      return
    end if
    call unpack_emulator_outputs(nlev, self%y(:, 1:ncol), dtdt, dqdt, fsnt, fsns, flnt, flns, precip)

    if (self%options%limit_humidity) dqdt = max(dqdt, -q / dt)
    if (self%options%limit_precipitation) precip = max(precip, 0.0_real64)
    stat = physics_ok
    msg = ''
  end subroutine emulator_compute

  subroutine reserve(self, n_in, n_out, ncol)
    !! Size the work arrays for at least ncol columns (kept between calls).
    type(emulator_physics), intent(inout) :: self
    integer, intent(in) :: n_in, n_out, ncol
    integer :: nm
    if (allocated(self%x)) then
      if (size(self%x, 1) == n_in .and. size(self%x, 2) >= ncol) return
      deallocate (self%x, self%y, self%spread, self%members)
      if (allocated(self%x32)) deallocate (self%x32, self%y32, self%spread32, self%members32)
    end if
    nm = self%n_members()
    allocate (self%x(n_in, ncol), self%y(n_out, ncol), self%spread(n_out, ncol), &
              self%members(n_out, ncol, nm))
    self%members = 0.0_real64
    if (.not. self%options%use_real64) then
      allocate (self%x32(n_in, ncol), self%y32(n_out, ncol), self%spread32(n_out, ncol), &
                self%members32(n_out, ncol, nm))
      self%members32 = 0.0_real32
    end if
  end subroutine reserve

  subroutine report_failure(self, ncol, nlev, column_ids, stat, msg)
    !! Turn a failed predict into the scheme's status and message. For a
    !! non-finite output, find the first member, column and element that
    !! has one (the ensemble reports the first failing member; a member's
    !! predict writes its outputs before refusing them) and name them.
    type(emulator_physics), intent(inout) :: self
    integer, intent(in) :: ncol, nlev
    integer, intent(in) :: column_ids(:)
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    character(len=:), allocatable :: who, value_text
    real(real64) :: v
    integer :: i, j, m

    if (stat /= fkb_err_nonfinite .or. index(msg, 'output') == 0) then
      msg = 'emulator failed: ' // msg
      stat = physics_err_state
      return
    end if
    stat = physics_err_nonfinite
    do m = 1, self%n_members()
      do j = 1, ncol
        do i = 1, size(self%y, 1)
          if (self%options%use_real64) then
            v = self%members(i, j, m)
          else
            v = real(self%members32(i, j, m), real64)
          end if
          if (abs(v) <= huge(1.0_real64)) cycle
          value_text = nonfinite_text(v /= v, v > 0)
          self%failed_value = v
          self%failed_column = j
          self%failed_output = i
          self%failed_member = m
          who = 'emulator'
          if (self%n_members() > 1) who = 'emulator member ' // int_text(m) // ' of ' // &
                                          int_text(self%n_members())
          msg = who // ' output ' // int_text(i) // " '" // emulator_output_name(nlev, i) // "' [" // &
                emulator_output_units(nlev, i) // '] is ' // value_text // ' in column ' // &
                int_text(column_ids(j)) // ' (' // self%member_path(m) // ')'
          return
        end do
      end do
    end do
    msg = 'emulator returned a non-finite output: ' // msg
  end subroutine report_failure

  pure function nonfinite_text(is_nan, positive) result(text)
    logical, intent(in) :: is_nan, positive
    character(len=:), allocatable :: text
    if (is_nan) then
      text = 'NaN'
    else if (positive) then
      text = '+Inf'
    else
      text = '-Inf'
    end if
  end function nonfinite_text

end module gcm_emulator
