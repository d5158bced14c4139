module physics_test_support
  !! Shared helpers of the standalone physics tests: a pass/fail tally,
  !! sigma grids, and random but realistic tropical and midlatitude columns.
  use iso_fortran_env, only: real64, int64, output_unit
  use gcm_constants, only: gravity, cp, latent_heat_vap
  use physics_random, only: random_uniform4
  use moist_thermodynamics, only: saturation_humidity
  implicit none
  private
  public :: check, check_summary, failures, uniform_sigma, stretched_sigma, random_columns, &
            column_mass, water_residual, energy_residual

  integer, save :: failures = 0
  integer, save :: checks = 0

contains

  subroutine check(condition, name)
    !! Record one assertion; print failures immediately.
    logical, intent(in) :: condition
    character(len=*), intent(in) :: name
    checks = checks + 1
    if (.not. condition) then
      failures = failures + 1
      write(output_unit, '(a,a)') 'FAIL: ', name
    end if
  end subroutine check

  subroutine check_summary(program_name)
    !! Print the tally and stop with a non-zero code on any failure (test programs only).
    character(len=*), intent(in) :: program_name
    if (failures == 0) then
      write(output_unit, '(a,a,i0,a)') program_name, ': all ', checks, ' checks passed'
    else
      write(output_unit, '(a,a,i0,a,i0,a)') program_name, ': ', failures, ' of ', checks, ' checks FAILED'
      error stop 1
    end if
  end subroutine check_summary

  subroutine uniform_sigma(nlev, sigma, sigma_half)
    !! nlev layers of equal sigma thickness, full levels at the layer middles.
    integer, intent(in) :: nlev
    real(real64), intent(out) :: sigma(nlev), sigma_half(0:nlev)
    integer :: k
    sigma_half = [(real(k, real64) / nlev, k = 0, nlev)]
    sigma = 0.5_real64 * (sigma_half(0:nlev-1) + sigma_half(1:nlev))
  end subroutine uniform_sigma

  subroutine stretched_sigma(nlev, sigma, sigma_half)
    !! Layers thinner near the surface and the top: sigma_half = (x + 3x^2 - 2x^3) / 2.
    integer, intent(in) :: nlev
    real(real64), intent(out) :: sigma(nlev), sigma_half(0:nlev)
    real(real64) :: x
    integer :: k
    do k = 0, nlev
      x = real(k, real64) / nlev
      sigma_half(k) = 0.5_real64 * (x + x * x * (3.0_real64 - 2.0_real64 * x))
    end do
    sigma_half(0) = 0.0_real64
    sigma_half(nlev) = 1.0_real64
    sigma = 0.5_real64 * (sigma_half(0:nlev-1) + sigma_half(1:nlev))
  end subroutine stretched_sigma

  subroutine random_columns(ncol, nlev, sigma, seed, t, q, ps, solin, shflx, lhflx, tropical_fraction)
    !! Random realistic columns: a surface temperature (tropical 295-303 K or
    !! midlatitude 268-290 K), a lapse rate of 5.5-7.5 K/km up to a 195-225 K
    !! tropopause, small level noise, relative humidity decreasing with height
    !! (some layers up to 105 % to exercise condensation), dry stratosphere;
    !! insolation 0-1360 W/m2 (a fifth at night), plausible surface fluxes.
    integer, intent(in) :: ncol, nlev
    real(real64), intent(in) :: sigma(nlev)
    integer(int64), intent(in) :: seed
    real(real64), intent(out) :: t(nlev, ncol), q(nlev, ncol), ps(ncol)
    real(real64), intent(out) :: solin(ncol), shflx(ncol), lhflx(ncol)
    real(real64), intent(in) :: tropical_fraction
    real(real64) :: u(4), ts, t_trop, exponent, rh_surface, rh_decay, rh, p
    integer :: i, k

    do i = 1, ncol
      u = random_uniform4(seed, 0_int64, i, 0)
      if (u(1) < tropical_fraction) then
        ts = 295.0_real64 + 8.0_real64 * u(2)
        t_trop = 193.0_real64 + 15.0_real64 * u(3)
      else
        ts = 268.0_real64 + 22.0_real64 * u(2)
        t_trop = 208.0_real64 + 17.0_real64 * u(3)
      end if
      exponent = (5.5e-3_real64 + 2.0e-3_real64 * u(4)) * 287.04_real64 / gravity
      u = random_uniform4(seed, 0_int64, i, 1)
      ps(i) = 97000.0_real64 + 6000.0_real64 * u(1)
      rh_surface = 0.6_real64 + 0.35_real64 * u(2)
      rh_decay = 0.5_real64 + 1.5_real64 * u(3)
      solin(i) = merge(0.0_real64, 1360.0_real64 * u(4), u(4) < 0.2_real64)
      u = random_uniform4(seed, 0_int64, i, 2)
      shflx(i) = -5.0_real64 + 45.0_real64 * u(1)
      lhflx(i) = 250.0_real64 * u(2)
      do k = 1, nlev
        u = random_uniform4(seed, 1_int64, i, k)
        p = sigma(k) * ps(i)
        t(k, i) = max(t_trop, ts * sigma(k)**exponent) + (u(1) - 0.5_real64)
        rh = rh_surface * sigma(k)**rh_decay
        if (u(2) < 0.08_real64) rh = 0.9_real64 + 0.15_real64 * u(3)     ! occasional (super)saturated layer
        q(k, i) = rh * saturation_humidity(t(k, i), p)
        if (t(k, i) <= t_trop + 0.5_real64) q(k, i) = min(q(k, i), 3.0e-6_real64)
      end do
    end do
  end subroutine random_columns

  pure function column_mass(nlev, ps, sigma_half) result(mass)
    !! dp/g of each layer [kg m-2].
    integer, intent(in) :: nlev
    real(real64), intent(in) :: ps, sigma_half(0:nlev)
    real(real64) :: mass(nlev)
    mass = (sigma_half(1:nlev) - sigma_half(0:nlev-1)) * ps / gravity
  end function column_mass

  pure function water_residual(nlev, mass, dqdt, precip) result(rel)
    !! |-sum(dq/dt dp/g) - P| relative to the sum of the budget's magnitudes.
    integer, intent(in) :: nlev
    real(real64), intent(in) :: mass(nlev), dqdt(nlev), precip
    real(real64) :: rel, scale
    scale = sum(abs(dqdt) * mass) + abs(precip)
    rel = abs(-sum(dqdt * mass) - precip) / max(scale, tiny(1.0_real64))
  end function water_residual

  pure function energy_residual(nlev, mass, dtdt, precip, fsnt, fsns, flnt, flns) result(rel)
    !! |sum(cp dT/dt dp/g) - (L P + FSNT - FSNS - FLNT + FLNS)| relative to the
    !! sum of the budget's magnitudes.
    integer, intent(in) :: nlev
    real(real64), intent(in) :: mass(nlev), dtdt(nlev), precip, fsnt, fsns, flnt, flns
    real(real64) :: rel, scale
    scale = sum(abs(cp * dtdt) * mass) + latent_heat_vap * abs(precip) + &
            abs(fsnt) + abs(fsns) + abs(flnt) + abs(flns)
    rel = abs(sum(cp * dtdt * mass) - (latent_heat_vap * precip + fsnt - fsns - flnt + flns)) / &
          max(scale, tiny(1.0_real64))
  end function energy_residual

end module physics_test_support
