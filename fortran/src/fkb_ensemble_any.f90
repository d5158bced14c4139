module fkb_ensemble_any
  !! One ensemble handle for both real kinds. The members are loaded in the
  !! precision the caller chooses at run time (32 or 64 bits: `precision`
  !! of `load`), and `predict` takes real32 or real64 arrays either way,
  !! converting at the boundary in work arrays kept between calls (no
  !! allocation once they have the batch's size). A host written against
  !! it (the toy GCM's emulator, the Python bindings) holds one object and
  !! one code path whatever the precision of its networks; the kind-specific
  !! `ensemble` (32-bit) and `ensemble_r64` stay available for hosts that
  !! fix the kind at compile time.
  !!
  !!     type(ensemble_any) :: ens
  !!     call ens%load(paths, stat, msg, precision=64)
  !!     call ens%predict(x, mean, std, stat, msg)   ! x real32 or real64
  !!
  !! Results are those of the kind-specific ensemble of the chosen
  !! precision, on the inputs rounded to that precision and the outputs
  !! converted to the caller's kind. As there, `members` holds every
  !! member's outputs also when a member's were not finite (the failure's
  !! status), so that a host can find the element.
  use iso_fortran_env, only: real32, real64, int64
  use fkb_ensemble_r32, only: ensemble_r32 => ensemble
  use fkb_ensemble_r64, only: ensemble_r64 => ensemble
  use fkb_layers_r32, only: layer_registry_r32 => layer_registry
  use fkb_layers_r64, only: layer_registry_r64 => layer_registry
  use fkb_ensemble_work_r32, only: work_r32 => ensemble_work
  use fkb_ensemble_work_r64, only: work_r64 => ensemble_work
  use fkb_status, only: fkb_ok, fkb_err_argument, int_to_str
  implicit none
  private
  public :: ensemble_any

  type :: ensemble_any
    !! An ensemble in the precision chosen at load time.
    private
    integer :: bits = 0
      !! 32 or 64 once loaded
    type(ensemble_r32) :: r32
    type(ensemble_r64) :: r64
    type(work_r32) :: w32
    type(work_r64) :: w64
      !! the arguments converted to the members' kind
  contains
    procedure :: load => any_load
    procedure :: load_folder => any_load_folder
    procedure :: clear => any_clear
    procedure :: is_loaded => any_is_loaded
    procedure :: precision => any_precision
    procedure :: n_members => any_n_members
    procedure :: n_inputs => any_n_inputs
    procedure :: n_outputs => any_n_outputs
    procedure :: member_path => any_member_path
    procedure, private :: predict_real32, predict_real64
    generic :: predict => predict_real32, predict_real64
  end type ensemble_any

contains

  logical function chosen_precision(precision, bits, stat, msg)
    !! `bits`: `precision` if present (refused unless 32 or 64), else 32.
    integer, intent(in), optional :: precision
    integer, intent(out) :: bits
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    bits = 32
    if (present(precision)) bits = precision
    chosen_precision = bits == 32 .or. bits == 64
    stat = fkb_ok
    if (.not. chosen_precision) then
      stat = fkb_err_argument
      msg = 'load: precision must be 32 or 64, not ' // int_to_str(bits)
    end if
  end function chosen_precision

  subroutine any_load(self, paths, stat, msg, precision, registry, registry_r64)
    !! Load every model file of `paths` as one member (`ensemble%load`) in
    !! `precision` bits (default 32); `registry` and `registry_r64` hold the
    !! custom layer types of each kind.
    class(ensemble_any), intent(inout) :: self
    character(len=*), intent(in) :: paths(:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer, intent(in), optional :: precision
    type(layer_registry_r32), intent(in), optional :: registry
    type(layer_registry_r64), intent(in), optional :: registry_r64
    integer :: bits
    call self%clear()
    if (.not. chosen_precision(precision, bits, stat, msg)) return
    if (bits == 32) then
      call self%r32%load(paths, stat, msg, registry=registry)
    else
      call self%r64%load(paths, stat, msg, registry=registry_r64)
    end if
    if (stat == fkb_ok) self%bits = bits
  end subroutine any_load

  subroutine any_load_folder(self, dir, stat, msg, precision, registry, registry_r64)
    !! Load the model files of folder `dir` (`ensemble%load_folder`) in
    !! `precision` bits (default 32).
    class(ensemble_any), intent(inout) :: self
    character(len=*), intent(in) :: dir
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer, intent(in), optional :: precision
    type(layer_registry_r32), intent(in), optional :: registry
    type(layer_registry_r64), intent(in), optional :: registry_r64
    integer :: bits
    call self%clear()
    if (.not. chosen_precision(precision, bits, stat, msg)) return
    if (bits == 32) then
      call self%r32%load_folder(dir, stat, msg, registry=registry)
    else
      call self%r64%load_folder(dir, stat, msg, registry=registry_r64)
    end if
    if (stat == fkb_ok) self%bits = bits
  end subroutine any_load_folder

  subroutine any_clear(self)
    !! Free the members and the work arrays.
    class(ensemble_any), intent(inout) :: self
    call self%r32%clear()
    call self%r64%clear()
    self%bits = 0
    call self%w32%clear()
    call self%w64%clear()
  end subroutine any_clear

  pure logical function any_is_loaded(self)
    class(ensemble_any), intent(in) :: self
    any_is_loaded = self%bits /= 0
  end function any_is_loaded

  pure integer function any_precision(self)
    !! 32 or 64: the members' real kind in bits (0 before `load`).
    class(ensemble_any), intent(in) :: self
    any_precision = self%bits
  end function any_precision

  pure integer function any_n_members(self)
    class(ensemble_any), intent(in) :: self
    any_n_members = 0
    if (self%bits == 32) any_n_members = self%r32%n_members()
    if (self%bits == 64) any_n_members = self%r64%n_members()
  end function any_n_members

  pure integer function any_n_inputs(self)
    class(ensemble_any), intent(in) :: self
    any_n_inputs = 0
    if (self%bits == 32) any_n_inputs = self%r32%n_inputs()
    if (self%bits == 64) any_n_inputs = self%r64%n_inputs()
  end function any_n_inputs

  pure integer function any_n_outputs(self)
    class(ensemble_any), intent(in) :: self
    any_n_outputs = 0
    if (self%bits == 32) any_n_outputs = self%r32%n_outputs()
    if (self%bits == 64) any_n_outputs = self%r64%n_outputs()
  end function any_n_outputs

  pure function any_member_path(self, k) result(path)
    !! The model file of member `k`, as given to `load` ('' if none).
    class(ensemble_any), intent(in) :: self
    integer, intent(in) :: k
    character(len=:), allocatable :: path
    path = ''
    if (self%bits == 32) path = self%r32%member_path(k)
    if (self%bits == 64) path = self%r64%member_path(k)
  end function any_member_path

  subroutine predict_real32(self, x, mean, std, stat, msg, members, noise_std, seed)
    !! `ensemble%predict` on real32 arrays, in the members' precision.
    class(ensemble_any), intent(inout) :: self
    real(real32), intent(in) :: x(:, :)
    real(real32), intent(inout) :: mean(:, :), std(:, :)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    real(real32), intent(inout), optional :: members(:, :, :)
    real(real32), intent(in), optional :: noise_std
    integer(int64), intent(in), optional :: seed
    if (.not. loaded(self, stat, msg)) return
    if (self%bits == 32) then
      call self%r32%predict(x, mean, std, stat, msg, members=members, noise_std=noise_std, seed=seed)
    else
      call self%w64%predict(self%r64, x, mean, std, stat, msg, members, noise_std, seed)
    end if
  end subroutine predict_real32

  subroutine predict_real64(self, x, mean, std, stat, msg, members, noise_std, seed)
    !! `ensemble%predict` on real64 arrays, in the members' precision.
    class(ensemble_any), intent(inout) :: self
    real(real64), intent(in) :: x(:, :)
    real(real64), intent(inout) :: mean(:, :), std(:, :)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    real(real64), intent(inout), optional :: members(:, :, :)
    real(real64), intent(in), optional :: noise_std
    integer(int64), intent(in), optional :: seed
    if (.not. loaded(self, stat, msg)) return
    if (self%bits == 64) then
      call self%r64%predict(x, mean, std, stat, msg, members=members, noise_std=noise_std, seed=seed)
    else
      call self%w32%predict(self%r32, x, mean, std, stat, msg, members, noise_std, seed)
    end if
  end subroutine predict_real64

  logical function loaded(self, stat, msg)
    class(ensemble_any), intent(in) :: self
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    loaded = self%bits /= 0
    stat = fkb_ok
    if (.not. loaded) then
      stat = fkb_err_argument
      msg = 'predict: the ensemble is not loaded'
    end if
  end function loaded

end module fkb_ensemble_any
