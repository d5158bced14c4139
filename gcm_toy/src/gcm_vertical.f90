module gcm_vertical
  !! Sigma levels and the vertical discretisation of Simmons & Burridge
  !! (1981, MWR 109) for sigma coordinates, which conserves energy and
  !! angular momentum.
  !!
  !! Half levels sigma_{k+1/2}, k = 0..nlev, run from 0 (top) to 1 (surface);
  !! full level k lies between half levels k-1/2 and k+1/2 (k = 1 is the top).
  !! With lnr_k = ln(sigma_{k+1/2}/sigma_{k-1/2}) and
  !! alpha_k = 1 - sigma_{k-1/2}/dsigma_k lnr_k (alpha_1 = ln 2):
  !!   geopotential  Phi_k = Phi_s + R sum_{j>k} lnr_j T_j + R alpha_k T_k,
  !!   omega/p       (omega/p)_k = V.grad(ln ps)
  !!                   - (lnr_k sum_{j<k} G_j dsigma_j + alpha_k G_k dsigma_k)/dsigma_k,
  !! with G = D + V.grad(ln ps); the full-level sigma consistent with the
  !! geopotential is sigma_k = sigma_{k+1/2} exp(-alpha_k).
  use gcm_constants, only: wp, rd, kappa
  implicit none
  private
  public :: sigma_levels, vertical_init, vertical_advection, column_continuity

  type :: sigma_levels
    integer :: nlev = 0
    real(wp), allocatable :: half(:)
      !! sigma at half levels (0:nlev)
    real(wp), allocatable :: full(:)
      !! sigma at full levels (nlev)
    real(wp), allocatable :: dsigma(:)
      !! layer thickness (nlev)
    real(wp), allocatable :: alpha(:)
      !! alpha_k (nlev)
    real(wp), allocatable :: lnr(:)
      !! ln(sigma_{k+1/2}/sigma_{k-1/2}), 0 for k = 1 where it is never used (nlev)
    real(wp), allocatable :: hydro(:, :)
      !! Phi_k - Phi_s = sum_j hydro(k, j) T_j (nlev, nlev)
    real(wp), allocatable :: tau(:, :)
      !! linearised temperature tendency about an isothermal T_ref:
      !! dT_k/dt = -sum_j tau(k, j) D_j (nlev, nlev)
  end type sigma_levels

contains

  subroutine vertical_init(vert, sigma_half, t_ref)
    !! Levels and matrices from the half levels (nlev+1 values, 0 .. 1).
    type(sigma_levels), intent(out) :: vert
    real(wp), intent(in) :: sigma_half(:)
    real(wp), intent(in) :: t_ref
    integer :: k, j, nlev
    nlev = size(sigma_half) - 1
    vert%nlev = nlev
    allocate (vert%half(0:nlev), vert%full(nlev), vert%dsigma(nlev), vert%alpha(nlev), vert%lnr(nlev))
    allocate (vert%hydro(nlev, nlev), vert%tau(nlev, nlev))
    vert%half(0:nlev) = sigma_half
    do k = 1, nlev
      vert%dsigma(k) = vert%half(k) - vert%half(k - 1)
      if (k == 1) then
        vert%alpha(k) = log(2.0_wp)
        vert%lnr(k) = 0.0_wp
      else
        vert%lnr(k) = log(vert%half(k) / vert%half(k - 1))
        vert%alpha(k) = 1.0_wp - vert%half(k - 1) / vert%dsigma(k) * vert%lnr(k)
      end if
      vert%full(k) = vert%half(k) * exp(-vert%alpha(k))
    end do
    vert%hydro = 0.0_wp
    vert%tau = 0.0_wp
    do k = 1, nlev
      vert%hydro(k, k) = rd * vert%alpha(k)
      do j = k + 1, nlev
        vert%hydro(k, j) = rd * vert%lnr(j)
      end do
      do j = 1, k - 1
        vert%tau(k, j) = kappa * t_ref * vert%lnr(k) * vert%dsigma(j) / vert%dsigma(k)
      end do
      vert%tau(k, k) = kappa * t_ref * vert%alpha(k)
    end do
  end subroutine vertical_init

  pure subroutine column_continuity(vert, div, vgradp, dlnps_dt, sigdot, omega_p)
    !! Surface-pressure tendency, vertical velocity sigma-dot at half levels
    !! (0 at top and surface) and omega/p at full levels for one column.
    type(sigma_levels), intent(in) :: vert
    real(wp), intent(in) :: div(:)
      !! divergence D_k [s-1]
    real(wp), intent(in) :: vgradp(:)
      !! V.grad(ln ps) at full levels [s-1]
    real(wp), intent(out) :: dlnps_dt
    real(wp), intent(out) :: sigdot(0:)
    real(wp), intent(out) :: omega_p(:)
    real(wp) :: cum, g
    integer :: k, n
    n = vert%nlev
    cum = 0.0_wp
    do k = 1, n
      g = (div(k) + vgradp(k)) * vert%dsigma(k)
      omega_p(k) = vgradp(k) - (vert%lnr(k) * cum + vert%alpha(k) * g) / vert%dsigma(k)
      cum = cum + g
      sigdot(k) = -cum
    end do
    dlnps_dt = -cum
    ! sigma-dot_{k+1/2} = sigma_{k+1/2} * (sum over column) - (partial sum to k)
    sigdot(0) = 0.0_wp
    do k = 1, n - 1
      sigdot(k) = sigdot(k) + vert%half(k) * cum
    end do
    sigdot(n) = 0.0_wp
  end subroutine column_continuity

  pure subroutine vertical_advection(vert, sigdot, x, adv)
    !! (sigma-dot dx/dsigma)_k, centred, in the energy-conserving form
    !! [sd_{k+1/2}(x_{k+1}-x_k) + sd_{k-1/2}(x_k-x_{k-1})] / (2 dsigma_k).
    type(sigma_levels), intent(in) :: vert
    real(wp), intent(in) :: sigdot(0:)
    real(wp), intent(in) :: x(:)
    real(wp), intent(out) :: adv(:)
    integer :: k, n
    n = vert%nlev
    adv(1) = sigdot(1) * (x(2) - x(1)) / (2.0_wp * vert%dsigma(1))
    do k = 2, n - 1
      adv(k) = (sigdot(k) * (x(k + 1) - x(k)) + sigdot(k - 1) * (x(k) - x(k - 1))) &
               / (2.0_wp * vert%dsigma(k))
    end do
    adv(n) = sigdot(n - 1) * (x(n) - x(n - 1)) / (2.0_wp * vert%dsigma(n))
  end subroutine vertical_advection

end module gcm_vertical
