program test_keras_reference_r32
  !! Keras reference outputs, computed by the real32 network.
  use iso_fortran_env, only: wp => real32
  use fkb_network_r32, only: network
  include 'test_keras_reference.inc'
end program test_keras_reference_r32
