module gcm_dynamics
  !! Tendencies and time stepping of the hydrostatic primitive equations in
  !! vorticity-divergence form on sigma levels (Hoskins & Simmons 1975,
  !! Bourke 1974; vertical scheme of Simmons & Burridge 1981).
  !!
  !! With U = u cos(lat), V = v cos(lat), pi = ln(ps), T = T_ref + T':
  !!   d(zeta)/dt = curl(A, B),   d(D)/dt = div(A, B) - lap(E + Phi + R T_ref pi)
  !!   A = (zeta+f) V - sdot dU/dsigma - R T' dpi/dlambda / a      (+ F_u cos)
  !!   B = -(zeta+f) U - sdot dV/dsigma - R T' cos dpi/dlat / a    (+ F_v cos)
  !!   dT/dt = -div(V T') + T' D - sdot dT/dsigma + kappa T omega/p   (+ Q)
  !!   dq/dt = -div(V q) + q D - sdot dq/dsigma                      (+ S_q)
  !!   dpi/dt = -sum_k (D_k + V_k.grad pi) dsigma_k                  (+ (dps/dt)/ps)
  !! E = (u^2+v^2)/2. Products are formed on the Gaussian grid; divergences
  !! and curls are taken spectrally.
  !!
  !! Time stepping: leapfrog, the gravity-wave terms (linear in D, T, pi about
  !! the isothermal T_ref) centred-implicit (semi-implicit), implicit
  !! hyperdiffusion del^order on zeta, D, T (and q), and the Robert-Asselin
  !! filter with Williams' (2009) modification. The first step after a start
  !! is a forward step of length dt with the same scheme.
  !!
  !! Grid work arrays have the layout of `gcm_spectral_transform`
  !! (rows, nlon, nlat); several fields are stacked in the rows so that one
  !! transform call serves them all.
  use gcm_constants, only: wp, rd, kappa, earth_omega
  use gcm_spectral_transform, only: spectral_transform, spec_ext_to_grid, grid_to_four, &
                                    four_to_spec_ext, four_to_spec, four_add_dlambda, &
                                    uv_spec_ext, dmu_spec_ext, meridional_part, grid_to_spec
  use gcm_legendre, only: spec_index_ext
  use gcm_vertical, only: sigma_levels, column_continuity, vertical_advection
  use gcm_state, only: model_state, previous, current
  use gcm_physics_interface, only: physics_tendencies
  implicit none
  private
  public :: dynamics_workspace, dynamics_workspace_init, semi_implicit, semi_implicit_init, &
            transform_current, grid_tendencies, spectral_tendencies, advance, &
            transform_previous, tri_to_ext, add_humidity_correction

  type :: dynamics_workspace
    !! Work arrays of one step. Fields are stacked in rows; a field of nlev
    !! levels starting at offset o occupies rows o+1 .. o+nlev. Humidity rows
    !! exist only in a moist model.
    integer :: nlev = 0
    logical :: humidity = .true.
    integer :: nin = 0
      !! rows in: vorticity, divergence, U, V, T, [q], ln ps, d(ln ps)/dlambda,
      !! cos(lat) d(ln ps)/dlat
    integer :: i_vor = 0, i_div = 0, i_u = 0, i_v = 0, i_t = 0, i_q = 0
    integer :: i_lnps = 0, i_dlam = 0, i_dmu = 0
    integer :: nout = 0
      !! rows out: A, B, E, G_T, Y_T, [G_q, Y_q] (divided by a cos^2 where
      !! needed) and the ln ps tendency
    integer :: o_a = 0, o_b = 0, o_e = 0, o_gt = 0, o_yt = 0, o_gq = 0, o_yq = 0, o_lnps = 0
    integer :: nx = 0
      !! rows of zonal fluxes: U T', [U q]
    integer :: nphys = 0
      !! rows of the physics state: U, V, T, [q], ln ps
    complex(wp), allocatable :: spec_in(:, :)
    real(wp), allocatable :: grid_in(:, :, :)
    real(wp), allocatable :: grid_out(:, :, :)
    real(wp), allocatable :: grid_x(:, :, :)
      !! zonal fluxes U T'/(a cos^2), U q/(a cos^2): only their lambda-derivative is needed
    real(wp), allocatable :: four_in(:, :, :, :)
    real(wp), allocatable :: four_out(:, :, :, :)
    real(wp), allocatable :: four_x(:, :, :, :)
    complex(wp), allocatable :: spec_out(:, :)
    complex(wp), allocatable :: vor_t(:, :), div_t(:, :), tmp_t(:, :), hum_t(:, :), lnps_t(:)
      !! explicit spectral tendencies (nlev, nspec), (nspec)
    complex(wp), allocatable :: spec_phys(:, :)
      !! U, V, T, q, ln ps at time level n-1 for the physics (4 nlev + 1 rows)
    real(wp), allocatable :: grid_phys(:, :, :)
  end type dynamics_workspace

  type :: semi_implicit
    real(wp), allocatable :: inverse(:, :, :, :)
      !! (nlev, nlev, 0:M, 2): inverse of I + h^2 c_n (hydro tau + R T_ref 1 dsigma^T);
      !! index 2 = h for leapfrog (h = dt), 1 = forward start (h = dt/2)
    real(wp), allocatable :: damping(:)
      !! hyperdiffusion rate K_n [s-1] (0:M)
    real(wp) :: t_ref = 300.0_wp
  end type semi_implicit

contains

  subroutine dynamics_workspace_init(work, tr, nlev, humidity)
    type(dynamics_workspace), intent(out) :: work
    type(spectral_transform), intent(in) :: tr
    integer, intent(in) :: nlev
    logical, intent(in) :: humidity
    integer :: mm, nq
    mm = tr%mmax
    work%nlev = nlev
    work%humidity = humidity
    nq = 0
    if (humidity) nq = nlev
    work%i_vor = 0
    work%i_div = nlev
    work%i_u = 2 * nlev
    work%i_v = 3 * nlev
    work%i_t = 4 * nlev
    work%i_q = 5 * nlev
    work%i_lnps = 5 * nlev + nq + 1
    work%i_dlam = work%i_lnps + 1
    work%i_dmu = work%i_lnps + 2
    work%nin = work%i_dmu
    work%o_a = 0
    work%o_b = nlev
    work%o_e = 2 * nlev
    work%o_gt = 3 * nlev
    work%o_yt = 4 * nlev
    work%o_gq = 5 * nlev
    work%o_yq = 5 * nlev + nq
    work%o_lnps = 5 * nlev + 2 * nq + 1
    work%nout = work%o_lnps
    work%nx = nlev + nq
    work%nphys = 3 * nlev + nq + 1
    allocate (work%spec_in(work%nin, tr%nspec_ext), work%grid_in(work%nin, tr%nlon, tr%nlat))
    allocate (work%grid_out(work%nout, tr%nlon, tr%nlat), work%grid_x(work%nx, tr%nlon, tr%nlat))
    allocate (work%four_in(work%nin, 2, 0:mm, tr%nlat), work%four_out(work%nout, 2, 0:mm, tr%nlat))
    allocate (work%four_x(work%nx, 2, 0:mm, tr%nlat), work%spec_out(work%nout, tr%nspec_ext))
    allocate (work%vor_t(nlev, tr%nspec), work%div_t(nlev, tr%nspec), work%tmp_t(nlev, tr%nspec), &
              work%hum_t(nlev, tr%nspec), work%lnps_t(tr%nspec))
    work%hum_t = (0.0_wp, 0.0_wp)
    allocate (work%spec_phys(work%nphys, tr%nspec_ext), work%grid_phys(work%nphys, tr%nlon, tr%nlat))
  end subroutine dynamics_workspace_init

  subroutine semi_implicit_init(si, tr, vert, dt, t_ref, diffusion_order, diffusion_time)
    !! Implicit-solve matrices for every total wavenumber and both step
    !! lengths, and the hyperdiffusion rates K_n = (n(n+1)/(M(M+1)))^(order/2) / time.
    type(semi_implicit), intent(out) :: si
    type(spectral_transform), intent(in) :: tr
    type(sigma_levels), intent(in) :: vert
    real(wp), intent(in) :: dt, t_ref, diffusion_time
    integer, intent(in) :: diffusion_order
    real(wp) :: a(vert%nlev, vert%nlev), h, c
    integer :: n, ih, k, j, nlev, mm
    nlev = vert%nlev
    mm = tr%mmax
    si%t_ref = t_ref
    allocate (si%inverse(nlev, nlev, 0:mm, 2), si%damping(0:mm))
    do ih = 1, 2
      h = 0.5_wp * dt * real(ih, wp)
      do n = 0, mm
        c = real(n * (n + 1), wp) / tr%radius**2
        a = matmul(vert%hydro, vert%tau)
        do k = 1, nlev
          do j = 1, nlev
            a(k, j) = a(k, j) + rd * t_ref * vert%dsigma(j)
          end do
        end do
        a = h * h * c * a
        do k = 1, nlev
          a(k, k) = a(k, k) + 1.0_wp
        end do
        call invert(a, si%inverse(:, :, n, ih))
      end do
    end do
    do n = 0, mm
      si%damping(n) = (real(n * (n + 1), wp) / real(mm * (mm + 1), wp))**(diffusion_order / 2) &
                      / diffusion_time
    end do
  contains
    subroutine invert(m, minv)
      !! Gauss-Jordan elimination with partial pivoting (small, well conditioned).
      real(wp), intent(in) :: m(:, :)
      real(wp), intent(out) :: minv(:, :)
      real(wp) :: w(size(m, 1), 2 * size(m, 1)), row(2 * size(m, 1))
      integer :: i, p, nn
      nn = size(m, 1)
      w = 0.0_wp
      w(:, 1:nn) = m
      do i = 1, nn
        w(i, nn + i) = 1.0_wp
      end do
      do i = 1, nn
        p = i - 1 + maxloc(abs(w(i:nn, i)), dim=1)
        row = w(p, :)
        w(p, :) = w(i, :)
        w(i, :) = row / row(i)
        do p = 1, nn
          if (p /= i) w(p, :) = w(p, :) - w(p, i) * w(i, :)
        end do
      end do
      minv = w(:, nn + 1:)
    end subroutine invert
  end subroutine semi_implicit_init

  subroutine tri_to_ext(tr, x, x_ext, transpose_in)
    !! Copy triangular coefficients x(nfl, nspec) into the extended layout
    !! (n = M+1 zero). With transpose_in, x is (nspec, nfl).
    type(spectral_transform), intent(in) :: tr
    complex(wp), intent(in) :: x(:, :)
    complex(wp), intent(out) :: x_ext(:, :)
    logical, intent(in), optional :: transpose_in
    integer :: m, k0, ke0, len, l
    logical :: tin
    tin = .false.
    if (present(transpose_in)) tin = transpose_in
    do m = 0, tr%mmax
      len = tr%mmax - m + 1
      k0 = m * (tr%mmax + 1) - (m * (m - 1)) / 2
      ke0 = spec_index_ext(tr%mmax, m, m) - 1
      if (tin) then
        do l = 1, size(x_ext, 1)
          x_ext(l, ke0 + 1:ke0 + len) = x(k0 + 1:k0 + len, l)
        end do
      else
        x_ext(:, ke0 + 1:ke0 + len) = x(:, k0 + 1:k0 + len)
      end if
      x_ext(:, ke0 + len + 1) = (0.0_wp, 0.0_wp)
    end do
  end subroutine tri_to_ext

  subroutine transform_current(tr, state, work)
    !! Grid fields of time level n: vorticity, divergence, U, V, T, [q], ln ps
    !! and its two derivatives, into work%grid_in.
    type(spectral_transform), intent(in) :: tr
    type(model_state), intent(in) :: state
    type(dynamics_workspace), intent(inout) :: work
    integer :: nl, k
    nl = work%nlev
    associate (w => work, sp => work%spec_in)
      call tri_to_ext(tr, state%vor(:, :, current), sp(w%i_vor + 1:w%i_vor + nl, :))
      call tri_to_ext(tr, state%div(:, :, current), sp(w%i_div + 1:w%i_div + nl, :))
      call uv_spec_ext(tr, state%vor(:, :, current), state%div(:, :, current), &
                       sp(w%i_u + 1:w%i_u + nl, :), sp(w%i_v + 1:w%i_v + nl, :))
      call tri_to_ext(tr, state%tmp(:, :, current), sp(w%i_t + 1:w%i_t + nl, :))
      if (w%humidity) call tri_to_ext(tr, state%hum(:, :, current), sp(w%i_q + 1:w%i_q + nl, :))
      call tri_to_ext(tr, state%lnps(:, current:current), sp(w%i_lnps:w%i_lnps, :), transpose_in=.true.)
      call tri_to_ext(tr, state%lnps(:, current:current), sp(w%i_dlam:w%i_dlam, :), transpose_in=.true.)
      do k = 1, tr%nspec_ext
        sp(w%i_dlam, k) = cmplx(0.0_wp, real(tr%m_of_ext(k), wp), wp) * sp(w%i_dlam, k)
      end do
      call dmu_spec_ext(tr, sp(w%i_lnps:w%i_lnps, :), sp(w%i_dmu:w%i_dmu, :), extended_in=.true.)
    end associate
    call spec_ext_to_grid(tr, work%spec_in, work%grid_in, work%four_in)
  end subroutine transform_current

  subroutine transform_previous(tr, state, work, level)
    !! Grid U, V (cos-weighted), T, [q] and ln ps of time level `level` into
    !! work%grid_phys (rows: U, V, T, [q] by nlev, then ln ps).
    type(spectral_transform), intent(in) :: tr
    type(model_state), intent(in) :: state
    type(dynamics_workspace), intent(inout) :: work
    integer, intent(in) :: level
    integer :: nl
    nl = work%nlev
    associate (sp => work%spec_phys)
      call uv_spec_ext(tr, state%vor(:, :, level), state%div(:, :, level), sp(1:nl, :), sp(nl + 1:2 * nl, :))
      call tri_to_ext(tr, state%tmp(:, :, level), sp(2 * nl + 1:3 * nl, :))
      if (work%humidity) call tri_to_ext(tr, state%hum(:, :, level), sp(3 * nl + 1:4 * nl, :))
      call tri_to_ext(tr, state%lnps(:, level:level), sp(work%nphys:work%nphys, :), transpose_in=.true.)
    end associate
    call spec_ext_to_grid(tr, work%spec_phys, work%grid_phys, work%four_in(1:work%nphys, :, :, :))
  end subroutine transform_previous

  subroutine add_humidity_correction(tr, dq, state)
    !! Add the spectral projection of a grid humidity change dq
    !! (nlev, nlon, nlat) to time level n.
    type(spectral_transform), intent(in) :: tr
    real(wp), intent(in) :: dq(:, :, :)
    type(model_state), intent(inout) :: state
    complex(wp) :: dqs(size(dq, 1), tr%nspec)
    call grid_to_spec(tr, dq, dqs)
    state%hum(:, :, current) = state%hum(:, :, current) + dqs
  end subroutine add_humidity_correction

  subroutine grid_tendencies(tr, vert, t_ref, work, phys, phys_ps)
    !! Column computations on the Gaussian grid from work%grid_in into
    !! work%grid_out and work%grid_x; physics tendencies (columns ordered
    !! longitude fastest) are added when present, phys_ps being the surface
    !! pressure they were computed with.
    type(spectral_transform), intent(in) :: tr
    type(sigma_levels), intent(in) :: vert
    real(wp), intent(in) :: t_ref
    type(dynamics_workspace), intent(inout) :: work
    type(physics_tendencies), intent(in), optional :: phys
    real(wp), intent(in), optional :: phys_ps(:)
    real(wp), dimension(work%nlev) :: vor, div, u, v, t, q, tp, vgp, omp, adu, adv, adt, adq, a, b, gt, gq
    real(wp) :: sigdot(0:work%nlev)
    real(wp) :: f, s, coslat, inv_a, pil, pih, dpsdt, one_minus_mu2, dlnps
    integer :: i, j, nl, c
    logical :: with_physics, moist

    nl = work%nlev
    inv_a = 1.0_wp / tr%radius
    with_physics = present(phys)
    moist = work%humidity
    associate (w => work, gi => work%grid_in, go => work%grid_out, gx => work%grid_x)
      do j = 1, tr%nlat
        f = 2.0_wp * earth_omega * tr%grid%mu(j)
        s = tr%inv_acos2(j)
        one_minus_mu2 = 1.0_wp - tr%grid%mu(j)**2
        coslat = tr%grid%coslat(j)
        do i = 1, tr%nlon
          vor = gi(w%i_vor + 1:w%i_vor + nl, i, j)
          div = gi(w%i_div + 1:w%i_div + nl, i, j)
          u = gi(w%i_u + 1:w%i_u + nl, i, j)
          v = gi(w%i_v + 1:w%i_v + nl, i, j)
          t = gi(w%i_t + 1:w%i_t + nl, i, j)
          pil = gi(w%i_dlam, i, j)
          pih = gi(w%i_dmu, i, j)
          vgp = (u * pil + v * pih) * s
          call column_continuity(vert, div, vgp, dpsdt, sigdot, omp)
          call vertical_advection(vert, sigdot, u, adu)
          call vertical_advection(vert, sigdot, v, adv)
          call vertical_advection(vert, sigdot, t, adt)
          tp = t - t_ref
          a = (vor + f) * v - adu - rd * tp * pil * inv_a
          b = -(vor + f) * u - adv - rd * tp * pih * inv_a
          gt = tp * div - adt + kappa * t * omp
          dlnps = -sum(vgp * vert%dsigma)
          if (moist) then
            q = gi(w%i_q + 1:w%i_q + nl, i, j)
            call vertical_advection(vert, sigdot, q, adq)
            gq = q * div - adq
          end if
          if (with_physics) then
            c = i + (j - 1) * tr%nlon
            a = a + phys%dudt(:, c) * coslat
            b = b + phys%dvdt(:, c) * coslat
            gt = gt + phys%dtdt(:, c)
            if (moist) gq = gq + phys%dqdt(:, c)
            dlnps = dlnps + phys%dpsdt(c) / phys_ps(c)
          end if
          go(w%o_a + 1:w%o_a + nl, i, j) = a * s
          go(w%o_b + 1:w%o_b + nl, i, j) = b * s
          go(w%o_e + 1:w%o_e + nl, i, j) = 0.5_wp * (u * u + v * v) / one_minus_mu2
          go(w%o_gt + 1:w%o_gt + nl, i, j) = gt
          go(w%o_yt + 1:w%o_yt + nl, i, j) = v * tp * s
          go(w%o_lnps, i, j) = dlnps
          gx(1:nl, i, j) = u * tp * s
          if (moist) then
            go(w%o_gq + 1:w%o_gq + nl, i, j) = gq
            go(w%o_yq + 1:w%o_yq + nl, i, j) = v * q * s
            gx(nl + 1:2 * nl, i, j) = u * q * s
          end if
        end do
      end do
    end associate
  end subroutine grid_tendencies

  subroutine spectral_tendencies(tr, state, work)
    !! Forward transforms of work%grid_out / grid_x and the spectral
    !! divergence and curl operators: explicit tendencies work%*_t.
    type(spectral_transform), intent(in) :: tr
    type(model_state), intent(in) :: state
    type(dynamics_workspace), intent(inout) :: work
    complex(wp) :: r(work%nlev, tr%nspec)
    complex(wp) :: im
    integer :: nl, k, ke
    real(wp) :: c

    nl = work%nlev
    call grid_to_four(tr, work%grid_out, work%four_out)
    call grid_to_four(tr, work%grid_x, work%four_x)
    associate (w => work, so => work%spec_out)
      ! G = S - d/dlambda (U X / (a cos^2)): the zonal part of -div(V X)
      call four_add_dlambda(tr, w%four_x(1:nl, :, :, :), -1.0_wp, w%four_out(w%o_gt + 1:w%o_gt + nl, :, :, :))
      if (w%humidity) call four_add_dlambda(tr, w%four_x(nl + 1:2 * nl, :, :, :), -1.0_wp, &
                                            w%four_out(w%o_gq + 1:w%o_gq + nl, :, :, :))
      call four_to_spec_ext(tr, w%four_out, so)

      ! vorticity: i m B - r(A);  divergence: i m A + r(B) + n(n+1)/a^2 (E + Phi_s)
      call meridional_part(tr, so(w%o_a + 1:w%o_a + nl, :), r)
      do k = 1, tr%nspec
        ke = ext_of(k)
        im = cmplx(0.0_wp, real(tr%m_of(k), wp), wp)
        w%vor_t(:, k) = im * so(w%o_b + 1:w%o_b + nl, ke) - r(:, k)
      end do
      call meridional_part(tr, so(w%o_b + 1:w%o_b + nl, :), r)
      do k = 1, tr%nspec
        ke = ext_of(k)
        im = cmplx(0.0_wp, real(tr%m_of(k), wp), wp)
        c = -tr%lap(k)
        w%div_t(:, k) = im * so(w%o_a + 1:w%o_a + nl, ke) + r(:, k) &
                        + c * (so(w%o_e + 1:w%o_e + nl, ke) + state%phis(k))
      end do
      ! temperature and humidity: G - r(Y)
      call meridional_part(tr, so(w%o_yt + 1:w%o_yt + nl, :), r)
      do k = 1, tr%nspec
        w%tmp_t(:, k) = so(w%o_gt + 1:w%o_gt + nl, ext_of(k)) - r(:, k)
        w%lnps_t(k) = so(w%o_lnps, ext_of(k))
      end do
      if (w%humidity) then
        call meridional_part(tr, so(w%o_yq + 1:w%o_yq + nl, :), r)
        do k = 1, tr%nspec
          w%hum_t(:, k) = so(w%o_gq + 1:w%o_gq + nl, ext_of(k)) - r(:, k)
        end do
      end if
    end associate
  contains
    pure integer function ext_of(kt)
      integer, intent(in) :: kt
      ext_of = spec_index_ext(tr%mmax, tr%m_of(kt), tr%n_of(kt))
    end function ext_of
  end subroutine spectral_tendencies

  subroutine advance(tr, vert, si, dt, robert, williams, diffuse_humidity, work, state)
    !! One semi-implicit leapfrog step (a forward step of length dt when the
    !! leapfrog has not started), hyperdiffusion and time filter; the time
    !! levels move on by one. Written on whole (nlev, nspec) arrays; the
    !! implicit solve is one matrix product per total wavenumber n.
    type(spectral_transform), intent(in) :: tr
    type(sigma_levels), intent(in) :: vert
    type(semi_implicit), intent(in) :: si
    real(wp), intent(in) :: dt, robert, williams
    logical, intent(in) :: diffuse_humidity
    type(dynamics_workspace), intent(in) :: work
    type(model_state), intent(inout) :: state
    complex(wp), dimension(vert%nlev, tr%nspec) :: t_star, rhs, d_bar, x_new
    complex(wp), dimension(tr%nspec) :: p_star, p_bar, p_new
    real(wp) :: h, c(tr%nspec), damp(tr%nspec), damp_q(tr%nspec)
    integer :: k, ih, old, nl
    logical :: leapfrog

    nl = vert%nlev
    leapfrog = state%leapfrog_started
    if (leapfrog) then
      h = dt
      ih = 2
      old = previous
    else
      h = 0.5_wp * dt
      ih = 1
      old = current
    end if
    c = -tr%lap
    damp = 1.0_wp / (1.0_wp + 2.0_wp * h * si%damping(tr%n_of))
    damp_q = 1.0_wp
    if (diffuse_humidity) damp_q = damp

    ! temperature and ln ps without their gravity-wave terms, at the centred time
    ! (the explicit tendency holds -tau D(n); add it back)
    t_star = state%tmp(:, :, old) + h * (work%tmp_t + real_matmul(vert%tau, state%div(:, :, current)))
    p_star = state%lnps(:, old) + h * work%lnps_t
    rhs = real_matmul(vert%hydro, t_star)
    do k = 1, tr%nspec
      rhs(:, k) = state%div(:, k, old) + h * work%div_t(:, k) + h * c(k) * (rhs(:, k) + rd * si%t_ref * p_star(k))
    end do
    call solve_by_wavenumber(rhs, d_bar)
    p_bar = p_star - h * matmul(vert%dsigma, d_bar)
    x_new = 2.0_wp * (t_star - h * real_matmul(vert%tau, d_bar)) - state%tmp(:, :, old)
    call finish(state%tmp, x_new, damp)
    x_new = 2.0_wp * d_bar - state%div(:, :, old)
    call finish(state%div, x_new, damp)
    p_new = 2.0_wp * p_bar - state%lnps(:, old)
    x_new = state%vor(:, :, old) + 2.0_wp * h * work%vor_t
    call finish(state%vor, x_new, damp)
    if (work%humidity) then
      x_new = state%hum(:, :, old) + 2.0_wp * h * work%hum_t
      call finish(state%hum, x_new, damp_q)
    end if
    if (leapfrog) then
      call filter_lnps(state%lnps, p_new)
    else
      state%lnps(:, previous) = state%lnps(:, current)
    end if
    state%lnps(:, current) = p_new
    state%leapfrog_started = .true.
    state%step = state%step + 1
  contains
    function real_matmul(a, x) result(y)
      !! a x for a real matrix and complex columns, as two real products.
      real(wp), intent(in) :: a(:, :)
      complex(wp), intent(in) :: x(:, :)
      complex(wp) :: y(size(a, 1), size(x, 2))
      real(wp) :: xp(size(x, 1), size(x, 2)), yr(size(a, 1), size(x, 2)), yi(size(a, 1), size(x, 2))
      xp = real(x, wp)
      yr = matmul(a, xp)
      xp = aimag(x)
      yi = matmul(a, xp)
      y = cmplx(yr, yi, wp)
    end function real_matmul

    subroutine solve_by_wavenumber(b, x)
      !! x(:, k) = inverse(n_k) b(:, k), gathering the coefficients of each n.
      complex(wp), intent(in) :: b(:, :)
      complex(wp), intent(out) :: x(:, :)
      real(wp) :: g(nl, 2 * (tr%mmax + 1)), r(nl, 2 * (tr%mmax + 1))
      integer :: n, m, kk, col
      do n = 0, tr%mmax
        col = 0
        do m = 0, n
          kk = spec_index_of(m, n)
          g(:, col + 1) = real(b(:, kk), wp)
          g(:, col + 2) = aimag(b(:, kk))
          col = col + 2
        end do
        r(:, 1:col) = matmul(si%inverse(:, :, n, ih), g(:, 1:col))
        col = 0
        do m = 0, n
          kk = spec_index_of(m, n)
          x(:, kk) = cmplx(r(:, col + 1), r(:, col + 2), wp)
          col = col + 2
        end do
      end do
    end subroutine solve_by_wavenumber

    pure integer function spec_index_of(m, n)
      integer, intent(in) :: m, n
      spec_index_of = m * (tr%mmax + 1) - (m * (m - 1)) / 2 + (n - m) + 1
    end function spec_index_of

    subroutine finish(x, x_new, factor)
      !! Implicit hyperdiffusion of the new level, then the Robert-Asselin-
      !! Williams filter: d = nu (x(n-1) - 2 x(n) + x(n+1)); x(n) + alpha d
      !! becomes the previous level, x(n+1) - (1-alpha) d the current one.
      complex(wp), intent(inout) :: x(:, :, :)
      complex(wp), intent(inout) :: x_new(:, :)
      real(wp), intent(in) :: factor(:)
      complex(wp) :: d(nl)
      integer :: kk
      do kk = 1, size(x_new, 2)
        x_new(:, kk) = factor(kk) * x_new(:, kk)
        if (leapfrog) then
          d = robert * (x(:, kk, previous) - 2.0_wp * x(:, kk, current) + x_new(:, kk))
          x(:, kk, previous) = x(:, kk, current) + williams * d
          x(:, kk, current) = x_new(:, kk) - (1.0_wp - williams) * d
        else
          x(:, kk, previous) = x(:, kk, current)
          x(:, kk, current) = x_new(:, kk)
        end if
      end do
    end subroutine finish

    subroutine filter_lnps(x, x_new)
      complex(wp), intent(inout) :: x(:, :)
      complex(wp), intent(inout) :: x_new(:)
      complex(wp) :: d(size(x_new))
      d = robert * (x(:, previous) - 2.0_wp * x(:, current) + x_new)
      x(:, previous) = x(:, current) + williams * d
      x_new = x_new - (1.0_wp - williams) * d
    end subroutine filter_lnps
  end subroutine advance

end module gcm_dynamics
