module fkb_lehmer
  !! The Park-Miller ("minimal standard") Lehmer generator of the dropout
  !! layers, `x(k+1) = 16807 x(k) mod (2**31 - 1)` (Park and Miller 1988),
  !! drawn many numbers at a time.
  !!
  !! One number after another, each draw waits for the last (a multiply and
  !! a reduction, ~10 cycles), and a dropout layer in training draws one per
  !! activation: as much time as the layer's matrix products. The same
  !! sequence is drawn 16 streams abreast: `x(k+16) = a**16 x(k) mod m`, so
  !! a block of numbers depends only on the 16 before it, which the
  !! compiler turns into vector multiplies. The reduction modulo the
  !! Mersenne prime `m` is `(s and m) + (s >> 31)` and at most one
  !! subtraction, exact for every product of two numbers below `m`. The
  !! numbers are the generator's, in its order, bit for bit.
  use, intrinsic :: iso_fortran_env, only: int64
  implicit none
  private
  public :: lehmer_modulus, lehmer_lanes, lehmer_fill, lehmer_last, n_lanes

  integer, parameter :: n_lanes = 16
  !! Numbers a block depends on: the stride of the recurrence.
  integer(int64), parameter :: lehmer_modulus = 2147483647_int64
  integer(int64), parameter :: multiplier = 16807_int64
  integer(int64), parameter :: inverse = 1407677000_int64
  !! `16807 inverse mod m = 1`: steps the generator back.

contains

  pure elemental integer(int64) function mulmod(a, x)
    !! `a x mod m` for `0 < a, x < m`.
    integer(int64), intent(in) :: a, x
    integer(int64) :: s
    s = a * x
    s = iand(s, lehmer_modulus) + ishft(s, -31)
    mulmod = merge(s - lehmer_modulus, s, s >= lehmer_modulus)
  end function mulmod

  pure integer(int64) function stride_multiplier()
    !! `16807**n_lanes mod m`.
    integer :: k
    stride_multiplier = 1
    do k = 1, n_lanes
      stride_multiplier = mulmod(stride_multiplier, multiplier)
    end do
  end function stride_multiplier

  pure function lehmer_lanes(state) result(lanes)
    !! The last `n_lanes` numbers of a generator whose last number is
    !! `state` (`0 < state < m`), oldest first: what :func:`lehmer_fill`
    !! continues from.
    integer, intent(in) :: state
    integer(int64) :: lanes(n_lanes)
    integer :: l
    lanes(n_lanes) = int(state, int64)
    do l = n_lanes - 1, 1, -1
      lanes(l) = mulmod(inverse, lanes(l + 1))
    end do
  end function lehmer_lanes

  pure subroutine lehmer_fill(lanes, x)
    !! The next `size(x)` numbers of the generator into `x`; `lanes` (the
    !! last `n_lanes` numbers, oldest first) moves on past them.
    integer(int64), intent(inout) :: lanes(n_lanes)
    integer(int64), intent(out) :: x(:)
    integer(int64) :: a
    integer :: k, count
    count = size(x)
    a = stride_multiplier()
    do k = 1, min(n_lanes, count)
      x(k) = mulmod(a, lanes(k))
    end do
    do k = n_lanes + 1, count
      x(k) = mulmod(a, x(k - n_lanes))
    end do
    if (count >= n_lanes) then
      lanes = x(count - n_lanes + 1:count)
    else
      lanes = [lanes(count + 1:n_lanes), x(1:count)]
    end if
  end subroutine lehmer_fill

  pure integer function lehmer_last(lanes)
    !! The generator's state after the numbers drawn: its last number.
    integer(int64), intent(in) :: lanes(n_lanes)
    lehmer_last = int(lanes(n_lanes))
  end function lehmer_last

end module fkb_lehmer
