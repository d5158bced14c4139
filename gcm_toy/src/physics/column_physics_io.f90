module column_physics_io
  !! The emulated physics' inputs and outputs for a batch of columns, as the
  !! two derived types every implementation of the hook
  !! (`emulated_physics_scheme%compute`) and every caller share, so the
  !! argument list is written once, here (SP-CAM layout, Rasp et al. 2018):
  !!
  !!   column_inputs   T(lev), q(lev), ps, solin, shflx, lhflx, plus the sigma
  !!                   geometry, the time step and the (step, column id, seed)
  !!                   key of the reference physics' random numbers
  !!   column_outputs  dT/dt(lev), dq/dt(lev), FSNT, FSNS, FLNT, FLNS, precip
  !!
  !! Arrays are column-major batches: (nlev, ncol) and (ncol). A scheme sizes
  !! its outputs itself (`reserve_column_outputs`); storage is reused while
  !! the batch keeps its shape.
  use iso_fortran_env, only: real64, int64
  implicit none
  private
  public :: column_inputs, column_outputs, set_column_inputs, select_columns, reserve_column_outputs, &
            copy_columns, reserve

  interface reserve
    !! Allocate a work array to the shape asked for, keeping it when it has
    !! that shape already (values then undefined): reserve(a, n) for a(:),
    !! reserve(a, n1, n2) for a(:, :).
    module procedure reserve_vector, reserve_matrix
  end interface reserve

  type :: column_inputs
    integer :: ncol = 0
      !! columns in the batch
    integer :: nlev = 0
      !! levels, k = 1 at the top
    real(real64), allocatable :: t(:, :)
      !! temperature (nlev, ncol) [K]
    real(real64), allocatable :: q(:, :)
      !! specific humidity (nlev, ncol) [kg kg-1], >= 0
    real(real64), allocatable :: ps(:)
      !! surface pressure (ncol) [Pa]
    real(real64), allocatable :: solin(:)
      !! TOA insolation (ncol) [W m-2]
    real(real64), allocatable :: shflx(:)
      !! surface sensible heat flux, upward (ncol) [W m-2]
    real(real64), allocatable :: lhflx(:)
      !! surface latent heat flux, upward (ncol) [W m-2]
    real(real64), allocatable :: sigma(:)
      !! full-level sigma (nlev)
    real(real64), allocatable :: sigma_half(:)
      !! half-level sigma (0:nlev)
    real(real64) :: dt = 0.0_real64
      !! time the tendencies act over [s] (2 dt for a leapfrog host)
    integer(int64) :: step = 0
      !! GCM step number (random-number key)
    integer, allocatable :: column_ids(:)
      !! global column ids (ncol) (random-number key)
    integer(int64) :: seed = 0
      !! run seed (random-number key)
  end type column_inputs

  type :: column_outputs
    real(real64), allocatable :: dtdt(:, :)
      !! temperature tendency (nlev, ncol) [K s-1]
    real(real64), allocatable :: dqdt(:, :)
      !! humidity tendency (nlev, ncol) [kg kg-1 s-1]
    real(real64), allocatable :: fsnt(:)
      !! net downward shortwave at the top (ncol) [W m-2]
    real(real64), allocatable :: fsns(:)
      !! net downward shortwave at the surface (ncol) [W m-2]
    real(real64), allocatable :: flnt(:)
      !! net upward longwave at the top, OLR (ncol) [W m-2]
    real(real64), allocatable :: flns(:)
      !! net upward longwave at the surface (ncol) [W m-2]
    real(real64), allocatable :: precip(:)
      !! surface precipitation (ncol) [kg m-2 s-1] (= mm s-1)
  end type column_outputs

contains

  subroutine set_column_inputs(inputs, t, q, ps, solin, shflx, lhflx, sigma, sigma_half, dt, step, column_ids, seed)
    !! Fill `inputs` with copies of a host's arrays (units and shapes as in
    !! `column_inputs`); ncol = size(ps), nlev = size(sigma). Storage is
    !! reused when the shapes are unchanged. Shapes are not checked here:
    !! the schemes check them and say what is wrong.
    type(column_inputs), intent(inout) :: inputs
    real(real64), intent(in) :: t(:, :), q(:, :), ps(:), solin(:), shflx(:), lhflx(:)
    real(real64), intent(in) :: sigma(:), sigma_half(0:)
    real(real64), intent(in) :: dt
    integer(int64), intent(in) :: step, seed
    integer, intent(in) :: column_ids(:)
    inputs%ncol = size(ps)
    inputs%nlev = size(sigma)
    inputs%t = t
    inputs%q = q
    inputs%ps = ps
    inputs%solin = solin
    inputs%shflx = shflx
    inputs%lhflx = lhflx
    inputs%sigma = sigma
    if (allocated(inputs%sigma_half)) then
      if (lbound(inputs%sigma_half, 1) /= 0 .or. ubound(inputs%sigma_half, 1) /= ubound(sigma_half, 1)) &
        deallocate (inputs%sigma_half)
    end if
    if (.not. allocated(inputs%sigma_half)) allocate (inputs%sigma_half(0:ubound(sigma_half, 1)))
    inputs%sigma_half(0:) = sigma_half
    inputs%dt = dt
    inputs%step = step
    inputs%column_ids = column_ids
    inputs%seed = seed
  end subroutine set_column_inputs

  subroutine select_columns(inputs, idx, subset)
    !! The columns idx(:) of `inputs` as a batch of their own (same geometry,
    !! time step and random-number key; each column keeps its id).
    type(column_inputs), intent(in) :: inputs
    integer, intent(in) :: idx(:)
    type(column_inputs), intent(inout) :: subset
    call set_column_inputs(subset, inputs%t(:, idx), inputs%q(:, idx), inputs%ps(idx), inputs%solin(idx), &
                           inputs%shflx(idx), inputs%lhflx(idx), inputs%sigma, inputs%sigma_half, inputs%dt, &
                           inputs%step, inputs%column_ids(idx), inputs%seed)
  end subroutine select_columns

  subroutine reserve_column_outputs(outputs, nlev, ncol)
    !! Size the outputs for ncol columns of nlev levels (kept while the
    !! shape stays; values undefined until a scheme sets them).
    type(column_outputs), intent(inout) :: outputs
    integer, intent(in) :: nlev, ncol
    call reserve(outputs%dtdt, nlev, ncol)
    call reserve(outputs%dqdt, nlev, ncol)
    call reserve(outputs%fsnt, ncol)
    call reserve(outputs%fsns, ncol)
    call reserve(outputs%flnt, ncol)
    call reserve(outputs%flns, ncol)
    call reserve(outputs%precip, ncol)
  end subroutine reserve_column_outputs

  subroutine reserve_vector(a, n)
    real(real64), allocatable, intent(inout) :: a(:)
    integer, intent(in) :: n
    if (allocated(a)) then
      if (size(a) /= n) deallocate (a)
    end if
    if (.not. allocated(a)) allocate (a(n))
  end subroutine reserve_vector

  subroutine reserve_matrix(a, n1, n2)
    real(real64), allocatable, intent(inout) :: a(:, :)
    integer, intent(in) :: n1, n2
    if (allocated(a)) then
      if (size(a, 1) /= n1 .or. size(a, 2) /= n2) deallocate (a)
    end if
    if (.not. allocated(a)) allocate (a(n1, n2))
  end subroutine reserve_matrix

  subroutine copy_columns(part, idx, outputs)
    !! Write the outputs of a batch of selected columns (`select_columns`)
    !! back to their places idx(:) in the whole batch's `outputs`.
    type(column_outputs), intent(in) :: part
    integer, intent(in) :: idx(:)
    type(column_outputs), intent(inout) :: outputs
    outputs%dtdt(:, idx) = part%dtdt
    outputs%dqdt(:, idx) = part%dqdt
    outputs%fsnt(idx) = part%fsnt
    outputs%fsns(idx) = part%fsns
    outputs%flnt(idx) = part%flnt
    outputs%flns(idx) = part%flns
    outputs%precip(idx) = part%precip
  end subroutine copy_columns

end module column_physics_io
