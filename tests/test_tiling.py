import numpy as np
import pytest
from PIL import Image

from lbaecodec import tiling


@pytest.mark.parametrize("w,h,cols,rows", [(1, 1, 1, 1), (32, 32, 1, 1), (33, 31, 2, 1), (500, 375, 16, 12)])
def test_grid(w, h, cols, rows):
    g = tiling.Grid(w, h, 32)
    assert (g.cols, g.rows, g.count) == (cols, rows, cols * rows)


@pytest.mark.parametrize("w,h,c", [(1, 1, 1), (31, 33, 3), (64, 64, 3), (70, 5, 1)])
@pytest.mark.parametrize("batch", [1, 3, 256])
def test_tiles_reassemble_exactly(w, h, c, batch):
    pixels = np.random.default_rng(w * h).integers(0, 256, (h, w, c), dtype=np.uint8)
    grid = tiling.Grid(w, h, 32)
    canvas = tiling.Canvas(grid, c)
    n = 0
    for tiles in tiling.iter_tile_batches(pixels, 32, batch):
        assert tiles.shape[1:] == (32, 32, c) and len(tiles) <= batch
        canvas.add(tiles)
        n += len(tiles)
    assert n == grid.count
    out = np.asarray(canvas.image("L" if c == 1 else "RGB")).reshape(h, w, c)
    np.testing.assert_array_equal(out, pixels)


def test_padding_repeats_edges():
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    tile = next(tiling.iter_tile_batches(pixels, 8, 4))[0, ..., 0]
    assert (tile[2:, :3] == pixels[1, :, 0]).all() and (tile[:2, 3:] == pixels[:, 2:3, 0]).all()


def test_missing_tiles_are_an_error():
    canvas = tiling.Canvas(tiling.Grid(40, 10, 32), 1)
    canvas.add(np.zeros((1, 32, 32, 1), np.uint8))
    with pytest.raises(ValueError):
        canvas.image("L")


def test_modes_are_normalised():
    rgba = Image.new("RGBA", (3, 2), (10, 20, 30, 40))
    with pytest.warns(UserWarning, match="alpha"):
        assert tiling.normalise_mode(rgba).mode == "RGB"
    assert tiling.normalise_mode(Image.new("P", (3, 2))).mode == "RGB"
    assert tiling.normalise_mode(Image.new("1", (3, 2))).mode == "L"
    ramp = np.array([[0, 257, 32896], [65535, 514, 1000]], np.uint16)  # a constant image could not
    out = tiling.normalise_mode(Image.fromarray(ramp))  # tell scaling from clipping
    assert out.mode == "L" and np.asarray(out).tolist() == [[0, 1, 128], [255, 2, 4]]
    assert tiling.normalise_mode(Image.new("CMYK", (3, 2))).mode == "RGB"


def test_gray_image_for_rgb_model_and_back():
    gray = Image.fromarray(np.full((4, 5), 77, np.uint8))
    arr = tiling.as_model_array(gray, 3)
    assert arr.shape == (4, 5, 3) and (arr == 77).all()


@pytest.mark.parametrize("sizes", [[3, 30, 1], [64], [1] * 9, [7, 1, 16]])
def test_rows_are_recut_into_fixed_batches_in_order(sizes):
    rows = np.arange(sum(sizes) * 2, dtype=np.float32).reshape(-1, 2)
    batches = np.split(rows, np.cumsum(sizes)[:-1])
    calls = []

    def run(batch):
        calls.append(len(batch))
        return batch * 10

    out = np.concatenate(list(tiling.in_fixed_batches(batches, run, 8)))
    np.testing.assert_array_equal(out, rows * 10)  # padding rows dropped, order kept
    assert calls == [8] * -(-len(rows) // 8)


def test_in_fixed_batches_does_not_copy_a_large_batch_per_call():
    rows = np.zeros((4000, 600), np.float32)
    bases = []
    list(tiling.in_fixed_batches([rows], lambda b: bases.append(b.base is rows) or b, 8))
    assert len(bases) == 500 and all(bases)  # views of the input, not copies of what is left
