module gcm_checkpoint
  !! Raw binary checkpoints (Fortran stream access, native byte order):
  !! everything `model_state` holds, so that a run continues bit for bit.
  !!
  !! Layout (version 2): 8-byte magic 'GCMTOYCK', int32 version (2), the
  !! SHA-256 of everything after it as 64 lowercase hex digits, then the
  !! body: int32 truncation, nlon, nlat, nlev, real64 dt, real64
  !! sigma_half(nlev+1), int64 step, int32 leapfrog_started (0/1), real64
  !! dry_mass_target, complex128 arrays vor, div, tmp, hum (nlev, nspec, 2),
  !! lnps (nspec, 2), phis (nspec), column-major. (Version 1 was the same
  !! without the hash; `gcm_toy.upgrade_checkpoint` adds it.)
  !!
  !! Writing goes to PATH.partial, which is hashed and then renamed to PATH:
  !! a checkpoint is there whole or not at all, and a failed write leaves
  !! the previous one. Reading checks that resolution, levels and dt match,
  !! that the file has exactly the size they give and that the hash matches,
  !! before the state is touched: a truncated or altered checkpoint is
  !! refused with one line, never run.
  use iso_fortran_env, only: int32, int64, real64
  use iso_c_binding, only: c_char, c_int, c_null_char
  use gcm_status, only: gcm_ok, gcm_err_io, gcm_err_format
  use gcm_config, only: model_config
  use gcm_state, only: model_state
  use fkb_sha256, only: sha256_hex
  implicit none
  private
  public :: write_checkpoint, read_checkpoint

  character(len=8), parameter :: magic = 'GCMTOYCK'
  integer(int32), parameter :: version = 2
  integer(int64), parameter :: body_start = 8 + 4 + 64 + 1
    !! the stream position where the hashed body begins

  interface
    function c_rename(old_path, new_path) bind(c, name='rename') result(status)
      !! C's `rename`: atomically replaces `new_path` on POSIX systems.
      import :: c_char, c_int
      character(kind=c_char), intent(in) :: old_path(*), new_path(*)
      integer(c_int) :: status
    end function c_rename
  end interface

contains

  subroutine write_checkpoint(path, config, state, status, message)
    character(len=*), intent(in) :: path
    type(model_config), intent(in) :: config
    type(model_state), intent(in) :: state
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    integer :: unit, ios
    character(len=200) :: iomsg
    integer(int32) :: flag
    character(len=:), allocatable :: partial, body
    integer(int64) :: size_bytes

    status = gcm_err_io
    partial = trim(path)//'.partial'
    open (newunit=unit, file=partial, access='stream', form='unformatted', status='replace', &
          action='readwrite', iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      message = 'checkpoint: cannot open '//partial//' for writing: '//trim(iomsg)
      return
    end if
    flag = 0
    if (state%leapfrog_started) flag = 1
    write (unit, iostat=ios, iomsg=iomsg) magic, version, repeat('0', 64), int(config%truncation, int32), &
      int(config%nlon, int32), int(config%nlat, int32), int(config%nlev, int32), &
      real(config%dt, real64), real(config%sigma_half, real64), int(state%step, int64), flag, &
      real(state%dry_mass_target, real64), state%vor, state%div, state%tmp, state%hum, &
      state%lnps, state%phis
    if (ios == 0) then   ! the hash of the body as written, in its place
      inquire (unit=unit, size=size_bytes)
      allocate (character(len=size_bytes - body_start + 1) :: body, stat=ios)
      if (ios == 0) read (unit, pos=body_start, iostat=ios, iomsg=iomsg) body
      if (ios == 0) write (unit, pos=13, iostat=ios, iomsg=iomsg) sha256_hex(body)
    end if
    if (ios /= 0) then
      message = 'checkpoint: cannot write '//partial//': '//trim(iomsg)
      close (unit, status='delete')
      return
    end if
    close (unit, iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      message = 'checkpoint: cannot write '//partial//': '//trim(iomsg)
      return
    end if
    if (c_rename(partial//c_null_char, trim(path)//c_null_char) /= 0) then
      message = 'checkpoint: cannot rename '//partial//' to '//trim(path)
      return
    end if
    status = gcm_ok
    message = ''
  end subroutine write_checkpoint

  subroutine read_checkpoint(path, config, state, status, message)
    !! Read into an allocated state of the configuration's shape; the state
    !! is untouched unless the whole checkpoint is read and verified.
    character(len=*), intent(in) :: path
    type(model_config), intent(in) :: config
    type(model_state), intent(inout) :: state
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    integer :: unit, ios
    character(len=200) :: iomsg
    character(len=8) :: file_magic
    character(len=64) :: digest
    character(len=:), allocatable :: body
    integer(int32) :: file_version, dims(4), flag
    real(real64) :: dt, dry
    real(real64) :: sigma_half(config%nlev + 1)
    integer(int64) :: step, size_bytes, expected
    character(len=160) :: buf

    status = gcm_err_io
    open (newunit=unit, file=path, access='stream', form='unformatted', status='old', &
          action='read', iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      message = 'checkpoint: cannot open '//trim(path)//': '//trim(iomsg)
      return
    end if
    status = gcm_err_format
    read (unit, iostat=ios) file_magic, file_version
    if (ios /= 0 .or. file_magic /= magic) then
      message = 'checkpoint: '//trim(path)//' is not a toy-GCM checkpoint'
      close (unit)
      return
    end if
    if (file_version == 1) then
      message = 'checkpoint: '//trim(path)//' is of format version 1, which has no content hash '// &
                '(gcm_toy.upgrade_checkpoint adds one)'
      close (unit)
      return
    end if
    if (file_version /= version) then
      write (buf, '(a,i0)') 'unsupported checkpoint version ', file_version
      message = 'checkpoint: '//trim(path)//': '//trim(buf)
      close (unit)
      return
    end if
    read (unit, iostat=ios) digest, dims
    if (ios /= 0 .or. any(dims /= [config%truncation, config%nlon, config%nlat, config%nlev])) then
      write (buf, '(a,i0,a,i0,a,i0,a,i0,a)') 'checkpoint resolution (T', dims(1), ', ', dims(2), 'x', &
        dims(3), ', L', dims(4), ') does not match the model'
      message = 'checkpoint: '//trim(path)//': '//trim(buf)
      close (unit)
      return
    end if
    ! the size these dimensions give, before anything of that size is read
    expected = body_start - 1 + 16 + 8 + 8 * (config%nlev + 1) + 8 + 4 + 8 + &
               16_int64 * (size(state%vor) + size(state%div) + size(state%tmp) + size(state%hum) + &
                           size(state%lnps) + size(state%phis))
    inquire (unit=unit, size=size_bytes)
    if (size_bytes /= expected) then
      write (buf, '(i0,a,i0,a)') size_bytes, ' bytes where this model''s checkpoint has ', expected, &
        ' (truncated or altered)'
      message = 'checkpoint: '//trim(path)//': '//trim(buf)
      close (unit)
      return
    end if
    allocate (character(len=expected - body_start + 1) :: body, stat=ios)
    if (ios == 0) read (unit, pos=body_start, iostat=ios, iomsg=iomsg) body
    if (ios /= 0) then
      message = 'checkpoint: '//trim(path)//' is unreadable: '//trim(iomsg)
      close (unit)
      return
    end if
    if (sha256_hex(body) /= digest) then
      message = 'checkpoint: '//trim(path)//': content hash mismatch (corrupt or altered)'
      close (unit)
      return
    end if
    read (unit, pos=body_start + 16, iostat=ios) dt, sigma_half
    if (ios /= 0 .or. dt /= config%dt .or. any(sigma_half /= config%sigma_half)) then
      message = 'checkpoint: '//trim(path)//': time step or sigma levels do not match the model'
      close (unit)
      return
    end if
    read (unit, iostat=ios, iomsg=iomsg) step, flag, dry, state%vor, state%div, state%tmp, state%hum, &
      state%lnps, state%phis
    close (unit)
    if (ios /= 0) then
      message = 'checkpoint: '//trim(path)//' is truncated or unreadable: '//trim(iomsg)
      return
    end if
    state%step = step
    state%leapfrog_started = flag /= 0
    state%dry_mass_target = dry
    status = gcm_ok
    message = ''
  end subroutine read_checkpoint

end module gcm_checkpoint
