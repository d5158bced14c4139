module fkb_activation_codes
  !! The activations of the model file (docs/model-file.md) by name: each name
  !! maps to an integer code once, when a network is built, so that the hot
  !! loops branch on an integer. Kind-independent; the kernels live in
  !! `fkb_activations_r32` and `fkb_activations_r64`.
  use iso_fortran_env, only: real64
  implicit none
  private
  public :: activation_code, activation_name, activation_has_alpha, activation_default_alpha, &
            activation_is_columnwise
  public :: act_unknown, act_linear, act_relu, act_relu6, act_leaky_relu, act_elu, act_selu, &
            act_gelu, act_gelu_tanh, act_sigmoid, act_hard_sigmoid, act_hard_silu, act_tanh, &
            act_softplus, act_softsign, act_silu, act_mish, act_exponential, act_softmax, &
            act_log_softmax, act_celu, act_hard_tanh, act_log_sigmoid, act_tanh_shrink, &
            act_squareplus, act_gaussian, act_step

  integer, parameter :: act_unknown = 0
  integer, parameter :: act_linear = 1, act_relu = 2, act_relu6 = 3, act_leaky_relu = 4, &
                        act_elu = 5, act_selu = 6, act_gelu = 7, act_gelu_tanh = 8, &
                        act_sigmoid = 9, act_hard_sigmoid = 10, act_hard_silu = 11, &
                        act_tanh = 12, act_softplus = 13, act_softsign = 14, act_silu = 15, &
                        act_mish = 16, act_exponential = 17, act_softmax = 18, &
                        act_log_softmax = 19, act_celu = 20, act_hard_tanh = 21, &
                        act_log_sigmoid = 22, act_tanh_shrink = 23, act_squareplus = 24, &
                        act_gaussian = 25, act_step = 26

contains

  pure function activation_code(name) result(code)
    !! The code of an activation name, `act_unknown` if the name is not one
    !! of the model file's. Keras's aliases `swish` and `hard_swish` are
    !! accepted.
    character(len=*), intent(in) :: name
    integer :: code
    select case (name)
    case ('linear'); code = act_linear
    case ('relu'); code = act_relu
    case ('relu6'); code = act_relu6
    case ('leaky_relu'); code = act_leaky_relu
    case ('elu'); code = act_elu
    case ('selu'); code = act_selu
    case ('gelu'); code = act_gelu
    case ('gelu_tanh'); code = act_gelu_tanh
    case ('sigmoid'); code = act_sigmoid
    case ('hard_sigmoid'); code = act_hard_sigmoid
    case ('hard_silu', 'hard_swish'); code = act_hard_silu
    case ('tanh'); code = act_tanh
    case ('softplus'); code = act_softplus
    case ('softsign'); code = act_softsign
    case ('silu', 'swish'); code = act_silu
    case ('mish'); code = act_mish
    case ('exponential'); code = act_exponential
    case ('softmax'); code = act_softmax
    case ('log_softmax'); code = act_log_softmax
    case ('celu'); code = act_celu
    case ('hard_tanh'); code = act_hard_tanh
    case ('log_sigmoid'); code = act_log_sigmoid
    case ('tanh_shrink'); code = act_tanh_shrink
    case ('squareplus'); code = act_squareplus
    case ('gaussian'); code = act_gaussian
    case ('step'); code = act_step
    case default; code = act_unknown
    end select
  end function activation_code

  pure function activation_name(code) result(name)
    !! The model-file name of an activation code (`unknown` for others).
    integer, intent(in) :: code
    character(len=:), allocatable :: name
    select case (code)
    case (act_linear); name = 'linear'
    case (act_relu); name = 'relu'
    case (act_relu6); name = 'relu6'
    case (act_leaky_relu); name = 'leaky_relu'
    case (act_elu); name = 'elu'
    case (act_selu); name = 'selu'
    case (act_gelu); name = 'gelu'
    case (act_gelu_tanh); name = 'gelu_tanh'
    case (act_sigmoid); name = 'sigmoid'
    case (act_hard_sigmoid); name = 'hard_sigmoid'
    case (act_hard_silu); name = 'hard_silu'
    case (act_tanh); name = 'tanh'
    case (act_softplus); name = 'softplus'
    case (act_softsign); name = 'softsign'
    case (act_silu); name = 'silu'
    case (act_mish); name = 'mish'
    case (act_exponential); name = 'exponential'
    case (act_softmax); name = 'softmax'
    case (act_log_softmax); name = 'log_softmax'
    case (act_celu); name = 'celu'
    case (act_hard_tanh); name = 'hard_tanh'
    case (act_log_sigmoid); name = 'log_sigmoid'
    case (act_tanh_shrink); name = 'tanh_shrink'
    case (act_squareplus); name = 'squareplus'
    case (act_gaussian); name = 'gaussian'
    case (act_step); name = 'step'
    case default; name = 'unknown'
    end select
  end function activation_name

  pure logical function activation_has_alpha(code)
    !! Whether the activation takes the `alpha` attribute.
    integer, intent(in) :: code
    select case (code)
    case (act_leaky_relu, act_elu, act_celu, act_squareplus)
      activation_has_alpha = .true.
    case default
      activation_has_alpha = .false.
    end select
  end function activation_has_alpha

  pure function activation_default_alpha(code) result(alpha)
    !! Keras's default for `alpha` where the activation has one (leaky_relu:
    !! negative slope 0.2; elu, celu: 1; squareplus: b = 4), else 0.
    integer, intent(in) :: code
    real(real64) :: alpha
    select case (code)
    case (act_leaky_relu); alpha = 0.2_real64
    case (act_elu, act_celu); alpha = 1.0_real64
    case (act_squareplus); alpha = 4.0_real64
    case default; alpha = 0.0_real64
    end select
  end function activation_default_alpha

  pure logical function activation_is_columnwise(code)
    !! Whether the activation couples the features of a column (softmax,
    !! log_softmax) instead of acting on each element alone.
    integer, intent(in) :: code
    activation_is_columnwise = code == act_softmax .or. code == act_log_softmax
  end function activation_is_columnwise

end module fkb_activation_codes
