module fkb_model_file
  !! Reading and writing FKB model files (docs/model-file.md), format
  !! versions 1 to 3, with nothing but the Fortran standard library; the
  !! reader also reads the original FKB text format. The work is done by
  !! `fkb_model_reader` (the file, its hash and payload), `fkb_model_header`
  !! (one routine per kind of header line), `fkb_model_validation` (the
  !! checks the reader and the writer share), `fkb_model_writer` and
  !! `fkb_model_tokens` (the header's vocabulary); this module is the one
  !! the rest of the library and its users name.
  use fkb_model_tokens, only: fkb_format_version
  use fkb_model_reader, only: read_model_file
  use fkb_model_writer, only: write_model_file
  implicit none
  private
  public :: read_model_file, write_model_file, fkb_format_version
end module fkb_model_file
