module gcm_emulator
  !! A neural network (or an ensemble of them) as the GCM's emulated physics.
  !!
  !! `emulator_physics` extends the column physics' `emulated_physics_scheme`:
  !! each call gathers every column of the batch into one matrix
  !! x(2 nlev + 4, ncol) in the interface order (`gcm_emulator_interface`),
  !! makes one call of the `fkb` library's ensemble on it (a single network
  !! is an ensemble of one; members run in parallel, each a GEMM per layer;
  !! 32 or 64 bits behind the one handle of `gcm_emulator_networks`)
  !! and scatters the members' mean y(2 nlev + 5, ncol) back to dT/dt,
  !! dq/dt, the four radiative fluxes and precipitation.
  !!
  !! The networks apply their own input/output normalization (model file), so
  !! x and y are in physical units. `emulator_physics_setup` loads the
  !! members and refuses any whose declared inputs or outputs (sizes, names,
  !! units) differ from the GCM's interface for the model's nlev, naming the
  !! first difference. Besides the library's layers, a member may hold the
  !! custom column-water-conservation layer (fortran/example/custom_layer,
  !! written once for both kinds; registered here for each).
  !!
  !! Nothing repairs the networks' output unless the options ask for it:
  !! `limit_humidity` clips dq/dt so that q + dt dq/dt >= 0, and
  !! `limit_precipitation` clips precipitation at zero (both off by default).
  !! A non-finite output is a failure (status gcm_err_nonfinite) whose
  !! message names the output element and the column; `failed_column` and
  !! `failed_output` keep them for the host's failure record.
  !!
  !! The out-of-distribution guard (off by default: then nothing of it
  !! runs) scores every column's inputs against the training inputs'
  !! statistics of the (first) member's model file (`network%guard`,
  !! docs/model-file.md "Input statistics"). Policy `guard_clip` clamps the
  !! inputs into the widened training range before predicting; policy
  !! `guard_fallback` runs the reference physics (`reference_emulated_physics`,
  !! whose random numbers are keyed by column, so a column's result does not
  !! depend on which others fall back) on the flagged columns in the same
  !! call, and also on any column whose outputs are not finite. `flagged`
  !! and `on_fallback` keep the last call's columns (1 or 0) for the
  !! host's diagnostics.
  !!
  !! Partial coupling (as in ClimSim-Online): before `network_start_step`
  !! the reference physics alone runs (a spin-up; the network is not
  !! called); after it the outputs are `a * network + (1 - a) * reference`
  !! with the weight `a` of `network_weight` and its ramp in time (constant;
  !! linear from 0 over `ramp_steps` steps from `ramp_start_step`; or a step
  !! from 0 to it there), and the output groups of `reference_outputs`
  !! (dT/dt, dq/dt, FSNT, FSNS, FLNT, FLNS, PRECT) come from the reference
  !! physics. Mixing runs the reference physics on every column.
  !!
  !! Online fine-tuning (off by default: then nothing of it exists or runs;
  !! a single 32-bit network only): the network the emulator predicts with
  !! is an `online_tuner`'s (`gcm_finetune`), which on its schedule takes
  !! optimizer steps on a seeded subset of the columns with the reference
  !! physics (`fallback`, keyed by column as above) as the teacher, at the
  !! start of the call, before the batch is predicted with the weights as
  !! they then stand. The teacher's outputs train the network only: the
  !! columns it ran on still get the network's outputs.
  use iso_fortran_env, only: real32, real64, int64
  use fkb, only: network, fkb_ok, fkb_err_nonfinite, layer_registry, layer_registry_r64
  use gcm_emulator_networks, only: emulator_networks
  use column_water_conservation, only: make_column_water_layer, column_water_kind
  use column_water_conservation_r64, only: make_column_water_layer_r64 => make_column_water_layer
  use gcm_status, only: gcm_ok, gcm_err_config, gcm_err_state, gcm_err_nonfinite
  use physics_configuration, only: physics_config
  use emulated_physics, only: emulated_physics_scheme, reference_emulated_physics
  use column_physics_io, only: column_inputs, column_outputs, select_columns, copy_columns
  use gcm_finetune, only: finetune_options, online_tuner
  use gcm_emulator_interface, only: emulator_n_inputs, emulator_n_outputs, emulator_output_name, &
                                    emulator_output_units, pack_emulator_inputs, unpack_emulator_outputs, &
                                    pack_emulator_outputs, &
                                    compare_interface, element_label, int_text
  implicit none
  private
  public :: emulator_physics, emulator_options, emulator_physics_setup, guard_off, guard_clip, guard_fallback
  public :: finetune_options, emulator_finetune_load

  integer, parameter :: guard_off = 0, guard_clip = 1, guard_fallback = 2
    !! policies of the out-of-distribution guard
  integer, parameter, public :: ramp_constant = 0, ramp_linear = 1, ramp_step = 2
    !! how the network's weight reaches `network_weight`
  integer, parameter, public :: n_output_groups = 7
    !! dT/dt, dq/dt, FSNT, FSNS, FLNT, FLNS, PRECT

  type :: emulator_options
    !! How the networks run and what may be corrected (configuration as data).
    logical :: use_real64 = .false.
      !! compute in 64-bit reals (`network_r64`); default: 32-bit networks,
      !! inputs converted from and outputs to 64 bits
    logical :: limit_humidity = .false.
      !! clip dq/dt at -q/dt so that q + dt dq/dt >= 0
    logical :: limit_precipitation = .false.
      !! clip precipitation at zero
    integer :: guard = guard_off
      !! out-of-distribution policy: guard_off, guard_clip or guard_fallback
    real(real64) :: guard_margin = 0.1_real64
      !! widening of each input's training range, a fraction of its width
    real(real64) :: guard_factor = 2.0_real64
      !! flag beyond this multiple of the training's 99.9th-percentile distance
    real(real64) :: network_weight = 1.0_real64
      !! `a` of `a * network + (1 - a) * reference` once ramped
    integer :: ramp = ramp_constant
    integer(int64) :: ramp_start_step = 0, ramp_steps = 0
    integer(int64) :: network_start_step = -huge(1_int64)
      !! the reference physics alone before this model step
    logical :: reference_outputs(n_output_groups) = .false.
      !! output groups taken from the reference physics
    type(finetune_options) :: finetune
      !! online fine-tuning (`gcm_finetune`); off by default
  end type emulator_options

  type, extends(emulated_physics_scheme) :: emulator_physics
    !! One network, or an ensemble whose mean output is used.
    integer :: nlev = 0
      !! levels the members were checked for
    type(emulator_options) :: options
    type(emulator_networks) :: networks
      !! the members, in the kind `options%use_real64` chose (gcm_emulator_networks)
    real(real64), allocatable :: x(:, :), y(:, :)
      !! work arrays (inputs, the members' mean), kept between calls (no
      !! allocation once sized)
    integer :: failed_column = 0
      !! after a non-finite output: its column in the batch (0 otherwise)
    integer :: failed_output = 0
      !! after a non-finite output: the output element (0 otherwise)
    integer :: failed_member = 0
      !! after a non-finite output: the member that produced it (0 otherwise)
    real(real64) :: failed_value = 0.0_real64
      !! after a non-finite output: the value (NaN or +-Inf)
    type(network) :: guard_net
      !! the first member, for its input statistics (guard on; 32 bit, as
      !! the custom layers the members may end in)
    type(reference_emulated_physics) :: fallback
      !! the reference physics of the flagged columns (guard_fallback)
    real(real32), allocatable :: max_abs_z(:), distance(:), guard_x(:, :)
    integer, allocatable :: n_outside(:)
    logical, allocatable :: guard_flags(:)
    real(real64), allocatable :: y_reference(:, :)
      !! the reference physics' outputs of every column (partial coupling)
    real(real64), allocatable :: flagged(:), on_fallback(:)
      !! the last call's columns: flagged out of distribution, computed by
      !! the reference physics (1 or 0)
    type(online_tuner) :: tuner
      !! the network being fine-tuned online (options%finetune%enabled)
  contains
    procedure :: compute => emulator_compute
    procedure :: n_members => emulator_n_members
    procedure :: member_path => emulator_member_path
  end type emulator_physics

contains

  subroutine emulator_physics_setup(self, paths, nlev, options, status, message)
    !! Load the member networks from their model files (one path: a single
    !! emulator; several: an ensemble, outputs averaged) and check each
    !! against the interface for nlev levels. status = gcm_ok, or
    !! gcm_err_config with a one-line message naming the file and the
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
    type(layer_registry_r64) :: registry_r64
      !! the custom layers a member may hold, of each kind: column water conservation
    character(len=:), allocatable :: msg
    integer :: m, i, stat
    logical :: ok

    status = gcm_err_config
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
    call registry_r64%add(column_water_kind, make_column_water_layer_r64, stat, msg)
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
    if (options%guard /= guard_off) then
      if (options%guard /= guard_clip .and. options%guard /= guard_fallback) then
        message = 'emulator: unknown guard policy ' // int_text(options%guard)
        return
      end if
      if (.not. (options%guard_margin >= 0.0_real64 .and. options%guard_factor > 0.0_real64)) then
        message = 'emulator: the guard margin must be >= 0 and its distance factor > 0'
        return
      end if
      call self%guard_net%load(trim(paths(1)), stat, msg, registry=registry)
      if (stat == fkb_ok .and. .not. self%guard_net%has_input_statistics()) then
        message = 'emulator: ' // trim(paths(1)) // ' has no statistics of its training inputs, which the ' // &
                  'guard needs (a model exported with its training data, e.g. by fkb train)'
        return
      end if
      if (stat /= fkb_ok) then
        message = 'emulator: cannot load ' // trim(paths(1)) // ': ' // msg
        return
      end if
    end if
    if (options%finetune%enabled) then
      if (size(paths) /= 1 .or. options%use_real64) then
        message = 'emulator: fine-tuning takes one network computing in float32 (physics emulator, ' // &
                  'emulator_precision float32)'
        return
      end if
      call self%tuner%setup(trim(paths(1)), registry, options%finetune, stat, msg)
      if (stat /= gcm_ok) then
        message = 'emulator: ' // msg
        return
      end if
    end if
    call self%networks%load(paths, options%use_real64, registry, registry_r64, stat, msg)
    if (stat /= fkb_ok) then
      message = 'emulator: cannot load ' // msg
      return
    end if
    status = gcm_ok
    message = ''
  end subroutine emulator_physics_setup

  subroutine emulator_finetune_load(self, path, status, message)
    !! Continue fine-tuning from the state `online_tuner%save_state` wrote
    !! to `path` (a restart). status gcm_ok, or gcm_err_state with
    !! a one-line message (also when this emulator does not fine-tune).
    type(emulator_physics), intent(inout) :: self
    character(len=*), intent(in) :: path
    integer, intent(out) :: status
    character(len=:), allocatable, intent(out) :: message
    type(layer_registry) :: registry
    character(len=:), allocatable :: msg
    integer :: stat
    status = gcm_err_state
    if (.not. self%options%finetune%enabled) then
      message = 'emulator: this run does not fine-tune; it has no state to continue'
      return
    end if
    call registry%add(column_water_kind, make_column_water_layer, stat, msg)
    call self%tuner%load_state(path, registry, status, message)
  end subroutine emulator_finetune_load

  pure integer function emulator_n_members(self)
    !! Number of member networks (0 before setup).
    class(emulator_physics), intent(in) :: self
    emulator_n_members = self%networks%n_members()
  end function emulator_n_members

  pure function emulator_member_path(self, m) result(path)
    !! The model file of member `m`.
    class(emulator_physics), intent(in) :: self
    integer, intent(in) :: m
    character(len=:), allocatable :: path
    path = self%networks%member_path(m)
  end function emulator_member_path

  subroutine emulator_compute(self, config, inputs, outputs, stat, msg)
    !! The emulated physics of a batch: gather, predict (each member once),
    !! average, scatter, then the optional limiters.
    class(emulator_physics), intent(inout) :: self
    type(physics_config), intent(in) :: config
    type(column_inputs), intent(in) :: inputs
    type(column_outputs), intent(inout) :: outputs
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer :: n_in, n_out, ncol, nlev
    real(real64) :: weight
    logical :: mixing

    ncol = inputs%ncol
    nlev = inputs%nlev
    self%failed_column = 0
    self%failed_output = 0
    self%failed_member = 0
    stat = gcm_err_state
    if (self%n_members() == 0) then
      msg = 'emulator: no network loaded (call emulator_physics_setup first)'
      return
    end if
    if (nlev /= self%nlev) then
      msg = 'emulator: checked for ' // int_text(self%nlev) // ' levels, called with ' // int_text(nlev)
      return
    end if
    if (any(shape(inputs%t) /= [nlev, ncol]) .or. any(shape(inputs%q) /= [nlev, ncol]) .or. &
        size(inputs%ps) /= ncol .or. size(inputs%solin) /= ncol .or. size(inputs%shflx) /= ncol .or. &
        size(inputs%lhflx) /= ncol .or. size(inputs%column_ids) /= ncol) then
      msg = 'emulator: inputs must have shape (nlev, ncol) and (ncol)'
      return
    end if
    n_in = emulator_n_inputs(nlev)
    n_out = emulator_n_outputs(nlev)
    call reserve(self, n_in, n_out, ncol)
    if (self%options%finetune%enabled) then
      if (self%tuner%due(inputs%step)) then
        call tune(self, config, inputs, stat, msg)
        if (stat /= gcm_ok) return
      end if
    end if
    weight = network_weight(self%options, inputs%step)
    mixing = weight < 1.0_real64 .or. any(self%options%reference_outputs)
    if (mixing) then
      call self%fallback%compute(config, inputs, outputs, stat, msg)
      if (stat /= gcm_ok) then
        msg = 'emulator: the reference physics of partial coupling: ' // msg
        return
      end if
      if (weight == 0.0_real64) then
        ! spin-up (or a zero weight): the reference physics alone, the network not called
        if (allocated(self%flagged)) self%flagged(1:ncol) = 0.0_real64
        if (allocated(self%on_fallback)) self%on_fallback(1:ncol) = 0.0_real64
        return
      end if
      call pack_emulator_outputs(outputs, self%y_reference(:, 1:ncol))
    end if

    call pack_emulator_inputs(inputs, self%x(:, 1:ncol))
    if (self%options%guard /= guard_off) then
      self%guard_x(:, 1:ncol) = real(self%x(:, 1:ncol), real32)
      call self%guard_net%guard(self%guard_x(:, 1:ncol), self%max_abs_z(1:ncol), self%distance(1:ncol), &
                                self%n_outside(1:ncol), self%guard_flags(1:ncol), stat, msg, &
                                real(self%options%guard_margin, real32), real(self%options%guard_factor, real32))
      if (stat /= fkb_ok) then
        msg = 'emulator guard: ' // msg
        stat = gcm_err_state
        return
      end if
      self%flagged(1:ncol) = merge(1.0_real64, 0.0_real64, self%guard_flags(1:ncol))
      self%on_fallback(1:ncol) = 0.0_real64
      if (self%options%guard == guard_clip) then
        call self%guard_net%clip_inputs(self%guard_x(:, 1:ncol), stat, msg, real(self%options%guard_margin, real32))
      ! the clamped values only where an input was outside: the others keep their 64 bits
      where (self%guard_x(:, 1:ncol) /= real(self%x(:, 1:ncol), real32)) self%x(:, 1:ncol) = self%guard_x(:, 1:ncol)
        if (stat /= fkb_ok) then
          msg = 'emulator guard: ' // msg
          stat = gcm_err_state
          return
        end if
      end if
    end if
    if (self%options%finetune%enabled) then
      ! the tuned network (the ensemble of one's member, as it computes it)
      call self%networks%predict(self%x(:, 1:ncol), self%y(:, 1:ncol), stat, msg, tuned=self%tuner%net)
    else
      call self%networks%predict(self%x(:, 1:ncol), self%y(:, 1:ncol), stat, msg)
    end if
    if (stat == fkb_err_nonfinite .and. self%options%guard == guard_fallback .and. index(msg, 'output') > 0) then
      ! the reference physics takes over the columns whose outputs are not finite
      call members_mean(self, ncol)
      stat = fkb_ok
    end if
    if (stat /= fkb_ok) then
      call report_failure(self, ncol, nlev, inputs%column_ids, stat, msg)
      return
    end if
    if (mixing) call mix_outputs(self, nlev, ncol, weight)
    call unpack_emulator_outputs(nlev, self%y(:, 1:ncol), outputs)
    if (self%options%guard == guard_fallback) then
      call fall_back(self, config, inputs, mixing, outputs, stat, msg)
      if (stat /= gcm_ok) return
    end if

    if (self%options%limit_humidity) outputs%dqdt = max(outputs%dqdt, -inputs%q / inputs%dt)
    if (self%options%limit_precipitation) outputs%precip = max(outputs%precip, 0.0_real64)
    stat = gcm_ok
    msg = ''
  end subroutine emulator_compute

  pure real(real64) function network_weight(options, step) result(a)
    !! The network's weight `a` at model step `step` (0 in the spin-up).
    type(emulator_options), intent(in) :: options
    integer(int64), intent(in) :: step
    if (step < options%network_start_step) then
      a = 0.0_real64
      return
    end if
    a = options%network_weight
    select case (options%ramp)
    case (ramp_linear)
      if (options%ramp_steps > 0) a = a * min(max(real(step - options%ramp_start_step, real64) / &
                                                  real(options%ramp_steps, real64), 0.0_real64), 1.0_real64)
    case (ramp_step)
      if (step < options%ramp_start_step + options%ramp_steps) a = 0.0_real64
    end select
  end function network_weight

  subroutine mix_outputs(self, nlev, ncol, weight)
    !! y = a y + (1 - a) y_reference, the reference's for its output groups.
    type(emulator_physics), intent(inout) :: self
    integer, intent(in) :: nlev, ncol
    real(real64), intent(in) :: weight
    integer :: i, group
    do i = 1, emulator_n_outputs(nlev)
      group = min(i - 1, 2 * nlev - 1) / nlev + 1
      if (i > 2 * nlev) group = i - 2 * nlev + 2
      if (self%options%reference_outputs(group)) then
        self%y(i, 1:ncol) = self%y_reference(i, 1:ncol)
      else if (weight < 1.0_real64) then
        self%y(i, 1:ncol) = weight * self%y(i, 1:ncol) + (1.0_real64 - weight) * self%y_reference(i, 1:ncol)
      end if
    end do
  end subroutine mix_outputs

  subroutine members_mean(self, ncol)
    !! The members' mean output, member by member in order, where the
    !! ensemble stopped at a non-finite output (kept in `members`).
    type(emulator_physics), intent(inout) :: self
    integer, intent(in) :: ncol
    integer :: m
    self%y(:, 1:ncol) = 0.0_real64
    do m = 1, self%n_members()
      self%y(:, 1:ncol) = self%y(:, 1:ncol) + self%networks%member_outputs(m, ncol)
    end do
    self%y(:, 1:ncol) = self%y(:, 1:ncol) / real(self%n_members(), real64)
  end subroutine members_mean

  subroutine tune(self, config, inputs, stat, msg)
    !! A fine-tuning round: the reference physics on the tuner's columns,
    !! then its optimizer steps on their inputs and the reference's outputs.
    type(emulator_physics), intent(inout) :: self
    type(physics_config), intent(in) :: config
    type(column_inputs), intent(in) :: inputs
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer, allocatable :: idx(:)
    type(column_inputs) :: taught
    type(column_outputs) :: teacher
    real(real64), allocatable :: xr(:, :), yr(:, :)
    call self%tuner%choose_columns(inputs%step, inputs%column_ids(1:inputs%ncol), idx)
    call reference_on_columns(self, config, inputs, idx, 'emulator fine-tuning, the reference physics (teacher)', &
                              taught, teacher, stat, msg)
    if (stat /= gcm_ok) return
    allocate (xr(emulator_n_inputs(inputs%nlev), size(idx)), yr(emulator_n_outputs(inputs%nlev), size(idx)))
    call pack_emulator_inputs(taught, xr)
    call pack_emulator_outputs(teacher, yr)
    call self%tuner%learn(real(xr, real32), real(yr, real32), inputs%step, stat, msg)
    if (stat /= gcm_ok) msg = 'emulator ' // msg
  end subroutine tune

  subroutine fall_back(self, config, inputs, mixing, outputs, stat, msg)
    !! The reference physics on the flagged columns and on those whose
    !! outputs are not finite, gathered into one batch and scattered back.
    !! With partial coupling (`mixing`) the reference physics has already
    !! run on every column: its outputs (`y_reference`) are taken instead
    !! (the same numbers, its columns being independent of each other).
    type(emulator_physics), intent(inout) :: self
    type(physics_config), intent(in) :: config
    type(column_inputs), intent(in) :: inputs
    logical, intent(in) :: mixing
    type(column_outputs), intent(inout) :: outputs
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer, allocatable :: idx(:)
    type(column_inputs) :: flagged_inputs
    type(column_outputs) :: reference
    integer :: j, ncol
    logical :: take(inputs%ncol)
    ncol = inputs%ncol
    do j = 1, ncol
      take(j) = self%guard_flags(j) .or. .not. all(abs(self%y(:, j)) <= huge(1.0_real64))
    end do
    idx = pack([(j, j = 1, ncol)], take)
    self%on_fallback(1:ncol) = merge(1.0_real64, 0.0_real64, take)
    stat = gcm_ok
    msg = ''
    if (size(idx) == 0) return
    if (mixing) then
      call unpack_emulator_outputs(inputs%nlev, self%y_reference(:, idx), reference)
    else
      call reference_on_columns(self, config, inputs, idx, 'emulator fallback to the reference physics', &
                                flagged_inputs, reference, stat, msg)
      if (stat /= gcm_ok) return
    end if
    call copy_columns(reference, idx, outputs)
  end subroutine fall_back

  subroutine reference_on_columns(self, config, inputs, idx, context, selected, outputs, stat, msg)
    !! The reference physics on the columns idx(:) of `inputs`, gathered
    !! into the batch `selected`; a failure's message starts with `context`.
    type(emulator_physics), intent(inout) :: self
    type(physics_config), intent(in) :: config
    type(column_inputs), intent(in) :: inputs
    integer, intent(in) :: idx(:)
    character(len=*), intent(in) :: context
    type(column_inputs), intent(inout) :: selected
    type(column_outputs), intent(inout) :: outputs
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    call select_columns(inputs, idx, selected)
    call self%fallback%compute(config, selected, outputs, stat, msg)
    if (stat /= gcm_ok) msg = context // ': ' // msg
  end subroutine reference_on_columns

  subroutine reserve(self, n_in, n_out, ncol)
    !! Size the work arrays for at least ncol columns (kept between calls).
    type(emulator_physics), intent(inout) :: self
    integer, intent(in) :: n_in, n_out, ncol
    if (allocated(self%x)) then
      if (size(self%x, 1) == n_in .and. size(self%x, 2) >= ncol) return
      deallocate (self%x, self%y)
      deallocate (self%max_abs_z, self%distance, self%n_outside, self%guard_flags, self%flagged, self%on_fallback, &
                  self%y_reference, self%guard_x)
    end if
    allocate (self%y_reference(n_out, ncol), self%guard_x(n_in, ncol))
    allocate (self%max_abs_z(ncol), self%distance(ncol), self%n_outside(ncol), self%guard_flags(ncol), &
              self%flagged(ncol), self%on_fallback(ncol))
    self%flagged = 0.0_real64
    self%on_fallback = 0.0_real64
    allocate (self%x(n_in, ncol), self%y(n_out, ncol))
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
    real(real64), allocatable :: member_y(:, :)
    integer :: i, j, m

    if (stat /= fkb_err_nonfinite .or. index(msg, 'output') == 0) then
      msg = 'emulator failed: ' // msg
      stat = gcm_err_state
      return
    end if
    stat = gcm_err_nonfinite
    do m = 1, self%n_members()
      member_y = self%networks%member_outputs(m, ncol)
      do j = 1, ncol
        do i = 1, size(self%y, 1)
          v = member_y(i, j)
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
