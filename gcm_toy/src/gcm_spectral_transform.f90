module gcm_spectral_transform
  !! The spectral transform on the Gaussian grid (Legendre + Fourier) and the
  !! spectral operators of the dynamics: Laplacian, winds from vorticity and
  !! divergence, divergence and curl of a vector, meridional derivatives.
  !!
  !! Grid fields are (nfl, nlon, nlat): nfl stacked levels (and fields),
  !! longitudes from 0 east, latitudes south to north, so that a column is
  !! contiguous and columns are ordered longitude fastest. Fourier
  !! coefficients are (nfl, 2, 0:M, nlat) (real, imaginary part). Spectral fields are complex
  !! (nfl, nspec) in the triangular layout of `gcm_legendre`, or
  !! (nfl, nspec_ext) in its extended layout (n up to M+1).
  !!
  !! Vector fields are carried as U = u cos(lat), V = v cos(lat), whose
  !! expansions reach degree M+1. With X_n the coefficient of P_mn and
  !! H_mn = (1-mu^2) dP_mn/dmu = -n eps_{n+1} P_{n+1} + (n+1) eps_n P_{n-1}:
  !!   U = (1/a)(d chi/d lambda - (1-mu^2) d psi/d mu),
  !!   V = (1/a)(d psi/d lambda + (1-mu^2) d chi/d mu),
  !! and the divergence and curl of (A, B) = (F_u cos, F_v cos) follow by
  !! integration by parts from the coefficients of A/(a(1-mu^2)), B/(a(1-mu^2)):
  !!   div_n  = i m A_n + n eps_{n+1} B_{n+1} - (n+1) eps_n B_{n-1},
  !!   curl_n = i m B_n - n eps_{n+1} A_{n+1} + (n+1) eps_n A_{n-1}
  !! (Bourke 1974; Hoskins & Simmons 1975). Both are exact for band-limited
  !! input on the alias-free grid.
  use gcm_constants, only: wp, earth_radius
  use gcm_gaussian_grid, only: gaussian_grid, gaussian_grid_init
  use gcm_legendre, only: legendre_tables, legendre_init, legendre_inverse, legendre_forward, &
                          spec_index, spec_index_ext
  use gcm_fourier, only: fourier_plan, fourier_init, fourier_synthesis, fourier_analysis
  implicit none
  private
  public :: spectral_transform, transform_init, spec_to_grid, spec_ext_to_grid, &
            grid_to_spec, grid_to_spec_ext, grid_to_four, four_to_spec, four_to_spec_ext, &
            uv_spec_ext, uv_grid, meridional_part, dmu_spec_ext, dlambda, &
            vector_divcurl, four_scale_lat, four_add_dlambda

  type :: spectral_transform
    integer :: mmax = 0
    integer :: nlon = 0
    integer :: nlat = 0
    integer :: nspec = 0
    integer :: nspec_ext = 0
    real(wp) :: radius = earth_radius
    type(gaussian_grid) :: grid
    type(legendre_tables) :: leg
    type(fourier_plan) :: fou
    integer, allocatable :: m_of(:), n_of(:)
      !! zonal and total wavenumber of each triangular index (nspec)
    integer, allocatable :: m_of_ext(:), n_of_ext(:)
      !! the same for the extended layout (nspec_ext)
    real(wp), allocatable :: lap(:)
      !! Laplacian eigenvalue -n(n+1)/a^2 (nspec)
    real(wp), allocatable :: inv_lap(:)
      !! its inverse, 0 for n = 0 (nspec)
    real(wp), allocatable :: inv_acos2(:)
      !! 1/(a (1-mu^2)) per latitude (nlat)
  end type spectral_transform

contains

  subroutine transform_init(tr, mmax, nlon, nlat)
    !! Grid, tables and operators for triangular truncation T_mmax.
    type(spectral_transform), intent(out) :: tr
    integer, intent(in) :: mmax, nlon, nlat
    integer :: m, n, k
    tr%mmax = mmax
    tr%nlon = nlon
    tr%nlat = nlat
    call gaussian_grid_init(tr%grid, nlon, nlat)
    call legendre_init(tr%leg, mmax, tr%grid%mu, tr%grid%weight)
    call fourier_init(tr%fou, nlon, mmax)
    tr%nspec = tr%leg%nspec
    tr%nspec_ext = tr%leg%nspec_ext
    allocate (tr%m_of(tr%nspec), tr%n_of(tr%nspec), tr%lap(tr%nspec), tr%inv_lap(tr%nspec))
    allocate (tr%m_of_ext(tr%nspec_ext), tr%n_of_ext(tr%nspec_ext))
    do m = 0, mmax
      do n = m, mmax
        k = spec_index(mmax, m, n)
        tr%m_of(k) = m
        tr%n_of(k) = n
        tr%lap(k) = -real(n * (n + 1), wp) / tr%radius**2
        if (n > 0) then
          tr%inv_lap(k) = 1.0_wp / tr%lap(k)
        else
          tr%inv_lap(k) = 0.0_wp
        end if
      end do
      do n = m, mmax + 1
        k = spec_index_ext(mmax, m, n)
        tr%m_of_ext(k) = m
        tr%n_of_ext(k) = n
      end do
    end do
    allocate (tr%inv_acos2(nlat))
    tr%inv_acos2 = 1.0_wp / (tr%radius * (1.0_wp - tr%grid%mu**2))
  end subroutine transform_init

  subroutine spec_to_grid(tr, spec, grid, work)
    !! Grid values of triangular spectral fields. `work` (nfl, 2, 0:M, nlat)
    !! avoids a temporary in hot loops.
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(in) :: spec(:, :)
    real(wp), intent(out) :: grid(:, :, :)
    real(wp), intent(inout), optional :: work(:, :, 0:, :)
    real(wp), allocatable :: four(:, :, :, :)
    if (present(work)) then
      call legendre_inverse(tr%leg, spec, .false., work)
      call synthesis_all(tr, work, grid)
    else
      allocate (four(size(spec, 1), 2, 0:tr%mmax, tr%nlat))
      call legendre_inverse(tr%leg, spec, .false., four)
      call synthesis_all(tr, four, grid)
    end if
  end subroutine spec_to_grid

  subroutine spec_ext_to_grid(tr, spec_ext, grid, work)
    !! Grid values of extended-layout spectral fields.
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(in) :: spec_ext(:, :)
    real(wp), intent(out) :: grid(:, :, :)
    real(wp), intent(inout), optional :: work(:, :, 0:, :)
    real(wp), allocatable :: four(:, :, :, :)
    if (present(work)) then
      call legendre_inverse(tr%leg, spec_ext, .true., work)
      call synthesis_all(tr, work, grid)
    else
      allocate (four(size(spec_ext, 1), 2, 0:tr%mmax, tr%nlat))
      call legendre_inverse(tr%leg, spec_ext, .true., four)
      call synthesis_all(tr, four, grid)
    end if
  end subroutine spec_ext_to_grid

  subroutine synthesis_all(tr, four, grid)
    !! Grid fields (nfl, nlon, nlat) from Fourier coefficients (nfl, 2, 0:M, nlat).
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: four(:, :, 0:, :)
    real(wp), intent(out) :: grid(:, :, :)
    integer :: j
    do j = 1, tr%nlat
      call fourier_synthesis(tr%fou, size(grid, 1), four(:, :, :, j), grid(:, :, j))
    end do
  end subroutine synthesis_all

  subroutine grid_to_four(tr, grid, four)
    !! Fourier coefficients (nfl, 2, 0:M, nlat) of grid fields (nfl, nlon, nlat).
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: grid(:, :, :)
    real(wp), intent(out) :: four(:, :, 0:, :)
    integer :: j
    do j = 1, tr%nlat
      call fourier_analysis(tr%fou, size(grid, 1), grid(:, :, j), four(:, :, :, j))
    end do
  end subroutine grid_to_four

  subroutine four_to_spec(tr, four, spec)
    !! Triangular spectral coefficients from Fourier coefficients.
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: four(:, :, 0:, :)
    complex(wp), intent(out) :: spec(:, :)
    call legendre_forward(tr%leg, four, .false., spec)
  end subroutine four_to_spec

  subroutine four_to_spec_ext(tr, four, spec_ext)
    !! Extended-layout spectral coefficients from Fourier coefficients.
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: four(:, :, 0:, :)
    complex(wp), intent(out) :: spec_ext(:, :)
    call legendre_forward(tr%leg, four, .true., spec_ext)
  end subroutine four_to_spec_ext

  subroutine grid_to_spec(tr, grid, spec)
    !! Triangular spectral coefficients of grid fields (projection onto T_M).
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: grid(:, :, :)
    complex(wp), intent(out) :: spec(:, :)
    real(wp), allocatable :: four(:, :, :, :)
    allocate (four(size(grid, 1), 2, 0:tr%mmax, tr%nlat))
    call grid_to_four(tr, grid, four)
    call legendre_forward(tr%leg, four, .false., spec)
  end subroutine grid_to_spec

  subroutine grid_to_spec_ext(tr, grid, spec_ext)
    !! Extended-layout spectral coefficients of grid fields.
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: grid(:, :, :)
    complex(wp), intent(out) :: spec_ext(:, :)
    real(wp), allocatable :: four(:, :, :, :)
    allocate (four(size(grid, 1), 2, 0:tr%mmax, tr%nlat))
    call grid_to_four(tr, grid, four)
    call legendre_forward(tr%leg, four, .true., spec_ext)
  end subroutine grid_to_spec_ext

  subroutine four_scale_lat(tr, four, factor)
    !! Multiply Fourier coefficients (nfl, 2, 0:M, nlat) by a per-latitude factor.
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(inout) :: four(:, :, 0:, :)
    real(wp), intent(in) :: factor(:)
    integer :: j
    do j = 1, tr%nlat
      four(:, :, :, j) = factor(j) * four(:, :, :, j)
    end do
  end subroutine four_scale_lat

  subroutine four_add_dlambda(tr, four_x, factor, four)
    !! four += factor * d/dlambda (x), in Fourier space: i m X_m.
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: four_x(:, :, 0:, :)
    real(wp), intent(in) :: factor
    real(wp), intent(inout) :: four(:, :, 0:, :)
    integer :: m, j
    real(wp) :: fm
    do j = 1, tr%nlat
      do m = 1, tr%mmax
        fm = factor * real(m, wp)
        four(:, 1, m, j) = four(:, 1, m, j) - fm * four_x(:, 2, m, j)
        four(:, 2, m, j) = four(:, 2, m, j) + fm * four_x(:, 1, m, j)
      end do
    end do
  end subroutine four_add_dlambda

  subroutine dlambda(tr, x, dx)
    !! Spectral coefficients of dx/dlambda: i m X_mn.
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(in) :: x(:, :)
    complex(wp), intent(out) :: dx(:, :)
    integer :: k
    do k = 1, tr%nspec
      dx(:, k) = cmplx(0.0_wp, real(tr%m_of(k), wp), wp) * x(:, k)
    end do
  end subroutine dlambda

  subroutine dmu_spec_ext(tr, x, h_ext, extended_in)
    !! Extended coefficients of (1-mu^2) dx/dmu = cos(lat) dx/dlat. x is
    !! triangular, or extended (with n = M+1 ignored) when extended_in.
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(in) :: x(:, :)
    complex(wp), intent(out) :: h_ext(:, :)
    logical, intent(in), optional :: extended_in
    integer :: m, n, ke, mm
    logical :: ext
    ext = .false.
    if (present(extended_in)) ext = extended_in
    mm = tr%mmax
    do m = 0, mm
      do n = m, mm + 1
        ke = spec_index_ext(mm, m, n)
        h_ext(:, ke) = (0.0_wp, 0.0_wp)
        if (n - 1 >= m) h_ext(:, ke) = h_ext(:, ke) - real(n - 1, wp) * tr%leg%eps(ke) * x(:, idx(m, n - 1))
        if (n + 1 <= mm) h_ext(:, ke) = h_ext(:, ke) &
          + real(n + 2, wp) * tr%leg%eps(spec_index_ext(mm, m, n + 1)) * x(:, idx(m, n + 1))
      end do
    end do
  contains
    pure integer function idx(mi, ni)
      integer, intent(in) :: mi, ni
      if (ext) then
        idx = spec_index_ext(mm, mi, ni)
      else
        idx = spec_index(mm, mi, ni)
      end if
    end function idx
  end subroutine dmu_spec_ext

  subroutine uv_spec_ext(tr, vor, div, u_ext, v_ext)
    !! Extended coefficients of U = u cos(lat) and V = v cos(lat) from
    !! vorticity and divergence (triangular).
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(in) :: vor(:, :), div(:, :)
    complex(wp), intent(out) :: u_ext(:, :), v_ext(:, :)
    complex(wp) :: psi(size(vor, 1), tr%nspec), chi(size(vor, 1), tr%nspec)
    complex(wp) :: im
    integer :: m, n, ke, kt, mm
    real(wp) :: c, inv_a
    mm = tr%mmax
    inv_a = 1.0_wp / tr%radius
    do kt = 1, tr%nspec
      psi(:, kt) = tr%inv_lap(kt) * vor(:, kt)
      chi(:, kt) = tr%inv_lap(kt) * div(:, kt)
    end do
    do m = 0, mm
      im = cmplx(0.0_wp, real(m, wp), wp)
      do n = m, mm + 1
        ke = spec_index_ext(mm, m, n)
        if (n <= mm) then
          kt = spec_index(mm, m, n)
          u_ext(:, ke) = im * chi(:, kt)
          v_ext(:, ke) = im * psi(:, kt)
        else
          u_ext(:, ke) = (0.0_wp, 0.0_wp)
          v_ext(:, ke) = (0.0_wp, 0.0_wp)
        end if
        if (n - 1 >= m) then
          kt = spec_index(mm, m, n - 1)
          c = real(n - 1, wp) * tr%leg%eps(ke)
          u_ext(:, ke) = u_ext(:, ke) + c * psi(:, kt)
          v_ext(:, ke) = v_ext(:, ke) - c * chi(:, kt)
        end if
        if (n + 1 <= mm) then
          kt = spec_index(mm, m, n + 1)
          c = real(n + 2, wp) * tr%leg%eps(spec_index_ext(mm, m, n + 1))
          u_ext(:, ke) = u_ext(:, ke) - c * psi(:, kt)
          v_ext(:, ke) = v_ext(:, ke) + c * chi(:, kt)
        end if
        u_ext(:, ke) = inv_a * u_ext(:, ke)
        v_ext(:, ke) = inv_a * v_ext(:, ke)
      end do
    end do
  end subroutine uv_spec_ext

  subroutine uv_grid(tr, vor, div, u, v)
    !! Grid winds u, v [m s-1] (not cos-weighted) from vorticity and divergence.
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(in) :: vor(:, :), div(:, :)
    real(wp), intent(out) :: u(:, :, :), v(:, :, :)
    complex(wp) :: u_ext(size(vor, 1), tr%nspec_ext), v_ext(size(vor, 1), tr%nspec_ext)
    integer :: j
    call uv_spec_ext(tr, vor, div, u_ext, v_ext)
    call spec_ext_to_grid(tr, u_ext, u)
    call spec_ext_to_grid(tr, v_ext, v)
    do j = 1, tr%nlat
      u(:, :, j) = u(:, :, j) / tr%grid%coslat(j)
      v(:, :, j) = v(:, :, j) / tr%grid%coslat(j)
    end do
  end subroutine uv_grid

  subroutine meridional_part(tr, y_ext, r)
    !! r_n = n eps_{n+1} Y_{n+1} - (n+1) eps_n Y_{n-1} (triangular) from
    !! extended coefficients Y: the meridional term of the divergence of (., Y)
    !! and, with a minus sign, of the curl of (Y, .).
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(in) :: y_ext(:, :)
    complex(wp), intent(out) :: r(:, :)
    integer :: m, n, kt, ke, mm
    mm = tr%mmax
    do m = 0, mm
      do n = m, mm
        kt = spec_index(mm, m, n)
        ke = spec_index_ext(mm, m, n)
        r(:, kt) = real(n, wp) * tr%leg%eps(ke + 1) * y_ext(:, ke + 1)
        if (n - 1 >= m) r(:, kt) = r(:, kt) - real(n + 1, wp) * tr%leg%eps(ke) * y_ext(:, ke - 1)
      end do
    end do
  end subroutine meridional_part

  subroutine vector_divcurl(tr, a, b, div, curl)
    !! Spectral divergence and curl of the grid vector (A, B) = (F_u cos, F_v cos),
    !! i.e. of (F_u, F_v). Either output may be skipped.
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: a(:, :, :), b(:, :, :)
    complex(wp), intent(out), optional :: div(:, :), curl(:, :)
    real(wp), allocatable :: four(:, :, :, :)
    complex(wp) :: a_ext(size(a, 1), tr%nspec_ext), b_ext(size(a, 1), tr%nspec_ext)
    complex(wp) :: r(size(a, 1), tr%nspec)
    integer :: k
    complex(wp) :: im
    allocate (four(size(a, 1), 2, 0:tr%mmax, tr%nlat))
    call grid_to_four(tr, a, four)
    call four_scale_lat(tr, four, tr%inv_acos2)
    call four_to_spec_ext(tr, four, a_ext)
    call grid_to_four(tr, b, four)
    call four_scale_lat(tr, four, tr%inv_acos2)
    call four_to_spec_ext(tr, four, b_ext)
    if (present(div)) then
      call meridional_part(tr, b_ext, r)
      do k = 1, tr%nspec
        im = cmplx(0.0_wp, real(tr%m_of(k), wp), wp)
        div(:, k) = im * a_ext(:, ext_of(k)) + r(:, k)
      end do
    end if
    if (present(curl)) then
      call meridional_part(tr, a_ext, r)
      do k = 1, tr%nspec
        im = cmplx(0.0_wp, real(tr%m_of(k), wp), wp)
        curl(:, k) = im * b_ext(:, ext_of(k)) - r(:, k)
      end do
    end if
  contains
    pure integer function ext_of(kt)
      integer, intent(in) :: kt
      ext_of = spec_index_ext(tr%mmax, tr%m_of(kt), tr%n_of(kt))
    end function ext_of
  end subroutine vector_divcurl

end module gcm_spectral_transform
