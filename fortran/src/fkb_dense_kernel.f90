module fkb_dense_kernel
  !! Interfaces to the dense-layer kernels of `fkb_dense_kernel.c`:
  !! `y(:, j) = act(W x(:, j) + b)` on a copy of W packed once per layer, with
  !! AVX-512 kernels chosen at run time. Where they are not available (no
  !! AVX-512, or `FKB_DENSE_KERNEL=blas` in the environment) the layers keep no
  !! packed copy and call the BLAS. The kind-generic layer sources pick their
  !! kind's routines by renaming on `use`, as with `fkb_blas`.
  !!
  !! Matrices are passed by their first element and a leading dimension, so
  !! that rows of a larger workspace are used without a copy.
  use iso_c_binding, only: c_int, c_int64_t, c_float, c_double
  implicit none
  private
  public :: dense_kernel_available, dense_tile_columns
  public :: dense_packed_size_r32, dense_pack_r32, dense_pack_transposed_r32, dense_apply_r32, &
            dense_apply_aux_r32, dense_apply_part_r32, dense_strips_size_r32, dense_pack_strips_r32, &
            dense_weight_grad_strips_r32
  public :: dense_packed_size_r64, dense_pack_r64, dense_pack_transposed_r64, dense_apply_r64, &
            dense_apply_aux_r64, dense_apply_part_r64, dense_strips_size_r64, dense_pack_strips_r64, &
            dense_weight_grad_strips_r64

  public :: epilogue_none, epilogue_relu, epilogue_leaky_relu, epilogue_accumulate, &
            epilogue_accumulate_relu_grad, epilogue_accumulate_leaky_relu_grad, epilogue_relu_grad, &
            epilogue_leaky_relu_grad

  integer, parameter :: epilogue_none = 0, epilogue_relu = 1, epilogue_leaky_relu = 2, &
                        epilogue_accumulate = 3, epilogue_accumulate_relu_grad = 4, &
                        epilogue_accumulate_leaky_relu_grad = 5, epilogue_relu_grad = 6, &
                        epilogue_leaky_relu_grad = 7
    !! what the kernel does after the bias: nothing, `max(v, 0)`,
    !! `max(v, 0) + alpha min(v, 0)` (as `fkb_activations`; `dense_apply_aux`
    !! also stores `v` before it), add the result to what `y` holds
    !! (training's `dx += W^T dy`), or add it through the derivative of a
    !! relu or leaky relu whose input has the sign of what `dense_apply_aux`
    !! reads: `y += merge(1, alpha, z > 0) v` (alpha 0 for relu), training's
    !! `dx += W^T dy` carried through the activation layer before it; or
    !! store that product (`y = merge(1, alpha, z > 0) v`) where it is the
    !! only contribution

  interface
    integer(c_int) function kernel_available() bind(C, name='fkb_dense_kernel_available')
      import :: c_int
    end function kernel_available

    integer(c_int) function dense_tile_columns() bind(C, name='fkb_dense_tile_columns')
      !! the kernels compute a batch this many columns at a time
      import :: c_int
    end function dense_tile_columns

    integer(c_int64_t) function dense_packed_size_r32(m, k) bind(C, name='fkb_dense_packed_size_r32')
      !! number of values of the buffer for the packed copy of an `m x k` kernel
      import :: c_int, c_int64_t
      integer(c_int), value :: m, k
    end function dense_packed_size_r32
    integer(c_int64_t) function dense_packed_size_r64(m, k) bind(C, name='fkb_dense_packed_size_r64')
      import :: c_int, c_int64_t
      integer(c_int), value :: m, k
    end function dense_packed_size_r64

    integer(c_int) function dense_pack_r32(m, k, w, buffer) bind(C, name='fkb_dense_pack_r32')
      !! pack the column-major `w(m, k)` into `buffer` (`dense_packed_size` values)
      !! from its first cache-line boundary; returns that offset (values before it)
      import :: c_int, c_float
      integer(c_int), value :: m, k
      real(c_float), intent(in) :: w(*)
      real(c_float), intent(inout) :: buffer(*)
    end function dense_pack_r32
    integer(c_int) function dense_pack_r64(m, k, w, buffer) bind(C, name='fkb_dense_pack_r64')
      import :: c_int, c_double
      integer(c_int), value :: m, k
      real(c_double), intent(in) :: w(*)
      real(c_double), intent(inout) :: buffer(*)
    end function dense_pack_r64

    integer(c_int) function dense_pack_transposed_r32(m, k, w, buffer) &
        bind(C, name='fkb_dense_pack_transposed_r32')
      !! as `dense_pack` for the `m x k` transpose of the column-major `w(k, m)`
      import :: c_int, c_float
      integer(c_int), value :: m, k
      real(c_float), intent(in) :: w(*)
      real(c_float), intent(inout) :: buffer(*)
    end function dense_pack_transposed_r32
    integer(c_int) function dense_pack_transposed_r64(m, k, w, buffer) &
        bind(C, name='fkb_dense_pack_transposed_r64')
      import :: c_int, c_double
      integer(c_int), value :: m, k
      real(c_double), intent(in) :: w(*)
      real(c_double), intent(inout) :: buffer(*)
    end function dense_pack_transposed_r64


    integer(c_int64_t) function dense_strips_size_r32(rows, width, n) bind(C, name='fkb_dense_strips_size_r32')
      !! values of the buffer for `rows x n` values in strips of `width` rows
      import :: c_int, c_int64_t
      integer(c_int), value :: rows, width, n
    end function dense_strips_size_r32
    integer(c_int64_t) function dense_strips_size_r64(rows, width, n) bind(C, name='fkb_dense_strips_size_r64')
      import :: c_int, c_int64_t
      integer(c_int), value :: rows, width, n
    end function dense_strips_size_r64

    subroutine dense_pack_strips_r32(rows, width, n, j0, j1, src, ld, buffer) &
        bind(C, name='fkb_dense_pack_strips_r32')
      !! columns `j0 + 1 .. j1` of `src(1:rows, 1:n)` into `buffer`
      !! (`dense_strips_size` values) as strips of `width` rows, each strip
      !! column after column from the buffer's first cache line
      import :: c_int, c_float
      integer(c_int), value :: rows, width, n, j0, j1, ld
      real(c_float), intent(in) :: src(ld, *)
      real(c_float), intent(inout) :: buffer(*)
    end subroutine dense_pack_strips_r32
    subroutine dense_pack_strips_r64(rows, width, n, j0, j1, src, ld, buffer) &
        bind(C, name='fkb_dense_pack_strips_r64')
      import :: c_int, c_double
      integer(c_int), value :: rows, width, n, j0, j1, ld
      real(c_double), intent(in) :: src(ld, *)
      real(c_double), intent(inout) :: buffer(*)
    end subroutine dense_pack_strips_r64

    subroutine dense_weight_grad_strips_r32(m, k, n, dy, lddy, x_strips, dw, lddw, db, use_db, row0, &
                                            col0, col1) bind(C, name='fkb_dense_weight_grad_strips_r32')
      !! Training's weight gradient: rows `row0 + 1 .. row0 + dense_tile_rows`
      !! (at most `m`) and columns `col0 + 1 .. col1` of `dw = dy x^T`
      !! (`dy(m, n)`, `x(k, n)` given as strips of `dense_tile_columns` rows,
      !! `dense_pack_strips`; `col0` a multiple of that width), and, with
      !! `use_db` and `col0 = 0`, the same rows of `db = sum_j dy(:, j)`: each
      !! element one chain over the columns `j` in order
      import :: c_int, c_float
      integer(c_int), value :: m, k, n, lddy, lddw, use_db, row0, col0, col1
      real(c_float), intent(in) :: dy(lddy, *), x_strips(*)
      real(c_float), intent(inout) :: dw(lddw, *), db(*)
    end subroutine dense_weight_grad_strips_r32
    subroutine dense_weight_grad_strips_r64(m, k, n, dy, lddy, x_strips, dw, lddw, db, use_db, row0, &
                                            col0, col1) bind(C, name='fkb_dense_weight_grad_strips_r64')
      import :: c_int, c_double
      integer(c_int), value :: m, k, n, lddy, lddw, use_db, row0, col0, col1
      real(c_double), intent(in) :: dy(lddy, *), x_strips(*)
      real(c_double), intent(inout) :: dw(lddw, *), db(*)
    end subroutine dense_weight_grad_strips_r64

    subroutine dense_apply_r32(m, k, n, packed, x, ldx, bias, use_bias, epilogue, alpha, y, ldy) &
        bind(C, name='fkb_dense_apply_r32')
      !! `y(1:m, j) = act(W x(1:k, j) + bias)` for `j = 1..n` (bias ignored
      !! when `use_bias` is 0; `act` per `epilogue`)
      import :: c_int, c_float
      integer(c_int), value :: m, k, n, ldx, use_bias, epilogue, ldy
      real(c_float), value :: alpha
      real(c_float), intent(in) :: packed(*), x(ldx, *), bias(*)
      real(c_float), intent(inout) :: y(ldy, *)
    end subroutine dense_apply_r32
    subroutine dense_apply_r64(m, k, n, packed, x, ldx, bias, use_bias, epilogue, alpha, y, ldy) &
        bind(C, name='fkb_dense_apply_r64')
      import :: c_int, c_double
      integer(c_int), value :: m, k, n, ldx, use_bias, epilogue, ldy
      real(c_double), value :: alpha
      real(c_double), intent(in) :: packed(*), x(ldx, *), bias(*)
      real(c_double), intent(inout) :: y(ldy, *)
    end subroutine dense_apply_r64

    subroutine dense_apply_part_r32(m, k, packed, x, bias, use_bias, epilogue, alpha, y, part, parts) &
        bind(C, name='fkb_dense_apply_part_r32')
      !! `dense_apply` of one column, its panels of rows from `part * panels /
      !! parts` to `(part + 1) * panels / parts - 1` only (`part` in
      !! `0 .. parts - 1`): `parts` threads compute the column together, each
      !! element as in the whole call
      import :: c_int, c_float
      integer(c_int), value :: m, k, use_bias, epilogue, part, parts
      real(c_float), value :: alpha
      real(c_float), intent(in) :: packed(*), x(*), bias(*)
      real(c_float), intent(inout) :: y(*)
    end subroutine dense_apply_part_r32
    subroutine dense_apply_part_r64(m, k, packed, x, bias, use_bias, epilogue, alpha, y, part, parts) &
        bind(C, name='fkb_dense_apply_part_r64')
      import :: c_int, c_double
      integer(c_int), value :: m, k, use_bias, epilogue, part, parts
      real(c_double), value :: alpha
      real(c_double), intent(in) :: packed(*), x(*), bias(*)
      real(c_double), intent(inout) :: y(*)
    end subroutine dense_apply_part_r64

    subroutine dense_apply_aux_r32(m, k, n, packed, x, ldx, bias, use_bias, epilogue, alpha, y, ldy, &
                                   aux, ldaux) bind(C, name='fkb_dense_apply_aux_r32')
      !! `dense_apply` with the same rows of a second array `aux(ldaux, n)`:
      !! the values before a relu or leaky relu go there, and the
      !! activation-gradient epilogues read the activation's input from it
      import :: c_int, c_float
      integer(c_int), value :: m, k, n, ldx, use_bias, epilogue, ldy, ldaux
      real(c_float), value :: alpha
      real(c_float), intent(in) :: packed(*), x(ldx, *), bias(*)
      real(c_float), intent(inout) :: y(ldy, *)
      real(c_float) :: aux(ldaux, *)
        !! written or read, as the epilogue says
    end subroutine dense_apply_aux_r32
    subroutine dense_apply_aux_r64(m, k, n, packed, x, ldx, bias, use_bias, epilogue, alpha, y, ldy, &
                                   aux, ldaux) bind(C, name='fkb_dense_apply_aux_r64')
      import :: c_int, c_double
      integer(c_int), value :: m, k, n, ldx, use_bias, epilogue, ldy, ldaux
      real(c_double), value :: alpha
      real(c_double), intent(in) :: packed(*), x(ldx, *), bias(*)
      real(c_double), intent(inout) :: y(ldy, *)
      real(c_double) :: aux(ldaux, *)
    end subroutine dense_apply_aux_r64
  end interface

contains

  logical function dense_kernel_available()
    !! Whether this machine runs the kernels (and `FKB_DENSE_KERNEL` is not `blas`).
    dense_kernel_available = kernel_available() /= 0
  end function dense_kernel_available

end module fkb_dense_kernel
