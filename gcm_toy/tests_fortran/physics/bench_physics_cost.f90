program bench_physics_cost
  !! Cost of the reference emulated physics against a 5x128 MLP on the same
  !! columns (T21: 2048 columns), single thread. The MLP is a stand-in with
  !! random weights: dense layers through OpenBLAS gemm with leaky ReLU, the
  !! SP-CAM layout (2 nlev + 4 inputs, 2 nlev + 5 outputs), in float64 and
  !! float32. Not a test: it prints a table. Times are process CPU time
  !! (cpu_time), the best of several repetitions, so that other processes on
  !! the machine do not inflate them.
  use iso_fortran_env, only: real32, real64, int64, output_unit
  use gcm_status, only: gcm_ok
  use physics_configuration, only: physics_config
  use emulated_physics, only: emulated_physics_reference, reference_emulated_physics
  use column_physics_io, only: column_inputs, column_outputs, set_column_inputs
  use physics_driver, only: physics_diagnostics, physics_driver_step
  use physics_random, only: random_uniform4
  use gcm_constants, only: pi
  use physics_test_support, only: uniform_sigma, random_columns
  implicit none

  integer, parameter :: ncol = 2048, width = 128, depth = 5
  integer :: levels(2) = [10, 20], il

  write(output_unit, '(a)') 'CPU time per call for 2048 columns (T21), one thread, best of several [ms]'
  write(output_unit, '(a)') ' nlev  sub x steps  reference  full-driver  mlp-f64  mlp-f32  ref/mlp64  ref/mlp32'
  do il = 1, 2
    call bench(levels(il), 12, 4)     ! the defaults
  end do
  call bench(10, 8, 4)
  call bench(20, 8, 2)
  call bench(20, 24, 4)

contains

  subroutine bench(nlev, nsub, nsubsteps)
    integer, intent(in) :: nlev, nsub, nsubsteps
    real(real64) :: sigma(nlev), sigma_half(0:nlev)
    real(real64), allocatable :: t(:, :), q(:, :), u(:, :), v(:, :), ps(:), solin(:), sh(:), lh(:), lat(:), lon(:)
    real(real64), allocatable :: dtdt(:, :), dqdt(:, :), dudt(:, :), dvdt(:, :)
    integer, allocatable :: ids(:)
    integer :: stat, rep, i, nrep
    character(len=:), allocatable :: msg
    type(physics_config) :: config
    type(reference_emulated_physics) :: reference
    type(physics_diagnostics) :: diag
    type(column_inputs) :: inputs
    type(column_outputs) :: outputs
    real(real64) :: t_ref, t_drv, t_mlp64, t_mlp32, r(4), c0, c1

    allocate(t(nlev, ncol), q(nlev, ncol), u(nlev, ncol), v(nlev, ncol), ps(ncol), solin(ncol), sh(ncol), lh(ncol))
    allocate(lat(ncol), lon(ncol), dtdt(nlev, ncol), dqdt(nlev, ncol), dudt(nlev, ncol), dvdt(nlev, ncol))
    allocate(ids(ncol))
    call uniform_sigma(nlev, sigma, sigma_half)
    call random_columns(ncol, nlev, sigma, 1_int64, t, q, ps, solin, sh, lh, 0.5_real64)
    do i = 1, ncol
      ids(i) = i
      r = random_uniform4(9_int64, 0_int64, i, 0)
      lat(i) = (r(1) - 0.5_real64) * pi
      lon(i) = 2 * pi * r(2)
    end do
    u = 5
    v = 0
    config = physics_config()
    config%n_subcolumns = nsub
    config%n_substeps = nsubsteps
    nrep = 3

    call set_column_inputs(inputs, t, q, ps, solin, sh, lh, sigma, sigma_half, 1200.0_real64, 1_int64, ids, 7_int64)
    call emulated_physics_reference(config, inputs, outputs, stat, msg)
    if (stat /= gcm_ok) error stop msg
    t_ref = huge(1.0_real64)
    do rep = 1, nrep
      call cpu_time(c0)
      inputs%step = int(rep, int64)
      call emulated_physics_reference(config, inputs, outputs, stat, msg)
      call cpu_time(c1)
      t_ref = min(t_ref, 1e3_real64 * (c1 - c0))
    end do

    t_drv = huge(1.0_real64)
    do rep = 1, nrep
      call cpu_time(c0)
      call physics_driver_step(config, reference, ncol, nlev, 1200.0_real64, 3600.0_real64 * rep, int(rep, int64), &
                              7_int64, ids, lat, lon, sigma, sigma_half, t, q, u, v, ps, dtdt, dqdt, dudt, dvdt, &
                              diag, stat, msg)
      call cpu_time(c1)
      t_drv = min(t_drv, 1e3_real64 * (c1 - c0))
    end do

    t_mlp64 = mlp_time_f64(2 * nlev + 4, 2 * nlev + 5)
    t_mlp32 = mlp_time_f32(2 * nlev + 4, 2 * nlev + 5)
    write(output_unit, '(i5,i6,a,i2,f11.1,f13.1,f9.2,f9.2,f11.1,f11.1)') nlev, nsub, ' x', nsubsteps, t_ref, t_drv, &
      t_mlp64, t_mlp32, t_ref / t_mlp64, t_ref / t_mlp32
  end subroutine bench

  function mlp_time_f64(n_in, n_out) result(ms)
    integer, intent(in) :: n_in, n_out
    real(real64) :: ms
    real(real64), allocatable :: w(:, :, :), b(:, :), x(:, :), h(:, :), g(:, :), w_in(:, :), w_out(:, :), y(:, :)
    real(real64) :: c0, c1
    integer :: rep, l
    external :: dgemm
    allocate(w_in(width, n_in), w(width, width, depth - 1), w_out(n_out, width), b(width, depth))
    allocate(x(n_in, ncol), h(width, ncol), g(width, ncol), y(n_out, ncol))
    call random_number(w_in); call random_number(w); call random_number(w_out); call random_number(b)
    call random_number(x)
    w_in = (w_in - 0.5_real64) * 0.1_real64; w = (w - 0.5_real64) * 0.1_real64; w_out = (w_out - 0.5_real64) * 0.1_real64
    ms = huge(1.0_real64)
    do rep = 1, 20
      call cpu_time(c0)
      call dgemm('N', 'N', width, ncol, n_in, 1.0_real64, w_in, width, x, n_in, 0.0_real64, h, width)
      h = h + spread(b(:, 1), 2, ncol)
      h = merge(h, 0.1_real64 * h, h > 0)
      do l = 1, depth - 1
        call dgemm('N', 'N', width, ncol, width, 1.0_real64, w(:, :, l), width, h, width, 0.0_real64, g, width)
        g = g + spread(b(:, l + 1), 2, ncol)
        h = merge(g, 0.1_real64 * g, g > 0)
      end do
      call dgemm('N', 'N', n_out, ncol, width, 1.0_real64, w_out, n_out, h, width, 0.0_real64, y, n_out)
      call cpu_time(c1)
      ms = min(ms, 1e3_real64 * (c1 - c0))
    end do
    if (.not. (abs(sum(y)) >= 0)) error stop 'mlp produced NaN'
  end function mlp_time_f64

  function mlp_time_f32(n_in, n_out) result(ms)
    integer, intent(in) :: n_in, n_out
    real(real64) :: ms
    real(real32), allocatable :: w(:, :, :), b(:, :), x(:, :), h(:, :), g(:, :), w_in(:, :), w_out(:, :), y(:, :)
    real(real64) :: c0, c1
    integer :: rep, l
    external :: sgemm
    allocate(w_in(width, n_in), w(width, width, depth - 1), w_out(n_out, width), b(width, depth))
    allocate(x(n_in, ncol), h(width, ncol), g(width, ncol), y(n_out, ncol))
    call random_number(w_in); call random_number(w); call random_number(w_out); call random_number(b)
    call random_number(x)
    w_in = (w_in - 0.5) * 0.1; w = (w - 0.5) * 0.1; w_out = (w_out - 0.5) * 0.1
    ms = huge(1.0_real64)
    do rep = 1, 20
      call cpu_time(c0)
      call sgemm('N', 'N', width, ncol, n_in, 1.0, w_in, width, x, n_in, 0.0, h, width)
      h = h + spread(b(:, 1), 2, ncol)
      h = merge(h, 0.1 * h, h > 0)
      do l = 1, depth - 1
        call sgemm('N', 'N', width, ncol, width, 1.0, w(:, :, l), width, h, width, 0.0, g, width)
        g = g + spread(b(:, l + 1), 2, ncol)
        h = merge(g, 0.1 * g, g > 0)
      end do
      call sgemm('N', 'N', n_out, ncol, width, 1.0, w_out, n_out, h, width, 0.0, y, n_out)
      call cpu_time(c1)
      ms = min(ms, 1e3_real64 * (c1 - c0))
    end do
    if (.not. (abs(sum(y)) >= 0)) error stop 'mlp produced NaN'
  end function mlp_time_f32

end program bench_physics_cost
