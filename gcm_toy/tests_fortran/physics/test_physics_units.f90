program test_physics_units
  !! Unit tests of the column-physics building blocks, one process at a time.
  use iso_fortran_env, only: real64, int64
  use gcm_constants, only: pi, gravity, cp, kappa, latent_heat_vap, p_reference, &
                               stefan_boltzmann, t_freeze
  use gcm_status, only: gcm_ok, gcm_err_config, gcm_err_state, &
                            gcm_err_unphysical, gcm_err_nonfinite
  use physics_configuration, only: physics_config, physics_config_validate
  use physics_random, only: philox4x32_10, random_uniform4
  use moist_thermodynamics, only: saturation_vapour_pressure, saturation_humidity, &
                                  saturation_humidity_and_slope
  use sea_surface, only: sst_qobs
  use insolation, only: toa_insolation
  use radiation, only: gray_radiation
  use convection, only: betts_miller_convection, lift_parcel, dilute_cloud_top
  use condensation, only: large_scale_condensation
  use clouds, only: diagnose_clouds
  use surface_fluxes, only: compute_surface_fluxes
  use boundary_layer, only: compute_boundary_layer
  use emulated_physics, only: emulated_physics_reference
  use column_physics_io, only: column_inputs, column_outputs, set_column_inputs
  use physics_test_support, only: check, check_summary, uniform_sigma, column_mass, random_columns
  implicit none

  integer, parameter :: nlev = 20
  real(real64) :: sigma(nlev), sigma_half(0:nlev)

  call uniform_sigma(nlev, sigma, sigma_half)
  call test_philox()
  call test_saturation()
  call test_sst()
  call test_insolation()
  call test_radiation()
  call test_convection()
  call test_deep_criteria()
  call test_condensation()
  call test_clouds()
  call test_surface_fluxes()
  call test_boundary_layer()
  call test_entrainment()
  call test_validation()
  call check_summary('test_physics_units')

contains

  subroutine test_philox()
    integer(int64) :: x(4)
    real(real64) :: u(4), total
    integer :: i
    ! Random123 known-answer vectors of Philox4x32-10.
    x = philox4x32_10([0_int64, 0_int64, 0_int64, 0_int64], [0_int64, 0_int64])
    call check(all(x == [int(z'6627e8d5', int64), int(z'e169c58d', int64), &
                         int(z'bc57ac4c', int64), int(z'9b00dbd8', int64)]), 'philox: zero vector')
    x = philox4x32_10([int(z'ffffffff', int64), int(z'ffffffff', int64), int(z'ffffffff', int64), &
                       int(z'ffffffff', int64)], [int(z'ffffffff', int64), int(z'ffffffff', int64)])
    call check(all(x == [int(z'408f276d', int64), int(z'41c83b0e', int64), &
                         int(z'a20bc7c6', int64), int(z'6d5451fd', int64)]), 'philox: all-ones vector')
    x = philox4x32_10([int(z'243f6a88', int64), int(z'85a308d3', int64), int(z'13198a2e', int64), &
                       int(z'03707344', int64)], [int(z'a4093822', int64), int(z'299f31d0', int64)])
    call check(all(x == [int(z'd16cfe09', int64), int(z'94fdcceb', int64), &
                         int(z'5001e420', int64), int(z'24126ea1', int64)]), 'philox: pi vector')
    total = 0
    do i = 1, 10000
      u = random_uniform4(42_int64, 7_int64, i, 3)
      call check(all(u > 0 .and. u < 1), 'uniforms lie in (0, 1)')
      total = total + sum(u)
    end do
    call check(abs(total / 40000 - 0.5_real64) < 0.005_real64, 'uniforms have mean 1/2')
    call check(any(random_uniform4(42_int64, 7_int64, 1, 3) /= random_uniform4(42_int64, 8_int64, 1, 3)), &
               'the step changes the draw')
    call check(any(random_uniform4(42_int64, 7_int64, 1, 3) /= random_uniform4(43_int64, 7_int64, 1, 3)), &
               'the seed changes the draw')
  end subroutine test_philox

  subroutine test_saturation()
    real(real64) :: qs, dqs, qs_plus, qs_minus
    call check(abs(saturation_vapour_pressure(273.16_real64) - 610.78_real64) < 1e-10_real64, &
               'e_s(273.16 K) = 610.78 Pa')
    qs = saturation_humidity(300.0_real64, 1.0e5_real64)
    call check(qs > 0.021_real64 .and. qs < 0.024_real64, 'q_s(300 K, 1000 hPa) near 22 g/kg')
    call saturation_humidity_and_slope(285.0_real64, 8.0e4_real64, qs, dqs)
    qs_plus = saturation_humidity(285.001_real64, 8.0e4_real64)
    qs_minus = saturation_humidity(284.999_real64, 8.0e4_real64)
    call check(abs(dqs - (qs_plus - qs_minus) / 0.002_real64) < 1e-6_real64 * dqs, 'dq_s/dT matches finite difference')
    call check(saturation_humidity(400.0_real64, 1000.0_real64) < 1.0_real64, 'q_s stays finite in hot thin air')
  end subroutine test_saturation

  subroutine test_sst()
    call check(abs(sst_qobs(0.0_real64) - (t_freeze + 27)) < 1e-12_real64, 'Qobs SST at the equator is 27 C')
    call check(abs(sst_qobs(pi / 6) - (t_freeze + 16.875_real64)) < 1e-10_real64, 'Qobs SST at 30 deg is 16.875 C')
    call check(abs(sst_qobs(-pi / 6) - sst_qobs(pi / 6)) < 1e-12_real64, 'Qobs SST is symmetric')
    call check(abs(sst_qobs(1.1_real64) - t_freeze) < 1e-12_real64, 'Qobs SST poleward of 60 deg is 0 C')
    call check(abs(sst_qobs(pi / 3 - 1e-9_real64) - t_freeze) < 1e-6_real64, 'Qobs SST is continuous at 60 deg')
  end subroutine test_sst

  subroutine test_insolation()
    type(physics_config) :: c
    real(real64) :: total, weight, lat, lon, day_mean
    integer :: i, j, n
    c = physics_config()
    call check(abs(toa_insolation(0.0_real64, 0.0_real64, 43200.0_real64, c) - c%solar_constant) < 1e-9_real64, &
               'insolation: overhead sun at noon on the equator at equinox')
    call check(toa_insolation(0.0_real64, 0.0_real64, 0.0_real64, c) == 0, 'insolation: zero at midnight')
    call check(abs(toa_insolation(0.0_real64, pi, 0.0_real64, c) - c%solar_constant) < 1e-9_real64, &
               'insolation: noon at longitude 180 when it is midnight at 0')
    n = 2880
    day_mean = 0
    do i = 1, n
      day_mean = day_mean + toa_insolation(0.0_real64, 0.0_real64, (i - 0.5_real64) * 86400.0_real64 / n, c) / n
    end do
    call check(abs(day_mean - c%solar_constant / pi) < 1e-3_real64 * c%solar_constant / pi, &
               'insolation: diurnal mean on the equator is S0/pi')
    ! Global mean at one instant: S0/4.
    total = 0
    weight = 0
    do j = 1, 360
      lat = -pi / 2 + (j - 0.5_real64) * pi / 360
      do i = 1, 720
        lon = (i - 0.5_real64) * 2 * pi / 720
        total = total + toa_insolation(lat, lon, 12345.0_real64, c) * cos(lat)
        weight = weight + cos(lat)
      end do
    end do
    call check(abs(total / weight - c%solar_constant / 4) < 1e-3_real64 * c%solar_constant / 4, &
               'insolation: global mean is S0/4')
    c%diurnal_cycle = .false.
    call check(abs(toa_insolation(0.0_real64, 1.0_real64, 999.0_real64, c) - c%solar_constant / pi) < 1e-9_real64, &
               'insolation: daily mean on the equator is S0/pi')
    c%seasons = .true.
    call check(abs(toa_insolation(pi / 2, 0.0_real64, 0.25_real64 * 365.25_real64 * 86400, c) - &
                   c%solar_constant * sin(23.44_real64 * pi / 180)) < 1e-6_real64 * c%solar_constant, &
               'insolation: daily mean at the north pole at solstice is S0 sin(obliquity)')
    call check(toa_insolation(-pi / 2, 0.0_real64, 0.25_real64 * 365.25_real64 * 86400, c) < 1e-9_real64, &
               'insolation: polar night at the south pole at the northern solstice')
  end subroutine test_insolation

  subroutine tropical_column(ts, rh_surface, t, q, ps)
    !! A moist-adiabat-like tropical column: 6.5 K/km to a 200 K tropopause.
    real(real64), intent(in) :: ts, rh_surface
    real(real64), intent(out) :: t(nlev), q(nlev), ps
    integer :: k
    ps = 1.0e5_real64
    do k = 1, nlev
      t(k) = max(200.0_real64, ts * sigma(k)**(6.5e-3_real64 * 287.04_real64 / gravity))
      q(k) = rh_surface * sigma(k)**1.5_real64 * saturation_humidity(t(k), sigma(k) * ps)
      if (t(k) <= 200.0_real64) q(k) = min(q(k), 3e-6_real64)
    end do
  end subroutine tropical_column

  subroutine test_radiation()
    type(physics_config) :: c
    real(real64) :: t(nlev), q(nlev), mass(nlev), dpp0(nlev), cf(nlev), cw(nlev), heat(nlev), ps
    real(real64) :: fsnt, fsns, flnt, flns, fsnt_clear, olr_dry, olr_moist
    c = physics_config()
    ps = 1.0e5_real64
    mass = column_mass(nlev, ps, sigma_half)
    dpp0 = mass * gravity / p_reference
    cf = 0
    cw = 0

    ! Isothermal atmosphere over a surface of the same temperature, no sun: no LW heating.
    t = 250
    q = 1e-3_real64
    ! With the window band: in each band FLNS = band share of sigma T^4 times the column transmissivity.
    call gray_radiation(c, nlev, 0.0_real64, 250.0_real64, mass, dpp0, t, q, cf, cw, heat, fsnt, fsns, flnt, flns)
    call check(c%lw_window > 0, 'radiation: the default longwave has a window band')
    call check(abs(flns - stefan_boltzmann * 250.0_real64**4 * &
                   ((1 - c%lw_window) * exp(-sum((c%lw_tau_dry + c%lw_tau_vapour * q) * dpp0)) + &
                    c%lw_window * exp(-sum(c%lw_window_tau_vapour * q * dpp0)))) < 1e-9_real64, &
               'radiation: isothermal column with window: FLNS = sum over bands of share x transmissivity x sigma T^4')
    call check(abs(flnt - stefan_boltzmann * 250.0_real64**4) < 1e-9_real64, 'radiation: window: isothermal OLR = sigma T^4')
    call check(abs(sum(cp * heat * mass) - (flns - flnt)) < 1e-10_real64 * flnt, &
               'radiation: window: isothermal column cooling = OLR - FLNS')
    ! The gray band alone (lw_window = 0):
    c%lw_window = 0
    ! Upward LW is sigma T^4 at every level, so only cooling to space remains.
    call gray_radiation(c, nlev, 0.0_real64, 250.0_real64, mass, dpp0, t, q, cf, cw, heat, fsnt, fsns, flnt, flns)
    call check(abs(flnt - stefan_boltzmann * 250.0_real64**4) < 1e-9_real64, 'radiation: isothermal OLR = sigma T^4')
    call check(all(heat <= 0) .and. heat(1) < heat(nlev), 'radiation: isothermal column cools, most at the top')
    call check(flns > 0 .and. flns < 0.2_real64 * flnt, 'radiation: isothermal column: small net surface LW')
    call check(abs(sum(cp * heat * mass) - (flns - flnt)) < 1e-10_real64 * flnt, &
               'radiation: isothermal column cooling = OLR - FLNS')

    ! Transparent atmosphere: the surface emission escapes; no absorbers: the sun reaches the ground.
    c = physics_config()
    c%lw_tau_dry = 0
    c%lw_tau_vapour = 0
    c%lw_window_tau_vapour = 0
    c%sw_tau_dry = 0
    c%sw_tau_vapour = 0
    call tropical_column(300.0_real64, 0.8_real64, t, q, ps)
    call gray_radiation(c, nlev, 800.0_real64, 300.0_real64, mass, dpp0, t, q, cf, cw, heat, fsnt, fsns, flnt, flns)
    call check(abs(flnt - stefan_boltzmann * 300.0_real64**4) < 1e-9_real64, 'radiation: transparent OLR = sigma Ts^4')
    call check(abs(fsnt - (1 - c%surface_albedo) * 800) < 1e-9_real64 .and. abs(fsns - fsnt) < 1e-9_real64, &
               'radiation: transparent shortwave: FSNT = FSNS = (1 - albedo) solin')
    call check(maxval(abs(heat)) < 1e-15_real64, 'radiation: transparent column has no heating')

    ! Default optics on a tropical column.
    c = physics_config()
    call gray_radiation(c, nlev, 800.0_real64, 300.0_real64, mass, dpp0, t, q, cf, cw, heat, fsnt_clear, fsns, &
                        flnt, flns)
    call check(flnt > 230 .and. flnt < 310, 'radiation: clear tropical OLR in 230-310 W/m2')
    call check(fsnt_clear > fsns .and. fsns > 0, 'radiation: the atmosphere absorbs some shortwave')
    call check(abs(sum(cp * heat * mass) - (fsnt_clear - fsns - flnt + flns)) < 1e-10_real64 * 1000, &
               'radiation: column heating equals the flux convergence')
    olr_moist = flnt
    call gray_radiation(c, nlev, 800.0_real64, 300.0_real64, mass, dpp0, t, 0.5_real64 * q, cf, cw, heat, &
                        fsnt, fsns, olr_dry, flns)
    call check(olr_dry > olr_moist, 'radiation: a drier column emits more OLR')

    ! A thick mid-level cloud reflects sunlight and lowers the OLR.
    cf(8:10) = 1
    cw(8:10) = 2e-4_real64
    call gray_radiation(c, nlev, 800.0_real64, 300.0_real64, mass, dpp0, t, q, cf, cw, heat, fsnt, fsns, flnt, flns)
    call check(fsnt < fsnt_clear - 50, 'radiation: cloud reflects sunlight')
    call check(flnt < olr_moist - 10, 'radiation: cloud lowers the OLR')
    call check(abs(sum(cp * heat * mass) - (fsnt - fsns - flnt + flns)) < 1e-10_real64 * 1000, &
               'radiation: cloudy column heating equals the flux convergence')
  end subroutine test_radiation

  subroutine test_convection()
    type(physics_config) :: c
    real(real64) :: t(nlev), q(nlev), ps, p(nlev), lnp(nlev), pk(nlev), mass(nlev), tp(nlev)
    real(real64) :: dtdt(nlev), dqdt(nlev), precip, cape, theta_e(nlev), dt
    integer :: k_top, k_lcl, k
    c = physics_config()
    dt = 900

    ! Stable, dry, isothermal column: nothing happens.
    ps = 1e5_real64
    t = 250
    q = 1e-5_real64
    call geometry(ps, p, lnp, pk, mass)
    call betts_miller_convection(c, nlev, dt, 0.7_real64, p, lnp, pk, mass, t, q, dtdt, dqdt, precip, cape, &
                                 k_top, k_lcl)
    call check(k_top == 0 .and. all(dtdt == 0) .and. all(dqdt == 0) .and. precip == 0, &
               'convection: stable column does not convect')

    ! A tropical column 1.5 K colder than the pseudo-adiabat of its surface air,
    ! at 85 % relative humidity: deep convection.
    call tropical_column(301.0_real64, 0.9_real64, t, q, ps)
    call geometry(ps, p, lnp, pk, mass)
    q(nlev) = 0.85_real64 * saturation_humidity(t(nlev), p(nlev))
    call lift_parcel(nlev, p, lnp, pk, t, q, tp, k_lcl)
    t(1:nlev-1) = max(tp(1:nlev-1) - 1.5_real64, 200.0_real64)
    q(1:nlev-1) = 0.85_real64 * saturation_humidity(t(1:nlev-1), p(1:nlev-1))
    call lift_parcel(nlev, p, lnp, pk, t, q, tp, k_lcl)
    call check(k_lcl > 10 .and. k_lcl < nlev, 'parcel: lifting condensation level in the lower troposphere')
    call check(all(abs(tp(k_lcl+1:nlev) - t(nlev) / pk(nlev) * pk(k_lcl+1:nlev)) < 1e-9_real64), &
               'parcel: dry adiabat below the LCL')
    do k = 1, k_lcl
      theta_e(k) = tp(k) / pk(k) * exp(latent_heat_vap * saturation_humidity(tp(k), p(k)) / (cp * tp(k)))
    end do
    call check(maxval(abs(theta_e(1:k_lcl) / theta_e(k_lcl) - 1)) < 1e-4_real64, &
               'parcel: saturated theta_e conserved above the LCL (to 0.03 K, the Newton tolerance)')
    call betts_miller_convection(c, nlev, dt, 0.7_real64, p, lnp, pk, mass, t, q, dtdt, dqdt, precip, cape, &
                                 k_top, k_lcl)
    call check(k_top > 0 .and. k_top < 10, 'convection: deep convection reaches the upper troposphere')
    call check(cape > 100, 'convection: CAPE above 100 J/kg')
    call check(precip > 0, 'convection: deep convection rains')
    call check(abs(-sum(dqdt * mass) - precip) < 1e-12_real64 * precip, 'convection: water budget closes')
    call check(abs(sum(cp * dtdt * mass) - latent_heat_vap * precip) < 1e-12_real64 * latent_heat_vap * precip, &
               'convection: enthalpy conserved (heating = L P)')
    call check(all(q + dt * dqdt >= 0), 'convection: humidity stays non-negative')
    call check(all(dtdt(1:k_top-1) == 0) .and. all(dqdt(1:k_top-1) == 0), 'convection: nothing above its top')

    ! A huge step cannot dry any level below zero.
    call betts_miller_convection(c, nlev, 1.0e6_real64, 0.7_real64, p, lnp, pk, mass, t, q, dtdt, dqdt, precip, &
                                 cape, k_top, k_lcl)
    call check(all(q + 1.0e6_real64 * dqdt >= -1e-18_real64), 'convection: positivity with a huge step')
  end subroutine test_convection

  subroutine test_deep_criteria()
    !! The optional deep-convection criteria: cloud-layer humidity and an entraining parcel.
    type(physics_config) :: c
    real(real64) :: t(nlev), q(nlev), ps, p(nlev), lnp(nlev), pk(nlev), mass(nlev), tp(nlev), tp2(nlev)
    real(real64) :: dtdt(nlev), dqdt(nlev), dtdt0(nlev), dqdt0(nlev), precip, precip0, cape, dt, lte
    real(real64) :: q_dry(nlev)
    integer :: k_top, k_lcl, k_top0, k_d0, k_d1, k_d2, k_d3, k_lcl2
    c = physics_config()
    dt = 900

    ! The deep-convection column of test_convection: 1.5 K colder than the pseudo-adiabat, RH 0.85.
    call tropical_column(301.0_real64, 0.9_real64, t, q, ps)
    call geometry(ps, p, lnp, pk, mass)
    q(nlev) = 0.85_real64 * saturation_humidity(t(nlev), p(nlev))
    call lift_parcel(nlev, p, lnp, pk, t, q, tp, k_lcl)
    t(1:nlev-1) = max(tp(1:nlev-1) - 1.5_real64, 200.0_real64)
    q(1:nlev-1) = 0.85_real64 * saturation_humidity(t(1:nlev-1), p(1:nlev-1))
    call lift_parcel(nlev, p, lnp, pk, t, q, tp, k_lcl, lte)
    call lift_parcel(nlev, p, lnp, pk, t, q, tp2, k_lcl2)
    call check(all(tp2 == tp) .and. k_lcl2 == k_lcl, 'parcel: the optional theta_e output changes nothing')
    call check(abs(lte - log(tp(k_lcl) / pk(k_lcl)) - latent_heat_vap * saturation_humidity(tp(k_lcl), p(k_lcl)) &
                   / (cp * tp(k_lcl))) < 1e-4_real64, 'parcel: ln theta_e output is that of the saturated parcel')
    call betts_miller_convection(c, nlev, dt, 0.7_real64, p, lnp, pk, mass, t, q, dtdt0, dqdt0, precip0, cape, &
                                 k_top0, k_lcl)
    call check(precip0 > 0, 'deep criteria: the column rains by default')

    ! Entraining parcel: no entrainment gives the undiluted top; entrainment lowers it,
    ! and more so into a drier free troposphere.
    call dilute_cloud_top(nlev, p, lnp, pk, t, q, tp, k_lcl, lte, 0.0_real64, k_d0)
    call check(k_d0 == k_top0, 'dilute parcel: without entrainment it reaches the undiluted top')
    call dilute_cloud_top(nlev, p, lnp, pk, t, q, tp, k_lcl, lte, 2.0e-4_real64, k_d1)
    call check(k_d1 > k_d0 .and. k_d1 < k_lcl, 'dilute parcel: entrainment lowers the top (still above the LCL)')
    q_dry = q
    q_dry(1:k_lcl-1) = 0.5_real64 * q(1:k_lcl-1)
    call dilute_cloud_top(nlev, p, lnp, pk, t, q_dry, tp, k_lcl, lte, 2.0e-4_real64, k_d2)
    call check(k_d2 > k_d1, 'dilute parcel: a drier free troposphere lowers it further')
    call dilute_cloud_top(nlev, p, lnp, pk, t, q, tp, k_lcl, lte, 1.0e-2_real64, k_d3)
    call check(k_d3 >= k_d1, 'dilute parcel: the top falls monotonically with the entrainment rate')

    ! sbm_deep_entrainment: strong entrainment turns the deep convection shallow (no rain,
    ! zero column integrals, same depth of the adjustment); none changes nothing.
    c%sbm_deep_entrainment = 1.0e-2_real64
    call betts_miller_convection(c, nlev, dt, 0.7_real64, p, lnp, pk, mass, t, q, dtdt, dqdt, precip, cape, &
                                 k_top, k_lcl)
    call check(precip == 0 .and. k_top == k_top0, 'deep criteria: strongly entraining parcel -> shallow, same top')
    call check(abs(sum(dqdt * mass)) < 1e-12_real64 * sum(abs(dqdt) * mass) .and. &
               abs(sum(dtdt * mass)) < 1e-12_real64 * sum(abs(dtdt) * mass), &
               'deep criteria: shallow adjustment integrates to zero')
    c%sbm_deep_entrainment = 1.0e-6_real64
    call betts_miller_convection(c, nlev, dt, 0.7_real64, p, lnp, pk, mass, t, q, dtdt, dqdt, precip, cape, &
                                 k_top, k_lcl)
    call check(precip == precip0 .and. all(dtdt == dtdt0) .and. all(dqdt == dqdt0), &
               'deep criteria: a weakly entraining parcel that still reaches 200 hPa changes nothing')

    ! sbm_deep_rh_min: the cloud layer is at RH 0.85.
    c = physics_config()
    c%sbm_deep_rh_min = 0.8_real64
    call betts_miller_convection(c, nlev, dt, 0.7_real64, p, lnp, pk, mass, t, q, dtdt, dqdt, precip, cape, &
                                 k_top, k_lcl)
    call check(precip == precip0 .and. all(dqdt == dqdt0), 'deep criteria: cloud layer moister than the threshold rains')
    c%sbm_deep_rh_min = 0.9_real64
    call betts_miller_convection(c, nlev, dt, 0.7_real64, p, lnp, pk, mass, t, q, dtdt, dqdt, precip, cape, &
                                 k_top, k_lcl)
    call check(precip == 0 .and. k_top == k_top0 .and. abs(sum(dqdt * mass)) < 1e-12_real64 * sum(abs(dqdt) * mass), &
               'deep criteria: cloud layer drier than the threshold -> shallow')
  end subroutine test_deep_criteria

  subroutine geometry(surface_pressure, p, lnp, pk, mass)
    real(real64), intent(in) :: surface_pressure
    real(real64), intent(out) :: p(nlev), lnp(nlev), pk(nlev), mass(nlev)
    p = sigma * surface_pressure
    lnp = log(p)
    pk = (p / p_reference)**kappa
    mass = column_mass(nlev, surface_pressure, sigma_half)
  end subroutine geometry

  subroutine test_condensation()
    type(physics_config) :: c
    real(real64) :: t(nlev), q(nlev), ps, p(nlev), mass(nlev), dtdt(nlev), dqdt(nlev), precip, dt, qs_after
    c = physics_config()
    dt = 900
    call tropical_column(300.0_real64, 0.6_real64, t, q, ps)
    p = sigma * ps
    mass = column_mass(nlev, ps, sigma_half)
    call large_scale_condensation(c, nlev, dt, 1.0_real64, p, mass, t, q, dtdt, dqdt, precip)
    call check(all(dtdt == 0) .and. all(dqdt == 0) .and. precip == 0, 'condensation: subsaturated column is untouched')

    ! A supersaturated layer at level 8 condenses to the threshold; rain falls into dry air below.
    q(8) = 1.2_real64 * saturation_humidity(t(8), p(8))
    call large_scale_condensation(c, nlev, dt, 0.95_real64, p, mass, t, q, dtdt, dqdt, precip)
    qs_after = saturation_humidity(t(8) + dt * dtdt(8), p(8))
    call check(abs(q(8) + dt * dqdt(8) - 0.95_real64 * qs_after) < 0.02_real64 * (q(8) - 0.95_real64 * qs_after), &
               'condensation: layer ends near its threshold')
    call check(dtdt(8) > 0 .and. precip > 0, 'condensation: latent heating and rain')
    call check(-dqdt(8) * mass(8) > precip, 'condensation: part of the rain re-evaporates below')
    call check(any(dqdt(9:nlev) > 0) .and. all(dqdt(9:nlev) >= 0), 'condensation: re-evaporation moistens lower layers')
    call check(abs(-sum(dqdt * mass) - precip) < 1e-12_real64 * (-dqdt(8) * mass(8)), 'condensation: water budget closes')
    call check(abs(sum(cp * dtdt * mass) - latent_heat_vap * precip) < 1e-12_real64 * cp * dtdt(8) * mass(8), &
               'condensation: energy budget closes')
  end subroutine test_condensation

  subroutine test_clouds()
    type(physics_config) :: c
    real(real64) :: t(nlev), q(nlev), p(nlev), cf(nlev), cw(nlev), qs(nlev)
    c = physics_config()
    t = 280
    p = sigma * 1e5_real64
    qs = saturation_humidity(t, p)
    q = 0.5_real64 * qs
    q(5) = 0.95_real64 * qs(5)
    q(6) = (0.95_real64 - c%cloud_rh_width / 2) * qs(6)
    call diagnose_clouds(c, nlev, 0.95_real64, 0.0_real64, 0, 0, p, t, q, cf, cw)
    call check(cf(1) == 0, 'clouds: no cloud below the onset RH')
    call check(abs(cf(5) - 1) < 1e-12_real64, 'clouds: overcast at the condensation threshold')
    call check(abs(cf(6) - (1 - sqrt(0.5_real64))) < 1e-9_real64, 'clouds: Sundqvist cover between onset and threshold')
    call check(all(cw > 0 .and. cw <= c%cloud_water_max), 'clouds: in-cloud water positive and bounded')
    ! 10 mm/day of convective rain between levels 7 and 15.
    call diagnose_clouds(c, nlev, 0.95_real64, 10.0_real64 / 86400, 7, 15, p, t, q, cf, cw)
    call check(abs((1 - product(1 - cf(7:15))) - (c%conv_cloud_a + c%conv_cloud_b * log(10.0_real64))) &
               < 1e-12_real64, 'clouds: random overlap of the convective levels gives the cover a + b ln(P)')
    call check(cf(4) == 0 .and. cf(16) == 0, 'clouds: convective cover only between cloud base and top')
  end subroutine test_clouds

  subroutine test_surface_fluxes()
    type(physics_config) :: c
    real(real64) :: t(nlev, 2), q(nlev, 2), u(nlev, 2), v(nlev, 2), ps(2), sst(2)
    real(real64) :: sh(2), lh(2), ev(2), tx(2), ty(2)
    c = physics_config()
    ps = 1e5_real64
    t = 297
    q = 0.015_real64
    u = 0
    v = 0
    u(nlev, 2) = c%min_wind_speed
    sst = 300
    call compute_surface_fluxes(c, 2, nlev, t, q, u, v, ps, sigma, sst, sh, lh, ev, tx, ty)
    call check(sh(1) > 0 .and. ev(1) > 0, 'surface: warm, moist-deficit ocean heats and moistens the air')
    call check(abs(lh(1) - latent_heat_vap * ev(1)) < 1e-12_real64 * lh(1), 'surface: LH = L E')
    call check(abs(sh(1) - sh(2)) < 1e-12_real64 * sh(1), 'surface: calm air uses the minimum wind speed')
    u(nlev, :) = 10
    v(nlev, :) = -5
    call compute_surface_fluxes(c, 2, nlev, t, q, u, v, ps, sigma, sst, sh, lh, ev, tx, ty)
    call check(lh(1) > 100 .and. lh(1) < 300, 'surface: latent heat flux 100-300 W/m2 at 11 m/s over a 3 K warmer sea')
    call check(tx(1) < 0 .and. ty(1) > 0, 'surface: stress opposes the wind')
  end subroutine test_surface_fluxes

  subroutine test_boundary_layer()
    type(physics_config) :: c
    real(real64) :: t(nlev, 1), q(nlev, 1), u(nlev, 1), v(nlev, 1), ps(1), mass(nlev)
    real(real64) :: dtdt(nlev, 1), dqdt(nlev, 1), dudt(nlev, 1), dvdt(nlev, 1), dt
    real(real64) :: sh(1), ev(1), tx(1), ty(1)
    c = physics_config()
    dt = 1800
    ps = 1e5_real64
    call tropical_column(300.0_real64, 0.8_real64, t(:, 1), q(:, 1), ps(1))
    mass = column_mass(nlev, ps(1), sigma_half)
    u = 5
    v = -2
    u(nlev, 1) = 3
    sh = 15
    ev = 4e-5_real64
    tx = -0.05_real64
    ty = 0.02_real64
    call compute_boundary_layer(c, 1, nlev, dt, t, q, u, v, ps, sigma, sigma_half, sh, ev, tx, ty, &
                                dtdt, dqdt, dudt, dvdt)
    call check(abs(sum(cp * dtdt(:, 1) * mass) - sh(1)) < 1e-10_real64 * sh(1), 'boundary layer: heat budget closes')
    call check(abs(sum(dqdt(:, 1) * mass) - ev(1)) < 1e-10_real64 * ev(1), 'boundary layer: water budget closes')
    call check(abs(sum(dudt(:, 1) * mass) - tx(1)) < 1e-10_real64 * abs(tx(1)), 'boundary layer: momentum budget closes')
    call check(all(dqdt(1:nlev-5, 1) == 0), 'boundary layer: no mixing above pbl_sigma_top')
    call check(dqdt(nlev - 1, 1) > 0 .and. dqdt(nlev - 2, 1) > 0, 'boundary layer: evaporation spreads upward')
    call check(dudt(nlev, 1) > 0, 'boundary layer: a slow lowest level is sped up by faster air above')
    ! Uniform humidity and no fluxes: nothing changes.
    q = 0.01_real64
    ev = 0
    call compute_boundary_layer(c, 1, nlev, dt, t, q, u, v, ps, sigma, sigma_half, sh, ev, tx, ty, &
                                dtdt, dqdt, dudt, dvdt)
    call check(maxval(abs(dqdt)) < 1e-20_real64, 'boundary layer: uniform humidity without flux is left alone')
  end subroutine test_boundary_layer

  subroutine test_entrainment()
    !! Cloud-top entrainment across the half level above the boundary layer
    !! (k_e = 17 at sigma 0.85 on 20 levels; the top level is 18).
    type(physics_config) :: c
    integer, parameter :: k_e = 17
    real(real64) :: t(nlev, 1), q(nlev, 1), u(nlev, 1), v(nlev, 1), ps(1), mass(nlev)
    real(real64) :: dtdt(nlev, 1), dqdt(nlev, 1), dudt(nlev, 1), dvdt(nlev, 1)
    real(real64) :: dtdt0(nlev, 1), dqdt0(nlev, 1), dudt0(nlev, 1), dvdt0(nlev, 1)
    real(real64) :: sh(1), ev(1), tx(1), ty(1), m_e(1), m_e2(1), dt, jump, heat_flux
    c = physics_config()
    dt = 1800
    call tropical_column(295.0_real64, 0.8_real64, t(:, 1), q(:, 1), ps(1))
    mass = column_mass(nlev, ps(1), sigma_half)
    ! A saturated boundary-layer top under a warm, dry inversion.
    q(k_e + 1, 1) = saturation_humidity(t(k_e + 1, 1), sigma(k_e + 1) * ps(1))
    t(1:k_e, 1) = t(1:k_e, 1) + 6
    q(k_e, 1) = 0.3_real64 * saturation_humidity(t(k_e, 1), sigma(k_e) * ps(1))
    u = 5
    v = -2
    sh = 10
    ev = 3e-5_real64
    tx = -0.05_real64
    ty = 0.02_real64
    c%pbl_entrain_surface = 0
    c%pbl_entrain_cloud = 0
    call compute_boundary_layer(c, 1, nlev, dt, t, q, u, v, ps, sigma, sigma_half, sh, ev, tx, ty, &
                                dtdt0, dqdt0, dudt0, dvdt0, entrainment=m_e)
    call check(m_e(1) == 0 .and. dqdt0(k_e, 1) == 0, 'entrainment: off when both efficiencies are 0')

    c%pbl_entrain_cloud = 1
    call compute_boundary_layer(c, 1, nlev, dt, t, q, u, v, ps, sigma, sigma_half, sh, ev, tx, ty, &
                                dtdt, dqdt, dudt, dvdt, entrainment=m_e)
    ! Overcast top (RH 1 = cond_rh_max): the heat flux M_e cp Delta theta_v is A_r F_rad.
    jump = t(k_e, 1) * (1 + 0.608_real64 * q(k_e, 1)) - t(k_e + 1, 1) * (1 + 0.608_real64 * q(k_e + 1, 1)) + &
           287.04_real64 * 0.5_real64 * (t(k_e, 1) + t(k_e + 1, 1)) * log(sigma(k_e + 1) / sigma(k_e)) / cp
    heat_flux = m_e(1) * cp * jump
    call check(abs(heat_flux - c%pbl_cloud_top_cooling) < 1e-9_real64 * c%pbl_cloud_top_cooling, &
               'entrainment: saturated top, A_r = 1: M_e cp Delta theta_v = F_rad')
    call check(jump > 5, 'entrainment: the test sounding has an inversion')
    call check(abs(sum(cp * dtdt(:, 1) * mass) - sh(1)) < 1e-10_real64 * sh(1), 'entrainment: heat budget closes')
    call check(abs(sum(dqdt(:, 1) * mass) - ev(1)) < 1e-10_real64 * ev(1), 'entrainment: water budget closes')
    call check(abs(sum(dudt(:, 1) * mass) - tx(1)) < 1e-10_real64 * abs(tx(1)), 'entrainment: momentum budget closes')
    call check(dqdt(k_e + 1, 1) < dqdt0(k_e + 1, 1) .and. dtdt(k_e + 1, 1) > dtdt0(k_e + 1, 1), &
               'entrainment: dries and warms the saturated boundary-layer top')
    call check(dqdt(k_e, 1) > 0 .and. dtdt(k_e, 1) < 0, 'entrainment: moistens and cools the level above')
    call check(all(dqdt(1:k_e-1, 1) == 0) .and. all(dtdt(1:k_e-1, 1) == 0), &
               'entrainment: no mixing above the inversion level')
    call check(abs(dqdt(k_e, 1) * mass(k_e) - m_e(1) * (q(k_e + 1, 1) + dt * dqdt(k_e + 1, 1) - &
                                                       q(k_e, 1) - dt * dqdt(k_e, 1))) < 1e-12_real64, &
               'entrainment: the level above gains M_e times the (implicit) humidity jump')
    ! Below the cloud onset and without surface-driven entrainment there is none.
    q(k_e + 1, 1) = (c%cond_rh_max - c%cond_rh_spread - c%cloud_rh_width - 0.01_real64) * &
                    saturation_humidity(t(k_e + 1, 1), sigma(k_e + 1) * ps(1))
    call compute_boundary_layer(c, 1, nlev, dt, t, q, u, v, ps, sigma, sigma_half, sh, ev, tx, ty, &
                                dtdt, dqdt, dudt, dvdt, entrainment=m_e)
    call check(m_e(1) == 0 .and. dqdt(k_e, 1) == 0, 'entrainment: clear boundary-layer top: no cloud-top entrainment')
    jump = t(k_e, 1) * (1 + 0.608_real64 * q(k_e, 1)) - t(k_e + 1, 1) * (1 + 0.608_real64 * q(k_e + 1, 1)) + &
           287.04_real64 * 0.5_real64 * (t(k_e, 1) + t(k_e + 1, 1)) * log(sigma(k_e + 1) / sigma(k_e)) / cp
    ! Surface-driven part: proportional to A_s and to the surface virtual heat flux.
    c%pbl_entrain_surface = 0.2_real64
    call compute_boundary_layer(c, 1, nlev, dt, t, q, u, v, ps, sigma, sigma_half, sh, ev, tx, ty, &
                                dtdt, dqdt, dudt, dvdt, entrainment=m_e)
    c%pbl_entrain_surface = 0.4_real64
    call compute_boundary_layer(c, 1, nlev, dt, t, q, u, v, ps, sigma, sigma_half, sh, ev, tx, ty, &
                                dtdt, dqdt, dudt, dvdt, entrainment=m_e2)
    call check(m_e(1) > 0 .and. abs(m_e2(1) - 2 * m_e(1)) < 1e-12_real64 * m_e(1), &
               'entrainment: surface-driven part proportional to A_s')
    call check(abs(m_e(1) * cp * jump - 0.2_real64 * (sh(1) + 0.608_real64 * cp * t(nlev, 1) * ev(1))) &
               < 1e-9_real64 * m_e(1) * cp * jump + 1e-6_real64, &
               'entrainment: surface-driven heat flux A_s (SH + 0.608 cp T E)')
  end subroutine test_entrainment

  subroutine test_validation()
    type(physics_config) :: c
    integer :: stat
    character(len=:), allocatable :: msg
    integer, parameter :: n = 3
    real(real64) :: t(nlev, n), q(nlev, n), ps(n), solin(n), sh(n), lh(n)
    real(real64) :: bad_half(0:nlev)
    integer :: ids(n)
    type(column_inputs) :: inputs
    type(column_outputs) :: outputs

    c = physics_config()
    call physics_config_validate(c, stat, msg)
    call check(stat == gcm_ok, 'validation: the default configuration is valid')
    c%n_subcolumns = 0
    call physics_config_validate(c, stat, msg)
    call check(stat == gcm_err_config .and. index(msg, 'n_subcolumns') > 0, 'validation: n_subcolumns = 0 refused')
    c = physics_config()
    c%sbm_deep_rh_min = 1.5_real64
    call physics_config_validate(c, stat, msg)
    call check(stat == gcm_err_config .and. index(msg, 'sbm_deep_rh_min') > 0, 'validation: sbm_deep_rh_min > 1 refused')
    c = physics_config()
    c%sbm_deep_entrainment = -1.0e-4_real64
    call physics_config_validate(c, stat, msg)
    call check(stat == gcm_err_config .and. index(msg, 'sbm_deep_entrainment') > 0, &
               'validation: sbm_deep_entrainment < 0 refused')
    c = physics_config()
    c%radiation_interval = 0
    call physics_config_validate(c, stat, msg)
    call check(stat == gcm_err_config .and. index(msg, 'radiation_interval') > 0, &
               'validation: radiation_interval = 0 refused')
    c = physics_config()
    c%pbl_entrain_cloud = -0.1_real64
    call physics_config_validate(c, stat, msg)
    call check(stat == gcm_err_config .and. index(msg, 'pbl_entrain_cloud') > 0, &
               'validation: negative pbl_entrain_cloud refused')
    c = physics_config()
    c%pbl_entrain_min_jump = 0
    call physics_config_validate(c, stat, msg)
    call check(stat == gcm_err_config .and. index(msg, 'pbl_entrain_min_jump') > 0, &
               'validation: pbl_entrain_min_jump = 0 refused')

    c = physics_config()
    call random_columns(n, nlev, sigma, 5_int64, t, q, ps, solin, sh, lh, 0.5_real64)
    ids = [1, 2, 3]
    call set_column_inputs(inputs, t, q, ps, solin, sh, lh, sigma, sigma_half, 900.0_real64, 1_int64, ids, 1_int64)
    call emulated_physics_reference(c, inputs, outputs, stat, msg)
    call check(stat == gcm_ok, 'validation: realistic columns accepted')
    inputs%q(3, 2) = -1e-9_real64
    call emulated_physics_reference(c, inputs, outputs, stat, msg)
    call check(stat == gcm_err_unphysical .and. index(msg, 'humidity') > 0, 'validation: negative q refused')
    inputs%q(3, 2) = 1e-3_real64
    inputs%t(4, 3) = ieee_nan()
    call emulated_physics_reference(c, inputs, outputs, stat, msg)
    call check(stat == gcm_err_nonfinite .and. index(msg, 'column 3') > 0, 'validation: NaN refused, column named')
    inputs%t(4, 3) = 250
    inputs%nlev = nlev - 1
    call emulated_physics_reference(c, inputs, outputs, stat, msg)
    call check(stat == gcm_err_state, 'validation: nlev inconsistent with the arrays refused')
    inputs%nlev = nlev
    bad_half = sigma_half
    bad_half(5) = bad_half(4)
    inputs%sigma_half(0:) = bad_half
    call emulated_physics_reference(c, inputs, outputs, stat, msg)
    call check(stat == gcm_err_state .and. index(msg, 'sigma') > 0, 'validation: bad sigma levels refused')
    inputs%sigma_half(0:) = sigma_half
    inputs%dt = 0.0_real64
    call emulated_physics_reference(c, inputs, outputs, stat, msg)
    call check(stat == gcm_err_config .and. index(msg, 'dt') > 0, 'validation: dt = 0 refused')
  end subroutine test_validation

  function ieee_nan() result(x)
    use ieee_arithmetic, only: ieee_value, ieee_quiet_nan
    real(real64) :: x
    x = ieee_value(1.0_real64, ieee_quiet_nan)
  end function ieee_nan

end program test_physics_units
