module fkb_activations_r64
  !! Activation kernels in real64; the source is `fkb_activations.inc`.
  use iso_fortran_env, only: wp => real64
  include 'fkb_activations.inc'
end module fkb_activations_r64
