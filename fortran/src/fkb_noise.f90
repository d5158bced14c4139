module fkb_noise
  !! Reproducible Gaussian noise for ensemble input perturbation.
  !!
  !! The noise is a pure function of `(seed, member, column, feature)`: a
  !! counter-based generator (Threefry-4x32 with 20 rounds, Salmon et al.
  !! 2011, "Parallel random numbers: as easy as 1, 2, 3") turns the counter
  !! `(column - 1, (feature - 1) / 2, member - 1, 0)` under the key
  !! `(low 32 bits of seed, high 32 bits of seed, 'FKBE', 0)` into four
  !! 32-bit words; two 53-bit uniforms from them give, by the Box-Muller
  !! transform, the standard normal values of an odd feature and the even
  !! feature after it. There is no state: the noise never depends on the
  !! number of threads, the order of evaluation or earlier calls.
  !!
  !! The 32-bit words are held in `int64` integers, so that every addition
  !! (mod 2^32) and rotation is exact without relying on integer overflow.
  use iso_fortran_env, only: int64, real64
  implicit none
  private
  public :: threefry4x32, ensemble_noise, gaussian_pair

  integer(int64), parameter :: mask32 = 4294967295_int64
    !! 2^32 - 1
  integer(int64), parameter :: parity32 = 466688986_int64
    !! Threefry's key-schedule constant 0x1BD11BDA
  integer(int64), parameter :: domain = 1179337285_int64
    !! 'FKBE' (0x464B4245): the third key word, so these streams differ from
    !! any other use of Threefry with the same seed
  real(real64), parameter :: two_pi = 6.283185307179586476925286766559_real64
  real(real64), parameter :: two_m53 = 1.0_real64 / 9007199254740992.0_real64
    !! 2^-53

contains

  pure function threefry4x32(counter, key) result(x)
    !! Threefry-4x32-20 of `counter` under `key`: four 32-bit words, each
    !! given and returned as an `int64` in `0 .. 2^32 - 1`.
    integer(int64), intent(in) :: counter(4), key(4)
    integer(int64) :: x(4)
    integer(int64) :: ks(0:4), x0, x1, x2, x3
    integer :: group
    ks(0:3) = iand(key, mask32)
    ks(4) = ieor(parity32, ieor(ieor(ks(0), ks(1)), ieor(ks(2), ks(3))))
    x0 = iand(iand(counter(1), mask32) + ks(0), mask32)
    x1 = iand(iand(counter(2), mask32) + ks(1), mask32)
    x2 = iand(iand(counter(3), mask32) + ks(2), mask32)
    x3 = iand(iand(counter(4), mask32) + ks(3), mask32)
    do group = 1, 5
      ! four rounds with the rotation constants of rounds 0-3 (odd groups)
      ! or 4-7 (even groups), then the key injection
      if (mod(group, 2) == 1) then
        call mix(x0, x1, 10); call mix(x2, x3, 26)
        call mix(x0, x3, 11); call mix(x2, x1, 21)
        call mix(x0, x1, 13); call mix(x2, x3, 27)
        call mix(x0, x3, 23); call mix(x2, x1, 5)
      else
        call mix(x0, x1, 6); call mix(x2, x3, 20)
        call mix(x0, x3, 17); call mix(x2, x1, 11)
        call mix(x0, x1, 25); call mix(x2, x3, 10)
        call mix(x0, x3, 18); call mix(x2, x1, 20)
      end if
      x0 = iand(x0 + ks(mod(group, 5)), mask32)
      x1 = iand(x1 + ks(mod(group + 1, 5)), mask32)
      x2 = iand(x2 + ks(mod(group + 2, 5)), mask32)
      x3 = iand(x3 + ks(mod(group + 3, 5)) + int(group, int64), mask32)
    end do
    x = [x0, x1, x2, x3]
  end function threefry4x32

  pure subroutine mix(a, b, bits)
    !! One Threefry mix: a += b; b = rotl32(b, bits) xor a.
    integer(int64), intent(inout) :: a, b
    integer, intent(in) :: bits
    a = iand(a + b, mask32)
    b = ieor(iand(ior(shiftl(b, bits), shiftr(b, 32 - bits)), mask32), a)
  end subroutine mix

  pure subroutine gaussian_pair(seed, member, column, pair, z1, z2)
    !! The two standard normal values of features `2 pair - 1` and `2 pair`
    !! of `column` for ensemble `member` (all counted from 1).
    integer(int64), intent(in) :: seed
    integer, intent(in) :: member, column, pair
    real(real64), intent(out) :: z1, z2
    integer(int64) :: w(4), key(4), counter(4)
    real(real64) :: u1, u2, radius
    key = [iand(seed, mask32), iand(shiftr(seed, 32), mask32), domain, 0_int64]
    counter = [int(column - 1, int64), int(pair - 1, int64), int(member - 1, int64), 0_int64]
    w = threefry4x32(counter, key)
    ! u1 in (0, 1) (never 0, so the logarithm is finite); u2 in [0, 1)
    u1 = (real(shiftr(w(1), 5) * 67108864_int64 + shiftr(w(2), 6), real64) + 0.5_real64) &
         * two_m53
    u2 = real(shiftr(w(3), 5) * 67108864_int64 + shiftr(w(4), 6), real64) * two_m53
    radius = sqrt(-2.0_real64 * log(u1))
    z1 = radius * cos(two_pi * u2)
    z2 = radius * sin(two_pi * u2)
  end subroutine gaussian_pair

  pure real(real64) function ensemble_noise(seed, member, column, feature)
    !! The standard normal value that `ensemble%predict(..., noise_std, seed)`
    !! scales and adds to input `feature` of `column` for `member` (all
    !! counted from 1): exposed so that a perturbed prediction can be
    !! reproduced by hand.
    integer(int64), intent(in) :: seed
    integer, intent(in) :: member, column, feature
    real(real64) :: z1, z2
    call gaussian_pair(seed, member, column, (feature + 1) / 2, z1, z2)
    ensemble_noise = merge(z1, z2, mod(feature, 2) == 1)
  end function ensemble_noise

end module fkb_noise
