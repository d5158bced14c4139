module gcm_physics_choice
  !! The physics of a model chosen by name: the one place where a name and
  !! its options become a `physics_scheme` of the dynamical core, for every
  !! host (the Python binding, a Fortran program).
  !!
  !!   'none'         no physics (dynamics only): `physics` left unallocated
  !!   'held-suarez'  the dry benchmark forcing (Held & Suarez 1994)
  !!   'reference'    the moist aquaplanet physics with the toy
  !!                  superparameterization (`gcm_aquaplanet`)
  !!   'emulator'     the aquaplanet physics with one network (one model
  !!                  file) in place of the cloud and radiation physics
  !!   'ensemble'     the same with several networks, outputs averaged
  !!
  !! `select_physics` checks the whole choice first (known name, the number
  !! of model files the name needs, the column physics' settings), then
  !! sets the scheme up; status gcm_ok, or gcm_err_config / gcm_err_state
  !! with a one-line message and `physics` unallocated. A new scheme is one
  !! more case here and in `physics_names`.
  use iso_fortran_env, only: int64
  use gcm_dycore, only: climate_model, physics_scheme, held_suarez_forcing, gcm_ok, gcm_err_config
  use physics_configuration, only: physics_config_read
  use gcm_emulator, only: emulator_options
  use gcm_emulator_interface, only: int_text
  use gcm_aquaplanet, only: aquaplanet_config, aquaplanet_physics, aquaplanet_physics_setup, &
                            aquaplanet_emulator_setup
  implicit none
  private
  public :: physics_names, physics_options, select_physics, max_path_length

  character(len=*), parameter :: physics_names = 'none, held-suarez, reference, emulator, ensemble'
    !! the physics `select_physics` knows, for messages and hosts
  integer, parameter :: max_path_length = 4096
    !! longest model-file path

  type :: physics_options
    !! What the moist aquaplanet physics needs besides its name
    !! (configuration as data; the defaults are the model's).
    integer(int64) :: seed = 1
      !! run seed of the reference physics' random numbers
    character(len=max_path_length), allocatable :: emulator_paths(:)
      !! model files of 'emulator' (one) or 'ensemble' (several)
    character(len=:), allocatable :: physics_settings
      !! namelist text changing the column physics' settings (physics_config_read); unset: defaults
    logical :: keep_training_batch = .false.
      !! keep the emulator-interface batch of every step (aquaplanet_get_training_batch)
    type(emulator_options) :: emulator
      !! how the networks run: precision, limiters, guard, partial coupling, fine-tuning
  end type physics_options

contains

  subroutine select_physics(name, model, options, physics, status, message)
    !! The scheme `name` with `options` for the initialised `model`.
    character(len=*), intent(in) :: name
    type(climate_model), intent(in) :: model
    type(physics_options), intent(in) :: options
    class(physics_scheme), allocatable, intent(out) :: physics
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    type(aquaplanet_config) :: config

    call check_choice(name, options, config, status, message)
    if (status /= gcm_ok) return
    select case (trim(name))
    case ('held-suarez')
      allocate (held_suarez_forcing :: physics)
    case ('reference')
      allocate (aquaplanet_physics :: physics)
      select type (physics)
      type is (aquaplanet_physics)
        call aquaplanet_physics_setup(physics, model, config, status, message)
      end select
    case ('emulator', 'ensemble')
      allocate (aquaplanet_physics :: physics)
      select type (physics)
      type is (aquaplanet_physics)
        call aquaplanet_emulator_setup(physics, model, config, options%emulator_paths, options%emulator, &
                                       status, message)
      end select
    end select
    if (status /= gcm_ok .and. allocated(physics)) deallocate (physics)
  end subroutine select_physics

  subroutine check_choice(name, options, config, status, message)
    !! Everything about the choice that needs no model: the name, the
    !! number of model files, and the aquaplanet configuration it gives
    !! (seed, training batch, the column physics' settings read).
    character(len=*), intent(in) :: name
    type(physics_options), intent(in) :: options
    type(aquaplanet_config), intent(out) :: config
    integer, intent(out) :: status
    character(len=*), intent(out) :: message
    character(len=:), allocatable :: settings_message
    integer :: n_paths

    status = gcm_err_config
    n_paths = 0
    if (allocated(options%emulator_paths)) n_paths = size(options%emulator_paths)
    select case (trim(name))
    case ('none', 'held-suarez', 'reference')
    case ('emulator', 'ensemble')
      if (n_paths == 0) then
        message = 'physics '//trim(name)//': no emulator model file given (option emulator)'
        return
      else if (trim(name) == 'emulator' .and. n_paths /= 1) then
        message = 'physics emulator: needs exactly one model file, got '//int_text(n_paths)// &
                  " (use physics = 'ensemble' for several)"
        return
      else if (trim(name) == 'ensemble' .and. n_paths < 2) then
        message = 'physics ensemble: needs at least two model files, got '//int_text(n_paths)// &
                  " (use physics = 'emulator' for one)"
        return
      end if
    case default
      message = "physics: unknown scheme '"//trim(name)//"' (known: "//physics_names//")"
      return
    end select
    config%seed = options%seed
    config%keep_training_batch = options%keep_training_batch
    select case (trim(name))
    case ('reference', 'emulator', 'ensemble')
      if (allocated(options%physics_settings)) then
        call physics_config_read(config%physics, options%physics_settings, status, settings_message)
        if (status /= gcm_ok) then
          status = gcm_err_config
          message = settings_message
          return
        end if
      end if
    end select
    status = gcm_ok
    message = ''
  end subroutine check_choice

end module gcm_physics_choice
