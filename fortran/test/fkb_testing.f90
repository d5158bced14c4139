module fkb_testing
  !! A tiny assertion helper for the Fortran tests: a `tester` counts checks
  !! and failures, prints each failure with its label, and `finish` ends the
  !! program with a non-zero exit code if anything failed.
  use iso_fortran_env, only: real32, real64, output_unit, error_unit
  implicit none
  private
  public :: tester

  type :: tester
    character(len=:), allocatable :: suite
    integer :: n_checks = 0
    integer :: n_failed = 0
  contains
    procedure :: check
    procedure :: status => check_status
    procedure, private :: close_r32_1, close_r64_1, close_r32_2, close_r64_2
    generic :: close => close_r32_1, close_r64_1, close_r32_2, close_r64_2
    procedure :: finish
  end type tester

contains

  subroutine check(self, condition, label)
    !! Pass if `condition` holds.
    class(tester), intent(inout) :: self
    logical, intent(in) :: condition
    character(len=*), intent(in) :: label
    self%n_checks = self%n_checks + 1
    if (.not. condition) then
      self%n_failed = self%n_failed + 1
      write (error_unit, '(a)') 'FAIL: ' // label
    end if
  end subroutine check

  subroutine check_status(self, stat, expected, msg, label, contains)
    !! Pass if `stat == expected` and, when given, `msg` contains each of
    !! the strings in `contains`.
    class(tester), intent(inout) :: self
    integer, intent(in) :: stat, expected
    character(len=:), allocatable, intent(in) :: msg
    character(len=*), intent(in) :: label
    character(len=*), intent(in), optional :: contains(:)
    integer :: i
    character(len=:), allocatable :: text
    text = '(no message)'
    if (allocated(msg)) text = msg
    self%n_checks = self%n_checks + 1
    if (stat /= expected) then
      self%n_failed = self%n_failed + 1
      write (error_unit, '(a, i0, a, i0, a)') 'FAIL: ' // label // ': status ', stat, &
        ' (expected ', expected, '): ' // text
      return
    end if
    if (present(contains)) then
      do i = 1, size(contains)
        if (index(text, trim(contains(i))) == 0) then
          self%n_failed = self%n_failed + 1
          write (error_unit, '(a)') 'FAIL: ' // label // ': message "' // text // &
            '" lacks "' // trim(contains(i)) // '"'
          return
        end if
      end do
    end if
  end subroutine check_status

  subroutine compare(self, got, expected, rtol, atol, label)
    class(tester), intent(inout) :: self
    real(real64), intent(in) :: got(:), expected(:)
    real(real64), intent(in) :: rtol, atol
    character(len=*), intent(in) :: label
    integer :: i, worst
    real(real64) :: excess, worst_excess
    self%n_checks = self%n_checks + 1
    if (size(got) /= size(expected)) then
      self%n_failed = self%n_failed + 1
      write (error_unit, '(a, i0, a, i0)') 'FAIL: ' // label // ': size ', size(got), &
        ' /= expected ', size(expected)
      return
    end if
    worst = 0
    worst_excess = 0.0_real64
    do i = 1, size(got)
      excess = abs(got(i) - expected(i)) - (atol + rtol * abs(expected(i)))
      if (.not. (excess <= 0.0_real64)) then
        if (worst == 0 .or. .not. (excess <= worst_excess)) then
          worst = i
          worst_excess = excess
        end if
      end if
    end do
    if (worst > 0) then
      self%n_failed = self%n_failed + 1
      write (error_unit, '(a, i0, a, es24.16, a, es24.16)') 'FAIL: ' // label // &
        ': element ', worst, ' is ', got(worst), ', expected ', expected(worst)
    end if
  end subroutine compare

  subroutine close_r32_1(self, got, expected, rtol, atol, label)
    !! Pass if `|got - expected| <= atol + rtol |expected|` everywhere.
    class(tester), intent(inout) :: self
    real(real32), intent(in) :: got(:)
    real(real64), intent(in) :: expected(:)
    real(real64), intent(in) :: rtol, atol
    character(len=*), intent(in) :: label
    call compare(self, real(got, real64), expected, rtol, atol, label)
  end subroutine close_r32_1

  subroutine close_r64_1(self, got, expected, rtol, atol, label)
    class(tester), intent(inout) :: self
    real(real64), intent(in) :: got(:)
    real(real64), intent(in) :: expected(:)
    real(real64), intent(in) :: rtol, atol
    character(len=*), intent(in) :: label
    call compare(self, got, expected, rtol, atol, label)
  end subroutine close_r64_1

  subroutine close_r32_2(self, got, expected, rtol, atol, label)
    class(tester), intent(inout) :: self
    real(real32), intent(in) :: got(:, :)
    real(real64), intent(in) :: expected(:, :)
    real(real64), intent(in) :: rtol, atol
    character(len=*), intent(in) :: label
    if (any(shape(got) /= shape(expected))) then
      call self%check(.false., label // ': shapes differ')
      return
    end if
    call compare(self, real(reshape(got, [size(got)]), real64), &
                 reshape(expected, [size(expected)]), rtol, atol, label)
  end subroutine close_r32_2

  subroutine close_r64_2(self, got, expected, rtol, atol, label)
    class(tester), intent(inout) :: self
    real(real64), intent(in) :: got(:, :)
    real(real64), intent(in) :: expected(:, :)
    real(real64), intent(in) :: rtol, atol
    character(len=*), intent(in) :: label
    if (any(shape(got) /= shape(expected))) then
      call self%check(.false., label // ': shapes differ')
      return
    end if
    call compare(self, reshape(got, [size(got)]), reshape(expected, [size(expected)]), &
                 rtol, atol, label)
  end subroutine close_r64_2

  subroutine finish(self)
    !! Print a summary; stop with exit code 1 if any check failed.
    class(tester), intent(in) :: self
    write (output_unit, '(a, i0, a, i0, a)') self%suite // ': ', &
      self%n_checks - self%n_failed, ' of ', self%n_checks, ' checks passed'
    if (self%n_failed > 0) error stop 1
  end subroutine finish

end module fkb_testing
