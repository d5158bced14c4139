module gcm_emulator_networks
  !! The emulator's member networks behind one handle, so that the emulator
  !! (`gcm_emulator`) is written once for both real kinds.
  !!
  !! `emulator_networks` loads the members of an ensemble (a single network
  !! is an ensemble of one) from their model files into the `fkb` library's
  !! kind-agnostic `ensemble_any`, in 32 bits (the default: the inputs are
  !! rounded to 32 bits and the outputs widened back) or 64, each member
  !! with the custom layers of the registry of its kind, and predicts in
  !! 64-bit arrays: x(n_in, ncol) -> the members' mean y(n_out, ncol),
  !! keeping each member's outputs for the failure report. Work arrays are
  !! kept between calls (no allocation once sized).
  use iso_fortran_env, only: real32, real64
  use fkb, only: network, ensemble_any, layer_registry, layer_registry_r64, fkb_ok, fkb_err_argument
  implicit none
  private
  public :: emulator_networks

  type :: emulator_networks
    type(ensemble_any) :: members
    real(real64), allocatable :: spread(:, :), outputs(:, :, :)
      !! the members' standard deviation and each member's outputs
    real(real32), allocatable :: x32(:, :), y32(:, :)
      !! a fine-tuned (32-bit) network's inputs and outputs
  contains
    procedure :: load => networks_load
    procedure :: predict => networks_predict
    procedure :: n_members => networks_n_members
    procedure :: member_path => networks_member_path
    procedure :: member_outputs => networks_member_outputs
  end type emulator_networks

contains

  subroutine networks_load(self, paths, use_real64, registry, registry_r64, stat, msg)
    !! Load the members from `paths` in 64 bits if `use_real64`, else in 32,
    !! with the custom layers of the registry of that kind; stat fkb_ok or
    !! the library's error.
    class(emulator_networks), intent(inout) :: self
    character(len=*), intent(in) :: paths(:)
    logical, intent(in) :: use_real64
    type(layer_registry), intent(in) :: registry
    type(layer_registry_r64), intent(in) :: registry_r64
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    call self%members%load(paths, stat, msg, precision=merge(64, 32, use_real64), registry=registry, &
                           registry_r64=registry_r64)
  end subroutine networks_load

  subroutine networks_predict(self, x, y, stat, msg, tuned)
    !! The members' mean y of the inputs x; with `tuned` (a 32-bit network)
    !! that network's outputs instead (it stands in for the ensemble of
    !! one). stat fkb_ok or the library's error (a non-finite output:
    !! fkb_err_nonfinite, each member's outputs kept).
    class(emulator_networks), intent(inout) :: self
    real(real64), intent(in) :: x(:, :)
    real(real64), intent(out) :: y(:, :)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    type(network), intent(inout), optional :: tuned
    integer :: ncol, n_out
    ncol = size(x, 2)
    n_out = size(y, 1)
    call reserve(self, size(x, 1), n_out, ncol, present(tuned))
    if (present(tuned)) then
      if (self%members%precision() /= 32) then
        stat = fkb_err_argument
        msg = 'emulator: a fine-tuned network computes in 32 bits, not in 64'
        return
      end if
      self%x32(:, 1:ncol) = real(x, real32)
      call tuned%predict(self%x32(:, 1:ncol), self%y32(:, 1:ncol), stat, msg)
      self%outputs(:, 1:ncol, 1) = real(self%y32(:, 1:ncol), real64)
      if (stat == fkb_ok) y = self%outputs(:, 1:ncol, 1)
    else
      call self%members%predict(x, y, self%spread(:, 1:ncol), stat, msg, members=self%outputs(:, 1:ncol, :))
    end if
  end subroutine networks_predict

  subroutine reserve(self, n_in, n_out, ncol, tuned)
    !! Room for `ncol` columns (kept when there is).
    type(emulator_networks), intent(inout) :: self
    integer, intent(in) :: n_in, n_out, ncol
    logical, intent(in) :: tuned
    if (allocated(self%outputs)) then
      if (size(self%outputs, 1) /= n_out .or. size(self%outputs, 2) < ncol) deallocate (self%spread, self%outputs)
    end if
    if (.not. allocated(self%outputs)) then
      allocate (self%spread(n_out, ncol), self%outputs(n_out, ncol, self%members%n_members()))
      self%outputs = 0.0_real64
    end if
    if (.not. tuned) return
    if (allocated(self%x32)) then
      if (size(self%x32, 1) /= n_in .or. size(self%y32, 1) /= n_out .or. size(self%x32, 2) < ncol) &
        deallocate (self%x32, self%y32)
    end if
    if (.not. allocated(self%x32)) allocate (self%x32(n_in, ncol), self%y32(n_out, ncol))
  end subroutine reserve

  pure integer function networks_n_members(self)
    class(emulator_networks), intent(in) :: self
    networks_n_members = self%members%n_members()
  end function networks_n_members

  pure function networks_member_path(self, m) result(path)
    class(emulator_networks), intent(in) :: self
    integer, intent(in) :: m
    character(len=:), allocatable :: path
    path = self%members%member_path(m)
  end function networks_member_path

  function networks_member_outputs(self, m, ncol) result(y)
    !! Member m's outputs of the last predict's ncol columns, in 64 bits.
    class(emulator_networks), intent(in) :: self
    integer, intent(in) :: m, ncol
    real(real64), allocatable :: y(:, :)
    y = self%outputs(:, 1:ncol, m)
  end function networks_member_outputs

end module gcm_emulator_networks
