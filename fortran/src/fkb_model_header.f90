module fkb_model_header
  !! The header lines of a model file (docs/model-file.md), one at a time:
  !! `parse_line` splits a line into its tokens and hands it to the routine
  !! of its keyword (`name`, `n_inputs`, `input`, `input_normalization`,
  !! `input_statistics`, `layer`, `param`, `training`, `optimizer`,
  !! `generator`, ...), which checks it and fills the spec. The reader keeps
  !! the current layer and section, and a `payload_entry` per `param` line:
  !! where that tensor of the payload goes.
  use iso_fortran_env, only: real32, real64, int32, int64
  use fkb_spec, only: model_spec, tensor_spec, io_spec, training_tensor, attribute_spec
  use fkb_status, only: fkb_ok, fkb_err_format, fkb_err_shape, fkb_err_memory, allocation_failure
  use fkb_spec_build, only: attribute, int_to_str
  use fkb_spec_query, only: parse_real
  use fkb_model_tokens, only: statistics_params, split_tokens, parse_int, parse_int_list, &
                              parse_key_values, shape_text
  implicit none
  private
  public :: payload_entry, parse_line
  public :: section_none, section_input_norm, section_output_norm, section_layer, &
            section_training, section_statistics

  integer, parameter :: section_none = 0, section_input_norm = 1, section_output_norm = 2, &
                        section_layer = 3, section_training = 4, section_statistics = 5
    !! the section a `param` line belongs to

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

  type :: header_line
    !! One header line and its space-separated tokens.
    character(len=:), allocatable :: text
    integer, allocatable :: first(:), last(:)
      !! token `i` is `text(first(i):last(i))`
    integer :: n_tokens = 0
  contains
    procedure :: token => header_line_token
    procedure :: rest => header_line_rest
  end type header_line

contains

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
    type(header_line) :: ln
    character(len=:), allocatable :: word
    integer :: i

    stat = fkb_ok
    problem = ''
    do i = 1, len(line)
      if (iachar(line(i:i)) < 32 .or. iachar(line(i:i)) == 127) then
        call refuse(stat, problem, fkb_err_format, 'control character in the header')
        return
      end if
    end do
    ln%text = line
    call split_tokens(line, ln%first, ln%last, ln%n_tokens, stat)
    if (stat /= fkb_ok) then
      call refuse(stat, problem, fkb_err_memory, allocation_failure('the token index of a header line', &
                                                                    int(len(line), int64), 8))
      return
    end if
    if (ln%n_tokens == 0) then
      call refuse(stat, problem, fkb_err_format, 'empty line')
      return
    end if
    word = ln%token(1)
    if (spec%training%present) then
      ! the training section is last: only its own lines follow it
      select case (word)
      case ('optimizer', 'schedule', 'generator', 'param')
      case default
        call refuse(stat, problem, fkb_err_format, '''' // word // ''' line after the training ' // &
                    'section (the training section must come last)')
        return
      end select
    else if (word /= 'param') then
      section = section_none
    end if

    select case (word)
    case ('name')
      call parse_name_line(ln, spec, stat, problem)
    case ('n_inputs')
      call parse_count_line(ln, spec%n_inputs, stat, problem)
    case ('n_outputs')
      call parse_count_line(ln, spec%n_outputs, stat, problem)
    case ('input')
      call parse_io_line(ln, spec%n_inputs, io_lines(1), spec%inputs, stat, problem)
    case ('output')
      call parse_io_line(ln, spec%n_outputs, io_lines(2), spec%outputs, stat, problem)
    case ('input_normalization')
      call parse_normalization_line(ln, spec%n_inputs, spec%has_input_normalization, stat, problem)
      section = section_input_norm
    case ('output_normalization')
      call parse_normalization_line(ln, spec%n_outputs, spec%has_output_normalization, stat, problem)
      section = section_output_norm
    case ('input_statistics')
      call parse_statistics_line(ln, spec, layer, stat, problem)
      section = section_statistics
    case ('layer')
      layer = layer + 1
      section = section_layer
      call parse_layer_line(ln, spec, layer, stat, problem)
    case ('param')
      call parse_param_line(ln, spec, layer, section, entries, n_entries, param_count, stat, problem)
    case ('training')
      call parse_training_line(ln, spec, layer, stat, problem)
      section = section_training
    case ('optimizer', 'schedule')
      call parse_optimizer_line(ln, spec, stat, problem)
    case ('generator')
      call parse_generator_line(ln, spec, stat, problem)
    case default
      call refuse(stat, problem, fkb_err_format, 'unknown header line ''' // word // '''')
    end select
  end subroutine parse_line

  subroutine refuse(stat, problem, code, text)
    !! The line is refused with status `code` and the reason `text`.
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer, intent(in) :: code
    character(len=*), intent(in) :: text
    stat = code
    problem = text
  end subroutine refuse

  pure function header_line_token(self, i) result(token)
    !! Token `i` of the line.
    class(header_line), intent(in) :: self
    integer, intent(in) :: i
    character(len=:), allocatable :: token
    token = self%text(self%first(i):self%last(i))
  end function header_line_token

  pure function header_line_rest(self, i) result(rest)
    !! The line from token `i` on, trailing blanks dropped.
    class(header_line), intent(in) :: self
    integer, intent(in) :: i
    character(len=:), allocatable :: rest
    rest = self%text(self%first(i):len_trim(self%text))
  end function header_line_rest

  subroutine parse_name_line(ln, spec, stat, problem)
    !! `name [<text>]`, once; the name is the rest of the line.
    type(header_line), intent(in) :: ln
    type(model_spec), intent(inout) :: spec
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    if (allocated(spec%name)) then
      call refuse(stat, problem, fkb_err_format, 'a second name line')
    else if (ln%n_tokens == 1) then
      spec%name = ''
    else
      spec%name = ln%rest(2)
    end if
  end subroutine parse_name_line

  subroutine parse_count_line(ln, n_io, stat, problem)
    !! `n_inputs <n>` or `n_outputs <n>`: a positive integer, given once.
    type(header_line), intent(in) :: ln
    integer, intent(inout) :: n_io
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: value
    if (ln%n_tokens /= 2) then
      call refuse(stat, problem, fkb_err_format, 'expected ''' // ln%token(1) // ' <n>''')
      return
    end if
    call parse_int(ln%token(2), value, stat)
    if (stat /= fkb_ok .or. value < 1) then
      call refuse(stat, problem, fkb_err_format, ln%token(1) // ' is not a positive integer')
    else
      call set_count(ln, value, n_io, stat, problem)
    end if
  end subroutine parse_count_line

  subroutine set_count(ln, value, n_io, stat, problem)
    !! `n_inputs <n>` or `n_outputs <n>`, given once.
    type(header_line), intent(in) :: ln
    integer, intent(in) :: value
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer, intent(inout) :: n_io
    if (n_io /= 0) call refuse(stat, problem, fkb_err_format, 'a second ' // ln%token(1) // ' line')
    n_io = value
  end subroutine set_count

  subroutine parse_io_line(ln, n_io, n_lines, io, stat, problem)
    !! `input <i> <name> <units>`; units are the rest of the line. Every
    !! index needs its line, so `n_io` (allocated here) is at most the
    !! `n_lines` the header has of them.
    type(header_line), intent(in) :: ln
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    character(len=:), allocatable :: word
    integer, intent(in) :: n_io, n_lines
    type(io_spec), allocatable, intent(inout) :: io(:)
    integer :: index, alloc_stat
    word = ln%token(1)
    if (n_io == 0) then
      call refuse(stat, problem, fkb_err_format, word // ' line before n_' // word // 's')
      return
    end if
    if (ln%n_tokens < 4) then   ! units are required (the Python reader agrees)
      call refuse(stat, problem, fkb_err_format, 'expected ''' // word // ' <i> <name> <units>''')
      return
    end if
    call parse_int(ln%token(2), index, stat)
    if (stat /= fkb_ok .or. index < 1 .or. index > n_io) then
      call refuse(stat, problem, fkb_err_format, word // ' index ''' // ln%token(2) // &
               ''' is not in 1..' // int_to_str(n_io))
      return
    end if
    if (n_lines < n_io) then   ! as the Python reader says it
      call refuse(stat, problem, fkb_err_format, word // ' lines given for ' // int_to_str(n_lines) // ' of the ' // &
               int_to_str(n_io) // ' ' // word // 's (all or none)')
      return
    end if
    if (.not. allocated(io)) then
      allocate(io(n_io), stat=alloc_stat)
      if (alloc_stat /= 0) then
        call refuse(stat, problem, fkb_err_memory, allocation_failure(int_to_str(n_io) // ' ' // word // ' names', &
                                                    int(n_io, int64), 64))
        return
      end if
    end if
    if (allocated(io(index)%name)) then
      call refuse(stat, problem, fkb_err_format, 'a second ' // word // ' line for index ' // int_to_str(index))
      return
    end if
    io(index)%name = ln%token(3)
    io(index)%units = ln%rest(4)
  end subroutine parse_io_line

  subroutine parse_normalization_line(ln, n_io, has_normalization, stat, problem)
    !! `input_normalization` or `output_normalization`, alone on its line;
    !! its `offset` and `scale` params follow.
    type(header_line), intent(in) :: ln
    integer, intent(in) :: n_io
    logical, intent(inout) :: has_normalization
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    if (ln%n_tokens /= 1) then
      call refuse(stat, problem, fkb_err_format, 'expected ''' // ln%token(1) // ''' alone')
    else
      call start_normalization(ln, n_io, has_normalization, stat, problem)
    end if
  end subroutine parse_normalization_line

  subroutine start_normalization(ln, n_io, has_normalization, stat, problem)
    !! `input_normalization` or `output_normalization`, once and after
    !! the width it normalizes.
    type(header_line), intent(in) :: ln
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    character(len=:), allocatable :: word
    integer, intent(in) :: n_io
    logical, intent(inout) :: has_normalization
    character(len=:), allocatable :: io_word
    word = ln%token(1)
    io_word = word(1:index(word, '_') - 1)
    if (n_io == 0) then
      call refuse(stat, problem, fkb_err_format, word // ' before n_' // io_word // 's')
    else if (has_normalization) then
      call refuse(stat, problem, fkb_err_format, 'a second ' // word // ' section')
    end if
    has_normalization = .true.
  end subroutine start_normalization

  subroutine parse_statistics_line(ln, spec, layer, stat, problem)
    !! `input_statistics samples=<n> rank=<k> residual_variance=<r>
    !! distance_q999=<d>`, once, before the layers, in format version 3.
    type(header_line), intent(in) :: ln
    type(model_spec), intent(inout) :: spec
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer, intent(in) :: layer
      !! layers read so far
    integer :: value
    type(attribute_spec), allocatable :: attributes(:)
    integer :: k, found
    real(real64) :: number
    if (spec%version < 3) then
      call refuse(stat, problem, fkb_err_format, 'an input_statistics section needs format version 3 (the file says ' // &
               int_to_str(spec%version) // ')')
      return
    end if
    if (spec%statistics%present) then
      call refuse(stat, problem, fkb_err_format, 'a second input_statistics section')
      return
    end if
    if (layer > 0) then
      call refuse(stat, problem, fkb_err_format, 'the input_statistics section comes before the layers')
      return
    end if
    if (spec%n_inputs == 0) then
      call refuse(stat, problem, fkb_err_format, 'input_statistics before n_inputs')
      return
    end if
    call parse_key_values(ln%text, ln%first, ln%last, 2, attributes, stat, problem)
    if (stat /= fkb_ok) return
    found = 0
    do k = 1, size(attributes)
      select case (attributes(k)%key)
      case ('samples', 'rank')
        call parse_int(attributes(k)%value, value, stat)
        if (stat /= fkb_ok .or. value < 0 .or. (attributes(k)%key == 'samples' .and. value < 1) &
            .or. (attributes(k)%key == 'rank' .and. value > spec%n_inputs)) then
          call refuse(stat, problem, fkb_err_format, 'input_statistics ' // attributes(k)%key // '=' // &
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
          call refuse(stat, problem, fkb_err_format, 'input_statistics ' // attributes(k)%key // '=' // &
                   attributes(k)%value // ' is not a positive number')
          return
        end if
        if (attributes(k)%key == 'residual_variance') then
          spec%statistics%residual_variance = number
        else
          spec%statistics%distance_q999 = number
        end if
      case default
        call refuse(stat, problem, fkb_err_format, 'input_statistics has no attribute ' // attributes(k)%key)
        return
      end select
      found = found + 1
    end do
    if (found /= 4) then
      call refuse(stat, problem, fkb_err_format, 'the input_statistics line needs samples, rank, residual_variance ' // &
               'and distance_q999')
      return
    end if
    spec%statistics%present = .true.
  end subroutine parse_statistics_line

  subroutine parse_layer_line(ln, spec, layer, stat, problem)
    !! `layer <id> <type> <n_out> inputs=<ids> [key=value ...]`
    type(header_line), intent(in) :: ln
    type(model_spec), intent(inout) :: spec
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer, intent(in) :: layer
      !! the number of this layer line
    integer :: id, n_out, t, eq, n_attributes, k
    logical :: has_inputs
    if (ln%n_tokens < 5) then
      call refuse(stat, problem, fkb_err_format, 'expected ''layer <id> <type> <n_out> inputs=<ids> [key=value ...]''')
      return
    end if
    call parse_int(ln%token(2), id, stat)
    if (stat /= fkb_ok .or. id /= layer) then
      call refuse(stat, problem, fkb_err_format, 'layer id ''' // ln%token(2) // ''' out of order (expected ' // &
               int_to_str(layer) // ')')
      return
    end if
    call parse_int(ln%token(4), n_out, stat)
    if (stat /= fkb_ok .or. n_out < 1) then
      call refuse(stat, problem, fkb_err_format, 'layer ' // int_to_str(id) // ': n_out ''' // ln%token(4) // &
               ''' is not a positive integer')
      return
    end if
    associate (this => spec%layers(layer))
      this%kind = ln%token(3)
      this%n_out = n_out
      n_attributes = ln%n_tokens - 5
      allocate(this%attributes(n_attributes), stat=stat)
      if (stat /= 0) then
        call refuse(stat, problem, fkb_err_memory, 'layer ' // int_to_str(id) // ': ' // &
                 allocation_failure('its attributes', int(n_attributes, int64), 64))
        return
      end if
      has_inputs = .false.
      k = 0
      do t = 5, ln%n_tokens
        eq = index(ln%token(t), '=')
        if (eq <= 1 .or. ln%first(t) + eq - 1 == ln%last(t)) then
          call refuse(stat, problem, fkb_err_format, 'layer ' // int_to_str(id) // ': malformed attribute ''' // &
                   ln%token(t) // ''' (expected key=value)')
          return
        end if
        eq = ln%first(t) + eq - 1
        if (ln%text(ln%first(t):eq - 1) == 'inputs') then
          if (has_inputs) then
            call refuse(stat, problem, fkb_err_format, 'layer ' // int_to_str(id) // ': a second inputs=')
            return
          end if
          has_inputs = .true.
          call parse_int_list(ln%text(eq + 1:ln%last(t)), this%inputs, stat)
          if (stat == fkb_err_memory) then
            call refuse(stat, problem, stat, 'layer ' // int_to_str(id) // ': ' // &
                     allocation_failure('its list of inputs', int(len(ln%text), int64), 4))
            return
          else if (stat /= fkb_ok) then
            call refuse(stat, problem, fkb_err_format, 'layer ' // int_to_str(id) // ': malformed ''' // &
                     ln%token(t) // '''')
            return
          end if
        else
          if (k == n_attributes) exit
          k = k + 1
          this%attributes(k) = attribute(ln%text(ln%first(t):eq - 1), ln%text(eq + 1:ln%last(t)))
        end if
      end do
      if (.not. has_inputs) then
        call refuse(stat, problem, fkb_err_format, 'layer ' // int_to_str(id) // ': no inputs=')
        return
      end if
    end associate
  end subroutine parse_layer_line

  subroutine parse_param_line(ln, spec, layer, section, entries, n_entries, param_count, stat, problem)
    !! `param <name> <d1> [<d2>]`, a tensor of the current section.
    type(header_line), intent(in) :: ln
    type(model_spec), intent(inout) :: spec
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer, intent(in) :: layer, section
      !! the current layer and section
    type(payload_entry), intent(inout) :: entries(:)
    integer, intent(inout) :: n_entries
    integer, intent(in) :: param_count(:)
    type(tensor_spec) :: tensor
    integer :: d
    integer(int64) :: count
    if (section == section_none) then
      call refuse(stat, problem, fkb_err_format, 'param outside a layer or normalization section')
      return
    end if
    if (ln%n_tokens < 3 .or. ln%n_tokens > 4) then
      call refuse(stat, problem, fkb_err_format, 'expected ''param <name> <d1> [<d2>]''')
      return
    end if
    tensor%name = ln%token(2)
    tensor%rank = ln%n_tokens - 2
    tensor%shape = [0, 1]
    count = 1
    do d = 1, tensor%rank
      call parse_int(ln%token(d + 2), tensor%shape(d), stat)
      if (stat /= fkb_ok .or. tensor%shape(d) < 1) then
        call refuse(stat, problem, fkb_err_format, 'param ' // tensor%name // ': dimension ''' // &
                 ln%token(d + 2) // ''' is not a positive integer')
        return
      end if
      count = count * tensor%shape(d)
    end do
    if (count > huge(0_int32)) then
      call refuse(stat, problem, fkb_err_format, 'param ' // tensor%name // ': too many values')
      return
    end if

    n_entries = n_entries + 1
    entries(n_entries)%section = section
    entries(n_entries)%count = int(count)
    if (section == section_training) entries(n_entries)%bytes = spec%training%precision / 8
    select case (section)
    case (section_training)
      call add_training_param(tensor, spec, entries(n_entries), stat, problem)
    case (section_statistics)
      call add_statistics_param(tensor, spec, entries(1:n_entries - 1), entries(n_entries), stat, problem)
    case (section_input_norm, section_output_norm)
      call add_normalization_param(tensor, count, spec, entries(1:n_entries - 1), entries(n_entries), &
                                   stat, problem)
    case (section_layer)
      call add_layer_param(tensor, layer, param_count(layer), spec%layers(layer)%params, &
                           entries(n_entries), stat, problem)
    end select
  end subroutine parse_param_line

  subroutine add_training_param(tensor, spec, entry, stat, problem)
    !! A `param` of the training section: a new tensor of its name.
    type(tensor_spec), intent(in) :: tensor
    type(model_spec), intent(inout) :: spec
    type(payload_entry), intent(inout) :: entry
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: k
    type(training_tensor) :: added
    associate (tensors => spec%training%tensors)
      do k = 1, size(tensors)
        if (tensors(k)%name == tensor%name) then
          call refuse(stat, problem, fkb_err_format, 'training: a second param ' // tensor%name)
          return
        end if
      end do
    end associate
    added%name = tensor%name
    added%rank = tensor%rank
    added%shape = tensor%shape
    spec%training%tensors = [spec%training%tensors, added]
    entry%param = size(spec%training%tensors)
  end subroutine add_training_param

  subroutine add_statistics_param(tensor, spec, earlier, entry, stat, problem)
    !! A `param` of the input_statistics section: one of `statistics_params`,
    !! once, of the shape the inputs and the rank give.
    type(tensor_spec), intent(in) :: tensor
    type(model_spec), intent(in) :: spec
    type(payload_entry), intent(in) :: earlier(:)
      !! the entries of the params before this one
    type(payload_entry), intent(inout) :: entry
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: k
    integer :: n_expected(2)
    do k = size(statistics_params), 1, -1
      if (trim(statistics_params(k)) == tensor%name) exit
    end do
    if (k == 0) then
      call refuse(stat, problem, fkb_err_format, 'input_statistics has no param ''' // tensor%name // '''')
      return
    end if
    if (any(earlier%section == entry%section .and. earlier%param == k)) then
      call refuse(stat, problem, fkb_err_format, 'input_statistics: a second param ' // tensor%name)
      return
    end if
    select case (k)
    case (5); n_expected = [spec%n_inputs, spec%statistics%rank]
    case (6); n_expected = [spec%statistics%rank, 1]
    case default; n_expected = [spec%n_inputs, 1]
    end select
    if (any(tensor%shape /= n_expected) .or. (k == 5 .and. tensor%rank /= 2) &
        .or. (k /= 5 .and. tensor%rank /= 1)) then
      call refuse(stat, problem, fkb_err_shape, 'input_statistics param ' // tensor%name // ' has shape ' // &
               shape_text(tensor) // ', expected ' // int_to_str(n_expected(1)) // ' x ' // &
               int_to_str(n_expected(2)))
      return
    end if
    entry%param = k
  end subroutine add_statistics_param

  subroutine add_normalization_param(tensor, count, spec, earlier, entry, stat, problem)
    !! A `param` of an input or output normalization section: `offset` or
    !! `scale`, once, one value per input or output.
    type(tensor_spec), intent(in) :: tensor
    integer(int64), intent(in) :: count
      !! its number of values
    type(model_spec), intent(in) :: spec
    type(payload_entry), intent(in) :: earlier(:)
      !! the entries of the params before this one
    type(payload_entry), intent(inout) :: entry
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: k
    character(len=:), allocatable :: what
    logical :: seen
    integer :: n_expected
    if (entry%section == section_input_norm) then
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
      call refuse(stat, problem, fkb_err_format, what // ' has no param ''' // tensor%name // &
               ''' (expected offset and scale)')
      return
    end select
    ! entries before this one tell whether the name came already
    seen = any(earlier%section == entry%section .and. earlier%param == k)
    if (seen) then
      call refuse(stat, problem, fkb_err_format, what // ': a second param ' // tensor%name)
      return
    end if
    if (count /= n_expected .or. tensor%shape(2) /= 1) then
      call refuse(stat, problem, fkb_err_shape, what // ' param ' // tensor%name // ' has shape ' // &
               shape_text(tensor) // ', expected ' // int_to_str(n_expected))
      return
    end if
    entry%param = k
  end subroutine add_normalization_param

  subroutine add_layer_param(tensor, layer, n_counted, params, entry, stat, problem)
    !! A `param` of layer `layer`: a new name, within the `n_counted` params
    !! the reader counted for it.
    type(tensor_spec), intent(in) :: tensor
    integer, intent(in) :: layer, n_counted
    type(tensor_spec), intent(inout) :: params(:)
    type(payload_entry), intent(inout) :: entry
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: k
    do k = 1, size(params)
      if (.not. allocated(params(k)%name)) exit
      if (params(k)%name == tensor%name) then
        call refuse(stat, problem, fkb_err_format, 'layer ' // int_to_str(layer) // ': a second param ' // &
                    tensor%name)
        return
      end if
    end do
    if (k > n_counted) then
      call refuse(stat, problem, fkb_err_format, 'layer ' // int_to_str(layer) // ': more params than counted')
      return
    end if
    params(k) = tensor
    entry%layer = layer
    entry%param = k
  end subroutine add_layer_param

  subroutine parse_training_line(ln, spec, layer, stat, problem)
    !! `training precision=<32|64> [key=value ...]`: the training section
    !! starts, after the layers, in format version 2 or later.
    type(header_line), intent(in) :: ln
    type(model_spec), intent(inout) :: spec
    integer, intent(in) :: layer
      !! layers read so far
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    if (spec%version < 2) then
      call refuse(stat, problem, fkb_err_format, 'a training section needs format version 2 (the file says 1)')
      return
    end if
    if (layer == 0) then
      call refuse(stat, problem, fkb_err_format, 'the training section comes after the layers')
      return
    end if
    call parse_key_values(ln%text, ln%first, ln%last, 2, spec%training%attributes, stat, problem)
    if (stat /= fkb_ok) return
    allocate (spec%training%generator_ids(0), spec%training%generator_states(0), stat=stat)
    if (stat == 0) allocate (spec%training%tensors(0), stat=stat)
    if (stat /= 0) then
      call refuse(stat, problem, fkb_err_memory, &
                  'out of memory: cannot allocate the empty lists of the training section')
      return
    end if
    call parse_precision(spec, stat, problem)
    spec%training%present = .true.
    spec%training%schedule = ''
  end subroutine parse_training_line

  subroutine parse_optimizer_line(ln, spec, stat, problem)
    !! `optimizer <kind> [key=value ...]` or `schedule <kind> [key=value
    !! ...]`, each at most once in the training section.
    type(header_line), intent(in) :: ln
    type(model_spec), intent(inout) :: spec
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    character(len=:), allocatable :: word
    word = ln%token(1)
    if (.not. spec%training%present) then
      call refuse(stat, problem, fkb_err_format, word // ' line outside a training section')
      return
    end if
    if (ln%n_tokens < 2) then
      call refuse(stat, problem, fkb_err_format, 'expected ''' // word // ' <kind> [key=value ...]''')
      return
    end if
    if (word == 'optimizer') then
      if (allocated(spec%training%optimizer)) then
        call refuse(stat, problem, fkb_err_format, 'a second optimizer line')
        return
      end if
      spec%training%optimizer = ln%token(2)
      call parse_key_values(ln%text, ln%first, ln%last, 3, spec%training%optimizer_attributes, stat, &
                            problem)
    else
      if (len(spec%training%schedule) > 0) then
        call refuse(stat, problem, fkb_err_format, 'a second schedule line')
        return
      end if
      spec%training%schedule = ln%token(2)
      call parse_key_values(ln%text, ln%first, ln%last, 3, spec%training%schedule_attributes, stat, &
                            problem)
    end if
  end subroutine parse_optimizer_line

  subroutine parse_precision(spec, stat, problem)
    !! The `precision` attribute of the training line: 32 or 64.
    type(model_spec), intent(inout) :: spec
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: k, bits
    do k = 1, size(spec%training%attributes)
      if (spec%training%attributes(k)%key /= 'precision') cycle
      call parse_int(spec%training%attributes(k)%value, bits, stat)
      if (stat /= fkb_ok .or. (bits /= 32 .and. bits /= 64)) then
        call refuse(stat, problem, fkb_err_format, 'training precision=' // spec%training%attributes(k)%value // &
                 ' (expected 32 or 64)')
        return
      end if
      spec%training%precision = bits
      return
    end do
    call refuse(stat, problem, fkb_err_format, 'the training line has no precision=32 or precision=64')
  end subroutine parse_precision

  subroutine parse_generator_line(ln, spec, stat, problem)
    !! `generator <node id> <state>`: a random generator's state, 0 the
    !! shuffling of `fit`, else the layer's own.
    type(header_line), intent(in) :: ln
    type(model_spec), intent(inout) :: spec
    integer, intent(inout) :: stat
    character(len=:), allocatable, intent(inout) :: problem
    integer :: id, state
    if (.not. spec%training%present) then
      call refuse(stat, problem, fkb_err_format, 'generator line outside a training section')
      return
    end if
    if (ln%n_tokens /= 3) then
      call refuse(stat, problem, fkb_err_format, 'expected ''generator <id> <state>''')
      return
    end if
    call parse_int(ln%token(2), id, stat)
    if (stat /= fkb_ok .or. id < 0 .or. id > size(spec%layers)) then
      call refuse(stat, problem, fkb_err_format, 'generator id ''' // ln%token(2) // ''' is not in 0..' // &
               int_to_str(size(spec%layers)))
      return
    end if
    call parse_int(ln%token(3), state, stat)
    if (stat /= fkb_ok .or. state < 1 .or. state > 2147483646) then
      call refuse(stat, problem, fkb_err_format, 'generator ' // int_to_str(id) // ': state ''' // &
               ln%token(3) // ''' is not in 1..2147483646')
      return
    end if
    if (any(spec%training%generator_ids == id)) then
      call refuse(stat, problem, fkb_err_format, 'a second generator line for id ' // int_to_str(id))
      return
    end if
    spec%training%generator_ids = [spec%training%generator_ids, id]
    spec%training%generator_states = [spec%training%generator_states, state]
  end subroutine parse_generator_line

end module fkb_model_header
