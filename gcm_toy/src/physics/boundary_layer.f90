module boundary_layer
  !! Vertical diffusion of dry static energy, humidity and momentum in the
  !! lowest levels, implicit in time, with the surface fluxes as the lower
  !! boundary condition, plus entrainment across the boundary-layer top. Part
  !! of the host physics (never emulated).
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
  !!
  !! Entrainment (cloud-top and surface-driven, after Lock et al. 2000, Mon.
  !! Wea. Rev. 128, in the flux-jump form of Lilly 1968 and Deardorff's dry
  !! convective closure): the half level k_e just above the diffusive boundary
  !! layer (the lowest half level with sigma <= pbl_sigma_top; the boundary
  !! layer's top level is the full level k_e + 1 below it) gets the extra mixing
  !! mass flux M_e = rho w_e with
  !!
  !!   rho cp w_e Delta theta_v = A_s max(B_s, 0) + A_r C F_rad,
  !!
  !! i.e. the entrainment flux of heat into the boundary layer is a fixed
  !! fraction of the turbulence production: A_s = pbl_entrain_surface (0.2,
  !! the classic ratio of entrainment to surface buoyancy flux) times the
  !! surface virtual heat flux B_s = SH + 0.608 cp T_1 E, plus A_r =
  !! pbl_entrain_cloud times the cloud-top longwave cooling F_rad =
  !! pbl_cloud_top_cooling [W m-2] of a boundary-layer cloud of cover C. The
  !! host sees no radiation, so C is estimated from the relative humidity of
  !! the top level: linear from 0 at the lowest cloud onset of the reference
  !! cloud scheme (cond_rh_max - cond_rh_spread - cloud_rh_width) to 1 at
  !! cond_rh_max. Delta theta_v = (s_v(k_e) - s_v(k_e+1)) / cp is the jump of
  !! the virtual dry static energy s_v = cp T (1 + 0.608 q) + Phi across the
  !! inversion, at least pbl_entrain_min_jump [K]. M_e mixes every variable
  !! through the same flux form (same tridiagonal solve), so the budgets stay
  !! exact: entrainment warms and dries a saturated, cooling boundary-layer top
  !! by mixing in air from above the inversion, as real stratocumulus and
  !! trade-cumulus layers export their moisture, and moistens and cools the
  !! level above by the same amounts. A_r = A_s = 0 is the plain K diffusion.
  use iso_fortran_env, only: real64
  use gcm_constants, only: gravity, rd, cp
  use physics_configuration, only: physics_config
  use moist_thermodynamics, only: saturation_humidity
  implicit none
  private
  public :: compute_boundary_layer

contains

  subroutine compute_boundary_layer(config, ncol, nlev, dt, t, q, u, v, ps, sigma, sigma_half, &
                                    shflx, evap, taux, tauy, dtdt, dqdt, dudt, dvdt, entrainment)
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
    real(real64), intent(out), optional :: entrainment(ncol)
      !! entrainment mass flux M_e across the boundary-layer top [kg m-2 s-1]

    real(real64) :: mass(nlev), mix(0:nlev), dphi(0:nlev), lower(nlev), diag(nlev), upper(nlev)
    real(real64) :: rhs(nlev), xnew(nlev), source(nlev)
    real(real64) :: p_half, t_half, rho_half, diffusivity, m_e
    integer :: i, k, k_e

    ! The entrainment interface: the lowest half level without diffusion (0: none).
    k_e = 0
    do k = 1, nlev - 1
      if (sigma_half(k) <= config%pbl_sigma_top) k_e = k
    end do

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
      m_e = 0.0_real64
      if (k_e > 0 .and. (config%pbl_entrain_surface > 0 .or. config%pbl_entrain_cloud > 0)) then
        m_e = entrainment_mass_flux(config, t(k_e, i), t(k_e+1, i), q(k_e, i), q(k_e+1, i), &
                                    sigma(k_e+1) * ps(i), dphi(k_e), t(nlev, i), shflx(i), evap(i))
        mix(k_e) = mix(k_e) + m_e
      end if
      if (present(entrainment)) entrainment(i) = m_e

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

  pure function entrainment_mass_flux(config, t_above, t_top, q_above, q_top, p_top, dphi, t_lowest, &
                                      shflx, evap) result(m_e)
    !! M_e = rho w_e = (A_s max(B_s, 0) + A_r C F_rad) / (cp Delta theta_v) [kg m-2 s-1]
    !! (see the module documentation).
    type(physics_config), intent(in) :: config
    real(real64), intent(in) :: t_above, t_top    !! temperature above the inversion and at the top level [K]
    real(real64), intent(in) :: q_above, q_top    !! their specific humidities [kg kg-1]
    real(real64), intent(in) :: p_top             !! pressure of the boundary-layer top level [Pa]
    real(real64), intent(in) :: dphi              !! Phi_top - Phi_above [m2 s-2] (negative)
    real(real64), intent(in) :: t_lowest          !! lowest-level temperature [K]
    real(real64), intent(in) :: shflx             !! surface sensible heat flux, upward [W m-2]
    real(real64), intent(in) :: evap              !! evaporation [kg m-2 s-1]
    real(real64) :: m_e
    real(real64), parameter :: virtual = 0.608_real64   !! R_v / R_d - 1
    real(real64) :: rh, rh_onset, cover, buoyancy_flux, jump

    rh = q_top / saturation_humidity(t_top, p_top)
    rh_onset = config%cond_rh_max - config%cond_rh_spread - config%cloud_rh_width
    cover = max(0.0_real64, min(1.0_real64, (rh - rh_onset) / (config%cond_rh_max - rh_onset)))
    buoyancy_flux = max(0.0_real64, shflx + virtual * cp * t_lowest * evap)
    jump = t_above * (1.0_real64 + virtual * q_above) - t_top * (1.0_real64 + virtual * q_top) - dphi / cp
    jump = max(jump, config%pbl_entrain_min_jump)
    m_e = (config%pbl_entrain_surface * buoyancy_flux + config%pbl_entrain_cloud * cover * &
           config%pbl_cloud_top_cooling) / (cp * jump)
  end function entrainment_mass_flux

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
