module moist_thermodynamics
  !! Saturation humidity of water vapour, shared by convection, condensation,
  !! clouds and the surface fluxes.
  !!
  !! Clausius-Clapeyron with constant L_v over liquid at all temperatures
  !! (docs/gcm-dynamics.md, "Physical constants"): e_s(T) = 610.78 exp(L_v/R_v (1/273.16 - 1/T)), and specific
  !! humidity q_s = eps e_s / (p - (1 - eps) e_s). A constant L_v keeps the
  !! energy budget of the physics exact (cp T + L_v q is conserved).
  use iso_fortran_env, only: real64
  use gcm_constants, only: latent_heat_vap, rv, eps_vapour, es_reference, t_reference_es
  implicit none
  private
  public :: saturation_vapour_pressure, saturation_humidity, saturation_humidity_and_slope

  real(real64), parameter :: es_cap_fraction = 0.5_real64
    !! e_s is capped at this fraction of p so q_s stays finite in very hot, thin air

contains

  elemental function saturation_vapour_pressure(t) result(es)
    !! e_s [Pa] at temperature t [K].
    real(real64), intent(in) :: t
    real(real64) :: es
    es = es_reference * exp(latent_heat_vap / rv * (1.0_real64 / t_reference_es - 1.0_real64 / t))
  end function saturation_vapour_pressure

  elemental function saturation_humidity(t, p) result(qs)
    !! Saturation specific humidity [kg kg-1] at temperature t [K] and pressure p [Pa].
    real(real64), intent(in) :: t, p
    real(real64) :: qs
    real(real64) :: es
    es = min(saturation_vapour_pressure(t), es_cap_fraction * p)
    qs = eps_vapour * es / (p - (1.0_real64 - eps_vapour) * es)
  end function saturation_humidity

  elemental subroutine saturation_humidity_and_slope(t, p, qs, dqs_dt)
    !! Saturation specific humidity qs [kg kg-1] and its temperature derivative
    !! dqs_dt [kg kg-1 K-1] at constant pressure (zero where e_s is capped).
    real(real64), intent(in) :: t, p
    real(real64), intent(out) :: qs, dqs_dt
    real(real64) :: es, inv_t, inv_denom
    inv_t = 1.0_real64 / t
    es = es_reference * exp(latent_heat_vap / rv * (1.0_real64 / t_reference_es - inv_t))
    if (es < es_cap_fraction * p) then
      inv_denom = 1.0_real64 / (p - (1.0_real64 - eps_vapour) * es)
      qs = eps_vapour * es * inv_denom
      dqs_dt = qs * p * inv_denom * (latent_heat_vap / rv) * inv_t * inv_t
    else
      es = es_cap_fraction * p
      qs = eps_vapour * es / (p - (1.0_real64 - eps_vapour) * es)
      dqs_dt = 0.0_real64
    end if
  end subroutine saturation_humidity_and_slope

end module moist_thermodynamics
