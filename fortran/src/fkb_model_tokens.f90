module fkb_model_tokens
  !! The vocabulary of the model file's header (docs/model-file.md): the
  !! format's constants, space-separated tokens and `key=value` lists, the
  !! integers, names and fixed lines the header is made of, and the
  !! little-endian byte order of the payload. No knowledge of sections or
  !! layers: the header parser (`fkb_model_header`), the reader, the writer
  !! and the checks (`fkb_model_validation`) build on it.
  use iso_fortran_env, only: real32, int8, int32, int64
  use fkb_spec, only: tensor_spec, io_spec, attribute_spec
  use fkb_status, only: fkb_ok, fkb_err_format, fkb_err_memory, allocation_failure
  use fkb_spec_build, only: attribute, int_to_str
  implicit none
  private
  public :: fkb_format_version, newline, statistics_params
  public :: little_endian, byte_swapped, next_token, split_tokens, keyword, parse_int, &
            parse_int_list, check_fixed_line, is_sha256_line, is_integer_line, is_token, is_text, &
            units_text, shape_text, parse_key_values

  integer, parameter :: fkb_format_version = 3
    !! the newest format version this module reads and writes (it reads
    !! and writes versions 1 and 2 too: files without input statistics,
    !! without a training section)

  character(len=1), parameter :: newline = achar(10)

  character(len=*), parameter :: statistics_params(6) = &
    [character(len=8) :: 'minimum', 'maximum', 'mean', 'std', 'basis', 'variance']
    !! the params of an input_statistics section, in the order written

contains

  subroutine parse_key_values(line, first, last, start, attributes, stat, problem)
    !! The `key=value` tokens `start..` of a header line (training,
    !! optimizer and schedule lines), keys unique.
    character(len=*), intent(in) :: line
    integer, intent(in) :: first(:), last(:), start
    type(attribute_spec), allocatable, intent(out) :: attributes(:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: t, eq, k, j
    allocate (attributes(max(0, size(first) - start + 1)), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      problem = allocation_failure('the key=value list of a header line', &
                                   int(max(0, size(first) - start + 1), int64), 64)
      return
    end if
    do t = start, size(first)
      eq = index(line(first(t):last(t)), '=')
      if (eq <= 1 .or. first(t) + eq - 1 == last(t)) then
        stat = fkb_err_format
        problem = 'malformed attribute ''' // line(first(t):last(t)) // ''' (expected key=value)'
        return
      end if
      eq = first(t) + eq - 1
      k = t - start + 1
      attributes(k) = attribute(line(first(t):eq - 1), line(eq + 1:last(t)))
      do j = 1, k - 1
        if (attributes(j)%key == attributes(k)%key) then
          stat = fkb_err_format
          problem = 'a second attribute ' // attributes(k)%key
          return
        end if
      end do
    end do
  end subroutine parse_key_values

  pure logical function little_endian()
    integer(int8) :: bytes(4)
    bytes = transfer(1_int32, bytes)
    little_endian = bytes(1) == 1
  end function little_endian

  elemental integer(int32) function byte_swapped(x) result(y)
    integer(int32), intent(in) :: x
    y = 0
    call mvbits(x, 0, 8, y, 24)
    call mvbits(x, 8, 8, y, 16)
    call mvbits(x, 16, 8, y, 8)
    call mvbits(x, 24, 8, y, 0)
  end function byte_swapped

  pure subroutine next_token(line, start, first, last)
    !! The next space-separated token at or after `start`: `line(first:last)`,
    !! `first = 0` when there is none.
    character(len=*), intent(in) :: line
    integer, intent(in) :: start
    integer, intent(out) :: first, last
    integer :: i
    first = 0
    last = 0
    do i = start, len(line)
      if (line(i:i) /= ' ') then
        first = i
        exit
      end if
    end do
    if (first == 0) return
    last = len(line)
    do i = first + 1, len(line)
      if (line(i:i) == ' ') then
        last = i - 1
        exit
      end if
    end do
  end subroutine next_token

  pure subroutine split_tokens(line, first, last, n, stat)
    !! All space-separated tokens of a line; `stat` is `fkb_err_memory` if
    !! their index cannot be allocated.
    character(len=*), intent(in) :: line
    integer, allocatable, intent(out) :: first(:), last(:)
    integer, intent(out) :: n
    integer, intent(out) :: stat
    integer :: pos, f, l
    n = 0
    pos = 1
    do
      call next_token(line, pos, f, l)
      if (f == 0) exit
      n = n + 1
      pos = l + 1
    end do
    allocate(first(n), last(n), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      return
    end if
    n = 0
    pos = 1
    do
      call next_token(line, pos, f, l)
      if (f == 0) exit
      n = n + 1
      first(n) = f
      last(n) = l
      pos = l + 1
    end do
  end subroutine split_tokens

  pure function keyword(line) result(word)
    !! The first token of a line, '' if none.
    character(len=*), intent(in) :: line
    character(len=:), allocatable :: word
    integer :: f, l
    call next_token(line, 1, f, l)
    if (f == 0) then
      word = ''
    else
      word = line(f:l)
    end if
  end function keyword

  pure subroutine parse_int(text, value, stat)
    !! A decimal integer with an optional sign, nothing else.
    character(len=*), intent(in) :: text
    integer, intent(out) :: value
    integer, intent(out) :: stat
    integer(int64) :: v
    integer :: i, start
    logical :: negative
    value = 0
    stat = fkb_err_format
    if (len(text) == 0) return
    negative = text(1:1) == '-'
    start = 1
    if (text(1:1) == '-' .or. text(1:1) == '+') start = 2
    if (start > len(text) .or. len(text) - start + 1 > 10) return
    v = 0
    do i = start, len(text)
      if (text(i:i) < '0' .or. text(i:i) > '9') return
      v = 10 * v + (iachar(text(i:i)) - iachar('0'))
    end do
    if (v > huge(0_int32)) return
    value = int(v)
    if (negative) value = -value
    stat = fkb_ok
  end subroutine parse_int

  pure subroutine parse_int_list(text, values, stat)
    !! Comma-separated integers, e.g. `1,2`.
    character(len=*), intent(in) :: text
    integer, allocatable, intent(out) :: values(:)
    integer, intent(out) :: stat
    integer :: n, i, start, comma
    n = 1
    do i = 1, len(text)
      if (text(i:i) == ',') n = n + 1
    end do
    allocate(values(n), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      return
    end if
    start = 1
    do i = 1, n
      comma = index(text(start:), ',')
      if (comma == 0) then
        comma = len(text) + 1
      else
        comma = start + comma - 1
      end if
      call parse_int(text(start:comma - 1), values(i), stat)
      if (stat /= fkb_ok) return
      start = comma + 1
    end do
  end subroutine parse_int_list

  pure subroutine check_fixed_line(line, word, value, ok)
    !! Whether `line` is exactly `<word> <integer>`.
    character(len=*), intent(in) :: line, word
    integer, intent(out) :: value
    logical, intent(out) :: ok
    integer :: first(3), last(3), stat
    value = 0
    call next_token(line, 1, first(1), last(1))
    ok = first(1) > 0
    if (.not. ok) return
    call next_token(line, last(1) + 1, first(2), last(2))
    ok = first(2) > 0
    if (.not. ok) return
    call next_token(line, last(2) + 1, first(3), last(3))
    ok = first(3) == 0 .and. line(first(1):last(1)) == word
    if (.not. ok) return
    call parse_int(line(first(2):last(2)), value, stat)
    ok = stat == fkb_ok
  end subroutine check_fixed_line

  pure logical function is_sha256_line(line)
    !! Whether `line` is exactly `sha256 <64 lowercase hex digits>`.
    character(len=*), intent(in) :: line
    integer :: i
    is_sha256_line = .false.
    if (len(line) /= 7 + 64) return
    if (line(1:7) /= 'sha256 ') return
    do i = 8, len(line)
      if (index('0123456789abcdef', line(i:i)) == 0) return
    end do
    is_sha256_line = .true.
  end function is_sha256_line

  pure logical function is_integer_line(line)
    !! Whether `line` holds a single integer (blanks and a carriage return
    !! around it allowed), the first line of an original FKB file.
    character(len=*), intent(in) :: line
    integer :: first, last, i, stat, value
    first = 0
    last = 0
    do i = 1, len(line)
      if (line(i:i) /= ' ' .and. line(i:i) /= achar(9) .and. line(i:i) /= achar(13)) then
        if (first == 0) first = i
        last = i
      end if
    end do
    is_integer_line = .false.
    if (first == 0) return
    do i = first, last
      if (line(i:i) == ' ' .or. line(i:i) == achar(9)) return
    end do
    call parse_int(line(first:last), value, stat)
    is_integer_line = stat == fkb_ok
  end function is_integer_line

  pure logical function is_token(text)
    !! Non-empty, no blanks and no control characters.
    character(len=*), intent(in) :: text
    integer :: i
    is_token = len(text) > 0
    do i = 1, len(text)
      if (iachar(text(i:i)) <= 32 .or. iachar(text(i:i)) == 127) is_token = .false.
    end do
  end function is_token

  pure logical function is_text(text)
    !! No control characters (text may hold blanks).
    character(len=*), intent(in) :: text
    integer :: i
    is_text = .true.
    do i = 1, len(text)
      if (iachar(text(i:i)) < 32 .or. iachar(text(i:i)) == 127) is_text = .false.
    end do
  end function is_text

  pure function units_text(io) result(units)
    !! Units as written: trimmed, `1` when there are none.
    type(io_spec), intent(in) :: io
    character(len=:), allocatable :: units
    units = ''
    if (allocated(io%units)) units = trim(adjustl(io%units))
    if (len(units) == 0) units = '1'
  end function units_text

  pure function shape_text(tensor) result(text)
    !! `d1` or `d1 d2`, as on a param line.
    type(tensor_spec), intent(in) :: tensor
    character(len=:), allocatable :: text
    text = int_to_str(tensor%shape(1))
    if (tensor%rank == 2) text = text // ' ' // int_to_str(tensor%shape(2))
  end function shape_text

end module fkb_model_tokens
