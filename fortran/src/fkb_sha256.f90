module fkb_sha256
  !! SHA-256 (FIPS 180-4) in plain Fortran, used for the content hash of
  !! model files (docs/model-file.md).
  !!
  !! Every 32-bit word is held in an `int64` in the range `[0, 2**32)` and
  !! every sum is masked back to 32 bits, so no signed integer ever
  !! overflows. The message is processed 64 bytes at a time from the
  !! caller's buffer, never copied as a whole.
  use iso_fortran_env, only: int8, int64
  implicit none
  private
  public :: sha256_hex

  interface sha256_hex
    !! Lowercase hex digest (64 characters) of a byte sequence, given as a
    !! character string or as an `int8` array.
    module procedure sha256_hex_chars
    module procedure sha256_hex_bytes
  end interface sha256_hex

  integer(int64), parameter :: mask32 = int(z'FFFFFFFF', int64)

  integer(int64), parameter :: round_constants(0:63) = [ &
    int(z'428a2f98', int64), int(z'71374491', int64), int(z'b5c0fbcf', int64), int(z'e9b5dba5', int64), &
    int(z'3956c25b', int64), int(z'59f111f1', int64), int(z'923f82a4', int64), int(z'ab1c5ed5', int64), &
    int(z'd807aa98', int64), int(z'12835b01', int64), int(z'243185be', int64), int(z'550c7dc3', int64), &
    int(z'72be5d74', int64), int(z'80deb1fe', int64), int(z'9bdc06a7', int64), int(z'c19bf174', int64), &
    int(z'e49b69c1', int64), int(z'efbe4786', int64), int(z'0fc19dc6', int64), int(z'240ca1cc', int64), &
    int(z'2de92c6f', int64), int(z'4a7484aa', int64), int(z'5cb0a9dc', int64), int(z'76f988da', int64), &
    int(z'983e5152', int64), int(z'a831c66d', int64), int(z'b00327c8', int64), int(z'bf597fc7', int64), &
    int(z'c6e00bf3', int64), int(z'd5a79147', int64), int(z'06ca6351', int64), int(z'14292967', int64), &
    int(z'27b70a85', int64), int(z'2e1b2138', int64), int(z'4d2c6dfc', int64), int(z'53380d13', int64), &
    int(z'650a7354', int64), int(z'766a0abb', int64), int(z'81c2c92e', int64), int(z'92722c85', int64), &
    int(z'a2bfe8a1', int64), int(z'a81a664b', int64), int(z'c24b8b70', int64), int(z'c76c51a3', int64), &
    int(z'd192e819', int64), int(z'd6990624', int64), int(z'f40e3585', int64), int(z'106aa070', int64), &
    int(z'19a4c116', int64), int(z'1e376c08', int64), int(z'2748774c', int64), int(z'34b0bcb5', int64), &
    int(z'391c0cb3', int64), int(z'4ed8aa4a', int64), int(z'5b9cca4f', int64), int(z'682e6ff3', int64), &
    int(z'748f82ee', int64), int(z'78a5636f', int64), int(z'84c87814', int64), int(z'8cc70208', int64), &
    int(z'90befffa', int64), int(z'a4506ceb', int64), int(z'bef9a3f7', int64), int(z'c67178f2', int64)]

  integer(int64), parameter :: initial_state(0:7) = [ &
    int(z'6a09e667', int64), int(z'bb67ae85', int64), int(z'3c6ef372', int64), int(z'a54ff53a', int64), &
    int(z'510e527f', int64), int(z'9b05688c', int64), int(z'1f83d9ab', int64), int(z'5be0cd19', int64)]

contains

  pure function sha256_hex_chars(text) result(hex)
    !! Digest of the bytes of a character string (one byte per character).
    character(len=*), intent(in) :: text
    character(len=64) :: hex
    integer(int64) :: state(0:7), n, n_full, p

    n = len(text, kind=int64)
    n_full = 64 * (n / 64)
    state = initial_state
    do p = 0, n_full - 64, 64
      call compress_bytes(state, transfer(text(p+1:p+64), 0_int8, 64))
    end do
    hex = finish(state, transfer(text(n_full+1:n), 0_int8, int(n - n_full)), n)
  end function sha256_hex_chars

  pure function sha256_hex_bytes(bytes) result(hex)
    !! Digest of an array of bytes.
    integer(int8), intent(in) :: bytes(:)
    character(len=64) :: hex
    integer(int64) :: state(0:7), n, n_full, p

    n = size(bytes, kind=int64)
    n_full = 64 * (n / 64)
    state = initial_state
    do p = 0, n_full - 64, 64
      call compress_bytes(state, bytes(p+1:p+64))
    end do
    hex = finish(state, bytes(n_full+1:n), n)
  end function sha256_hex_bytes

  pure function finish(state, rest, n_total) result(hex)
    !! Pads the last (< 64) message bytes `rest`, compresses the final one or
    !! two blocks and gives the digest.
    integer(int64), intent(in) :: state(0:7)
    integer(int8), intent(in) :: rest(:)
    integer(int64), intent(in) :: n_total
    character(len=64) :: hex
    integer(int64) :: final_state(0:7), bit_length
    integer(int8) :: tail(128)
    integer :: n_rest, n_blocks, j, b

    n_rest = size(rest)
    tail = 0_int8
    tail(1:n_rest) = rest
    tail(n_rest + 1) = byte_of(128_int64)
    n_blocks = merge(1, 2, n_rest + 1 + 8 <= 64)
    bit_length = n_total * 8
    do j = 0, 7
      tail(64 * n_blocks - j) = byte_of(iand(shiftr(bit_length, 8 * j), 255_int64))
    end do
    final_state = state
    do b = 0, n_blocks - 1
      call compress_bytes(final_state, tail(64*b+1:64*b+64))
    end do
    hex = state_hex(final_state)
  end function finish

  pure subroutine compress_bytes(state, block)
    !! One SHA-256 compression of a 64-byte block.
    integer(int64), intent(inout) :: state(0:7)
    integer(int8), intent(in) :: block(64)
    integer(int64) :: w(0:63)
    integer :: j

    do j = 0, 15
      w(j) = ior(ior(shiftl(iand(int(block(4*j+1), int64), 255_int64), 24), &
                     shiftl(iand(int(block(4*j+2), int64), 255_int64), 16)), &
                 ior(shiftl(iand(int(block(4*j+3), int64), 255_int64), 8), &
                     iand(int(block(4*j+4), int64), 255_int64)))
    end do
    call compress(state, w)
  end subroutine compress_bytes

  pure subroutine compress(state, w)
    !! One SHA-256 compression of a 64-byte block whose 16 big-endian words
    !! are in `w(0:15)`; `w(16:63)` is used as the message schedule.
    integer(int64), intent(inout) :: state(0:7)
    integer(int64), intent(inout) :: w(0:63)
    integer(int64) :: a, b, c, d, e, f, g, h, s0, s1, t1, t2
    integer :: t

    do t = 16, 63
      s0 = ieor(ieor(rotr(w(t-15), 7), rotr(w(t-15), 18)), shiftr(w(t-15), 3))
      s1 = ieor(ieor(rotr(w(t-2), 17), rotr(w(t-2), 19)), shiftr(w(t-2), 10))
      w(t) = iand(w(t-16) + s0 + w(t-7) + s1, mask32)
    end do

    a = state(0); b = state(1); c = state(2); d = state(3)
    e = state(4); f = state(5); g = state(6); h = state(7)
    do t = 0, 63
      s1 = ieor(ieor(rotr(e, 6), rotr(e, 11)), rotr(e, 25))
      ! (not e) has its high bits set, but `and g` clears them again
      t1 = iand(h + s1 + ieor(iand(e, f), iand(not(e), g)) + round_constants(t) + w(t), mask32)
      s0 = ieor(ieor(rotr(a, 2), rotr(a, 13)), rotr(a, 22))
      t2 = s0 + ieor(ieor(iand(a, b), iand(a, c)), iand(b, c))
      h = g; g = f; f = e
      e = iand(d + t1, mask32)
      d = c; c = b; b = a
      a = iand(t1 + t2, mask32)
    end do
    state(0) = iand(state(0) + a, mask32)
    state(1) = iand(state(1) + b, mask32)
    state(2) = iand(state(2) + c, mask32)
    state(3) = iand(state(3) + d, mask32)
    state(4) = iand(state(4) + e, mask32)
    state(5) = iand(state(5) + f, mask32)
    state(6) = iand(state(6) + g, mask32)
    state(7) = iand(state(7) + h, mask32)
  end subroutine compress

  elemental function rotr(x, n) result(r)
    !! Rotates the 32-bit word `x` right by `n` bits.
    integer(int64), intent(in) :: x
    integer, intent(in) :: n
    integer(int64) :: r
    r = ior(shiftr(x, n), iand(shiftl(x, 32 - n), mask32))
  end function rotr

  elemental function byte_of(v) result(b)
    !! The `int8` holding the bit pattern of `v` in `[0, 255]`.
    integer(int64), intent(in) :: v
    integer(int8) :: b
    if (v > 127) then
      b = int(v - 256, int8)
    else
      b = int(v, int8)
    end if
  end function byte_of

  pure function state_hex(state) result(hex)
    !! Lowercase hex of the eight state words, big-endian.
    integer(int64), intent(in) :: state(0:7)
    character(len=64) :: hex
    character(len=16), parameter :: digits = '0123456789abcdef'
    integer :: i, j, nibble

    do i = 0, 7
      do j = 0, 7
        nibble = int(iand(shiftr(state(i), 28 - 4 * j), 15_int64))
        hex(8*i+j+1:8*i+j+1) = digits(nibble+1:nibble+1)
      end do
    end do
  end function state_hex

end module fkb_sha256
