program test_lehmer
  !! The dropout layers' generator drawn 16 streams abreast (fkb_lehmer)
  !! gives the Park-Miller numbers one after another would, in their order,
  !! for any sizes of draw, from any state (the ends of the range included).
  use, intrinsic :: iso_fortran_env, only: int64
  use fkb_lehmer, only: lehmer_modulus, lehmer_lanes, lehmer_fill, lehmer_last, n_lanes
  use fkb_testing, only: tester
  implicit none
  type(tester) :: t
  integer, parameter :: sizes(*) = [1, 5, 16, 17, 3, 100, 31, 32, 1000, 7]
  integer, parameter :: states(*) = [1, 42, 2147483646, 16807, 1043618065]
  integer(int64) :: lanes(n_lanes), expected(sum(sizes)), drawn(sum(sizes))
  integer(int64) :: s
  integer :: i, k, first

  do i = 1, size(states)
    s = states(i)
    do k = 1, size(expected)
      s = modulo(16807_int64 * s, lehmer_modulus)
      expected(k) = s
    end do
    lanes = lehmer_lanes(states(i))
    call t%check(lehmer_last(lanes) == states(i), 'the lanes end at the state')
    first = 1
    do k = 1, size(sizes)
      call lehmer_fill(lanes, drawn(first:first + sizes(k) - 1))
      first = first + sizes(k)
    end do
    call t%check(all(drawn == expected), 'the sequence, drawn in blocks of any size')
    call t%check(lehmer_last(lanes) == expected(size(expected)), 'the state after the draws')
    lanes = lehmer_lanes(lehmer_last(lanes))
    call lehmer_fill(lanes, drawn(1:3))
    s = expected(size(expected))
    do k = 1, 3
      s = modulo(16807_int64 * s, lehmer_modulus)
      call t%check(drawn(k) == s, 'continued from a saved state')
    end do
  end do
  call t%finish()
end program test_lehmer
