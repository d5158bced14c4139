module gcm_config
  !! Configuration of the dynamical core: resolution, levels, time step and
  !! the numerical parameters, as one value passed to `gcm_init`.
  !!
  !! Every component has a documented default; `gcm_config_resolve` fills the
  !! values that follow from others (grid size from the truncation, equally
  !! spaced sigma levels) and checks the result.
  use gcm_constants, only: wp, pi, earth_radius
  use gcm_status, only: gcm_ok, gcm_err_config
  implicit none
  private
  public :: model_config, gcm_config_resolve, default_grid_size, longest_time_step, diffusion_time_for

  real(wp), parameter :: diffusion_wind = 15.0_wp
    !! [m s-1]: the automatic hyperdiffusion damps the smallest resolved scale
    !! on the time an eddy wind of this speed takes to cross it
  real(wp), parameter :: fastest_wind = 100.0_wp
    !! [m s-1]: a time step must let advection at this speed cross no more than
    !! the smallest resolved length a/M in one step (longest_time_step)

  type :: model_config
    integer :: truncation = 21
      !! triangular truncation T_M (highest total and zonal wavenumber)
    integer :: nlon = 0
      !! Gaussian-grid longitudes; 0 = smallest multiple of 4 >= 3M+1 (T21 -> 64)
    integer :: nlat = 0
      !! Gaussian latitudes; 0 = nlon/2 (T21 -> 32)
    integer :: nlev = 10
      !! number of sigma levels (full levels)
    real(wp), allocatable :: sigma_half(:)
      !! nlev+1 half-level sigma values from 0 (top) to 1 (surface), strictly
      !! increasing; unallocated = equally spaced
    real(wp) :: dt = 1800.0_wp
      !! time step [s] (leapfrog: the scheme advances by 2*dt from n-1 to n+1)
    real(wp) :: t_ref = 300.0_wp
      !! isothermal reference temperature of the semi-implicit scheme [K];
      !! must be warmer than most of the atmosphere for stability
    integer :: diffusion_order = 8
      !! hyperdiffusion operator del^order (2, 4, 6 or 8)
    real(wp) :: diffusion_time = 0.0_wp
      !! e-folding time of the hyperdiffusion at total wavenumber M [s];
      !! 0 = automatic: the advective time of the smallest resolved scale,
      !! pi a / (M U) with U = 15 m/s (diffusion_time_for; T21: 0.74 day)
    logical :: diffuse_humidity = .true.
      !! apply the hyperdiffusion to specific humidity too
    real(wp) :: robert_coefficient = 0.05_wp
      !! Robert-Asselin filter strength nu: d = nu (X(n-1) - 2 X(n) + X(n+1))
    real(wp) :: williams_alpha = 0.53_wp
      !! Williams (2009) alpha: X(n) += alpha d, X(n+1) -= (1-alpha) d
    logical :: humidity = .true.
      !! carry specific humidity; false gives a dry model (Held-Suarez) in
      !! which q stays zero and costs no transforms
    logical :: mass_fixer = .true.
      !! restore the global dry-air mass at every step (see gcm_dynamics)
    logical :: humidity_fixer = .true.
      !! fill negative humidity conservatively at every step (see gcm_moisture_fixer)
    real(wp) :: t_min = 150.0_wp       !! crash bound: lowest temperature [K]
    real(wp) :: t_max = 350.0_wp       !! crash bound: highest temperature [K]
    real(wp) :: wind_max = 250.0_wp    !! crash bound: highest wind speed [m s-1]
    real(wp) :: ps_min = 4.0e4_wp      !! crash bound: lowest surface pressure [Pa]
    real(wp) :: ps_max = 1.1e5_wp      !! crash bound: highest surface pressure [Pa]
  end type model_config

contains

  pure subroutine default_grid_size(truncation, nlon, nlat)
    !! Alias-free Gaussian grid for quadratic terms: nlon >= 3M+1, rounded up
    !! to a multiple of 4 (the Fourier transform's symmetry needs it), and
    !! nlat = nlon/2. T10 -> 32x16, T15 -> 48x24, T21 -> 64x32, T42 -> 128x64.
    integer, intent(in) :: truncation
    integer, intent(out) :: nlon, nlat
    nlon = 4 * ((3 * truncation + 1 + 3) / 4)
    nlat = nlon / 2
  end subroutine default_grid_size

  pure real(wp) function diffusion_time_for(truncation)
    !! The automatic e-folding time of the hyperdiffusion at n = M [s]: the
    !! time a 15 m/s eddy wind takes to cross half a wavelength of the
    !! truncation wavenumber, pi a / (M U); ECHAM5's tuned damping times are
    !! reported to follow it from T31 to T159 (Roeckner et al. 2003, MPI
    !! report 349). T21: 0.74 day, T15: 1.03 day, T10: 1.54 day; with 0.1 day
    !! at T21 errors grew half as fast as in SPEEDY (docs/gcm-dynamics.md,
    !! "Error growth").
    integer, intent(in) :: truncation
    diffusion_time_for = pi * earth_radius / (real(truncation, wp) * diffusion_wind)
  end function diffusion_time_for

  pure real(wp) function longest_time_step(truncation)
    !! The longest time step accepted at truncation T_M [s]: a / (M U) with
    !! U = 100 m/s, the explicit advection's CFL limit at the smallest
    !! resolved scale for the fastest jets a host meets (T21: 3034 s,
    !! T10: 6371 s, T42: 1517 s).
    integer, intent(in) :: truncation
    longest_time_step = earth_radius / (real(truncation, wp) * fastest_wind)
  end function longest_time_step

  subroutine gcm_config_resolve(config, status, message)
    !! Fill derived defaults in place and check every value.
    type(model_config), intent(inout) :: config
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    integer :: nlon, nlat, k
    character(len=64) :: buf
    character(len=256) :: line

    status = gcm_err_config
    message = ''
    if (config%truncation < 1 .or. config%truncation > 341) then
      write (buf, '(i0)') config%truncation
      message = 'config: truncation must be in 1..341, got '//trim(buf)
      return
    end if
    call default_grid_size(config%truncation, nlon, nlat)
    if (config%nlon == 0) config%nlon = nlon
    if (config%nlat == 0) config%nlat = nlat
    if (mod(config%nlon, 4) /= 0 .or. config%nlon <= 2 * config%truncation) then
      write (buf, '(i0,a,i0)') config%nlon, ' for T', config%truncation
      message = 'config: nlon must be a multiple of 4 and > 2*truncation, got '//trim(buf)
      return
    end if
    if (mod(config%nlat, 2) /= 0 .or. config%nlat <= config%truncation + 1) then
      write (buf, '(i0,a,i0)') config%nlat, ' for T', config%truncation
      message = 'config: nlat must be even and > truncation+1, got '//trim(buf)
      return
    end if
    if (config%nlev < 2) then
      message = 'config: nlev must be at least 2'
      return
    end if
    if (.not. allocated(config%sigma_half)) then
      allocate (config%sigma_half(config%nlev + 1))
      do k = 0, config%nlev
        config%sigma_half(k + 1) = real(k, wp) / real(config%nlev, wp)
      end do
    end if
    if (size(config%sigma_half) /= config%nlev + 1) then
      message = 'config: sigma_half must have nlev+1 values'
      return
    end if
    if (config%sigma_half(1) /= 0.0_wp .or. config%sigma_half(config%nlev + 1) /= 1.0_wp) then
      message = 'config: sigma_half must start at 0 and end at 1'
      return
    end if
    if (any(config%sigma_half(2:) <= config%sigma_half(:config%nlev))) then
      message = 'config: sigma_half must be strictly increasing'
      return
    end if
    if (.not. (config%dt > 0.0_wp)) then
      message = 'config: dt must be positive'
      return
    end if
    if (config%dt > longest_time_step(config%truncation)) then
      write (line, '(a,i0,a,i0,a,i0,a)') 'config: dt = ', nint(config%dt), ' s is too long for T', &
        config%truncation, ' (at most ', int(longest_time_step(config%truncation)), &
        ' s: advection at 100 m/s must not cross the smallest resolved scale a/M within a step)'
      message = trim(line)
      return
    end if
    if (.not. (config%t_ref > 0.0_wp)) then
      message = 'config: t_ref must be positive'
      return
    end if
    if (config%diffusion_order < 2 .or. config%diffusion_order > 16 .or. &
        mod(config%diffusion_order, 2) /= 0) then
      message = 'config: diffusion_order must be even, between 2 and 16'
      return
    end if
    if (.not. (config%diffusion_time >= 0.0_wp)) then
      message = 'config: diffusion_time must be positive (or 0: automatic)'
      return
    end if
    if (config%diffusion_time == 0.0_wp) config%diffusion_time = diffusion_time_for(config%truncation)
    if (.not. (config%robert_coefficient >= 0.0_wp .and. config%robert_coefficient < 0.5_wp)) then
      message = 'config: robert_coefficient must be in [0, 0.5)'
      return
    end if
    if (.not. (config%williams_alpha >= 0.5_wp .and. config%williams_alpha <= 1.0_wp)) then
      message = 'config: williams_alpha must be in [0.5, 1]'
      return
    end if
    if (.not. (config%t_min < config%t_max .and. config%ps_min < config%ps_max &
               .and. config%wind_max > 0.0_wp)) then
      message = 'config: crash bounds must satisfy t_min < t_max, ps_min < ps_max, wind_max > 0'
      return
    end if
    status = gcm_ok
  end subroutine gcm_config_resolve

end module gcm_config
