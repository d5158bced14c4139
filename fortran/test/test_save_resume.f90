module save_resume_r32
  !! The checks of test_save_resume.inc for the 32-bit network.
  use iso_fortran_env, only: real32, real64, wp => real32
  use fkb, only: network => network_r32
  ! the modules test_save_resume.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_test_specs, only:
  use fkb_testing, only:
  include 'test_save_resume.inc'
end module save_resume_r32

module save_resume_r64
  !! The checks of test_save_resume.inc for the 64-bit network.
  use iso_fortran_env, only: real32, real64, wp => real64
  use fkb, only: network => network_r64
  ! the modules test_save_resume.inc uses, named here for build tools that do not read
  ! include files (fpm): nothing imported
  use fkb_test_specs, only:
  use fkb_testing, only:
  include 'test_save_resume.inc'
end module save_resume_r64

program test_save_resume
  !! Saving a network with its training state and resuming: for every
  !! optimizer (with dropout, batch normalization, a schedule, shuffled
  !! fit), train, save, load into a fresh network and resume gives bit for
  !! bit the network that trained straight on, at 32 and 64 bit; an
  !! uncompiled network saves a version-1 file; a training section that does
  !! not fit the network, or a corrupt one, is refused with one line.
  use iso_fortran_env, only: real32, real64
  use fkb, only: network_r32, network_r64, fkb_ok
  use fkb_testing, only: tester
  use save_resume_r32, only: check_r32 => check_all
  use save_resume_r64, only: check_r64 => check_all
  implicit none
  type(tester) :: t
  t%suite = 'save_resume'
  call check_r32(t, '.')
  call check_r64(t, '.')
  call check_other_precision(t)
  call t%finish()

contains

  subroutine check_other_precision(t)
    !! A state saved at one precision loads into a network of the other:
    !! compiled, the step count kept, the weights those of the file
    !! (rounded, or widened), and training continues.
    type(tester), intent(inout) :: t
    type(network_r32) :: n32
    type(network_r64) :: n64
    real(real32), allocatable :: w32(:), x32(:, :), y32(:, :)
    real(real64), allocatable :: w64(:), x64(:, :), y64(:, :)
    integer :: stat, k
    character(len=:), allocatable :: msg
    call n64%load('resume_r64_adam.fkb', stat, msg)
    call n32%load('resume_r64_adam.fkb', stat, msg)
    call t%status(stat, fkb_ok, msg, 'a 64-bit state loads at 32 bit')
    call t%check(n32%n_iterations() == n64%n_iterations() .and. n32%n_iterations() > 0, &
                 'a 64-bit state at 32 bit: the step count is kept')
    allocate (w32(n32%n_trainable()), w64(n64%n_trainable()))
    call n32%get_weights(w32, stat, msg)
    call n64%get_weights(w64, stat, msg)
    call t%check(all(w32 == real(w64, real32)), 'a 64-bit state at 32 bit: the rounded weights')
    x32 = reshape([(real(k, real32) / 10, k = 1, 30)], [3, 10])
    y32 = reshape([(real(k, real32) / 20, k = 1, 20)], [2, 10])
    call n32%train_step(x32, y32, stat, msg)
    call t%status(stat, fkb_ok, msg, 'a 64-bit state at 32 bit: training continues')
    call n64%load('resume_r32_rmsprop.fkb', stat, msg)
    call t%status(stat, fkb_ok, msg, 'a 32-bit state loads at 64 bit')
    x64 = real(x32, real64)
    y64 = real(y32, real64)
    call n64%train_step(x64, y64, stat, msg)
    call t%status(stat, fkb_ok, msg, 'a 32-bit state at 64 bit: training continues')
  end subroutine check_other_precision

end program test_save_resume
