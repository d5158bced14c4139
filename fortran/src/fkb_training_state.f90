module fkb_training_state
  !! The kind-independent half of a model file's training section
  !! (docs/model-file.md, "Training state"): an optimizer's kind,
  !! hyperparameters and learning-rate schedule to and from the `optimizer`
  !! and `schedule` lines, the names of its slot arrays, and typed reading
  !! of `key=value` lists. The network (`fkb_network_state.inc`) adds the
  !! state of its own kind: weights, slots, generators.
  !!
  !! Real hyperparameters are written with `real64_repr`, the shortest text
  !! that reads back as the same `real64`, so they round-trip exactly.
  use iso_fortran_env, only: real64
  use fkb_spec, only: attribute_spec, layer_spec
  use fkb_status, only: fkb_ok, fkb_err_format, fkb_err_unsupported
  use fkb_spec_build, only: attribute, int_to_str, real64_repr
  use fkb_spec_query, only: get_real_attribute, get_int_attribute, get_flag_attribute, &
                            get_name_attribute, check_attribute_keys, has_attribute
  use fkb_optimizers, only: optimizer, sgd, rmsprop, adam, adamw, adagrad, opt_sgd, &
                            opt_rmsprop, opt_adam, opt_adamw, opt_adagrad, &
                            schedule_exponential, optimizer_name
  implicit none
  private
  public :: optimizer_lines, optimizer_from_lines, slot_names, key_values
  public :: read_real, read_int, read_name, check_keys

  integer, parameter :: name_len = 32

contains

  subroutine optimizer_lines(opt, name, attributes, schedule, schedule_attributes)
    !! The `optimizer` line (`name` and `attributes`) and the `schedule`
    !! line (`schedule` empty when there is none) of `opt`: every
    !! hyperparameter its update rule uses.
    type(optimizer), intent(in) :: opt
    character(len=:), allocatable, intent(out) :: name
    type(attribute_spec), allocatable, intent(out) :: attributes(:)
    character(len=:), allocatable, intent(out) :: schedule
    type(attribute_spec), allocatable, intent(out) :: schedule_attributes(:)
    name = optimizer_name(opt)
    select case (opt%kind)
    case (opt_sgd)
      attributes = [real_attr('learning_rate', opt%learning_rate), &
                    real_attr('momentum', opt%momentum), flag_attr('nesterov', opt%nesterov)]
    case (opt_rmsprop)
      attributes = [real_attr('learning_rate', opt%learning_rate), real_attr('rho', opt%rho), &
                    real_attr('momentum', opt%momentum), real_attr('epsilon', opt%epsilon), &
                    flag_attr('centered', opt%centered)]
    case (opt_adam, opt_adamw)
      attributes = [real_attr('learning_rate', opt%learning_rate), &
                    real_attr('beta_1', opt%beta_1), real_attr('beta_2', opt%beta_2), &
                    real_attr('epsilon', opt%epsilon), flag_attr('amsgrad', opt%amsgrad), &
                    real_attr('weight_decay', opt%weight_decay)]
    case (opt_adagrad)
      attributes = [real_attr('learning_rate', opt%learning_rate), &
                    real_attr('initial_accumulator_value', opt%initial_accumulator_value), &
                    real_attr('epsilon', opt%epsilon)]
    case default
      attributes = [attribute_spec ::]
    end select
    schedule = ''
    schedule_attributes = [attribute_spec ::]
    if (opt%has_schedule .and. opt%schedule%kind == schedule_exponential) then
      schedule = 'exponential'
      schedule_attributes = [ &
        real_attr('initial_learning_rate', opt%schedule%initial_learning_rate), &
        attribute('decay_steps', int_to_str(opt%schedule%decay_steps)), &
        real_attr('decay_rate', opt%schedule%decay_rate), &
        flag_attr('staircase', opt%schedule%staircase)]
    end if
  end subroutine optimizer_lines

  subroutine optimizer_from_lines(name, attributes, schedule, schedule_attributes, opt, stat, msg)
    !! The optimizer of an `optimizer` line and an optional `schedule` line:
    !! every hyperparameter of the kind is required (a default would
    !! silently change the update), no other is accepted.
    character(len=*), intent(in) :: name
    type(attribute_spec), allocatable, intent(in) :: attributes(:)
    character(len=*), intent(in) :: schedule
    type(attribute_spec), allocatable, intent(in) :: schedule_attributes(:)
    type(optimizer), intent(out) :: opt
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    character(len=name_len), allocatable :: keys(:)
    integer :: k
    select case (name)
    case ('sgd')
      opt = sgd()
      keys = [character(len=name_len) :: 'learning_rate', 'momentum', 'nesterov']
    case ('rmsprop')
      opt = rmsprop()
      keys = [character(len=name_len) :: 'learning_rate', 'rho', 'momentum', 'epsilon', 'centered']
    case ('adam', 'adamw')
      opt = adam()
      if (name == 'adamw') opt = adamw()
      keys = [character(len=name_len) :: 'learning_rate', 'beta_1', 'beta_2', 'epsilon', &
              'amsgrad', 'weight_decay']
    case ('adagrad')
      opt = adagrad()
      keys = [character(len=name_len) :: 'learning_rate', 'initial_accumulator_value', 'epsilon']
    case default
      stat = fkb_err_unsupported
      msg = 'unknown optimizer ' // name // ' (sgd, rmsprop, adam, adamw, adagrad)'
      return
    end select
    call check_keys(attributes, keys, .true., 'optimizer ' // name, stat, msg)
    if (stat /= fkb_ok) return
    do k = 1, size(keys)
      select case (trim(keys(k)))
      case ('learning_rate'); call read_real(attributes, 'learning_rate', opt%learning_rate, stat, msg)
      case ('momentum'); call read_real(attributes, 'momentum', opt%momentum, stat, msg)
      case ('nesterov'); call read_flag(attributes, 'nesterov', opt%nesterov, stat, msg)
      case ('rho'); call read_real(attributes, 'rho', opt%rho, stat, msg)
      case ('epsilon'); call read_real(attributes, 'epsilon', opt%epsilon, stat, msg)
      case ('centered'); call read_flag(attributes, 'centered', opt%centered, stat, msg)
      case ('beta_1'); call read_real(attributes, 'beta_1', opt%beta_1, stat, msg)
      case ('beta_2'); call read_real(attributes, 'beta_2', opt%beta_2, stat, msg)
      case ('amsgrad'); call read_flag(attributes, 'amsgrad', opt%amsgrad, stat, msg)
      case ('weight_decay'); call read_real(attributes, 'weight_decay', opt%weight_decay, stat, msg)
      case ('initial_accumulator_value')
        call read_real(attributes, 'initial_accumulator_value', opt%initial_accumulator_value, &
                       stat, msg)
      end select
      if (stat /= fkb_ok) then
        msg = 'optimizer ' // name // ': ' // msg
        return
      end if
    end do
    opt%has_schedule = .false.
    select case (schedule)
    case ('')
    case ('exponential')
      keys = [character(len=name_len) :: 'initial_learning_rate', 'decay_steps', 'decay_rate', &
              'staircase']
      call check_keys(schedule_attributes, keys, .true., 'schedule exponential', stat, msg)
      if (stat /= fkb_ok) return
      opt%has_schedule = .true.
      opt%schedule%kind = schedule_exponential
      call read_real(schedule_attributes, 'initial_learning_rate', &
                     opt%schedule%initial_learning_rate, stat, msg)
      if (stat == fkb_ok) call read_int(schedule_attributes, 'decay_steps', opt%schedule%decay_steps, &
                                        stat, msg)
      if (stat == fkb_ok) call read_real(schedule_attributes, 'decay_rate', opt%schedule%decay_rate, &
                                         stat, msg)
      if (stat == fkb_ok) call read_flag(schedule_attributes, 'staircase', opt%schedule%staircase, &
                                         stat, msg)
      if (stat == fkb_ok .and. opt%schedule%decay_steps < 1) then
        stat = fkb_err_format
        msg = 'decay_steps must be at least 1'
      end if
      if (stat /= fkb_ok) then
        msg = 'schedule exponential: ' // msg
        return
      end if
    case default
      stat = fkb_err_unsupported
      msg = 'unknown learning-rate schedule ' // schedule // ' (exponential)'
    end select
  end subroutine optimizer_from_lines

  subroutine slot_names(opt, names, slots)
    !! The slot arrays `opt` uses, by their Keras names, and where the
    !! network keeps each (`slot1`, `slot2`, `slot3` = 1, 2, 3).
    type(optimizer), intent(in) :: opt
    character(len=name_len), allocatable, intent(out) :: names(:)
    integer, allocatable, intent(out) :: slots(:)
    character(len=name_len) :: found(3)
    integer :: slot_of(3), n
    n = 0
    select case (opt%kind)
    case (opt_sgd)
      if (opt%momentum /= 0.0_real64) call push('momentum', 1)
    case (opt_rmsprop)
      call push('velocity', 2)
      if (opt%momentum > 0.0_real64) call push('momentum', 1)
      if (opt%centered) call push('average_gradient', 3)
    case (opt_adam, opt_adamw)
      call push('momentum', 1)
      call push('velocity', 2)
      if (opt%amsgrad) call push('velocity_hat', 3)
    case (opt_adagrad)
      call push('accumulator', 1)
    end select
    names = found(1:n)
    slots = slot_of(1:n)
  contains
    subroutine push(name, slot)
      character(len=*), intent(in) :: name
      integer, intent(in) :: slot
      n = n + 1
      found(n) = name
      slot_of(n) = slot
    end subroutine push
  end subroutine slot_names

  ! ------------------------------------------------ key=value lists

  function key_values(attributes) result(lspec)
    !! A layer spec holding `attributes`, to read them with `fkb_spec_query`.
    type(attribute_spec), allocatable, intent(in) :: attributes(:)
    type(layer_spec) :: lspec
    if (allocated(attributes)) lspec%attributes = attributes
  end function key_values

  subroutine check_keys(attributes, keys, all_required, what, stat, msg)
    !! Only `keys`, each at most once; with `all_required`, every one.
    type(attribute_spec), allocatable, intent(in) :: attributes(:)
    character(len=*), intent(in) :: keys(:)
    logical, intent(in) :: all_required
    character(len=*), intent(in) :: what
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    type(layer_spec) :: lspec
    integer :: k
    lspec = key_values(attributes)
    call check_attribute_keys(lspec, keys, stat, msg)
    if (stat /= fkb_ok) then
      msg = what // ': ' // msg
      return
    end if
    if (.not. all_required) return
    do k = 1, size(keys)
      if (.not. has_attribute(lspec, trim(keys(k)))) then
        stat = fkb_err_format
        msg = what // ': no ' // trim(keys(k)) // '='
        return
      end if
    end do
  end subroutine check_keys

  subroutine read_real(attributes, key, value, stat, msg)
    !! A real attribute; `value` keeps its value when absent.
    type(attribute_spec), allocatable, intent(in) :: attributes(:)
    character(len=*), intent(in) :: key
    real(real64), intent(inout) :: value
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    real(real64) :: default
    default = value
    call get_real_attribute(key_values(attributes), key, default, value, stat, msg)
  end subroutine read_real

  subroutine read_int(attributes, key, value, stat, msg)
    !! An integer attribute; `value` keeps its value when absent.
    type(attribute_spec), allocatable, intent(in) :: attributes(:)
    character(len=*), intent(in) :: key
    integer, intent(inout) :: value
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    integer :: default
    default = value
    call get_int_attribute(key_values(attributes), key, default, value, stat, msg)
  end subroutine read_int

  subroutine read_flag(attributes, key, value, stat, msg)
    type(attribute_spec), allocatable, intent(in) :: attributes(:)
    character(len=*), intent(in) :: key
    logical, intent(inout) :: value
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    logical :: default
    default = value
    call get_flag_attribute(key_values(attributes), key, default, value, stat, msg)
  end subroutine read_flag

  subroutine read_name(attributes, key, value, stat, msg)
    !! An identifier attribute, '' when absent.
    type(attribute_spec), allocatable, intent(in) :: attributes(:)
    character(len=*), intent(in) :: key
    character(len=:), allocatable, intent(out) :: value
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    call get_name_attribute(key_values(attributes), key, '', value, stat, msg)
  end subroutine read_name

  function real_attr(key, value) result(a)
    character(len=*), intent(in) :: key
    real(real64), intent(in) :: value
    type(attribute_spec) :: a
    a%key = key
    a%value = real64_repr(value)
  end function real_attr

  pure function flag_attr(key, value) result(a)
    character(len=*), intent(in) :: key
    logical, intent(in) :: value
    type(attribute_spec) :: a
    a%key = key
    a%value = merge('1', '0', value)
  end function flag_attr

end module fkb_training_state
