module fkb_model_validation
  !! The checks of a model spec shared by the reader and the writer
  !! (`check_spec`), and what a header must hold once read whole
  !! (`check_header_complete`). Everything that needs no knowledge of the
  !! layer kinds: layer ids in order, inputs that refer to earlier layers,
  !! io names and units, normalization and statistics shapes, finite
  !! weights, a consistent training section. Which params and attributes a
  !! layer kind needs is left to the network builders.
  use iso_fortran_env, only: real32, real64, int64
  use fkb_spec, only: model_spec, tensor_spec, io_spec, attribute_spec, statistics_spec
  use fkb_status, only: fkb_ok, fkb_err_format, fkb_err_shape, fkb_err_nonfinite, fkb_err_argument
  use fkb_spec_build, only: first_nonfinite, int_to_str
  use fkb_model_tokens, only: fkb_format_version, statistics_params, is_token, is_text, shape_text
  implicit none
  private
  public :: check_spec, check_header_complete

contains

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

end module fkb_model_validation
