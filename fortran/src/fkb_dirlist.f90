module fkb_dirlist
  !! The names of the files in a folder, sorted: what `ensemble%load_folder`
  !! needs. Fortran cannot list a directory, so a tiny C helper
  !! (`fkb_dirlist.c`, POSIX `opendir`/`readdir`) reads the entries; the
  !! sorting (byte order, as Python's `sorted`) is done here so that the
  !! order never depends on the file system.
  use iso_c_binding, only: c_ptr, c_char, c_int, c_null_char, c_associated
  use iso_fortran_env, only: int64
  use fkb_status, only: fkb_ok, fkb_err_io, fkb_err_memory, allocation_failure, int_to_str
  implicit none
  private
  public :: dir_entry, list_directory, sort_entries

  type :: dir_entry
    character(len=:), allocatable :: name
      !! a file name, without the folder
  end type dir_entry

  integer, parameter :: name_capacity = 4096
    !! longest name read (POSIX names are at most 255 bytes)

  interface
    function c_dir_open(path) result(dir) bind(c, name='fkb_dir_open')
      import :: c_ptr, c_char
      character(kind=c_char), intent(in) :: path(*)
      type(c_ptr) :: dir
    end function c_dir_open

    function c_dir_next(dir, buf, cap, length) result(more) bind(c, name='fkb_dir_next')
      import :: c_ptr, c_char, c_int
      type(c_ptr), value :: dir
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_int), value :: cap
      integer(c_int), intent(out) :: length
      integer(c_int) :: more
    end function c_dir_next

    subroutine c_dir_close(dir) bind(c, name='fkb_dir_close')
      import :: c_ptr
      type(c_ptr), value :: dir
    end subroutine c_dir_close
  end interface

contains

  subroutine list_directory(dir, entries, stat, msg)
    !! Every entry of folder `dir` but `.` and `..`, sorted by name.
    character(len=*), intent(in) :: dir
    type(dir_entry), allocatable, intent(out) :: entries(:)
    integer, intent(out) :: stat
    character(len=:), allocatable, intent(out) :: msg
      !! a one-line reason on failure
    type(c_ptr) :: handle
    type(dir_entry), allocatable :: grown(:)
    character(kind=c_char) :: buf(name_capacity)
    integer(c_int) :: length
    integer :: n, i
    stat = fkb_ok
    allocate (entries(0), stat=stat)
    if (stat /= 0) then
      stat = fkb_err_memory
      msg = 'out of memory: cannot allocate the list of files of ' // trim(dir)
      return
    end if
    n = 0
    handle = c_dir_open(trim(dir) // c_null_char)
    if (.not. c_associated(handle)) then
      stat = fkb_err_io
      msg = trim(dir) // ': no such folder, or it cannot be read'
      return
    end if
    do while (c_dir_next(handle, buf, int(name_capacity, c_int), length) /= 0)
      if (n == size(entries)) then
        allocate (grown(max(16, 2 * n)), stat=stat)
        if (stat /= 0) then
          msg = allocation_failure(trim(dir) // ': the list of ' // int_to_str(max(16, 2 * n)) // &
                                   ' files', int(max(16, 2 * n), int64), storage_size(grown) / 8)
          exit
        end if
        grown(1:n) = entries
        call move_alloc(grown, entries)
      end if
      n = n + 1
      allocate (character(len=min(int(length), name_capacity)) :: entries(n)%name, stat=stat)
      if (stat /= 0) then
        msg = allocation_failure(trim(dir) // ': a file name', int(length, int64), 1)
        exit
      end if
      do i = 1, len(entries(n)%name)
        entries(n)%name(i:i) = buf(i)
      end do
    end do
    call c_dir_close(handle)
    if (stat /= 0) then
      stat = fkb_err_memory
      return
    end if
    entries = entries(1:n)
    call sort_entries(entries)
    stat = fkb_ok
    msg = ''
  end subroutine list_directory

  pure subroutine sort_entries(entries)
    !! Sort names in byte order (insertion sort: folders hold few models).
    type(dir_entry), intent(inout) :: entries(:)
    type(dir_entry) :: key
    integer :: i, j
    do i = 2, size(entries)
      key = entries(i)
      j = i - 1
      do while (j >= 1)
        if (.not. before(key%name, entries(j)%name)) exit
        entries(j + 1) = entries(j)
        j = j - 1
      end do
      entries(j + 1) = key
    end do
  end subroutine sort_entries

  pure logical function before(a, b)
    !! `a` sorts before `b` byte by byte, a prefix first (no blank padding,
    !! unlike Fortran's comparison operators).
    character(len=*), intent(in) :: a, b
    integer :: i
    do i = 1, min(len(a), len(b))
      if (a(i:i) /= b(i:i)) then
        before = iachar(a(i:i)) < iachar(b(i:i))
        return
      end if
    end do
    before = len(a) < len(b)
  end function before

end module fkb_dirlist
