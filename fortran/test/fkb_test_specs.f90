module fkb_test_specs
  !! Short constructors for hand-made `model_spec` values in the tests.
  use iso_fortran_env, only: real32, real64
  use fkb_spec, only: model_spec, layer_spec, attribute_spec, tensor_spec
  implicit none
  private
  public :: layer, attr, param, no_attrs, no_params

contains

  function layer(kind, n_out, inputs, attributes, params) result(l)
    !! One layer: type, width, input ids, attributes and params.
    character(len=*), intent(in) :: kind
    integer, intent(in) :: n_out
    integer, intent(in) :: inputs(:)
    type(attribute_spec), intent(in) :: attributes(:)
    type(tensor_spec), intent(in) :: params(:)
    type(layer_spec) :: l
    l%kind = kind
    l%n_out = n_out
    allocate (l%inputs, source=inputs)
    allocate (l%attributes, source=attributes)
    allocate (l%params, source=params)
  end function layer

  function attr(key, value) result(a)
    !! An attribute `key=value`.
    character(len=*), intent(in) :: key, value
    type(attribute_spec) :: a
    a%key = key
    a%value = value
  end function attr

  function param(name, shape, values) result(t)
    !! A tensor of Fortran shape `shape` (a vector has `shape(2) == 1`),
    !! values in column-major order, rounded to float32 as in a model file.
    character(len=*), intent(in) :: name
    integer, intent(in) :: shape(2)
    real(real64), intent(in) :: values(:)
    type(tensor_spec) :: t
    t%name = name
    t%shape = shape
    t%rank = merge(1, 2, shape(2) == 1)
    t%values = real(values, real32)
  end function param

  function no_attrs() result(a)
    !! An empty attribute list.
    type(attribute_spec), allocatable :: a(:)
    allocate (a(0))
  end function no_attrs

  function no_params() result(t)
    !! An empty param list.
    type(tensor_spec), allocatable :: t(:)
    allocate (t(0))
  end function no_params

end module fkb_test_specs
