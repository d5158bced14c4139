! The handle table behind the flat Python entry points (fkb_python.f90).

module fkb_python_handles
  use fkb, only: network_r32, network_r64
  implicit none
  private
  public :: slot, slots, new_slot, valid_handle

  type :: slot
    logical :: used = .false.
    integer :: precision = 32
    type(network_r32) :: net32
    type(network_r64) :: net64
  end type slot

  type(slot), allocatable, target :: slots(:)

contains

  subroutine new_slot(handle)
    integer, intent(out) :: handle
    type(slot), allocatable :: grown(:)
    integer :: i
    if (.not. allocated(slots)) allocate(slots(8))
    do i = 1, size(slots)
      if (.not. slots(i)%used) then
        handle = i
        return
      end if
    end do
    allocate(grown(2 * size(slots)))
    grown(1:size(slots)) = slots
    call move_alloc(grown, slots)
    handle = size(slots) / 2 + 1
  end subroutine new_slot

  logical function valid_handle(handle)
    integer, intent(in) :: handle
    valid_handle = .false.
    if (.not. allocated(slots)) return
    if (handle < 1 .or. handle > size(slots)) return
    valid_handle = slots(handle)%used
  end function valid_handle

end module fkb_python_handles
