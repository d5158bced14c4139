module physics_constants
  !! Physical constants of the toy GCM's column physics (SI units).
  !!
  !! Values as in docs/gcm-dynamics.md, "Physical constants", with the same
  !! names as the dynamical core's `gcm_constants`, so the two modules can be
  !! merged without renaming anything in the physics.
  use iso_fortran_env, only: real64
  implicit none
  private
  public :: pi, gravity, rd, cp, kappa, rv, latent_heat_vap, p_reference, &
            seconds_per_day, stefan_boltzmann, eps_vapour, es_reference, &
            t_reference_es, t_freeze, rho_water, earth_radius, earth_omega

  real(real64), parameter :: pi = 3.141592653589793238462643383279502884_real64
  real(real64), parameter :: earth_radius = 6.371e6_real64      !! a [m]
  real(real64), parameter :: earth_omega = 7.292e-5_real64      !! rotation rate [s-1]
  real(real64), parameter :: gravity = 9.80616_real64           !! g [m s-2]
  real(real64), parameter :: rd = 287.04_real64                 !! dry-air gas constant [J kg-1 K-1]
  real(real64), parameter :: cp = 1004.64_real64                !! dry-air heat capacity [J kg-1 K-1]
  real(real64), parameter :: kappa = rd / cp                    !! R_d / c_p
  real(real64), parameter :: rv = 461.5_real64                  !! water-vapour gas constant [J kg-1 K-1]
  real(real64), parameter :: latent_heat_vap = 2.5e6_real64     !! L_v [J kg-1], constant (energy budget uses it)
  real(real64), parameter :: p_reference = 1.0e5_real64         !! p0 [Pa]
  real(real64), parameter :: seconds_per_day = 86400.0_real64
  real(real64), parameter :: stefan_boltzmann = 5.67e-8_real64  !! sigma [W m-2 K-4]
  real(real64), parameter :: eps_vapour = rd / rv               !! R_d / R_v (about 0.622)
  real(real64), parameter :: es_reference = 610.78_real64       !! e_s at t_reference_es [Pa]
  real(real64), parameter :: t_reference_es = 273.16_real64     !! reference temperature of e_s [K]
  real(real64), parameter :: t_freeze = 273.15_real64           !! 0 degC [K]
  real(real64), parameter :: rho_water = 1000.0_real64          !! liquid water density [kg m-3]

end module physics_constants
