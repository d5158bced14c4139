module fkb_status
  !! Status codes returned by every fallible procedure of the library.
  !! Zero is success; each non-zero code comes with a one-line message.
  implicit none
  private
  public :: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_version, fkb_err_hash, &
            fkb_err_unsupported, fkb_err_shape, fkb_err_nonfinite, fkb_err_argument, &
            fkb_status_name

  integer, parameter :: fkb_ok = 0
  integer, parameter :: fkb_err_io = 1           !! missing, unreadable or unwritable file
  integer, parameter :: fkb_err_format = 2       !! malformed or truncated content
  integer, parameter :: fkb_err_version = 3      !! unknown format version
  integer, parameter :: fkb_err_hash = 4         !! content hash mismatch
  integer, parameter :: fkb_err_unsupported = 5  !! unknown layer type, activation or option
  integer, parameter :: fkb_err_shape = 6        !! inconsistent or wrong array shapes
  integer, parameter :: fkb_err_nonfinite = 7    !! NaN or infinity in weights, inputs or outputs
  integer, parameter :: fkb_err_argument = 8     !! invalid argument (e.g. network not loaded)

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
    case default; name = 'unknown status'
    end select
  end function fkb_status_name

end module fkb_status
