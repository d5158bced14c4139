program bench_physics_step
  !! Cost of one physics step of the aquaplanet GCM on all columns, reference
  !! against emulators: the whole aquaplanet physics (host schemes + emulated
  !! physics, what `model_step` calls) and the emulated physics alone
  !! (`scheme%compute`: the reference's toy superparameterization, or gather +
  !! predict + scatter of the networks). CPU time per call, best of several
  !! repetitions, one thread.
  !!
  !! Usage: bench_physics_step NETWORK [CHECKPOINT [truncation [nlev]]]
  !!   NETWORK: a model file for nlev (e.g. mlp_5x128_L10.fkb); the ensemble
  !!   row uses 4 copies of it. CHECKPOINT: a spun-up state (default: the
  !!   moist start after 2 days of reference physics).
  use iso_fortran_env, only: int64, output_unit
  use gcm_dycore, only: wp, model_config, climate_model, model_init, model_step, model_read_checkpoint, gcm_ok
  use gcm_emulator, only: emulator_options
  use column_physics_io, only: column_outputs
  use gcm_aquaplanet, only: aquaplanet_config, aquaplanet_physics, aquaplanet_physics_setup, &
                            aquaplanet_emulator_setup, set_aquaplanet_start
  implicit none
  type(model_config) :: cfg
  type(climate_model) :: model
  type(aquaplanet_physics) :: phys
  type(aquaplanet_config) :: config
  character(len=1024) :: network, checkpoint, arg
  character(len=1024) :: four(4)
  character(len=256) :: message
  integer :: status
  real(wp) :: ref_total, ref_emulated, total, emulated

  call get_command_argument(1, network)
  checkpoint = ''
  if (command_argument_count() >= 2) call get_command_argument(2, checkpoint)
  cfg%truncation = 21
  cfg%nlev = 10
  if (command_argument_count() >= 3) then
    call get_command_argument(3, arg); read (arg, *) cfg%truncation
  end if
  if (command_argument_count() >= 4) then
    call get_command_argument(4, arg); read (arg, *) cfg%nlev
  end if
  call model_init(model, cfg, status, message)
  config%cloud_diagnostics = .false.
  if (len_trim(checkpoint) > 0) then
    call model_read_checkpoint(model, trim(checkpoint), status, message)
    if (status /= gcm_ok) error stop 'cannot read the checkpoint'
    call aquaplanet_physics_setup(phys, model, config, status, message)
    call model_step(model, 2, status, message, phys)
  else
    call set_aquaplanet_start(model, 1, status, message)
    call aquaplanet_physics_setup(phys, model, config, status, message)
    call model_step(model, 96, status, message, phys)
  end if
  if (status /= gcm_ok) error stop 'spin-up failed'

  write (output_unit, '(a,i0,a,i0,a,i0,a)') 'physics step on ', model%columns%ncol, ' columns (T', &
    model%config%truncation, ' L', model%config%nlev, '), CPU ms per call, best of 5'
  write (output_unit, '(a)') '  scheme                       whole physics  emulated part   ref/this (whole, emulated)'
  call aquaplanet_physics_setup(phys, model, config, status, message)
  call time_it(phys, ref_total, ref_emulated)
  call row('reference (12 sub x 4 steps)', ref_total, ref_emulated)

  call aquaplanet_emulator_setup(phys, model, config, [network], emulator_options(), status, message)
  if (status /= gcm_ok) error stop 'emulator setup failed'
  call time_it(phys, total, emulated)
  call row('network float32', total, emulated)

  call aquaplanet_emulator_setup(phys, model, config, [network], emulator_options(use_real64=.true.), &
                                 status, message)
  call time_it(phys, total, emulated)
  call row('network float64', total, emulated)

  four = network
  call aquaplanet_emulator_setup(phys, model, config, four, emulator_options(), status, message)
  call time_it(phys, total, emulated)
  call row('ensemble of 4, float32', total, emulated)

contains

  subroutine row(label, total, emulated)
    character(len=*), intent(in) :: label
    real(wp), intent(in) :: total, emulated
    write (output_unit, '(2x,a30,f10.2,f14.2,f12.1,f8.1)') label, total, emulated, ref_total / total, &
      ref_emulated / emulated
  end subroutine row

  subroutine time_it(phys, total, emulated)
    type(aquaplanet_physics), intent(inout) :: phys
    real(wp), intent(out) :: total, emulated
    type(column_outputs) :: outputs
    character(len=:), allocatable :: msg
    integer :: rep, stat
    real :: c0, c1
    associate (col => model%columns, tend => model%phys_tend)
      call phys%compute(col, tend, status, message)          ! warm up, size work arrays
      if (status /= gcm_ok) error stop 'physics failed'
      total = huge(1.0_wp)
      emulated = huge(1.0_wp)
      do rep = 1, 5
        call cpu_time(c0)
        call phys%compute(col, tend, status, message)
        call cpu_time(c1)
        total = min(total, 1e3_wp * (c1 - c0))
        call cpu_time(c0)
        ! the emulated physics alone, on the inputs of the step above
        call phys%scheme%compute(phys%config%physics, phys%diag%emulated_inputs, outputs, stat, msg)
        call cpu_time(c1)
        emulated = min(emulated, 1e3_wp * (c1 - c0))
      end do
    end associate
  end subroutine time_it

end program bench_physics_step
