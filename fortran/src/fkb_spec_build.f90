module fkb_spec_build
  !! Helpers shared by the code that builds a model spec from a file or
  !! checks one: the two readers (`fkb_model_file`, `fkb_legacy`), the
  !! writer, and the spec query of the network builders (`fkb_spec_query`).
  !!
  !! Opening a model file with the library's messages, spec attributes,
  !! finite tests on float32 values (on the bits, immune to compiler flags
  !! like -ffast-math) and numbers as text for messages and attribute values.
  use iso_fortran_env, only: real32, real64, int32, int64
  use fkb_spec, only: attribute_spec
  use fkb_status, only: fkb_ok, fkb_err_io, int_to_str
  use fkb_files, only: regular_file_problem
  implicit none
  private
  public :: open_model_file, attribute, finite32, first_nonfinite, int_to_str, real32_repr, &
            real64_repr

  integer(int32), parameter :: exponent_bits = int(z'7F800000', int32)
    !! the exponent field of a float32; all ones for NaN and infinity

contains

  subroutine open_model_file(path, access, form, unit, stat, msg)
    !! Opens an existing regular file for reading (a directory, FIFO or
    !! device is refused with one line, see `fkb_files`).
    character(len=*), intent(in) :: path
      !! file to open
    character(len=*), intent(in) :: access, form
      !! as for `open`, e.g. `'stream'` and `'unformatted'`
    integer, intent(out) :: unit
      !! the open unit, valid when `stat == fkb_ok`
    integer, intent(out) :: stat
      !! `fkb_ok` or `fkb_err_io`
    character(len=:), allocatable, intent(inout) :: msg
      !! on failure one line starting with `path`; untouched on success
    integer :: ios
    character(len=512) :: iomsg
    character(len=:), allocatable :: problem

    stat = fkb_ok
    unit = -1
    problem = regular_file_problem(path)
    if (len(problem) > 0) then
      stat = fkb_err_io
      msg = path // ': ' // problem
      return
    end if
    open(newunit=unit, file=path, status='old', action='read', access=access, form=form, &
         iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      stat = fkb_err_io
      msg = path // ': cannot open: ' // trim(iomsg)
    end if
  end subroutine open_model_file

  pure function attribute(key, value) result(attr)
    !! The attribute `key=value` of a layer.
    character(len=*), intent(in) :: key, value
    type(attribute_spec) :: attr
    attr%key = key
    attr%value = value
  end function attribute

  elemental logical function finite32(x)
    !! Whether `x` is neither NaN nor infinite.
    real(real32), intent(in) :: x
    finite32 = iand(transfer(x, 0_int32), exponent_bits) /= exponent_bits
  end function finite32

  pure integer function first_nonfinite(values) result(position)
    !! Index of the first NaN or infinity, 0 if none.
    real(real32), intent(in) :: values(:)
    integer :: i
    position = 0
    do i = 1, size(values)
      if (.not. finite32(values(i))) then
        position = i
        return
      end if
    end do
  end function first_nonfinite

  function real32_repr(x) result(text)
    !! The shortest decimal that reads back as the same `real32`, written
    !! like Python's `repr` of a float (`0.3`, `1.0`, `1e-05`, `2.5e+20`).
    real(real32), intent(in) :: x
      !! a finite value (non-finite values give `nan` or `inf`)
    character(len=:), allocatable :: text
    character(len=40) :: buffer, fmt
    real(real32) :: y
    integer :: precision, ios

    if (.not. finite32(x)) then
      if (iand(transfer(x, 0_int32), int(z'007FFFFF', int32)) /= 0) then
        text = 'nan'
      else if (x > 0) then
        text = 'inf'
      else
        text = '-inf'
      end if
      return
    end if
    if (iand(transfer(x, 0_int32), huge(0_int32)) == 0) then
      text = '0.0'
      if (transfer(x, 0_int32) < 0) text = '-0.0'
      return
    end if
    do precision = 1, 9
      write(fmt, '(a, i0, a)') '(es40.', precision - 1, 'e4)'
      write(buffer, fmt) x
      read(buffer, *, iostat=ios) y
      ! compared as bits: the same float32, not merely equal values
      if (ios == 0) then
        if (transfer(y, 0_int32) == transfer(x, 0_int32)) exit
      end if
    end do
    text = python_float_text(buffer, x < 0)
  end function real32_repr

  function real64_repr(x) result(text)
    !! The shortest decimal that reads back as the same `real64`, written
    !! like Python's `repr` of a float (`0.02`, `1.0`, `1e-07`), so that
    !! hyperparameters of the training section round-trip exactly and read
    !! the same from either language.
    real(real64), intent(in) :: x
      !! a finite value
    character(len=:), allocatable :: text
    character(len=48) :: buffer, fmt
    real(real64) :: y
    integer :: precision, ios
    if (x == 0.0_real64) then
      text = '0.0'
      if (transfer(x, 0_int64) < 0) text = '-0.0'
      return
    end if
    do precision = 1, 17
      write(fmt, '(a, i0, a)') '(es48.', precision - 1, 'e4)'
      write(buffer, fmt) x
      read(buffer, *, iostat=ios) y
      if (ios == 0) then
        if (transfer(y, 0_int64) == transfer(x, 0_int64)) exit
      end if
    end do
    text = python_float_text(buffer, x < 0)
  end function real64_repr

  function python_float_text(buffer, negative) result(text)
    !! A nonzero value written in `es` format (`buffer`, e.g.
    !! ` -2.50000E+0020`) as Python's `repr` writes it: its significant
    !! digits without trailing zeros, positional for exponents -4..15
    !! (`0.0025`, `250.0`), otherwise `2.5e+20` (at least two exponent
    !! digits); `-` in front if `negative`.
    character(len=*), intent(in) :: buffer
    logical, intent(in) :: negative
    character(len=:), allocatable :: text
    character(len=len(buffer)) :: trimmed
    character(len=12) :: exponent_digits
    character(len=:), allocatable :: digits
    integer :: e_at, exponent, i, n
    trimmed = adjustl(buffer)
    e_at = index(trimmed, 'E')
    read(trimmed(e_at + 1:), *) exponent
    digits = ''
    do i = 1, e_at - 1
      if (trimmed(i:i) >= '0' .and. trimmed(i:i) <= '9') digits = digits // trimmed(i:i)
    end do
    n = len(digits)
    do while (n > 1 .and. digits(n:n) == '0')
      n = n - 1
    end do
    digits = digits(1:n)
    if (exponent >= -4 .and. exponent < 16) then
      if (exponent >= 0) then
        if (n <= exponent + 1) then
          text = digits // repeat('0', exponent + 1 - n) // '.0'
        else
          text = digits(1:exponent + 1) // '.' // digits(exponent + 2:)
        end if
      else
        text = '0.' // repeat('0', -exponent - 1) // digits
      end if
    else
      write(exponent_digits, '(i0.2)') abs(exponent)
      text = digits(1:1)
      if (n > 1) text = text // '.' // digits(2:)
      if (exponent < 0) then
        text = text // 'e-' // trim(exponent_digits)
      else
        text = text // 'e+' // trim(exponent_digits)
      end if
    end if
    if (negative) text = '-' // text
  end function python_float_text

end module fkb_spec_build
