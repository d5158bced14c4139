module condensation
  !! Large-scale condensation with re-evaporation of falling rain, for one
  !! (sub)column.
  !!
  !! Sweeping from the top, a layer whose humidity exceeds rh_crit q_s(T) is
  !! brought back to the threshold in one linearised step (latent heat raises
  !! q_s while condensing): c = (q - rh_crit q_s) / (1 + L/cp rh_crit dq_s/dT).
  !! The condensate falls out at once. Below, in a layer drier than the
  !! threshold, rain evaporates at the rate E = k_e (1 - RH / rh_crit) sqrt(R)
  !! [kg kg-1 s-1] (Kessler-type, Sundqvist 1988), R the rain flux entering the
  !! layer [kg m-2 s-1], k_e = reevap_coef; at most the layer's saturation
  !! deficit and all of the rain evaporate. The column loses exactly the water
  !! that reaches the surface and gains L_v times it.
  !!
  !! `evaporate_convective_rain` lets the rain of convection fall from the
  !! levels where it forms and evaporate in the same Kessler form with its own
  !! k_e = conv_reevap_coef (as CAM3 evaporates convective precipitation in the
  !! environment, Sundqvist 1988; k_e,conv = 3e-6 at T42/T31).
  use iso_fortran_env, only: real64
  use gcm_constants, only: cp, latent_heat_vap
  use physics_configuration, only: physics_config
  use moist_thermodynamics, only: saturation_humidity_and_slope
  implicit none
  private
  public :: large_scale_condensation, evaporate_convective_rain

contains

  pure subroutine large_scale_condensation(config, nlev, dt, rh_crit, p, mass, t, q, dtdt, dqdt, precip)
    type(physics_config), intent(in) :: config
    integer, intent(in) :: nlev
    real(real64), intent(in) :: dt            !! time step of this call [s]
    real(real64), intent(in) :: rh_crit      !! condensation threshold (relative humidity) of this subcolumn
    real(real64), intent(in) :: p(nlev)       !! pressure [Pa]
    real(real64), intent(in) :: mass(nlev)    !! dp / g [kg m-2]
    real(real64), intent(in) :: t(nlev)       !! temperature [K]
    real(real64), intent(in) :: q(nlev)       !! specific humidity [kg kg-1]
    real(real64), intent(out) :: dtdt(nlev)   !! [K s-1]
    real(real64), intent(out) :: dqdt(nlev)   !! [kg kg-1 s-1]
    real(real64), intent(out) :: precip       !! surface precipitation [kg m-2 s-1]

    real(real64) :: rain, qs, dqs, threshold, amount
    integer :: k

    rain = 0.0_real64                          ! falling rain [kg m-2] in this step
    dtdt = 0.0_real64
    dqdt = 0.0_real64
    do k = 1, nlev
      call saturation_humidity_and_slope(t(k), p(k), qs, dqs)
      threshold = rh_crit * qs
      if (q(k) > threshold) then
        amount = (q(k) - threshold) / (1.0_real64 + latent_heat_vap / cp * rh_crit * dqs)
        rain = rain + amount * mass(k)
        dqdt(k) = -amount / dt
        dtdt(k) = latent_heat_vap / cp * amount / dt
      else if (rain > 0) then
        call evaporate_rain(config%reevap_coef, dt, rh_crit, threshold, dqs, q(k), mass(k), rain, &
                            dqdt(k), dtdt(k))
      end if
    end do
    precip = rain / dt
  end subroutine large_scale_condensation

  pure subroutine evaporate_convective_rain(config, nlev, dt, rh_crit, p, mass, t, q, source, dtdt, dqdt, precip)
    !! Convective rain formed in this step, source(k) [kg m-2] at level k,
    !! falls to the surface; below the level where it forms it evaporates at
    !! the rate conv_reevap_coef (1 - RH / rh_crit) sqrt(R) [kg kg-1 s-1], R
    !! the rain flux entering the layer, at most the layer's deficit to rh_crit
    !! and all of the rain. The column gains the evaporated water and loses L_v
    !! times it; precip is what reaches the surface [kg m-2 s-1].
    type(physics_config), intent(in) :: config
    integer, intent(in) :: nlev
    real(real64), intent(in) :: dt            !! time step of this call [s]
    real(real64), intent(in) :: rh_crit      !! condensation threshold (relative humidity) of this subcolumn
    real(real64), intent(in) :: p(nlev)       !! pressure [Pa]
    real(real64), intent(in) :: mass(nlev)    !! dp / g [kg m-2]
    real(real64), intent(in) :: t(nlev)       !! temperature [K]
    real(real64), intent(in) :: q(nlev)       !! specific humidity [kg kg-1]
    real(real64), intent(in) :: source(nlev)  !! rain formed at each level in this step [kg m-2], >= 0
    real(real64), intent(out) :: dtdt(nlev)   !! [K s-1]
    real(real64), intent(out) :: dqdt(nlev)   !! [kg kg-1 s-1]
    real(real64), intent(out) :: precip       !! surface precipitation [kg m-2 s-1]

    real(real64) :: rain, qs, dqs, threshold
    integer :: k

    rain = 0.0_real64                          ! falling rain [kg m-2] in this step
    dtdt = 0.0_real64
    dqdt = 0.0_real64
    do k = 1, nlev
      if (rain > 0 .and. config%conv_reevap_coef > 0) then
        call saturation_humidity_and_slope(t(k), p(k), qs, dqs)
        threshold = rh_crit * qs
        if (q(k) < threshold) call evaporate_rain(config%conv_reevap_coef, dt, rh_crit, threshold, dqs, &
                                                  q(k), mass(k), rain, dqdt(k), dtdt(k))
      end if
      rain = rain + max(source(k), 0.0_real64)
    end do
    precip = rain / dt
  end subroutine evaporate_convective_rain

  pure subroutine evaporate_rain(coef, dt, rh_crit, threshold, dqs, q, mass, rain, dqdt, dtdt)
    !! Rain falling through a layer drier than its threshold humidity
    !! evaporates at the rate coef (1 - q / threshold) sqrt(R) [kg kg-1 s-1],
    !! R the rain flux entering the layer, at most the layer's deficit to the
    !! threshold (with the latent cooling's feedback on saturation) and all of
    !! the rain; the layer gains the water and loses L_v times it.
    real(real64), intent(in) :: coef          !! evaporation coefficient
    real(real64), intent(in) :: dt            !! time step of this call [s]
    real(real64), intent(in) :: rh_crit       !! condensation threshold (relative humidity)
    real(real64), intent(in) :: threshold     !! rh_crit times the saturation humidity [kg kg-1]
    real(real64), intent(in) :: dqs           !! d qs / dT [kg kg-1 K-1]
    real(real64), intent(in) :: q             !! specific humidity [kg kg-1]
    real(real64), intent(in) :: mass          !! dp / g [kg m-2]
    real(real64), intent(inout) :: rain       !! falling rain [kg m-2] in this step
    real(real64), intent(out) :: dqdt         !! [kg kg-1 s-1]
    real(real64), intent(out) :: dtdt         !! [K s-1]
    real(real64) :: deficit, amount
    deficit = (threshold - q) / (1.0_real64 + latent_heat_vap / cp * rh_crit * dqs)
    amount = coef * (1.0_real64 - q / threshold) * sqrt(rain / dt) * dt
    amount = min(amount, deficit, rain / mass)
    rain = max(rain - amount * mass, 0.0_real64)
    dqdt = amount / dt
    dtdt = -latent_heat_vap / cp * amount / dt
  end subroutine evaporate_rain

end module condensation
