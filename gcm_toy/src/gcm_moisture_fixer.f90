module gcm_moisture_fixer
  !! Conservative filling of negative specific humidity.
  !!
  !! Spectral advection of q overshoots near sharp gradients and leaves small
  !! negative values. The filler keeps the water mass (ps/g) sum_k q_k dsigma_k
  !! of every column where it can, and the global water mass always:
  !!   1. in a column with negative values, set them to zero and scale the
  !!      positive values down by the same column mass (borrowing in proportion
  !!      to the water each level holds);
  !!   2. if a column holds less than nothing, set it to zero and take its
  !!      deficit from all columns of the globe, in proportion to their water.
  !! The result is q >= 0 everywhere and the same global water mass (to
  !! rounding), unless the global total itself is negative.
  use gcm_constants, only: wp
  implicit none
  private
  public :: fill_negative_humidity

contains

  subroutine fill_negative_humidity(nlev, ncol, q, ps, dsigma, area, moved)
    !! q (nlev, ncol) [kg kg-1] filled in place; ps (ncol) [Pa]; dsigma (nlev);
    !! area (ncol) the columns' fractions of the globe. `moved` is the global
    !! mean of the water mass moved, as ps * q [Pa] (divide by g for kg m-2);
    !! zero when nothing was negative. Any array of columns, e.g. a grid
    !! (nlev, nlon, nlat), may be passed.
    integer, intent(in) :: nlev, ncol
    real(wp), intent(inout) :: q(nlev, ncol)
    real(wp), intent(in) :: ps(ncol), dsigma(nlev), area(ncol)
    real(wp), intent(out) :: moved
    real(wp) :: pos, neg, deficit, total, factor
    integer :: c, k

    moved = 0.0_wp
    deficit = 0.0_wp
    do c = 1, ncol
      if (all(q(:, c) >= 0.0_wp)) cycle
      pos = 0.0_wp
      neg = 0.0_wp
      do k = 1, nlev
        if (q(k, c) > 0.0_wp) then
          pos = pos + q(k, c) * dsigma(k)
        else
          neg = neg + q(k, c) * dsigma(k)
        end if
      end do
      moved = moved - neg * ps(c) * area(c)
      if (pos + neg >= 0.0_wp) then
        factor = 0.0_wp
        if (pos > 0.0_wp) factor = (pos + neg) / pos
        do k = 1, nlev
          if (q(k, c) > 0.0_wp) then
            q(k, c) = q(k, c) * factor
          else
            q(k, c) = 0.0_wp
          end if
        end do
      else
        deficit = deficit - (pos + neg) * ps(c) * area(c)
        q(:, c) = 0.0_wp
      end if
    end do
    if (deficit > 0.0_wp) then
      total = 0.0_wp
      do c = 1, ncol
        total = total + ps(c) * area(c) * sum(q(:, c) * dsigma)
      end do
      factor = 0.0_wp
      if (total > deficit) factor = (total - deficit) / total
      q = q * factor
    end if
  end subroutine fill_negative_humidity

end module gcm_moisture_fixer
