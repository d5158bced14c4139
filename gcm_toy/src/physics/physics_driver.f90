module physics_driver
  !! The column physics of the moist aquaplanet for a batch of columns,
  !! SPEEDY style: every scheme sees the same input state and returns
  !! tendencies, which are summed.
  !!
  !!   1. host: SST (Qobs unless the host passes its own) and TOA insolation
  !!   2. host: bulk surface fluxes            -> shflx, lhflx, evap, stress
  !!   3. host: boundary-layer diffusion        -> dT, dq, du, dv
  !!   4. the emulated physics: scheme%compute  -> dT, dq, FSNT/FSNS/FLNT/FLNS, precip
  !!      (the reference physics, or a network: THE replacement point)
  !!   5. sum; fill any negative humidity conservatively within its column
  use iso_fortran_env, only: real64, int64
  use gcm_constants, only: gravity
  use ieee_arithmetic, only: ieee_is_finite
  use gcm_status, only: gcm_ok, gcm_err_state, gcm_err_nonfinite
  use physics_configuration, only: physics_config, physics_config_validate
  use sea_surface, only: sst_qobs
  use insolation, only: toa_insolation
  use surface_fluxes, only: compute_surface_fluxes
  use boundary_layer, only: compute_boundary_layer
  use emulated_physics, only: emulated_physics_scheme, check_column_geometry
  use column_physics_io, only: column_inputs, column_outputs, set_column_inputs, reserve
  implicit none
  private
  public :: physics_diagnostics, physics_driver_step

  type :: physics_diagnostics
    !! Per-column diagnostics of the last physics_driver_step call (the
    !! emulator's inputs and outputs among them); allocated by the driver.
    real(real64), allocatable :: sst(:)      !! sea-surface temperature [K]
    real(real64), allocatable :: solin(:)    !! TOA insolation [W m-2]
    real(real64), allocatable :: shflx(:)    !! sensible heat flux, upward [W m-2]
    real(real64), allocatable :: lhflx(:)    !! latent heat flux, upward [W m-2]
    real(real64), allocatable :: evap(:)     !! evaporation [kg m-2 s-1]
    real(real64), allocatable :: taux(:), tauy(:)  !! surface stress on the atmosphere [N m-2]
    type(column_inputs) :: emulated_inputs
      !! the emulated physics' inputs (the host's state, insolation and fluxes)
    type(column_outputs) :: emulated
      !! the emulated physics' outputs: its part of dT/dt and dq/dt, the
      !! CAM-sign radiative fluxes [W m-2] and precipitation [kg m-2 s-1]
    real(real64), allocatable :: q_filled(:)  !! water moved by the negative-humidity filler [kg m-2]
  end type physics_diagnostics

contains

  subroutine physics_driver_step(config, scheme, ncol, nlev, dt, time_seconds, step, seed, column_ids, &
                                lat, lon, sigma, sigma_half, t, q, u, v, ps, &
                                dtdt, dqdt, dudt, dvdt, diag, stat, msg, sst, fill_humidity)
    type(physics_config), intent(in) :: config
    class(emulated_physics_scheme), intent(inout) :: scheme  !! reference physics or emulator
    integer, intent(in) :: ncol, nlev
    real(real64), intent(in) :: dt             !! time the tendencies act over [s] (2 dt for a leapfrog host)
    real(real64), intent(in) :: time_seconds   !! model time at the start of the step [s]
    integer(int64), intent(in) :: step         !! GCM step number
    integer(int64), intent(in) :: seed         !! run seed
    integer, intent(in) :: column_ids(:)       !! global column ids (ncol)
    real(real64), intent(in) :: lat(:), lon(:) !! column latitude and longitude (ncol) [radians]
    real(real64), intent(in) :: sigma(:), sigma_half(0:)
    real(real64), intent(in) :: t(:, :), q(:, :), u(:, :), v(:, :)  !! state (nlev, ncol)
    real(real64), intent(in) :: ps(:)          !! surface pressure (ncol) [Pa]
    real(real64), intent(out) :: dtdt(:, :)    !! total physics tendencies (nlev, ncol)
    real(real64), intent(out) :: dqdt(:, :)
    real(real64), intent(out) :: dudt(:, :), dvdt(:, :)
    type(physics_diagnostics), intent(inout) :: diag
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    real(real64), intent(in), optional :: sst(:)  !! sea-surface temperature (ncol) [K]; default Qobs(lat)
    logical, intent(in), optional :: fill_humidity
      !! fill negative humidity of the summed tendencies (step 5); default .true.
      !! A host running an emulator may pass .false. so that nothing repairs its output.

    real(real64), allocatable :: dtdt_pbl(:, :), dqdt_pbl(:, :)

    call physics_config_validate(config, stat, msg)
    if (stat /= gcm_ok) return
    call check_column_geometry(ncol, nlev, sigma, sigma_half, stat, msg)
    if (stat /= gcm_ok) return
    stat = gcm_err_state
    if (any(shape(t) /= [nlev, ncol]) .or. any(shape(q) /= [nlev, ncol]) .or. &
        any(shape(u) /= [nlev, ncol]) .or. any(shape(v) /= [nlev, ncol]) .or. &
        any(shape(dtdt) /= [nlev, ncol]) .or. any(shape(dqdt) /= [nlev, ncol]) .or. &
        any(shape(dudt) /= [nlev, ncol]) .or. any(shape(dvdt) /= [nlev, ncol])) then
      msg = 'physics driver: T, q, u, v and their tendencies must have shape (nlev, ncol)'
      return
    end if
    if (size(ps) /= ncol .or. size(lat) /= ncol .or. size(lon) /= ncol .or. size(column_ids) /= ncol) then
      msg = 'physics driver: ps, lat, lon and column_ids need ncol values'
      return
    end if
    if (present(sst)) then
      if (size(sst) /= ncol) then
        msg = 'physics driver: sst needs ncol values'
        return
      end if
    end if
    call allocate_diagnostics(diag, ncol)
    allocate(dtdt_pbl(nlev, ncol), dqdt_pbl(nlev, ncol))

    ! 1-3: the host physics, never emulated.
    if (present(sst)) then
      diag%sst = sst
    else
      diag%sst = sst_qobs(lat) + config%sst_offset
    end if
    diag%solin = toa_insolation(lat, lon, time_seconds, config)
    call compute_surface_fluxes(config, ncol, nlev, t, q, u, v, ps, sigma, diag%sst, &
                                diag%shflx, diag%lhflx, diag%evap, diag%taux, diag%tauy)
    call compute_boundary_layer(config, ncol, nlev, dt, t, q, u, v, ps, sigma, sigma_half, &
                                diag%shflx, diag%evap, diag%taux, diag%tauy, &
                                dtdt_pbl, dqdt_pbl, dudt, dvdt)

    ! 4: the emulated physics.
    call set_column_inputs(diag%emulated_inputs, t, q, ps, diag%solin, diag%shflx, diag%lhflx, sigma, sigma_half, &
                           dt, step, column_ids, seed)
    call scheme%compute(config, diag%emulated_inputs, diag%emulated, stat, msg)
    if (stat /= gcm_ok) return
    call check_scheme_outputs(stat, msg)
    if (stat /= gcm_ok) return

    ! 5: sum.
    dtdt = dtdt_pbl + diag%emulated%dtdt
    dqdt = dqdt_pbl + diag%emulated%dqdt
    diag%q_filled = 0.0_real64
    if (.not. present(fill_humidity)) then
      call fill_negative_humidity(ncol, nlev, dt, q, ps, sigma_half, dqdt, diag%q_filled)
    else if (fill_humidity) then
      call fill_negative_humidity(ncol, nlev, dt, q, ps, sigma_half, dqdt, diag%q_filled)
    end if
    stat = gcm_ok
    msg = ''

  contains

    subroutine check_scheme_outputs(stat, msg)
      !! An emulator can return NaN or infinity: name the first bad column.
      integer, intent(out) :: stat
      character(len=:), allocatable, intent(out) :: msg
      character(len=120) :: line
      integer :: i
      do i = 1, ncol
        if (.not. (all(ieee_is_finite(diag%emulated%dtdt(:, i))) .and. &
                   all(ieee_is_finite(diag%emulated%dqdt(:, i))) .and. &
                   ieee_is_finite(diag%emulated%fsnt(i)) .and. ieee_is_finite(diag%emulated%fsns(i)) .and. &
                   ieee_is_finite(diag%emulated%flnt(i)) .and. ieee_is_finite(diag%emulated%flns(i)) .and. &
                   ieee_is_finite(diag%emulated%precip(i)))) then
          write(line, '(a,i0,a,i0,a)') 'physics driver: the emulated physics returned a non-finite value in column ', &
            i, ' (id ', column_ids(i), ')'
          stat = gcm_err_nonfinite
          msg = trim(line)
          return
        end if
      end do
      stat = gcm_ok
      msg = ''
    end subroutine check_scheme_outputs

  end subroutine physics_driver_step

  subroutine allocate_diagnostics(diag, ncol)
    type(physics_diagnostics), intent(inout) :: diag
    integer, intent(in) :: ncol
    call reserve(diag%sst, ncol); call reserve(diag%solin, ncol); call reserve(diag%shflx, ncol)
    call reserve(diag%lhflx, ncol); call reserve(diag%evap, ncol); call reserve(diag%taux, ncol)
    call reserve(diag%tauy, ncol); call reserve(diag%q_filled, ncol)
  end subroutine allocate_diagnostics

  subroutine fill_negative_humidity(ncol, nlev, dt, q, ps, sigma_half, dqdt, filled)
    !! Each scheme keeps q >= 0 on its own, but their sum can overshoot. Where
    !! q + dt dq/dt < 0, set it to zero and take the water from the column's
    !! positive levels in proportion to their content; the column total is
    !! unchanged. filled(i) is the water moved [kg m-2] (zero almost always).
    integer, intent(in) :: ncol, nlev
    real(real64), intent(in) :: dt, q(:, :), ps(:), sigma_half(0:)
    real(real64), intent(inout) :: dqdt(:, :)
    real(real64), intent(out) :: filled(:)
    real(real64) :: qnew(nlev), mass(nlev), deficit, available
    integer :: i

    do i = 1, ncol
      filled(i) = 0.0_real64
      qnew = q(:, i) + dt * dqdt(:, i)
      if (all(qnew >= 0)) cycle
      mass = (sigma_half(1:nlev) - sigma_half(0:nlev-1)) * ps(i) / gravity
      deficit = -sum(min(qnew, 0.0_real64) * mass)
      available = sum(max(qnew, 0.0_real64) * mass)
      if (available > deficit) then
        qnew = max(qnew, 0.0_real64) * (1.0_real64 - deficit / available)
      else
        qnew = 0.0_real64    ! the column holds no water to give: it ends dry
      end if
      filled(i) = deficit
      dqdt(:, i) = (qnew - q(:, i)) / dt
    end do
  end subroutine fill_negative_humidity

end module physics_driver
