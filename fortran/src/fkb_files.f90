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
  public :: regular_file_problem, max_model_file_bytes

  integer(int64), parameter :: max_model_file_bytes = 2_int64**31
    !! 2 GiB: a model file larger than this is refused before anything is
    !! allocated (a float32 network of 500 million weights)

  interface
    function c_path_kind(path) result(kind) bind(c, name='fkb_path_kind')
      import :: c_char, c_int
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: kind
    end function c_path_kind
  end interface

contains

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
