module fkb_model_reader
  !! Reading a model file (docs/model-file.md), format versions 1 to 3,
  !! with nothing but the Fortran standard library; also the original FKB
  !! text format (through `fkb_legacy`), told apart by the first line. The
  !! header lines are parsed by `fkb_model_header`, the spec checked by
  !! `fkb_model_validation`; here the file is read whole, its hash checked,
  !! its header split into lines and its payload decoded.
  use iso_fortran_env, only: real32, real64, int8, int32, int64
  use fkb_spec, only: model_spec
  use fkb_status, only: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_version, fkb_err_hash, &
                        fkb_err_memory, allocation_failure
  use fkb_sha256, only: sha256_hex
  use fkb_spec_build, only: open_model_file, int_to_str
  use fkb_legacy, only: read_legacy_file
  use fkb_files, only: max_model_file_bytes, width_problem
  use fkb_model_tokens, only: fkb_format_version, newline, little_endian, byte_swapped, keyword, next_token, &
                              check_fixed_line, is_sha256_line, is_integer_line
  use fkb_model_header, only: payload_entry, parse_line, section_none, section_input_norm, &
                              section_output_norm, section_layer, section_training, section_statistics
  use fkb_model_validation, only: check_spec, check_header_complete
  implicit none
  private
  public :: read_model_file

contains

  subroutine read_model_file(path, spec, stat, msg)
    !! Reads a model file (format versions 1 to 3, or an original FKB text file)
    !! into a model spec.
    character(len=*), intent(in) :: path
      !! file to read
    type(model_spec), intent(out) :: spec
      !! the model, valid when `stat == fkb_ok`
    integer, intent(out) :: stat
      !! `fkb_ok` or an error code from `fkb_status`
    character(len=:), allocatable, intent(out) :: msg
      !! empty on success, else one line starting with `path`

    character(len=:), allocatable :: buffer
    integer(int64) :: eol
    integer :: first, last
    logical :: is_v1, is_legacy

    msg = ''
    call read_whole_file(path, buffer, stat, msg)
    if (stat /= fkb_ok) return
    if (len(buffer) == 0) then
      stat = fkb_err_format
      msg = path // ': empty file'
      return
    end if

    eol = index(buffer, newline, kind=int64)
    if (eol == 0) eol = len(buffer, kind=int64) + 1
    ! the first line decides; one longer than this is neither format
    associate (line => buffer(1:min(eol - 1, 200_int64)))
      call next_token(line, 1, first, last)
      is_v1 = .false.
      if (first > 0) is_v1 = line(first:last) == 'FKB'
      is_legacy = is_integer_line(line)
    end associate
    if (is_v1) then
      call parse_v1(path, buffer, eol, spec, stat, msg)
      return
    end if
    if (is_legacy) then
      deallocate(buffer)
      call read_legacy_file(path, spec, stat, msg)
      return
    end if
    stat = fkb_err_format
    msg = path // ': not a model file (the first line is neither ''FKB <version>'' ' // &
          'nor the layer count of an original FKB file)'
  end subroutine read_model_file

  subroutine read_whole_file(path, buffer, stat, msg)
    !! The bytes of a file, read in one go.
    character(len=*), intent(in) :: path
    character(len=:), allocatable, intent(out) :: buffer
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg
    integer :: unit, ios
    integer(int64) :: file_size
    character(len=512) :: iomsg

    call open_model_file(path, 'stream', 'unformatted', unit, stat, msg)
    if (stat /= fkb_ok) return
    inquire(unit=unit, size=file_size)
    if (file_size < 0) then
      stat = fkb_err_io
      msg = path // ': cannot determine the file size'
      close(unit)
      return
    end if
    if (file_size > max_model_file_bytes) then
      stat = fkb_err_format
      msg = path // ': ' // int_to_str(int(file_size / 2_int64**20)) // ' MiB, more than the ' // &
            int_to_str(int(max_model_file_bytes / 2_int64**20)) // ' MiB a model file may have'
      close(unit)
      return
    end if
    allocate(character(len=file_size) :: buffer, stat=ios)
    if (ios /= 0) then
      stat = fkb_err_memory
      msg = path // ': ' // allocation_failure('its contents', file_size, 1)
      close(unit)
      return
    end if
    if (file_size > 0) then
      read(unit, iostat=ios, iomsg=iomsg) buffer
      if (ios /= 0) then
        stat = fkb_err_io
        msg = path // ': cannot read: ' // trim(iomsg)
      end if
    end if
    close(unit)
  end subroutine read_whole_file

  subroutine parse_v1(path, buffer, eol1, spec, stat, msg)
    !! Parses a whole file of format version 1 whose first line ends at `eol1`.
    character(len=*), intent(in) :: path
    character(len=*), intent(in) :: buffer
    integer(int64), intent(in) :: eol1
    type(model_spec), intent(inout) :: spec
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: msg

    integer(int64), allocatable :: line_first(:), line_last(:)
    integer(int64) :: eol2, pos, eol, header_end, payload_bytes, declared_bytes
    integer :: n_lines, i, version, n_layers, n_param_lines, layer, section, l, io_lines(2), alloc_stat
    integer, allocatable :: param_count(:)
    type(payload_entry), allocatable :: entries(:)
    integer :: n_entries
    logical :: ok, in_layer
    character(len=64) :: digest
    character(len=:), allocatable :: problem

    stat = fkb_ok

    ! line 1: FKB <version>
    call check_fixed_line(buffer(1:eol1 - 1), 'FKB', version, ok)
    if (.not. ok) then
      call fail(fkb_err_format, 'line 1: expected ''FKB <version>''')
      return
    end if
    if (version < 1 .or. version > fkb_format_version) then
      call fail(fkb_err_version, 'format version ' // int_to_str(version) // &
                ' is not supported (this reader knows versions 1 to ' // &
                int_to_str(fkb_format_version) // ')')
      return
    end if
    if (eol1 >= len(buffer, kind=int64)) then
      call fail(fkb_err_format, 'truncated: the file ends after line 1')
      return
    end if

    ! line 2: sha256 <hex>, then the hash of everything after it
    eol2 = index(buffer(eol1 + 1:), newline, kind=int64)
    if (eol2 == 0) then
      call fail(fkb_err_format, 'truncated: the file ends in line 2')
      return
    end if
    eol2 = eol2 + eol1
    if (.not. is_sha256_line(buffer(eol1 + 1:eol2 - 1))) then
      call fail(fkb_err_format, 'line 2: expected ''sha256 <64 lowercase hex digits>''')
      return
    end if
    digest = sha256_hex(buffer(eol2 + 1:))
    if (digest /= buffer(eol2 - 64:eol2 - 1)) then
      call fail(fkb_err_hash, 'content hash mismatch (corrupt or truncated)')
      return
    end if
    spec%version = version
    spec%sha256 = digest

    ! the header lines up to end_header
    allocate(line_first(64), line_last(64), stat=stat)
    if (stat /= 0) then
      call fail(fkb_err_memory, allocation_failure('the header''s line index', 128_int64, 8))
      return
    end if
    n_lines = 0
    pos = eol2 + 1
    header_end = 0
    do while (pos <= len(buffer, kind=int64))
      eol = index(buffer(pos:), newline, kind=int64)
      if (eol == 0) exit
      eol = eol + pos - 1
      if (eol - pos == 10) then
        if (buffer(pos:eol - 1) == 'end_header') header_end = eol
      end if
      if (header_end > 0) exit
      if (n_lines == size(line_first)) then
        call grow(line_first, line_last, stat)
        if (stat /= 0) then
          call fail(fkb_err_memory, allocation_failure('the header''s line index', &
                                                       4_int64 * n_lines, 8))
          return
        end if
      end if
      n_lines = n_lines + 1
      line_first(n_lines) = pos
      line_last(n_lines) = eol - 1
      pos = eol + 1
    end do
    if (header_end == 0) then
      call fail(fkb_err_format, 'no end_header line')
      return
    end if
    ! the header is ASCII (docs/model-file.md), as the Python reader requires
    do i = 1, n_lines
      do pos = line_first(i), line_last(i)
        if (iachar(buffer(pos:pos)) > 127) then
          call fail(fkb_err_format, 'line ' // int_to_str(i + 2) // ': header line is not ASCII')
          return
        end if
      end do
    end do

    ! count layers, params and io lines, so that the spec is allocated once
    ! and no more than the header's lines (a file's io names are lines)
    n_layers = 0
    n_param_lines = 0
    io_lines = 0
    do i = 1, n_lines
      select case (keyword(buffer(line_first(i):line_last(i))))
      case ('layer'); n_layers = n_layers + 1
      case ('param'); n_param_lines = n_param_lines + 1
      case ('input'); io_lines(1) = io_lines(1) + 1
      case ('output'); io_lines(2) = io_lines(2) + 1
      end select
    end do
    allocate(param_count(n_layers), entries(n_param_lines), stat=stat)
    if (stat == 0) allocate(spec%layers(n_layers), stat=stat)
    if (stat /= 0) then
      call fail(fkb_err_memory, allocation_failure('the list of its ' // int_to_str(n_layers) // &
                                                   ' layers and ' // int_to_str(n_param_lines) // &
                                                   ' params', int(n_layers + n_param_lines, int64), &
                                                   storage_size(spec%layers) / 8))
      return
    end if
    param_count = 0
    layer = 0
    in_layer = .false.
    do i = 1, n_lines
      select case (keyword(buffer(line_first(i):line_last(i))))
      case ('layer')
        layer = layer + 1
        in_layer = .true.
      case ('param')
        if (in_layer) param_count(layer) = param_count(layer) + 1
      case default
        in_layer = .false.
      end select
    end do
    do l = 1, n_layers
      allocate(spec%layers(l)%params(param_count(l)), stat=stat)
      if (stat /= 0) then
        call fail(fkb_err_memory, allocation_failure('the list of the ' // int_to_str(param_count(l)) &
                                                     // ' params of layer ' // int_to_str(l), &
                                                     int(param_count(l), int64), 8))
        return
      end if
    end do

    ! parse every line
    layer = 0
    section = section_none
    n_entries = 0
    do i = 1, n_lines
      call parse_line(buffer(line_first(i):line_last(i)), spec, layer, section, &
                      entries, n_entries, param_count, io_lines, stat, problem)
      if (stat /= fkb_ok) then
        call fail(stat, 'line ' // int_to_str(i + 2) // ': ' // problem)
        return
      end if
    end do
    call check_header_complete(spec, n_layers, stat, problem)
    if (stat /= fkb_ok) then
      call fail(stat, problem)
      return
    end if
    block
      integer :: widths(n_layers)
      do l = 1, n_layers
        widths(l) = spec%layers(l)%n_out
      end do
      problem = width_problem(spec%n_inputs, widths)
    end block
    if (len(problem) > 0) then
      call fail(fkb_err_format, problem)
      return
    end if

    ! the payload: exactly the declared tensors, in order
    payload_bytes = len(buffer, kind=int64) - header_end
    declared_bytes = 0
    do i = 1, n_entries
      declared_bytes = declared_bytes + int(entries(i)%bytes, int64) * entries(i)%count
    end do
    if (payload_bytes /= declared_bytes) then
      call fail(fkb_err_format, 'the payload has ' // int_to_str(payload_bytes) // &
                ' bytes but the header declares ' // int_to_str(declared_bytes))
      return
    end if
    pos = header_end + 1
    alloc_stat = 0
    do i = 1, n_entries
      associate (e => entries(i), &
                 bytes => buffer(pos:pos + int(entries(i)%bytes, int64) * entries(i)%count - 1))
        select case (e%section)
        case (section_input_norm)
          if (e%param == 1) then
            call decode_float32(bytes, spec%input_offset, alloc_stat)
          else
            call decode_float32(bytes, spec%input_scale, alloc_stat)
          end if
        case (section_output_norm)
          if (e%param == 1) then
            call decode_float32(bytes, spec%output_offset, alloc_stat)
          else
            call decode_float32(bytes, spec%output_scale, alloc_stat)
          end if
        case (section_statistics)
          select case (e%param)
          case (1); call decode_float32(bytes, spec%statistics%minimum, alloc_stat)
          case (2); call decode_float32(bytes, spec%statistics%maximum, alloc_stat)
          case (3); call decode_float32(bytes, spec%statistics%mean, alloc_stat)
          case (4); call decode_float32(bytes, spec%statistics%std, alloc_stat)
          case (5); call decode_float32(bytes, spec%statistics%basis, alloc_stat)
          case (6); call decode_float32(bytes, spec%statistics%variance, alloc_stat)
          end select
        case (section_layer)
          call decode_float32(bytes, spec%layers(e%layer)%params(e%param)%values, alloc_stat)
        case (section_training)
          call decode_training(bytes, e%bytes, spec%training%tensors(e%param)%values, alloc_stat)
        end select
      end associate
      if (alloc_stat /= 0) then
        call fail(fkb_err_memory, allocation_failure('its weights (' // &
                                                     int_to_str(payload_bytes / 2_int64**20) // &
                                                     ' MiB in all)', int(entries(i)%count, int64), &
                                                     entries(i)%bytes))
        return
      end if
      pos = pos + int(entries(i)%bytes, int64) * entries(i)%count
    end do

    call check_spec(spec, .true., stat, problem)
    if (stat /= fkb_ok) call fail(stat, problem)

  contains

    subroutine fail(code, text)
      integer, intent(in) :: code
      character(len=*), intent(in) :: text
      stat = code
      msg = path // ': ' // text
    end subroutine fail

  end subroutine parse_v1

  subroutine decode_training(bytes, width, values, stat)
    !! Values of a training tensor: IEEE float32 (`width` 4) or float64
    !! (`width` 8), little-endian, into real64; `stat` /= 0 if they cannot
    !! be allocated.
    character(len=*), intent(in) :: bytes
    integer, intent(in) :: width
    real(real64), allocatable, intent(out) :: values(:)
    integer, intent(out) :: stat
    real(real32), allocatable :: single(:)
    integer(int32), allocatable :: halves(:)
    integer :: n, i
    n = len(bytes) / width
    allocate (values(n), stat=stat)
    if (stat /= 0 .or. n == 0) return
    if (width == 4) then
      call decode_float32(bytes, single, stat)
      if (stat == 0) values(:) = real(single, real64)
      return
    end if
    if (little_endian()) then
      values(:) = transfer(bytes, values, n)
    else
      allocate (halves(2 * n), stat=stat)
      if (stat /= 0) return
      halves(:) = byte_swapped(transfer(bytes, 0_int32, 2 * n))
      do i = 1, n  ! the two swapped halves of each value change places
        values(i) = transfer([halves(2 * i), halves(2 * i - 1)], 1.0_real64)
      end do
    end if
  end subroutine decode_training

  subroutine decode_float32(bytes, values, stat)
    !! IEEE float32 values from their little-endian bytes; `stat` /= 0 if
    !! they cannot be allocated.
    character(len=*), intent(in) :: bytes
    real(real32), allocatable, intent(out) :: values(:)
    integer, intent(out) :: stat
    integer :: n

    n = len(bytes) / 4
    allocate(values(n), stat=stat)
    if (stat /= 0 .or. n == 0) return
    if (little_endian()) then
      values(:) = transfer(bytes, values, n)
    else
      values(:) = transfer(byte_swapped(transfer(bytes, 0_int32, n)), values, n)
    end if
  end subroutine decode_float32

  subroutine grow(a, b, stat)
    !! Doubles two index arrays, keeping their contents; `stat` /= 0 (and
    !! both unchanged, or only `a` doubled) if one cannot be allocated.
    integer(int64), allocatable, intent(inout) :: a(:), b(:)
    integer, intent(out) :: stat
    integer(int64), allocatable :: t(:)
    allocate(t(2 * size(a)), stat=stat)
    if (stat /= 0) return
    t(1:size(a)) = a
    call move_alloc(t, a)
    allocate(t(2 * size(b)), stat=stat)
    if (stat /= 0) return
    t(1:size(b)) = b
    call move_alloc(t, b)
  end subroutine grow

end module fkb_model_reader
