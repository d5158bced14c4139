module gcm_finetune
  !! Online fine-tuning of an emulator inside the running model.
  !!
  !! An `online_tuner` holds the network that the emulator runs with (32
  !! bit, the kind the emulator's networks compute in) compiled with Adam
  !! (Keras's defaults but for the learning rate) and the mean squared error
  !! in the network's normalized output space, as the offline training did
  !! (the model file's normalization; `network%train_step` takes the
  !! targets in physical units). Every `every_steps` model steps from
  !! `start_step` on, the emulator asks it for `columns` columns of the
  !! batch (`choose_columns`), runs the reference physics on them as the
  !! teacher, and hands inputs and the teacher's outputs to `learn`, which
  !! takes `steps` optimizer steps on them (`train_step`, the library's
  !! Keras-exact Adam; no second optimizer here).
  !!
  !! Determinism: the columns of a round are the `columns` smallest values
  !! of a counter-based hash of (seed, step, column id) (Philox4x32-10, as
  !! the reference physics' random numbers, with the tuner's own seed and
  !! counter word), so the choice needs no stored generator state and does
  !! not depend on threads or batching; `train_step` gives the same bits at
  !! any thread count. The state a restart needs is the network with its
  !! training state (weights, Adam's moments, the iteration count: the
  !! library's model file, version 2) and whether tuning has stopped:
  !! `save_state` and `load_state` write and read both.
  !!
  !! A round whose loss or gradient turns non-finite (a learning rate that
  !! diverges), or after which the network's loss on the round's columns is
  !! not finite, is undone: the weights of the start of the round, the last
  !! ones certified by a finite loss, are restored and tuning stops for the
  !! rest of the run (`stopped`, `stopped_step`, `stop_reason`); the run
  !! goes on with those weights.
  use iso_fortran_env, only: real32, real64, int64
  use ieee_arithmetic, only: ieee_is_finite
  use fkb, only: network, layer_registry, adam, fkb_ok, fkb_err_nonfinite
  use physics_random, only: philox4x32_10
  use gcm_status, only: gcm_ok, gcm_err_config, gcm_err_state
  implicit none
  private
  public :: finetune_options, online_tuner

  integer(int64), parameter :: choice_stream = 1717986918_int64
    !! first counter word of the column choice (apart from the physics' draws)
  integer(int64), parameter :: mask32 = 4294967295_int64

  type :: finetune_options
    !! When and how much the emulator learns online (configuration as data).
    logical :: enabled = .false.
      !! off: nothing of the tuner exists or runs
    integer(int64) :: every_steps = 1
      !! a round every this many model steps
    integer :: columns = 64
      !! columns per round (all of the batch if it has fewer)
    integer :: steps = 1
      !! optimizer steps per round, on the round's columns
    real(real64) :: learning_rate = 1.0e-4_real64
      !! Adam's learning rate
    integer(int64) :: seed = 1
      !! seed of the column choice
    integer(int64) :: start_step = -huge(1_int64)
      !! no round before this model step; rounds at start_step + k every_steps
  end type finetune_options

  type :: online_tuner
    type(finetune_options) :: options
    type(network) :: net
      !! the network being tuned, the one the emulator predicts with
    type(network) :: good
      !! the weights at the start of the current round (restored on failure)
    logical :: stopped = .false.
    integer(int64) :: stopped_step = -1
      !! the model step whose round failed (-1: tuning has not stopped)
    character(len=:), allocatable :: stop_reason
    real(real64) :: loss_sum = 0.0_real64
      !! sum of the rounds' losses (before their first update) since the last reset
    integer :: loss_count = 0
      !! rounds since the last reset
    integer(int64) :: rounds = 0
      !! rounds taken by this tuner (not counting a restart's earlier ones)
    real(real32), allocatable :: grad(:)
  contains
    procedure :: setup => tuner_setup
    procedure :: due => tuner_due
    procedure :: choose_columns => tuner_choose_columns
    procedure :: learn => tuner_learn
    procedure :: save_state => tuner_save_state
    procedure :: load_state => tuner_load_state
    procedure :: reset_loss => tuner_reset_loss
  end type online_tuner

contains

  subroutine tuner_setup(self, path, registry, options, status, message)
    !! Load the network to tune from its model file and compile it afresh
    !! (Adam at `options%learning_rate`, MSE). status gcm_ok, or
    !! gcm_err_config with a one-line message.
    class(online_tuner), intent(inout) :: self
    character(len=*), intent(in) :: path
    type(layer_registry), intent(in) :: registry
    type(finetune_options), intent(in) :: options
    integer, intent(out) :: status
    character(len=:), allocatable, intent(out) :: message
    character(len=:), allocatable :: msg
    integer :: stat

    status = gcm_err_config
    if (options%every_steps < 1 .or. options%columns < 1 .or. options%steps < 1) then
      message = 'fine-tuning: every_steps, columns and steps must be at least 1'
      return
    end if
    if (.not. (options%learning_rate > 0.0_real64 .and. options%learning_rate <= huge(1.0_real64))) then
      message = 'fine-tuning: the learning rate must be positive and finite'
      return
    end if
    self%options = options
    self%stopped = .false.
    self%stopped_step = -1
    self%stop_reason = ''
    self%rounds = 0
    call self%reset_loss()
    call self%net%load(trim(path), stat, msg, registry=registry)
    if (stat == fkb_ok) call self%net%compile(adam(learning_rate=options%learning_rate), 'mse', stat, msg)
    if (stat /= fkb_ok) then
      message = 'fine-tuning: ' // trim(path) // ': ' // msg
      return
    end if
    status = gcm_ok
    message = ''
  end subroutine tuner_setup

  pure logical function tuner_due(self, step)
    !! Whether a round falls on model step `step`.
    class(online_tuner), intent(in) :: self
    integer(int64), intent(in) :: step
    tuner_due = self%options%enabled .and. .not. self%stopped .and. step >= self%options%start_step
    if (tuner_due) tuner_due = modulo(step - self%options%start_step, self%options%every_steps) == 0
  end function tuner_due

  subroutine tuner_choose_columns(self, step, column_ids, idx)
    !! The round's columns: positions in the batch (ascending) of the
    !! `columns` columns with the smallest hash of (seed, step, column id).
    class(online_tuner), intent(in) :: self
    integer(int64), intent(in) :: step
    integer, intent(in) :: column_ids(:)
    integer, allocatable, intent(out) :: idx(:)
    integer(int64) :: key(2), word(4), best(2)
    integer(int64), allocatable :: hash(:, :)
    logical, allocatable :: taken(:)
    integer :: ncol, m, j, k, pick

    ncol = size(column_ids)
    m = min(self%options%columns, ncol)
    allocate (hash(2, ncol), taken(ncol))
    key = [iand(self%options%seed, mask32), iand(shiftr(self%options%seed, 32), mask32)]
    do j = 1, ncol
      word = philox4x32_10([choice_stream, int(column_ids(j), int64), iand(step, mask32), &
                            iand(shiftr(step, 32), mask32)], key)
      hash(:, j) = word(1:2)
    end do
    taken = .false.
    do k = 1, m
      pick = 0
      best = huge(1_int64)
      do j = 1, ncol
        if (taken(j)) cycle
        if (hash(1, j) < best(1) .or. (hash(1, j) == best(1) .and. hash(2, j) < best(2))) then
          best = hash(:, j)
          pick = j
        end if
      end do
      taken(pick) = .true.
    end do
    idx = pack([(j, j = 1, ncol)], taken)
  end subroutine tuner_choose_columns

  subroutine tuner_learn(self, x, y, step, status, message)
    !! One round on the columns x(n_inputs, n), the teacher's y(n_outputs,
    !! n) (physical units): `steps` optimizer steps, then the loss of the
    !! new weights on the same columns. A non-finite loss or gradient
    !! restores the round's starting weights and stops tuning (status stays
    !! gcm_ok: the run goes on); any other failure is an error.
    class(online_tuner), intent(inout) :: self
    real(real32), intent(in) :: x(:, :), y(:, :)
    integer(int64), intent(in) :: step
    integer, intent(out) :: status
    character(len=:), allocatable, intent(out) :: message
    character(len=:), allocatable :: msg
    real(real32) :: loss, first, after
    integer :: k, stat
    logical :: ended

    status = gcm_ok
    message = ''
    self%good = self%net
    first = 0.0_real32
    do k = 1, self%options%steps
      call self%net%train_step(x, y, stat, msg, loss)
      call check_optimizer_call(self, step, stat, msg, loss, 'loss not finite in optimizer step ' // text(k) // &
                                ' of the round', ended, status, message)
      if (ended) return
      if (k == 1) first = loss
    end do
    if (.not. allocated(self%grad)) allocate (self%grad(self%net%n_trainable()))
    call self%net%gradient(x, y, self%grad, after, stat, msg)
    call check_optimizer_call(self, step, stat, msg, after, 'loss not finite after the round', ended, status, message)
    if (ended) return
    self%loss_sum = self%loss_sum + real(first, real64)
    self%loss_count = self%loss_count + 1
    self%rounds = self%rounds + 1
  end subroutine tuner_learn

  subroutine check_optimizer_call(self, step, stat, msg, loss, reason, ended, status, message)
    !! After a library call of a round (`train_step`, `gradient`) with its
    !! `stat`, `msg` and `loss`: a non-finite loss or gradient undoes the
    !! round and stops tuning for `reason` (status stays gcm_ok: the run
    !! goes on); any other failure is an error (status, message). `ended`:
    !! the round is over.
    type(online_tuner), intent(inout) :: self
    integer(int64), intent(in) :: step
    integer, intent(in) :: stat
    character(len=:), allocatable, intent(in) :: msg
    real(real32), intent(in) :: loss
    character(len=*), intent(in) :: reason
    logical, intent(out) :: ended
    integer, intent(inout) :: status
    character(len=:), allocatable, intent(inout) :: message
    ended = .true.
    if (stat == fkb_err_nonfinite .or. (stat == fkb_ok .and. .not. ieee_is_finite(loss))) then
      call stop_tuning(self, step, reason)
    else if (stat /= fkb_ok) then
      status = gcm_err_state
      message = 'fine-tuning: ' // msg
    else
      ended = .false.
    end if
  end subroutine check_optimizer_call

  subroutine stop_tuning(self, step, reason)
    !! Undo the round (its starting weights, certified by the previous
    !! round's finite loss) and stop tuning.
    type(online_tuner), intent(inout) :: self
    integer(int64), intent(in) :: step
    character(len=*), intent(in) :: reason
    self%net = self%good
    self%stopped = .true.
    self%stopped_step = step
    self%stop_reason = reason
  end subroutine stop_tuning

  subroutine tuner_reset_loss(self)
    !! Start a new sum of the rounds' losses (an output interval).
    class(online_tuner), intent(inout) :: self
    self%loss_sum = 0.0_real64
    self%loss_count = 0
  end subroutine tuner_reset_loss

  subroutine tuner_save_state(self, path, status, message, with_state)
    !! The tuned network with its training state to the model file `path`
    !! (library format version 2: weights, Adam's moments, iteration count),
    !! and, unless `with_state` is false, whether tuning has stopped to
    !! `path.state` (a namelist).
    class(online_tuner), intent(in) :: self
    character(len=*), intent(in) :: path
    integer, intent(out) :: status
    character(len=:), allocatable, intent(out) :: message
    logical, intent(in), optional :: with_state
    character(len=:), allocatable :: msg
    integer :: stat, unit, ios
    integer(int64) :: stopped_step
    character(len=200) :: stop_reason, iomsg
    namelist /finetune_state/ stopped_step, stop_reason

    status = gcm_err_state
    call self%net%save(path, stat, msg)
    if (stat /= fkb_ok) then
      message = 'fine-tuning: ' // msg
      return
    end if
    status = gcm_ok
    message = ''
    if (present(with_state)) then
      if (.not. with_state) return
    end if
    status = gcm_err_state
    stopped_step = self%stopped_step
    stop_reason = ''
    if (allocated(self%stop_reason)) stop_reason = self%stop_reason
    open (newunit=unit, file=path // '.state', status='replace', action='write', iostat=ios, iomsg=iomsg)
    if (ios == 0) write (unit, nml=finetune_state, iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      message = 'fine-tuning: cannot write ' // path // '.state: ' // trim(iomsg)
      return
    end if
    close (unit)
    status = gcm_ok
    message = ''
  end subroutine tuner_save_state

  subroutine tuner_load_state(self, path, registry, status, message)
    !! Continue from `save_state`'s files: the network with its training
    !! state (compiled as saved: Adam continues where it stood) and the
    !! stopped flag. The options stay this tuner's.
    class(online_tuner), intent(inout) :: self
    character(len=*), intent(in) :: path
    type(layer_registry), intent(in) :: registry
    integer, intent(out) :: status
    character(len=:), allocatable, intent(out) :: message
    character(len=:), allocatable :: msg
    type(network) :: loaded
    integer :: stat, unit, ios
    integer(int64) :: stopped_step
    character(len=200) :: stop_reason, iomsg
    namelist /finetune_state/ stopped_step, stop_reason

    status = gcm_err_state
    call loaded%load(path, stat, msg, registry=registry)
    if (stat /= fkb_ok) then
      message = 'fine-tuning state: ' // msg
      return
    end if
    if (loaded%n_trainable() == 0) then
      message = 'fine-tuning state: ' // path // ' has no training state (not written by a fine-tuning run)'
      return
    end if
    stopped_step = -1
    stop_reason = ''
    open (newunit=unit, file=path // '.state', status='old', action='read', iostat=ios, iomsg=iomsg)
    if (ios == 0) read (unit, nml=finetune_state, iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      message = 'fine-tuning state: cannot read ' // path // '.state: ' // trim(iomsg)
      return
    end if
    close (unit)
    self%net = loaded
    self%stopped = stopped_step >= 0
    self%stopped_step = stopped_step
    self%stop_reason = trim(stop_reason)
    call self%reset_loss()
    status = gcm_ok
    message = ''
  end subroutine tuner_load_state

  pure function text(i) result(s)
    integer, intent(in) :: i
    character(len=:), allocatable :: s
    character(len=16) :: buffer
    write (buffer, '(i0)') i
    s = trim(buffer)
  end function text

end module gcm_finetune
