module test_support
  !! Tiny assertion helpers for the standalone Fortran test drivers.
  use gcm_constants, only: wp
  implicit none
  private
  public :: test_counter, check, report

  type :: test_counter
    integer :: passed = 0
    integer :: failed = 0
  end type test_counter

contains

  subroutine check(tc, condition, name, value, limit)
    !! Record one named check; print the measured value and its limit.
    type(test_counter), intent(inout) :: tc
    logical, intent(in) :: condition
    character(len=*), intent(in) :: name
    real(wp), intent(in), optional :: value, limit
    character(len=40) :: buf
    buf = ''
    if (present(value)) write (buf, '(es12.4)') value
    if (present(limit)) write (buf, '(a,a,es10.2)') trim(buf), ' vs', limit
    if (condition) then
      tc%passed = tc%passed + 1
      write (*, '(a,a,t64,a)') 'PASS  ', name, trim(buf)
    else
      tc%failed = tc%failed + 1
      write (*, '(a,a,t64,a)') 'FAIL  ', name, trim(buf)
    end if
  end subroutine check

  subroutine report(tc)
    !! Summary line; a failing driver ends with a non-zero exit code.
    type(test_counter), intent(in) :: tc
    write (*, '(i0,a,i0,a)') tc%passed, ' passed, ', tc%failed, ' failed'
    if (tc%failed > 0) error stop 1
  end subroutine report

end module test_support
