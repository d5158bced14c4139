program test_emulated_physics
  !! The reference emulated physics on batches of random realistic columns:
  !! budgets, positivity, determinism, independence of the batch split and of
  !! the stochastic subcolumns, on uniform and stretched grids of 10 and 20 levels.
  use iso_fortran_env, only: real64, int64, output_unit
  use gcm_constants, only: seconds_per_day
  use gcm_status, only: gcm_ok
  use physics_configuration, only: physics_config
  use emulated_physics, only: emulated_physics_reference
  use column_physics_io, only: column_inputs, column_outputs, set_column_inputs, select_columns, copy_columns
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
    type(column_inputs) :: inputs, part
    type(column_outputs) :: out, out2, piece
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
    call set_column_inputs(inputs, t, q, ps, solin, sh, lh, sigma, sigma_half, dt, step, ids, seed)

    call emulated_physics_reference(config, inputs, out, stat, msg, cf, cw, pconv, qrad)
    call check(stat == gcm_ok, trim(label)//': runs ('//msg//')')

    ! Budgets and positivity, column by column.
    worst_water = 0
    worst_energy = 0
    worst_q = 0
    do i = 1, ncol
      mass = column_mass(nlev, ps(i), sigma_half)
      worst_water = max(worst_water, water_residual(nlev, mass, out%dqdt(:, i), out%precip(i)))
      worst_energy = max(worst_energy, energy_residual(nlev, mass, out%dtdt(:, i), out%precip(i), out%fsnt(i), &
                                                       out%fsns(i), out%flnt(i), out%flns(i)))
      worst_q = min(worst_q, minval(q(:, i) + dt * out%dqdt(:, i)))
    end do
    write(output_unit, '(a,a,es9.2,a,es9.2,a,es9.2)') trim(label), ': worst relative water residual ', worst_water, &
      ', energy residual ', worst_energy, ', min q after ', worst_q
    call check(worst_water < 1e-10_real64, trim(label)//': water budget -sum(dq/dt dp/g) = P within 1e-10')
    call check(worst_energy < 1e-10_real64, trim(label)//': energy budget within 1e-10')
    call check(worst_q >= -1e-15_real64, trim(label)//': q + dt dq/dt >= 0 (to rounding)')

    ! Plausible values.
    call check(all(out%precip >= 0), trim(label)//': precipitation is non-negative')
    call check(count(out%precip * seconds_per_day > 1) > ncol / 10, &
               trim(label)//': at least a tenth of the columns rain > 1 mm/day')
    call check(all(pconv <= out%precip * (1 + 1e-12_real64)), trim(label)//': convective precipitation is part of the total')
    call check(all(out%flnt > 120 .and. out%flnt < 340), trim(label)//': OLR in 120-340 W/m2')
    call check(all(out%fsnt >= out%fsns .and. out%fsns >= 0 .and. out%fsnt <= solin), trim(label)//': 0 <= FSNS <= FSNT <= solin')
    call check(all(merge(out%fsnt == 0, .true., solin == 0)), trim(label)//': no shortwave at night')
    call check(all(cf >= 0 .and. cf <= 1) .and. any(cf > 0.3_real64), trim(label)//': cloud fraction in [0,1], some cloud')
    call check(all(abs(out%dtdt) < 50 / seconds_per_day * 20), trim(label)//': heating rates below 1000 K/day')

    ! Determinism: the same call again gives the same bits.
    call emulated_physics_reference(config, inputs, out2, stat, msg)
    call check(same_outputs(out2, out), trim(label)//': bitwise reproducible')

    ! Batch-split independence: uneven chunks, processed in reverse order.
    out2%dtdt = -1
    b = ncol
    chunk = 1
    do while (b >= 1)
      a = max(1, b - chunk + 1)
      call select_columns(inputs, [(i, i = a, b)], part)
      call emulated_physics_reference(config, part, piece, stat, msg)
      call copy_columns(piece, [(i, i = a, b)], out2)
      b = a - 1
      chunk = chunk + 13
    end do
    call check(same_outputs(out2, out), trim(label)//': results independent of the batch split (bitwise)')

    ! The stochastic part is real: another seed or step changes convecting columns, not the budgets.
    inputs%seed = seed + 1
    call emulated_physics_reference(config, inputs, out2, stat, msg)
    inputs%seed = seed
    call check(count(out2%precip /= out%precip) > ncol / 10, &
               trim(label)//': another seed changes the precipitation of many columns')
    call check(maxval(abs(out2%precip - out%precip)) < 0.5_real64 * maxval(out%precip), &
               trim(label)//': ... by less than half the largest rate')
    inputs%step = step + 1
    call emulated_physics_reference(config, inputs, out2, stat, msg)
    inputs%step = step
    call check(any(out2%precip /= out%precip), trim(label)//': another step draws other perturbations')

    ! One subcolumn without spreads is deterministic in the state: the seed no longer matters.
    config%n_subcolumns = 1
    config%cond_rh_spread = 0
    config%sbm_rh_spread = 0
    call emulated_physics_reference(config, inputs, out, stat, msg)
    inputs%seed = seed + 99
    call emulated_physics_reference(config, inputs, out2, stat, msg)
    inputs%seed = seed
    call check(all(out2%dtdt == out%dtdt) .and. all(out2%precip == out%precip), &
               trim(label)//': one centred subcolumn ignores the seed')

    ! Radiation every sub-step and more sub-steps keep the budgets.
    config = physics_config()
    config%radiation_interval = 1
    config%n_substeps = 3
    call emulated_physics_reference(config, inputs, out, stat, msg)
    worst_water = 0
    worst_energy = 0
    do i = 1, ncol
      mass = column_mass(nlev, ps(i), sigma_half)
      worst_water = max(worst_water, water_residual(nlev, mass, out%dqdt(:, i), out%precip(i)))
      worst_energy = max(worst_energy, energy_residual(nlev, mass, out%dtdt(:, i), out%precip(i), out%fsnt(i), &
                                                       out%fsns(i), out%flnt(i), out%flns(i)))
    end do
    call check(worst_water < 1e-10_real64 .and. worst_energy < 1e-10_real64, &
               trim(label)//': budgets close with 3 sub-steps and radiation every sub-step')

    ! Evaporating convective rain keeps the budgets and positivity and only reduces the convective rain.
    config = physics_config()
    call emulated_physics_reference(config, inputs, out, stat, msg, cf, cw, pconv, qrad)
    out2%precip = pconv
    config%conv_reevap_coef = 1.0e-4_real64
    call emulated_physics_reference(config, inputs, out, stat, msg, cf, cw, pconv, qrad)
    call check(stat == gcm_ok, trim(label)//': runs with convective rain evaporation ('//msg//')')
    worst_water = 0
    worst_energy = 0
    worst_q = 0
    do i = 1, ncol
      mass = column_mass(nlev, ps(i), sigma_half)
      worst_water = max(worst_water, water_residual(nlev, mass, out%dqdt(:, i), out%precip(i)))
      worst_energy = max(worst_energy, energy_residual(nlev, mass, out%dtdt(:, i), out%precip(i), out%fsnt(i), &
                                                       out%fsns(i), out%flnt(i), out%flns(i)))
      worst_q = min(worst_q, minval(q(:, i) + dt * out%dqdt(:, i)))
    end do
    call check(worst_water < 1e-10_real64 .and. worst_energy < 1e-10_real64 .and. worst_q >= -1e-15_real64, &
               trim(label)//': budgets and positivity hold with convective rain evaporation')
    call check(all(pconv >= 0 .and. pconv <= out%precip * (1 + 1e-12_real64)), &
               trim(label)//': evaporated convective rain stays a non-negative part of the total')
    call check(sum(pconv) < 0.95_real64 * sum(out2%precip) .and. sum(pconv) > 0, &
               trim(label)//': convective rain evaporation removes part (not all) of the convective rain')
  end subroutine run_case

  logical function same_outputs(a, b)
    !! Every output of a and b bitwise equal.
    type(column_outputs), intent(in) :: a, b
    same_outputs = all(a%dtdt == b%dtdt) .and. all(a%dqdt == b%dqdt) .and. all(a%fsnt == b%fsnt) .and. &
                   all(a%fsns == b%fsns) .and. all(a%flnt == b%flnt) .and. all(a%flns == b%flns) .and. &
                   all(a%precip == b%precip)
  end function same_outputs

end program test_emulated_physics
