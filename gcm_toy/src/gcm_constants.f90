module gcm_constants
  !! Kind parameter and physical constants of the toy GCM (SI units).
  !!
  !! Standard textbook values (docs/gcm-dynamics.md, "Physical constants";
  !! e.g. Wallace & Hobbs 2006). They are named constants, not
  !! configuration: a run that needs another planet changes this module.
  use iso_fortran_env, only: real64
  implicit none
  private
  public :: wp, pi, earth_radius, earth_omega, gravity, rd, cp, kappa, rv, &
            latent_heat_vap, p_reference, seconds_per_day

  integer, parameter :: wp = real64
    !! the one real kind of the dynamical core

  real(wp), parameter :: pi = 3.141592653589793238462643383279502884_wp
  real(wp), parameter :: earth_radius = 6.371e6_wp      !! a [m]
  real(wp), parameter :: earth_omega = 7.292e-5_wp      !! rotation rate Omega [s-1]
  real(wp), parameter :: gravity = 9.80616_wp           !! g [m s-2]
  real(wp), parameter :: rd = 287.04_wp                 !! dry-air gas constant [J kg-1 K-1]
  real(wp), parameter :: cp = 1004.64_wp                !! dry-air heat capacity [J kg-1 K-1]
  real(wp), parameter :: kappa = rd / cp                !! R_d / c_p
  real(wp), parameter :: rv = 461.5_wp                  !! water-vapour gas constant [J kg-1 K-1]
  real(wp), parameter :: latent_heat_vap = 2.5e6_wp     !! L_v [J kg-1]
  real(wp), parameter :: p_reference = 1.0e5_wp         !! p0 [Pa]
  real(wp), parameter :: seconds_per_day = 86400.0_wp

end module gcm_constants
