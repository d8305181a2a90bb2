import gzip
import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from lbaecodec.errors import DataError
from lbaecodec.lab import data, formats


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 7), ("test", 3)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        names = data.MNIST_FILES[(split, "images")], data.MNIST_FILES[(split, "labels")]
        for name, arr in zip(names, (images, labels), strict=True):
            (tmp_path / name).write_bytes(gzip.compress(idx_bytes(arr)))
    return tmp_path


def test_idx_mnist_is_padded_to_32(mnist_dir):
    x, y = data.load("mnist", "train", mnist_dir)
    assert x.shape == (7, 32, 32, 1) and y.shape == (7,)
    raw = formats.read_idx(mnist_dir / data.MNIST_FILES[("train", "images")])
    np.testing.assert_array_equal(x[:, 2:30, 2:30, 0], raw)
    assert x[:, :2].max() == 0 and x[:, :, 30:].max() == 0


def test_uncompressed_idx_is_found(mnist_dir):
    name = data.MNIST_FILES[("test", "images")]
    (mnist_dir / name[:-3]).write_bytes(gzip.decompress((mnist_dir / name).read_bytes()))
    (mnist_dir / name).unlink()
    assert data.load("fashion-mnist", "test", mnist_dir)[0].shape == (3, 32, 32, 1)


@pytest.mark.parametrize("damage", ["truncate", "magic", "gzip"])
def test_corrupted_idx_is_a_clean_error(mnist_dir, damage):
    path = mnist_dir / data.MNIST_FILES[("train", "images")]
    raw = gzip.decompress(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(gzip.compress(raw[:-10]))
    elif damage == "magic":
        path.write_bytes(gzip.compress(b"\1\2" + raw[2:]))
    else:
        path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError):
        data.load("mnist", "train", mnist_dir)


def test_missing_files_are_a_clean_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.load("mnist", "train", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        data.load("mnist", "train", tmp_path / "nope")


def cifar_batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return pickle.dumps(
        {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n).tolist())}
    )


def write_cifar(folder, batches):
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name, payload in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_cifar_archive(tmp_path):
    batches = {f"data_batch_{i}": cifar_batch(2, i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(3, 9)
    write_cifar(tmp_path, batches)
    x, y = data.load("cifar10", "train", tmp_path)
    assert x.shape == (10, 32, 32, 3) and len(y) == 10
    first = pickle.loads(batches["data_batch_1"])[b"data"][0]
    np.testing.assert_array_equal(x[0, :, :, 0].reshape(-1), first[:1024])  # red plane first
    assert data.load("cifar10", "test", tmp_path)[0].shape == (3, 32, 32, 3)


class Boom:
    def __reduce__(self):
        return (print, ("code ran",))


def test_cifar_unpickler_refuses_code(tmp_path, capsys):
    write_cifar(tmp_path, {"test_batch": pickle.dumps({b"data": Boom(), b"labels": []})})
    with pytest.raises(DataError, match="refusing"):
        data.load("cifar10", "test", tmp_path)
    assert "code ran" not in capsys.readouterr().out


def test_npz_copy(tmp_path):
    x = np.zeros((4, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "cifar10-copy.npz", x_train=x, y_train=np.arange(4), x_test=x[:2])
    assert data.load("cifar10", "test", tmp_path)[0].shape == (2, 32, 32, 3)
    assert data.load("cifar10", "train", tmp_path / "cifar10-copy.npz")[1].tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match="x_test"):
        np.savez(tmp_path / "only.npz", x_train=x)
        data.load("cifar10", "test", tmp_path / "only.npz")


def test_image_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (50, 40), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("L", (20, 30), 128).save(tmp_path / "sub" / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    x = data.load_folder(tmp_path, 32, 3)
    assert x.shape == (2, 32, 32, 3) and tuple(x[0, 5, 5]) == (255, 0, 0)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="broken.png"):
        data.load_folder(tmp_path, 32, 3)


def celeba_zip(folder, count: int):
    """A tiny img_align_celeba.zip of count 89×109 faces (half the official size)."""
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as z:
        for i in range(1, count + 1):
            img = Image.new("RGB", (89, 109), (0, 0, 0))
            img.paste((200, 100, 50), (10, 20, 79, 89))  # a 70-px face in the crop's place
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=95)
            z.writestr(f"img_align_celeba/{i:06d}.jpg", buf.getvalue())


def test_celeba_zip_crops_and_splits(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CELEBA_LOCAL_TEST", 2)
    monkeypatch.setenv("LBAECODEC_CACHE", str(tmp_path / "cache"))
    celeba_zip(tmp_path, 5)
    x, _ = data.load("celeba", "train", tmp_path)
    assert x.shape == (3, 64, 64, 3)
    assert abs(int(x[0, 32, 32, 0]) - 200) < 10 and abs(int(x[0, 2, 2, 0]) - 200) < 40
    assert data.load("celeba", "test", tmp_path)[0].shape == (2, 64, 64, 3)


def test_celeba_attributes_follow_the_split_order(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CELEBA_LOCAL_TEST", 2)
    celeba_zip(tmp_path, 5)
    rows = "".join(f"{i:06d}.jpg {1 if i % 2 else -1} {-1 if i < 3 else 1}\n" for i in (5, 3, 1, 2, 4))
    attr = tmp_path / "list_attr_celeba.txt"
    attr.write_text(f"5\nSmiling Eyeglasses\n{rows}")
    names, matrix = data.celeba_attributes(attr, "train", tmp_path)
    assert names == ["Smiling", "Eyeglasses"]
    assert matrix.tolist() == [[1, -1], [-1, -1], [1, 1]]  # files 000001–000003, in order
    attr.write_text("2\nSmiling Eyeglasses\n000001.jpg 1 1\n000002.jpg 1 1\n")
    with pytest.raises(DataError, match="no attributes for 1 of 3 images"):
        data.celeba_attributes(attr, "train", tmp_path)
    for bad in ("1\n", "1\nA B\nx.jpg 1\n", "1\nA\nx.jpg yes\n"):
        attr.write_text(bad)
        with pytest.raises(DataError):
            data.celeba_attributes(attr, "train", tmp_path)


def test_download_checksum_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("LBAECODEC_CACHE", str(tmp_path))
    target = tmp_path / "mnist" / data.MNIST_FILES[("test", "labels")]
    target.parent.mkdir()
    target.write_bytes(b"tampered")
    with pytest.raises(DataError, match="checksum"):
        data.fetch("mnist", target.name)


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        data.load("imagenet", "train", tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        data.load("mnist", "val", tmp_path)
