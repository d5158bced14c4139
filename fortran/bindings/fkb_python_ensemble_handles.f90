! The ensemble handle table behind the flat Python entry points
! (fkb_python_ensemble.f90), as fkb_python_handles.f90 is for networks.

module fkb_python_ensemble_handles
  use fkb, only: ensemble_any
  implicit none
  private
  public :: ensemble_slot, ensembles, new_ensemble_slot, valid_ensemble

  type :: ensemble_slot
    logical :: used = .false.
    type(ensemble_any) :: ens
      !! in the precision chosen at load (32 or 64 bits)
  end type ensemble_slot

  type(ensemble_slot), allocatable, target :: ensembles(:)

contains

  subroutine new_ensemble_slot(handle)
    !! A free slot (the table grows when full).
    integer, intent(out) :: handle
    type(ensemble_slot), allocatable :: grown(:)
    integer :: i
    if (.not. allocated(ensembles)) allocate (ensembles(4))
    do i = 1, size(ensembles)
      if (.not. ensembles(i)%used) then
        handle = i
        return
      end if
    end do
    allocate (grown(2 * size(ensembles)))
    grown(1:size(ensembles)) = ensembles
    call move_alloc(grown, ensembles)
    handle = size(ensembles) / 2 + 1
  end subroutine new_ensemble_slot

  logical function valid_ensemble(handle)
    integer, intent(in) :: handle
    valid_ensemble = .false.
    if (.not. allocated(ensembles)) return
    if (handle < 1 .or. handle > size(ensembles)) return
    valid_ensemble = ensembles(handle)%used
  end function valid_ensemble

end module fkb_python_ensemble_handles
