module fkb_spec
  !! The neutral description of a model, as read from a file: the contract
  !! between the file readers/writers (`fkb_model_file`, `fkb_legacy`) and
  !! the network builders (`fkb_network_r32`, `fkb_network_r64`).
  !!
  !! It mirrors the model file (docs/model-file.md) one to one: every layer is
  !! a type name, a width, the ids of its inputs, string attributes and float32
  !! tensors. Weights stay float32 here, exactly as stored.
  use iso_fortran_env, only: real32, real64
  implicit none
  private
  public :: tensor_spec, attribute_spec, layer_spec, model_spec, io_spec
  public :: training_spec, training_tensor, statistics_spec

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

  type :: training_tensor
    !! A tensor of the training section (optimizer slots, weights at the
    !! training precision): values held in real64, which holds float32
    !! values exactly too.
    character(len=:), allocatable :: name
    integer :: shape(2) = [0, 1]
    integer :: rank = 1
    real(real64), allocatable :: values(:)
  end type training_tensor

  type :: training_spec
    !! The training section of a model file (format version 2,
    !! docs/model-file.md), as written: the file modules check its syntax,
    !! the network interprets it (`fkb_network_r32`, `fkb_network_r64`).
    logical :: present = .false.
    integer :: precision = 32
      !! bits of the section's tensors in the payload, 32 or 64
    type(attribute_spec), allocatable :: attributes(:)
      !! of the `training` line (iterations, loss, ...)
    character(len=:), allocatable :: optimizer
    type(attribute_spec), allocatable :: optimizer_attributes(:)
    character(len=:), allocatable :: schedule
      !! the schedule's kind, empty without a schedule line
    type(attribute_spec), allocatable :: schedule_attributes(:)
    integer, allocatable :: generator_ids(:)
      !! node ids of the `generator` lines (0: fit's shuffling)
    integer, allocatable :: generator_states(:)
    type(training_tensor), allocatable :: tensors(:)
  end type training_spec

  type :: statistics_spec
    !! The input_statistics section of a model file (format version 3,
    !! docs/model-file.md): the training inputs' distribution in physical
    !! units, for the out-of-distribution guard.
    logical :: present = .false.
    integer :: samples = 0
    integer :: rank = 0
      !! principal directions kept
    real(real64) :: residual_variance = 1.0_real64
    real(real64) :: distance_q999 = 1.0_real64
    real(real32), allocatable :: minimum(:), maximum(:), mean(:), std(:)
    real(real32), allocatable :: basis(:)
      !! column-major `(n_inputs, rank)`
    real(real32), allocatable :: variance(:)
  end type statistics_spec

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
    type(training_spec) :: training
      !! optional training state (format version 2)
    type(statistics_spec) :: statistics
      !! optional input statistics (format version 3)
  end type model_spec

end module fkb_spec
