module gcm_constants
  !! Kind parameter and physical constants of the whole toy GCM, dynamical
  !! core and column physics alike (SI units).
  !!
  !! Standard textbook values (Wallace & Hobbs 2006, "Atmospheric Science",
  !! 2nd ed.; docs/gcm-dynamics.md, "Physical constants"). They are named
  !! constants, not configuration: a run that needs another planet changes
  !! this module.
  use iso_fortran_env, only: real64
  implicit none
  private
  public :: wp, pi, earth_radius, earth_omega, gravity, rd, cp, kappa, rv, &
            latent_heat_vap, p_reference, seconds_per_day, stefan_boltzmann, eps_vapour, &
            es_reference, t_reference_es, t_freeze, rho_water

  integer, parameter :: wp = real64
    !! the one real kind of the model

  real(wp), parameter :: pi = 3.141592653589793238462643383279502884_wp
  real(wp), parameter :: earth_radius = 6.371e6_wp      !! a [m]
  real(wp), parameter :: earth_omega = 7.292e-5_wp      !! rotation rate Omega [s-1]
  real(wp), parameter :: gravity = 9.80616_wp           !! g [m s-2]
  real(wp), parameter :: rd = 287.04_wp                 !! dry-air gas constant [J kg-1 K-1]
  real(wp), parameter :: cp = 1004.64_wp                !! dry-air heat capacity [J kg-1 K-1]
  real(wp), parameter :: kappa = rd / cp                !! R_d / c_p
  real(wp), parameter :: rv = 461.5_wp                  !! water-vapour gas constant [J kg-1 K-1]
  real(wp), parameter :: latent_heat_vap = 2.5e6_wp     !! L_v [J kg-1], constant (energy budget uses it)
  real(wp), parameter :: p_reference = 1.0e5_wp         !! p0 [Pa]
  real(wp), parameter :: seconds_per_day = 86400.0_wp
  real(wp), parameter :: stefan_boltzmann = 5.67e-8_wp  !! sigma [W m-2 K-4]
  real(wp), parameter :: eps_vapour = rd / rv           !! R_d / R_v (about 0.622)
  real(wp), parameter :: es_reference = 610.78_wp       !! e_s at t_reference_es [Pa]
  real(wp), parameter :: t_reference_es = 273.16_wp     !! reference temperature of e_s [K]
  real(wp), parameter :: t_freeze = 273.15_wp           !! 0 degC [K]
  real(wp), parameter :: rho_water = 1000.0_wp          !! liquid water density [kg m-3]

end module gcm_constants
