module gcm_checkpoint
  !! Raw binary checkpoints (Fortran stream access, native byte order):
  !! everything `model_state` holds, so that a run continues bit for bit.
  !!
  !! Layout: 8-byte magic 'GCMTOYCK', int32 version (1), int32 truncation,
  !! nlon, nlat, nlev, real64 dt, real64 sigma_half(nlev+1), int64 step,
  !! int32 leapfrog_started (0/1), real64 dry_mass_target, then complex128
  !! arrays vor, div, tmp, hum (nlev, nspec, 2), lnps (nspec, 2), phis (nspec),
  !! column-major. Reading checks that resolution, levels and dt match.
  use iso_fortran_env, only: int32, int64, real64
  use gcm_constants, only: wp
  use gcm_status, only: gcm_ok, gcm_err_io, gcm_err_format
  use gcm_config, only: model_config
  use gcm_state, only: model_state
  implicit none
  private
  public :: write_checkpoint, read_checkpoint

  character(len=8), parameter :: magic = 'GCMTOYCK'
  integer(int32), parameter :: version = 1

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

    status = gcm_err_io
    open (newunit=unit, file=path, access='stream', form='unformatted', status='replace', &
          action='write', iostat=ios, iomsg=iomsg)
    if (ios /= 0) then
      message = 'checkpoint: cannot open '//trim(path)//' for writing: '//trim(iomsg)
      return
    end if
    flag = 0
    if (state%leapfrog_started) flag = 1
    write (unit, iostat=ios, iomsg=iomsg) magic, version, int(config%truncation, int32), &
      int(config%nlon, int32), int(config%nlat, int32), int(config%nlev, int32), &
      real(config%dt, real64), real(config%sigma_half, real64), int(state%step, int64), flag, &
      real(state%dry_mass_target, real64), state%vor, state%div, state%tmp, state%hum, &
      state%lnps, state%phis
    if (ios /= 0) then
      message = 'checkpoint: cannot write '//trim(path)//': '//trim(iomsg)
      close (unit)
      return
    end if
    close (unit, iostat=ios)
    status = gcm_ok
    message = ''
  end subroutine write_checkpoint

  subroutine read_checkpoint(path, config, state, status, message)
    !! Read into an allocated state of the configuration's shape.
    character(len=*), intent(in) :: path
    type(model_config), intent(in) :: config
    type(model_state), intent(inout) :: state
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    integer :: unit, ios
    character(len=200) :: iomsg
    character(len=8) :: file_magic
    integer(int32) :: file_version, dims(4), flag
    real(real64) :: dt, dry
    real(real64) :: sigma_half(config%nlev + 1)
    integer(int64) :: step
    character(len=120) :: buf

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
    if (file_version /= version) then
      write (buf, '(a,i0)') 'unsupported checkpoint version ', file_version
      message = 'checkpoint: '//trim(buf)
      close (unit)
      return
    end if
    read (unit, iostat=ios) dims
    if (ios /= 0 .or. any(dims /= [config%truncation, config%nlon, config%nlat, config%nlev])) then
      write (buf, '(a,i0,a,i0,a,i0,a,i0,a)') 'checkpoint resolution (T', dims(1), ', ', dims(2), 'x', &
        dims(3), ', L', dims(4), ') does not match the model'
      message = 'checkpoint: '//trim(buf)
      close (unit)
      return
    end if
    read (unit, iostat=ios) dt, sigma_half
    if (ios /= 0 .or. dt /= config%dt .or. any(sigma_half /= config%sigma_half)) then
      message = 'checkpoint: time step or sigma levels do not match the model'
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
