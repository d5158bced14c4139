program test_keras_reference_r64
  !! Keras reference outputs, computed by the real64 network.
  use iso_fortran_env, only: wp => real64
  use fkb_network_r64, only: network
  ! the modules test_keras_reference.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_status, only:
  use fkb_spec, only:
  use fkb_test_specs, only:
  use fkb_testing, only:
  use keras_reference, only:
  include 'test_keras_reference.inc'
end program test_keras_reference_r64
