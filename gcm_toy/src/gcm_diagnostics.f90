module gcm_diagnostics
  !! Diagnostics of grid-point fields: global and zonal means, dry-air and
  !! water mass, and the crash check that turns a failing run into a report.
  use iso_fortran_env, only: int64
  use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
  use gcm_constants, only: wp, pi
  use gcm_status, only: gcm_ok, gcm_err_unphysical, gcm_err_nonfinite
  implicit none
  private
  public :: failure_report, global_mean, zonal_mean, dry_air_mass, water_mass, check_state, &
            state_bounds

  type :: state_bounds
    !! Physical bounds of a running model (the crash rule).
    real(wp) :: t_min = 150.0_wp      !! [K]
    real(wp) :: t_max = 350.0_wp      !! [K]
    real(wp) :: wind_max = 250.0_wp   !! [m s-1]
    real(wp) :: ps_min = 4.0e4_wp     !! [Pa]
    real(wp) :: ps_max = 1.1e5_wp     !! [Pa]
  end type state_bounds

  type :: failure_report
    !! When, where and why a state failed the check. status = gcm_ok: no failure.
    integer :: status = gcm_ok
    integer(int64) :: step = 0
      !! step number of the failing state
    real(wp) :: time_days = 0.0_wp
    integer :: lon_index = 0
    integer :: lat_index = 0
    integer :: level = 0
      !! model level (1 = top); 0 for surface pressure
    real(wp) :: lon_deg = 0.0_wp
    real(wp) :: lat_deg = 0.0_wp
    real(wp) :: sigma = 0.0_wp
      !! sigma of the level, 1 for surface pressure
    character(len=16) :: variable = ''
      !! 'u', 'v', 'wind_speed', 'temperature', 'humidity' or 'surface_pressure'
    real(wp) :: value = 0.0_wp
      !! the offending value (SI units)
    character(len=256) :: message = ''
      !! one line: reason, variable, value, place and time
  end type failure_report

contains

  pure real(wp) function global_mean(field, weight)
    !! Area-weighted mean of a (nlon, nlat) field; weight = Gaussian weights.
    real(wp), intent(in) :: field(:, :), weight(:)
    integer :: j
    global_mean = 0.0_wp
    do j = 1, size(field, 2)
      global_mean = global_mean + 0.5_wp * weight(j) * sum(field(:, j)) / real(size(field, 1), wp)
    end do
  end function global_mean

  pure function zonal_mean(field) result(zm)
    !! Zonal mean (nlev, nlat) of a (nlev, nlon, nlat) field.
    real(wp), intent(in) :: field(:, :, :)
    real(wp) :: zm(size(field, 1), size(field, 3))
    integer :: j
    do j = 1, size(field, 3)
      zm(:, j) = sum(field(:, :, j), dim=2) / real(size(field, 2), wp)
    end do
  end function zonal_mean

  pure real(wp) function dry_air_mass(ps, q, dsigma, weight)
    !! Global-mean dry-air surface pressure [Pa]: ps (1 - sum_k q_k dsigma_k).
    real(wp), intent(in) :: ps(:, :), q(:, :, :), dsigma(:), weight(:)
    real(wp) :: dry(size(ps, 1), size(ps, 2))
    integer :: i, j
    do j = 1, size(ps, 2)
      do i = 1, size(ps, 1)
        dry(i, j) = ps(i, j) * (1.0_wp - sum(q(:, i, j) * dsigma))
      end do
    end do
    dry_air_mass = global_mean(dry, weight)
  end function dry_air_mass

  pure real(wp) function water_mass(ps, q, dsigma, weight)
    !! Global-mean water-vapour "surface pressure" [Pa]: ps sum_k q_k dsigma_k
    !! (divide by g for the column water in kg m-2).
    real(wp), intent(in) :: ps(:, :), q(:, :, :), dsigma(:), weight(:)
    real(wp) :: w(size(ps, 1), size(ps, 2))
    integer :: i, j
    do j = 1, size(ps, 2)
      do i = 1, size(ps, 1)
        w(i, j) = ps(i, j) * sum(q(:, i, j) * dsigma)
      end do
    end do
    water_mass = global_mean(w, weight)
  end function water_mass

  subroutine check_state(bounds, u, v, t, ps, wind_scale, lat, lon, sigma, step, dt, report, q)
    !! First non-finite value, else first value outside the bounds, in the
    !! order latitude, longitude, level (u, v, T, q at a point, then ps).
    !! u, v, t, q are (nlev, nlon, nlat), ps (nlon, nlat); the winds are
    !! divided by wind_scale(nlat) (cos(lat) for cos-weighted winds, else 1).
    !! q may be absent (dry model).
    type(state_bounds), intent(in) :: bounds
    real(wp), intent(in) :: u(:, :, :), v(:, :, :), t(:, :, :), ps(:, :)
    real(wp), intent(in), optional :: q(:, :, :)
    real(wp), intent(in) :: wind_scale(:), lat(:), lon(:), sigma(:)
    integer(int64), intent(in) :: step
    real(wp), intent(in) :: dt
    type(failure_report), intent(out) :: report
    integer :: i, j, k
    real(wp) :: uu, vv, speed, scaled_max, tmin, tmax, pmin, pmax, total
    logical :: moist

    report%step = step
    report%time_days = real(step, wp) * dt / 86400.0_wp
    moist = present(q)
    ! fast path, one pass: all finite and inside the bounds. NaN fails every
    ! comparison and propagates through the sum, which also catches Inf.
    tmin = huge(1.0_wp)
    tmax = -huge(1.0_wp)
    scaled_max = 0.0_wp
    total = 0.0_wp
    do j = 1, size(t, 3)
      speed = 1.0_wp / wind_scale(j)**2
      do i = 1, size(t, 2)
        do k = 1, size(t, 1)
          tmin = min(tmin, t(k, i, j))
          tmax = max(tmax, t(k, i, j))
          scaled_max = max(scaled_max, (u(k, i, j)**2 + v(k, i, j)**2) * speed)
          total = total + (t(k, i, j) + u(k, i, j) + v(k, i, j))
        end do
      end do
    end do
    pmin = minval(ps)
    pmax = maxval(ps)
    total = total + sum(ps)
    if (moist) total = total + sum(q)
    if (tmin >= bounds%t_min .and. tmax <= bounds%t_max .and. pmin >= bounds%ps_min .and. &
        pmax <= bounds%ps_max .and. scaled_max <= bounds%wind_max**2 .and. ieee_is_finite(total)) then
      report%status = gcm_ok
      report%message = ''
      return
    end if
    ! pass 1: non-finite values
    do j = 1, size(t, 3)
      do i = 1, size(t, 2)
        do k = 1, size(t, 1)
          if (.not. ieee_is_finite(u(k, i, j))) then
            call fail(gcm_err_nonfinite, 'non-finite value', 'u', u(k, i, j), i, j, k); return
          end if
          if (.not. ieee_is_finite(v(k, i, j))) then
            call fail(gcm_err_nonfinite, 'non-finite value', 'v', v(k, i, j), i, j, k); return
          end if
          if (.not. ieee_is_finite(t(k, i, j))) then
            call fail(gcm_err_nonfinite, 'non-finite value', 'temperature', t(k, i, j), i, j, k); return
          end if
          if (moist) then
            if (.not. ieee_is_finite(q(k, i, j))) then
              call fail(gcm_err_nonfinite, 'non-finite value', 'humidity', q(k, i, j), i, j, k); return
            end if
          end if
        end do
        if (.not. ieee_is_finite(ps(i, j))) then
          call fail(gcm_err_nonfinite, 'non-finite value', 'surface_pressure', ps(i, j), i, j, 0); return
        end if
      end do
    end do
    ! pass 2: physical bounds
    do j = 1, size(t, 3)
      do i = 1, size(t, 2)
        do k = 1, size(t, 1)
          if (t(k, i, j) < bounds%t_min) then
            call fail(gcm_err_unphysical, 'temperature below bound', 'temperature', t(k, i, j), i, j, k)
            return
          end if
          if (t(k, i, j) > bounds%t_max) then
            call fail(gcm_err_unphysical, 'temperature above bound', 'temperature', t(k, i, j), i, j, k)
            return
          end if
          uu = u(k, i, j) / wind_scale(j)
          vv = v(k, i, j) / wind_scale(j)
          speed = sqrt(uu * uu + vv * vv)
          if (speed > bounds%wind_max) then
            call fail(gcm_err_unphysical, 'wind speed above bound', 'wind_speed', speed, i, j, k)
            return
          end if
        end do
        if (ps(i, j) < bounds%ps_min) then
          call fail(gcm_err_unphysical, 'surface pressure below bound', 'surface_pressure', ps(i, j), i, j, 0)
          return
        end if
        if (ps(i, j) > bounds%ps_max) then
          call fail(gcm_err_unphysical, 'surface pressure above bound', 'surface_pressure', ps(i, j), i, j, 0)
          return
        end if
      end do
    end do
    report%status = gcm_ok
    report%message = ''
  contains
    subroutine fail(status, reason, variable, value, i, j, k)
      integer, intent(in) :: status, i, j, k
      character(len=*), intent(in) :: reason, variable
      real(wp), intent(in) :: value
      report%status = status
      report%variable = variable
      report%value = value
      report%lon_index = i
      report%lat_index = j
      report%level = k
      report%lon_deg = lon(i) * 180.0_wp / pi
      report%lat_deg = lat(j) * 180.0_wp / pi
      if (k > 0) then
        report%sigma = sigma(k)
      else
        report%sigma = 1.0_wp
      end if
      write (report%message, '(a,": ",a," = ",es12.5," at lat ",f7.2," lon ",f7.2," level ",i0, &
             &" (sigma ",f6.4,"), step ",i0," (day ",f10.3,")")') &
        reason, trim(variable), value, report%lat_deg, report%lon_deg, k, report%sigma, step, &
        report%time_days
    end subroutine fail
  end subroutine check_state

end module gcm_diagnostics
