module physics_status
  !! Status codes of the column physics. Zero is success; each non-zero code
  !! comes with a one-line message from the procedure that failed.
  !!
  !! The numbers equal those of the dynamical core's `gcm_status` with the
  !! same meaning (config = 1, state/shape = 2, unphysical = 6, non-finite = 7)
  !! so the lead can merge the two modules without changing behaviour.
  implicit none
  private
  public :: physics_ok, physics_err_config, physics_err_state, &
            physics_err_unphysical, physics_err_nonfinite

  integer, parameter :: physics_ok = 0
  integer, parameter :: physics_err_config = 1      !! invalid configuration value or argument
  integer, parameter :: physics_err_state = 2       !! arrays of the wrong shape or inconsistent geometry
  integer, parameter :: physics_err_unphysical = 6  !! input state outside the physical bounds
  integer, parameter :: physics_err_nonfinite = 7   !! NaN or infinity in an input

end module physics_status
