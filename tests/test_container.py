import random

import pytest

from lbaecodec import container
from lbaecodec.errors import LbaeFormatError

HEADER = container.Header("cifar10", b"\x01\x02\x03\x04", 500, 375, 1, 0, 32, 600, version=1)
V2 = container.Header("", b"\x01\x02\x03\x04", 32, 32, 1, 2, 0, 0)  # version 2: the model by hash alone


@pytest.mark.parametrize("header", [HEADER, V2], ids=["v1", "v2"])
def test_round_trip(header):
    payload = bytes(range(75))
    h, p = container.read(container.write(header, payload))
    assert h == header and p == payload
    assert container.read(container.write(header, b""))[1] == b""


def test_version_2_frames_a_32x32_image_in_15_bytes():
    # magic 3, version 1, hash 4, width 1, height 1, flags 1 + CRC 4
    assert len(container.write(V2, b"x" * 57)) == 15 + 57
    assert len(container.write(HEADER, b"x" * 57)) > 15 + 57 + 10


def test_size_is_header_plus_payload_plus_crc():
    data = container.write(HEADER, b"x" * 75)
    assert len(data) == len(container.header_bytes(HEADER, 75)) + 75 + container.CRC_BYTES
    # magic 3, version 1, name 1+7, hash 4, width 2, height 2, flags 1, tile 1, bits 2, length 1
    assert len(container.header_bytes(HEADER, 75)) == 25


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**21, 2**40])
def test_varints(n):
    for version in (1, 2):
        h = container.Header("m", b"abcd", n + 1, 1, 0, 0, 32, 600, version)
        assert container.read(container.write(h, b""))[0].width == n + 1


def test_wrong_magic():
    with pytest.raises(LbaeFormatError, match="magic"):
        container.read(b"PNG" + container.write(HEADER, b"")[3:])


def test_unknown_version():
    data = bytearray(container.write(HEADER, b""))
    data[3] = 9
    with pytest.raises(LbaeFormatError, match="version 9"):
        container.read(bytes(data))


def test_unknown_coding_method_names_itself():
    h = container.Header("", b"abcd", 32, 32, 1, container.Coding.HIDDEN, 0, 0)
    data = bytearray(container.write(h, b"x" * 8))
    for method in container.Coding:  # 0–3, and 5–7: 1–3 with a tight end
        data[10] = 1 | method << container.CODING_SHIFT
        data[-4:] = container._crc(bytes(data[:-4]))
        assert container.read(bytes(data))[0].coding == method == container.Coding.from_label(method.label)
    assert container.Coding(7).label == "hidden-tight" and container.Coding(7).prior_method == container.Coding.HIDDEN
    data[10] = 1 | 4 << container.CODING_SHIFT  # RGB, method 4
    data[-4:] = container._crc(bytes(data[:-4]))
    with pytest.raises(LbaeFormatError, match="unknown coding method 4"):
        container.read(bytes(data))


def test_crc_mismatch():
    data = bytearray(container.write(HEADER, b"payload"))
    data[-6] ^= 0x10
    with pytest.raises(LbaeFormatError, match="CRC"):
        container.read(bytes(data))


def test_trailing_bytes():
    with pytest.raises(LbaeFormatError, match="unexpected bytes"):
        container.read(container.write(HEADER, b"p") + b"\0")
    with pytest.raises(LbaeFormatError, match="CRC"):  # version 2: the payload runs to the CRC
        container.read(container.write(V2, b"p") + b"\0")


@pytest.mark.parametrize("header", [HEADER, V2], ids=["v1", "v2"])
def test_fuzz_flips_and_truncations_give_only_format_errors(header):
    valid = container.write(header, bytes(range(75)))
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
        container.write(container.Header("", b"abcd", 1, 1, 0, 0, 32, 600, version=1), b"")
    with pytest.raises(ValueError):
        container.write(container.Header("m", b"abcd", 1, 1, 0, 0, 32, 600, version=5), b"")
