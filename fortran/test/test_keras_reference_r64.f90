program test_keras_reference_r64
  !! Keras reference outputs, computed by the real64 network.
  use iso_fortran_env, only: wp => real64
  use fkb_network_r64, only: network
  include 'test_keras_reference.inc'
end program test_keras_reference_r64
