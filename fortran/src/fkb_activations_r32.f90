module fkb_activations_r32
  !! Activation kernels in real32; the source is `fkb_activations.inc`.
  use iso_fortran_env, only: wp => real32
  include 'fkb_activations.inc'
end module fkb_activations_r32
