module fkb_batch_blocks
  !! How a training pass shares a batch's columns among the library's OpenMP
  !! threads: in blocks of columns, several per thread, taken in any order
  !! (a thread that falls behind, say on a core another process wants,
  !! leaves its blocks to the others). The blocks never change a result:
  !! every column is computed from that column alone, and sums over the
  !! batch run over its columns in order whatever the blocks
  !! (docs/fortran-api.md, "Threads").
  use iso_fortran_env, only: int64, real64
  !$ use omp_lib, only: omp_get_max_threads, omp_in_parallel, omp_set_num_threads
  implicit none
  private
  public :: column_block, training_threads, elementwise_threads, step_threads

  integer, parameter :: probe_every = 50, probe_every_most = 3200
    !! steps between two probes of the thread count; while one thread keeps
    !! winning, twice as many after each probe, up to probe_every_most
  real(real64), parameter :: one_thread_margin = 0.95_real64
    !! one thread is chosen when it takes less than this fraction of the
    !! time per column of all threads
  real(real64), parameter :: slow_margin = 1.25_real64
    !! all threads are suspected slowed (and one thread tried) when a probe
    !! on them takes more than this many times their best time per column

  type :: step_threads
    !! The thread count of each optimizer step of a `fit` (or of each
    !! `predict` of a batch shared among threads), chosen by measurement
    !! kept from one call to the next. Every 50 steps one step is timed on
    !! all the library's threads; that is all unless it is the first such
    !! probe or took more than 1.25 times the best time per column seen on
    !! all threads (or, on one thread, more than one thread's): then the
    !! next step runs on one, and the steps until the next probe run on one
    !! thread if it was at least 5 % faster per column. On a quiet machine
    !! all threads stay (one step is spent on one); when another process
    !! keeps a core busy, a thread that shares its core waits for its turn
    !! at every pass over a layer, and one thread alone goes faster. While
    !! one thread keeps winning, the probes come at twice the interval each
    !! time, up to every 3,200 steps: a probe on all threads can wait a whole
    !! time slice of the other process for a descheduled partner, which
    !! would cost a short step (one column: 7 us) far more than it saves.
    !! The thread count never changes a result (the blocks of a batch do
    !! not), so the choice costs nothing but the probes.
    integer :: most = 1
      !! the library's threads
    integer :: chosen = 1
      !! the threads of the steps between probes
    integer :: step = 0
    integer :: probe_at = 2
      !! the step of the next probe on all threads (the first step grows the
      !! workspaces: probes from the second on)
    integer :: interval = probe_every
      !! steps from one probe on all threads to the next
    real(real64) :: all_rate = 0.0_real64, one_rate = 0.0_real64
      !! seconds per column of the last probes
    real(real64) :: best_all_rate = huge(1.0_real64)
      !! the fewest seconds per column of a probe on all threads
    logical :: probe_one = .false.
      !! whether the step after a probe on all threads runs on one
    integer :: now = 1
      !! the threads of the step under way
    integer(int64) :: started = 0
  contains
    procedure :: follow_threads => step_threads_follow_threads
    procedure :: start_call => step_threads_start_call
    procedure :: start => step_threads_start
    procedure :: finish => step_threads_finish
    procedure :: restore => step_threads_restore
  end type step_threads

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

  integer function elementwise_threads(count)
    !! Threads for an elementwise pass over `count` values (an optimizer
    !! step, a check of the gradient): the library's OpenMP threads from
    !! 65,536 values on, outside a parallel region of the caller's.
    integer, intent(in) :: count
    elementwise_threads = 1
    !$ if (.not. omp_in_parallel() .and. count >= 65536) elementwise_threads = omp_get_max_threads()
  end function elementwise_threads

  subroutine step_threads_follow_threads(self)
    !! Before a run of steps (a `fit`, a `predict`): start measuring afresh
    !! if the library's thread count changed since the last.
    class(step_threads), intent(inout) :: self
    integer :: available
    available = 1
    !$ if (.not. omp_in_parallel()) available = omp_get_max_threads()
    if (self%step > 0 .and. available /= self%most) self%step = 0
  end subroutine step_threads_follow_threads

  subroutine step_threads_start_call(self, threads)
    !! Before a call that hands its parallel regions their thread count
    !! itself (a `predict`): `follow_threads`, `start` without setting the
    !! OpenMP threads, and `threads` (those available) cut to the choice.
    class(step_threads), intent(inout) :: self
    integer, intent(inout) :: threads
    call self%follow_threads()
    call self%start(set_omp=.false.)
    threads = min(threads, self%now)
  end subroutine step_threads_start_call

  subroutine step_threads_start(self, set_omp)
    !! Before a step: choose the threads it runs on (`now`), make them the
    !! OpenMP threads unless `set_omp` is `.false.` (the caller passes `now`
    !! to its parallel regions itself), and start its clock.
    class(step_threads), intent(inout) :: self
    logical, intent(in), optional :: set_omp
    logical :: set
    if (self%step == 0) then
      self%most = 1
      !$ if (.not. omp_in_parallel()) self%most = omp_get_max_threads()
      self%chosen = self%most
      self%best_all_rate = huge(1.0_real64)
      self%probe_one = .false.
      self%probe_at = 2
      self%interval = probe_every
    end if
    self%step = self%step + 1
    ! a probe whose step did not finish (a failed call): probe now
    if (self%step > self%probe_at + 1) self%probe_at = self%step
    self%now = self%chosen
    if (self%most > 1) then
      if (self%step == self%probe_at) self%now = self%most
      if (self%step == self%probe_at + 1 .and. self%probe_one) self%now = 1
      set = .true.
      if (present(set_omp)) set = set_omp
      !$ if (set) call omp_set_num_threads(self%now)
    end if
    call system_clock(self%started)
  end subroutine step_threads_start

  subroutine step_threads_finish(self, columns)
    !! After a step over `columns` columns: record its time if it probed.
    class(step_threads), intent(inout) :: self
    integer, intent(in) :: columns
    integer(int64) :: finished, rate
    real(real64) :: seconds
    if (self%most <= 1) return
    call system_clock(finished, rate)
    seconds = real(finished - self%started, real64) / real(max(rate, 1_int64), real64) / &
              real(max(columns, 1), real64)
    if (self%step == self%probe_at) then
      self%all_rate = seconds
      self%best_all_rate = min(self%best_all_rate, seconds)
      ! on one thread, try one again only while all are still slow
      self%probe_one = self%step == 2 .or. seconds > slow_margin * self%best_all_rate .or. &
                       (self%chosen == 1 .and. seconds > self%one_rate)
      if (.not. self%probe_one) then
        self%chosen = self%most
        self%interval = probe_every
        self%probe_at = self%probe_at + self%interval
      end if
    else if (self%step == self%probe_at + 1 .and. self%probe_one) then
      self%one_rate = seconds
      self%chosen = self%most
      if (self%one_rate < one_thread_margin * self%all_rate) self%chosen = 1
      ! one thread winning again: probe half as often (see the type)
      if (self%chosen == 1 .and. self%step > 3) then
        self%interval = min(2 * self%interval, probe_every_most)
      else
        self%interval = probe_every
      end if
      self%probe_at = self%probe_at + self%interval
    end if
  end subroutine step_threads_finish

  subroutine step_threads_restore(self)
    !! After the last step of a `fit`: the library's threads as they were
    !! (the measurements go on with the next `fit`).
    class(step_threads), intent(inout) :: self
    !$ if (self%most > 1) call omp_set_num_threads(self%most)
  end subroutine step_threads_restore

end module fkb_batch_blocks
