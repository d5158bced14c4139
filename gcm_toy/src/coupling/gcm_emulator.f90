module gcm_emulator
  !! A neural network (or an ensemble of them) as the GCM's emulated physics.
  !!
  !! `emulator_physics` extends the column physics' `emulated_physics_scheme`:
  !! each call gathers every column of the batch into one matrix
  !! x(2 nlev + 4, ncol) in the interface order (`gcm_emulator_interface`),
  !! runs each member network once on it (`fkb` library: one GEMM per layer),
  !! averages the members' outputs and scatters y(2 nlev + 5, ncol) back to
  !! dT/dt, dq/dt, the four radiative fluxes and precipitation.
  !!
  !! The networks apply their own input/output normalization (model file), so
  !! x and y are in physical units. `emulator_physics_setup` loads the
  !! members and refuses any whose declared inputs or outputs (sizes, names,
  !! units) differ from the GCM's interface for the model's nlev, naming the
  !! first difference.
  !!
  !! Nothing repairs the networks' output unless the options ask for it:
  !! `limit_humidity` clips dq/dt so that q + dt dq/dt >= 0, and
  !! `limit_precipitation` clips precipitation at zero (both off by default).
  !! A non-finite output is a failure (status physics_err_nonfinite) whose
  !! message names the output element and the column; `failed_column` and
  !! `failed_output` keep them for the host's failure record.
  use iso_fortran_env, only: real32, real64, int64
  use fkb, only: network, network_r64, fkb_ok, fkb_err_nonfinite
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

  type :: member_path
    character(len=:), allocatable :: path
  end type member_path

  type, extends(emulated_physics_scheme) :: emulator_physics
    !! One network, or an ensemble whose mean output is used.
    integer :: nlev = 0
      !! levels the members were checked for
    type(emulator_options) :: options
    type(network), allocatable :: members32(:)
    type(network_r64), allocatable :: members64(:)
    type(member_path), allocatable :: paths(:)
      !! model file of each member
    real(real64), allocatable :: x(:, :), y(:, :), y_sum(:, :)
    real(real32), allocatable :: x32(:, :), y32(:, :)
      !! work arrays, kept between calls (no allocation once sized)
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
    character(len=:), allocatable :: msg
    integer :: m, i, n, stat
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
    n = size(paths)
    self%nlev = nlev
    self%options = options
    allocate (self%paths(n))
    if (options%use_real64) then
      allocate (self%members64(n))
    else
      allocate (self%members32(n))
    end if
    do m = 1, n
      self%paths(m)%path = trim(paths(m))
      if (options%use_real64) then
        call self%members64(m)%load(self%paths(m)%path, stat, msg)
      else
        call self%members32(m)%load(self%paths(m)%path, stat, msg)
      end if
      if (stat /= fkb_ok) then
        message = 'emulator: cannot load ' // self%paths(m)%path // ': ' // msg
        return
      end if
      if (options%use_real64) then
        associate (net => self%members64(m))
          allocate (inputs(net%n_inputs()), outputs(net%n_outputs()))
          do i = 1, size(inputs)
            inputs(i) = element_label(net%input_name(i), net%input_units(i))
          end do
          do i = 1, size(outputs)
            outputs(i) = element_label(net%output_name(i), net%output_units(i))
          end do
        end associate
      else
        associate (net => self%members32(m))
          allocate (inputs(net%n_inputs()), outputs(net%n_outputs()))
          do i = 1, size(inputs)
            inputs(i) = element_label(net%input_name(i), net%input_units(i))
          end do
          do i = 1, size(outputs)
            outputs(i) = element_label(net%output_name(i), net%output_units(i))
          end do
        end associate
      end if
      call compare_interface(nlev, inputs, outputs, ok, msg)
      deallocate (inputs, outputs)
      if (.not. ok) then
        message = msg // ' (' // self%paths(m)%path // ')'
        return
      end if
    end do
    status = physics_ok
    message = ''
  end subroutine emulator_physics_setup

  pure integer function emulator_n_members(self)
    !! Number of member networks (0 before setup).
    class(emulator_physics), intent(in) :: self
    emulator_n_members = 0
    if (allocated(self%paths)) emulator_n_members = size(self%paths)
  end function emulator_n_members

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
    integer :: m, n_in, n_out

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
    if (.not. self%options%use_real64) self%x32(:, 1:ncol) = real(self%x(:, 1:ncol), real32)
    do m = 1, self%n_members()
      if (self%options%use_real64) then
        call self%members64(m)%predict(self%x(:, 1:ncol), self%y(:, 1:ncol), stat, msg)
      else
        call self%members32(m)%predict(self%x32(:, 1:ncol), self%y32(:, 1:ncol), stat, msg)
        if (stat == fkb_ok) self%y(:, 1:ncol) = real(self%y32(:, 1:ncol), real64)
      end if
      if (stat /= fkb_ok) then
        call report_failure(self, m, ncol, nlev, column_ids, stat, msg)
        return
      end if
      if (m == 1) then
        self%y_sum(:, 1:ncol) = self%y(:, 1:ncol)
      else
        self%y_sum(:, 1:ncol) = self%y_sum(:, 1:ncol) + self%y(:, 1:ncol)
      end if
    end do
    if (self%n_members() > 1) self%y_sum(:, 1:ncol) = self%y_sum(:, 1:ncol) / real(self%n_members(), real64)
    call unpack_emulator_outputs(nlev, self%y_sum(:, 1:ncol), dtdt, dqdt, fsnt, fsns, flnt, flns, precip)

    if (self%options%limit_humidity) dqdt = max(dqdt, -q / dt)
    if (self%options%limit_precipitation) precip = max(precip, 0.0_real64)
    stat = physics_ok
    msg = ''
  end subroutine emulator_compute

  subroutine reserve(self, n_in, n_out, ncol)
    !! Size the work arrays for at least ncol columns (kept between calls).
    type(emulator_physics), intent(inout) :: self
    integer, intent(in) :: n_in, n_out, ncol
    if (allocated(self%x)) then
      if (size(self%x, 1) == n_in .and. size(self%x, 2) >= ncol) return
      deallocate (self%x, self%y, self%y_sum)
      if (allocated(self%x32)) deallocate (self%x32, self%y32)
    end if
    allocate (self%x(n_in, ncol), self%y(n_out, ncol), self%y_sum(n_out, ncol))
    self%y = 0.0_real64
    if (.not. self%options%use_real64) then
      allocate (self%x32(n_in, ncol), self%y32(n_out, ncol))
      self%y32 = 0.0_real32
    end if
  end subroutine reserve

  subroutine report_failure(self, member, ncol, nlev, column_ids, stat, msg)
    !! Turn a failed predict into the scheme's status and message. For a
    !! non-finite output, find its column and element (predict fills y column
    !! by column and stops at the first bad one; y starts at zero) and name them.
    type(emulator_physics), intent(inout) :: self
    integer, intent(in) :: member, ncol, nlev
    integer, intent(in) :: column_ids(:)
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    character(len=:), allocatable :: who, value_text
    integer :: i, j

    who = 'emulator'
    if (self%n_members() > 1) who = 'emulator member ' // int_text(member) // ' of ' // int_text(self%n_members())
    if (stat /= fkb_err_nonfinite .or. index(msg, 'output') == 0) then
      msg = who // ' failed: ' // msg // ' (' // self%paths(member)%path // ')'
      stat = physics_err_state
      return
    end if
    stat = physics_err_nonfinite
    do j = 1, ncol
      do i = 1, size(self%y, 1)
        if (self%options%use_real64) then
          if (abs(self%y(i, j)) <= huge(1.0_real64)) cycle
          value_text = nonfinite_text(self%y(i, j) /= self%y(i, j), self%y(i, j) > 0)
          self%failed_value = self%y(i, j)
        else
          if (abs(self%y32(i, j)) <= huge(1.0_real32)) cycle
          value_text = nonfinite_text(self%y32(i, j) /= self%y32(i, j), self%y32(i, j) > 0)
          self%failed_value = real(self%y32(i, j), real64)
        end if
        self%failed_column = j
        self%failed_output = i
        self%failed_member = member
        msg = who // ' output ' // int_text(i) // " '" // emulator_output_name(nlev, i) // "' [" // &
              emulator_output_units(nlev, i) // '] is ' // value_text // ' in column ' // &
              int_text(column_ids(j)) // ' (' // self%paths(member)%path // ')'
        return
      end do
    end do
    msg = who // ' returned a non-finite output: ' // msg // ' (' // self%paths(member)%path // ')'
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
