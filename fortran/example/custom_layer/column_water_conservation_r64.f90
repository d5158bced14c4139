module column_water_conservation_r64
  !! The column-water-conservation layer for `network_r64`; the source is
  !! `column_water_conservation.inc` (written once for both kinds).
  use iso_fortran_env, only: wp => real64
  use fkb, only: layer => layer_r64
  include 'column_water_conservation.inc'
end module column_water_conservation_r64
