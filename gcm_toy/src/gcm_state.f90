module gcm_state
  !! The prognostic state of the dynamical core: everything needed to
  !! continue a run bit for bit. The caller owns it (inside `climate_model`).
  !!
  !! Spectral coefficients (triangular layout of `gcm_legendre`) of
  !! vorticity [s-1], divergence [s-1], temperature [K], specific humidity
  !! [kg kg-1] (nlev, nspec, 2) and ln(ps/Pa) (nspec, 2) at the two leapfrog
  !! time levels: index `previous` = n-1 (already time-filtered) and
  !! `current` = n. The surface geopotential is fixed boundary data.
  use iso_fortran_env, only: int64
  use gcm_constants, only: wp
  implicit none
  private
  public :: model_state, state_init, previous, current

  integer, parameter :: previous = 1
  integer, parameter :: current = 2

  type :: model_state
    integer :: nlev = 0
    integer :: nspec = 0
    complex(wp), allocatable :: vor(:, :, :)
    complex(wp), allocatable :: div(:, :, :)
    complex(wp), allocatable :: tmp(:, :, :)
    complex(wp), allocatable :: hum(:, :, :)
    complex(wp), allocatable :: lnps(:, :)
    complex(wp), allocatable :: phis(:)
      !! surface geopotential [m2 s-2] (nspec)
    integer(int64) :: step = 0
      !! number of steps taken; model time = step * dt
    logical :: leapfrog_started = .false.
      !! false: the next step is a forward step from `current` (n-1 = n)
    real(wp) :: dry_mass_target = 0.0_wp
      !! global-mean dry-air surface pressure the mass fixer restores [Pa]
  end type model_state

contains

  subroutine state_init(state, nlev, nspec)
    !! An allocated state of zeros.
    type(model_state), intent(out) :: state
    integer, intent(in) :: nlev, nspec
    state%nlev = nlev
    state%nspec = nspec
    allocate (state%vor(nlev, nspec, 2), state%div(nlev, nspec, 2), state%tmp(nlev, nspec, 2), &
              state%hum(nlev, nspec, 2), state%lnps(nspec, 2), state%phis(nspec))
    state%vor = (0.0_wp, 0.0_wp)
    state%div = (0.0_wp, 0.0_wp)
    state%tmp = (0.0_wp, 0.0_wp)
    state%hum = (0.0_wp, 0.0_wp)
    state%lnps = (0.0_wp, 0.0_wp)
    state%phis = (0.0_wp, 0.0_wp)
  end subroutine state_init

end module gcm_state
