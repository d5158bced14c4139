module gcm_status
  !! Status codes returned by every fallible procedure of the toy GCM:
  !! the dynamical core, the column physics and the coupling. Zero is
  !! success; each non-zero code comes with a one-line message from the
  !! procedure that failed.
  implicit none
  private
  public :: gcm_ok, gcm_err_config, gcm_err_state, gcm_err_io, gcm_err_format, &
            gcm_err_physics, gcm_err_unphysical, gcm_err_nonfinite, gcm_status_name

  integer, parameter :: gcm_ok = 0
  integer, parameter :: gcm_err_config = 1      !! invalid configuration value or argument
  integer, parameter :: gcm_err_state = 2       !! model not initialised, arrays of the wrong shape or
                                                !! inconsistent geometry
  integer, parameter :: gcm_err_io = 3          !! file cannot be opened, read or written
  integer, parameter :: gcm_err_format = 4      !! checkpoint of another format or resolution
  integer, parameter :: gcm_err_physics = 5     !! the physics hook reported an error
  integer, parameter :: gcm_err_unphysical = 6  !! state outside the physical bounds (run crashed, or
                                                !! a column physics input out of range)
  integer, parameter :: gcm_err_nonfinite = 7   !! NaN or infinity in the state (run crashed) or in a
                                                !! column physics input or output

contains

  pure function gcm_status_name(stat) result(name)
    !! A short name for a status code, for messages and logs.
    integer, intent(in) :: stat
    character(len=:), allocatable :: name
    select case (stat)
    case (gcm_ok); name = 'ok'
    case (gcm_err_config); name = 'invalid configuration'
    case (gcm_err_state); name = 'invalid model state or shape'
    case (gcm_err_io); name = 'io error'
    case (gcm_err_format); name = 'checkpoint format error'
    case (gcm_err_physics); name = 'physics error'
    case (gcm_err_unphysical); name = 'unphysical state'
    case (gcm_err_nonfinite); name = 'non-finite value'
    case default; name = 'unknown status'
    end select
  end function gcm_status_name

end module gcm_status
