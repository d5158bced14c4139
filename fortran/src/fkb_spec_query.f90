module fkb_spec_query
  !! Reading a `layer_spec` as a network builder needs it: typed attributes
  !! with defaults, parameter tensors checked against their expected shape,
  !! and refusal of attributes or parameters a layer type does not define.
  !!
  !! Every check returns a status from `fkb_status` and a message without
  !! a prefix; the caller adds the layer id and kind.
  use iso_fortran_env, only: real32, real64
  use fkb_spec, only: layer_spec, tensor_spec
  use fkb_status, only: fkb_ok, fkb_err_format, fkb_err_shape, fkb_err_nonfinite, &
                        fkb_err_unsupported
  use fkb_spec_build, only: first_nonfinite, int_to_str
  implicit none
  private
  public :: attribute_index, has_attribute, get_real_attribute, get_int_attribute, &
            get_flag_attribute, get_name_attribute, check_attribute_keys, &
            param_index, check_param_names, get_vector_param, get_matrix_param, &
            check_vector, shape_to_str, parse_real

  integer, parameter :: key_len = 32
    !! length of the names in the lists of allowed keys

contains

  pure integer function attribute_index(lspec, key) result(idx)
    !! Position of attribute `key` in `lspec%attributes`, 0 if absent.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: key
    integer :: i
    idx = 0
    if (.not. allocated(lspec%attributes)) return
    do i = 1, size(lspec%attributes)
      if (.not. allocated(lspec%attributes(i)%key)) cycle
      if (lspec%attributes(i)%key == key) then
        idx = i
        return
      end if
    end do
  end function attribute_index

  pure logical function has_attribute(lspec, key)
    !! Whether attribute `key` is present.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: key
    has_attribute = attribute_index(lspec, key) > 0
  end function has_attribute

  pure subroutine find_attribute(lspec, key, found, text)
    !! Whether attribute `key` is present, and its value without blanks
    !! around it.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: key
    logical, intent(out) :: found
    character(len=:), allocatable, intent(out) :: text
    integer :: idx
    idx = attribute_index(lspec, key)
    found = idx > 0
    text = ''
    if (.not. found) return
    if (allocated(lspec%attributes(idx)%value)) text = trim(adjustl(lspec%attributes(idx)%value))
  end subroutine find_attribute

  subroutine get_real_attribute(lspec, key, default, value, stat, msg)
    !! A real attribute, `default` when absent. The text must be a number.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: key
    real(real64), intent(in) :: default
    real(real64), intent(out) :: value
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    logical :: found
    character(len=:), allocatable :: text
    value = default
    stat = fkb_ok
    call find_attribute(lspec, key, found, text)
    if (.not. found) return
    if (.not. parse_real(text, value)) then
      stat = fkb_err_format
      msg = 'attribute ' // key // '=' // text // ' is not a number'
      return
    end if
    if (.not. (abs(value) <= huge(value))) then
      stat = fkb_err_nonfinite
      msg = 'attribute ' // key // '=' // text // ' is not finite'
    end if
  end subroutine get_real_attribute

  subroutine get_int_attribute(lspec, key, default, value, stat, msg)
    !! An integer attribute, `default` when absent.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: key
    integer, intent(in) :: default
    integer, intent(out) :: value
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    integer :: ios
    logical :: found
    character(len=:), allocatable :: text
    value = default
    stat = fkb_ok
    call find_attribute(lspec, key, found, text)
    if (.not. found) return
    ios = 1
    if (len(text) > 0) then
      if (verify(text, '+-0123456789') == 0) read (text, *, iostat=ios) value
    end if
    if (ios /= 0) then
      value = default
      stat = fkb_err_format
      msg = 'attribute ' // key // '=' // text // ' is not an integer'
    end if
  end subroutine get_int_attribute

  subroutine get_flag_attribute(lspec, key, default, value, stat, msg)
    !! A boolean attribute written `0` or `1`, `default` when absent.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: key
    logical, intent(in) :: default
    logical, intent(out) :: value
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    logical :: found
    character(len=:), allocatable :: text
    value = default
    stat = fkb_ok
    call find_attribute(lspec, key, found, text)
    if (.not. found) return
    select case (text)
    case ('0'); value = .false.
    case ('1'); value = .true.
    case default
      stat = fkb_err_format
      msg = 'attribute ' // key // '=' // text // ' is not 0 or 1'
    end select
  end subroutine get_flag_attribute

  subroutine get_name_attribute(lspec, key, default, value, stat, msg)
    !! An identifier attribute, `default` when absent; a present one must
    !! not be empty.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: key
    character(len=*), intent(in) :: default
    character(len=:), allocatable, intent(out) :: value
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    logical :: found
    stat = fkb_ok
    call find_attribute(lspec, key, found, value)
    if (.not. found) then
      value = default
      return
    end if
    if (len(value) == 0) then
      stat = fkb_err_format
      msg = 'attribute ' // key // ' has no value'
    end if
  end subroutine get_name_attribute

  subroutine check_attribute_keys(lspec, allowed, stat, msg)
    !! Refuse an attribute the layer type does not define (a semantic this
    !! runtime would silently ignore) or one given twice.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: allowed(:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    integer :: i
    stat = fkb_ok
    if (.not. allocated(lspec%attributes)) return
    do i = 1, size(lspec%attributes)
      if (.not. allocated(lspec%attributes(i)%key)) then
        stat = fkb_err_format
        msg = 'attribute ' // int_to_str(i) // ' has no key'
        return
      end if
      if (.not. any(allowed == lspec%attributes(i)%key)) then
        stat = fkb_err_unsupported
        msg = 'unknown attribute ' // lspec%attributes(i)%key
        return
      end if
      if (attribute_index(lspec, lspec%attributes(i)%key) /= i) then
        stat = fkb_err_format
        msg = 'attribute ' // lspec%attributes(i)%key // ' is given twice'
        return
      end if
    end do
  end subroutine check_attribute_keys

  pure integer function param_index(lspec, name) result(idx)
    !! Position of parameter `name` in `lspec%params`, 0 if absent.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: name
    integer :: i
    idx = 0
    if (.not. allocated(lspec%params)) return
    do i = 1, size(lspec%params)
      if (.not. allocated(lspec%params(i)%name)) cycle
      if (lspec%params(i)%name == name) then
        idx = i
        return
      end if
    end do
  end function param_index

  subroutine check_param_names(lspec, allowed, stat, msg)
    !! Refuse a parameter the layer does not use, or one given twice.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: allowed(:)
      !! names the layer uses with its current attributes
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    integer :: i
    stat = fkb_ok
    if (.not. allocated(lspec%params)) return
    do i = 1, size(lspec%params)
      if (.not. allocated(lspec%params(i)%name)) then
        stat = fkb_err_format
        msg = 'param ' // int_to_str(i) // ' has no name'
        return
      end if
      if (size(allowed) == 0) then
        stat = fkb_err_format
        msg = 'unexpected param ' // lspec%params(i)%name // ' (this layer has none)'
        return
      end if
      if (.not. any(allowed == lspec%params(i)%name)) then
        stat = fkb_err_format
        msg = 'unexpected param ' // lspec%params(i)%name
        return
      end if
      if (param_index(lspec, lspec%params(i)%name) /= i) then
        stat = fkb_err_format
        msg = 'param ' // lspec%params(i)%name // ' is given twice'
        return
      end if
    end do
  end subroutine check_param_names

  subroutine get_vector_param(lspec, name, n, values, stat, msg)
    !! Parameter `name`, which must exist with shape `(n)` and finite values.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: name
    integer, intent(in) :: n
    real(real32), allocatable, intent(out) :: values(:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    integer :: idx
    call find_param(lspec, name, [n, 1], idx, stat, msg)
    if (stat /= fkb_ok) return
    values = lspec%params(idx)%values
  end subroutine get_vector_param

  subroutine get_matrix_param(lspec, name, n1, n2, values, stat, msg)
    !! Parameter `name`, which must exist with shape `(n1, n2)` and finite values.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: name
    integer, intent(in) :: n1, n2
    real(real32), allocatable, intent(out) :: values(:, :)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    integer :: idx
    call find_param(lspec, name, [n1, n2], idx, stat, msg)
    if (stat /= fkb_ok) return
    values = reshape(lspec%params(idx)%values, [n1, n2])
  end subroutine get_matrix_param

  subroutine find_param(lspec, name, expected, idx, stat, msg)
    !! Position `idx` of parameter `name`, which must exist with shape
    !! `expected` and finite values.
    type(layer_spec), intent(in) :: lspec
    character(len=*), intent(in) :: name
    integer, intent(in) :: expected(2)
    integer, intent(out) :: idx
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    idx = param_index(lspec, name)
    if (idx == 0) then
      stat = fkb_err_format
      msg = 'missing param ' // name
      return
    end if
    associate (t => lspec%params(idx))
      if (any(t%shape /= expected)) then
        stat = fkb_err_shape
        msg = 'param ' // name // ' has shape ' // shape_to_str(t%shape) // &
              ', expected ' // shape_to_str(expected)
        return
      end if
      if (.not. allocated(t%values)) then
        stat = fkb_err_format
        msg = 'param ' // name // ' has no values'
        return
      end if
      if (size(t%values) /= product(expected)) then
        stat = fkb_err_shape
        msg = 'param ' // name // ' holds ' // int_to_str(size(t%values)) // &
              ' values, its shape ' // shape_to_str(expected) // ' needs ' // &
              int_to_str(product(expected))
        return
      end if
      call check_vector(t%values, 'param ' // name, stat, msg)
    end associate
  end subroutine find_param

  subroutine check_vector(values, what, stat, msg)
    !! Refuse NaN or infinity in `values`, naming the first one found.
    real(real32), intent(in) :: values(:)
    character(len=*), intent(in) :: what
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    integer :: i
    stat = fkb_ok
    i = first_nonfinite(values)
    if (i > 0) then
      stat = fkb_err_nonfinite
      msg = what // ' has a non-finite value at element ' // int_to_str(i)
    end if
  end subroutine check_vector

  logical function parse_real(text, value) result(ok)
    !! Read a real written as an integer or a decimal/exponent number.
    character(len=*), intent(in) :: text
    real(real64), intent(out) :: value
    integer :: ios
    value = 0.0_real64
    ok = .false.
    if (len(text) == 0) return
    if (verify(text, '+-.0123456789eEdD') /= 0) return
    if (scan(text, '0123456789') == 0) return
    read (text, *, iostat=ios) value
    ok = ios == 0
  end function parse_real

  pure function shape_to_str(shp) result(s)
    !! A tensor shape as `n1` for a vector or `n1x n2` for a matrix.
    integer, intent(in) :: shp(2)
    character(len=:), allocatable :: s
    if (shp(2) == 1) then
      s = '(' // int_to_str(shp(1)) // ')'
    else
      s = '(' // int_to_str(shp(1)) // ', ' // int_to_str(shp(2)) // ')'
    end if
  end function shape_to_str

end module fkb_spec_query
