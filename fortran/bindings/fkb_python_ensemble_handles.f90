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

  subroutine new_ensemble_slot(handle, stat, msg)
    !! A free slot (the table grows when full); `handle` 0 and `stat`
    !! `fkb_err_memory` if the table cannot grow.
    use fkb, only: fkb_ok, fkb_err_memory
    integer, intent(out) :: handle
    integer, intent(out) :: stat
    character(len=*), intent(inout) :: msg
    type(ensemble_slot), allocatable :: grown(:)
    integer :: i, n
    handle = 0
    stat = fkb_ok
    if (.not. allocated(ensembles)) then
      allocate (ensembles(4), stat=stat)
      if (stat /= 0) then
        stat = fkb_err_memory
        msg = 'out of memory: cannot allocate the table of 4 ensemble handles'
        return
      end if
    end if
    do i = 1, size(ensembles)
      if (.not. ensembles(i)%used) then
        handle = i
        return
      end if
    end do
    n = 2 * size(ensembles)
    allocate (grown(n), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      write (msg, '(a, i0, a)') 'out of memory: cannot allocate the table of ', n, ' ensemble handles'
      return
    end if
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
