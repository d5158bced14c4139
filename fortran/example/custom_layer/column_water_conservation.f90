module column_water_conservation
  !! The column-water-conservation layer for the 32-bit `network`; the source is
  !! `column_water_conservation.inc` (written once for both kinds).
  use iso_fortran_env, only: wp => real32
  use fkb, only: layer
  include 'column_water_conservation.inc'
end module column_water_conservation
