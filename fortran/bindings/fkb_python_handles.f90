! The handle table behind the flat Python entry points (fkb_python.f90).

module fkb_python_handles
  use fkb, only: network_r32, network_r64, layer_registry, layer_registry_r64
  implicit none
  private
  public :: slot, slots, new_slot, valid_handle, usable, keep_message, kept_message, known_layers

  interface known_layers
    !! The registry of the custom layers the runtime knows, of either kind.
    module procedure known_layers_r32, known_layers_r64
  end interface known_layers

  type :: slot
    logical :: used = .false.
    integer :: precision = 32
    type(network_r32) :: net32
    type(network_r64) :: net64
  end type slot

  type(slot), allocatable, target :: slots(:)
  character(len=:), allocatable :: last_failure
    !! the message of the last failed call that returns only a status

contains

  subroutine new_slot(handle, stat, msg)
    !! A free slot (the table grows when full); `handle` 0 and `stat`
    !! `fkb_err_memory` if the table cannot grow.
    use fkb, only: fkb_ok, fkb_err_memory
    integer, intent(out) :: handle
    integer, intent(out) :: stat
    character(len=*), intent(inout) :: msg
    type(slot), allocatable :: grown(:)
    integer :: i, n
    handle = 0
    stat = fkb_ok
    if (.not. allocated(slots)) then
      allocate(slots(8), stat=stat)
      if (stat /= 0) then
        stat = fkb_err_memory
        msg = 'out of memory: cannot allocate the table of 8 network handles'
        return
      end if
    end if
    do i = 1, size(slots)
      if (.not. slots(i)%used) then
        handle = i
        return
      end if
    end do
    n = 2 * size(slots)
    allocate(grown(n), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      write (msg, '(a, i0, a)') 'out of memory: cannot allocate the table of ', n, ' network handles'
      return
    end if
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

  logical function usable(handle, precision, routine, stat, msg)
    !! Whether `handle` is a network loaded at `precision` bits; if not,
    !! `stat` and `msg` say why (`routine` is the entry point's name
    !! without its 32/64 suffix, for the hint to call the other one).
    use fkb, only: fkb_err_argument
    integer, intent(in) :: handle, precision
    character(len=*), intent(in) :: routine
    integer, intent(out) :: stat
    character(len=*), intent(inout) :: msg
    character(len=2) :: other
    usable = .false.
    stat = fkb_err_argument
    if (.not. valid_handle(handle)) then
      msg = 'invalid network handle'
      return
    end if
    if (slots(handle)%precision /= precision) then
      other = merge('64', '32', precision == 32)
      msg = 'network was loaded at ' // other // ' bit; call ' // routine // other
      return
    end if
    usable = .true.
    stat = 0
  end function usable

  subroutine known_layers_r32(registry)
    !! The custom layers the Python runtime runs and trains: the
    !! column-water-conservation layer (emulators/conservation.py,
    !! fortran/example/custom_layer/column_water_conservation.inc), 32-bit.
    use column_water_conservation, only: make_column_water_layer, column_water_kind
    type(layer_registry), intent(out) :: registry
    integer :: stat
    character(len=:), allocatable :: msg
    call registry%add(column_water_kind, make_column_water_layer, stat, msg)
  end subroutine known_layers_r32

  subroutine known_layers_r64(registry)
    !! The same custom layers for the 64-bit networks.
    use column_water_conservation_r64, only: make_column_water_layer, column_water_kind
    type(layer_registry_r64), intent(out) :: registry
    integer :: stat
    character(len=:), allocatable :: msg
    call registry%add(column_water_kind, make_column_water_layer, stat, msg)
  end subroutine known_layers_r64

  subroutine keep_message(msg)
    !! Keep a failed call's message for `kept_message`.
    character(len=*), intent(in) :: msg
    last_failure = trim(msg)
  end subroutine keep_message

  function kept_message() result(msg)
    !! The message kept by the last `keep_message` (empty if none).
    character(len=:), allocatable :: msg
    msg = ''
    if (allocated(last_failure)) msg = last_failure
  end function kept_message

end module fkb_python_handles
