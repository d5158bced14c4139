module test_driver_schemes
  !! A stand-in emulator for the test: a scheme that returns fixed outputs,
  !! to show the driver calls whatever scheme it is given.
  use iso_fortran_env, only: real64
  use physics_configuration, only: physics_config
  use gcm_status, only: gcm_ok
  use emulated_physics, only: emulated_physics_scheme
  use column_physics_io, only: column_inputs, column_outputs, reserve_column_outputs
  implicit none
  private
  public :: constant_scheme

  type, extends(emulated_physics_scheme) :: constant_scheme
    real(real64) :: heating = 0    !! K/s on every level
    real(real64) :: drying = 0     !! level 10 loses drying * q / dt
    integer :: calls = 0
  contains
    procedure :: compute => constant_compute
  end type constant_scheme

contains

  subroutine constant_compute(self, config, inputs, outputs, stat, msg)
    class(constant_scheme), intent(inout) :: self
    type(physics_config), intent(in) :: config
    type(column_inputs), intent(in) :: inputs
    type(column_outputs), intent(inout) :: outputs
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    self%calls = self%calls + 1
    call reserve_column_outputs(outputs, inputs%nlev, inputs%ncol)
    outputs%dtdt = self%heating
    outputs%dqdt = 0
    outputs%dqdt(10, :) = -self%drying * inputs%q(10, :) / inputs%dt
    outputs%fsnt = 0
    outputs%fsns = 0
    outputs%flnt = 0
    outputs%flns = 0
    outputs%precip = 0
    stat = gcm_ok
    msg = ''
  end subroutine constant_compute

end module test_driver_schemes

program test_physics_driver
  !! The physics driver on a batch of columns: total budgets including the
  !! surface, the emulator replacement point, batch-split independence.
  use iso_fortran_env, only: real64, int64, output_unit
  use gcm_constants, only: pi, cp, latent_heat_vap
  use ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use gcm_status, only: gcm_ok, gcm_err_nonfinite
  use physics_configuration, only: physics_config
  use emulated_physics, only: reference_emulated_physics
  use physics_driver, only: physics_diagnostics, physics_driver_step
  use physics_random, only: random_uniform4
  use physics_test_support, only: check, check_summary, uniform_sigma, random_columns, column_mass
  use test_driver_schemes, only: constant_scheme
  implicit none

  integer, parameter :: nlev = 20, ncol = 128
  real(real64) :: sigma(nlev), sigma_half(0:nlev)
  real(real64) :: t(nlev, ncol), q(nlev, ncol), u(nlev, ncol), v(nlev, ncol), ps(ncol)
  real(real64) :: solin(ncol), sh(ncol), lh(ncol), lat(ncol), lon(ncol), mass(nlev), r(4)
  real(real64) :: dtdt(nlev, ncol), dqdt(nlev, ncol), dudt(nlev, ncol), dvdt(nlev, ncol)
  real(real64) :: dtdt2(nlev, ncol), dqdt2(nlev, ncol), dudt2(nlev, ncol), dvdt2(nlev, ncol)
  real(real64) :: dt, worst_water, worst_energy, worst_momentum, scale, residual
  integer :: ids(ncol), i, stat
  character(len=:), allocatable :: msg
  type(physics_config) :: config
  type(reference_emulated_physics) :: reference
  type(constant_scheme) :: constant
  type(physics_diagnostics) :: diag, diag2

  dt = 1200
  call uniform_sigma(nlev, sigma, sigma_half)
  call random_columns(ncol, nlev, sigma, 77_int64, t, q, ps, solin, sh, lh, 0.5_real64)
  do i = 1, ncol
    r = random_uniform4(3_int64, 0_int64, i, 0)
    lat = 0
    lat(i) = (r(1) - 0.5_real64) * pi
    lon(i) = r(2) * 2 * pi
    u(:, i) = 20 * (r(3) - 0.3_real64)
    v(:, i) = 6 * (r(4) - 0.5_real64)
    ids(i) = i
  end do
  do i = 1, ncol
    r = random_uniform4(3_int64, 0_int64, i, 0)
    lat(i) = (r(1) - 0.5_real64) * pi
  end do
  config = physics_config()

  call physics_driver_step(config, reference, ncol, nlev, dt, 30000.0_real64, 5_int64, 11_int64, ids, lat, lon, &
                          sigma, sigma_half, t, q, u, v, ps, dtdt, dqdt, dudt, dvdt, diag, stat, msg)
  call check(stat == gcm_ok, 'driver: runs with the reference physics ('//msg//')')

  worst_water = 0
  worst_energy = 0
  worst_momentum = 0
  do i = 1, ncol
    mass = column_mass(nlev, ps(i), sigma_half)
    scale = sum(abs(dqdt(:, i)) * mass) + abs(diag%evap(i)) + diag%emulated%precip(i)
    residual = abs(sum(dqdt(:, i) * mass) - (diag%evap(i) - diag%emulated%precip(i)))
    worst_water = max(worst_water, residual / scale)
    scale = sum(abs(cp * dtdt(:, i)) * mass) + abs(diag%shflx(i)) + latent_heat_vap * diag%emulated%precip(i) + &
            abs(diag%emulated%fsnt(i)) + abs(diag%emulated%fsns(i)) + abs(diag%emulated%flnt(i)) + &
            abs(diag%emulated%flns(i))
    residual = abs(sum(cp * dtdt(:, i) * mass) - (diag%shflx(i) + latent_heat_vap * diag%emulated%precip(i) + &
               diag%emulated%fsnt(i) - diag%emulated%fsns(i) - diag%emulated%flnt(i) + diag%emulated%flns(i)))
    worst_energy = max(worst_energy, residual / scale)
    worst_momentum = max(worst_momentum, abs(sum(dudt(:, i) * mass) - diag%taux(i)) / &
                                         (sum(abs(dudt(:, i)) * mass) + abs(diag%taux(i))))
  end do
  write(output_unit, '(a,3es10.2)') 'driver: worst relative water, energy, momentum residuals', &
    worst_water, worst_energy, worst_momentum
  call check(worst_water < 1e-10_real64, 'driver: column water changes by E - P')
  call check(worst_energy < 1e-10_real64, 'driver: column enthalpy changes by SH + L P + radiative convergence')
  call check(worst_momentum < 1e-10_real64, 'driver: column momentum changes by the surface stress')
  call check(all(q + dt * dqdt >= -1e-15_real64), 'driver: humidity stays non-negative')
  call check(all(diag%sst >= 273.15_real64 .and. diag%sst <= 300.15_real64), 'driver: SST from the Qobs profile')
  call check(any(diag%solin > 0) .and. any(diag%solin == 0), 'driver: day and night columns')

  ! The same batch split in two gives the same bits.
  call physics_driver_step(config, reference, 50, nlev, dt, 30000.0_real64, 5_int64, 11_int64, ids(1:50), lat(1:50), &
                          lon(1:50), sigma, sigma_half, t(:, 1:50), q(:, 1:50), u(:, 1:50), v(:, 1:50), ps(1:50), &
                          dtdt2(:, 1:50), dqdt2(:, 1:50), dudt2(:, 1:50), dvdt2(:, 1:50), diag2, stat, msg)
  call physics_driver_step(config, reference, ncol - 50, nlev, dt, 30000.0_real64, 5_int64, 11_int64, ids(51:), &
                          lat(51:), lon(51:), sigma, sigma_half, t(:, 51:), q(:, 51:), u(:, 51:), v(:, 51:), &
                          ps(51:), dtdt2(:, 51:), dqdt2(:, 51:), dudt2(:, 51:), dvdt2(:, 51:), diag2, stat, msg)
  call check(all(dtdt2 == dtdt) .and. all(dqdt2 == dqdt) .and. all(dudt2 == dudt), &
             'driver: results independent of the batch split (bitwise)')

  ! Reference diagnostics are kept on request.
  reference%keep_diagnostics = .true.
  call physics_driver_step(config, reference, ncol, nlev, dt, 30000.0_real64, 5_int64, 11_int64, ids, lat, lon, &
                          sigma, sigma_half, t, q, u, v, ps, dtdt2, dqdt2, dudt2, dvdt2, diag, stat, msg)
  call check(allocated(reference%cloud_fraction) .and. all(dtdt2 == dtdt), &
             'driver: reference diagnostics kept without changing the result')
  call check(all(abs(reference%precip_convective) <= diag%emulated%precip * (1 + 1e-12_real64)), &
             'driver: convective precipitation is part of the total')

  ! Any scheme can replace the reference: here a constant 1 K/day heating.
  constant%heating = 1.0_real64 / 86400
  call physics_driver_step(config, constant, ncol, nlev, dt, 30000.0_real64, 5_int64, 11_int64, ids, lat, lon, &
                          sigma, sigma_half, t, q, u, v, ps, dtdt2, dqdt2, dudt2, dvdt2, diag2, stat, msg)
  call check(stat == gcm_ok .and. constant%calls == 1, 'driver: calls the scheme it is given, once')
  call check(all(abs((dtdt2 - constant%heating) - (dtdt - diag%emulated%dtdt)) < 1e-15_real64), &
             'driver: total = host tendencies + the scheme''s')

  ! A scheme that over-dries level 10: the driver fills the hole from the rest of the column.
  constant%heating = 0
  constant%drying = 1.5_real64
  call physics_driver_step(config, constant, ncol, nlev, dt, 30000.0_real64, 5_int64, 11_int64, ids, lat, lon, &
                          sigma, sigma_half, t, q, u, v, ps, dtdt2, dqdt2, dudt2, dvdt2, diag2, stat, msg)
  call check(all(q + dt * dqdt2 >= -1e-15_real64), 'driver: an over-drying scheme leaves no negative humidity')
  call check(all(diag2%q_filled > 0), 'driver: the filler reports the water it moved')
  worst_water = 0
  do i = 1, ncol
    mass = column_mass(nlev, ps(i), sigma_half)
    worst_water = max(worst_water, abs(sum(dqdt2(:, i) * mass) - &
                      (diag2%evap(i) + sum(diag2%emulated%dqdt(:, i) * mass))) / sum(abs(dqdt2(:, i)) * mass))
  end do
  call check(worst_water < 1e-10_real64, 'driver: the filler conserves column water')

  ! A scheme returning NaN is reported, with the column named.
  constant%drying = 0
  constant%heating = ieee_value(1.0_real64, ieee_quiet_nan)
  call physics_driver_step(config, constant, ncol, nlev, dt, 30000.0_real64, 5_int64, 11_int64, ids, lat, lon, &
                          sigma, sigma_half, t, q, u, v, ps, dtdt2, dqdt2, dudt2, dvdt2, diag2, stat, msg)
  call check(stat == gcm_err_nonfinite .and. index(msg, 'column 1 ') > 0, &
             'driver: a non-finite emulator output is refused, column named')

  call check_summary('test_physics_driver')
end program test_physics_driver
