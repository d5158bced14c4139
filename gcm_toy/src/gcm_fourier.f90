module gcm_fourier
  !! The Fourier half of the spectral transform, for many latitude circles
  !! at once.
  !!
  !! A grid row g(lambda_i), lambda_i = 2 pi i / nlon, i = 0..nlon-1, and its
  !! coefficients F_m, m = 0..M (F_-m = conj(F_m), higher m zero) are related by
  !!   g_i = sum_{m=-M..M} F_m exp(i m lambda_i),   F_m = (1/nlon) sum_i g_i exp(-i m lambda_i).
  !!
  !! Why a direct transform and not an FFT: with only M+1 <= nlon/3 wavenumbers
  !! kept, and nlon a multiple of 4, the symmetries cos/sin(m(pi -+ lambda)) and
  !! cos/sin(m(pi/2 ...)) let four grid points share one set of even-m and odd-m
  !! cosine and sine sums. That is (M+1)(nlon/4+1)*4 multiply-adds per row,
  !! about the flop count of a real FFT for nlon = 32..128, with unit-stride
  !! inner loops over the batch of rows that vectorise without -march flags,
  !! no bit-reversal and no restriction to radix 2/3 sizes beyond nlon mod 4 = 0.
  !!
  !! Layout: coefficients four(nb, 2, 0:M) (1 = real part, 2 = imaginary
  !! part), grid(nb, 0:nlon-1); nb is the batch of rows of one latitude
  !! (stacked levels and fields), small enough to stay in the L1/L2 cache.
  use gcm_constants, only: wp, pi
  implicit none
  private
  public :: fourier_plan, fourier_init, fourier_synthesis, fourier_analysis

  integer, parameter :: block = 32
    !! rows per cache block

  type :: fourier_plan
    integer :: nlon = 0
    integer :: mmax = 0
    integer :: nq = 0
      !! nlon/4
    real(wp), allocatable :: syn_cos(:, :)
      !! (0:M, 0:nq): c_m cos(m lambda_i), c_0 = 1, c_m = 2
    real(wp), allocatable :: syn_sin(:, :)
      !! (0:M, 0:nq): 2 sin(m lambda_i)
    real(wp), allocatable :: ana_cos(:, :)
      !! (0:M, 0:nq): cos(m lambda_i)/nlon
    real(wp), allocatable :: ana_sin(:, :)
      !! (0:M, 0:nq): -sin(m lambda_i)/nlon
  end type fourier_plan

contains

  subroutine fourier_init(plan, nlon, mmax)
    !! Trigonometric tables; nlon must be a multiple of 4 and > 2M.
    type(fourier_plan), intent(out) :: plan
    integer, intent(in) :: nlon, mmax
    integer :: m, i, r
    real(wp) :: c, s, angle
    plan%nlon = nlon
    plan%mmax = mmax
    plan%nq = nlon / 4
    allocate (plan%syn_cos(0:mmax, 0:plan%nq), plan%syn_sin(0:mmax, 0:plan%nq), &
              plan%ana_cos(0:mmax, 0:plan%nq), plan%ana_sin(0:mmax, 0:plan%nq))
    do i = 0, plan%nq
      do m = 0, mmax
        r = mod(m * i, nlon)
        angle = 2.0_wp * pi * real(r, wp) / real(nlon, wp)
        c = cos(angle)
        s = sin(angle)
        ! exact zeros keep the four symmetric points bit-consistent
        if (r == 0 .or. 2 * r == nlon) s = 0.0_wp
        if (4 * r == nlon .or. 4 * r == 3 * nlon) c = 0.0_wp
        if (m == 0) then
          plan%syn_cos(m, i) = c
          plan%syn_sin(m, i) = 0.0_wp
        else
          plan%syn_cos(m, i) = 2.0_wp * c
          plan%syn_sin(m, i) = 2.0_wp * s
        end if
        plan%ana_cos(m, i) = c / real(nlon, wp)
        plan%ana_sin(m, i) = -s / real(nlon, wp)
      end do
    end do
  end subroutine fourier_init

  subroutine fourier_synthesis(plan, nb, four, grid)
    !! Grid rows from Fourier coefficients.
    type(fourier_plan), intent(in) :: plan
    integer, intent(in) :: nb
    real(wp), intent(in) :: four(nb, 2, 0:plan%mmax)
    real(wp), intent(out) :: grid(nb, 0:plan%nlon - 1)
    real(wp) :: ce(block), co(block), se(block), so(block)
    integer :: b0, b1, n, i, m, nq, nh, mm
    real(wp) :: c, s

    nq = plan%nq
    nh = plan%nlon / 2
    mm = plan%mmax
    do b0 = 1, nb, block
      b1 = min(nb, b0 + block - 1)
      n = b1 - b0 + 1
      do i = 0, nq
        ce(1:n) = 0.0_wp
        co(1:n) = 0.0_wp
        se(1:n) = 0.0_wp
        so(1:n) = 0.0_wp
        do m = 0, mm, 2
          c = plan%syn_cos(m, i)
          s = plan%syn_sin(m, i)
          ce(1:n) = ce(1:n) + c * four(b0:b1, 1, m)
          se(1:n) = se(1:n) + s * four(b0:b1, 2, m)
        end do
        do m = 1, mm, 2
          c = plan%syn_cos(m, i)
          s = plan%syn_sin(m, i)
          co(1:n) = co(1:n) + c * four(b0:b1, 1, m)
          so(1:n) = so(1:n) + s * four(b0:b1, 2, m)
        end do
        if (i == 0) then
          grid(b0:b1, 0) = ce(1:n) + co(1:n) - se(1:n) - so(1:n)
          grid(b0:b1, nh) = ce(1:n) - co(1:n) - se(1:n) + so(1:n)
        else if (i == nq) then
          grid(b0:b1, nq) = ce(1:n) + co(1:n) - se(1:n) - so(1:n)
          grid(b0:b1, nh + nq) = ce(1:n) - co(1:n) - se(1:n) + so(1:n)
        else
          grid(b0:b1, i) = ce(1:n) + co(1:n) - se(1:n) - so(1:n)
          grid(b0:b1, plan%nlon - i) = ce(1:n) + co(1:n) + se(1:n) + so(1:n)
          grid(b0:b1, nh + i) = ce(1:n) - co(1:n) - se(1:n) + so(1:n)
          grid(b0:b1, nh - i) = ce(1:n) - co(1:n) + se(1:n) - so(1:n)
        end if
      end do
    end do
  end subroutine fourier_synthesis

  subroutine fourier_analysis(plan, nb, grid, four)
    !! Fourier coefficients m = 0..M of grid rows.
    type(fourier_plan), intent(in) :: plan
    integer, intent(in) :: nb
    real(wp), intent(in) :: grid(nb, 0:plan%nlon - 1)
    real(wp), intent(out) :: four(nb, 2, 0:plan%mmax)
    real(wp) :: e1(block), o1(block), e2(block), o2(block)
    integer :: b0, b1, n, i, m, nq, nh, mm
    real(wp) :: c, s

    nq = plan%nq
    nh = plan%nlon / 2
    mm = plan%mmax
    do b0 = 1, nb, block
      b1 = min(nb, b0 + block - 1)
      n = b1 - b0 + 1
      four(b0:b1, :, :) = 0.0_wp
      do i = 0, nq
        if (i == 0) then
          e1(1:n) = grid(b0:b1, 0) + grid(b0:b1, nh)
          o1(1:n) = grid(b0:b1, 0) - grid(b0:b1, nh)
          e2(1:n) = 0.0_wp
          o2(1:n) = 0.0_wp
        else if (i == nq) then
          e1(1:n) = grid(b0:b1, nq) + grid(b0:b1, nh + nq)
          o1(1:n) = 0.0_wp
          e2(1:n) = 0.0_wp
          o2(1:n) = grid(b0:b1, nq) - grid(b0:b1, nh + nq)
        else
          e1(1:n) = (grid(b0:b1, i) + grid(b0:b1, plan%nlon - i)) &
                    + (grid(b0:b1, nh + i) + grid(b0:b1, nh - i))
          o1(1:n) = (grid(b0:b1, i) + grid(b0:b1, plan%nlon - i)) &
                    - (grid(b0:b1, nh + i) + grid(b0:b1, nh - i))
          e2(1:n) = (grid(b0:b1, i) - grid(b0:b1, plan%nlon - i)) &
                    + (grid(b0:b1, nh + i) - grid(b0:b1, nh - i))
          o2(1:n) = (grid(b0:b1, i) - grid(b0:b1, plan%nlon - i)) &
                    - (grid(b0:b1, nh + i) - grid(b0:b1, nh - i))
        end if
        do m = 0, mm, 2
          c = plan%ana_cos(m, i)
          s = plan%ana_sin(m, i)
          four(b0:b1, 1, m) = four(b0:b1, 1, m) + c * e1(1:n)
          four(b0:b1, 2, m) = four(b0:b1, 2, m) + s * e2(1:n)
        end do
        do m = 1, mm, 2
          c = plan%ana_cos(m, i)
          s = plan%ana_sin(m, i)
          four(b0:b1, 1, m) = four(b0:b1, 1, m) + c * o1(1:n)
          four(b0:b1, 2, m) = four(b0:b1, 2, m) + s * o2(1:n)
        end do
      end do
      ! the imaginary part of the mean carries no information
      four(b0:b1, 2, 0) = 0.0_wp
    end do
  end subroutine fourier_analysis

end module gcm_fourier
