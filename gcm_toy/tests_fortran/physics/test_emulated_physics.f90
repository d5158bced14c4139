program test_emulated_physics
  !! The reference emulated physics on batches of random realistic columns:
  !! budgets, positivity, determinism, independence of the batch split and of
  !! the stochastic subcolumns, on uniform and stretched grids of 10 and 20 levels.
  use iso_fortran_env, only: real64, int64, output_unit
  use physics_constants, only: seconds_per_day
  use physics_status, only: physics_ok
  use physics_configuration, only: physics_config
  use emulated_physics, only: emulated_physics_reference
  use physics_test_support, only: check, check_summary, uniform_sigma, stretched_sigma, random_columns, &
                                  column_mass, water_residual, energy_residual
  implicit none

  call run_case(20, .false., 0.7_real64, 900.0_real64)
  call run_case(10, .false., 0.3_real64, 1800.0_real64)
  call run_case(16, .true., 0.5_real64, 1200.0_real64)
  call check_summary('test_emulated_physics')

contains

  subroutine run_case(nlev, stretched, tropical_fraction, dt)
    integer, intent(in) :: nlev
    logical, intent(in) :: stretched
    real(real64), intent(in) :: tropical_fraction, dt
    integer, parameter :: ncol = 200
    real(real64) :: sigma(nlev), sigma_half(0:nlev)
    real(real64) :: t(nlev, ncol), q(nlev, ncol), ps(ncol), solin(ncol), sh(ncol), lh(ncol)
    real(real64) :: dtdt(nlev, ncol), dqdt(nlev, ncol), fsnt(ncol), fsns(ncol), flnt(ncol), flns(ncol), pr(ncol)
    real(real64) :: dtdt2(nlev, ncol), dqdt2(nlev, ncol), fsnt2(ncol), fsns2(ncol), flnt2(ncol), flns2(ncol), pr2(ncol)
    real(real64) :: cf(nlev, ncol), cw(nlev, ncol), pconv(ncol), qrad(nlev, ncol)
    real(real64) :: mass(nlev), worst_water, worst_energy, worst_q
    integer :: ids(ncol), i, stat, a, b, chunk
    character(len=:), allocatable :: msg
    character(len=64) :: label
    type(physics_config) :: config
    integer(int64), parameter :: seed = 20240601_int64, step = 1234567_int64

    write(label, '(a,i0,a,l1)') 'nlev=', nlev, ' stretched=', stretched
    if (stretched) then
      call stretched_sigma(nlev, sigma, sigma_half)
    else
      call uniform_sigma(nlev, sigma, sigma_half)
    end if
    call random_columns(ncol, nlev, sigma, int(nlev, int64), t, q, ps, solin, sh, lh, tropical_fraction)
    ids = [(1000 + 7 * i, i = 1, ncol)]
    config = physics_config()

    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step, ids, &
                                    seed, dtdt, dqdt, fsnt, fsns, flnt, flns, pr, stat, msg, cf, cw, pconv, qrad)
    call check(stat == physics_ok, trim(label)//': runs ('//msg//')')

    ! Budgets and positivity, column by column.
    worst_water = 0
    worst_energy = 0
    worst_q = 0
    do i = 1, ncol
      mass = column_mass(nlev, ps(i), sigma_half)
      worst_water = max(worst_water, water_residual(nlev, mass, dqdt(:, i), pr(i)))
      worst_energy = max(worst_energy, energy_residual(nlev, mass, dtdt(:, i), pr(i), fsnt(i), fsns(i), flnt(i), flns(i)))
      worst_q = min(worst_q, minval(q(:, i) + dt * dqdt(:, i)))
    end do
    write(output_unit, '(a,a,es9.2,a,es9.2,a,es9.2)') trim(label), ': worst relative water residual ', worst_water, &
      ', energy residual ', worst_energy, ', min q after ', worst_q
    call check(worst_water < 1e-10_real64, trim(label)//': water budget -sum(dq/dt dp/g) = P within 1e-10')
    call check(worst_energy < 1e-10_real64, trim(label)//': energy budget within 1e-10')
    call check(worst_q >= -1e-15_real64, trim(label)//': q + dt dq/dt >= 0 (to rounding)')

    ! Plausible values.
    call check(all(pr >= 0), trim(label)//': precipitation is non-negative')
    call check(count(pr * seconds_per_day > 1) > ncol / 10, trim(label)//': at least a tenth of the columns rain > 1 mm/day')
    call check(all(pconv <= pr * (1 + 1e-12_real64)), trim(label)//': convective precipitation is part of the total')
    call check(all(flnt > 120 .and. flnt < 340), trim(label)//': OLR in 120-340 W/m2')
    call check(all(fsnt >= fsns .and. fsns >= 0 .and. fsnt <= solin), trim(label)//': 0 <= FSNS <= FSNT <= solin')
    call check(all(merge(fsnt == 0, .true., solin == 0)), trim(label)//': no shortwave at night')
    call check(all(cf >= 0 .and. cf <= 1) .and. any(cf > 0.3_real64), trim(label)//': cloud fraction in [0,1], some cloud')
    call check(all(abs(dtdt) < 50 / seconds_per_day * 20), trim(label)//': heating rates below 1000 K/day')

    ! Determinism: the same call again gives the same bits.
    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step, ids, &
                                    seed, dtdt2, dqdt2, fsnt2, fsns2, flnt2, flns2, pr2, stat, msg)
    call check(all(dtdt2 == dtdt) .and. all(dqdt2 == dqdt) .and. all(pr2 == pr) .and. all(fsnt2 == fsnt) .and. &
               all(flnt2 == flnt) .and. all(fsns2 == fsns) .and. all(flns2 == flns), trim(label)//': bitwise reproducible')

    ! Batch-split independence: uneven chunks, processed in reverse order.
    dtdt2 = -1
    b = ncol
    chunk = 1
    do while (b >= 1)
      a = max(1, b - chunk + 1)
      call emulated_physics_reference(config, b - a + 1, nlev, t(:, a:b), q(:, a:b), ps(a:b), sigma, sigma_half, &
                                      solin(a:b), sh(a:b), lh(a:b), dt, step, ids(a:b), seed, dtdt2(:, a:b), &
                                      dqdt2(:, a:b), fsnt2(a:b), fsns2(a:b), flnt2(a:b), flns2(a:b), pr2(a:b), stat, msg)
      b = a - 1
      chunk = chunk + 13
    end do
    call check(all(dtdt2 == dtdt) .and. all(dqdt2 == dqdt) .and. all(pr2 == pr) .and. all(flnt2 == flnt) .and. &
               all(fsnt2 == fsnt), trim(label)//': results independent of the batch split (bitwise)')

    ! The stochastic part is real: another seed or step changes convecting columns, not the budgets.
    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step, ids, &
                                    seed + 1, dtdt2, dqdt2, fsnt2, fsns2, flnt2, flns2, pr2, stat, msg)
    call check(count(pr2 /= pr) > ncol / 10, trim(label)//': another seed changes the precipitation of many columns')
    call check(maxval(abs(pr2 - pr)) < 0.5_real64 * maxval(pr), trim(label)//': ... by less than half the largest rate')
    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step + 1, ids, &
                                    seed, dtdt2, dqdt2, fsnt2, fsns2, flnt2, flns2, pr2, stat, msg)
    call check(any(pr2 /= pr), trim(label)//': another step draws other perturbations')

    ! One subcolumn without spreads is deterministic in the state: the seed no longer matters.
    config%n_subcolumns = 1
    config%cond_rh_spread = 0
    config%sbm_rh_spread = 0
    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step, ids, &
                                    seed, dtdt, dqdt, fsnt, fsns, flnt, flns, pr, stat, msg)
    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step, ids, &
                                    seed + 99, dtdt2, dqdt2, fsnt2, fsns2, flnt2, flns2, pr2, stat, msg)
    call check(all(dtdt2 == dtdt) .and. all(pr2 == pr), trim(label)//': one centred subcolumn ignores the seed')

    ! Radiation every sub-step and more sub-steps keep the budgets.
    config = physics_config()
    config%radiation_interval = 1
    config%n_substeps = 3
    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step, ids, &
                                    seed, dtdt, dqdt, fsnt, fsns, flnt, flns, pr, stat, msg)
    worst_water = 0
    worst_energy = 0
    do i = 1, ncol
      mass = column_mass(nlev, ps(i), sigma_half)
      worst_water = max(worst_water, water_residual(nlev, mass, dqdt(:, i), pr(i)))
      worst_energy = max(worst_energy, energy_residual(nlev, mass, dtdt(:, i), pr(i), fsnt(i), fsns(i), flnt(i), flns(i)))
    end do
    call check(worst_water < 1e-10_real64 .and. worst_energy < 1e-10_real64, &
               trim(label)//': budgets close with 3 sub-steps and radiation every sub-step')

    ! Evaporating convective rain keeps the budgets and positivity and only reduces the convective rain.
    config = physics_config()
    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step, ids, &
                                    seed, dtdt, dqdt, fsnt, fsns, flnt, flns, pr, stat, msg, cf, cw, pconv, qrad)
    pr2 = pconv
    config%conv_reevap_coef = 1.0e-4_real64
    call emulated_physics_reference(config, ncol, nlev, t, q, ps, sigma, sigma_half, solin, sh, lh, dt, step, ids, &
                                    seed, dtdt, dqdt, fsnt, fsns, flnt, flns, pr, stat, msg, cf, cw, pconv, qrad)
    call check(stat == physics_ok, trim(label)//': runs with convective rain evaporation ('//msg//')')
    worst_water = 0
    worst_energy = 0
    worst_q = 0
    do i = 1, ncol
      mass = column_mass(nlev, ps(i), sigma_half)
      worst_water = max(worst_water, water_residual(nlev, mass, dqdt(:, i), pr(i)))
      worst_energy = max(worst_energy, energy_residual(nlev, mass, dtdt(:, i), pr(i), fsnt(i), fsns(i), flnt(i), flns(i)))
      worst_q = min(worst_q, minval(q(:, i) + dt * dqdt(:, i)))
    end do
    call check(worst_water < 1e-10_real64 .and. worst_energy < 1e-10_real64 .and. worst_q >= -1e-15_real64, &
               trim(label)//': budgets and positivity hold with convective rain evaporation')
    call check(all(pconv >= 0 .and. pconv <= pr * (1 + 1e-12_real64)), &
               trim(label)//': evaporated convective rain stays a non-negative part of the total')
    call check(sum(pconv) < 0.95_real64 * sum(pr2) .and. sum(pconv) > 0, &
               trim(label)//': convective rain evaporation removes part (not all) of the convective rain')
  end subroutine run_case

end program test_emulated_physics
