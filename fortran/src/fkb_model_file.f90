module fkb_model_file
  !! Reading and writing FKB model files, format versions 1 and 2
  !! (docs/model-file.md), with nothing but the Fortran standard library.
  !! Version 2 is version 1 plus an optional training section (optimizer
  !! state); a spec without training state is written as version 1.
  !!
  !! `read_model_file` also reads the original FKB text format (through
  !! `fkb_legacy`), telling the two apart by the first line.
  !!
  !! The reader checks everything that needs no knowledge of the layer
  !! kinds: magic, version, content hash, header syntax, layer ids in order,
  !! inputs that refer to earlier layers, io names, normalization shapes,
  !! payload size and finite weights. Which params and attributes a layer
  !! kind needs is left to the network builders.
  use iso_fortran_env, only: real32, real64, int8, int32, int64
  use iso_c_binding, only: c_char, c_int, c_null_char
  use fkb_spec, only: model_spec, tensor_spec, io_spec, training_tensor, attribute_spec, statistics_spec
  use fkb_status, only: fkb_ok, fkb_err_io, fkb_err_format, fkb_err_version, fkb_err_hash, &
                        fkb_err_shape, fkb_err_nonfinite, fkb_err_argument, fkb_err_memory, &
                        allocation_failure
  use fkb_sha256, only: sha256_hex
  use fkb_spec_build, only: open_model_file, attribute, first_nonfinite, int_to_str, real64_repr
  use fkb_spec_query, only: parse_real
  use fkb_legacy, only: read_legacy_file
  use fkb_files, only: max_model_file_bytes, width_problem
  implicit none
  private
  public :: read_model_file, write_model_file, fkb_format_version

  integer, parameter :: fkb_format_version = 3
    !! the newest format version this module reads and writes (it reads
    !! and writes versions 1 and 2 too: files without input statistics,
    !! without a training section)

  character(len=1), parameter :: newline = achar(10)

  integer, parameter :: section_none = 0, section_input_norm = 1, section_output_norm = 2, &
                        section_layer = 3, section_training = 4, section_statistics = 5
  character(len=*), parameter :: statistics_params(6) = &
    [character(len=8) :: 'minimum', 'maximum', 'mean', 'std', 'basis', 'variance']
    !! the params of an input_statistics section, in the order written

  type :: payload_entry
    !! Where the next tensor of the payload goes.
    integer :: section = section_none
    integer :: layer = 0
    integer :: param = 0
      !! index in the layer's params (or the training tensors), or
      !! 1 = offset, 2 = scale, or the index in `statistics_params`
    integer :: count = 0
    integer :: bytes = 4
      !! bytes per value: 4, or 8 in a training section of precision 64
  end type payload_entry

  type :: text_builder
    !! A growing string, so that building a header is linear in its length.
    character(len=:), allocatable :: text
    integer :: length = 0
    logical :: failed = .false.
      !! its text could not grow: it ignores further text
    integer(int64) :: wanted = 0
      !! the capacity that could not be allocated
  end type text_builder

  interface
    function c_rename(old_path, new_path) bind(c, name='rename') result(status)
      !! C's `rename`: atomically replaces `new_path` on POSIX systems.
      import :: c_char, c_int
      character(kind=c_char), intent(in) :: old_path(*), new_path(*)
      integer(c_int) :: status
    end function c_rename
  end interface

contains

  ! ---------------------------------------------------------------------
  ! Reading
  ! ---------------------------------------------------------------------

  subroutine read_model_file(path, spec, stat, msg)
    !! Reads a model file (format version 1, or an original FKB text file)
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

  subroutine parse_line(line, spec, layer, section, entries, n_entries, param_count, io_lines, stat, problem)
    !! Parses one header line (between the sha256 line and end_header) into
    !! the spec; `layer` and `section` track the section a param belongs to.
    character(len=*), intent(in) :: line
    type(model_spec), intent(inout) :: spec
    integer, intent(inout) :: layer, section
    type(payload_entry), intent(inout) :: entries(:)
    integer, intent(inout) :: n_entries
    integer, intent(in) :: param_count(:)
    integer, intent(in) :: io_lines(2)
      !! the number of `input` and `output` lines of the header
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: problem

    integer, allocatable :: first(:), last(:)
    integer :: n_tokens, i, value
    character(len=:), allocatable :: word

    stat = fkb_ok
    problem = ''
    do i = 1, len(line)
      if (iachar(line(i:i)) < 32 .or. iachar(line(i:i)) == 127) then
        call bad(fkb_err_format, 'control character in the header')
        return
      end if
    end do
    call split_tokens(line, first, last, n_tokens, stat)
    if (stat /= fkb_ok) then
      call bad(stat, allocation_failure('the token index of a header line', int(len(line), int64), 8))
      return
    end if
    if (n_tokens == 0) then
      call bad(fkb_err_format, 'empty line')
      return
    end if
    word = line(first(1):last(1))
    if (spec%training%present) then
      ! the training section is last: only its own lines follow it
      select case (word)
      case ('optimizer', 'schedule', 'generator', 'param')
      case default
        call bad(fkb_err_format, '''' // word // ''' line after the training section ' // &
                 '(the training section must come last)')
        return
      end select
    else if (word /= 'param') then
      section = section_none
    end if

    select case (word)
    case ('name')
      if (allocated(spec%name)) then
        call bad(fkb_err_format, 'a second name line')
      else if (n_tokens == 1) then
        spec%name = ''
      else
        spec%name = line(first(2):len_trim(line))
      end if

    case ('n_inputs', 'n_outputs')
      if (n_tokens /= 2) then
        call bad(fkb_err_format, 'expected ''' // word // ' <n>''')
        return
      end if
      call parse_int(line(first(2):last(2)), value, stat)
      if (stat /= fkb_ok .or. value < 1) then
        call bad(fkb_err_format, word // ' is not a positive integer')
      else if (word == 'n_inputs') then
        call set_count(spec%n_inputs)
      else
        call set_count(spec%n_outputs)
      end if

    case ('input')
      call parse_io_line(spec%n_inputs, io_lines(1), spec%inputs)
    case ('output')
      call parse_io_line(spec%n_outputs, io_lines(2), spec%outputs)

    case ('input_normalization', 'output_normalization')
      if (n_tokens /= 1) then
        call bad(fkb_err_format, 'expected ''' // word // ''' alone')
      else if (word == 'input_normalization') then
        call start_normalization(spec%n_inputs, spec%has_input_normalization)
        section = section_input_norm
      else
        call start_normalization(spec%n_outputs, spec%has_output_normalization)
        section = section_output_norm
      end if

    case ('input_statistics')
      call parse_statistics_line()
      if (stat /= fkb_ok) return
      section = section_statistics

    case ('layer')
      layer = layer + 1
      section = section_layer
      call parse_layer_line()

    case ('param')
      call parse_param_line()

    case ('training')
      if (spec%version < 2) then
        call bad(fkb_err_format, 'a training section needs format version 2 (the file says 1)')
        return
      end if
      if (layer == 0) then
        call bad(fkb_err_format, 'the training section comes after the layers')
        return
      end if
      call parse_key_values(line, first, last, 2, spec%training%attributes, stat, problem)
      if (stat /= fkb_ok) return
      allocate (spec%training%generator_ids(0), spec%training%generator_states(0), stat=stat)
      if (stat == 0) allocate (spec%training%tensors(0), stat=stat)
      if (stat /= 0) then
        call bad(fkb_err_memory, 'out of memory: cannot allocate the empty lists of the training section')
        return
      end if
      call parse_precision()
      spec%training%present = .true.
      spec%training%schedule = ''
      section = section_training

    case ('optimizer', 'schedule')
      if (.not. spec%training%present) then
        call bad(fkb_err_format, word // ' line outside a training section')
        return
      end if
      if (n_tokens < 2) then
        call bad(fkb_err_format, 'expected ''' // word // ' <kind> [key=value ...]''')
        return
      end if
      if (word == 'optimizer') then
        if (allocated(spec%training%optimizer)) then
          call bad(fkb_err_format, 'a second optimizer line')
          return
        end if
        spec%training%optimizer = line(first(2):last(2))
        call parse_key_values(line, first, last, 3, spec%training%optimizer_attributes, stat, &
                              problem)
      else
        if (len(spec%training%schedule) > 0) then
          call bad(fkb_err_format, 'a second schedule line')
          return
        end if
        spec%training%schedule = line(first(2):last(2))
        call parse_key_values(line, first, last, 3, spec%training%schedule_attributes, stat, &
                              problem)
      end if

    case ('generator')
      call parse_generator_line()

    case default
      call bad(fkb_err_format, 'unknown header line ''' // word // '''')
    end select

  contains

    subroutine bad(code, text)
      integer, intent(in) :: code
      character(len=*), intent(in) :: text
      stat = code
      problem = text
    end subroutine bad

    subroutine parse_precision()
      !! The `precision` attribute of the training line: 32 or 64.
      integer :: k, bits
      do k = 1, size(spec%training%attributes)
        if (spec%training%attributes(k)%key /= 'precision') cycle
        call parse_int(spec%training%attributes(k)%value, bits, stat)
        if (stat /= fkb_ok .or. (bits /= 32 .and. bits /= 64)) then
          call bad(fkb_err_format, 'training precision=' // spec%training%attributes(k)%value // &
                   ' (expected 32 or 64)')
          return
        end if
        spec%training%precision = bits
        return
      end do
      call bad(fkb_err_format, 'the training line has no precision=32 or precision=64')
    end subroutine parse_precision

    subroutine parse_generator_line()
      !! `generator <node id> <state>`: a random generator's state, 0 the
      !! shuffling of `fit`, else the layer's own.
      integer :: id, state
      if (.not. spec%training%present) then
        call bad(fkb_err_format, 'generator line outside a training section')
        return
      end if
      if (n_tokens /= 3) then
        call bad(fkb_err_format, 'expected ''generator <id> <state>''')
        return
      end if
      call parse_int(line(first(2):last(2)), id, stat)
      if (stat /= fkb_ok .or. id < 0 .or. id > size(spec%layers)) then
        call bad(fkb_err_format, 'generator id ''' // line(first(2):last(2)) // ''' is not in 0..' // &
                 int_to_str(size(spec%layers)))
        return
      end if
      call parse_int(line(first(3):last(3)), state, stat)
      if (stat /= fkb_ok .or. state < 1 .or. state > 2147483646) then
        call bad(fkb_err_format, 'generator ' // int_to_str(id) // ': state ''' // &
                 line(first(3):last(3)) // ''' is not in 1..2147483646')
        return
      end if
      if (any(spec%training%generator_ids == id)) then
        call bad(fkb_err_format, 'a second generator line for id ' // int_to_str(id))
        return
      end if
      spec%training%generator_ids = [spec%training%generator_ids, id]
      spec%training%generator_states = [spec%training%generator_states, state]
    end subroutine parse_generator_line

    subroutine parse_statistics_line()
      !! `input_statistics samples=<n> rank=<k> residual_variance=<r>
      !! distance_q999=<d>`, once, before the layers, in format version 3.
      type(attribute_spec), allocatable :: attributes(:)
      integer :: k, found
      real(real64) :: number
      if (spec%version < 3) then
        call bad(fkb_err_format, 'an input_statistics section needs format version 3 (the file says ' // &
                 int_to_str(spec%version) // ')')
        return
      end if
      if (spec%statistics%present) then
        call bad(fkb_err_format, 'a second input_statistics section')
        return
      end if
      if (layer > 0) then
        call bad(fkb_err_format, 'the input_statistics section comes before the layers')
        return
      end if
      if (spec%n_inputs == 0) then
        call bad(fkb_err_format, 'input_statistics before n_inputs')
        return
      end if
      call parse_key_values(line, first, last, 2, attributes, stat, problem)
      if (stat /= fkb_ok) return
      found = 0
      do k = 1, size(attributes)
        select case (attributes(k)%key)
        case ('samples', 'rank')
          call parse_int(attributes(k)%value, value, stat)
          if (stat /= fkb_ok .or. value < 0 .or. (attributes(k)%key == 'samples' .and. value < 1) &
              .or. (attributes(k)%key == 'rank' .and. value > spec%n_inputs)) then
            call bad(fkb_err_format, 'input_statistics ' // attributes(k)%key // '=' // &
                     attributes(k)%value // ' is out of range')
            return
          end if
          if (attributes(k)%key == 'samples') then
            spec%statistics%samples = value
          else
            spec%statistics%rank = value
          end if
        case ('residual_variance', 'distance_q999')
          if (.not. parse_real(attributes(k)%value, number)) number = -1.0_real64
          if (.not. (number > 0.0_real64 .and. number <= huge(1.0_real32))) then
            call bad(fkb_err_format, 'input_statistics ' // attributes(k)%key // '=' // &
                     attributes(k)%value // ' is not a positive number')
            return
          end if
          if (attributes(k)%key == 'residual_variance') then
            spec%statistics%residual_variance = number
          else
            spec%statistics%distance_q999 = number
          end if
        case default
          call bad(fkb_err_format, 'input_statistics has no attribute ' // attributes(k)%key)
          return
        end select
        found = found + 1
      end do
      if (found /= 4) then
        call bad(fkb_err_format, 'the input_statistics line needs samples, rank, residual_variance ' // &
                 'and distance_q999')
        return
      end if
      spec%statistics%present = .true.
    end subroutine parse_statistics_line

    subroutine set_count(n_io)
      !! `n_inputs <n>` or `n_outputs <n>`, given once.
      integer, intent(inout) :: n_io
      if (n_io /= 0) call bad(fkb_err_format, 'a second ' // word // ' line')
      n_io = value
    end subroutine set_count

    subroutine start_normalization(n_io, has_normalization)
      !! `input_normalization` or `output_normalization`, once and after
      !! the width it normalizes.
      integer, intent(in) :: n_io
      logical, intent(inout) :: has_normalization
      character(len=:), allocatable :: io_word
      io_word = word(1:index(word, '_') - 1)
      if (n_io == 0) then
        call bad(fkb_err_format, word // ' before n_' // io_word // 's')
      else if (has_normalization) then
        call bad(fkb_err_format, 'a second ' // word // ' section')
      end if
      has_normalization = .true.
    end subroutine start_normalization

    subroutine parse_io_line(n_io, n_lines, io)
      !! `input <i> <name> <units>`; units are the rest of the line. Every
      !! index needs its line, so `n_io` (allocated here) is at most the
      !! `n_lines` the header has of them.
      integer, intent(in) :: n_io, n_lines
      type(io_spec), allocatable, intent(inout) :: io(:)
      integer :: index, alloc_stat
      if (n_io == 0) then
        call bad(fkb_err_format, word // ' line before n_' // word // 's')
        return
      end if
      if (n_tokens < 4) then   ! units are required (the Python reader agrees)
        call bad(fkb_err_format, 'expected ''' // word // ' <i> <name> <units>''')
        return
      end if
      call parse_int(line(first(2):last(2)), index, stat)
      if (stat /= fkb_ok .or. index < 1 .or. index > n_io) then
        call bad(fkb_err_format, word // ' index ''' // line(first(2):last(2)) // &
                 ''' is not in 1..' // int_to_str(n_io))
        return
      end if
      if (n_lines < n_io) then   ! as the Python reader says it
        call bad(fkb_err_format, word // ' lines given for ' // int_to_str(n_lines) // ' of the ' // &
                 int_to_str(n_io) // ' ' // word // 's (all or none)')
        return
      end if
      if (.not. allocated(io)) then
        allocate(io(n_io), stat=alloc_stat)
        if (alloc_stat /= 0) then
          call bad(fkb_err_memory, allocation_failure(int_to_str(n_io) // ' ' // word // ' names', &
                                                      int(n_io, int64), 64))
          return
        end if
      end if
      if (allocated(io(index)%name)) then
        call bad(fkb_err_format, 'a second ' // word // ' line for index ' // int_to_str(index))
        return
      end if
      io(index)%name = line(first(3):last(3))
      io(index)%units = line(first(4):len_trim(line))
    end subroutine parse_io_line

    subroutine parse_layer_line()
      !! `layer <id> <type> <n_out> inputs=<ids> [key=value ...]`
      integer :: id, n_out, t, eq, n_attributes, k
      logical :: has_inputs
      if (n_tokens < 5) then
        call bad(fkb_err_format, 'expected ''layer <id> <type> <n_out> inputs=<ids> [key=value ...]''')
        return
      end if
      call parse_int(line(first(2):last(2)), id, stat)
      if (stat /= fkb_ok .or. id /= layer) then
        call bad(fkb_err_format, 'layer id ''' // line(first(2):last(2)) // ''' out of order (expected ' // &
                 int_to_str(layer) // ')')
        return
      end if
      call parse_int(line(first(4):last(4)), n_out, stat)
      if (stat /= fkb_ok .or. n_out < 1) then
        call bad(fkb_err_format, 'layer ' // int_to_str(id) // ': n_out ''' // line(first(4):last(4)) // &
                 ''' is not a positive integer')
        return
      end if
      associate (this => spec%layers(layer))
        this%kind = line(first(3):last(3))
        this%n_out = n_out
        n_attributes = n_tokens - 5
        allocate(this%attributes(n_attributes), stat=stat)
        if (stat /= 0) then
          call bad(fkb_err_memory, 'layer ' // int_to_str(id) // ': ' // &
                   allocation_failure('its attributes', int(n_attributes, int64), 64))
          return
        end if
        has_inputs = .false.
        k = 0
        do t = 5, n_tokens
          eq = index(line(first(t):last(t)), '=')
          if (eq <= 1 .or. first(t) + eq - 1 == last(t)) then
            call bad(fkb_err_format, 'layer ' // int_to_str(id) // ': malformed attribute ''' // &
                     line(first(t):last(t)) // ''' (expected key=value)')
            return
          end if
          eq = first(t) + eq - 1
          if (line(first(t):eq - 1) == 'inputs') then
            if (has_inputs) then
              call bad(fkb_err_format, 'layer ' // int_to_str(id) // ': a second inputs=')
              return
            end if
            has_inputs = .true.
            call parse_int_list(line(eq + 1:last(t)), this%inputs, stat)
            if (stat == fkb_err_memory) then
              call bad(stat, 'layer ' // int_to_str(id) // ': ' // &
                       allocation_failure('its list of inputs', int(len(line), int64), 4))
              return
            else if (stat /= fkb_ok) then
              call bad(fkb_err_format, 'layer ' // int_to_str(id) // ': malformed ''' // &
                       line(first(t):last(t)) // '''')
              return
            end if
          else
            if (k == n_attributes) exit
            k = k + 1
            this%attributes(k) = attribute(line(first(t):eq - 1), line(eq + 1:last(t)))
          end if
        end do
        if (.not. has_inputs) then
          call bad(fkb_err_format, 'layer ' // int_to_str(id) // ': no inputs=')
          return
        end if
      end associate
    end subroutine parse_layer_line

    subroutine parse_param_line()
      !! `param <name> <d1> [<d2>]`, a tensor of the current section.
      type(tensor_spec) :: tensor
      integer :: d, k
      integer(int64) :: count
      if (section == section_none) then
        call bad(fkb_err_format, 'param outside a layer or normalization section')
        return
      end if
      if (n_tokens < 3 .or. n_tokens > 4) then
        call bad(fkb_err_format, 'expected ''param <name> <d1> [<d2>]''')
        return
      end if
      tensor%name = line(first(2):last(2))
      tensor%rank = n_tokens - 2
      tensor%shape = [0, 1]
      count = 1
      do d = 1, tensor%rank
        call parse_int(line(first(d + 2):last(d + 2)), tensor%shape(d), stat)
        if (stat /= fkb_ok .or. tensor%shape(d) < 1) then
          call bad(fkb_err_format, 'param ' // tensor%name // ': dimension ''' // &
                   line(first(d + 2):last(d + 2)) // ''' is not a positive integer')
          return
        end if
        count = count * tensor%shape(d)
      end do
      if (count > huge(0_int32)) then
        call bad(fkb_err_format, 'param ' // tensor%name // ': too many values')
        return
      end if

      n_entries = n_entries + 1
      entries(n_entries)%section = section
      entries(n_entries)%count = int(count)
      if (section == section_training) entries(n_entries)%bytes = spec%training%precision / 8
      select case (section)
      case (section_training)
        block
          type(training_tensor) :: added
          associate (tensors => spec%training%tensors)
            do k = 1, size(tensors)
              if (tensors(k)%name == tensor%name) then
                call bad(fkb_err_format, 'training: a second param ' // tensor%name)
                return
              end if
            end do
          end associate
          added%name = tensor%name
          added%rank = tensor%rank
          added%shape = tensor%shape
          spec%training%tensors = [spec%training%tensors, added]
          entries(n_entries)%param = size(spec%training%tensors)
        end block
      case (section_statistics)
        block
          integer :: n_expected(2)
          do k = size(statistics_params), 1, -1
            if (trim(statistics_params(k)) == tensor%name) exit
          end do
          if (k == 0) then
            call bad(fkb_err_format, 'input_statistics has no param ''' // tensor%name // '''')
            return
          end if
          if (any(entries(1:n_entries - 1)%section == section .and. entries(1:n_entries - 1)%param == k)) then
            call bad(fkb_err_format, 'input_statistics: a second param ' // tensor%name)
            return
          end if
          select case (k)
          case (5); n_expected = [spec%n_inputs, spec%statistics%rank]
          case (6); n_expected = [spec%statistics%rank, 1]
          case default; n_expected = [spec%n_inputs, 1]
          end select
          if (any(tensor%shape /= n_expected) .or. (k == 5 .and. tensor%rank /= 2) &
              .or. (k /= 5 .and. tensor%rank /= 1)) then
            call bad(fkb_err_shape, 'input_statistics param ' // tensor%name // ' has shape ' // &
                     shape_text(tensor) // ', expected ' // int_to_str(n_expected(1)) // ' x ' // &
                     int_to_str(n_expected(2)))
            return
          end if
          entries(n_entries)%param = k
        end block
      case (section_input_norm, section_output_norm)
        block
          character(len=:), allocatable :: what
          logical :: seen
          integer :: n_expected
          if (section == section_input_norm) then
            what = 'input_normalization'
            n_expected = spec%n_inputs
          else
            what = 'output_normalization'
            n_expected = spec%n_outputs
          end if
          select case (tensor%name)
          case ('offset'); k = 1
          case ('scale'); k = 2
          case default
            call bad(fkb_err_format, what // ' has no param ''' // tensor%name // &
                     ''' (expected offset and scale)')
            return
          end select
          ! entries before this one tell whether the name came already
          seen = any(entries(1:n_entries - 1)%section == section .and. &
                     entries(1:n_entries - 1)%param == k)
          if (seen) then
            call bad(fkb_err_format, what // ': a second param ' // tensor%name)
            return
          end if
          if (count /= n_expected .or. tensor%shape(2) /= 1) then
            call bad(fkb_err_shape, what // ' param ' // tensor%name // ' has shape ' // &
                     shape_text(tensor) // ', expected ' // int_to_str(n_expected))
            return
          end if
          entries(n_entries)%param = k
        end block
      case (section_layer)
        associate (params => spec%layers(layer)%params)
          do k = 1, size(params)
            if (.not. allocated(params(k)%name)) exit
            if (params(k)%name == tensor%name) then
              call bad(fkb_err_format, 'layer ' // int_to_str(layer) // ': a second param ' // tensor%name)
              return
            end if
          end do
          if (k > param_count(layer)) then
            call bad(fkb_err_format, 'layer ' // int_to_str(layer) // ': more params than counted')
            return
          end if
          params(k) = tensor
          entries(n_entries)%layer = layer
          entries(n_entries)%param = k
        end associate
      end select
    end subroutine parse_param_line

  end subroutine parse_line

  subroutine check_header_complete(spec, n_layers, stat, problem)
    !! What the header must hold once all of it is read.
    type(model_spec), intent(in) :: spec
    integer, intent(in) :: n_layers
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: problem

    stat = fkb_err_format
    if (spec%n_inputs == 0) then
      problem = 'no n_inputs line'
    else if (spec%n_outputs == 0) then
      problem = 'no n_outputs line'
    else if (n_layers == 0) then
      problem = 'no layer lines'
    else
      stat = fkb_ok
      problem = ''
    end if
    if (stat /= fkb_ok) return
    if (spec%training%present .and. .not. allocated(spec%training%optimizer)) then
      stat = fkb_err_format
      problem = 'the training section has no optimizer line'
      return
    end if
    call check_all_named('input', spec%inputs)
    if (stat /= fkb_ok) return
    call check_all_named('output', spec%outputs)

  contains

    subroutine check_all_named(word, io)
      !! Once one `input` (`output`) line is given, every index needs one.
      character(len=*), intent(in) :: word
      type(io_spec), allocatable, intent(in) :: io(:)
      integer :: i
      if (.not. allocated(io)) return
      do i = 1, size(io)
        if (.not. allocated(io(i)%name)) then
          stat = fkb_err_format
          problem = word // ' lines given, but none for ' // word // ' ' // int_to_str(i)
          return
        end if
      end do
    end subroutine check_all_named

  end subroutine check_header_complete

  subroutine parse_key_values(line, first, last, start, attributes, stat, problem)
    !! The `key=value` tokens `start..` of a header line (training,
    !! optimizer and schedule lines), keys unique.
    character(len=*), intent(in) :: line
    integer, intent(in) :: first(:), last(:), start
    type(attribute_spec), allocatable, intent(out) :: attributes(:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: t, eq, k, j
    allocate (attributes(max(0, size(first) - start + 1)), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      problem = allocation_failure('the key=value list of a header line', &
                                   int(max(0, size(first) - start + 1), int64), 64)
      return
    end if
    do t = start, size(first)
      eq = index(line(first(t):last(t)), '=')
      if (eq <= 1 .or. first(t) + eq - 1 == last(t)) then
        stat = fkb_err_format
        problem = 'malformed attribute ''' // line(first(t):last(t)) // ''' (expected key=value)'
        return
      end if
      eq = first(t) + eq - 1
      k = t - start + 1
      attributes(k) = attribute(line(first(t):eq - 1), line(eq + 1:last(t)))
      do j = 1, k - 1
        if (attributes(j)%key == attributes(k)%key) then
          stat = fkb_err_format
          problem = 'a second attribute ' // attributes(k)%key
          return
        end if
      end do
    end do
  end subroutine parse_key_values

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

  ! ---------------------------------------------------------------------
  ! Writing
  ! ---------------------------------------------------------------------

  subroutine write_model_file(path, spec, stat, msg)
    !! Writes a model spec as a model file, the float32 weights exactly:
    !! format version 1, or 2 when the spec has a training section (whose
    !! tensors are written in its precision, exactly; a precision-32
    !! tensor must hold float32 values). The file is written to `path // '.tmp'` and then
    !! renamed to `path`, so an existing file is replaced only by a
    !! complete one.
    character(len=*), intent(in) :: path
      !! file to write
    type(model_spec), intent(in) :: spec
      !! the model
    integer, intent(out) :: stat
      !! `fkb_ok` or an error code from `fkb_status`
    character(len=:), allocatable, intent(out) :: msg
      !! empty on success, else one line starting with `path`

    type(text_builder) :: header
    integer(int8), allocatable :: body(:)
    integer(int64) :: n_values, n_training_bytes, p
    integer :: l, k, unit, ios, version
    character(len=64) :: digest
    character(len=:), allocatable :: problem, tmp_path
    character(len=512) :: iomsg

    msg = ''
    call check_spec(spec, .false., stat, problem)
    if (stat /= fkb_ok) then
      msg = path // ': ' // problem
      return
    end if

    if (allocated(spec%name)) then
      if (len_trim(spec%name) > 0) call add(header, 'name ' // trim(adjustl(spec%name)) // newline)
    end if
    call add(header, 'n_inputs ' // int_to_str(spec%n_inputs) // newline)
    call add(header, 'n_outputs ' // int_to_str(spec%n_outputs) // newline)
    if (allocated(spec%inputs)) call add_io_lines('input', spec%inputs)
    if (allocated(spec%outputs)) call add_io_lines('output', spec%outputs)
    n_values = 0
    if (spec%has_input_normalization) call add_normalization_lines('input_normalization', spec%n_inputs)
    if (spec%has_output_normalization) call add_normalization_lines('output_normalization', spec%n_outputs)
    if (spec%statistics%present) call add_statistics_lines()
    do l = 1, size(spec%layers)
      associate (layer => spec%layers(l))
        call add(header, 'layer ' // int_to_str(l) // ' ' // layer%kind // ' ' // int_to_str(layer%n_out) // &
                         ' inputs=')
        do k = 1, size(layer%inputs)
          if (k > 1) call add(header, ',')
          call add(header, int_to_str(layer%inputs(k)))
        end do
        if (allocated(layer%attributes)) then
          do k = 1, size(layer%attributes)
            call add(header, ' ' // layer%attributes(k)%key // '=' // layer%attributes(k)%value)
          end do
        end if
        call add(header, newline)
        if (allocated(layer%params)) then
          do k = 1, size(layer%params)
            call add(header, 'param ' // layer%params(k)%name // ' ' // shape_text(layer%params(k)) // newline)
            n_values = n_values + size(layer%params(k)%values)
          end do
        end if
      end associate
    end do
    n_training_bytes = 0
    version = 1
    if (spec%statistics%present) version = 3
    if (spec%training%present) then
      version = max(version, 2)
      call add_training_lines()
    end if
    call add(header, 'end_header' // newline)

    ! the hashed body: header lines after sha256, then the payload
    if (header%failed) then
      stat = fkb_err_memory
      msg = path // ': ' // allocation_failure('the header text', header%wanted, 1)
      return
    end if
    allocate(body(int(header%length, int64) + 4 * n_values + n_training_bytes), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      msg = path // ': ' // allocation_failure('the file''s contents', &
                                               int(header%length, int64) + 4 * n_values + &
                                               n_training_bytes, 1)
      return
    end if
    body(1:header%length) = transfer(header%text(1:header%length), body, header%length)
    p = header%length
    if (spec%has_input_normalization) then
      call put(spec%input_offset)
      call put(spec%input_scale)
    end if
    if (spec%has_output_normalization) then
      call put(spec%output_offset)
      call put(spec%output_scale)
    end if
    if (spec%statistics%present) then
      call put(spec%statistics%minimum)
      call put(spec%statistics%maximum)
      call put(spec%statistics%mean)
      call put(spec%statistics%std)
      if (spec%statistics%rank > 0) then
        call put(spec%statistics%basis)
        call put(spec%statistics%variance)
      end if
    end if
    do l = 1, size(spec%layers)
      if (.not. allocated(spec%layers(l)%params)) cycle
      do k = 1, size(spec%layers(l)%params)
        call put(spec%layers(l)%params(k)%values)
      end do
    end do
    if (spec%training%present) then
      do k = 1, size(spec%training%tensors)
        if (spec%training%precision == 32) then
          call put(real(spec%training%tensors(k)%values, real32))
        else
          call put64(spec%training%tensors(k)%values)
          if (stat /= fkb_ok) return
        end if
      end do
    end if
    digest = sha256_hex(body)

    tmp_path = path // '.tmp'
    open(newunit=unit, file=tmp_path, status='replace', action='write', access='stream', &
         form='unformatted', iostat=ios, iomsg=iomsg)
    if (ios == 0) then
      write(unit, iostat=ios, iomsg=iomsg) 'FKB ' // int_to_str(version) // newline // &
                                           'sha256 ' // digest // newline
      if (ios == 0) write(unit, iostat=ios, iomsg=iomsg) body
      if (ios /= 0) close(unit, status='delete')
    end if
    if (ios /= 0) then
      stat = fkb_err_io
      msg = path // ': cannot write ' // tmp_path // ': ' // trim(iomsg)
      return
    end if
    close(unit, iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      stat = fkb_err_io
      msg = path // ': cannot close ' // tmp_path // ': ' // trim(iomsg)
      return
    end if
    if (c_rename(tmp_path // c_null_char, path // c_null_char) /= 0) then
      stat = fkb_err_io
      msg = path // ': cannot rename ' // tmp_path // ' to it'
      open(newunit=unit, file=tmp_path, status='old', iostat=ios)
      if (ios == 0) close(unit, status='delete')
      return
    end if

  contains

    subroutine add_normalization_lines(word, n)
      !! The section header and its `offset` and `scale` params of `n` values.
      character(len=*), intent(in) :: word
      integer, intent(in) :: n
      call add(header, word // newline)
      call add(header, 'param offset ' // int_to_str(n) // newline)
      call add(header, 'param scale ' // int_to_str(n) // newline)
      n_values = n_values + 2 * n
    end subroutine add_normalization_lines

    subroutine add_statistics_lines()
      !! The input_statistics line and its params (docs/model-file.md).
      integer :: n, k
      n = spec%n_inputs
      k = spec%statistics%rank
      call add(header, 'input_statistics samples=' // int_to_str(spec%statistics%samples) // ' rank=' // &
                       int_to_str(k) // ' residual_variance=' // real64_repr(spec%statistics%residual_variance) // &
                       ' distance_q999=' // real64_repr(spec%statistics%distance_q999) // newline)
      call add(header, 'param minimum ' // int_to_str(n) // newline)
      call add(header, 'param maximum ' // int_to_str(n) // newline)
      call add(header, 'param mean ' // int_to_str(n) // newline)
      call add(header, 'param std ' // int_to_str(n) // newline)
      n_values = n_values + 4 * n
      if (k > 0) then
        call add(header, 'param basis ' // int_to_str(n) // ' ' // int_to_str(k) // newline)
        call add(header, 'param variance ' // int_to_str(k) // newline)
        n_values = n_values + n * k + k
      end if
    end subroutine add_statistics_lines

    subroutine add_io_lines(word, io)
      character(len=*), intent(in) :: word
      type(io_spec), intent(in) :: io(:)
      integer :: i
      do i = 1, size(io)
        call add(header, word // ' ' // int_to_str(i) // ' ' // io(i)%name // ' ' // units_text(io(i)) // &
                         newline)
      end do
    end subroutine add_io_lines

    subroutine add_training_lines()
      !! The training section: its line, optimizer, schedule, generators,
      !! then its tensors' param lines.
      integer :: i
      associate (tr => spec%training)
        call add(header, 'training precision=' // int_to_str(tr%precision))
        call add_key_values(tr%attributes, 'precision')
        call add(header, newline // 'optimizer ' // tr%optimizer)
        call add_key_values(tr%optimizer_attributes)
        call add(header, newline)
        if (allocated(tr%schedule)) then
          if (len(tr%schedule) > 0) then
            call add(header, 'schedule ' // tr%schedule)
            call add_key_values(tr%schedule_attributes)
            call add(header, newline)
          end if
        end if
        if (allocated(tr%generator_ids)) then
          do i = 1, size(tr%generator_ids)
            call add(header, 'generator ' // int_to_str(tr%generator_ids(i)) // ' ' // &
                             int_to_str(tr%generator_states(i)) // newline)
          end do
        end if
        if (allocated(tr%tensors)) then
          do i = 1, size(tr%tensors)
            call add(header, 'param ' // tr%tensors(i)%name // ' ' // int_to_str(tr%tensors(i)%shape(1)))
            if (tr%tensors(i)%rank == 2) call add(header, ' ' // int_to_str(tr%tensors(i)%shape(2)))
            call add(header, newline)
            n_training_bytes = n_training_bytes + (tr%precision / 8) * size(tr%tensors(i)%values, kind=int64)
          end do
        end if
      end associate
    end subroutine add_training_lines

    subroutine add_key_values(attributes, skip)
      type(attribute_spec), allocatable, intent(in) :: attributes(:)
      character(len=*), intent(in), optional :: skip
        !! a key not to write (written already)
      integer :: i
      if (.not. allocated(attributes)) return
      do i = 1, size(attributes)
        if (present(skip)) then
          if (attributes(i)%key == skip) cycle
        end if
        call add(header, ' ' // attributes(i)%key // '=' // attributes(i)%value)
      end do
    end subroutine add_key_values

    subroutine put64(values)
      !! Appends float64 values, little-endian, to the body.
      real(real64), intent(in) :: values(:)
      integer(int32), allocatable :: halves(:)
      integer :: n, i
      n = size(values)
      if (n == 0) return
      if (little_endian()) then
        body(p + 1:p + 8 * n) = transfer(values, body, 8 * n)
      else
        allocate (halves(2 * n), stat=stat)
        if (stat /= 0) then
          stat = fkb_err_memory
          msg = path // ': ' // allocation_failure('the byte-swapped training values', &
                                                   2_int64 * n, 4)
          return
        end if
        halves = byte_swapped(transfer(values, 0_int32, 2 * n))
        do i = 1, n
          body(p + 8 * i - 7:p + 8 * i) = transfer([halves(2 * i), halves(2 * i - 1)], body, 8)
        end do
      end if
      p = p + 8 * n
    end subroutine put64

    subroutine put(values)
      !! Appends float32 values, little-endian, to the body.
      real(real32), intent(in) :: values(:)
      integer :: n
      n = size(values)
      if (n == 0) return
      if (little_endian()) then
        body(p + 1:p + 4 * n) = transfer(values, body, 4 * n)
      else
        body(p + 1:p + 4 * n) = transfer(byte_swapped(transfer(values, 0_int32, n)), body, 4 * n)
      end if
      p = p + 4 * n
    end subroutine put

  end subroutine write_model_file

  ! ---------------------------------------------------------------------
  ! Checks shared by the reader and the writer
  ! ---------------------------------------------------------------------

  subroutine check_spec(spec, reading, stat, problem)
    !! The structure of a model, independent of what each layer kind needs:
    !! widths, io names, normalization shapes, layer ids and inputs, unique
    !! keys and names, tensor sizes and finite values. A structural problem
    !! is a format error when reading and an invalid argument when writing.
    type(model_spec), intent(in) :: spec
    logical, intent(in) :: reading
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: problem
    integer :: structure_error, l, k, j
    logical :: nonempty
    character(len=:), allocatable :: context

    structure_error = merge(fkb_err_format, fkb_err_argument, reading)
    stat = fkb_ok
    problem = ''
    context = ''

    if (spec%n_inputs < 1 .or. spec%n_outputs < 1) then
      call bad(structure_error, 'n_inputs and n_outputs must be positive')
      return
    end if
    if (allocated(spec%name)) then
      if (.not. is_text(spec%name)) then
        call bad(structure_error, 'the name contains a control character')
        return
      end if
    end if
    call check_io('input', spec%inputs, spec%n_inputs)
    if (stat /= fkb_ok) return
    call check_io('output', spec%outputs, spec%n_outputs)
    if (stat /= fkb_ok) return
    if (spec%has_input_normalization) then
      call check_normalization('input_normalization', spec%input_offset, spec%input_scale, spec%n_inputs)
      if (stat /= fkb_ok) return
    end if
    if (spec%has_output_normalization) then
      call check_normalization('output_normalization', spec%output_offset, spec%output_scale, spec%n_outputs)
      if (stat /= fkb_ok) return
    end if
    if (spec%statistics%present) then
      call check_statistics(spec%statistics, spec%n_inputs)
      if (stat /= fkb_ok) return
    end if

    nonempty = allocated(spec%layers)
    if (nonempty) nonempty = size(spec%layers) > 0
    if (.not. nonempty) then
      call bad(structure_error, 'no layers')
      return
    end if
    do l = 1, size(spec%layers)
      associate (layer => spec%layers(l))
        if (.not. allocated(layer%kind)) then
          call bad(structure_error, 'layer ' // int_to_str(l) // ': no type')
          return
        end if
        if (.not. is_token(layer%kind)) then
          call bad(structure_error, 'layer ' // int_to_str(l) // ': type ''' // layer%kind // &
                   ''' is not a single word')
          return
        end if
        context = 'layer ' // int_to_str(l) // ' (' // layer%kind // ')'
        if (layer%n_out < 1) then
          call bad(structure_error, context // ': n_out must be positive')
          return
        end if
        nonempty = allocated(layer%inputs)
        if (nonempty) nonempty = size(layer%inputs) > 0
        if (.not. nonempty) then
          call bad(structure_error, context // ': no inputs')
          return
        end if
        do k = 1, size(layer%inputs)
          if (layer%inputs(k) < 0 .or. layer%inputs(k) >= l) then
            call bad(structure_error, context // ' refers to layer ' // int_to_str(layer%inputs(k)) // &
                     ', which is not an earlier layer or 0 (the model input)')
            return
          end if
        end do
        if (allocated(layer%attributes)) then
          do k = 1, size(layer%attributes)
            if (.not. allocated(layer%attributes(k)%key) .or. .not. allocated(layer%attributes(k)%value)) then
              call bad(structure_error, 'layer ' // int_to_str(l) // ': attribute ' // int_to_str(k) // &
                       ' is unset')
              return
            end if
            associate (key => layer%attributes(k)%key, value => layer%attributes(k)%value)
              if (.not. is_token(key) .or. index(key, '=') > 0 .or. key == 'inputs' .or. &
                  .not. is_token(value)) then
                call bad(structure_error, context // ': attribute ''' // key // '=' // value // &
                         ''' is not key=value with single-word key and value')
                return
              end if
              do j = 1, k - 1
                if (layer%attributes(j)%key == key) then
                  call bad(structure_error, context // ': a second attribute ' // key)
                  return
                end if
              end do
            end associate
          end do
        end if
        if (allocated(layer%params)) then
          do k = 1, size(layer%params)
            call check_tensor(context, layer%params(k))
            if (stat /= fkb_ok) return
            do j = 1, k - 1
              if (layer%params(j)%name == layer%params(k)%name) then
                call bad(structure_error, context // ': a second param ' // layer%params(k)%name)
                return
              end if
            end do
          end do
        end if
      end associate
    end do
    associate (last => spec%layers(size(spec%layers)))
      if (last%n_out /= spec%n_outputs) then
        call bad(fkb_err_shape, 'the last layer (' // int_to_str(size(spec%layers)) // ', ' // last%kind // &
                 ') has n_out ' // int_to_str(last%n_out) // ' but n_outputs is ' // &
                 int_to_str(spec%n_outputs))
        return
      end if
    end associate
    if (spec%training%present) call check_training()

  contains

    subroutine bad(code, text)
      integer, intent(in) :: code
      character(len=*), intent(in) :: text
      stat = code
      problem = text
    end subroutine bad

    subroutine check_training()
      !! The syntax of the training section (its meaning is the network's).
      integer :: i, j
      associate (tr => spec%training)
        if (tr%precision /= 32 .and. tr%precision /= 64) then
          call bad(structure_error, 'training: precision ' // int_to_str(tr%precision) // &
                   ' is not 32 or 64')
          return
        end if
        if (.not. allocated(tr%optimizer)) then
          call bad(structure_error, 'training: no optimizer')
          return
        end if
        if (.not. is_token(tr%optimizer)) then
          call bad(structure_error, 'training: the optimizer is not a single word')
          return
        end if
        call check_key_values('training', tr%attributes)
        if (stat /= fkb_ok) return
        call check_key_values('optimizer', tr%optimizer_attributes)
        if (stat /= fkb_ok) return
        if (allocated(tr%schedule)) then
          if (len(tr%schedule) > 0) then
            if (.not. is_token(tr%schedule)) then
              call bad(structure_error, 'training: the schedule is not a single word')
              return
            end if
            call check_key_values('schedule', tr%schedule_attributes)
            if (stat /= fkb_ok) return
          end if
        end if
        if (allocated(tr%generator_ids)) then
          if (.not. allocated(tr%generator_states)) then
            call bad(structure_error, 'training: generator ids without states')
            return
          end if
          if (size(tr%generator_states) /= size(tr%generator_ids)) then
            call bad(structure_error, 'training: generator ids and states differ in number')
            return
          end if
          do i = 1, size(tr%generator_ids)
            if (tr%generator_ids(i) < 0 .or. tr%generator_ids(i) > size(spec%layers) .or. &
                tr%generator_states(i) < 1 .or. tr%generator_states(i) > 2147483646 .or. &
                any(tr%generator_ids(1:i - 1) == tr%generator_ids(i))) then
              call bad(structure_error, 'training: generator ' // int_to_str(tr%generator_ids(i)) // &
                       ' has a bad id or state, or is given twice')
              return
            end if
          end do
        end if
        if (.not. allocated(tr%tensors)) return
        do i = 1, size(tr%tensors)
          associate (tensor => tr%tensors(i))
            if (.not. allocated(tensor%name)) then
              call bad(structure_error, 'training: a param without a name')
              return
            end if
            if (.not. is_token(tensor%name)) then
              call bad(structure_error, 'training: param name ''' // tensor%name // &
                       ''' is not a single word')
              return
            end if
            do j = 1, i - 1
              if (tr%tensors(j)%name == tensor%name) then
                call bad(structure_error, 'training: a second param ' // tensor%name)
                return
              end if
            end do
            if (tensor%rank < 1 .or. tensor%rank > 2 .or. any(tensor%shape < 1) .or. &
                (tensor%rank == 1 .and. tensor%shape(2) /= 1)) then
              call bad(fkb_err_shape, 'training: param ' // tensor%name // ': invalid shape')
              return
            end if
            if (.not. allocated(tensor%values)) then
              call bad(structure_error, 'training: param ' // tensor%name // ': no values')
              return
            end if
            if (size(tensor%values, kind=int64) /= int(tensor%shape(1), int64) * tensor%shape(2)) then
              call bad(fkb_err_shape, 'training: param ' // tensor%name // ': ' // &
                       int_to_str(size(tensor%values)) // ' values for its shape')
              return
            end if
            do j = 1, size(tensor%values)
              if (.not. (abs(tensor%values(j)) <= huge(1.0_real64))) then
                call bad(fkb_err_nonfinite, 'training: param ' // tensor%name // &
                         ' has a non-finite value at index ' // int_to_str(j))
                return
              end if
            end do
            if (.not. reading .and. tr%precision == 32) then
              if (any(real(real(tensor%values, real32), real64) /= tensor%values)) then
                call bad(fkb_err_argument, 'training: param ' // tensor%name // &
                         ' has values that float32 cannot hold exactly (precision is 32)')
                return
              end if
            end if
          end associate
        end do
      end associate
    end subroutine check_training

    subroutine check_key_values(what, attributes)
      character(len=*), intent(in) :: what
      type(attribute_spec), allocatable, intent(in) :: attributes(:)
      integer :: i, j
      if (.not. allocated(attributes)) return
      do i = 1, size(attributes)
        if (.not. allocated(attributes(i)%key) .or. .not. allocated(attributes(i)%value)) then
          call bad(structure_error, what // ': attribute ' // int_to_str(i) // ' is unset')
          return
        end if
        if (.not. is_token(attributes(i)%key) .or. index(attributes(i)%key, '=') > 0 .or. &
            .not. is_token(attributes(i)%value)) then
          call bad(structure_error, what // ': attribute ''' // attributes(i)%key // '=' // &
                   attributes(i)%value // ''' is not key=value with single-word key and value')
          return
        end if
        do j = 1, i - 1
          if (attributes(j)%key == attributes(i)%key) then
            call bad(structure_error, what // ': a second attribute ' // attributes(i)%key)
            return
          end if
        end do
      end do
    end subroutine check_key_values

    subroutine check_io(word, io, n)
      character(len=*), intent(in) :: word
      type(io_spec), allocatable, intent(in) :: io(:)
      integer, intent(in) :: n
      integer :: i
      if (.not. allocated(io)) return
      if (size(io) /= n) then
        call bad(fkb_err_shape, int_to_str(size(io)) // ' ' // word // ' names for n_' // word // 's = ' // &
                 int_to_str(n))
        return
      end if
      do i = 1, n
        if (.not. allocated(io(i)%name)) then
          call bad(structure_error, word // ' ' // int_to_str(i) // ' has no name')
          return
        end if
        if (.not. is_token(io(i)%name)) then
          call bad(structure_error, word // ' ' // int_to_str(i) // ': name ''' // io(i)%name // &
                   ''' is not a single word')
          return
        end if
        if (allocated(io(i)%units)) then
          if (.not. is_text(io(i)%units)) then
            call bad(structure_error, word // ' ' // int_to_str(i) // ': units contain a control character')
            return
          end if
        end if
      end do
    end subroutine check_io

    subroutine check_statistics(stats, n)
      !! An input_statistics section: every param there with its size, finite
      !! values, minimum <= maximum, positive spreads.
      type(statistics_spec), intent(in) :: stats
      integer, intent(in) :: n
      integer :: p, k, expected
      logical :: there
      if (stats%samples < 1 .or. stats%rank < 0 .or. stats%rank > n) then
        call bad(structure_error, 'input_statistics: samples or rank out of range')
        return
      end if
      if (.not. (stats%residual_variance > 0 .and. stats%distance_q999 > 0)) then
        call bad(structure_error, 'input_statistics: residual_variance and distance_q999 must be positive')
        return
      end if
      do p = 1, size(statistics_params)
        expected = n
        if (p == 5) expected = n * stats%rank
        if (p == 6) expected = stats%rank
        select case (p)
        case (1); there = allocated(stats%minimum); if (there) there = size(stats%minimum) == expected
        case (2); there = allocated(stats%maximum); if (there) there = size(stats%maximum) == expected
        case (3); there = allocated(stats%mean); if (there) there = size(stats%mean) == expected
        case (4); there = allocated(stats%std); if (there) there = size(stats%std) == expected
        case (5); there = allocated(stats%basis); if (there) there = size(stats%basis) == expected
        case (6); there = allocated(stats%variance); if (there) there = size(stats%variance) == expected
        end select
        if (.not. there .and. expected > 0) then
          call bad(structure_error, 'input_statistics needs param ' // trim(statistics_params(p)) // &
                   ' of ' // int_to_str(expected) // ' values')
          return
        end if
      end do
      k = max(first_nonfinite(stats%minimum), first_nonfinite(stats%maximum), first_nonfinite(stats%mean), &
              first_nonfinite(stats%std))
      if (stats%rank > 0) k = max(k, first_nonfinite(stats%basis), first_nonfinite(stats%variance))
      if (k > 0) then
        call bad(fkb_err_nonfinite, 'input_statistics holds a non-finite value')
        return
      end if
      if (any(stats%minimum > stats%maximum)) then
        call bad(structure_error, 'input_statistics: minimum above maximum for input ' // &
                 int_to_str(findloc(stats%minimum > stats%maximum, .true., dim=1)))
      else if (any(.not. stats%std > 0)) then
        call bad(structure_error, 'input_statistics: std is not positive for input ' // &
                 int_to_str(findloc(stats%std > 0, .false., dim=1)))
      else if (stats%rank > 0) then
        if (any(.not. stats%variance > 0)) call bad(structure_error, 'input_statistics: a variance is not positive')
      end if
    end subroutine check_statistics

    subroutine check_normalization(what, offset, scale, n)
      character(len=*), intent(in) :: what
      real(real32), allocatable, intent(in) :: offset(:), scale(:)
      integer, intent(in) :: n
      integer :: k
      if (.not. allocated(offset) .or. .not. allocated(scale)) then
        call bad(structure_error, what // ' needs both offset and scale')
        return
      end if
      if (size(offset) /= n .or. size(scale) /= n) then
        call bad(fkb_err_shape, what // ': offset and scale need ' // int_to_str(n) // ' values')
        return
      end if
      k = first_nonfinite(offset)
      if (k > 0) then
        call bad(fkb_err_nonfinite, what // ' param offset has a non-finite value at index ' // int_to_str(k))
        return
      end if
      k = first_nonfinite(scale)
      if (k > 0) call bad(fkb_err_nonfinite, what // ' param scale has a non-finite value at index ' // &
                          int_to_str(k))
    end subroutine check_normalization

    subroutine check_tensor(layer_context, tensor)
      character(len=*), intent(in) :: layer_context
        !! `layer <l> (<kind>)`
      type(tensor_spec), intent(in) :: tensor
      integer(int64) :: expected
      integer :: i
      character(len=:), allocatable :: param_context
      if (.not. allocated(tensor%name)) then
        call bad(structure_error, layer_context // ': a param without a name')
        return
      end if
      if (.not. is_token(tensor%name)) then
        call bad(structure_error, layer_context // ': param name ''' // tensor%name // &
                 ''' is not a single word')
        return
      end if
      param_context = layer_context // ' param ' // tensor%name
      if (tensor%rank < 1 .or. tensor%rank > 2 .or. any(tensor%shape < 1) .or. &
          (tensor%rank == 1 .and. tensor%shape(2) /= 1)) then
        call bad(fkb_err_shape, param_context // ': invalid shape')
        return
      end if
      if (.not. allocated(tensor%values)) then
        call bad(structure_error, param_context // ': no values')
        return
      end if
      expected = int(tensor%shape(1), int64) * tensor%shape(2)
      if (size(tensor%values, kind=int64) /= expected) then
        call bad(fkb_err_shape, param_context // ': ' // int_to_str(size(tensor%values)) // &
                 ' values for shape ' // shape_text(tensor))
        return
      end if
      i = first_nonfinite(tensor%values)
      if (i > 0) then
        call bad(fkb_err_nonfinite, param_context // ' has a non-finite value at index ' // int_to_str(i))
        return
      end if
    end subroutine check_tensor

  end subroutine check_spec

  ! ---------------------------------------------------------------------
  ! Small helpers
  ! ---------------------------------------------------------------------

  pure logical function little_endian()
    integer(int8) :: bytes(4)
    bytes = transfer(1_int32, bytes)
    little_endian = bytes(1) == 1
  end function little_endian

  elemental integer(int32) function byte_swapped(x) result(y)
    integer(int32), intent(in) :: x
    y = 0
    call mvbits(x, 0, 8, y, 24)
    call mvbits(x, 8, 8, y, 16)
    call mvbits(x, 16, 8, y, 8)
    call mvbits(x, 24, 8, y, 0)
  end function byte_swapped

  subroutine add(builder, text)
    !! Appends to a text builder, doubling its capacity when full.
    type(text_builder), intent(inout) :: builder
    character(len=*), intent(in) :: text
    character(len=:), allocatable :: grown
    integer :: capacity, stat
    if (builder%failed) return
    if (.not. allocated(builder%text)) then
      capacity = max(4096, 2 * len(text))
      allocate(character(len=capacity) :: builder%text, stat=stat)
      if (stat /= 0) then
        builder%failed = .true.
        builder%wanted = capacity
        return
      end if
    end if
    if (builder%length + len(text) > len(builder%text)) then
      capacity = max(2 * len(builder%text), builder%length + len(text))
      allocate(character(len=capacity) :: grown, stat=stat)
      if (stat /= 0) then
        builder%failed = .true.
        builder%wanted = capacity
        return
      end if
      grown(1:builder%length) = builder%text(1:builder%length)
      call move_alloc(grown, builder%text)
    end if
    builder%text(builder%length + 1:builder%length + len(text)) = text
    builder%length = builder%length + len(text)
  end subroutine add

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

  pure subroutine next_token(line, start, first, last)
    !! The next space-separated token at or after `start`: `line(first:last)`,
    !! `first = 0` when there is none.
    character(len=*), intent(in) :: line
    integer, intent(in) :: start
    integer, intent(out) :: first, last
    integer :: i
    first = 0
    last = 0
    do i = start, len(line)
      if (line(i:i) /= ' ') then
        first = i
        exit
      end if
    end do
    if (first == 0) return
    last = len(line)
    do i = first + 1, len(line)
      if (line(i:i) == ' ') then
        last = i - 1
        exit
      end if
    end do
  end subroutine next_token

  pure subroutine split_tokens(line, first, last, n, stat)
    !! All space-separated tokens of a line; `stat` is `fkb_err_memory` if
    !! their index cannot be allocated.
    character(len=*), intent(in) :: line
    integer, allocatable, intent(out) :: first(:), last(:)
    integer, intent(out) :: n
    integer, intent(out) :: stat
    integer :: pos, f, l
    n = 0
    pos = 1
    do
      call next_token(line, pos, f, l)
      if (f == 0) exit
      n = n + 1
      pos = l + 1
    end do
    allocate(first(n), last(n), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      return
    end if
    n = 0
    pos = 1
    do
      call next_token(line, pos, f, l)
      if (f == 0) exit
      n = n + 1
      first(n) = f
      last(n) = l
      pos = l + 1
    end do
  end subroutine split_tokens

  pure function keyword(line) result(word)
    !! The first token of a line, '' if none.
    character(len=*), intent(in) :: line
    character(len=:), allocatable :: word
    integer :: f, l
    call next_token(line, 1, f, l)
    if (f == 0) then
      word = ''
    else
      word = line(f:l)
    end if
  end function keyword

  pure subroutine parse_int(text, value, stat)
    !! A decimal integer with an optional sign, nothing else.
    character(len=*), intent(in) :: text
    integer, intent(out) :: value
    integer, intent(out) :: stat
    integer(int64) :: v
    integer :: i, start
    logical :: negative
    value = 0
    stat = fkb_err_format
    if (len(text) == 0) return
    negative = text(1:1) == '-'
    start = 1
    if (text(1:1) == '-' .or. text(1:1) == '+') start = 2
    if (start > len(text) .or. len(text) - start + 1 > 10) return
    v = 0
    do i = start, len(text)
      if (text(i:i) < '0' .or. text(i:i) > '9') return
      v = 10 * v + (iachar(text(i:i)) - iachar('0'))
    end do
    if (v > huge(0_int32)) return
    value = int(v)
    if (negative) value = -value
    stat = fkb_ok
  end subroutine parse_int

  pure subroutine parse_int_list(text, values, stat)
    !! Comma-separated integers, e.g. `1,2`.
    character(len=*), intent(in) :: text
    integer, allocatable, intent(out) :: values(:)
    integer, intent(out) :: stat
    integer :: n, i, start, comma
    n = 1
    do i = 1, len(text)
      if (text(i:i) == ',') n = n + 1
    end do
    allocate(values(n), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      return
    end if
    start = 1
    do i = 1, n
      comma = index(text(start:), ',')
      if (comma == 0) then
        comma = len(text) + 1
      else
        comma = start + comma - 1
      end if
      call parse_int(text(start:comma - 1), values(i), stat)
      if (stat /= fkb_ok) return
      start = comma + 1
    end do
  end subroutine parse_int_list

  pure subroutine check_fixed_line(line, word, value, ok)
    !! Whether `line` is exactly `<word> <integer>`.
    character(len=*), intent(in) :: line, word
    integer, intent(out) :: value
    logical, intent(out) :: ok
    integer :: first(3), last(3), stat
    value = 0
    call next_token(line, 1, first(1), last(1))
    ok = first(1) > 0
    if (.not. ok) return
    call next_token(line, last(1) + 1, first(2), last(2))
    ok = first(2) > 0
    if (.not. ok) return
    call next_token(line, last(2) + 1, first(3), last(3))
    ok = first(3) == 0 .and. line(first(1):last(1)) == word
    if (.not. ok) return
    call parse_int(line(first(2):last(2)), value, stat)
    ok = stat == fkb_ok
  end subroutine check_fixed_line

  pure logical function is_sha256_line(line)
    !! Whether `line` is exactly `sha256 <64 lowercase hex digits>`.
    character(len=*), intent(in) :: line
    integer :: i
    is_sha256_line = .false.
    if (len(line) /= 7 + 64) return
    if (line(1:7) /= 'sha256 ') return
    do i = 8, len(line)
      if (index('0123456789abcdef', line(i:i)) == 0) return
    end do
    is_sha256_line = .true.
  end function is_sha256_line

  pure logical function is_integer_line(line)
    !! Whether `line` holds a single integer (blanks and a carriage return
    !! around it allowed), the first line of an original FKB file.
    character(len=*), intent(in) :: line
    integer :: first, last, i, stat, value
    first = 0
    last = 0
    do i = 1, len(line)
      if (line(i:i) /= ' ' .and. line(i:i) /= achar(9) .and. line(i:i) /= achar(13)) then
        if (first == 0) first = i
        last = i
      end if
    end do
    is_integer_line = .false.
    if (first == 0) return
    do i = first, last
      if (line(i:i) == ' ' .or. line(i:i) == achar(9)) return
    end do
    call parse_int(line(first:last), value, stat)
    is_integer_line = stat == fkb_ok
  end function is_integer_line

  pure logical function is_token(text)
    !! Non-empty, no blanks and no control characters.
    character(len=*), intent(in) :: text
    integer :: i
    is_token = len(text) > 0
    do i = 1, len(text)
      if (iachar(text(i:i)) <= 32 .or. iachar(text(i:i)) == 127) is_token = .false.
    end do
  end function is_token

  pure logical function is_text(text)
    !! No control characters (text may hold blanks).
    character(len=*), intent(in) :: text
    integer :: i
    is_text = .true.
    do i = 1, len(text)
      if (iachar(text(i:i)) < 32 .or. iachar(text(i:i)) == 127) is_text = .false.
    end do
  end function is_text

  pure function units_text(io) result(units)
    !! Units as written: trimmed, `1` when there are none.
    type(io_spec), intent(in) :: io
    character(len=:), allocatable :: units
    units = ''
    if (allocated(io%units)) units = trim(adjustl(io%units))
    if (len(units) == 0) units = '1'
  end function units_text

  pure function shape_text(tensor) result(text)
    !! `d1` or `d1 d2`, as on a param line.
    type(tensor_spec), intent(in) :: tensor
    character(len=:), allocatable :: text
    text = int_to_str(tensor%shape(1))
    if (tensor%rank == 2) text = text // ' ' // int_to_str(tensor%shape(2))
  end function shape_text

end module fkb_model_file
