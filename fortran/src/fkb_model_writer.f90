module fkb_model_writer
  !! Writing a model file (docs/model-file.md): the newest format version
  !! the spec needs (1 plain, 2 with a training section, 3 with input
  !! statistics), its header text, the little-endian payload and the
  !! content hash, replacing the file atomically.
  use iso_fortran_env, only: real32, real64, int8, int32, int64
  use iso_c_binding, only: c_char, c_int, c_null_char
  use fkb_spec, only: model_spec, tensor_spec, io_spec, attribute_spec
  use fkb_status, only: fkb_ok, fkb_err_io, fkb_err_memory, allocation_failure
  use fkb_sha256, only: sha256_hex
  use fkb_spec_build, only: int_to_str, real64_repr
  use fkb_model_tokens, only: newline, statistics_params, little_endian, byte_swapped, units_text, &
                              shape_text
  use fkb_model_validation, only: check_spec
  implicit none
  private
  public :: write_model_file

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

end module fkb_model_writer
