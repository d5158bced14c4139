module clouds
  !! Diagnostic cloud fraction and in-cloud condensate, for one (sub)column.
  !! The condensate is diagnostic (it only feeds the radiation) and is not
  !! part of the water budget.
  !!
  !! * Stratiform cover, Sundqvist-like: zero below RH_0 = rh_crit -
  !!   cloud_rh_width and 1 - sqrt((rh_crit - RH) / (rh_crit - RH_0)) above, one
  !!   at the subcolumn's condensation threshold rh_crit (RH over liquid, as
  !!   everywhere in the physics).
  !! * Convective cover in the form of Slingo (1987): a total cover C = a + b
  !!   ln(P_conv [mm/day]), at most conv_cloud_max, spread over the n levels
  !!   from the lifting condensation level to the top of convection as 1 - (1 -
  !!   C)^(1/n) each, so that the radiation's random overlap sees the total C;
  !!   on each level the larger of the stratiform and convective covers is used
  !!   (none when convection stops below its condensation level).
  !! * In-cloud condensate = min(cloud_water_ratio q_s(T), cloud_water_max).
  use iso_fortran_env, only: real64
  use gcm_constants, only: seconds_per_day
  use physics_configuration, only: physics_config
  use moist_thermodynamics, only: saturation_humidity
  implicit none
  private
  public :: diagnose_clouds

contains

  pure subroutine diagnose_clouds(config, nlev, rh_crit, conv_precip, k_top, k_lcl, p, t, q, &
                                  cloud_fraction, cloud_water)
    type(physics_config), intent(in) :: config
    integer, intent(in) :: nlev
    real(real64), intent(in) :: rh_crit             !! condensation threshold of this subcolumn
    real(real64), intent(in) :: conv_precip         !! convective precipitation [kg m-2 s-1]
    integer, intent(in) :: k_top, k_lcl             !! convective top and cloud base (0: none)
    real(real64), intent(in) :: p(nlev), t(nlev), q(nlev)
    real(real64), intent(out) :: cloud_fraction(nlev)  !! [0, 1]
    real(real64), intent(out) :: cloud_water(nlev)     !! in-cloud condensate [kg kg-1]

    real(real64) :: qs, rh, rh_onset, conv_cover
    integer :: k, n_conv

    rh_onset = rh_crit - config%cloud_rh_width
    do k = 1, nlev
      qs = saturation_humidity(t(k), p(k))
      rh = q(k) / qs
      if (rh > rh_onset) then
        cloud_fraction(k) = 1.0_real64 - sqrt(max(0.0_real64, rh_crit - rh) / config%cloud_rh_width)
      else
        cloud_fraction(k) = 0.0_real64
      end if
      cloud_water(k) = min(config%cloud_water_ratio * qs, config%cloud_water_max)
    end do

    if (k_top > 0 .and. k_lcl >= k_top .and. conv_precip > 0) then
      conv_cover = config%conv_cloud_a + config%conv_cloud_b * log(conv_precip * seconds_per_day)
      conv_cover = max(0.0_real64, min(config%conv_cloud_max, conv_cover))
      n_conv = min(k_lcl, nlev) - k_top + 1
      conv_cover = 1.0_real64 - (1.0_real64 - conv_cover)**(1.0_real64 / n_conv)
      do k = k_top, min(k_lcl, nlev)
        cloud_fraction(k) = max(cloud_fraction(k), conv_cover)
      end do
    end if
  end subroutine diagnose_clouds

end module clouds
