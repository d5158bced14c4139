module gcm_python_handles
  !! The handle table behind the flat Python entry points (gcm_python.f90).
  !!
  !! f2py cannot pass derived types, so each model lives in a slot of this
  !! table, owned by the binding (the Python process is the driver that owns
  !! it). A slot holds the `climate_model`, the physics scheme chosen by name
  !! at creation (`gcm_physics_choice`, in the coupling library), and the
  !! running sums of the time means over an output interval.
  use iso_fortran_env, only: int64
  use gcm_dycore, only: gcm_err_state, wp, climate_model, physics_scheme, gcm_ok, gcm_err_config, model_step
  use gcm_aquaplanet, only: aquaplanet_physics, aquaplanet_get_surface_diagnostics, &
                            aquaplanet_get_guard_diagnostics, &
                            aquaplanet_get_cloud_fraction, aquaplanet_get_training_batch, &
                            aquaplanet_get_convective_precip, aquaplanet_finetune_reset_loss, &
                            aquaplanet_finetune_status, aquaplanet_finetune_save, aquaplanet_finetune_load
  use gcm_physics_choice, only: max_path_length
  implicit none
  private
  public :: model_slot, slots, new_slot, free_slot, valid_handle, missing_model, split_paths, &
            initial_state_names, step_slot, reset_means, n_diagnostics, accumulate_diagnostics, &
            physics_failure, slot_training_batch, slot_physics_mode, slot_finetune_status, slot_finetune_save, &
            slot_finetune_load

  character(len=*), parameter :: initial_state_names = &
    'rest, held-suarez, rossby-haurwitz, jablonowski-williamson, aquaplanet'
  integer, parameter :: n_diagnostics = 12
    !! surface/TOA diagnostics of the aquaplanet physics summed for the means,
    !! in this order: precip, evap, shflx, lhflx, sst, solin, fsnt, fsns, flnt, flns,
    !! and the emulator guard's flagged and fallback columns (1 or 0)


  type :: model_slot
    type(climate_model) :: model
    class(physics_scheme), allocatable :: physics
      !! unallocated: dynamics only
    character(len=32) :: physics_name = 'none'
    integer :: n_mean = 0
    real(wp) :: sum_filled = 0.0_wp
      !! sum over those steps of the dycore filler's global-mean water moved (ps q) [Pa]
      !! states summed since the last reset of the means
    real(wp), allocatable :: sum_u(:, :, :), sum_v(:, :, :), sum_t(:, :, :), sum_q(:, :, :), sum_ps(:, :)
      !! running sums (nlev, nlon, nlat) and (nlon, nlat)
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
      !! work: the grid state after a step
    integer :: n_diag = 0
      !! physics steps whose diagnostics were summed since the last reset
    integer :: n_cloud = 0
      !! of those, steps with a cloud fraction (reference physics only)
    real(wp), allocatable :: sum_diag(:, :, :), sum_cloud(:, :, :), sum_precc(:, :)
      !! running sums (nlon, nlat, n_diagnostics) and (nlev, nlon, nlat)
    real(wp), allocatable :: diag(:, :, :), cloud(:, :, :), precc(:, :)
      !! work: the diagnostics of the last step
  end type model_slot

  type :: slot_box
    type(model_slot), allocatable :: s
  end type slot_box

  type(slot_box), allocatable, target :: slots(:)

contains

  subroutine new_slot(handle)
    !! An unused slot, allocated; the table grows by doubling (slots move, the
    !! models in them are not copied).
    integer, intent(out) :: handle
    type(slot_box), allocatable :: grown(:)
    integer :: i
    if (.not. allocated(slots)) allocate (slots(8))
    handle = 0
    do i = 1, size(slots)
      if (.not. allocated(slots(i)%s)) then
        handle = i
        exit
      end if
    end do
    if (handle == 0) then
      allocate (grown(2 * size(slots)))
      do i = 1, size(slots)
        call move_alloc(slots(i)%s, grown(i)%s)
      end do
      handle = size(slots) + 1
      call move_alloc(grown, slots)
    end if
    allocate (slots(handle)%s)
  end subroutine new_slot

  subroutine free_slot(handle)
    !! Release a slot and everything its model holds.
    integer, intent(in) :: handle
    if (valid_handle(handle)) deallocate (slots(handle)%s)
  end subroutine free_slot

  logical function valid_handle(handle)
    integer, intent(in) :: handle
    valid_handle = .false.
    if (.not. allocated(slots)) return
    if (handle < 1 .or. handle > size(slots)) return
    valid_handle = allocated(slots(handle)%s)
  end function valid_handle

  logical function missing_model(handle, stat, msg)
    !! True, with stat and msg set, when `handle` names no model: the check
    !! every entry point makes before touching its slot.
    integer, intent(in) :: handle
    integer, intent(inout) :: stat
    character(len=*), intent(inout) :: msg
    missing_model = .not. valid_handle(handle)
    if (missing_model) then
      stat = gcm_err_state
      msg = 'invalid model handle'
    end if
  end function missing_model


  subroutine split_paths(joined, paths)
    !! Model-file paths separated by new lines (blank entries skipped).
    character(len=*), intent(in) :: joined
    character(len=max_path_length), allocatable, intent(out) :: paths(:)
    integer :: n, i, start
    character(len=*), parameter :: newline = achar(10)
    n = 0
    start = 1
    do i = 1, len(joined) + 1
      if (i > len(joined)) then
        if (len_trim(joined(start:)) > 0) n = n + 1
      else if (joined(i:i) == newline) then
        if (len_trim(joined(start:i - 1)) > 0) n = n + 1
        start = i + 1
      end if
    end do
    allocate (paths(n))
    n = 0
    start = 1
    do i = 1, len(joined) + 1
      if (i > len(joined)) then
        if (len_trim(joined(start:)) > 0) then
          n = n + 1
          paths(n) = adjustl(joined(start:))
        end if
      else if (joined(i:i) == newline) then
        if (len_trim(joined(start:i - 1)) > 0) then
          n = n + 1
          paths(n) = adjustl(joined(start:i - 1))
        end if
        start = i + 1
      end if
    end do
  end subroutine split_paths

  subroutine accumulate_diagnostics(s, status, message)
    !! Add the aquaplanet physics' diagnostics of the last step to the sums
    !! of the means (nothing for other physics).
    type(model_slot), intent(inout) :: s
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    integer :: cloud_status
    character(len=256) :: cloud_message
    status = gcm_ok
    message = ''
    if (.not. allocated(s%physics)) return
    select type (p => s%physics)
    type is (aquaplanet_physics)
      call aquaplanet_get_surface_diagnostics(p, s%diag(:, :, 1), s%diag(:, :, 2), s%diag(:, :, 3), &
                                              s%diag(:, :, 4), s%diag(:, :, 5), s%diag(:, :, 6), &
                                              s%diag(:, :, 7), s%diag(:, :, 8), s%diag(:, :, 9), &
                                              s%diag(:, :, 10), status, message)
      if (status == gcm_ok) call aquaplanet_get_guard_diagnostics(p, s%diag(:, :, 11), s%diag(:, :, 12), &
                                                                  status, message)
      if (status /= gcm_ok) return
      s%sum_diag = s%sum_diag + s%diag
      s%n_diag = s%n_diag + 1
      if (p%mode == 'reference' .and. p%config%cloud_diagnostics) then
        call aquaplanet_get_cloud_fraction(p, s%cloud, cloud_status, cloud_message)
        if (cloud_status == gcm_ok) &
          call aquaplanet_get_convective_precip(p, s%precc, cloud_status, cloud_message)
        if (cloud_status == gcm_ok) then
          s%sum_precc = s%sum_precc + s%precc
          s%sum_cloud = s%sum_cloud + s%cloud
          s%n_cloud = s%n_cloud + 1
        end if
      end if
    end select
  end subroutine accumulate_diagnostics

  subroutine step_slot(s, nsteps, status, message)
    !! nsteps model steps with the slot's physics (none: dynamics only).
    type(model_slot), intent(inout) :: s
    integer, intent(in) :: nsteps
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    if (allocated(s%physics)) then
      call model_step(s%model, nsteps, status, message, s%physics)
    else
      call model_step(s%model, nsteps, status, message)
    end if
  end subroutine step_slot

  subroutine physics_failure(s, failure_status, step, time_days, lat_deg, lon_deg, level, sigma, variable, &
                             value, msg)
    !! The aquaplanet physics' report of its last failed step (a physics
    !! error is not the dycore's failure); failure_status 0 = none, and the
    !! other arguments are then left as they are.
    type(model_slot), intent(in) :: s
    integer, intent(out) :: failure_status
    integer, intent(inout) :: step, level
    real(wp), intent(inout) :: time_days, lat_deg, lon_deg, sigma, value
    character(len=*), intent(inout) :: variable, msg
    failure_status = gcm_ok
    if (.not. allocated(s%physics)) return
    select type (p => s%physics)
    type is (aquaplanet_physics)
      associate (f => p%failure)
        failure_status = f%status
        if (failure_status /= gcm_ok) then
          step = int(f%step)
          time_days = f%time_days
          lat_deg = f%lat_deg
          lon_deg = f%lon_deg
          level = f%level
          sigma = f%sigma
          variable = f%variable
          value = f%value
          msg = f%message
        end if
      end associate
    end select
  end subroutine physics_failure

  subroutine slot_training_batch(s, x, y, step, time_seconds, dt, status, message)
    !! The emulator-interface batch of the last physics step (see
    !! aquaplanet_get_training_batch) and its labels.
    type(model_slot), intent(in) :: s
    real(wp), intent(out) :: x(:, :), y(:, :)
    integer, intent(out) :: step, status
    real(wp), intent(out) :: time_seconds, dt
    character(len=*), intent(out) :: message
    step = 0
    time_seconds = 0.0_wp
    dt = 0.0_wp
    status = gcm_err_config
    message = 'training data need the moist aquaplanet physics (reference, emulator or ensemble)'
    if (.not. allocated(s%physics)) return
    select type (p => s%physics)
    type is (aquaplanet_physics)
      call aquaplanet_get_training_batch(p, x, y, status, message)
      step = int(p%last_step)
      time_seconds = p%last_time_seconds
      dt = p%last_dt
    end select
  end subroutine slot_training_batch

  subroutine slot_physics_mode(s, mode)
    !! 'reference', 'emulator' or 'ensemble' for the aquaplanet physics, else ''.
    type(model_slot), intent(in) :: s
    character(len=*), intent(out) :: mode
    mode = ''
    if (.not. allocated(s%physics)) return
    select type (p => s%physics)
    type is (aquaplanet_physics)
      mode = p%mode
    end select
  end subroutine slot_physics_mode

  subroutine slot_finetune_status(s, enabled, loss_sum, loss_count, rounds, iterations, stopped_step, stop_reason)
    !! The emulator's online fine-tuning (aquaplanet_finetune_status);
    !! enabled 0 for other physics.
    type(model_slot), intent(in) :: s
    integer, intent(out) :: enabled, loss_count, iterations
    real(wp), intent(out) :: loss_sum
    integer(int64), intent(out) :: rounds, stopped_step
    character(len=*), intent(out) :: stop_reason
    logical :: on
    enabled = 0
    loss_sum = 0.0_wp
    loss_count = 0
    iterations = 0
    rounds = 0
    stopped_step = -1
    stop_reason = ''
    if (.not. allocated(s%physics)) return
    select type (p => s%physics)
    type is (aquaplanet_physics)
      call aquaplanet_finetune_status(p, on, loss_sum, loss_count, rounds, iterations, stopped_step, stop_reason)
      enabled = merge(1, 0, on)
    end select
  end subroutine slot_finetune_status

  subroutine slot_finetune_save(s, path, with_state, status, message)
    !! The fine-tuned network to a model file (aquaplanet_finetune_save).
    type(model_slot), intent(in) :: s
    character(len=*), intent(in) :: path
    logical, intent(in) :: with_state
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    status = gcm_err_state
    message = 'no fine-tuned emulator (options finetune, physics emulator)'
    if (.not. allocated(s%physics)) return
    select type (p => s%physics)
    type is (aquaplanet_physics)
      call aquaplanet_finetune_save(p, path, with_state, status, message)
    end select
  end subroutine slot_finetune_save

  subroutine slot_finetune_load(s, path, status, message)
    !! Continue fine-tuning from a saved state (aquaplanet_finetune_load).
    type(model_slot), intent(inout) :: s
    character(len=*), intent(in) :: path
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    status = gcm_err_state
    message = 'no fine-tuned emulator (options finetune, physics emulator)'
    if (.not. allocated(s%physics)) return
    select type (p => s%physics)
    type is (aquaplanet_physics)
      call aquaplanet_finetune_load(p, path, status, message)
    end select
  end subroutine slot_finetune_load

  subroutine reset_means(s)
    !! Start new time means: zero the running sums.
    type(model_slot), intent(inout) :: s
    s%n_mean = 0
    s%sum_filled = 0.0_wp
    s%sum_u = 0.0_wp
    s%sum_v = 0.0_wp
    s%sum_t = 0.0_wp
    s%sum_q = 0.0_wp
    s%sum_ps = 0.0_wp
    s%n_diag = 0
    s%n_cloud = 0
    if (allocated(s%sum_diag)) s%sum_diag = 0.0_wp
    if (allocated(s%sum_cloud)) s%sum_cloud = 0.0_wp
    if (allocated(s%sum_precc)) s%sum_precc = 0.0_wp
    if (allocated(s%physics)) then
      select type (p => s%physics)
      type is (aquaplanet_physics)
        call aquaplanet_finetune_reset_loss(p)
      end select
    end if
  end subroutine reset_means

end module gcm_python_handles
