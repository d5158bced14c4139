module gcm_initial_conditions
  !! Initial states for tests and benchmarks, set through `model_set_grid`;
  !! each starts a new run (step counter 0, forward first step).
  use iso_fortran_env, only: int64
  use gcm_constants, only: wp, pi, earth_radius, earth_omega, rd, gravity, p_reference
  use gcm_status, only: gcm_ok
  use gcm_model, only: climate_model, model_set_grid, model_set_surface_geopotential
  implicit none
  private
  public :: set_rest_isothermal, set_held_suarez_start, set_rossby_haurwitz, set_jablonowski_williamson

contains

  subroutine set_rest_isothermal(model, t0, ps0, status, message)
    !! At rest, isothermal t0 [K], uniform surface pressure ps0 [Pa], dry.
    type(climate_model), intent(inout) :: model
    real(wp), intent(in) :: t0, ps0
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), allocatable :: zero(:, :, :), t(:, :, :), ps(:, :)
    associate (c => model%config)
      allocate (zero(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat))
    end associate
    zero = 0.0_wp
    t = t0
    ps = ps0
    call model_set_grid(model, zero, zero, t, zero, ps, status, message)
    model%state%step = 0
  end subroutine set_rest_isothermal

  subroutine set_held_suarez_start(model, seed, status, message)
    !! Held-Suarez spin-up start: at rest, isothermal 285 K, ps = 1000 hPa,
    !! plus temperature noise of +-0.1 K drawn from a Park-Miller sequence
    !! seeded with `seed` (deterministic, independent of the platform's RNG)
    !! to break the zonal symmetry.
    type(climate_model), intent(inout) :: model
    integer, intent(in) :: seed
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), allocatable :: zero(:, :, :), t(:, :, :), ps(:, :)
    integer(int64) :: x
    integer :: i, j, k
    associate (c => model%config)
      allocate (zero(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat))
      x = 1_int64 + modulo(int(seed, int64), 2147483646_int64)
      do j = 1, c%nlat
        do i = 1, c%nlon
          do k = 1, c%nlev
            x = modulo(16807_int64 * x, 2147483647_int64)
            t(k, i, j) = 285.0_wp + 0.2_wp * (real(x, wp) / 2147483647.0_wp - 0.5_wp)
          end do
        end do
      end do
    end associate
    zero = 0.0_wp
    ps = p_reference
    call model_set_grid(model, zero, zero, t, zero, ps, status, message)
    model%state%step = 0
  end subroutine set_held_suarez_start

  subroutine set_rossby_haurwitz(model, t0, status, message)
    !! Rossby-Haurwitz wave 4 of Williamson et al. (1992, test 6) in every
    !! layer of an isothermal (t0) atmosphere: omega = K = 7.848e-6 s-1,
    !! R = 4, and ln ps balanced as R t0 ln(ps/p0) = g h - g h0 with the
    !! shallow-water height h (h0 = 8000 m). Dry.
    type(climate_model), intent(inout) :: model
    real(wp), intent(in) :: t0
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), parameter :: w = 7.848e-6_wp, kk = 7.848e-6_wp
    integer, parameter :: r = 4
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
    real(wp) :: a, om, cl, sl, lon, fa, fb, fc, gh
    integer :: i, j
    a = earth_radius
    om = earth_omega
    associate (c => model%config)
      allocate (u(c%nlev, c%nlon, c%nlat), v(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), &
                q(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat))
      do j = 1, c%nlat
        cl = model%tr%grid%coslat(j)
        sl = model%tr%grid%mu(j)
        fa = 0.5_wp * w * (2.0_wp * om + w) * cl**2 + 0.25_wp * kk**2 * cl**(2 * r) &
             * ((r + 1) * cl**2 + (2 * r * r - r - 2) - 2 * r * r / cl**2)
        fb = 2.0_wp * (om + w) * kk / real((r + 1) * (r + 2), wp) * cl**r &
             * ((r * r + 2 * r + 2) - (r + 1)**2 * cl**2)
        fc = 0.25_wp * kk**2 * cl**(2 * r) * ((r + 1) * cl**2 - (r + 2))
        do i = 1, c%nlon
          lon = model%tr%grid%lon(i)
          u(:, i, j) = a * w * cl + a * kk * cl**(r - 1) * (r * sl**2 - cl**2) * cos(r * lon)
          v(:, i, j) = -a * kk * r * cl**(r - 1) * sl * sin(r * lon)
          gh = a * a * (fa + fb * cos(r * lon) + fc * cos(2 * r * lon))
          ps(i, j) = p_reference * exp(gh / (rd * t0))
        end do
      end do
    end associate
    t = t0
    q = 0.0_wp
    call model_set_grid(model, u, v, t, q, ps, status, message)
    model%state%step = 0
  end subroutine set_rossby_haurwitz

  subroutine set_jablonowski_williamson(model, status, message)
    !! The steady zonal state of Jablonowski & Williamson (2006, QJRMS 132):
    !! a baroclinic jet u = u0 cos^(3/2)(eta_v) sin^2(2 lat), eta_v =
    !! (eta - eta0) pi/2, in hydrostatic and gradient-wind balance over the
    !! surface geopotential that makes ps = 1000 hPa uniform; eta = sigma here
    !! (no model top pressure). u0 = 35 m/s, eta0 = 0.252, T0 = 288 K,
    !! Gamma = 0.005 K/m, eta_t = 0.2, dT = 4.8e5 K. No perturbation: the
    !! state should stay as it is. Sets the surface geopotential.
    type(climate_model), intent(inout) :: model
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    real(wp), parameter :: u0 = 35.0_wp, eta0 = 0.252_wp, t0 = 288.0_wp, gamma = 0.005_wp, &
                           eta_t = 0.2_wp, delta_t = 4.8e5_wp
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :), phis(:, :)
    real(wp) :: eta, eta_v, sl, cl, tbar, a, om, fa, fb, cv
    integer :: j, k
    a = earth_radius
    om = earth_omega
    associate (c => model%config)
      allocate (u(c%nlev, c%nlon, c%nlat), v(c%nlev, c%nlon, c%nlat), t(c%nlev, c%nlon, c%nlat), &
                q(c%nlev, c%nlon, c%nlat), ps(c%nlon, c%nlat), phis(c%nlon, c%nlat))
      do j = 1, c%nlat
        sl = model%tr%grid%mu(j)
        cl = model%tr%grid%coslat(j)
        fa = -2.0_wp * sl**6 * (cl**2 + 1.0_wp / 3.0_wp) + 10.0_wp / 63.0_wp
        fb = 1.6_wp * cl**3 * (sl**2 + 2.0_wp / 3.0_wp) - 0.25_wp * pi
        do k = 1, c%nlev
          eta = model%vert%full(k)
          eta_v = (eta - eta0) * 0.5_wp * pi
          cv = cos(eta_v)
          u(k, :, j) = u0 * cv**1.5_wp * (2.0_wp * sl * cl)**2
          tbar = t0 * eta**(rd * gamma / gravity)
          if (eta < eta_t) tbar = tbar + delta_t * (eta_t - eta)**5
          t(k, :, j) = tbar + 0.75_wp * eta * pi * u0 / rd * sin(eta_v) * sqrt(cv) &
                       * (fa * 2.0_wp * u0 * cv**1.5_wp + fb * a * om)
        end do
        cv = cos((1.0_wp - eta0) * 0.5_wp * pi)
        phis(:, j) = u0 * cv**1.5_wp * (fa * u0 * cv**1.5_wp + fb * a * om)
      end do
    end associate
    v = 0.0_wp
    q = 0.0_wp
    ps = p_reference
    call model_set_surface_geopotential(model, phis, status, message)
    if (status /= gcm_ok) return
    call model_set_grid(model, u, v, t, q, ps, status, message)
    model%state%step = 0
  end subroutine set_jablonowski_williamson

end module gcm_initial_conditions
