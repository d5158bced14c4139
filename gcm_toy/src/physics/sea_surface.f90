module sea_surface
  !! Prescribed sea-surface temperature of the aquaplanet.
  use iso_fortran_env, only: real64
  use gcm_constants, only: pi, t_freeze
  implicit none
  private
  public :: sst_qobs

contains

  elemental function sst_qobs(lat) result(sst)
    !! The QOBS profile of Neale & Hoskins (2000) [K] at latitude lat [radians]:
    !! 27 (1 - (sin^2(3 lat/2) + sin^4(3 lat/2)) / 2) degC for |lat| < 60 deg,
    !! 0 degC poleward (the mean of their CONTROL and FLAT profiles).
    real(real64), intent(in) :: lat
    real(real64) :: sst
    real(real64) :: s2

    if (abs(lat) < pi / 3.0_real64) then
      s2 = sin(1.5_real64 * lat)**2
      sst = t_freeze + 27.0_real64 * (1.0_real64 - 0.5_real64 * (s2 + s2 * s2))
    else
      sst = t_freeze
    end if
  end function sst_qobs

end module sea_surface
