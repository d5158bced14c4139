module fkb_batch_blocks
  !! How a training pass shares a batch's columns among the library's OpenMP
  !! threads: in blocks of columns, several per thread, taken in any order
  !! (a thread that falls behind, say on a core another process wants,
  !! leaves its blocks to the others). The blocks never change a result:
  !! every column is computed from that column alone, and sums over the
  !! batch run over its columns in order whatever the blocks
  !! (docs/fortran-api.md, "Threads").
  !$ use omp_lib, only: omp_get_max_threads, omp_in_parallel
  implicit none
  private
  public :: column_block, training_threads

  integer, parameter :: tile_columns = 12
    !! the dense kernels' tile (`dense_tile_columns`): blocks are multiples
  integer, parameter :: min_columns = 48
    !! no block smaller (a block pays a kernel call's start-up)

contains

  pure integer function column_block(n, threads)
    !! Columns per block for a batch of `n` columns on `threads` threads:
    !! at least four blocks per thread, a multiple of the kernels' tile, at
    !! least 48 columns.
    integer, intent(in) :: n, threads
    integer :: per_block
    per_block = 4 * max(threads, 1) * tile_columns
    column_block = max(min_columns, tile_columns * ((n + per_block - 1) / per_block))
  end function column_block

  integer function training_threads(n)
    !! Threads for a training pass over `n` columns: the library's OpenMP
    !! threads; one inside a parallel region of the caller's, or for fewer
    !! than two blocks' worth of columns.
    integer, intent(in) :: n
    training_threads = 1
    !$ if (.not. omp_in_parallel() .and. n >= 2 * min_columns) training_threads = omp_get_max_threads()
  end function training_threads

end module fkb_batch_blocks
