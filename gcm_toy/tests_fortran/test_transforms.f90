program test_transforms
  !! Spectral transform accuracy: quadrature, round trips, Laplacian
  !! eigenvalues, winds from vorticity/divergence and back.
  use gcm_constants, only: wp, pi, earth_radius
  use gcm_spectral_transform, only: spectral_transform, transform_init, spec_to_grid, grid_to_spec, &
                                    uv_grid, uv_spec_ext, spec_ext_to_grid, vector_divcurl, &
                                    dmu_spec_ext, dlambda
  use gcm_legendre, only: spec_index
  use test_support, only: test_counter, check, report
  implicit none
  type(test_counter) :: tc
  integer :: trunc(3) = [10, 15, 21]
  integer :: it

  do it = 1, size(trunc)
    call run_for(trunc(it))
  end do
  call report(tc)

contains

  subroutine random_spec(tr, spec, seed)
    !! Deterministic pseudo-random band-limited coefficients (m = 0 real).
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(out) :: spec(:, :)
    integer, intent(in) :: seed
    integer :: k, l
    real(wp) :: x, y
    do k = 1, tr%nspec
      do l = 1, size(spec, 1)
        x = sin(12.9898_wp * (k + 7 * l + seed)) * 43758.5453_wp
        y = sin(78.233_wp * (k + 3 * l + seed)) * 12345.6789_wp
        x = x - floor(x) - 0.5_wp
        y = y - floor(y) - 0.5_wp
        if (tr%m_of(k) == 0) y = 0.0_wp
        spec(l, k) = cmplx(x, y, wp)
      end do
    end do
  end subroutine random_spec

  subroutine run_for(m)
    integer, intent(in) :: m
    type(spectral_transform) :: tr
    complex(wp), allocatable :: s1(:, :), s2(:, :), vor(:, :), div(:, :), d2(:, :), c2(:, :), h(:, :)
    complex(wp), allocatable :: uext(:, :), vext(:, :), lam(:, :)
    real(wp), allocatable :: g1(:, :, :), g2(:, :, :), u(:, :, :), v(:, :, :), a(:, :, :), b(:, :, :)
    real(wp) :: err, mu, lon, scale, omega_rb
    integer :: i, j, nl, nlon, nlat
    character(len=8) :: tag

    nlon = 4 * ((3 * m + 4) / 4)
    nlat = nlon / 2
    call transform_init(tr, m, nlon, nlat)
    write (tag, '(a,i0)') 'T', m
    nl = 3

    call check(tc, abs(sum(tr%grid%weight) - 2.0_wp) < 1e-14_wp, trim(tag)//' Gaussian weights sum to 2', &
               abs(sum(tr%grid%weight) - 2.0_wp), 1e-14_wp)
    ! quadrature of mu^(2 nlat - 2) is exact
    err = abs(sum(tr%grid%weight * tr%grid%mu**(2 * nlat - 2)) - 2.0_wp / real(2 * nlat - 1, wp))
    call check(tc, err < 1e-14_wp, trim(tag)//' quadrature exact to degree 2 nlat - 1', err, 1e-14_wp)

    allocate (s1(nl, tr%nspec), s2(nl, tr%nspec), g1(nl, nlon, nlat), g2(nl, nlon, nlat))
    call random_spec(tr, s1, 1)
    call spec_to_grid(tr, s1, g1)
    call grid_to_spec(tr, g1, s2)
    err = maxval(abs(s2 - s1))
    call check(tc, err < 1e-12_wp, trim(tag)//' spec -> grid -> spec round trip', err, 1e-12_wp)
    call spec_to_grid(tr, s2, g2)
    err = maxval(abs(g2 - g1)) / maxval(abs(g1))
    call check(tc, err < 1e-12_wp, trim(tag)//' band-limited grid -> spec -> grid', err, 1e-12_wp)

    ! Laplacian eigenvalue: f = cos^2(lat) sin(lat) cos(2 lon) is degree 3
    do i = 1, nlon
      do j = 1, nlat
        mu = tr%grid%mu(j)
        lon = tr%grid%lon(i)
        g1(:, i, j) = (1.0_wp - mu * mu) * mu * cos(2.0_wp * lon)
      end do
    end do
    call grid_to_spec(tr, g1, s1)
    s2 = 0
    s2(:, spec_index(m, 2, 3)) = s1(:, spec_index(m, 2, 3))
    err = maxval(abs(s1 - s2))
    call check(tc, err < 1e-14_wp, trim(tag)//' Y_3^2 has a single coefficient', err, 1e-14_wp)
    do i = 1, tr%nspec
      s2(:, i) = tr%lap(i) * s1(:, i)
    end do
    call spec_to_grid(tr, s2, g2)
    err = maxval(abs(g2 * earth_radius**2 / (-12.0_wp) - g1))
    call check(tc, err < 1e-13_wp, trim(tag)//' Laplacian eigenvalue -n(n+1)/a^2', err, 1e-13_wp)

    ! solid-body rotation: vor = 2 w sin(lat) -> u = w a cos(lat), v = 0
    allocate (vor(nl, tr%nspec), div(nl, tr%nspec), u(nl, nlon, nlat), v(nl, nlon, nlat))
    omega_rb = 1.0e-5_wp
    do i = 1, nlon
      do j = 1, nlat
        g1(:, i, j) = 2.0_wp * omega_rb * tr%grid%mu(j)
      end do
    end do
    call grid_to_spec(tr, g1, vor)
    div = 0
    call uv_grid(tr, vor, div, u, v)
    err = 0
    do j = 1, nlat
      err = max(err, maxval(abs(u(:, :, j) - omega_rb * earth_radius * tr%grid%coslat(j))))
    end do
    err = max(err, maxval(abs(v)))
    call check(tc, err < 1e-10_wp, trim(tag)//' solid-body rotation winds [m/s]', err, 1e-10_wp)

    ! random vorticity and divergence -> (U, V) -> divergence and curl back
    call random_spec(tr, vor, 3)
    call random_spec(tr, div, 4)
    vor(:, 1) = 0
    div(:, 1) = 0
    scale = 1.0e-5_wp
    vor = scale * vor
    div = scale * div
    allocate (uext(nl, tr%nspec_ext), vext(nl, tr%nspec_ext), a(nl, nlon, nlat), b(nl, nlon, nlat))
    allocate (d2(nl, tr%nspec), c2(nl, tr%nspec))
    call uv_spec_ext(tr, vor, div, uext, vext)
    call spec_ext_to_grid(tr, uext, a)
    call spec_ext_to_grid(tr, vext, b)
    call vector_divcurl(tr, a, b, d2, c2)
    err = max(maxval(abs(d2 - div)), maxval(abs(c2 - vor))) / scale
    call check(tc, err < 1e-11_wp, trim(tag)//' (vor,div) -> (U,V) -> (vor,div) relative', err, 1e-11_wp)

    ! gradient: cos(lat) d/dlat and d/dlon of f = sin(lat)^2 cos(lon) cos(lat)
    do i = 1, nlon
      do j = 1, nlat
        mu = tr%grid%mu(j)
        lon = tr%grid%lon(i)
        g1(:, i, j) = mu * mu * sqrt(1 - mu * mu) * cos(lon)
      end do
    end do
    call grid_to_spec(tr, g1, s1)
    allocate (h(nl, tr%nspec_ext), lam(nl, tr%nspec))
    call dmu_spec_ext(tr, s1, h)
    call spec_ext_to_grid(tr, h, g2)
    err = 0
    do i = 1, nlon
      do j = 1, nlat
        mu = tr%grid%mu(j)
        lon = tr%grid%lon(i)
        ! (1-mu^2) d/dmu [mu^2 (1-mu^2)^(1/2)] cos = (2 mu (1-mu^2)^(3/2) - mu^3 (1-mu^2)^(1/2)) cos
        err = max(err, maxval(abs(g2(:, i, j) - (2 * mu * (1 - mu * mu)**1.5_wp &
                                                  - mu**3 * sqrt(1 - mu * mu)) * cos(lon))))
      end do
    end do
    call check(tc, err < 1e-13_wp, trim(tag)//' (1-mu^2) d/dmu spectral derivative', err, 1e-13_wp)
    call dlambda(tr, s1, lam)
    call spec_to_grid(tr, lam, g2)
    err = 0
    do i = 1, nlon
      do j = 1, nlat
        mu = tr%grid%mu(j)
        err = max(err, maxval(abs(g2(:, i, j) + mu * mu * sqrt(1 - mu * mu) * sin(tr%grid%lon(i)))))
      end do
    end do
    call check(tc, err < 1e-13_wp, trim(tag)//' d/dlambda spectral derivative', err, 1e-13_wp)
  end subroutine run_for

end program test_transforms
