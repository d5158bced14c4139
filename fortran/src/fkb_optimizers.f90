module fkb_optimizers
  !! Optimizer and learning-rate schedule configurations for training, with
  !! Keras 3's defaults. Kind-independent: the state (moments, accumulators)
  !! lives in the network being trained, in its real kind.
  !!
  !!     use fkb, only: network, adam, exponential_decay
  !!     call net%compile(adam(learning_rate=1.0e-3_real64), 'mse', stat, msg)
  !!     call net%compile(sgd(0.01_real64, momentum=0.9_real64, nesterov=.true., &
  !!                          schedule=exponential_decay(0.01_real64, 100, 0.5_real64)), &
  !!                      'huber', stat, msg)
  !!
  !! Update rules (Keras 3, `g` the gradient, `lr` the learning rate at the
  !! optimizer's step `t = 0, 1, ...`):
  !!
  !! - SGD: `p -= lr g`; with momentum `m = momentum m - lr g`, then
  !!   `p += m` or, Nesterov, `p += momentum m - lr g`.
  !! - RMSprop: `v = rho v + (1 - rho) g^2`, (centered: `a = rho a + (1 - rho) g`,
  !!   `den = v - a^2 + eps`, else `den = v + eps`), `inc = lr g / sqrt(den)`;
  !!   with momentum `m = momentum m + inc`, `p -= m`, else `p -= inc`.
  !! - Adam: `m += (g - m)(1 - beta_1)`, `v += (g^2 - v)(1 - beta_2)`,
  !!   `p -= lr sqrt(1 - beta_2^(t+1)) / (1 - beta_1^(t+1)) m / (sqrt(v) + eps)`
  !!   (AMSGrad: `v` replaced by its running maximum).
  !! - AdamW: `p -= p weight_decay lr` first, then Adam.
  !! - Adagrad: `acc += g^2`, `p -= lr g / sqrt(acc + eps)`, `acc` starting
  !!   at `initial_accumulator_value`.
  use iso_fortran_env, only: real64
  implicit none
  private
  public :: optimizer, lr_schedule
  public :: sgd, rmsprop, adam, adamw, adagrad, exponential_decay, step_decay
  public :: opt_sgd, opt_rmsprop, opt_adam, opt_adamw, opt_adagrad
  public :: schedule_constant, schedule_exponential
  public :: learning_rate_at, optimizer_name

  integer, parameter :: opt_sgd = 1, opt_rmsprop = 2, opt_adam = 3, opt_adamw = 4, &
                        opt_adagrad = 5
  integer, parameter :: schedule_constant = 0, schedule_exponential = 1

  type :: lr_schedule
    !! Keras `ExponentialDecay`: `initial decay_rate^(t / decay_steps)`, the
    !! exponent floored when `staircase` (step decay); or a constant.
    integer :: kind = schedule_constant
    real(real64) :: initial_learning_rate = 1.0e-3_real64
    integer :: decay_steps = 1
    real(real64) :: decay_rate = 1.0_real64
    logical :: staircase = .false.
  end type lr_schedule

  type :: optimizer
    !! An optimizer's kind and hyperparameters; build it with `sgd`,
    !! `rmsprop`, `adam`, `adamw` or `adagrad`.
    integer :: kind = opt_adam
    real(real64) :: learning_rate = 1.0e-3_real64
    real(real64) :: momentum = 0.0_real64
      !! SGD and RMSprop
    logical :: nesterov = .false.
      !! SGD
    real(real64) :: rho = 0.9_real64
      !! RMSprop
    logical :: centered = .false.
      !! RMSprop
    real(real64) :: beta_1 = 0.9_real64, beta_2 = 0.999_real64
      !! Adam, AdamW
    logical :: amsgrad = .false.
      !! Adam, AdamW
    real(real64) :: weight_decay = 0.0_real64
      !! AdamW (decoupled)
    real(real64) :: initial_accumulator_value = 0.1_real64
      !! Adagrad
    real(real64) :: epsilon = 1.0e-7_real64
    logical :: has_schedule = .false.
    type(lr_schedule) :: schedule
      !! replaces `learning_rate` when `has_schedule`
  end type optimizer

contains

  pure function sgd(learning_rate, momentum, nesterov, schedule) result(opt)
    !! Keras `SGD(learning_rate=0.01, momentum=0.0, nesterov=False)`.
    real(real64), intent(in), optional :: learning_rate, momentum
    logical, intent(in), optional :: nesterov
    type(lr_schedule), intent(in), optional :: schedule
    type(optimizer) :: opt
    opt%kind = opt_sgd
    opt%learning_rate = 0.01_real64
    if (present(learning_rate)) opt%learning_rate = learning_rate
    if (present(momentum)) opt%momentum = momentum
    if (present(nesterov)) opt%nesterov = nesterov
    call set_schedule(opt, schedule)
  end function sgd

  pure function rmsprop(learning_rate, rho, momentum, epsilon, centered, schedule) result(opt)
    !! Keras `RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0,
    !! epsilon=1e-7, centered=False)`.
    real(real64), intent(in), optional :: learning_rate, rho, momentum, epsilon
    logical, intent(in), optional :: centered
    type(lr_schedule), intent(in), optional :: schedule
    type(optimizer) :: opt
    opt%kind = opt_rmsprop
    if (present(learning_rate)) opt%learning_rate = learning_rate
    if (present(rho)) opt%rho = rho
    if (present(momentum)) opt%momentum = momentum
    if (present(epsilon)) opt%epsilon = epsilon
    if (present(centered)) opt%centered = centered
    call set_schedule(opt, schedule)
  end function rmsprop

  pure function adam(learning_rate, beta_1, beta_2, epsilon, amsgrad, schedule) result(opt)
    !! Keras `Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999,
    !! epsilon=1e-7, amsgrad=False)`.
    real(real64), intent(in), optional :: learning_rate, beta_1, beta_2, epsilon
    logical, intent(in), optional :: amsgrad
    type(lr_schedule), intent(in), optional :: schedule
    type(optimizer) :: opt
    opt%kind = opt_adam
    call set_adam(opt, learning_rate, beta_1, beta_2, epsilon, amsgrad)
    call set_schedule(opt, schedule)
  end function adam

  pure function adamw(learning_rate, weight_decay, beta_1, beta_2, epsilon, amsgrad, &
                      schedule) result(opt)
    !! Keras `AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9,
    !! beta_2=0.999, epsilon=1e-7, amsgrad=False)`; the decay applies to
    !! every trainable weight, as Keras does unless told to exclude some.
    real(real64), intent(in), optional :: learning_rate, weight_decay, beta_1, beta_2, epsilon
    logical, intent(in), optional :: amsgrad
    type(lr_schedule), intent(in), optional :: schedule
    type(optimizer) :: opt
    opt%kind = opt_adamw
    call set_adam(opt, learning_rate, beta_1, beta_2, epsilon, amsgrad)
    opt%weight_decay = 0.004_real64
    if (present(weight_decay)) opt%weight_decay = weight_decay
    call set_schedule(opt, schedule)
  end function adamw

  pure function adagrad(learning_rate, initial_accumulator_value, epsilon, schedule) result(opt)
    !! Keras `Adagrad(learning_rate=0.001, initial_accumulator_value=0.1,
    !! epsilon=1e-7)`.
    real(real64), intent(in), optional :: learning_rate, initial_accumulator_value, epsilon
    type(lr_schedule), intent(in), optional :: schedule
    type(optimizer) :: opt
    opt%kind = opt_adagrad
    if (present(learning_rate)) opt%learning_rate = learning_rate
    if (present(initial_accumulator_value)) &
      opt%initial_accumulator_value = initial_accumulator_value
    if (present(epsilon)) opt%epsilon = epsilon
    call set_schedule(opt, schedule)
  end function adagrad

  pure function exponential_decay(initial_learning_rate, decay_steps, decay_rate, &
                                  staircase) result(schedule)
    !! Keras `ExponentialDecay`: `initial_learning_rate
    !! decay_rate^(t / decay_steps)` at optimizer step `t` (exponent floored
    !! when `staircase`).
    real(real64), intent(in) :: initial_learning_rate
    integer, intent(in) :: decay_steps
    real(real64), intent(in) :: decay_rate
    logical, intent(in), optional :: staircase
    type(lr_schedule) :: schedule
    schedule%kind = schedule_exponential
    schedule%initial_learning_rate = initial_learning_rate
    schedule%decay_steps = decay_steps
    schedule%decay_rate = decay_rate
    if (present(staircase)) schedule%staircase = staircase
  end function exponential_decay

  pure function step_decay(initial_learning_rate, step_size, factor) result(schedule)
    !! Step decay: the rate is multiplied by `factor` every `step_size`
    !! optimizer steps (Keras `ExponentialDecay(..., staircase=True)`).
    real(real64), intent(in) :: initial_learning_rate
    integer, intent(in) :: step_size
    real(real64), intent(in) :: factor
    type(lr_schedule) :: schedule
    schedule = exponential_decay(initial_learning_rate, step_size, factor, staircase=.true.)
  end function step_decay

  pure real(real64) function learning_rate_at(opt, step)
    !! The learning rate of optimizer step `step` (0 for the first update).
    type(optimizer), intent(in) :: opt
    integer, intent(in) :: step
    real(real64) :: p
    learning_rate_at = opt%learning_rate
    if (.not. opt%has_schedule) return
    associate (s => opt%schedule)
      select case (s%kind)
      case (schedule_exponential)
        p = real(step, real64) / real(max(1, s%decay_steps), real64)
        if (s%staircase) p = real(floor(p), real64)
        learning_rate_at = s%initial_learning_rate * s%decay_rate**p
      case default
        learning_rate_at = s%initial_learning_rate
      end select
    end associate
  end function learning_rate_at

  pure function optimizer_name(opt) result(name)
    !! `sgd`, `rmsprop`, `adam`, `adamw`, `adagrad` (or `unknown`).
    type(optimizer), intent(in) :: opt
    character(len=:), allocatable :: name
    select case (opt%kind)
    case (opt_sgd); name = 'sgd'
    case (opt_rmsprop); name = 'rmsprop'
    case (opt_adam); name = 'adam'
    case (opt_adamw); name = 'adamw'
    case (opt_adagrad); name = 'adagrad'
    case default; name = 'unknown'
    end select
  end function optimizer_name

  pure subroutine set_adam(opt, learning_rate, beta_1, beta_2, epsilon, amsgrad)
    type(optimizer), intent(inout) :: opt
    real(real64), intent(in), optional :: learning_rate, beta_1, beta_2, epsilon
    logical, intent(in), optional :: amsgrad
    if (present(learning_rate)) opt%learning_rate = learning_rate
    if (present(beta_1)) opt%beta_1 = beta_1
    if (present(beta_2)) opt%beta_2 = beta_2
    if (present(epsilon)) opt%epsilon = epsilon
    if (present(amsgrad)) opt%amsgrad = amsgrad
  end subroutine set_adam

  pure subroutine set_schedule(opt, schedule)
    type(optimizer), intent(inout) :: opt
    type(lr_schedule), intent(in), optional :: schedule
    if (.not. present(schedule)) return
    opt%has_schedule = schedule%kind /= schedule_constant
    opt%schedule = schedule
    opt%learning_rate = schedule%initial_learning_rate
  end subroutine set_schedule

end module fkb_optimizers
