module radiation
  !! Semi-gray two-stream radiation with water vapour and clouds, for one
  !! (sub)column. Fluxes live on half levels 0 (top) .. nlev (surface).
  !!
  !! Longwave (gray, Byrne & O'Gorman 2013, J. Climate 26, as in Isca's
  !! two_stream_gray_rad): layer optical depth (lw_tau_dry + lw_tau_vapour q)
  !! dp/p0; clouds multiply the layer transmissivity by 1 - f (1 - exp(-k W)),
  !! f cloud fraction, W in-cloud water path, k lw_cloud_absorption (random
  !! overlap). Each layer emits sigma T^4 (1 - transmissivity) up and down; the
  !! surface emits sigma T_skin^4 (emissivity one). Optionally a window band
  !! holds the fraction lw_window of sigma T^4 (at every level and the surface),
  !! with only a water-vapour continuum, lw_window_tau_vapour q dp/p0, and the
  !! clouds (as in the two-band semi-gray scheme of Geen et al. 2016, JAS 73);
  !! the gray band holds the rest.
  !!
  !! Shortwave: a direct beam with slant-path factor m(mu0) = 35 / sqrt(1224
  !! mu0^2 + 1) (Lacis & Hansen 1974), mu0 = solin / S0. Absorption: a dry
  !! part with optical depth sw_tau_dry dp/p0 (stands in for ozone and oxygen),
  !! and water vapour in the strong-line (square-root) limit, a slant optical
  !! depth sw_tau_vapour sqrt(y) for the slant water path y [kg m-2] from the
  !! top, so the first kilograms absorb most and the moist lower troposphere
  !! is not over-heated. Clouds reflect the fraction f beta m tau_c / (1 + beta
  !! m tau_c) at the top of their layer, tau_c = 3 W / (2 rho_w r_e). The
  !! surface reflects surface_albedo. Reflected light goes up as a diffuse
  !! beam (path 1.66 times the vertical one, continuing the downward path) that
  !! is absorbed but not reflected again.
  !!
  !! Heating: cp dp/g dT/dt = -(F_net_up(k-1) - F_net_up(k)) per layer, so the
  !! column heating equals FSNT - FSNS - FLNT + FLNS to rounding.
  use iso_fortran_env, only: real64
  use gcm_constants, only: cp, stefan_boltzmann, rho_water
  use physics_configuration, only: physics_config
  implicit none
  private
  public :: gray_radiation

  real(real64), parameter :: diffusivity_factor = 1.66_real64

contains

  pure subroutine gray_radiation(config, nlev, solin, t_skin, mass, dp_over_p0, t, q, &
                                 cloud_fraction, cloud_water, heating, fsnt, fsns, flnt, flns)
    type(physics_config), intent(in) :: config
    integer, intent(in) :: nlev
    real(real64), intent(in) :: solin                 !! TOA insolation [W m-2]
    real(real64), intent(in) :: t_skin                !! surface radiating temperature [K]
    real(real64), intent(in) :: mass(nlev)            !! dp / g [kg m-2]
    real(real64), intent(in) :: dp_over_p0(nlev)      !! dp / p0
    real(real64), intent(in) :: t(nlev), q(nlev)      !! [K], [kg kg-1]
    real(real64), intent(in) :: cloud_fraction(nlev)  !! [0, 1]
    real(real64), intent(in) :: cloud_water(nlev)     !! in-cloud condensate [kg kg-1]
    real(real64), intent(out) :: heating(nlev)        !! radiative heating [K s-1]
    real(real64), intent(out) :: fsnt   !! net downward shortwave at the top [W m-2]
    real(real64), intent(out) :: fsns   !! net downward shortwave at the surface [W m-2]
    real(real64), intent(out) :: flnt   !! net upward longwave at the top (OLR) [W m-2]
    real(real64), intent(out) :: flns   !! net upward longwave at the surface [W m-2]

    real(real64) :: trans(nlev), source(nlev), up(0:nlev), down(0:nlev), net_up(0:nlev)
    real(real64) :: reflect(nlev), trans_up(nlev), reflected(nlev), path(nlev)
    real(real64) :: mu0, slant, tau_cloud, tau_vapour_top, tau_vapour_bottom, y_top, y_bottom
    real(real64) :: y_up_bottom, y_up_top, vapour_path(nlev)
    real(real64) :: band_up(0:nlev), band_down(0:nlev), fraction
    integer :: k, band

    path = cloud_water * mass          ! in-cloud water path [kg m-2]

    ! ---- longwave: the gray band (1 - lw_window of sigma T^4) and the window band ----
    up = 0.0_real64
    down = 0.0_real64
    do band = 1, 2
      if (band == 1) then
        fraction = 1.0_real64 - config%lw_window
      else
        fraction = config%lw_window
        if (fraction <= 0) exit
      end if
      do k = 1, nlev
        if (band == 1) then
          trans(k) = exp(-(config%lw_tau_dry + config%lw_tau_vapour * q(k)) * dp_over_p0(k))
        else
          trans(k) = exp(-config%lw_window_tau_vapour * q(k) * dp_over_p0(k))
        end if
        if (cloud_fraction(k) > 0) &
          trans(k) = trans(k) * (1.0_real64 - cloud_fraction(k) * (1.0_real64 - exp(-config%lw_cloud_absorption * path(k))))
        source(k) = fraction * stefan_boltzmann * t(k)**4 * (1.0_real64 - trans(k))
      end do
      band_down(0) = 0.0_real64
      do k = 1, nlev
        band_down(k) = band_down(k-1) * trans(k) + source(k)
      end do
      band_up(nlev) = fraction * stefan_boltzmann * t_skin**4
      do k = nlev, 1, -1
        band_up(k-1) = band_up(k) * trans(k) + source(k)
      end do
      up = up + band_up
      down = down + band_down
    end do
    net_up = up - down
    flnt = up(0)                  ! no longwave comes down through the top
    flns = up(nlev) - down(nlev)

    ! ---- shortwave (net_up reused as net downward flux) ----
    heating = (net_up(1:nlev) - net_up(0:nlev-1)) / (cp * mass)
    if (solin > 0) then
      mu0 = min(1.0_real64, solin / config%solar_constant)
      slant = 35.0_real64 / sqrt(1224.0_real64 * mu0 * mu0 + 1.0_real64)
      vapour_path = q * mass
      down(0) = solin
      y_bottom = 0.0_real64
      tau_vapour_bottom = 0.0_real64
      do k = 1, nlev
        if (cloud_fraction(k) > 0) then
          tau_cloud = slant * 1.5_real64 * path(k) / (rho_water * config%cloud_effective_radius)
          reflect(k) = cloud_fraction(k) * config%cloud_backscatter * tau_cloud / &
                       (1.0_real64 + config%cloud_backscatter * tau_cloud)
        else
          reflect(k) = 0.0_real64
        end if
        reflected(k) = down(k-1) * reflect(k)
        y_top = y_bottom
        tau_vapour_top = tau_vapour_bottom
        y_bottom = y_top + slant * vapour_path(k)
        tau_vapour_bottom = config%sw_tau_vapour * sqrt(y_bottom)
        down(k) = (down(k-1) - reflected(k)) * &
                  exp(-slant * config%sw_tau_dry * dp_over_p0(k) - (tau_vapour_bottom - tau_vapour_top))
      end do
      ! The upward beam continues the path: y grows by 1.66 times the vertical path on the way up.
      y_up_top = y_bottom
      do k = nlev, 1, -1
        y_up_bottom = y_up_top
        y_up_top = y_up_bottom + diffusivity_factor * vapour_path(k)
        trans_up(k) = exp(-diffusivity_factor * config%sw_tau_dry * dp_over_p0(k) &
                          - config%sw_tau_vapour * (sqrt(y_up_top) - sqrt(y_up_bottom)))
      end do
      up(nlev) = config%surface_albedo * down(nlev)
      do k = nlev, 1, -1
        up(k-1) = up(k) * trans_up(k) + reflected(k)
      end do
      net_up = down - up                ! net downward shortwave
      fsnt = net_up(0)
      fsns = net_up(nlev)
      heating = heating + (net_up(0:nlev-1) - net_up(1:nlev)) / (cp * mass)
    else
      fsnt = 0.0_real64
      fsns = 0.0_real64
    end if
  end subroutine gray_radiation

end module radiation
