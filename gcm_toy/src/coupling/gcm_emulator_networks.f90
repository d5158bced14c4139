module gcm_emulator_networks
  !! The emulator's member networks behind one kind-agnostic handle, so that
  !! the emulator (`gcm_emulator`) is written once for both kinds.
  !!
  !! `emulator_networks` loads the members of an ensemble (a single network
  !! is an ensemble of one) from their model files and predicts in 64-bit
  !! arrays: x(n_in, ncol) -> the members' mean y(n_out, ncol), keeping each
  !! member's outputs for the failure report. `new_emulator_networks`
  !! chooses the kind:
  !!   networks_r32  the `fkb` library's 32-bit ensemble (the default); the
  !!                 inputs are rounded to 32 bits and the outputs widened
  !!                 back, and a member may hold the custom layers of the
  !!                 registry it is loaded with
  !!   networks_r64  its 64-bit ensemble (`ensemble_r64`), no custom layers
  !! Work arrays are kept between calls (no allocation once sized).
  use iso_fortran_env, only: real32, real64
  use fkb, only: network, ensemble, ensemble_r64, layer_registry, fkb_ok, fkb_err_argument
  implicit none
  private
  public :: emulator_networks, new_emulator_networks

  type, abstract :: emulator_networks
  contains
    procedure(networks_load), deferred :: load
    procedure(networks_predict), deferred :: predict
    procedure(networks_count), deferred :: n_members
    procedure(networks_path), deferred :: member_path
    procedure(networks_member_outputs), deferred :: member_outputs
  end type emulator_networks

  abstract interface
    subroutine networks_load(self, paths, registry, stat, msg)
      !! Load the members from `paths` (custom layers from `registry`
      !! where the kind has them); stat fkb_ok or the library's error.
      import :: emulator_networks, layer_registry
      class(emulator_networks), intent(inout) :: self
      character(len=*), intent(in) :: paths(:)
      type(layer_registry), intent(in) :: registry
      integer, intent(out) :: stat
      character(len=:), allocatable, intent(out) :: msg
    end subroutine networks_load

    subroutine networks_predict(self, x, y, stat, msg, tuned)
      !! The members' mean y of the inputs x; with `tuned` (32-bit only)
      !! that network's outputs instead (it stands in for the ensemble of
      !! one). stat fkb_ok or the library's error (a non-finite output:
      !! fkb_err_nonfinite, each member's outputs kept).
      import :: emulator_networks, network, real64
      class(emulator_networks), intent(inout) :: self
      real(real64), intent(in) :: x(:, :)
      real(real64), intent(out) :: y(:, :)
      integer, intent(out) :: stat
      character(len=:), allocatable, intent(out) :: msg
      type(network), intent(inout), optional :: tuned
    end subroutine networks_predict

    pure integer function networks_count(self)
      import :: emulator_networks
      class(emulator_networks), intent(in) :: self
    end function networks_count

    pure function networks_path(self, m) result(path)
      import :: emulator_networks
      class(emulator_networks), intent(in) :: self
      integer, intent(in) :: m
      character(len=:), allocatable :: path
    end function networks_path

    function networks_member_outputs(self, m, ncol) result(y)
      !! Member m's outputs of the last predict's ncol columns, in 64 bits.
      import :: emulator_networks, real64
      class(emulator_networks), intent(in) :: self
      integer, intent(in) :: m, ncol
      real(real64), allocatable :: y(:, :)
    end function networks_member_outputs
  end interface

  type, extends(emulator_networks) :: networks_r32
    type(ensemble) :: members
    real(real32), allocatable :: x(:, :), y(:, :), spread(:, :), outputs(:, :, :)
  contains
    procedure :: load => r32_load
    procedure :: predict => r32_predict
    procedure :: n_members => r32_n_members
    procedure :: member_path => r32_member_path
    procedure :: member_outputs => r32_member_outputs
  end type networks_r32

  type, extends(emulator_networks) :: networks_r64
    type(ensemble_r64) :: members
    real(real64), allocatable :: spread(:, :), outputs(:, :, :)
  contains
    procedure :: load => r64_load
    procedure :: predict => r64_predict
    procedure :: n_members => r64_n_members
    procedure :: member_path => r64_member_path
    procedure :: member_outputs => r64_member_outputs
  end type networks_r64

contains

  subroutine new_emulator_networks(use_real64, networks)
    !! Empty networks of the kind asked for (load them next).
    logical, intent(in) :: use_real64
    class(emulator_networks), allocatable, intent(out) :: networks
    if (use_real64) then
      allocate (networks_r64 :: networks)
    else
      allocate (networks_r32 :: networks)
    end if
  end subroutine new_emulator_networks

  subroutine r32_load(self, paths, registry, stat, msg)
    class(networks_r32), intent(inout) :: self
    character(len=*), intent(in) :: paths(:)
    type(layer_registry), intent(in) :: registry
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    call self%members%load(paths, stat, msg, registry=registry)
  end subroutine r32_load

  subroutine r32_predict(self, x, y, stat, msg, tuned)
    class(networks_r32), intent(inout) :: self
    real(real64), intent(in) :: x(:, :)
    real(real64), intent(out) :: y(:, :)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    type(network), intent(inout), optional :: tuned
    integer :: ncol
    ncol = size(x, 2)
    call reserve_outputs(size(x, 1), size(y, 1), ncol, self%members%n_members())
    self%x(:, 1:ncol) = real(x, real32)
    if (present(tuned)) then
      call tuned%predict(self%x(:, 1:ncol), self%outputs(:, 1:ncol, 1), stat, msg)
      if (stat == fkb_ok) y = real(self%outputs(:, 1:ncol, 1), real64)
    else
      call self%members%predict(self%x(:, 1:ncol), self%y(:, 1:ncol), self%spread(:, 1:ncol), stat, msg, &
                                members=self%outputs(:, 1:ncol, :))
      if (stat == fkb_ok) y = real(self%y(:, 1:ncol), real64)
    end if
  contains
    subroutine reserve_outputs(n_in, n_out, ncol, n_members)
      integer, intent(in) :: n_in, n_out, ncol, n_members
      if (allocated(self%x)) then
        if (size(self%x, 1) == n_in .and. size(self%y, 1) == n_out .and. size(self%x, 2) >= ncol) return
        deallocate (self%x, self%y, self%spread, self%outputs)
      end if
      allocate (self%x(n_in, ncol), self%y(n_out, ncol), self%spread(n_out, ncol), &
                self%outputs(n_out, ncol, n_members))
      self%outputs = 0.0_real32
    end subroutine reserve_outputs
  end subroutine r32_predict

  pure integer function r32_n_members(self)
    class(networks_r32), intent(in) :: self
    r32_n_members = self%members%n_members()
  end function r32_n_members

  pure function r32_member_path(self, m) result(path)
    class(networks_r32), intent(in) :: self
    integer, intent(in) :: m
    character(len=:), allocatable :: path
    path = self%members%member_path(m)
  end function r32_member_path

  function r32_member_outputs(self, m, ncol) result(y)
    class(networks_r32), intent(in) :: self
    integer, intent(in) :: m, ncol
    real(real64), allocatable :: y(:, :)
    y = real(self%outputs(:, 1:ncol, m), real64)
  end function r32_member_outputs

  subroutine r64_load(self, paths, registry, stat, msg)
    !! The 64-bit networks have no custom layers: `registry` is not used.
    class(networks_r64), intent(inout) :: self
    character(len=*), intent(in) :: paths(:)
    type(layer_registry), intent(in) :: registry
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    call self%members%load(paths, stat, msg)
  end subroutine r64_load

  subroutine r64_predict(self, x, y, stat, msg, tuned)
    class(networks_r64), intent(inout) :: self
    real(real64), intent(in) :: x(:, :)
    real(real64), intent(out) :: y(:, :)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    type(network), intent(inout), optional :: tuned
    integer :: ncol, n_out
    ncol = size(x, 2)
    n_out = size(y, 1)
    if (present(tuned)) then
      stat = fkb_err_argument
      msg = 'emulator: a fine-tuned network computes in 32 bits, not in 64'
      return
    end if
    if (allocated(self%outputs)) then
      if (size(self%outputs, 1) /= n_out .or. size(self%outputs, 2) < ncol) deallocate (self%spread, self%outputs)
    end if
    if (.not. allocated(self%outputs)) then
      allocate (self%spread(n_out, ncol), self%outputs(n_out, ncol, self%members%n_members()))
      self%outputs = 0.0_real64
    end if
    call self%members%predict(x, y, self%spread(:, 1:ncol), stat, msg, members=self%outputs(:, 1:ncol, :))
  end subroutine r64_predict

  pure integer function r64_n_members(self)
    class(networks_r64), intent(in) :: self
    r64_n_members = self%members%n_members()
  end function r64_n_members

  pure function r64_member_path(self, m) result(path)
    class(networks_r64), intent(in) :: self
    integer, intent(in) :: m
    character(len=:), allocatable :: path
    path = self%members%member_path(m)
  end function r64_member_path

  function r64_member_outputs(self, m, ncol) result(y)
    class(networks_r64), intent(in) :: self
    integer, intent(in) :: m, ncol
    real(real64), allocatable :: y(:, :)
    y = self%outputs(:, 1:ncol, m)
  end function r64_member_outputs

end module gcm_emulator_networks
