module gcm_emulator_interface
  !! The emulator interface of the toy GCM in Fortran: element names, units
  !! and order of the stacked input and output vectors, and the packing of a
  !! batch of columns into them.
  !!
  !! It mirrors `emulators/interface.py` (the single source of truth; the
  !! coupling tests compare the two for several nlev):
  !!
  !!     inputs  [T_1..T_nlev (K), Q_1..Q_nlev (kg kg-1), PS (Pa),
  !!              SOLIN, SHFLX, LHFLX (W m-2)]                         2 nlev + 4
  !!     outputs [TPHYSTND_1..nlev (K s-1), PHQ_1..nlev (kg kg-1 s-1),
  !!              FSNT, FSNS, FLNT, FLNS (W m-2), PRECT (kg m-2 s-1)]   2 nlev + 5
  !!
  !! Level 1 is the top. A batch is x(n_inputs, ncol), y(n_outputs, ncol):
  !! column-major, one column per GCM column; `pack_emulator_inputs` and
  !! `pack_emulator_outputs` stack the column physics' `column_inputs` and
  !! `column_outputs` into them.
  use iso_fortran_env, only: real64
  use column_physics_io, only: column_inputs, column_outputs, reserve_column_outputs
  implicit none
  private
  public :: emulator_n_inputs, emulator_n_outputs, emulator_input_name, emulator_input_units, &
            emulator_output_name, emulator_output_units, pack_emulator_inputs, pack_emulator_outputs, &
            unpack_emulator_outputs, compare_interface, element_label, int_text

  type :: element_label
    !! Name and units of one element of a network's input or output vector.
    character(len=:), allocatable :: name
    character(len=:), allocatable :: units
  end type element_label

  character(len=*), parameter :: surface_inputs(4) = [character(len=5) :: 'PS', 'SOLIN', 'SHFLX', 'LHFLX']
  character(len=*), parameter :: surface_input_units(4) = [character(len=5) :: 'Pa', 'W m-2', 'W m-2', 'W m-2']
  character(len=*), parameter :: surface_outputs(5) = [character(len=5) :: 'FSNT', 'FSNS', 'FLNT', 'FLNS', 'PRECT']
  character(len=*), parameter :: surface_output_units(5) = &
    [character(len=10) :: 'W m-2', 'W m-2', 'W m-2', 'W m-2', 'kg m-2 s-1']

contains

  pure integer function emulator_n_inputs(nlev)
    !! Length of the input vector: 2 nlev + 4.
    integer, intent(in) :: nlev
    emulator_n_inputs = 2 * nlev + 4
  end function emulator_n_inputs

  pure integer function emulator_n_outputs(nlev)
    !! Length of the output vector: 2 nlev + 5.
    integer, intent(in) :: nlev
    emulator_n_outputs = 2 * nlev + 5
  end function emulator_n_outputs

  pure function emulator_input_name(nlev, i) result(name)
    !! Name of input element i (1-based): 'T_3', 'Q_1', 'PS', ...
    integer, intent(in) :: nlev, i
    character(len=:), allocatable :: name
    if (i <= nlev) then
      name = 'T_' // int_text(i)
    else if (i <= 2 * nlev) then
      name = 'Q_' // int_text(i - nlev)
    else
      name = trim(surface_inputs(i - 2 * nlev))
    end if
  end function emulator_input_name

  pure function emulator_input_units(nlev, i) result(units)
    !! CF units of input element i.
    integer, intent(in) :: nlev, i
    character(len=:), allocatable :: units
    if (i <= nlev) then
      units = 'K'
    else if (i <= 2 * nlev) then
      units = 'kg kg-1'
    else
      units = trim(surface_input_units(i - 2 * nlev))
    end if
  end function emulator_input_units

  pure function emulator_output_name(nlev, i) result(name)
    !! Name of output element i: 'TPHYSTND_3', 'PHQ_1', 'FSNT', ...
    integer, intent(in) :: nlev, i
    character(len=:), allocatable :: name
    if (i <= nlev) then
      name = 'TPHYSTND_' // int_text(i)
    else if (i <= 2 * nlev) then
      name = 'PHQ_' // int_text(i - nlev)
    else
      name = trim(surface_outputs(i - 2 * nlev))
    end if
  end function emulator_output_name

  pure function emulator_output_units(nlev, i) result(units)
    !! CF units of output element i.
    integer, intent(in) :: nlev, i
    character(len=:), allocatable :: units
    if (i <= nlev) then
      units = 'K s-1'
    else if (i <= 2 * nlev) then
      units = 'kg kg-1 s-1'
    else
      units = trim(surface_output_units(i - 2 * nlev))
    end if
  end function emulator_output_units

  pure subroutine pack_emulator_inputs(inputs, x)
    !! Stack the inputs of the batch's ncol columns into x(2 nlev + 4, ncol).
    type(column_inputs), intent(in) :: inputs
    real(real64), intent(out) :: x(:, :)
    integer :: nlev
    nlev = inputs%nlev
    x(1:nlev, :) = inputs%t(1:nlev, :)
    x(nlev + 1:2 * nlev, :) = inputs%q(1:nlev, :)
    x(2 * nlev + 1, :) = inputs%ps
    x(2 * nlev + 2, :) = inputs%solin
    x(2 * nlev + 3, :) = inputs%shflx
    x(2 * nlev + 4, :) = inputs%lhflx
  end subroutine pack_emulator_inputs

  pure subroutine pack_emulator_outputs(outputs, y)
    !! Stack the outputs of ncol columns into y(2 nlev + 5, ncol).
    type(column_outputs), intent(in) :: outputs
    real(real64), intent(out) :: y(:, :)
    integer :: nlev
    nlev = size(outputs%dtdt, 1)
    y(1:nlev, :) = outputs%dtdt(1:nlev, :)
    y(nlev + 1:2 * nlev, :) = outputs%dqdt(1:nlev, :)
    y(2 * nlev + 1, :) = outputs%fsnt
    y(2 * nlev + 2, :) = outputs%fsns
    y(2 * nlev + 3, :) = outputs%flnt
    y(2 * nlev + 4, :) = outputs%flns
    y(2 * nlev + 5, :) = outputs%precip
  end subroutine pack_emulator_outputs

  subroutine unpack_emulator_outputs(nlev, y, outputs)
    !! The inverse of `pack_emulator_outputs`: y(2 nlev + 5, ncol) into
    !! `outputs`, sized here for nlev levels and ncol columns.
    integer, intent(in) :: nlev
    real(real64), intent(in) :: y(:, :)
    type(column_outputs), intent(inout) :: outputs
    call reserve_column_outputs(outputs, nlev, size(y, 2))
    outputs%dtdt(1:nlev, :) = y(1:nlev, :)
    outputs%dqdt(1:nlev, :) = y(nlev + 1:2 * nlev, :)
    outputs%fsnt = y(2 * nlev + 1, :)
    outputs%fsns = y(2 * nlev + 2, :)
    outputs%flnt = y(2 * nlev + 3, :)
    outputs%flns = y(2 * nlev + 4, :)
    outputs%precip = y(2 * nlev + 5, :)
  end subroutine unpack_emulator_outputs

  subroutine compare_interface(nlev, inputs, outputs, ok, message)
    !! Compare a network's declared inputs and outputs (names and units, in
    !! order) with the GCM's interface for nlev levels. On the first
    !! difference, ok = .false. and message names it in one line, e.g.
    !! "emulator input 12 is 'Q_2' [kg kg-1], the GCM expects 'Q_1' [kg kg-1]".
    !! Sizes are compared first.
    integer, intent(in) :: nlev
    type(element_label), intent(in) :: inputs(:), outputs(:)
    logical, intent(out) :: ok
    character(len=:), allocatable, intent(out) :: message
    integer :: i

    ok = .false.
    if (size(inputs) /= emulator_n_inputs(nlev)) then
      message = 'emulator has ' // int_text(size(inputs)) // ' inputs, the GCM needs ' // &
                int_text(emulator_n_inputs(nlev)) // ' (T and Q on ' // int_text(nlev) // &
                ' levels, PS, SOLIN, SHFLX, LHFLX)'
      return
    end if
    if (size(outputs) /= emulator_n_outputs(nlev)) then
      message = 'emulator has ' // int_text(size(outputs)) // ' outputs, the GCM needs ' // &
                int_text(emulator_n_outputs(nlev)) // ' (TPHYSTND and PHQ on ' // int_text(nlev) // &
                ' levels, FSNT, FSNS, FLNT, FLNS, PRECT)'
      return
    end if
    do i = 1, size(inputs)
      if (inputs(i)%name /= emulator_input_name(nlev, i) .or. &
          inputs(i)%units /= emulator_input_units(nlev, i)) then
        message = 'emulator input ' // int_text(i) // ' is ' // described(inputs(i)%name, inputs(i)%units) // &
                  ', the GCM expects ' // described(emulator_input_name(nlev, i), emulator_input_units(nlev, i))
        return
      end if
    end do
    do i = 1, size(outputs)
      if (outputs(i)%name /= emulator_output_name(nlev, i) .or. &
          outputs(i)%units /= emulator_output_units(nlev, i)) then
        message = 'emulator output ' // int_text(i) // ' is ' // described(outputs(i)%name, outputs(i)%units) &
                  // ', the GCM expects ' // described(emulator_output_name(nlev, i), emulator_output_units(nlev, i))
        return
      end if
    end do
    ok = .true.
    message = ''
  end subroutine compare_interface

  pure function described(name, units) result(text)
    character(len=*), intent(in) :: name, units
    character(len=:), allocatable :: text
    text = "'" // name // "' [" // units // "]"
  end function described

  pure function int_text(i) result(text)
    !! Decimal text of an integer, without blanks.
    integer, intent(in) :: i
    character(len=:), allocatable :: text
    character(len=16) :: buf
    write (buf, '(i0)') i
    text = trim(buf)
  end function int_text

end module gcm_emulator_interface
