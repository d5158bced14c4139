module column_water_conservation
  !! An example of a custom layer (docs/custom-layers.md): column water
  !! conservation for an emulator of the toy GCM's cloud and radiation
  !! physics, whose outputs must satisfy, column by column,
  !!
  !!     -sum_k PHQ_k ps dsigma_k / g = PRECT
  !!
  !! (the water budget of the reference physics: what the moisture
  !! tendencies take out of the column falls as precipitation).
  !!
  !! The layer sits at the end of the network, in normalized units, and
  !! takes two inputs: the network's prediction (normalized outputs) and the
  !! model input (normalized; for the surface pressure). With the physical
  !! values `q_k = qn_k q_scale_k + q_offset_k`,
  !! `P = Pn precip_scale + precip_offset`, `ps = psn ps_scale + ps_offset`
  !! it moves the moisture tendencies by a profile `w_k = exp(log_weights_k)`
  !! so that the budget closes exactly, and keeps every other output:
  !!
  !!     A    = g P / ps + sum_k dsigma_k q_k      (the budget residual / (ps/g))
  !!     q_k' = q_k - w_k A / D,  D = sum_k dsigma_k w_k
  !!
  !! `log_weights` is trainable (the network learns where in the column the
  !! correction goes); `dsigma` and the normalization are fixed.
  !!
  !! Model-file entry (one line, then its params):
  !!
  !!     layer <id> emulators.column_water <n> inputs=<prediction>,<input> q_first=<i>
  !!       n_levels=<nlev> precip=<i> ps=<i> gravity=<g> precip_offset=<x>
  !!       precip_scale=<x> ps_offset=<x> ps_scale=<x>
  !!     param dsigma <nlev>
  !!     param q_offset <nlev>
  !!     param q_scale <nlev>
  !!     param log_weights <nlev>
  !!
  !! `q_first`, `precip` (positions in the prediction) and `ps` (position in
  !! the input) count from 1. The layer is written for the 32-bit `network`.
  use iso_fortran_env, only: real32, real64
  use fkb, only: layer, layer_spec, fkb_ok, fkb_err_format, fkb_err_shape, has_attribute, &
                 get_int_attribute, get_real_attribute, check_attribute_keys, check_param_names, &
                 get_vector_param
  implicit none
  private
  public :: column_water_layer, make_column_water_layer, column_water_kind

  integer, parameter :: wp = real32
    !! the kind of `network` (a `network_r64` layer would extend `layer_r64`)
  character(len=*), parameter :: column_water_kind = 'emulators.column_water'
    !! the layer type in the model file

  type, extends(layer) :: column_water_layer
    !! Closes the column water budget of the prediction.
    integer :: q_first = 0, n_levels = 0, precip = 0, ps = 0
    real(wp) :: gravity = 0.0_wp
      !! m s-2
    real(wp) :: precip_offset = 0.0_wp, precip_scale = 1.0_wp
    real(wp) :: ps_offset = 0.0_wp, ps_scale = 1.0_wp
    real(wp), allocatable :: dsigma(:)
      !! layer thickness in sigma, top to surface
    real(wp), allocatable :: q_offset(:), q_scale(:)
      !! normalization of the moisture tendencies
    real(wp), allocatable :: log_weights(:)
      !! trainable profile of the correction
    real(wp), allocatable :: c(:)
      !! `w_k / (D q_scale_k)`, kept in step with `log_weights`
  contains
    procedure :: setup => column_water_setup
    procedure :: forward => column_water_forward
    procedure :: backward => column_water_backward
    procedure :: get_params => column_water_get_params
    procedure :: set_params => column_water_set_params
    procedure :: export_params => column_water_export_params
  end type column_water_layer

contains

  subroutine make_column_water_layer(lay)
    !! The constructor to register: `call reg%add(column_water_kind,
    !! make_column_water_layer, stat, msg)`.
    class(layer), allocatable, intent(out) :: lay
    allocate (column_water_layer :: lay)
  end subroutine make_column_water_layer

  subroutine column_water_setup(self, lspec, in_width, stat, msg)
    !! Check the model-file entry against the widths of the two inputs and
    !! take its attributes and weights; the message names the problem.
    class(column_water_layer), intent(inout) :: self
    type(layer_spec), intent(in) :: lspec
    integer, intent(in) :: in_width(:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    character(len=16), parameter :: keys(9) = [character(len=16) :: 'q_first', 'n_levels', &
      'precip', 'ps', 'gravity', 'precip_offset', 'precip_scale', 'ps_offset', 'ps_scale']
    real(real32), allocatable :: v(:)
    integer :: i, q_last

    call check_attribute_keys(lspec, keys, stat, msg)
    if (stat /= fkb_ok) return
    do i = 1, size(keys)
      if (.not. has_attribute(lspec, trim(keys(i)))) then
        call fail(fkb_err_format, 'missing attribute ' // trim(keys(i)))
        return
      end if
    end do
    if (size(in_width) /= 2) then
      call fail(fkb_err_format, 'takes 2 inputs (the prediction and the model input)')
      return
    end if
    self%n_in = in_width(1)
    self%n_out = in_width(1)
    call get_int_attribute(lspec, 'q_first', 0, self%q_first, stat, msg)
    if (stat == fkb_ok) call get_int_attribute(lspec, 'n_levels', 0, self%n_levels, stat, msg)
    if (stat == fkb_ok) call get_int_attribute(lspec, 'precip', 0, self%precip, stat, msg)
    if (stat == fkb_ok) call get_int_attribute(lspec, 'ps', 0, self%ps, stat, msg)
    if (stat /= fkb_ok) return
    q_last = self%q_first + self%n_levels - 1
    if (self%n_levels < 1 .or. self%q_first < 1 .or. q_last > in_width(1)) then
      call fail(fkb_err_shape, 'the moisture tendencies (q_first, n_levels) do not lie ' // &
                'within the prediction')
      return
    end if
    if (self%precip < 1 .or. self%precip > in_width(1) .or. &
        (self%precip >= self%q_first .and. self%precip <= q_last)) then
      call fail(fkb_err_shape, 'precip is not a position of the prediction outside the ' // &
                'moisture tendencies')
      return
    end if
    if (self%ps < 1 .or. self%ps > in_width(2)) then
      call fail(fkb_err_shape, 'ps is not a position of the second input')
      return
    end if
    call read_real('gravity', self%gravity)
    if (stat == fkb_ok) call read_real('precip_offset', self%precip_offset)
    if (stat == fkb_ok) call read_real('precip_scale', self%precip_scale)
    if (stat == fkb_ok) call read_real('ps_offset', self%ps_offset)
    if (stat == fkb_ok) call read_real('ps_scale', self%ps_scale)
    if (stat /= fkb_ok) return
    if (.not. (self%gravity > 0.0_wp) .or. self%precip_scale == 0.0_wp .or. &
        self%ps_scale == 0.0_wp) then
      call fail(fkb_err_format, 'gravity must be positive and the scales non-zero')
      return
    end if

    call check_param_names(lspec, [character(len=16) :: 'dsigma', 'q_offset', 'q_scale', &
                                   'log_weights'], stat, msg)
    if (stat /= fkb_ok) return
    call get_vector_param(lspec, 'dsigma', self%n_levels, v, stat, msg)
    if (stat /= fkb_ok) return
    self%dsigma = real(v, wp)
    call get_vector_param(lspec, 'q_offset', self%n_levels, v, stat, msg)
    if (stat /= fkb_ok) return
    self%q_offset = real(v, wp)
    call get_vector_param(lspec, 'q_scale', self%n_levels, v, stat, msg)
    if (stat /= fkb_ok) return
    self%q_scale = real(v, wp)
    call get_vector_param(lspec, 'log_weights', self%n_levels, v, stat, msg)
    if (stat /= fkb_ok) return
    self%log_weights = real(v, wp)
    if (any(self%dsigma <= 0.0_wp) .or. any(self%q_scale == 0.0_wp)) then
      call fail(fkb_err_format, 'dsigma must be positive and q_scale non-zero')
      return
    end if
    self%param_count = 4 * self%n_levels
    self%n_trainable = self%n_levels
    call refresh(self)

  contains

    subroutine fail(code, text)
      integer, intent(in) :: code
      character(len=*), intent(in) :: text
      stat = code
      msg = text
    end subroutine fail

    subroutine read_real(key, value)
      character(len=*), intent(in) :: key
      real(wp), intent(out) :: value
      real(real64) :: x
      call get_real_attribute(lspec, key, 0.0_real64, x, stat, msg)
      value = real(x, wp)
    end subroutine read_real

  end subroutine column_water_setup

  subroutine refresh(self)
    !! `c_k = w_k / (D q_scale_k)` from the current `log_weights`.
    type(column_water_layer), intent(inout) :: self
    real(wp) :: w(size(self%log_weights))
    w = exp(self%log_weights)
    self%c = w / (sum(self%dsigma * w) * self%q_scale)
  end subroutine refresh

  pure real(wp) function residual(self, ld, ws, j) result(a)
    !! `A = g P / ps + sum_k dsigma_k q_k` of workspace column `j`, in
    !! kg kg-1 s-1.
    type(column_water_layer), intent(in) :: self
    integer, intent(in) :: ld, j
    real(wp), intent(in) :: ws(ld, *)
    integer :: k, r
    real(wp) :: p, ps
    r = self%in_row(1)
    p = ws(r + self%precip, j) * self%precip_scale + self%precip_offset
    ps = ws(self%in_row(2) + self%ps, j) * self%ps_scale + self%ps_offset
    a = self%gravity * p / ps
    do k = 1, self%n_levels
      a = a + self%dsigma(k) * (ws(r + self%q_first - 1 + k, j) * self%q_scale(k) + &
                                self%q_offset(k))
    end do
  end function residual

  subroutine column_water_forward(self, ld, n, ws)
    !! The prediction with its moisture tendencies moved by `-c_k A`.
    class(column_water_layer), intent(in) :: self
    integer, intent(in) :: ld, n
    real(wp), intent(inout) :: ws(ld, n)
    integer :: i, j, k, r, o
    real(wp) :: a
    r = self%in_row(1)
    o = self%out_row
    do j = 1, n
      a = residual(self, ld, ws, j)
      do i = 1, self%n_out
        ws(o + i, j) = ws(r + i, j)
      end do
      do k = 1, self%n_levels
        i = self%q_first - 1 + k
        ws(o + i, j) = ws(r + i, j) - self%c(k) * a
      end do
    end do
  end subroutine column_water_forward

  subroutine column_water_backward(self, ld, n, ws, dws, grad)
    !! With `G` the gradient of the loss at the output and
    !! `H = sum_k G_k c_k`: every input row gets `G` (the identity part),
    !! then `dA = -H` reaches the moisture tendencies (`dsigma_k q_scale_k`),
    !! the precipitation (`g precip_scale / ps`) and the surface pressure
    !! (`-g P ps_scale / ps^2`) through `A`; the weights get
    !! `w_k (-G_k A / (D q_scale_k) + dsigma_k A H / D)`.
    class(column_water_layer), intent(inout) :: self
    integer, intent(in) :: ld, n
    real(wp), intent(in) :: ws(ld, n)
    real(wp), intent(inout) :: dws(ld, n)
    real(wp), intent(inout), contiguous :: grad(:)
    integer :: i, j, k, r, o
    real(wp) :: a, h, p, ps, w, d_total
    r = self%in_row(1)
    o = self%out_row
    d_total = sum(self%dsigma * exp(self%log_weights))
    grad(1:self%n_levels) = 0.0_wp
    do j = 1, n
      a = residual(self, ld, ws, j)
      h = 0.0_wp
      do k = 1, self%n_levels
        h = h + dws(o + self%q_first - 1 + k, j) * self%c(k)
      end do
      do i = 1, self%n_out
        dws(r + i, j) = dws(r + i, j) + dws(o + i, j)
      end do
      do k = 1, self%n_levels
        i = self%q_first - 1 + k
        dws(r + i, j) = dws(r + i, j) - h * self%dsigma(k) * self%q_scale(k)
        w = exp(self%log_weights(k))
        grad(k) = grad(k) + w * (-dws(o + i, j) * a / (d_total * self%q_scale(k)) + &
                                 self%dsigma(k) * a * h / d_total)
      end do
      p = ws(r + self%precip, j) * self%precip_scale + self%precip_offset
      ps = ws(self%in_row(2) + self%ps, j) * self%ps_scale + self%ps_offset
      dws(r + self%precip, j) = dws(r + self%precip, j) - h * self%gravity * self%precip_scale / ps
      dws(self%in_row(2) + self%ps, j) = dws(self%in_row(2) + self%ps, j) + &
                                         h * self%gravity * p * self%ps_scale / (ps * ps)
    end do
  end subroutine column_water_backward

  subroutine column_water_get_params(self, v)
    !! The trainable weights: `log_weights`.
    class(column_water_layer), intent(in) :: self
    real(wp), intent(inout), contiguous :: v(:)
    v(1:self%n_levels) = self%log_weights
  end subroutine column_water_get_params

  subroutine column_water_set_params(self, v)
    class(column_water_layer), intent(inout) :: self
    real(wp), intent(in), contiguous :: v(:)
    self%log_weights = v(1:self%n_levels)
    call refresh(self)
  end subroutine column_water_set_params

  subroutine column_water_export_params(self, lspec)
    !! Write the trained `log_weights` into the layer's model-file entry
    !! (`network%save`); the other params never change.
    class(column_water_layer), intent(in) :: self
    type(layer_spec), intent(inout) :: lspec
    integer :: k
    do k = 1, size(lspec%params)
      if (lspec%params(k)%name == 'log_weights') lspec%params(k)%values = real(self%log_weights, real32)
    end do
  end subroutine column_water_export_params

end module column_water_conservation
