module gcm_dycore
  !! The dynamical core's public API in one module:
  !! `use gcm_dycore, only: ...` is all a Fortran user of the toy GCM needs.
  use gcm_constants, only: wp
  use gcm_status, only: gcm_ok, gcm_err_config, gcm_err_state, gcm_err_io, gcm_err_format, &
                        gcm_err_physics, gcm_err_unphysical, gcm_err_nonfinite, gcm_status_name
  use gcm_config, only: model_config
  use gcm_model, only: climate_model, model_timers, model_init, model_step, model_check, &
                       model_get_grid, model_set_grid, model_get_spectral, model_set_spectral, &
                       model_set_surface_geopotential, model_write_checkpoint, model_read_checkpoint, &
                       model_time_days, model_global_means, model_zonal_means, model_reset_timers, model_grid
  use gcm_physics_interface, only: physics_scheme, physics_columns, physics_tendencies
  use gcm_held_suarez, only: held_suarez_forcing, held_suarez_tendencies
  use gcm_diagnostics, only: failure_report
  use gcm_initial_conditions, only: set_rest_isothermal, set_held_suarez_start, set_rossby_haurwitz, &
                                    set_jablonowski_williamson
  implicit none
  private
  public :: wp, gcm_ok, gcm_err_config, gcm_err_state, gcm_err_io, gcm_err_format, gcm_err_physics, &
            gcm_err_unphysical, gcm_err_nonfinite, gcm_status_name, model_config, climate_model, &
            model_timers, model_init, model_step, model_check, model_get_grid, model_set_grid, &
            model_get_spectral, model_set_spectral, model_set_surface_geopotential, &
            model_write_checkpoint, model_read_checkpoint, model_time_days, model_global_means, &
            model_zonal_means, model_reset_timers, model_grid, physics_scheme, physics_columns, physics_tendencies, &
            held_suarez_forcing, held_suarez_tendencies, failure_report, set_rest_isothermal, &
            set_held_suarez_start, set_rossby_haurwitz, set_jablonowski_williamson
end module gcm_dycore
