module surface_fluxes
  !! Bulk aerodynamic fluxes between the ocean and the lowest model level.
  !!
  !! SH = rho cp C_H |V| (SST - T_a), E = rho C_H |V| (q_s(SST, ps) - q_a),
  !! tau = -rho C_D |V| (u_a, v_a), with |V| = max(|v_a|, V_min) and T_a the
  !! lowest-level temperature brought dry-adiabatically to the surface. Part of
  !! the host physics (never emulated): the emulated physics receives SH and
  !! L_v E as inputs.
  use iso_fortran_env, only: real64
  use gcm_constants, only: rd, cp, kappa, latent_heat_vap
  use physics_configuration, only: physics_config
  use moist_thermodynamics, only: saturation_humidity
  implicit none
  private
  public :: compute_surface_fluxes

contains

  subroutine compute_surface_fluxes(config, ncol, nlev, t, q, u, v, ps, sigma, sst, &
                                    shflx, lhflx, evap, taux, tauy)
    type(physics_config), intent(in) :: config
    integer, intent(in) :: ncol, nlev
    real(real64), intent(in) :: t(nlev, ncol)     !! temperature [K]
    real(real64), intent(in) :: q(nlev, ncol)     !! specific humidity [kg kg-1]
    real(real64), intent(in) :: u(nlev, ncol)     !! zonal wind [m s-1]
    real(real64), intent(in) :: v(nlev, ncol)     !! meridional wind [m s-1]
    real(real64), intent(in) :: ps(ncol)          !! surface pressure [Pa]
    real(real64), intent(in) :: sigma(nlev)       !! full-level sigma
    real(real64), intent(in) :: sst(ncol)         !! sea-surface temperature [K]
    real(real64), intent(out) :: shflx(ncol)      !! sensible heat flux, upward [W m-2]
    real(real64), intent(out) :: lhflx(ncol)      !! latent heat flux L_v E, upward [W m-2]
    real(real64), intent(out) :: evap(ncol)       !! evaporation E [kg m-2 s-1]
    real(real64), intent(out) :: taux(ncol)       !! zonal stress on the atmosphere [N m-2]
    real(real64), intent(out) :: tauy(ncol)       !! meridional stress on the atmosphere [N m-2]
    integer :: i
    real(real64) :: t_air, rho, speed, exchange

    do i = 1, ncol
      t_air = t(nlev, i) * sigma(nlev)**(-kappa)
      rho = sigma(nlev) * ps(i) / (rd * t(nlev, i))
      speed = max(sqrt(u(nlev, i)**2 + v(nlev, i)**2), config%min_wind_speed)
      exchange = rho * config%heat_exchange_coefficient * speed
      shflx(i) = cp * exchange * (sst(i) - t_air)
      evap(i) = exchange * (saturation_humidity(sst(i), ps(i)) - q(nlev, i))
      lhflx(i) = latent_heat_vap * evap(i)
      taux(i) = -rho * config%drag_coefficient * speed * u(nlev, i)
      tauy(i) = -rho * config%drag_coefficient * speed * v(nlev, i)
    end do
  end subroutine compute_surface_fluxes

end module surface_fluxes
