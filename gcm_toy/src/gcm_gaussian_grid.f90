module gcm_gaussian_grid
  !! The Gaussian grid: latitudes at the roots of the Legendre polynomial
  !! P_nlat(mu), mu = sin(latitude), with their quadrature weights, and
  !! equally spaced longitudes starting at 0.
  !!
  !! Latitudes are ordered south to north (mu increasing); the pair
  !! (j, nlat+1-j) is symmetric about the equator.
  use gcm_constants, only: wp, pi
  implicit none
  private
  public :: gaussian_grid, gaussian_grid_init

  type :: gaussian_grid
    integer :: nlon = 0
    integer :: nlat = 0
    real(wp), allocatable :: mu(:)
      !! sin(latitude), south to north (nlat)
    real(wp), allocatable :: weight(:)
      !! Gaussian weights, sum 2 (nlat)
    real(wp), allocatable :: lat(:)
      !! latitude [rad] (nlat)
    real(wp), allocatable :: coslat(:)
      !! cos(latitude) (nlat)
    real(wp), allocatable :: lon(:)
      !! longitude [rad], 2 pi (i-1)/nlon (nlon)
  end type gaussian_grid

contains

  subroutine gaussian_grid_init(grid, nlon, nlat)
    !! Gaussian latitudes by Newton iteration on P_nlat; nlat must be even.
    type(gaussian_grid), intent(out) :: grid
    integer, intent(in) :: nlon, nlat
    integer :: k, it, l
    real(wp) :: x, p0, p1, dp, dx

    grid%nlon = nlon
    grid%nlat = nlat
    allocate (grid%mu(nlat), grid%weight(nlat), grid%lat(nlat), grid%coslat(nlat), grid%lon(nlon))
    do k = 1, nlat / 2
      x = cos(pi * (real(k, wp) - 0.25_wp) / (real(nlat, wp) + 0.5_wp))
      do it = 1, 100
        call legendre_p(nlat, x, p1, p0)
        dp = real(nlat, wp) * (x * p1 - p0) / (x * x - 1.0_wp)
        dx = p1 / dp
        x = x - dx
        if (abs(dx) < 1.0e-15_wp) exit
      end do
      call legendre_p(nlat, x, p1, p0)
      dp = real(nlat, wp) * (x * p1 - p0) / (x * x - 1.0_wp)
      grid%mu(nlat + 1 - k) = x
      grid%mu(k) = -x
      grid%weight(nlat + 1 - k) = 2.0_wp / ((1.0_wp - x * x) * dp * dp)
      grid%weight(k) = grid%weight(nlat + 1 - k)
    end do
    grid%lat = asin(grid%mu)
    grid%coslat = sqrt(1.0_wp - grid%mu**2)
    do l = 1, nlon
      grid%lon(l) = 2.0_wp * pi * real(l - 1, wp) / real(nlon, wp)
    end do
  contains
    pure subroutine legendre_p(n, xx, pn, pnm1)
      !! P_n(x) and P_{n-1}(x) by the three-term recurrence.
      integer, intent(in) :: n
      real(wp), intent(in) :: xx
      real(wp), intent(out) :: pn, pnm1
      real(wp) :: pa, pb, pc
      integer :: j
      pa = 1.0_wp
      pb = xx
      do j = 1, n - 1
        pc = (real(2 * j + 1, wp) * xx * pb - real(j, wp) * pa) / real(j + 1, wp)
        pa = pb
        pb = pc
      end do
      pn = pb
      pnm1 = pa
    end subroutine legendre_p
  end subroutine gaussian_grid_init

end module gcm_gaussian_grid
