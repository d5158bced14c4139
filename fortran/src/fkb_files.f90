module fkb_files
  !! What the readers check about a path before they open it: that it names a
  !! regular file (not a directory, a FIFO, whose `open` would wait for a
  !! writer for ever, or a device such as /dev/zero, which never ends), and
  !! the largest model file they read (docs/model-file.md, "Limits"). The
  !! kind of a path comes from POSIX `stat` (`fkb_path_kind.c`).
  use iso_c_binding, only: c_char, c_int, c_null_char
  use iso_fortran_env, only: int64
  implicit none
  private
  public :: regular_file_problem, max_model_file_bytes, max_model_values, max_model_width, &
            width_problem, values_problem

  integer(int64), parameter :: max_model_file_bytes = 2_int64**31
    !! 2 GiB: a model file larger than this is refused before anything is
    !! allocated (a float32 network of 500 million weights)
  integer(int64), parameter :: max_model_values = max_model_file_bytes / 4
    !! the most weights a model may have, what the largest model file holds
    !! in float32; an original FKB text file (whose repeat counts declare many
    !! values in a few bytes) is held to it before its tensors are allocated
  integer(int64), parameter :: max_model_width = 2_int64**22
    !! the most features `n_inputs` and the widths of all layers may add up
    !! to: a column's workspace (16 MiB in float32) and the names the network
    !! gives its inputs and outputs. A layer without weights costs nothing in
    !! the file, so its width is bounded here.

  interface
    function c_path_kind(path) result(kind) bind(c, name='fkb_path_kind')
      import :: c_char, c_int
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: kind
    end function c_path_kind
  end interface

contains

  function width_problem(n_inputs, widths) result(problem)
    !! Empty if `n_inputs` and the layers' `widths` add up to at most
    !! `max_model_width`; else the message both readers give (the Python
    !! reader's `_check_total_width`).
    integer, intent(in) :: n_inputs, widths(:)
    character(len=:), allocatable :: problem
    integer(int64) :: total
    character(len=20) :: text, limit
    total = int(n_inputs, int64) + sum(int(widths, int64))
    problem = ''
    if (total <= max_model_width) return
    write (text, '(i0)') total
    write (limit, '(i0)') max_model_width
    problem = 'n_inputs and the layers'' widths add up to ' // trim(text) // ', more than the ' // &
              trim(limit) // ' a model may have'
  end function width_problem

  function values_problem(total) result(problem)
    !! Empty if a model's `total` weights are at most `max_model_values`;
    !! else the message both readers give (`_check_total_values`).
    integer(int64), intent(in) :: total
    character(len=:), allocatable :: problem
    character(len=20) :: text, limit
    problem = ''
    if (total <= max_model_values) return
    write (text, '(i0)') total
    write (limit, '(i0)') max_model_values
    problem = 'the layers declare ' // trim(text) // ' weights, more than the ' // trim(limit) // &
              ' (2 GiB of float32) a model may have'
  end function values_problem

  function regular_file_problem(path) result(problem)
    !! Empty if `path` names a regular file (or a link to one); else why it
    !! cannot be read as one: `no such file`, `is a directory`, or `is not a
    !! regular file (a FIFO, device or socket)`.
    character(len=*), intent(in) :: path
    character(len=:), allocatable :: problem
    select case (c_path_kind(path // c_null_char))
    case (0)
      problem = ''
    case (1)
      problem = 'no such file'
    case (2)
      problem = 'is a directory'
    case default
      problem = 'is not a regular file (a FIFO, device or socket)'
    end select
  end function regular_file_problem

end module fkb_files
