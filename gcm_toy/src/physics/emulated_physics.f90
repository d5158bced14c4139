module emulated_physics
  !! The cloud and radiation physics that emulators replace ("the emulated
  !! physics"): its interface, and the reference implementation.
  !!
  !! Interface (the emulator's inputs and outputs, SP-CAM layout), the
  !! derived types of `column_physics_io`:
  !!   column_inputs   T(lev), q(lev), ps, solin, shflx, lhflx, with the sigma
  !!                   geometry, the time step and the (step, column id,
  !!                   seed) key of the reference's random numbers
  !!   column_outputs  dT/dt(lev), dq/dt(lev), FSNT, FSNS, FLNT, FLNS, precip
  !! and the physics configuration: `compute(config, inputs, outputs, stat, msg)`.
  !!
  !! The reference is a toy superparameterization. Each GCM column is run as
  !! n_subcolumns subcolumns, each started from the column state plus its own
  !! seeded perturbation and sub-stepped n_substeps times through
  !!   convection -> condensation -> (clouds -> radiation every
  !!   radiation_interval sub-steps) ;
  !! the column tendencies, fluxes and precipitation are the subcolumn means.
  !!
  !! Stochastic elements, each subcolumn j drawing from Philox keyed by (seed,
  !! step, column id, j):
  !! * temperature and humidity perturbations below sigma = pert_sigma_top,
  !!   growing linearly to the surface, with standard deviations set by the
  !!   surface fluxes (the thermal excess b F / w_m of Holtslag & Boville 1993,
  !!   at least pert_t_min and pert_q_min_rel q): Gaussian, truncated at
  !!   pert_truncation, centred over the subcolumns so the subcolumn mean is
  !!   the column state;
  !! * the condensation (and cloud) RH threshold, uniform in
  !!   [cond_rh_max - cond_rh_spread, cond_rh_max];
  !! * the Betts-Miller reference RH, uniform in sbm_rh +- sbm_rh_spread/2.
  !!
  !! Budgets (to rounding, per column): -sum(dq/dt dp/g) = precip and
  !! sum(cp dT/dt dp/g) = L_v precip + FSNT - FSNS - FLNT + FLNS; and
  !! q + dt dq/dt >= 0 wherever q >= 0 (to rounding: a few 1e-20 kg/kg).
  !!
  !! The surface radiates at the lowest-level temperature brought
  !! dry-adiabatically to the surface plus the skin-air difference implied by
  !! the sensible heat flux at wind skin_wind_speed; the zenith angle is
  !! solin / S0 (circular orbit). So the inputs above are all the reference uses.
  use iso_fortran_env, only: real64, int64
  use ieee_arithmetic, only: ieee_is_finite
  use gcm_constants, only: gravity, rd, cp, kappa, latent_heat_vap, p_reference
  use gcm_status, only: gcm_ok, gcm_err_config, gcm_err_state, &
                            gcm_err_unphysical, gcm_err_nonfinite
  use physics_configuration, only: physics_config, physics_config_validate
  use column_physics_io, only: column_inputs, column_outputs, reserve_column_outputs, reserve
  use physics_random, only: random_uniform4, random_normal_pair
  use convection, only: betts_miller_convection
  use condensation, only: large_scale_condensation, evaporate_convective_rain
  use clouds, only: diagnose_clouds
  use radiation, only: gray_radiation
  implicit none
  private
  public :: emulated_physics_scheme, reference_emulated_physics, emulated_physics_reference, &
            check_column_geometry

  type, abstract :: emulated_physics_scheme
    !! Anything that maps the emulator inputs to the emulator outputs: the
    !! reference physics below, or a network (extend this type and implement
    !! `compute`). The physics driver calls exactly this.
  contains
    procedure(emulated_compute), deferred :: compute
  end type emulated_physics_scheme

  abstract interface
    subroutine emulated_compute(self, config, inputs, outputs, stat, msg)
      !! The emulated physics of the batch `inputs`: `outputs` sized (by the
      !! scheme) and set for every column, or stat /= gcm_ok and a
      !! one-line msg.
      import :: emulated_physics_scheme, physics_config, column_inputs, column_outputs
      class(emulated_physics_scheme), intent(inout) :: self
      type(physics_config), intent(in) :: config
      type(column_inputs), intent(in) :: inputs
      type(column_outputs), intent(inout) :: outputs
      integer, intent(out) :: stat
      character(len=:), allocatable, intent(out) :: msg
    end subroutine emulated_compute
  end interface

  type, extends(emulated_physics_scheme) :: reference_emulated_physics
    !! The reference physics as a scheme. With keep_diagnostics, each call
    !! also stores the column-mean cloud fraction and grid-mean cloud water
    !! (nlev, ncol), convective precipitation (ncol) and radiative heating
    !! (nlev, ncol) of the last call.
    logical :: keep_diagnostics = .false.
    real(real64), allocatable :: cloud_fraction(:, :), cloud_water(:, :)
    real(real64), allocatable :: precip_convective(:), radiative_heating(:, :)
  contains
    procedure :: compute => reference_compute
  end type reference_emulated_physics

  real(real64), parameter :: t_min_valid = 100.0_real64, t_max_valid = 400.0_real64   !! [K]
  real(real64), parameter :: q_max_valid = 0.1_real64                                 !! [kg kg-1]
  real(real64), parameter :: ps_min_valid = 3.0e4_real64, ps_max_valid = 1.2e5_real64 !! [Pa]
  real(real64), parameter :: skin_offset_max = 10.0_real64                            !! [K]
  real(real64), parameter :: sigma_tolerance = 1.0e-12_real64

contains

  subroutine reference_compute(self, config, inputs, outputs, stat, msg)
    class(reference_emulated_physics), intent(inout) :: self
    type(physics_config), intent(in) :: config
    type(column_inputs), intent(in) :: inputs
    type(column_outputs), intent(inout) :: outputs
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer :: nlev, ncol

    nlev = inputs%nlev
    ncol = inputs%ncol
    if (self%keep_diagnostics) then
      call reserve(self%cloud_fraction, nlev, ncol)
      call reserve(self%cloud_water, nlev, ncol)
      call reserve(self%radiative_heating, nlev, ncol)
      call reserve(self%precip_convective, ncol)
      call emulated_physics_reference(config, inputs, outputs, stat, msg, &
                                      self%cloud_fraction, self%cloud_water, &
                                      self%precip_convective, self%radiative_heating)
    else
      call emulated_physics_reference(config, inputs, outputs, stat, msg)
    end if
  end subroutine reference_compute

  subroutine check_column_geometry(ncol, nlev, sigma, sigma_half, stat, msg)
    !! Check the sigma geometry shared by all physics: nlev >= 2, ncol >= 0,
    !! sigma_half(0) = 0 < ... < sigma_half(nlev) = 1, sigma(k) strictly between
    !! its half levels.
    integer, intent(in) :: ncol, nlev
    real(real64), intent(in) :: sigma(:), sigma_half(0:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer :: k

    stat = gcm_err_state
    msg = ''
    if (nlev < 2) then
      msg = 'physics: nlev must be >= 2'
    else if (ncol < 0) then
      msg = 'physics: ncol must be >= 0'
    else if (size(sigma) /= nlev .or. size(sigma_half) /= nlev + 1) then
      msg = 'physics: sigma needs nlev values and sigma_half nlev+1 (indices 0:nlev)'
    else if (abs(sigma_half(0)) > sigma_tolerance .or. abs(sigma_half(nlev) - 1) > sigma_tolerance) then
      msg = 'physics: sigma_half(0) must be 0 and sigma_half(nlev) must be 1'
    else
      do k = 1, nlev
        if (.not. (sigma_half(k-1) < sigma(k) .and. sigma(k) < sigma_half(k))) then
          write_msg: block
            character(len=80) :: line
            write(line, '(a,i0)') 'physics: sigma levels are not strictly increasing at level ', k
            msg = trim(line)
          end block write_msg
          return
        end if
      end do
      stat = gcm_ok
    end if
  end subroutine check_column_geometry

  subroutine emulated_physics_reference(config, inputs, outputs, stat, msg, &
                                        cloud_fraction, cloud_water, precip_convective, radiative_heating)
    !! The reference emulated physics for the batch `inputs` (ncol columns of
    !! nlev levels); `outputs` are sized here.
    type(physics_config), intent(in) :: config
    type(column_inputs), intent(in) :: inputs
    type(column_outputs), intent(inout) :: outputs
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    real(real64), intent(out), optional :: cloud_fraction(:, :)    !! mean cloud fraction (nlev, ncol)
    real(real64), intent(out), optional :: cloud_water(:, :)       !! mean grid-box cloud water (nlev, ncol) [kg kg-1]
    real(real64), intent(out), optional :: precip_convective(:)    !! convective part of precip [kg m-2 s-1]
    real(real64), intent(out), optional :: radiative_heating(:, :) !! radiative part of dtdt [K s-1]

    real(real64) :: col_cf(inputs%nlev), col_cw(inputs%nlev), col_qrad(inputs%nlev), col_pconv
    integer :: i, ncol, nlev

    ncol = inputs%ncol
    nlev = inputs%nlev
    call physics_config_validate(config, stat, msg)
    if (stat /= gcm_ok) return
    call check_column_geometry(ncol, nlev, inputs%sigma, inputs%sigma_half, stat, msg)
    if (stat /= gcm_ok) return
    call check_inputs(stat, msg)
    if (stat /= gcm_ok) return
    call reserve_column_outputs(outputs, nlev, ncol)

    !$omp parallel do schedule(dynamic, 8) private(col_cf, col_cw, col_qrad, col_pconv)
    do i = 1, ncol
      call reference_column(config, nlev, inputs%t(:, i), inputs%q(:, i), inputs%ps(i), inputs%sigma, &
                            inputs%sigma_half, inputs%solin(i), inputs%shflx(i), inputs%lhflx(i), inputs%dt, &
                            inputs%step, inputs%column_ids(i), inputs%seed, outputs%dtdt(:, i), outputs%dqdt(:, i), &
                            outputs%fsnt(i), outputs%fsns(i), outputs%flnt(i), outputs%flns(i), outputs%precip(i), &
                            col_cf, col_cw, col_pconv, col_qrad)
      if (present(cloud_fraction)) cloud_fraction(:, i) = col_cf
      if (present(cloud_water)) cloud_water(:, i) = col_cw
      if (present(precip_convective)) precip_convective(i) = col_pconv
      if (present(radiative_heating)) radiative_heating(:, i) = col_qrad
    end do
    !$omp end parallel do

  contains

    subroutine check_inputs(stat, msg)
      integer, intent(out) :: stat
      character(len=:), allocatable, intent(out) :: msg
      character(len=160) :: line
      integer :: j, k

      stat = gcm_err_state
      if (.not. (allocated(inputs%t) .and. allocated(inputs%q) .and. allocated(inputs%ps) .and. &
                 allocated(inputs%solin) .and. allocated(inputs%shflx) .and. allocated(inputs%lhflx) .and. &
                 allocated(inputs%column_ids))) then
        msg = 'emulated physics: the column inputs are not set (set_column_inputs)'
        return
      end if
      if (any(shape(inputs%t) /= [nlev, ncol]) .or. any(shape(inputs%q) /= [nlev, ncol])) then
        msg = 'emulated physics: T and q must have shape (nlev, ncol)'
        return
      end if
      if (size(inputs%ps) /= ncol .or. size(inputs%solin) /= ncol .or. size(inputs%shflx) /= ncol .or. &
          size(inputs%lhflx) /= ncol .or. size(inputs%column_ids) /= ncol) then
        msg = 'emulated physics: ps, solin, shflx, lhflx and column_ids need ncol values'
        return
      end if
      if (present(cloud_fraction)) then
        if (any(shape(cloud_fraction) /= [nlev, ncol])) then
          msg = 'emulated physics: cloud_fraction must have shape (nlev, ncol)'; return
        end if
      end if
      if (present(cloud_water)) then
        if (any(shape(cloud_water) /= [nlev, ncol])) then
          msg = 'emulated physics: cloud_water must have shape (nlev, ncol)'; return
        end if
      end if
      if (present(radiative_heating)) then
        if (any(shape(radiative_heating) /= [nlev, ncol])) then
          msg = 'emulated physics: radiative_heating must have shape (nlev, ncol)'; return
        end if
      end if
      if (present(precip_convective)) then
        if (size(precip_convective) /= ncol) then
          msg = 'emulated physics: precip_convective needs ncol values'; return
        end if
      end if
      stat = gcm_err_config
      if (.not. (inputs%dt > 0 .and. ieee_is_finite(inputs%dt))) then
        msg = 'emulated physics: dt must be positive and finite'
        return
      end if

      do j = 1, ncol
        stat = gcm_err_nonfinite
        if (.not. (all(ieee_is_finite(inputs%t(:, j))) .and. all(ieee_is_finite(inputs%q(:, j))) .and. &
                   ieee_is_finite(inputs%ps(j)) .and. ieee_is_finite(inputs%solin(j)) .and. &
                   ieee_is_finite(inputs%shflx(j)) .and. ieee_is_finite(inputs%lhflx(j)))) then
          write(line, '(a,i0,a,i0,a)') 'emulated physics: non-finite input in column ', j, &
                                      ' (id ', inputs%column_ids(j), ')'
          msg = trim(line)
          return
        end if
        stat = gcm_err_unphysical
        do k = 1, nlev
          if (inputs%t(k, j) < t_min_valid .or. inputs%t(k, j) > t_max_valid) then
            write(line, '(a,es10.3,a,i0,a,i0,a,i0,a)') 'emulated physics: temperature ', inputs%t(k, j), &
              ' K outside [100, 400] K at level ', k, ' of column ', j, ' (id ', inputs%column_ids(j), ')'
            msg = trim(line)
            return
          end if
          if (inputs%q(k, j) < 0 .or. inputs%q(k, j) > q_max_valid) then
            write(line, '(a,es10.3,a,i0,a,i0,a,i0,a)') 'emulated physics: specific humidity ', inputs%q(k, j), &
              ' outside [0, 0.1] kg/kg at level ', k, ' of column ', j, ' (id ', inputs%column_ids(j), ')'
            msg = trim(line)
            return
          end if
        end do
        if (inputs%ps(j) < ps_min_valid .or. inputs%ps(j) > ps_max_valid) then
          write(line, '(a,es10.3,a,i0,a,i0,a)') 'emulated physics: surface pressure ', inputs%ps(j), &
            ' Pa outside [3e4, 1.2e5] Pa in column ', j, ' (id ', inputs%column_ids(j), ')'
          msg = trim(line)
          return
        end if
        if (inputs%solin(j) < 0 .or. inputs%solin(j) > 1.0001_real64 * config%solar_constant) then
          write(line, '(a,es10.3,a,i0,a,i0,a)') 'emulated physics: insolation ', inputs%solin(j), &
            ' W/m2 outside [0, S0] in column ', j, ' (id ', inputs%column_ids(j), ')'
          msg = trim(line)
          return
        end if
      end do
      stat = gcm_ok
      msg = ''
    end subroutine check_inputs

  end subroutine emulated_physics_reference

  subroutine reference_column(config, nlev, t, q, ps, sigma, sigma_half, solin, shflx, lhflx, dt, &
                              step, column_id, seed, dtdt, dqdt, fsnt, fsns, flnt, flns, precip, &
                              mean_cloud_fraction, mean_cloud_water, precip_convective, radiative_heating)
    !! One GCM column: all subcolumns, all sub-steps, then the subcolumn means.
    type(physics_config), intent(in) :: config
    integer, intent(in) :: nlev
    real(real64), intent(in) :: t(nlev), q(nlev), ps, sigma(nlev), sigma_half(0:nlev)
    real(real64), intent(in) :: solin, shflx, lhflx, dt
    integer(int64), intent(in) :: step, seed
    integer, intent(in) :: column_id
    real(real64), intent(out) :: dtdt(nlev), dqdt(nlev)
    real(real64), intent(out) :: fsnt, fsns, flnt, flns, precip
    real(real64), intent(out) :: mean_cloud_fraction(nlev), mean_cloud_water(nlev)
    real(real64), intent(out) :: precip_convective, radiative_heating(nlev)

    integer :: nsub, j, s, k, k_top, k_lcl
    real(real64) :: p(nlev), lnp(nlev), pk(nlev), mass(nlev), dp_over_p0(nlev), weight(nlev)
    real(real64) :: xi(config%n_subcolumns), eta(config%n_subcolumns)
    real(real64) :: rh_crit(config%n_subcolumns), rh_ref(config%n_subcolumns)
    real(real64) :: tj(nlev), qj(nlev), tj0(nlev), qj0(nlev)
    real(real64) :: dt_conv(nlev), dq_conv(nlev), dt_cond(nlev), dq_cond(nlev)
    real(real64) :: qrad(nlev), cf(nlev), cw(nlev)
    real(real64) :: u(4), z(2), dts, t_air, rho_surface, t_skin, sd_t, sd_q, q_cap
    real(real64) :: p_conv, p_cond, cape, rfsnt, rfsns, rflnt, rflns
    real(real64) :: rain_source(nlev), drying, p_conv_cloud

    nsub = config%n_subcolumns
    dts = dt / config%n_substeps

    p = sigma * ps
    lnp = log(p)
    pk = (p / p_reference)**kappa
    mass = (sigma_half(1:nlev) - sigma_half(0:nlev-1)) * ps / gravity
    dp_over_p0 = mass * gravity / p_reference
    weight = max(0.0_real64, (sigma - config%pert_sigma_top) / (1.0_real64 - config%pert_sigma_top))

    ! Surface air and skin temperatures, and the perturbation amplitudes.
    t_air = t(nlev) * sigma(nlev)**(-kappa)
    rho_surface = ps / (rd * t_air)
    t_skin = t_air + max(-skin_offset_max, min(skin_offset_max, &
             shflx / (rho_surface * cp * config%heat_exchange_coefficient * config%skin_wind_speed)))
    sd_t = max(config%pert_t_min, config%pert_excess_coef * max(shflx, 0.0_real64) / &
               (rho_surface * cp * config%pert_velocity_scale))
    sd_q = max(config%pert_q_min_rel * q(nlev), config%pert_excess_coef * max(lhflx, 0.0_real64) / &
               (rho_surface * latent_heat_vap * config%pert_velocity_scale))
    ! Keep every perturbed humidity above half its column value: |centred draw| <= 2 truncation.
    q_cap = huge(1.0_real64)
    do k = 1, nlev
      if (weight(k) > 0) q_cap = min(q_cap, q(k) / (4.0_real64 * config%pert_truncation * weight(k)))
    end do
    sd_q = min(sd_q, q_cap)

    do j = 1, nsub
      u = random_uniform4(seed, step, column_id, j - 1)
      z = random_normal_pair(u(1), u(2))
      xi(j) = max(-config%pert_truncation, min(config%pert_truncation, z(1)))
      eta(j) = max(-config%pert_truncation, min(config%pert_truncation, z(2)))
      rh_crit(j) = config%cond_rh_max - config%cond_rh_spread * u(3)
      rh_ref(j) = config%sbm_rh + config%sbm_rh_spread * (u(4) - 0.5_real64)
    end do
    xi = xi - sum(xi) / nsub
    eta = eta - sum(eta) / nsub

    dtdt = 0.0_real64
    dqdt = 0.0_real64
    fsnt = 0.0_real64
    fsns = 0.0_real64
    flnt = 0.0_real64
    flns = 0.0_real64
    precip = 0.0_real64
    precip_convective = 0.0_real64
    mean_cloud_fraction = 0.0_real64
    mean_cloud_water = 0.0_real64
    radiative_heating = 0.0_real64

    do j = 1, nsub
      tj0 = t + weight * sd_t * xi(j)
      qj0 = q + weight * sd_q * eta(j)
      tj = tj0
      qj = qj0
      do s = 1, config%n_substeps
        call betts_miller_convection(config, nlev, dts, rh_ref(j), p, lnp, pk, mass, tj, qj, &
                                     dt_conv, dq_conv, p_conv, cape, k_top, k_lcl)
        tj = tj + dts * dt_conv
        qj = max(qj + dts * dq_conv, 0.0_real64)     ! max() only removes rounding below zero
        p_conv_cloud = p_conv                          ! rain formed in the cloud (sets its cover)

        if (p_conv > 0 .and. config%conv_reevap_coef > 0) then
          ! The rain forms where convection dries the column, in proportion to
          ! that drying, and evaporates on its way down.
          rain_source = max(-dq_conv, 0.0_real64) * mass
          drying = sum(rain_source)
          if (drying > 0) then
            rain_source = rain_source * (p_conv * dts / drying)
            call evaporate_convective_rain(config, nlev, dts, rh_crit(j), p, mass, tj, qj, rain_source, &
                                           dt_cond, dq_cond, p_conv)
            tj = tj + dts * dt_cond
            qj = max(qj + dts * dq_cond, 0.0_real64)
          end if
        end if

        call large_scale_condensation(config, nlev, dts, rh_crit(j), p, mass, tj, qj, dt_cond, dq_cond, p_cond)
        tj = tj + dts * dt_cond
        qj = max(qj + dts * dq_cond, 0.0_real64)

        if (mod(s - 1, config%radiation_interval) == 0) then
          call diagnose_clouds(config, nlev, rh_crit(j), p_conv_cloud, k_top, k_lcl, p, tj, qj, cf, cw)
          call gray_radiation(config, nlev, solin, t_skin, mass, dp_over_p0, tj, qj, cf, cw, &
                              qrad, rfsnt, rfsns, rflnt, rflns)
        end if
        tj = tj + dts * qrad

        precip = precip + dts * (p_conv + p_cond)
        precip_convective = precip_convective + dts * p_conv
        fsnt = fsnt + dts * rfsnt
        fsns = fsns + dts * rfsns
        flnt = flnt + dts * rflnt
        flns = flns + dts * rflns
        mean_cloud_fraction = mean_cloud_fraction + dts * cf
        mean_cloud_water = mean_cloud_water + dts * cf * cw
        radiative_heating = radiative_heating + dts * qrad
      end do
      dtdt = dtdt + (tj - tj0)
      dqdt = dqdt + (qj - qj0)
    end do

    ! Means over subcolumns (and sub-steps): every accumulator holds nsub * dt worth.
    dtdt = dtdt / (nsub * dt)
    dqdt = dqdt / (nsub * dt)
    fsnt = fsnt / (nsub * dt)
    fsns = fsns / (nsub * dt)
    flnt = flnt / (nsub * dt)
    flns = flns / (nsub * dt)
    precip = precip / (nsub * dt)
    precip_convective = precip_convective / (nsub * dt)
    mean_cloud_fraction = mean_cloud_fraction / (nsub * dt)
    mean_cloud_water = mean_cloud_water / (nsub * dt)
    radiative_heating = radiative_heating / (nsub * dt)
  end subroutine reference_column

end module emulated_physics
