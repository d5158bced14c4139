module gcm_held_suarez
  !! Held & Suarez (1994, BAMS 75) forcing of a dry dynamical core:
  !! Newtonian relaxation of temperature to a zonally symmetric equilibrium
  !! and Rayleigh friction of the winds near the surface.
  !!
  !!   T_eq = max(200 K, [315 K - dT_y sin^2(lat) - dtheta_z ln(p/p0) cos^2(lat)] (p/p0)^kappa)
  !!   k_T  = k_a + (k_s - k_a) max(0, (sigma - sigma_b)/(1 - sigma_b)) cos^4(lat)
  !!   k_v  = k_f max(0, (sigma - sigma_b)/(1 - sigma_b))
  !!   dT/dt = -k_T (T - T_eq),  du/dt = -k_v u,  dv/dt = -k_v v
  !! with dT_y = 60 K, dtheta_z = 10 K, k_a = 1/40 d-1, k_s = 1/4 d-1,
  !! k_f = 1 d-1, sigma_b = 0.7, p0 = 1000 hPa, sigma = p/ps.
  use gcm_constants, only: wp, kappa, p_reference, seconds_per_day
  use gcm_status, only: gcm_ok
  use gcm_physics_interface, only: physics_scheme, physics_columns, physics_tendencies
  implicit none
  private
  public :: held_suarez_forcing, held_suarez_tendencies, held_suarez_equilibrium_temperature

  type, extends(physics_scheme) :: held_suarez_forcing
    !! The forcing as a physics scheme; the parameters are those of the paper.
    real(wp) :: delta_t_y = 60.0_wp          !! equator-pole contrast [K]
    real(wp) :: delta_theta_z = 10.0_wp      !! static-stability parameter [K]
    real(wp) :: k_a = 1.0_wp / (40.0_wp * seconds_per_day)  !! [s-1]
    real(wp) :: k_s = 1.0_wp / (4.0_wp * seconds_per_day)   !! [s-1]
    real(wp) :: k_f = 1.0_wp / seconds_per_day               !! [s-1]
    real(wp) :: sigma_b = 0.7_wp
  contains
    procedure :: compute => held_suarez_compute
  end type held_suarez_forcing

contains

  elemental real(wp) function held_suarez_equilibrium_temperature(self, lat, p) result(teq)
    !! T_eq [K] at latitude lat [rad] and pressure p [Pa].
    class(held_suarez_forcing), intent(in) :: self
    real(wp), intent(in) :: lat, p
    real(wp) :: s2, c2
    s2 = sin(lat)**2
    c2 = 1.0_wp - s2
    teq = (315.0_wp - self%delta_t_y * s2 - self%delta_theta_z * log(p / p_reference) * c2) &
          * (p / p_reference)**kappa
    teq = max(200.0_wp, teq)
  end function held_suarez_equilibrium_temperature

  pure subroutine held_suarez_tendencies(self, lat, sigma, ps, t, u, v, dtdt, dudt, dvdt)
    !! The forcing for a batch of columns: lat(ncol) [rad], sigma(nlev),
    !! ps(ncol) [Pa], t, u, v (nlev, ncol); tendencies (nlev, ncol) [per s].
    class(held_suarez_forcing), intent(in) :: self
    real(wp), intent(in) :: lat(:), sigma(:), ps(:), t(:, :), u(:, :), v(:, :)
    real(wp), intent(out) :: dtdt(:, :), dudt(:, :), dvdt(:, :)
    real(wp) :: height_factor(size(sigma)), kv(size(sigma)), ln_sigma(size(sigma))
    real(wp) :: c4, s2, kt, ln_p, teq
    integer :: c, k
    height_factor = max(0.0_wp, (sigma - self%sigma_b) / (1.0_wp - self%sigma_b))
    kv = self%k_f * height_factor
    ln_sigma = log(sigma)
    do c = 1, size(lat)
      s2 = sin(lat(c))**2
      c4 = (1.0_wp - s2)**2
      do k = 1, size(sigma)
        ! same formula as held_suarez_equilibrium_temperature, one exp per point
        ln_p = ln_sigma(k) + log(ps(c) / p_reference)
        teq = max(200.0_wp, (315.0_wp - self%delta_t_y * s2 - self%delta_theta_z * ln_p * (1.0_wp - s2)) &
                            * exp(kappa * ln_p))
        kt = self%k_a + (self%k_s - self%k_a) * height_factor(k) * c4
        dtdt(k, c) = -kt * (t(k, c) - teq)
        dudt(k, c) = -kv(k) * u(k, c)
        dvdt(k, c) = -kv(k) * v(k, c)
      end do
    end do
  end subroutine held_suarez_tendencies

  subroutine held_suarez_compute(self, columns, tendencies, status, message)
    !! The physics-scheme entry point: sets dT, du, dv; q and ps untouched.
    class(held_suarez_forcing), intent(inout) :: self
    type(physics_columns), intent(in) :: columns
    type(physics_tendencies), intent(inout) :: tendencies
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    call held_suarez_tendencies(self, columns%lat, columns%sigma, columns%ps, columns%t, &
                                columns%u, columns%v, tendencies%dtdt, tendencies%dudt, tendencies%dvdt)
    status = gcm_ok
    message = ''
  end subroutine held_suarez_compute

end module gcm_held_suarez
