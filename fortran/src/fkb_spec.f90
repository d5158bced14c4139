module fkb_spec
  !! The neutral description of a model, as read from a file: the contract
  !! between the file readers/writers (`fkb_model_file`, `fkb_legacy`) and
  !! the network builders (`fkb_network_r32`, `fkb_network_r64`).
  !!
  !! It mirrors the model file (docs/model-file.md) one to one: every layer is
  !! a type name, a width, the ids of its inputs, string attributes and float32
  !! tensors. Weights stay float32 here, exactly as stored.
  use iso_fortran_env, only: real32
  implicit none
  private
  public :: tensor_spec, attribute_spec, layer_spec, model_spec, io_spec

  type :: tensor_spec
    character(len=:), allocatable :: name
      !! e.g. `kernel`, `bias`, `gamma`, `offset`
    integer :: shape(2) = [0, 1]
      !! Fortran shape; a vector has shape(2) == 1
    integer :: rank = 1
    real(real32), allocatable :: values(:)
      !! column-major values, size product(shape)
  end type tensor_spec

  type :: attribute_spec
    character(len=:), allocatable :: key
    character(len=:), allocatable :: value
  end type attribute_spec

  type :: layer_spec
    character(len=:), allocatable :: kind
      !! layer type as in the model file, e.g. `dense`, `batch_normalization`
    integer :: n_out = 0
    integer, allocatable :: inputs(:)
      !! ids of the nodes it consumes; 0 is the model input
    type(attribute_spec), allocatable :: attributes(:)
    type(tensor_spec), allocatable :: params(:)
  end type layer_spec

  type :: io_spec
    character(len=:), allocatable :: name
    character(len=:), allocatable :: units
  end type io_spec

  type :: model_spec
    integer :: version = 1
    character(len=:), allocatable :: name
    character(len=:), allocatable :: sha256
      !! hex digest of the file's content (empty for legacy FKB files)
    integer :: n_inputs = 0, n_outputs = 0
    type(io_spec), allocatable :: inputs(:), outputs(:)
    logical :: has_input_normalization = .false.
    logical :: has_output_normalization = .false.
    real(real32), allocatable :: input_offset(:), input_scale(:)
    real(real32), allocatable :: output_offset(:), output_scale(:)
    type(layer_spec), allocatable :: layers(:)
  end type model_spec

end module fkb_spec
