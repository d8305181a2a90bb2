import random

import pytest

from lbaecodec import container
from lbaecodec.errors import LbaeFormatError

HEADER = container.Header("cifar10", b"\x01\x02\x03\x04", 500, 375, 1, 0, 32, 600)


def test_round_trip():
    payload = bytes(range(75))
    h, p = container.read(container.write(HEADER, payload))
    assert h == HEADER and p == payload


def test_size_is_header_plus_payload_plus_crc():
    data = container.write(HEADER, b"x" * 75)
    assert len(data) == len(container.header_bytes(HEADER, 75)) + 75 + container.CRC_BYTES
    # magic 3, version 1, name 1+7, hash 4, width 2, height 2, flags 1, tile 1, bits 2, length 1
    assert len(container.header_bytes(HEADER, 75)) == 25


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**21, 2**40])
def test_varints(n):
    h = container.Header("m", b"abcd", n + 1, 1, 0, 0, 32, 600)
    assert container.read(container.write(h, b""))[0].width == n + 1


def test_wrong_magic():
    with pytest.raises(LbaeFormatError, match="magic"):
        container.read(b"PNG" + container.write(HEADER, b"")[3:])


def test_unknown_version():
    data = bytearray(container.write(HEADER, b""))
    data[3] = 9
    with pytest.raises(LbaeFormatError, match="version 9"):
        container.read(bytes(data))


def test_crc_mismatch():
    data = bytearray(container.write(HEADER, b"payload"))
    data[-6] ^= 0x10
    with pytest.raises(LbaeFormatError, match="CRC"):
        container.read(bytes(data))


def test_trailing_bytes():
    with pytest.raises(LbaeFormatError, match="unexpected bytes"):
        container.read(container.write(HEADER, b"p") + b"\0")


def test_fuzz_flips_and_truncations_give_only_format_errors():
    valid = container.write(HEADER, bytes(range(75)))
    rng = random.Random(0)
    for i in range(3000):
        data = bytearray(valid)
        if i % 3 == 0:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if bytes(data) == valid:
            continue
        with pytest.raises(LbaeFormatError):
            container.read(bytes(data))


def test_rejects_bad_names():
    with pytest.raises(ValueError):
        container.write(container.Header("", b"abcd", 1, 1, 0, 0, 32, 600), b"")
