module convection
  !! Simplified Betts-Miller convection (Frierson 2007, J. Atmos. Sci. 64),
  !! for one (sub)column.
  !!
  !! A parcel from the lowest level is lifted dry-adiabatically to its lifting
  !! condensation level (Bolton 1980, eq. 22) and along a pseudo-adiabat above
  !! (its equivalent potential temperature theta_e = theta exp(L q / (cp T_LCL))
  !! is conserved; the saturated parcel temperature is found by Newton
  !! iteration). Convection triggers when CAPE over the first buoyant layer
  !! exceeds sbm_cape_min. Between the lowest level and the top of that layer
  !! (the level of zero buoyancy) T and q relax toward T_ref = parcel
  !! temperature and q_ref = RH_ref q_s(T_ref) over sbm_tau.
  !!
  !! With P_q = -sum(dq dp/g) and P_T = sum(cp dT dp/g)/L:
  !! * deep convection (P_q > 0 and P_T > 0): T_ref is shifted uniformly so the
  !!   column heating equals L P_q (enthalpy conserved), precipitation = P_q;
  !! * otherwise shallow convection: both tendencies are shifted uniformly to
  !!   integrate to zero (no precipitation, pure redistribution). This is the
  !!   simplest of Frierson's shallow options (no reduction of the depth).
  !!   Convection whose cloud (lifting condensation level to top) is thinner
  !!   than sbm_deep_min_depth is shallow too, whatever P_q and P_T (shallow
  !!   cumulus hardly rains; Tiedtke 1989 calls clouds deeper than 200 hPa deep).
  !! Optional stricter criteria for deep (raining) convection, both off by default:
  !! * sbm_deep_rh_min > 0: the cloud layer (LCL to top) must hold at least this
  !!   fraction of its saturation humidity (precipitation rises steeply with the
  !!   humidity of the column; Bretherton et al. 2004, J. Climate 17);
  !! * sbm_deep_entrainment > 0 [m-1]: a parcel that entrains environmental air
  !!   above its LCL at this fractional rate (dilute_cloud_top) must still be
  !!   buoyant up to sbm_deep_min_depth above the LCL (dilute-CAPE idea of Neale
  !!   et al. 2008): marginal convection into a dry free troposphere stays shallow.
  !!   The relaxation reference is still the undiluted parcel.
  !! Finally all tendencies (and precipitation) are scaled by one factor <= 1
  !! so no level dries below zero in one step; both budgets stay exact.
  use iso_fortran_env, only: real64
  use gcm_constants, only: rd, cp, kappa, gravity, latent_heat_vap, p_reference
  use physics_configuration, only: physics_config
  use moist_thermodynamics, only: saturation_humidity, saturation_humidity_and_slope
  implicit none
  private
  public :: betts_miller_convection, lift_parcel, dilute_cloud_top

  integer, parameter :: max_newton = 8
  real(real64), parameter :: log_p_reference = log(p_reference)
  real(real64), parameter :: newton_tolerance = 0.3_real64
    !! [K]: Newton converges quadratically (error after a step ~ step^2 / T), so a
    !! last correction below 0.3 K leaves an error below about 1e-3 K

contains

  pure subroutine lift_parcel(nlev, p, lnp, pk, t, q, t_parcel, k_lcl, log_theta_e_parcel)
    !! Temperature t_parcel(k) [K] of a parcel lifted from level nlev; k_lcl is
    !! the lowest level at which the parcel is saturated (0 if never);
    !! log_theta_e_parcel its ln theta_e (conserved along the pseudo-adiabat).
    integer, intent(in) :: nlev
    real(real64), intent(in) :: p(nlev)     !! pressure [Pa]
    real(real64), intent(in) :: lnp(nlev)   !! log(p)
    real(real64), intent(in) :: pk(nlev)    !! (p / p0)**kappa
    real(real64), intent(in) :: t(nlev), q(nlev)
    real(real64), intent(out) :: t_parcel(nlev)
    integer, intent(out) :: k_lcl
    real(real64), intent(out), optional :: log_theta_e_parcel
    real(real64) :: t0, q0, theta0, qs0, rh0, t_lcl, log_theta_e, t_dry, tp
    integer :: k

    t0 = t(nlev)
    q0 = q(nlev)
    theta0 = t0 / pk(nlev)
    qs0 = saturation_humidity(t0, p(nlev))
    if (q0 >= qs0) then
      t_lcl = t0
    else
      rh0 = max(q0 / qs0, 1.0e-6_real64)
      t_lcl = 55.0_real64 + 1.0_real64 / (1.0_real64 / (t0 - 55.0_real64) - log(rh0) / 2840.0_real64)
    end if
    log_theta_e = log(theta0) + latent_heat_vap * q0 / (cp * t_lcl)

    t_parcel(nlev) = t0
    k_lcl = 0
    if (q0 >= qs0) k_lcl = nlev
    do k = nlev - 1, 1, -1
      t_dry = theta0 * pk(k)
      if (k_lcl == 0) then
        if (q0 < saturation_humidity(t_dry, p(k))) then
          t_parcel(k) = t_dry
          cycle
        end if
        k_lcl = k
      end if
      ! Saturated: solve ln T - ln pk + L q_s(T) / (cp T) = ln theta_e for T by
      ! Newton's method. First guess: the parcel's lapse in ln p continued from
      ! the two levels below (the dry adiabat at the first saturated levels).
      if (k + 2 <= k_lcl) then
        tp = t_parcel(k+1) + (t_parcel(k+1) - t_parcel(k+2)) * (lnp(k) - lnp(k+1)) / (lnp(k+1) - lnp(k+2))
        tp = max(tp, t_dry)
      else
        tp = t_dry
      end if
      t_parcel(k) = saturated_temperature(log_theta_e + kappa * (lnp(k) - log_p_reference), p(k), tp)
    end do
    if (present(log_theta_e_parcel)) log_theta_e_parcel = log_theta_e
  end subroutine lift_parcel

  pure function saturated_temperature(target, p, first_guess) result(tp)
    !! Temperature [K] of saturated air at pressure p [Pa] with
    !! ln T - ln pk + L q_s(T) / (cp T) = ln theta_e, given target = ln theta_e + ln pk,
    !! by Newton's method from first_guess [K].
    real(real64), intent(in) :: target, p, first_guess
    real(real64) :: tp
    real(real64) :: qs, dqs, f, dfdt, step, inv_t
    integer :: it

    tp = first_guess
    do it = 1, max_newton
      call saturation_humidity_and_slope(tp, p, qs, dqs)
      inv_t = 1.0_real64 / tp
      f = log(tp) + latent_heat_vap / cp * qs * inv_t - target
      dfdt = inv_t + latent_heat_vap / cp * inv_t * (dqs - qs * inv_t)
      step = f / dfdt
      tp = tp - step
      if (abs(step) < newton_tolerance) exit
    end do
  end function saturated_temperature

  pure subroutine dilute_cloud_top(nlev, p, lnp, pk, t, q, t_parcel, k_lcl, log_theta_e_parcel, &
                                   entrainment, k_top)
    !! Top k_top of the first buoyant layer of a parcel that, above its lifting
    !! condensation level k_lcl, entrains environmental air at the fractional
    !! rate `entrainment` [m-1]: d(ln theta_e)/dz = -entrainment (ln theta_e -
    !! ln theta_e,env), theta_e,env = theta exp(L q / (cp T)) of the (unsaturated)
    !! environment, exact over each layer for a constant environment value (the
    !! dilute parcel of Neale et al. 2008, J. Climate 21, in CAM4's Zhang-McFarlane
    !! scheme). Below the LCL the parcel is t_parcel (undiluted); k_top = 0 if
    !! it is never buoyant.
    integer, intent(in) :: nlev
    real(real64), intent(in) :: p(nlev), lnp(nlev), pk(nlev)   !! [Pa], log(p), (p / p0)**kappa
    real(real64), intent(in) :: t(nlev), q(nlev)               !! environment [K], [kg kg-1]
    real(real64), intent(in) :: t_parcel(nlev)                 !! undiluted parcel (lift_parcel) [K]
    integer, intent(in) :: k_lcl                               !! its lifting condensation level (0: none)
    real(real64), intent(in) :: log_theta_e_parcel             !! its ln theta_e (lift_parcel)
    real(real64), intent(in) :: entrainment                    !! [m-1]
    integer, intent(out) :: k_top
    real(real64) :: tp(nlev), log_theta_e, log_theta_e_env, dz
    integer :: k, k_lfc

    tp = t_parcel
    log_theta_e = log_theta_e_parcel
    if (k_lcl > 1) then
      do k = k_lcl - 1, 1, -1
        dz = rd * 0.5_real64 * (t(k) + t(k+1)) / gravity * (lnp(k+1) - lnp(k))
        log_theta_e_env = log(t(k) / pk(k)) + latent_heat_vap * q(k) / (cp * t(k))
        log_theta_e = log_theta_e_env + (log_theta_e - log_theta_e_env) * exp(-entrainment * dz)
        tp(k) = saturated_temperature(log_theta_e + kappa * (lnp(k) - log_p_reference), p(k), t_parcel(k))
      end do
    end if
    k_lfc = 0
    k_top = 0
    do k = nlev - 1, 1, -1
      if (tp(k) - t(k) > 0) then
        if (k_lfc == 0) k_lfc = k
        k_top = k
      else if (k_lfc /= 0) then
        exit
      end if
    end do
  end subroutine dilute_cloud_top

  pure subroutine betts_miller_convection(config, nlev, dt, rh_ref, p, lnp, pk, mass, t, q, &
                                          dtdt, dqdt, precip, cape, k_top, k_lcl)
    type(physics_config), intent(in) :: config
    integer, intent(in) :: nlev
    real(real64), intent(in) :: dt           !! time step of this call [s]
    real(real64), intent(in) :: rh_ref       !! reference relative humidity of this subcolumn
    real(real64), intent(in) :: p(nlev)      !! pressure [Pa]
    real(real64), intent(in) :: lnp(nlev)    !! log(p)
    real(real64), intent(in) :: pk(nlev)     !! (p / p0)**kappa
    real(real64), intent(in) :: mass(nlev)   !! dp / g [kg m-2]
    real(real64), intent(in) :: t(nlev)      !! temperature [K]
    real(real64), intent(in) :: q(nlev)      !! specific humidity [kg kg-1]
    real(real64), intent(out) :: dtdt(nlev)  !! [K s-1]
    real(real64), intent(out) :: dqdt(nlev)  !! [kg kg-1 s-1]
    real(real64), intent(out) :: precip      !! convective precipitation [kg m-2 s-1]
    real(real64), intent(out) :: cape        !! [J kg-1]
    integer, intent(out) :: k_top            !! highest level of convection (0: none)
    integer, intent(out) :: k_lcl            !! lifting condensation level (0: none)

    real(real64) :: t_parcel(nlev), buoyancy, relax, p_q, p_t, layer_mass, heat, shift, scale, log_theta_e
    real(real64) :: q_sum, qs_sum
    integer :: k, k_lfc, k_top_dilute
    logical :: deep

    dtdt = 0.0_real64
    dqdt = 0.0_real64
    precip = 0.0_real64
    cape = 0.0_real64
    k_top = 0

    call lift_parcel(nlev, p, lnp, pk, t, q, t_parcel, k_lcl, log_theta_e)

    ! The first buoyant layer above the lifting level; convection reaches its top.
    k_lfc = 0
    do k = nlev - 1, 1, -1
      buoyancy = t_parcel(k) - t(k)
      if (buoyancy > 0) then
        if (k_lfc == 0) k_lfc = k
        k_top = k
        cape = cape + rd * buoyancy * (lnp(k+1) - lnp(k))
      else if (k_lfc /= 0) then
        exit
      end if
    end do
    if (k_top == 0 .or. cape <= config%sbm_cape_min) then
      k_top = 0
      cape = max(cape, 0.0_real64)
      return
    end if

    relax = (1.0_real64 - exp(-dt / config%sbm_tau)) / dt   ! never overshoots the reference
    do k = k_top, nlev
      dtdt(k) = -(t(k) - t_parcel(k)) * relax
      dqdt(k) = -(q(k) - rh_ref * saturation_humidity(t_parcel(k), p(k))) * relax
    end do
    layer_mass = sum(mass(k_top:nlev))
    p_q = -sum(dqdt(k_top:nlev) * mass(k_top:nlev))
    heat = sum(dtdt(k_top:nlev) * mass(k_top:nlev))          ! column heating / cp
    p_t = cp * heat / latent_heat_vap

    deep = p_q > 0 .and. p_t > 0
    if (deep .and. config%sbm_deep_min_depth > 0) then
      ! Shallow clouds (base to top thinner than sbm_deep_min_depth) do not rain.
      if (k_lcl == 0 .or. k_lcl < k_top) then
        deep = .false.
      else
        deep = p(k_lcl) - p(k_top) >= config%sbm_deep_min_depth
      end if
    end if
    if (deep .and. config%sbm_deep_rh_min > 0) then
      ! Deep convection needs a moist cloud layer (LCL to top; Bretherton et al. 2004).
      q_sum = 0.0_real64
      qs_sum = 0.0_real64
      do k = k_top, max(k_lcl, k_top)
        q_sum = q_sum + q(k) * mass(k)
        qs_sum = qs_sum + saturation_humidity(t(k), p(k)) * mass(k)
      end do
      deep = q_sum >= config%sbm_deep_rh_min * qs_sum
    end if
    if (deep .and. config%sbm_deep_entrainment > 0) then
      ! ... and an entraining parcel that still reaches sbm_deep_min_depth above its LCL.
      call dilute_cloud_top(nlev, p, lnp, pk, t, q, t_parcel, k_lcl, log_theta_e, &
                            config%sbm_deep_entrainment, k_top_dilute)
      if (k_lcl == 0 .or. k_top_dilute == 0 .or. k_top_dilute > k_lcl) then
        deep = .false.
      else
        deep = p(k_lcl) - p(k_top_dilute) >= config%sbm_deep_min_depth
      end if
    end if
    if (deep) then
      shift = (latent_heat_vap * p_q / cp - heat) / layer_mass
      dtdt(k_top:nlev) = dtdt(k_top:nlev) + shift
      precip = p_q
    else
      dtdt(k_top:nlev) = dtdt(k_top:nlev) - heat / layer_mass
      shift = sum(dqdt(k_top:nlev) * mass(k_top:nlev)) / layer_mass
      dqdt(k_top:nlev) = dqdt(k_top:nlev) - shift
      precip = 0.0_real64
    end if

    scale = 1.0_real64
    do k = k_top, nlev
      if (q(k) + dt * dqdt(k) < 0) scale = min(scale, q(k) / (-dt * dqdt(k)))
    end do
    if (scale < 1) then
      dtdt = scale * dtdt
      dqdt = scale * dqdt
      precip = scale * precip
    end if
  end subroutine betts_miller_convection

end module convection
