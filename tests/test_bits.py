import numpy as np
import pytest

from lbaecodec import bits


@pytest.mark.parametrize("n_tiles,n_bits", [(1, 1), (1, 7), (1, 8), (3, 200), (5, 600), (2, 1500)])
def test_pack_unpack_round_trip(n_tiles, n_bits):
    rng = np.random.default_rng(n_bits)
    codes = rng.choice([-1.0, 1.0], size=(n_tiles, n_bits)).astype(np.float32)
    data = bits.pack(codes)
    assert len(data) == bits.packed_size(n_tiles * n_bits) == -(-n_tiles * n_bits // 8)
    np.testing.assert_array_equal(bits.unpack(data, n_tiles, n_bits), codes)


def test_bit_order_is_msb_first_and_padding_zero():
    codes = np.array([[1, -1, -1, -1, -1, -1, -1, -1, 1, 1]], dtype=np.float32)
    assert bits.pack(codes) == bytes([0b10000000, 0b11000000])


def test_unpack_rejects_wrong_length():
    with pytest.raises(ValueError):
        bits.unpack(b"\0" * 74, 1, 600)
