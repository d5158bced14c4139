program test_activation_values
  !! The activation formulas against values worked out by hand (Python's
  !! correctly rounded `math` module), to the last bits in 64-bit reals and to
  !! float32 rounding in 32-bit reals, relative error only: the tiny values
  !! (softplus(-20), sigmoid(-40)) must come out accurate too.
  use iso_fortran_env, only: real32, real64
  use fkb_activation_codes, only: activation_code, activation_default_alpha, act_unknown
  use fkb_activations_r32, only: apply_r32 => apply_activation
  use fkb_activations_r64, only: apply_r64 => apply_activation
  use fkb_testing, only: tester
  implicit none

  type :: value_case
    character(len=16) :: name
    real(real64) :: alpha
      !! negative means Keras's default
    real(real64) :: x, y
  end type value_case

  type(value_case), parameter :: cases(*) = [ &
    value_case('selu', -1d0, 1d0, 1.0507009873554805d0), &
    value_case('selu', -1d0, -1d0, -1.1113307378125625d0), &
    value_case('gelu', -1d0, 1d0, 0.8413447460685429d0), &
    value_case('gelu', -1d0, -1d0, -0.15865525393145707d0), &
    value_case('gelu_tanh', -1d0, 1d0, 0.8411919906082768d0), &
    value_case('softplus', -1d0, -20d0, 2.061153620314381d-09), &
    value_case('softplus', -1d0, 0d0, 0.6931471805599453d0), &
    value_case('softplus', -1d0, 30d0, 30.000000000000092d0), &
    value_case('log_sigmoid', -1d0, 20d0, -2.061153620314381d-09), &
    value_case('mish', -1d0, 1d0, 0.8650983882673103d0), &
    value_case('silu', -1d0, -2d0, -0.2384058440442351d0), &
    value_case('swish', -1d0, -2d0, -0.2384058440442351d0), &
    value_case('hard_sigmoid', -1d0, 1d0, 0.6666666666666666d0), &
    value_case('hard_sigmoid', -1d0, -3d0, 0d0), &
    value_case('hard_sigmoid', -1d0, 3.5d0, 1d0), &
    value_case('hard_silu', -1d0, -1d0, -0.3333333333333333d0), &
    value_case('hard_swish', -1d0, -1d0, -0.3333333333333333d0), &
    value_case('celu', 2d0, -1d0, -0.7869386805747332d0), &
    value_case('celu', -1d0, 1.5d0, 1.5d0), &
    value_case('squareplus', -1d0, 1d0, 1.618033988749895d0), &
    value_case('squareplus', 0d0, -2d0, 0d0), &
    value_case('elu', 0.5d0, -1d0, -0.31606027941427883d0), &
    value_case('elu', -1d0, 0d0, 0d0), &
    value_case('leaky_relu', -1d0, -2d0, -0.4d0), &
    value_case('leaky_relu', 0.25d0, -2d0, -0.5d0), &
    value_case('relu6', -1d0, 7d0, 6d0), &
    value_case('hard_tanh', -1d0, -1.5d0, -1d0), &
    value_case('tanh_shrink', -1d0, 0.5d0, 0.03788284273999026d0), &
    value_case('softsign', -1d0, -3d0, -0.75d0), &
    value_case('sigmoid', -1d0, -40d0, 4.248354255291589d-18), &
    value_case('sigmoid', -1d0, 0d0, 0.5d0), &
    value_case('gaussian', -1d0, 1.5d0, 0.10539922456186433d0), &
    value_case('exponential', -1d0, 2d0, 7.38905609893065d0), &
    value_case('step', -1d0, 0d0, 0d0), &
    value_case('step', -1d0, 1d-30, 1d0), &
    value_case('linear', -1d0, -3.25d0, -3.25d0), &
    value_case('relu', -1d0, -3.25d0, 0d0)]

  real(real64), parameter :: x3(3) = [1d0, 2d0, 3d0]
  real(real64), parameter :: softmax3(3) = [0.09003057317038046d0, 0.24472847105479764d0, &
                                            0.6652409557748218d0]
  real(real64), parameter :: log_softmax3(3) = [-2.4076059644443806d0, &
                                                -1.4076059644443804d0, -0.4076059644443804d0]
  type(tester) :: t
  integer :: i, code
  real(real64) :: alpha, a64(1, 1), v64(3, 2)
  real(real32) :: a32(1, 1), v32(3, 2)

  t%suite = 'activation values'
  do i = 1, size(cases)
    code = activation_code(trim(cases(i)%name))
    call t%check(code /= act_unknown, 'known activation ' // trim(cases(i)%name))
    alpha = cases(i)%alpha
    if (alpha < 0d0) alpha = activation_default_alpha(code)
    a64 = cases(i)%x
    call apply_r64(code, alpha, a64)
    call t%close(a64(:, 1), [cases(i)%y], 2d-15, 0d0, trim(cases(i)%name) // ' real64')
    a32 = real(cases(i)%x, real32)
    call apply_r32(code, real(alpha, real32), a32)
    call t%close(a32(:, 1), [cases(i)%y], 2d-6, 0d0, trim(cases(i)%name) // ' real32')
  end do

  ! Softmax and log-softmax act on each column; a shift of a column by a
  ! constant must not change them, even a large one (max subtraction).
  v64(:, 1) = x3
  v64(:, 2) = x3 + 1000d0
  call apply_r64(activation_code('softmax'), 0d0, v64)
  call t%close(v64, reshape([softmax3, softmax3], [3, 2]), 2d-15, 0d0, 'softmax real64')
  v64(:, 1) = x3
  v64(:, 2) = x3 - 1000d0
  call apply_r64(activation_code('log_softmax'), 0d0, v64)
  call t%close(v64, reshape([log_softmax3, log_softmax3], [3, 2]), 2d-15, 0d0, &
               'log_softmax real64')
  v32(:, 1) = real(x3, real32)
  v32(:, 2) = real(x3 + 100d0, real32)
  call apply_r32(activation_code('softmax'), 0.0, v32)
  call t%close(v32, reshape([softmax3, softmax3], [3, 2]), 1d-6, 0d0, 'softmax real32')
  v32(:, 1) = real(x3, real32)
  v32(:, 2) = real(x3 - 100d0, real32)
  call apply_r32(activation_code('log_softmax'), 0.0, v32)
  call t%close(v32, reshape([log_softmax3, log_softmax3], [3, 2]), 1d-6, 0d0, &
               'log_softmax real32')

  call t%check(activation_code('Relu') == act_unknown, 'names are case-sensitive')
  call t%finish()
end program test_activation_values
