program test_model_file
  !! `network%load`: a model written with `write_model_file` and loaded
  !! predicts exactly what the network built from the same spec predicts;
  !! a missing file is refused with its path; and, when `FKB_COMPAT_DIR`
  !! names the folder of the original FKB example model, loading that file
  !! reproduces the outputs the original library computed.
  use iso_fortran_env, only: real32, real64
  use fkb, only: network, network_r64, model_spec, fkb_ok, write_model_file
  use fkb_test_specs, only: layer, attr, param, no_attrs, no_params
  use fkb_testing, only: tester
  implicit none

  type(tester) :: t

  t%suite = 'model file'
  call test_round_trip(t)
  call test_missing_file(t)
  call test_original_fkb(t)
  call t%finish()

contains

  function graph_model() result(spec)
    !! 3 -> dense 5 gelu -> batch norm -> concatenate with the input -> dense 2
    type(model_spec) :: spec
    integer :: i
    spec%name = 'round_trip'
    spec%n_inputs = 3
    spec%n_outputs = 2
    spec%has_input_normalization = .true.
    allocate (spec%input_offset, source=[1.0, 2.0, 3.0])
    allocate (spec%input_scale, source=[2.0, 0.5, 4.0])
    spec%layers = [ &
      layer('dense', 5, [0], [attr('activation', 'gelu'), attr('use_bias', '1')], &
            [param('kernel', [5, 3], [(0.37d0 * sin(1.3d0 * i), i = 1, 15)]), &
             param('bias', [5, 1], [(0.1d0 * i, i = 1, 5)])]), &
      layer('batch_normalization', 5, [1], [attr('epsilon', '0.001'), attr('center', '1'), &
                                            attr('scale', '1')], &
            [param('gamma', [5, 1], [(1d0 + 0.1d0 * i, i = 1, 5)]), &
             param('beta', [5, 1], [(-0.05d0 * i, i = 1, 5)]), &
             param('moving_mean', [5, 1], [(0.02d0 * i, i = 1, 5)]), &
             param('moving_variance', [5, 1], [(0.5d0 + 0.2d0 * i, i = 1, 5)])]), &
      layer('concatenate', 8, [2, 0], no_attrs(), no_params()), &
      layer('dense', 2, [3], [attr('activation', 'linear'), attr('use_bias', '1')], &
            [param('kernel', [2, 8], [(0.21d0 * cos(0.7d0 * i), i = 1, 16)]), &
             param('bias', [2, 1], [0.5d0, -0.5d0])])]
  end function graph_model

  subroutine test_round_trip(t)
    type(tester), intent(inout) :: t
    character(len=*), parameter :: path = 'test_model_file_round_trip.fkb'
    type(network) :: built, loaded
    type(network_r64) :: loaded64
    real(real32) :: x(3, 4), y_built(2, 4), y_loaded(2, 4)
    real(real64) :: y64(2, 4)
    integer :: stat, j
    character(len=:), allocatable :: msg
    do j = 1, 4
      x(:, j) = [0.5 * j, -1.0 + j, 3.0 - 0.7 * j]
    end do
    call write_model_file(path, graph_model(), stat, msg)
    call t%status(stat, fkb_ok, msg, 'write_model_file')
    if (stat /= fkb_ok) return
    call built%from_spec(graph_model(), stat, msg)
    call t%status(stat, fkb_ok, msg, 'from_spec')
    call loaded%load(path, stat, msg)
    call t%status(stat, fkb_ok, msg, 'load')
    if (stat /= fkb_ok) return
    call t%check(loaded%model_name() == 'round_trip', 'the name survives the file')
    call t%check(len(loaded%model_sha256()) == 64, 'a loaded model has its sha256')
    call t%check(loaded%n_params() == built%n_params(), 'same parameter count')
    call built%predict(x, y_built, stat, msg)
    call loaded%predict(x, y_loaded, stat, msg)
    call t%status(stat, fkb_ok, msg, 'predict with the loaded network')
    call t%close(y_loaded, real(y_built, real64), 0d0, 0d0, 'loaded = built, bit for bit')
    call loaded64%load(path, stat, msg)
    call t%status(stat, fkb_ok, msg, 'load (r64)')
    call loaded64%predict(real(x, real64), y64, stat, msg)
    call t%close(y64, real(y_built, real64), 1d-5, 1d-6, 'r64 close to r32')
  end subroutine test_round_trip

  subroutine test_missing_file(t)
    type(tester), intent(inout) :: t
    type(network) :: net
    integer :: stat
    character(len=:), allocatable :: msg
    call net%load('no/such/model.fkb', stat, msg)
    call t%check(stat /= fkb_ok, 'a missing file is refused')
    if (allocated(msg)) then
      call t%check(index(msg, 'no/such/model.fkb') > 0, 'the message names the file')
    else
      call t%check(.false., 'a failed load sets a message')
    end if
    call t%check(.not. net%is_loaded(), 'a failed load leaves the network not loaded')
  end subroutine test_missing_file

  subroutine test_original_fkb(t)
    !! The original library's own outputs for its example model, to float32
    !! rounding (it summed in a different order).
    type(tester), intent(inout) :: t
    character(len=4096) :: dir
    integer :: length, stat, env_stat
    character(len=:), allocatable :: msg, base
    type(network) :: net
    real(real32), allocatable :: x(:, :), y_fkb(:, :), y(:, :)
    call get_environment_variable('FKB_COMPAT_DIR', dir, length, env_stat)
    if (env_stat /= 0 .or. length == 0) then
      write (*, '(a)') 'test_model_file: FKB_COMPAT_DIR not set, original FKB file skipped'
      return
    end if
    base = trim(dir) // '/simple_model_with_weights'
    call net%load(base // '.txt', stat, msg)
    call t%status(stat, fkb_ok, msg, 'load the original FKB example')
    if (stat /= fkb_ok) return
    call read_npy_f4(base // '.x.npy', x, stat, msg)
    call t%status(stat, fkb_ok, msg, 'read x.npy')
    call read_npy_f4(base // '.y_fkb.npy', y_fkb, stat, msg)
    call t%status(stat, fkb_ok, msg, 'read y_fkb.npy')
    if (.not. (allocated(x) .and. allocated(y_fkb))) return
    allocate (y(size(y_fkb, 1), size(y_fkb, 2)))
    call net%predict(x, y, stat, msg)
    call t%status(stat, fkb_ok, msg, 'predict the original FKB example')
    call t%close(y, real(y_fkb, real64), 1d-5, 1d-6, 'outputs of the original FKB')
  end subroutine test_original_fkb

  subroutine read_npy_f4(path, a, stat, msg)
    !! A 2-d little-endian float32 C-ordered .npy array (n, m), returned as
    !! the Fortran array a(m, n) (the same bytes).
    character(len=*), intent(in) :: path
    real(real32), allocatable, intent(out) :: a(:, :)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
    integer :: unit, header_len, i1, i2, n, m
    character(len=8) :: magic
    character(len=2) :: len_bytes
    character(len=:), allocatable :: header
    stat = 1
    open (newunit=unit, file=path, access='stream', form='unformatted', status='old', &
          action='read', iostat=stat)
    if (stat /= 0) then
      msg = path // ': cannot open'
      return
    end if
    read (unit) magic, len_bytes
    if (magic(2:6) /= 'NUMPY' .or. iachar(magic(7:7)) /= 1) then
      msg = path // ': not a version 1 .npy file'
      stat = 1
      close (unit)
      return
    end if
    header_len = iachar(len_bytes(1:1)) + 256 * iachar(len_bytes(2:2))
    allocate (character(len=header_len) :: header)
    read (unit) header
    if (index(header, "'<f4'") == 0 .or. index(header, "'fortran_order': False") == 0) then
      msg = path // ': not a C-ordered float32 array'
      stat = 1
      close (unit)
      return
    end if
    i1 = index(header, "'shape': (") + len("'shape': (")
    i2 = index(header(i1:), ')') + i1 - 2
    read (header(i1:i2), *) n, m
    allocate (a(m, n))
    read (unit, iostat=stat) a
    close (unit)
    if (stat /= 0) msg = path // ': truncated'
  end subroutine read_npy_f4

end program test_model_file
