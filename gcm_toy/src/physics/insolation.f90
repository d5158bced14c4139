module insolation
  !! Solar radiation at the top of the atmosphere (circular orbit).
  use iso_fortran_env, only: real64
  use gcm_constants, only: pi, seconds_per_day
  use physics_configuration, only: physics_config
  implicit none
  private
  public :: toa_insolation, solar_declination

contains

  elemental function solar_declination(time_seconds, config) result(decl)
    !! Solar declination [radians]: zero for perpetual equinox; with seasons,
    !! asin(sin(obliquity) sin(2 pi t / year)), time zero at the northern spring equinox.
    real(real64), intent(in) :: time_seconds
    type(physics_config), intent(in) :: config
    real(real64) :: decl
    real(real64) :: year_seconds

    if (config%seasons) then
      year_seconds = config%year_length_days * seconds_per_day
      decl = asin(sin(config%obliquity_deg * pi / 180.0_real64) * &
                  sin(2.0_real64 * pi * modulo(time_seconds, year_seconds) / year_seconds))
    else
      decl = 0.0_real64
    end if
  end function solar_declination

  elemental function toa_insolation(lat, lon, time_seconds, config) result(solin)
    !! Incoming solar flux at the top of the atmosphere [W m-2] at latitude lat and
    !! longitude lon [radians] and model time time_seconds [s].
    !!
    !! With the diurnal cycle: solin = S0 max(0, cos zenith), the hour angle is
    !! 2 pi t / day + lon - pi (midnight at longitude 0 at t = 0). Without it: the
    !! daily mean S0/pi (h0 sin(lat) sin(decl) + cos(lat) cos(decl) sin(h0)).
    !! The orbit is circular (no distance factor), so cos zenith = solin / S0.
    real(real64), intent(in) :: lat, lon, time_seconds
    type(physics_config), intent(in) :: config
    real(real64) :: solin
    real(real64) :: decl, hour_angle, cosz, h0

    decl = solar_declination(time_seconds, config)
    if (config%diurnal_cycle) then
      hour_angle = 2.0_real64 * pi * modulo(time_seconds, config%day_length) / config%day_length + lon - pi
      cosz = sin(lat) * sin(decl) + cos(lat) * cos(decl) * cos(hour_angle)
      solin = config%solar_constant * max(0.0_real64, cosz)
    else
      h0 = acos(max(-1.0_real64, min(1.0_real64, -tan(lat) * tan(decl))))
      solin = config%solar_constant / pi * &
              (h0 * sin(lat) * sin(decl) + cos(lat) * cos(decl) * sin(h0))
      solin = max(0.0_real64, solin)
    end if
  end function toa_insolation

end module insolation
