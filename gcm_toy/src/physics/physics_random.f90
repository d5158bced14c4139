module physics_random
  !! Counter-based random numbers for the stochastic subcolumns.
  !!
  !! Philox4x32-10 (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers:
  !! as easy as 1, 2, 3"): a keyed bijection of a 128-bit counter. The key is the
  !! run's seed; the counter is (draw, column id, step low word, step high word).
  !! A draw therefore depends only on (seed, step, column, draw index): results
  !! are reproducible bit for bit and independent of how columns are batched or
  !! threaded, and nothing is stored between calls.
  !!
  !! Unsigned 32-bit words are held in int64 and every product is split into
  !! 16-bit halves, so no intermediate overflows a signed 64-bit integer.
  use iso_fortran_env, only: int64, real64
  use gcm_constants, only: pi
  implicit none
  private
  public :: philox4x32_10, random_uniform4, random_normal_pair

  integer(int64), parameter :: mask32 = 4294967295_int64
  integer(int64), parameter :: mask16 = 65535_int64
  integer(int64), parameter :: philox_m0 = int(z'D2511F53', int64)
  integer(int64), parameter :: philox_m1 = int(z'CD9E8D57', int64)
  integer(int64), parameter :: philox_w0 = int(z'9E3779B9', int64)
  integer(int64), parameter :: philox_w1 = int(z'BB67AE85', int64)

contains

  pure subroutine mulhilo32(a, b, hi, lo)
    !! The high and low 32-bit words of the 64-bit product a*b of two 32-bit words.
    integer(int64), intent(in) :: a, b
    integer(int64), intent(out) :: hi, lo
    integer(int64) :: t0, t1, s

    t0 = iand(a, mask16) * b          ! < 2**48
    t1 = shiftr(a, 16) * b            ! < 2**48
    s = t0 + shiftl(iand(t1, mask16), 16)
    lo = iand(s, mask32)
    hi = shiftr(t1, 16) + shiftr(s, 32)
  end subroutine mulhilo32

  pure function philox4x32_10(counter, key) result(x)
    !! Philox4x32 with 10 rounds. counter(4), key(2) and the result are
    !! unsigned 32-bit words stored in int64 (values 0 .. 2**32-1).
    integer(int64), intent(in) :: counter(4), key(2)
    integer(int64) :: x(4)
    integer(int64) :: k0, k1, hi0, lo0, hi1, lo1
    integer :: round

    x = iand(counter, mask32)
    k0 = iand(key(1), mask32)
    k1 = iand(key(2), mask32)
    do round = 1, 10
      if (round > 1) then
        k0 = iand(k0 + philox_w0, mask32)
        k1 = iand(k1 + philox_w1, mask32)
      end if
      call mulhilo32(philox_m0, x(1), hi0, lo0)
      call mulhilo32(philox_m1, x(3), hi1, lo1)
      x = [ieor(ieor(hi1, x(2)), k0), lo1, ieor(ieor(hi0, x(4)), k1), lo0]
    end do
  end function philox4x32_10

  pure function random_uniform4(seed, step, column_id, draw) result(u)
    !! Four independent uniform numbers in the open interval (0, 1), keyed by
    !! (seed, step, column_id, draw). draw numbers the draws of one column and step.
    integer(int64), intent(in) :: seed, step
    integer, intent(in) :: column_id, draw
    real(real64) :: u(4)
    integer(int64) :: counter(4), key(2), x(4)

    key = [iand(seed, mask32), iand(shiftr(seed, 32), mask32)]
    counter = [iand(int(draw, int64), mask32), iand(int(column_id, int64), mask32), &
               iand(step, mask32), iand(shiftr(step, 32), mask32)]
    x = philox4x32_10(counter, key)
    u = (real(x, real64) + 0.5_real64) * 2.0_real64**(-32)
  end function random_uniform4

  pure function random_normal_pair(u1, u2) result(z)
    !! Two independent standard normal numbers from two uniforms in (0, 1) (Box-Muller).
    real(real64), intent(in) :: u1, u2
    real(real64) :: z(2)
    real(real64) :: r

    r = sqrt(-2.0_real64 * log(u1))
    z = [r * cos(2.0_real64 * pi * u2), r * sin(2.0_real64 * pi * u2)]
  end function random_normal_pair

end module physics_random
