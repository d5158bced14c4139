module fkb_status
  !! Status codes returned by every fallible procedure of the library.
  !! Zero is success; each non-zero code comes with a one-line message.
  use iso_fortran_env, only: int64
  implicit none
  private
  public :: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_version, fkb_err_hash, &
            fkb_err_unsupported, fkb_err_shape, fkb_err_nonfinite, fkb_err_argument, &
            fkb_err_memory, fkb_status_name, allocation_failure, int_to_str

  interface int_to_str
    !! An integer (default kind or `int64`) as text, without blanks.
    module procedure int_to_str_default
    module procedure int_to_str_int64
  end interface int_to_str

  integer, parameter :: fkb_ok = 0
  integer, parameter :: fkb_err_io = 1           !! missing, unreadable or unwritable file
  integer, parameter :: fkb_err_format = 2       !! malformed or truncated content
  integer, parameter :: fkb_err_version = 3      !! unknown format version
  integer, parameter :: fkb_err_hash = 4         !! content hash mismatch
  integer, parameter :: fkb_err_unsupported = 5  !! unknown layer type, activation or option
  integer, parameter :: fkb_err_shape = 6        !! inconsistent or wrong array shapes
  integer, parameter :: fkb_err_nonfinite = 7    !! NaN or infinity in weights, inputs or outputs
  integer, parameter :: fkb_err_argument = 8     !! invalid argument (e.g. network not loaded)
  integer, parameter :: fkb_err_memory = 9       !! an allocation failed (out of memory)

contains

  pure function fkb_status_name(stat) result(name)
    !! A short name for a status code, for messages and logs.
    integer, intent(in) :: stat
    character(len=:), allocatable :: name
    select case (stat)
    case (fkb_ok); name = 'ok'
    case (fkb_err_io); name = 'io error'
    case (fkb_err_format); name = 'format error'
    case (fkb_err_version); name = 'unknown version'
    case (fkb_err_hash); name = 'hash mismatch'
    case (fkb_err_unsupported); name = 'unsupported'
    case (fkb_err_shape); name = 'shape error'
    case (fkb_err_nonfinite); name = 'non-finite value'
    case (fkb_err_argument); name = 'invalid argument'
    case (fkb_err_memory); name = 'out of memory'
    case default; name = 'unknown status'
    end select
  end function fkb_status_name

  pure function allocation_failure(what, n_values, value_bytes) result(msg)
    !! The one-line message of an allocation that failed: what could not
    !! be allocated and its size. (gfortran's own `errmsg=` text for a
    !! failed allocation is misleading, "Attempt to allocate an allocated
    !! object", so the library writes its own.)
    character(len=*), intent(in) :: what
      !! what the memory was for, e.g. `the training workspace (40 x 512)`
    integer(int64), intent(in) :: n_values
      !! number of elements asked for
    integer, intent(in) :: value_bytes
      !! bytes per element
    character(len=:), allocatable :: msg
    msg = 'out of memory: cannot allocate ' // what // ': ' // int_to_str(n_values) // &
          ' values, ' // int_to_str(n_values * value_bytes) // ' bytes'
  end function allocation_failure

  pure function int_to_str_default(i) result(s)
    integer, intent(in) :: i
    character(len=:), allocatable :: s
    s = int_to_str_int64(int(i, int64))
  end function int_to_str_default

  pure function int_to_str_int64(i) result(s)
    integer(int64), intent(in) :: i
    character(len=:), allocatable :: s
    character(len=24) :: buffer
    write(buffer, '(i0)') i
    s = trim(buffer)
  end function int_to_str_int64

end module fkb_status
