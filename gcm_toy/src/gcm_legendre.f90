module gcm_legendre
  !! Associated Legendre functions on the Gaussian latitudes and the
  !! Legendre half of the spectral transform.
  !!
  !! The functions are normalised so that the integral of P_mn^2 over
  !! mu in [-1, 1] is 1, and obey mu P_mn = eps_{n+1,m} P_{n+1,m} + eps_{n,m} P_{n-1,m}
  !! with eps_{n,m} = sqrt((n^2-m^2)/(4n^2-1)). A field is
  !! X(lambda, mu) = sum_m sum_n X_mn P_mn(mu) exp(i m lambda), m = -M..M.
  !!
  !! Spectral coefficients (m >= 0 only) are stored column by column of m:
  !! the triangular layout holds n = m..M (`nspec` values), the extended
  !! layout n = m..M+1 (`nspec_ext`), the latter for fields such as
  !! u cos(lat) whose expansion reaches one degree higher.
  !!
  !! Tables are kept for the northern latitudes only: P_mn is symmetric about
  !! the equator when n-m is even and antisymmetric when it is odd, so each
  !! transform sums the two parities once for a pair of latitudes.
  use gcm_constants, only: wp
  implicit none
  private
  public :: legendre_tables, legendre_init, legendre_inverse, legendre_forward, &
            spec_index, spec_index_ext, legendre_values

  type :: legendre_tables
    integer :: mmax = 0
      !! truncation M
    integer :: nlat = 0
    integer :: nh = 0
      !! latitude pairs, nlat/2
    integer :: nspec = 0
      !! (M+1)(M+2)/2
    integer :: nspec_ext = 0
      !! (M+1)(M+4)/2
    real(wp), allocatable :: p(:, :)
      !! P_mn at the northern latitudes, (nh, nspec_ext); row jj is latitude nlat+1-jj
    real(wp), allocatable :: pw(:, :)
      !! P_mn times the Gaussian weight, (nh, nspec_ext)
    real(wp), allocatable :: eps(:)
      !! eps_{n,m} in the extended layout (nspec_ext)
  end type legendre_tables

contains

  pure integer function spec_index(mmax, m, n)
    !! Position of (m, n) in the triangular layout, n = m..M.
    integer, intent(in) :: mmax, m, n
    spec_index = m * (mmax + 1) - (m * (m - 1)) / 2 + (n - m) + 1
  end function spec_index

  pure integer function spec_index_ext(mmax, m, n)
    !! Position of (m, n) in the extended layout, n = m..M+1.
    integer, intent(in) :: mmax, m, n
    spec_index_ext = m * (mmax + 2) - (m * (m - 1)) / 2 + (n - m) + 1
  end function spec_index_ext

  pure subroutine legendre_values(mmax, mu, p)
    !! Normalised P_mn(mu) for m = 0..M, n = m..M+1, in the extended layout.
    integer, intent(in) :: mmax
    real(wp), intent(in) :: mu
    real(wp), intent(out) :: p(:)
    real(wp) :: pmm, sq
    integer :: m, n, k
    sq = sqrt(max(0.0_wp, 1.0_wp - mu * mu))
    pmm = sqrt(0.5_wp)
    do m = 0, mmax
      if (m > 0) pmm = pmm * sqrt(real(2 * m + 1, wp) / real(2 * m, wp)) * sq
      k = spec_index_ext(mmax, m, m)
      p(k) = pmm
      p(k + 1) = sqrt(real(2 * m + 3, wp)) * mu * pmm
      do n = m + 2, mmax + 1
        k = spec_index_ext(mmax, m, n)
        p(k) = (mu * p(k - 1) - epsilon_nm(n - 1, m) * p(k - 2)) / epsilon_nm(n, m)
      end do
    end do
  end subroutine legendre_values

  pure real(wp) function epsilon_nm(n, m)
    integer, intent(in) :: n, m
    epsilon_nm = sqrt(real(n * n - m * m, wp) / real(4 * n * n - 1, wp))
  end function epsilon_nm

  subroutine legendre_init(tab, mmax, mu, weight)
    !! Tables for truncation M on the Gaussian latitudes `mu` (south to north).
    type(legendre_tables), intent(out) :: tab
    integer, intent(in) :: mmax
    real(wp), intent(in) :: mu(:), weight(:)
    integer :: jj, m, n, jn
    tab%mmax = mmax
    tab%nlat = size(mu)
    tab%nh = size(mu) / 2
    tab%nspec = (mmax + 1) * (mmax + 2) / 2
    tab%nspec_ext = (mmax + 1) * (mmax + 4) / 2
    allocate (tab%p(tab%nh, tab%nspec_ext), tab%pw(tab%nh, tab%nspec_ext), tab%eps(tab%nspec_ext))
    do jj = 1, tab%nh
      jn = tab%nlat + 1 - jj
      call legendre_values(mmax, mu(jn), tab%p(jj, :))
      tab%pw(jj, :) = tab%p(jj, :) * weight(jn)
    end do
    do m = 0, mmax
      do n = m, mmax + 1
        tab%eps(spec_index_ext(mmax, m, n)) = epsilon_nm(n, m)
      end do
    end do
  end subroutine legendre_init

  subroutine legendre_inverse(tab, spec, extended, four)
    !! Fourier coefficients from spectral coefficients:
    !! four(l, 1|2, m, j) = real|imag part of sum_n spec(l, (m,n)) P_mn(mu_j).
    !! `spec` is (nfl, nspec) or, when `extended`, (nfl, nspec_ext);
    !! `four` is (nfl, 2, 0:M, nlat). nfl counts stacked levels/fields.
    type(legendre_tables), intent(in) :: tab
    complex(wp), intent(in) :: spec(:, :)
    logical, intent(in) :: extended
    real(wp), intent(out) :: four(:, :, 0:, :)
    real(wp) :: x(2 * size(spec, 1), size(spec, 2))
    real(wp) :: even(2 * size(spec, 1), tab%nh), odd(2 * size(spec, 1), tab%nh)
    integer :: m, jj, nfl, nmax, ks, kp, ncoef

    nfl = size(spec, 1)
    x(1:nfl, :) = real(spec, wp)
    x(nfl + 1:, :) = aimag(spec)
    nmax = tab%mmax
    if (extended) nmax = tab%mmax + 1
    do m = 0, tab%mmax
      if (extended) then
        ks = spec_index_ext(tab%mmax, m, m)
      else
        ks = spec_index(tab%mmax, m, m)
      end if
      kp = spec_index_ext(tab%mmax, m, m)
      ncoef = nmax - m + 1
      call sum_over_degree(2 * nfl, tab%nh, (ncoef + 1) / 2, x, ks, tab%p, kp, even)
      call sum_over_degree(2 * nfl, tab%nh, ncoef / 2, x, ks + 1, tab%p, kp + 1, odd)
      do jj = 1, tab%nh
        four(:, 1, m, tab%nlat + 1 - jj) = even(1:nfl, jj) + odd(1:nfl, jj)
        four(:, 2, m, tab%nlat + 1 - jj) = even(nfl + 1:, jj) + odd(nfl + 1:, jj)
        four(:, 1, m, jj) = even(1:nfl, jj) - odd(1:nfl, jj)
        four(:, 2, m, jj) = even(nfl + 1:, jj) - odd(nfl + 1:, jj)
      end do
    end do
  end subroutine legendre_inverse

  subroutine sum_over_degree(nrow, nh, nk, x, kx0, p, kp0, out)
    !! out(r, jj) = sum_{l<nk} x(r, kx0+2l) p(jj, kp0+2l): one parity of the
    !! inverse sum, as a small matrix product with 4x4 register tiles.
    integer, intent(in) :: nrow, nh, nk, kx0, kp0
    real(wp), intent(in) :: x(:, :), p(:, :)
    real(wp), intent(out) :: out(nrow, nh)
    real(wp) :: t1(4), t2(4), t3(4), t4(4), p1, p2, p3, p4
    integer :: r0, c0, c, l, kx, kp, r

    if (nk == 0) then
      out = 0.0_wp
      return
    end if
    do c0 = 1, nh - 3, 4
      do r0 = 1, nrow - 3, 4
        t1 = 0.0_wp
        t2 = 0.0_wp
        t3 = 0.0_wp
        t4 = 0.0_wp
        do l = 0, nk - 1
          kx = kx0 + 2 * l
          kp = kp0 + 2 * l
          p1 = p(c0, kp)
          p2 = p(c0 + 1, kp)
          p3 = p(c0 + 2, kp)
          p4 = p(c0 + 3, kp)
          t1 = t1 + x(r0:r0 + 3, kx) * p1
          t2 = t2 + x(r0:r0 + 3, kx) * p2
          t3 = t3 + x(r0:r0 + 3, kx) * p3
          t4 = t4 + x(r0:r0 + 3, kx) * p4
        end do
        out(r0:r0 + 3, c0) = t1
        out(r0:r0 + 3, c0 + 1) = t2
        out(r0:r0 + 3, c0 + 2) = t3
        out(r0:r0 + 3, c0 + 3) = t4
      end do
      do r = r0, nrow
        do c = c0, c0 + 3
          out(r, c) = 0.0_wp
          do l = 0, nk - 1
            out(r, c) = out(r, c) + x(r, kx0 + 2 * l) * p(c, kp0 + 2 * l)
          end do
        end do
      end do
    end do
    do c = c0, nh
      out(:, c) = 0.0_wp
      do l = 0, nk - 1
        out(:, c) = out(:, c) + x(1:nrow, kx0 + 2 * l) * p(c, kp0 + 2 * l)
      end do
    end do
  end subroutine sum_over_degree

  subroutine legendre_forward(tab, four, extended, spec)
    !! Spectral coefficients by Gaussian quadrature of Fourier coefficients:
    !! spec(l, (m,n)) = sum_j w_j P_mn(mu_j) four(l, m, j). Shapes as in
    !! `legendre_inverse`; with `extended`, n runs to M+1.
    type(legendre_tables), intent(in) :: tab
    real(wp), intent(in) :: four(:, :, 0:, :)
    logical, intent(in) :: extended
    complex(wp), intent(out) :: spec(:, :)
    real(wp) :: s(2 * size(four, 1), tab%nh), a(2 * size(four, 1), tab%nh)
    real(wp) :: even(2 * size(four, 1), (tab%mmax + 3) / 2), odd(2 * size(four, 1), (tab%mmax + 3) / 2)
    integer :: m, jj, jn, l, nfl, nmax, ks, kp, ncoef, ne, no

    nfl = size(four, 1)
    nmax = tab%mmax
    if (extended) nmax = tab%mmax + 1
    do m = 0, tab%mmax
      if (extended) then
        ks = spec_index_ext(tab%mmax, m, m)
      else
        ks = spec_index(tab%mmax, m, m)
      end if
      kp = spec_index_ext(tab%mmax, m, m)
      do jj = 1, tab%nh
        jn = tab%nlat + 1 - jj
        s(1:nfl, jj) = four(:, 1, m, jn) + four(:, 1, m, jj)
        s(nfl + 1:, jj) = four(:, 2, m, jn) + four(:, 2, m, jj)
        a(1:nfl, jj) = four(:, 1, m, jn) - four(:, 1, m, jj)
        a(nfl + 1:, jj) = four(:, 2, m, jn) - four(:, 2, m, jj)
      end do
      ncoef = nmax - m + 1
      ne = (ncoef + 1) / 2
      no = ncoef / 2
      call sum_over_latitude(2 * nfl, tab%nh, ne, s, tab%pw, kp, even)
      call sum_over_latitude(2 * nfl, tab%nh, no, a, tab%pw, kp + 1, odd)
      do l = 0, ncoef - 1
        if (mod(l, 2) == 0) then
          spec(:, ks + l) = cmplx(even(1:nfl, l / 2 + 1), even(nfl + 1:, l / 2 + 1), wp)
        else
          spec(:, ks + l) = cmplx(odd(1:nfl, l / 2 + 1), odd(nfl + 1:, l / 2 + 1), wp)
        end if
      end do
    end do
  end subroutine legendre_forward

  subroutine sum_over_latitude(nrow, nh, nk, s, pw, kp0, out)
    !! out(r, l) = sum_jj s(r, jj) pw(jj, kp0+2l), l < nk: one parity of the
    !! quadrature, as a small matrix product with 4x4 register tiles.
    integer, intent(in) :: nrow, nh, nk, kp0
    real(wp), intent(in) :: s(:, :), pw(:, :)
    real(wp), intent(inout) :: out(:, :)
    real(wp) :: t1(4), t2(4), t3(4), t4(4), p1, p2, p3, p4
    integer :: r0, c0, c, jj, r

    do c0 = 1, nk - 3, 4
      do r0 = 1, nrow - 3, 4
        t1 = 0.0_wp
        t2 = 0.0_wp
        t3 = 0.0_wp
        t4 = 0.0_wp
        do jj = 1, nh
          p1 = pw(jj, kp0 + 2 * (c0 - 1))
          p2 = pw(jj, kp0 + 2 * c0)
          p3 = pw(jj, kp0 + 2 * (c0 + 1))
          p4 = pw(jj, kp0 + 2 * (c0 + 2))
          t1 = t1 + s(r0:r0 + 3, jj) * p1
          t2 = t2 + s(r0:r0 + 3, jj) * p2
          t3 = t3 + s(r0:r0 + 3, jj) * p3
          t4 = t4 + s(r0:r0 + 3, jj) * p4
        end do
        out(r0:r0 + 3, c0) = t1
        out(r0:r0 + 3, c0 + 1) = t2
        out(r0:r0 + 3, c0 + 2) = t3
        out(r0:r0 + 3, c0 + 3) = t4
      end do
      do r = r0, nrow
        do c = c0, c0 + 3
          out(r, c) = 0.0_wp
          do jj = 1, nh
            out(r, c) = out(r, c) + s(r, jj) * pw(jj, kp0 + 2 * (c - 1))
          end do
        end do
      end do
    end do
    do c = max(c0, 1), nk
      out(1:nrow, c) = 0.0_wp
      do jj = 1, nh
        out(1:nrow, c) = out(1:nrow, c) + s(1:nrow, jj) * pw(jj, kp0 + 2 * (c - 1))
      end do
    end do
  end subroutine sum_over_latitude

end module gcm_legendre
