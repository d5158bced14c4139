module gcm_physics_interface
  !! The hook through which column physics plugs into the dynamical core.
  !!
  !! Every step the model hands a `physics_scheme` the grid-point state as a
  !! batch of columns and adds the tendencies it returns to the dynamics'
  !! tendencies in grid space (u, v, T, q and surface pressure). The state
  !! is that of the previous time level n-1 (a lagged, forward-in-time
  !! treatment over 2 dt, as leapfrog models do for dissipative physics);
  !! `columns%dt` is the length of time the tendencies act over.
  !!
  !! Columns are ordered longitude fastest, then latitude (south to north):
  !! column c = i + (j-1)*nlon. Levels run from the top (k = 1) down.
  use iso_fortran_env, only: int64
  use gcm_constants, only: wp
  implicit none
  private
  public :: physics_columns, physics_tendencies, physics_scheme, physics_columns_init, &
            physics_tendencies_init

  type :: physics_columns
    integer :: ncol = 0
    integer :: nlev = 0
    real(wp) :: dt = 0.0_wp
      !! time over which the tendencies act [s]: 2*dt (leapfrog), dt on the first step
    real(wp) :: time_seconds = 0.0_wp
      !! model time of the state [s]
    integer(int64) :: step = 0
      !! step number of the state
    real(wp), allocatable :: lat(:), lon(:)
      !! column latitude and longitude [rad] (ncol)
    real(wp), allocatable :: sigma(:)
      !! full-level sigma (nlev)
    real(wp), allocatable :: sigma_half(:)
      !! half-level sigma (0:nlev)
    real(wp), allocatable :: u(:, :), v(:, :)
      !! wind components [m s-1] (nlev, ncol)
    real(wp), allocatable :: t(:, :)
      !! temperature [K] (nlev, ncol)
    real(wp), allocatable :: q(:, :)
      !! specific humidity [kg kg-1] (nlev, ncol), never negative
    real(wp), allocatable :: ps(:)
      !! surface pressure [Pa] (ncol)
  end type physics_columns

  type :: physics_tendencies
    real(wp), allocatable :: dudt(:, :), dvdt(:, :)
      !! [m s-2] (nlev, ncol)
    real(wp), allocatable :: dtdt(:, :)
      !! [K s-1] (nlev, ncol)
    real(wp), allocatable :: dqdt(:, :)
      !! [kg kg-1 s-1] (nlev, ncol)
    real(wp), allocatable :: dpsdt(:)
      !! [Pa s-1] (ncol); a mass source, zero for a dry-mass-conserving scheme
  end type physics_tendencies

  type, abstract :: physics_scheme
    !! A column physics package: reference physics, an emulator, a forcing.
  contains
    procedure(compute_interface), deferred :: compute
  end type physics_scheme

  abstract interface
    subroutine compute_interface(self, columns, tendencies, status, message)
      !! Tendencies of the given columns. `tendencies` arrive zeroed; a scheme
      !! sets or adds what it changes. Non-zero status stops the model step.
      import :: physics_scheme, physics_columns, physics_tendencies
      class(physics_scheme), intent(inout) :: self
      type(physics_columns), intent(in) :: columns
      type(physics_tendencies), intent(inout) :: tendencies
      integer, intent(out) :: status
      character(len=*), intent(out) :: message
    end subroutine compute_interface
  end interface

contains

  subroutine physics_columns_init(columns, lat, lon, sigma, sigma_half)
    !! Allocate the columns for a grid: lat(nlat), lon(nlon) [rad] give
    !! nlon*nlat columns ordered longitude fastest.
    type(physics_columns), intent(out) :: columns
    real(wp), intent(in) :: lat(:), lon(:), sigma(:), sigma_half(0:)
    integer :: i, j, c, nlev
    nlev = size(sigma)
    columns%nlev = nlev
    columns%ncol = size(lat) * size(lon)
    allocate (columns%lat(columns%ncol), columns%lon(columns%ncol))
    do j = 1, size(lat)
      do i = 1, size(lon)
        c = i + (j - 1) * size(lon)
        columns%lat(c) = lat(j)
        columns%lon(c) = lon(i)
      end do
    end do
    columns%sigma = sigma
    allocate (columns%sigma_half(0:nlev))
    columns%sigma_half(0:nlev) = sigma_half(0:nlev)
    allocate (columns%u(nlev, columns%ncol), columns%v(nlev, columns%ncol), &
              columns%t(nlev, columns%ncol), columns%q(nlev, columns%ncol), columns%ps(columns%ncol))
  end subroutine physics_columns_init

  subroutine physics_tendencies_init(tendencies, nlev, ncol)
    !! Allocate tendencies for nlev levels and ncol columns, set to zero.
    type(physics_tendencies), intent(out) :: tendencies
    integer, intent(in) :: nlev, ncol
    allocate (tendencies%dudt(nlev, ncol), tendencies%dvdt(nlev, ncol), tendencies%dtdt(nlev, ncol), &
              tendencies%dqdt(nlev, ncol), tendencies%dpsdt(ncol))
    tendencies%dudt = 0.0_wp
    tendencies%dvdt = 0.0_wp
    tendencies%dtdt = 0.0_wp
    tendencies%dqdt = 0.0_wp
    tendencies%dpsdt = 0.0_wp
  end subroutine physics_tendencies_init

end module gcm_physics_interface
