module physics_configuration
  !! All tunable settings of the column physics, in one derived type.
  !!
  !! Every field has a documented default; a host builds a `physics_config`,
  !! overrides what it needs and calls `physics_config_validate` once. The
  !! physics never keeps state between calls: the configuration, the input
  !! state and the (seed, step, column id) key of the random numbers fully
  !! determine the result.
  use iso_fortran_env, only: real64
  use gcm_status, only: gcm_ok, gcm_err_config
  implicit none
  private
  public :: physics_config, physics_config_validate, physics_config_read, physics_config_write

  type :: physics_config
    ! --- the toy superparameterization ------------------------------------
    integer :: n_subcolumns = 12
      !! subcolumns per GCM column (embedded "cloud model" members)
    integer :: n_substeps = 4
      !! sub-steps of each subcolumn per GCM time step
    integer :: radiation_interval = 2
      !! radiation is recomputed every this many sub-steps (1 = every sub-step);
      !! the heating rates and fluxes are held in between

    ! --- stochastic perturbations of each subcolumn ------------------------
    real(real64) :: pert_sigma_top = 0.8_real64
      !! temperature/humidity perturbations act below this sigma, growing linearly to the surface
    real(real64) :: pert_excess_coef = 8.5_real64
      !! b of the Holtslag & Boville (1993) thermal excess b * flux / w_m
    real(real64) :: pert_velocity_scale = 1.0_real64
      !! w_m of the thermal excess [m s-1]
    real(real64) :: pert_t_min = 0.1_real64
      !! minimum standard deviation of the temperature perturbation [K]
    real(real64) :: pert_q_min_rel = 0.005_real64
      !! minimum standard deviation of the humidity perturbation, relative to q
    real(real64) :: pert_truncation = 3.0_real64
      !! Gaussian draws are truncated at this many standard deviations

    ! --- convection: simplified Betts-Miller (Frierson 2007) ---------------
    real(real64) :: sbm_tau = 7200.0_real64
      !! relaxation time scale [s]
    real(real64) :: sbm_rh = 0.7_real64
      !! mean reference relative humidity
    real(real64) :: sbm_rh_spread = 0.1_real64
      !! full width of the uniform per-subcolumn spread of the reference RH
    real(real64) :: sbm_cape_min = 0.0_real64
      !! convection triggers when CAPE exceeds this [J kg-1]
    real(real64) :: sbm_deep_min_depth = 2.0e4_real64
      !! convection precipitates (deep) only if its cloud, from the lifting condensation level to its
      !! top, is at least this deep [Pa]; shallower convection only redistributes (Tiedtke 1989: 200 hPa)
    real(real64) :: sbm_deep_rh_min = 0.0_real64
      !! deep convection also needs the saturation fraction sum(q dp) / sum(q_s dp) of its cloud layer
      !! (LCL to top) to reach this (0: off)
    real(real64) :: sbm_deep_entrainment = 0.0_real64
      !! deep convection also needs a parcel entraining at this fractional rate [m-1] above its LCL to stay
      !! buoyant up to sbm_deep_min_depth above the LCL (0: off; CAM4's dilute parcel uses 1e-3)

    ! --- large-scale condensation ------------------------------------------
    real(real64) :: cond_rh_max = 1.0_real64
      !! largest condensation threshold (relative humidity)
    real(real64) :: cond_rh_spread = 0.1_real64
      !! per-subcolumn threshold is uniform in [cond_rh_max - spread, cond_rh_max]
    real(real64) :: reevap_coef = 2.0e-6_real64
      !! k_e of the rain evaporation rate k_e (1 - RH/rh_crit) sqrt(rain flux) [(kg m-2 s-1)^-1/2 s-1]
    real(real64) :: conv_reevap_coef = 0.0_real64
      !! k_e of the same evaporation for convective rain below the levels where it forms
      !! (CAM3: 3e-6 at T42/T31; 0 = convective rain never evaporates)

    ! --- diagnostic clouds ---------------------------------------------------
    real(real64) :: cloud_rh_width = 0.05_real64
      !! stratiform cloud appears this far (in RH) below the condensation threshold (0.05: onset at
      !! RH 0.85-0.95, on average CAM3's low-cloud threshold RHmin = 0.90 at T42)
    real(real64) :: cloud_water_ratio = 0.01_real64
      !! in-cloud condensate as a fraction of q_sat(T)
    real(real64) :: cloud_water_max = 5.0e-4_real64
      !! upper bound of in-cloud condensate [kg kg-1]
    real(real64) :: conv_cloud_a = 0.25_real64
      !! convective cloud cover a + b ln(P [mm day-1]) (Slingo 1987 form)
    real(real64) :: conv_cloud_b = 0.125_real64
    real(real64) :: conv_cloud_max = 0.8_real64

    ! --- radiation -------------------------------------------------------------
    real(real64) :: solar_constant = 1360.0_real64
      !! S0 [W m-2]; the zenith angle is recovered as solin / S0
    real(real64) :: lw_tau_dry = 0.8678_real64
      !! a*mu of dtau = (a mu + b q) dp / p0 (Byrne & O'Gorman 2013)
    real(real64) :: lw_tau_vapour = 1997.9_real64
      !! b of the same form [per unit specific humidity]
    real(real64) :: lw_window = 0.3_real64
      !! fraction of the longwave (of sigma T^4) in a window band that sees only the water-vapour
      !! continuum and clouds; 0 = one gray band
    real(real64) :: lw_window_tau_vapour = 200.0_real64
      !! window-band optical depth per dp / p0 per unit specific humidity (continuum)
    real(real64) :: lw_cloud_absorption = 100.0_real64
      !! cloud longwave mass absorption coefficient [m2 kg-1]
    real(real64) :: sw_tau_dry = 0.05_real64
      !! dry shortwave absorption optical depth per unit dp / p0
    real(real64) :: sw_tau_vapour = 0.025_real64
      !! water-vapour shortwave optical depth per square root of slant water path [(kg m-2)^-1/2]
    real(real64) :: cloud_effective_radius = 1.0e-5_real64
      !! cloud droplet effective radius [m] for the shortwave optical depth 3 W / (2 rho_w r_e)
    real(real64) :: cloud_backscatter = 0.13_real64
      !! beta of the cloud reflectance beta tau / (1 + beta tau) (Lacis & Hansen 1974)
    real(real64) :: surface_albedo = 0.07_real64
      !! ocean shortwave albedo
    real(real64) :: skin_wind_speed = 5.0_real64
      !! wind speed used to recover the skin-air temperature difference from the sensible heat flux [m s-1]

    ! --- sea surface (host side) ----------------------------------------------
    real(real64) :: sst_offset = 0.0_real64
      !! uniform offset of the prescribed QOBS sea-surface temperature [K] (+4: the uniform-warming
      !! aquaplanet experiment, Cess et al. 1990; Medeiros et al. 2015's aqua4K)

    ! --- surface fluxes (host side) -------------------------------------------
    real(real64) :: drag_coefficient = 1.0e-3_real64
      !! bulk momentum exchange coefficient C_D
    real(real64) :: heat_exchange_coefficient = 1.0e-3_real64
      !! bulk heat and moisture exchange coefficient C_H = C_E
    real(real64) :: min_wind_speed = 2.0_real64
      !! lower bound of |V| in the bulk formulas [m s-1]

    ! --- boundary layer (host side) -------------------------------------------
    real(real64) :: pbl_sigma_top = 0.85_real64
      !! diffusion acts on half levels below this sigma
    real(real64) :: pbl_diffusivity = 50.0_real64
      !! eddy diffusivity at the surface, decreasing linearly to zero at pbl_sigma_top [m2 s-1]
    real(real64) :: pbl_entrain_surface = 0.2_real64
      !! A_s: entrainment heat flux at the boundary-layer top per unit surface virtual heat flux
      !! (0.2 is the classic dry-convective ratio; 0 = no surface-driven entrainment)
    real(real64) :: pbl_entrain_cloud = 0.5_real64
      !! A_r: entrainment heat flux per unit cloud-top longwave cooling of a boundary-layer cloud
      !! (Lock et al. 2000; 0 = no cloud-top entrainment)
    real(real64) :: pbl_cloud_top_cooling = 60.0_real64
      !! F_rad: longwave cooling of an overcast boundary-layer top [W m-2]
    real(real64) :: pbl_entrain_min_jump = 1.0_real64
      !! lower bound of the inversion's virtual potential temperature jump in w_e [K]

    ! --- insolation (host side) ------------------------------------------------
    logical :: diurnal_cycle = .true.
      !! .false. gives the daily-mean insolation
    logical :: seasons = .false.
      !! .false. is perpetual equinox
    real(real64) :: obliquity_deg = 23.44_real64
    real(real64) :: year_length_days = 365.25_real64
      !! time zero is the northern spring equinox
    real(real64) :: day_length = 86400.0_real64
      !! length of the solar day [s]; time zero is midnight at longitude 0
  end type physics_config

contains

  subroutine physics_config_validate(config, stat, msg)
    !! Check every setting; stat = gcm_ok or gcm_err_config with a
    !! one-line message naming the first bad setting.
    type(physics_config), intent(in) :: config
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg

    stat = gcm_err_config
    if (config%n_subcolumns < 1) then
      msg = 'physics_config: n_subcolumns must be >= 1'
    else if (config%n_substeps < 1) then
      msg = 'physics_config: n_substeps must be >= 1'
    else if (config%radiation_interval < 1) then
      msg = 'physics_config: radiation_interval must be >= 1'
    else if (.not. in_open_range(config%pert_sigma_top, 0.0_real64, 1.0_real64)) then
      msg = 'physics_config: pert_sigma_top must lie in (0, 1)'
    else if (config%pert_excess_coef < 0 .or. config%pert_t_min < 0 .or. config%pert_q_min_rel < 0) then
      msg = 'physics_config: perturbation amplitudes must be >= 0'
    else if (config%pert_q_min_rel > 0.1_real64) then
      msg = 'physics_config: pert_q_min_rel must be <= 0.1 (humidity must stay positive)'
    else if (config%pert_velocity_scale <= 0) then
      msg = 'physics_config: pert_velocity_scale must be > 0'
    else if (config%pert_truncation <= 0) then
      msg = 'physics_config: pert_truncation must be > 0'
    else if (config%sbm_tau <= 0) then
      msg = 'physics_config: sbm_tau must be > 0'
    else if (config%sbm_deep_min_depth < 0) then
      msg = 'physics_config: sbm_deep_min_depth must be >= 0'
    else if (config%sbm_deep_rh_min < 0 .or. config%sbm_deep_rh_min > 1) then
      msg = 'physics_config: sbm_deep_rh_min must lie in [0, 1]'
    else if (config%sbm_deep_entrainment < 0 .or. config%sbm_deep_entrainment > 0.01_real64) then
      msg = 'physics_config: sbm_deep_entrainment must lie in [0, 0.01] m-1'
    else if (config%sbm_rh - 0.5_real64 * config%sbm_rh_spread < 0 .or. &
             config%sbm_rh + 0.5_real64 * config%sbm_rh_spread > 1 .or. config%sbm_rh_spread < 0) then
      msg = 'physics_config: sbm_rh +- sbm_rh_spread/2 must lie in [0, 1]'
    else if (config%cond_rh_max > 1 .or. config%cond_rh_spread < 0 .or. &
             config%cond_rh_max - config%cond_rh_spread - config%cloud_rh_width <= 0) then
      msg = 'physics_config: need 0 < cond_rh_max - cond_rh_spread - cloud_rh_width and cond_rh_max <= 1'
    else if (config%reevap_coef < 0 .or. config%conv_reevap_coef < 0) then
      msg = 'physics_config: reevap_coef and conv_reevap_coef must be >= 0'
    else if (config%cloud_rh_width <= 0) then
      msg = 'physics_config: cloud_rh_width must be > 0'
    else if (config%cloud_water_ratio < 0 .or. config%cloud_water_max < 0) then
      msg = 'physics_config: cloud water settings must be >= 0'
    else if (config%conv_cloud_max < 0 .or. config%conv_cloud_max > 1) then
      msg = 'physics_config: conv_cloud_max must lie in [0, 1]'
    else if (config%solar_constant <= 0) then
      msg = 'physics_config: solar_constant must be > 0'
    else if (config%lw_tau_dry < 0 .or. config%lw_tau_vapour < 0 .or. config%lw_cloud_absorption < 0 .or. &
             config%sw_tau_dry < 0 .or. config%sw_tau_vapour < 0 .or. config%cloud_backscatter < 0) then
      msg = 'physics_config: optical coefficients must be >= 0'
    else if (config%lw_window < 0 .or. config%lw_window >= 1 .or. config%lw_window_tau_vapour < 0) then
      msg = 'physics_config: need 0 <= lw_window < 1 and lw_window_tau_vapour >= 0'
    else if (config%cloud_effective_radius <= 0) then
      msg = 'physics_config: cloud_effective_radius must be > 0'
    else if (config%surface_albedo < 0 .or. config%surface_albedo > 1) then
      msg = 'physics_config: surface_albedo must lie in [0, 1]'
    else if (config%skin_wind_speed <= 0) then
      msg = 'physics_config: skin_wind_speed must be > 0'
    else if (config%drag_coefficient < 0 .or. config%heat_exchange_coefficient <= 0) then
      msg = 'physics_config: need drag_coefficient >= 0 and heat_exchange_coefficient > 0'
    else if (config%min_wind_speed <= 0) then
      msg = 'physics_config: min_wind_speed must be > 0'
    else if (.not. in_open_range(config%pbl_sigma_top, 0.0_real64, 1.0_real64)) then
      msg = 'physics_config: pbl_sigma_top must lie in (0, 1)'
    else if (config%pbl_diffusivity < 0) then
      msg = 'physics_config: pbl_diffusivity must be >= 0'
    else if (config%pbl_entrain_surface < 0 .or. config%pbl_entrain_cloud < 0 .or. &
             config%pbl_cloud_top_cooling < 0) then
      msg = 'physics_config: pbl_entrain_surface, pbl_entrain_cloud and pbl_cloud_top_cooling must be >= 0'
    else if (config%pbl_entrain_min_jump <= 0) then
      msg = 'physics_config: pbl_entrain_min_jump must be > 0'
    else if (config%obliquity_deg < 0 .or. config%obliquity_deg > 90) then
      msg = 'physics_config: obliquity_deg must lie in [0, 90]'
    else if (.not. (abs(config%sst_offset) <= 20.0_real64)) then
      msg = 'physics_config: sst_offset must lie in [-20, 20] K'
    else if (config%year_length_days <= 0 .or. config%day_length <= 0) then
      msg = 'physics_config: year_length_days and day_length must be > 0'
    else
      stat = gcm_ok
      msg = ''
    end if
  end subroutine physics_config_validate

  subroutine physics_config_read(config, text, stat, msg)
    !! Change settings from Fortran namelist text, e.g.
    !! `&physics_settings physics%n_subcolumns = 8, physics%sbm_tau = 3600.0 /`
    !! (group `physics_settings`, one object `physics` of type physics_config:
    !! every component can be set by name). Settings not named keep their
    !! value in `config`. The result is validated; on any error `config` is
    !! unchanged and msg names the problem.
    type(physics_config), intent(inout) :: config
    character(len=*), intent(in) :: text
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    type(physics_config) :: physics
    character(len=256) :: iom
    integer :: ios
    namelist /physics_settings/ physics

    physics = config
    if (len_trim(text) > 0) then
      read(text, nml=physics_settings, iostat=ios, iomsg=iom)
      if (ios /= 0) then
        stat = gcm_err_config
        msg = 'physics settings: ' // trim(iom)
        return
      end if
    end if
    call physics_config_validate(physics, stat, msg)
    if (stat == gcm_ok) config = physics
  end subroutine physics_config_read

  subroutine physics_config_write(config, lines, stat)
    !! The settings as namelist text (group `physics_settings`, object
    !! `physics`), one record per line of `lines` (blank-padded); stat /= 0
    !! if `lines` is too small.
    type(physics_config), intent(in) :: config
    character(len=*), intent(out) :: lines(:)
    integer, intent(out) :: stat
    type(physics_config) :: physics
    namelist /physics_settings/ physics

    physics = config
    lines = ''
    write(lines, nml=physics_settings, iostat=stat)
  end subroutine physics_config_write

  pure logical function in_open_range(x, lo, hi)
    real(real64), intent(in) :: x, lo, hi
    in_open_range = x > lo .and. x < hi
  end function in_open_range

end module physics_configuration
