module boundary_layer
  !! Vertical diffusion of dry static energy, humidity and momentum in the
  !! lowest levels, implicit in time, with the surface fluxes as the lower
  !! boundary condition. Part of the host physics (never emulated).
  !!
  !! Flux form on sigma levels: the upward flux through half level k (between
  !! full levels k and k+1) is F_k = M_k (X_{k+1} - X_k) with the mixing mass
  !! flux M_k = g rho_k^2 K_k / (p_{k+1} - p_k) [kg m-2 s-1]. The layer budget
  !! (dp_k/g) dX_k/dt = F_k - F_{k-1}, with F_nlev the surface flux, telescopes:
  !! the column integral changes by exactly the surface flux. Temperature is
  !! mixed as dry static energy s = cp T + Phi, the geopotential differences
  !! R_d T ln(p_{k+1}/p_k) taken from the old state, so a dry-adiabatic layer
  !! is left alone. K decreases linearly from pbl_diffusivity at the surface to
  !! zero at sigma = pbl_sigma_top.
  use iso_fortran_env, only: real64
  use physics_constants, only: gravity, rd, cp
  use physics_configuration, only: physics_config
  implicit none
  private
  public :: compute_boundary_layer

contains

  subroutine compute_boundary_layer(config, ncol, nlev, dt, t, q, u, v, ps, sigma, sigma_half, &
                                    shflx, evap, taux, tauy, dtdt, dqdt, dudt, dvdt)
    type(physics_config), intent(in) :: config
    integer, intent(in) :: ncol, nlev
    real(real64), intent(in) :: dt                !! time step [s]
    real(real64), intent(in) :: t(nlev, ncol)     !! temperature [K]
    real(real64), intent(in) :: q(nlev, ncol)     !! specific humidity [kg kg-1]
    real(real64), intent(in) :: u(nlev, ncol)     !! zonal wind [m s-1]
    real(real64), intent(in) :: v(nlev, ncol)     !! meridional wind [m s-1]
    real(real64), intent(in) :: ps(ncol)          !! surface pressure [Pa]
    real(real64), intent(in) :: sigma(nlev)       !! full-level sigma
    real(real64), intent(in) :: sigma_half(0:nlev) !! half-level sigma, 0 at the top, 1 at the surface
    real(real64), intent(in) :: shflx(ncol)       !! sensible heat flux, upward [W m-2]
    real(real64), intent(in) :: evap(ncol)        !! evaporation [kg m-2 s-1]
    real(real64), intent(in) :: taux(ncol), tauy(ncol) !! surface stress on the atmosphere [N m-2]
    real(real64), intent(out) :: dtdt(nlev, ncol) !! [K s-1]
    real(real64), intent(out) :: dqdt(nlev, ncol) !! [kg kg-1 s-1]
    real(real64), intent(out) :: dudt(nlev, ncol), dvdt(nlev, ncol) !! [m s-2]

    real(real64) :: mass(nlev), mix(0:nlev), dphi(0:nlev), lower(nlev), diag(nlev), upper(nlev)
    real(real64) :: rhs(nlev), xnew(nlev), source(nlev)
    real(real64) :: p_half, t_half, rho_half, diffusivity
    integer :: i, k

    do i = 1, ncol
      mass = (sigma_half(1:nlev) - sigma_half(0:nlev-1)) * ps(i) / gravity
      mix = 0.0_real64     ! no flux through the model top, surface flux handled separately
      dphi = 0.0_real64
      do k = 1, nlev - 1
        t_half = 0.5_real64 * (t(k, i) + t(k+1, i))
        dphi(k) = -rd * t_half * log(sigma(k+1) / sigma(k))   ! Phi_{k+1} - Phi_k
        diffusivity = config%pbl_diffusivity * &
                      max(0.0_real64, (sigma_half(k) - config%pbl_sigma_top) / (1.0_real64 - config%pbl_sigma_top))
        p_half = sigma_half(k) * ps(i)
        rho_half = p_half / (rd * t_half)
        mix(k) = gravity * rho_half**2 * diffusivity / ((sigma(k+1) - sigma(k)) * ps(i))
      end do

      ! The implicit matrix is the same for every variable.
      do k = 1, nlev
        lower(k) = -dt * mix(k-1)
        upper(k) = -dt * mix(k)
        diag(k) = mass(k) + dt * (mix(k-1) + mix(k))
      end do

      ! Dry static energy, written for T with the geopotential part as a source.
      do k = 1, nlev
        source(k) = (mix(k) * dphi(k) - mix(k-1) * dphi(k-1)) / cp
      end do
      source(nlev) = source(nlev) + shflx(i) / cp
      rhs = mass * t(:, i) + dt * source
      call solve_tridiagonal(nlev, lower, diag, upper, rhs, xnew)
      dtdt(:, i) = (xnew - t(:, i)) / dt

      rhs = mass * q(:, i)
      rhs(nlev) = rhs(nlev) + dt * evap(i)
      call solve_tridiagonal(nlev, lower, diag, upper, rhs, xnew)
      dqdt(:, i) = (xnew - q(:, i)) / dt

      rhs = mass * u(:, i)
      rhs(nlev) = rhs(nlev) + dt * taux(i)
      call solve_tridiagonal(nlev, lower, diag, upper, rhs, xnew)
      dudt(:, i) = (xnew - u(:, i)) / dt

      rhs = mass * v(:, i)
      rhs(nlev) = rhs(nlev) + dt * tauy(i)
      call solve_tridiagonal(nlev, lower, diag, upper, rhs, xnew)
      dvdt(:, i) = (xnew - v(:, i)) / dt
    end do

  end subroutine compute_boundary_layer

  pure subroutine solve_tridiagonal(n, lower, diag, upper, rhs, x)
    !! Thomas algorithm for lower(k) x(k-1) + diag(k) x(k) + upper(k) x(k+1) = rhs(k);
    !! the matrix here is diagonally dominant, so no pivoting is needed.
    integer, intent(in) :: n
    real(real64), intent(in) :: lower(n), diag(n), upper(n), rhs(n)
    real(real64), intent(out) :: x(n)
    real(real64) :: c(n), d(n), denom
    integer :: k

    c(1) = upper(1) / diag(1)
    d(1) = rhs(1) / diag(1)
    do k = 2, n
      denom = diag(k) - lower(k) * c(k-1)
      c(k) = upper(k) / denom
      d(k) = (rhs(k) - lower(k) * d(k-1)) / denom
    end do
    x(n) = d(n)
    do k = n - 1, 1, -1
      x(k) = d(k) - c(k) * x(k+1)
    end do
  end subroutine solve_tridiagonal

end module boundary_layer
