module gcm_python_handles
  !! The handle table behind the flat Python entry points (gcm_python.f90).
  !!
  !! f2py cannot pass derived types, so each model lives in a slot of this
  !! table, owned by the binding (the Python process is the driver that owns
  !! it). A slot holds the `climate_model`, the physics scheme chosen by name
  !! at creation, and the running sums of the time means over an output
  !! interval.
  use gcm_dycore, only: wp, climate_model, physics_scheme, held_suarez_forcing, gcm_ok, gcm_err_config, &
                        model_step
  implicit none
  private
  public :: model_slot, slots, new_slot, free_slot, valid_handle, select_physics, physics_names, &
            initial_state_names, step_slot, reset_means

  character(len=*), parameter :: physics_names = 'none, held-suarez'
    !! the physics `select_physics` knows, for messages and the Python side
  character(len=*), parameter :: initial_state_names = &
    'rest, held-suarez, rossby-haurwitz, jablonowski-williamson'

  type :: model_slot
    type(climate_model) :: model
    class(physics_scheme), allocatable :: physics
      !! unallocated: dynamics only
    character(len=32) :: physics_name = 'none'
    integer :: n_mean = 0
      !! states summed since the last reset of the means
    real(wp), allocatable :: sum_u(:, :, :), sum_v(:, :, :), sum_t(:, :, :), sum_q(:, :, :), sum_ps(:, :)
      !! running sums (nlev, nlon, nlat) and (nlon, nlat)
    real(wp), allocatable :: u(:, :, :), v(:, :, :), t(:, :, :), q(:, :, :), ps(:, :)
      !! work: the grid state after a step
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

  subroutine select_physics(name, physics, status, message)
    !! The one place where a physics name becomes a scheme. 'none' leaves
    !! `physics` unallocated (dynamics only). A new scheme (reference
    !! physics, an emulator) is one more case here and in `physics_names`.
    character(len=*), intent(in) :: name
    class(physics_scheme), allocatable, intent(out) :: physics
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    status = gcm_ok
    message = ''
    select case (trim(name))
    case ('none')
    case ('held-suarez')
      allocate (held_suarez_forcing :: physics)
    case default
      status = gcm_err_config
      message = "physics: unknown scheme '"//trim(name)//"' (known: "//physics_names//")"
    end select
  end subroutine select_physics

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

  subroutine reset_means(s)
    !! Start new time means: zero the running sums.
    type(model_slot), intent(inout) :: s
    s%n_mean = 0
    s%sum_u = 0.0_wp
    s%sum_v = 0.0_wp
    s%sum_t = 0.0_wp
    s%sum_q = 0.0_wp
    s%sum_ps = 0.0_wp
  end subroutine reset_means

end module gcm_python_handles
