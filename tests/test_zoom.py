"""Zoom-In: crops around the object for later clicks, masks pasted back at the photo's size."""

from __future__ import annotations

import numpy as np

from zeroseg.eval.clicks import Click
from zeroseg.eval.interactive import PredictorModel
from zeroseg.segment.zoom import ZoomIn, ZoomSettings, choose_crop


def test_choose_crop_frames_mask_clicks_and_box_inside_the_photo():
    mask = np.zeros((100, 200), bool)
    mask[40:50, 90:110] = True  # 20 wide, 10 tall

    def crop(mask, points=None, box=None, expansion=2.0, min_side=0.3, max_share=1.0):
        settings = ZoomSettings(expansion, min_side, max_share, skip_clicks=-1)  # zoom from the start
        return choose_crop(mask.shape, mask, points, box, None, settings)

    assert crop(mask, min_side=0.0) == (80, 35, 120, 55)  # twice as wide and tall, same centre
    assert crop(mask, expansion=1.0) == (70, 15, 130, 75)  # >= 0.3 x 200
    assert crop(np.zeros_like(mask), np.array([[195.0, 2.0]])) == (140, 0, 200, 60)  # inside
    assert crop(mask, box=(0, 0, 200, 100)) == (0, 0, 200, 100)
    assert crop(mask, box=(0, 0, 200, 100), max_share=0.7) is None  # most of the photo: not worth it
    assert crop(np.zeros_like(mask)) is None


class FakePredictor:
    """Records what it is asked; its mask is the box of the clicks (in whatever image it was given)."""

    def __init__(self) -> None:
        self.images: list[tuple[int, int]] = []
        self.calls: list[dict] = []

    def set_image(self, image: np.ndarray) -> None:
        self.images.append(image.shape[:2])
        self.shape = image.shape[:2]

    def mask_to_input(self, mask: np.ndarray) -> np.ndarray:
        assert mask.shape == self.shape
        return np.full((1, 8, 8), 7.0, np.float32)

    def predict(self, point_coords, point_labels, box, mask_input, multimask_output):
        self.calls.append({"points": point_coords, "mask_input": mask_input, "box": box})
        mask = np.zeros(self.shape, bool)
        corners = np.asarray(box, float).reshape(2, 2) if point_coords is None else point_coords
        xs, ys = corners[:, 0].astype(int), corners[:, 1].astype(int)
        mask[ys.min() : ys.max() + 5, xs.min() : xs.max() + 5] = True
        return mask[None], np.array([0.9]), np.zeros((1, 8, 8), np.float32)


def test_later_clicks_are_answered_in_a_crop_and_pasted_back():
    fake = FakePredictor()
    model = PredictorModel(fake, zoom_in=True)  # first clicks on the whole photo (no first look: the default)
    model.set_image(np.zeros((200, 400, 3), np.uint8))
    first = [Click(100, 50, True)]
    mask, low_res = model.predict(first, None)
    assert fake.images[-1] == (200, 400) and mask.shape == (200, 400)  # the first click: the whole photo
    second = first + [Click(110, 60, True)]
    mask, low_res = model.predict(second, low_res)
    assert fake.images[-1] != (200, 400)  # now a crop
    (x0, y0, *_), crop = model.zoom.crop, fake.calls[-1]
    assert np.allclose(crop["points"], np.array([[100, 50], [110, 60]]) - [x0, y0])
    assert crop["mask_input"][0, 0, 0] == 7.0  # a new crop starts from the previous mask
    assert mask.shape == (200, 400) and mask[50:65, 100:115].all() and mask.sum() == 15 * 15
    frame = model.zoom.crop
    model.predict(second + [Click(104, 55, False)], low_res)
    assert model.zoom.crop == frame and not fake.calls[-1]["mask_input"].any()  # same crop: the logits as given
    model.predict([Click(300, 150, True)], None)  # a new object starts on the whole photo again
    assert fake.images[-1] == (200, 400) and model.zoom.crop is None


class SpillingPredictor(FakePredictor):
    """On the whole photo a click's mask is a 120 x 180 box around it (``spill``) or a 10 x 10 one; in a
    crop it is an 8 x 8 square, or (``large``) the whole crop."""

    def __init__(self, large: bool = False, spill: bool = True) -> None:
        super().__init__()
        self.large, self.spill = large, spill

    def predict(self, point_coords, point_labels, box, mask_input, multimask_output):
        self.calls.append({"points": point_coords, "shape": self.shape})
        mask = np.zeros(self.shape, bool)
        x, y = int(point_coords[0, 0]), int(point_coords[0, 1])
        if self.shape == (200, 400):  # the whole photo
            reach = (60, 90) if self.spill else (5, 5)
            mask[max(y - reach[0], 0) : y + reach[0], max(x - reach[1], 0) : x + reach[1]] = True
        elif self.large:
            mask[:] = True
        else:
            mask[y - 4 : y + 4, x - 4 : x + 4] = True
        return mask[None], np.array([0.9]), np.zeros((1, 8, 8), np.float32)


def test_a_first_click_keeps_the_close_up_answer_only_for_a_small_object_the_photo_spilled_over():
    photo = np.zeros((200, 400, 3), np.uint8)
    for large, spill in ((False, True), (True, True), (False, False)):
        fake = SpillingPredictor(large, spill)
        zoom = ZoomIn(fake, ZoomSettings(first_look=True))
        zoom.set_image(photo)
        masks, _, _ = zoom.predict(np.array([[200.0, 100.0]]), np.array([1]), multimask_output=True)
        shapes = [call["shape"] for call in fake.calls]
        assert shapes == [(200, 400), (120, 120)]  # the whole photo, then a crop of 0.3 x 400 around the click
        if large or not spill:  # the object is larger than the crop, or the photo's answer did not spill
            assert zoom.crop is None and masks[0].sum() == (120 * 180 if spill else 100)
            assert fake.images[-1] == (200, 400)  # the predictor holds the photo again
        else:  # a small square inside the crop: the close-up answer, pasted back
            assert zoom.crop == (140, 40, 260, 160) and fake.images[-1] == (120, 120)
            assert masks.shape == (1, 200, 400) and masks[0, 96:104, 196:204].all() and masks[0].sum() == 64


def test_the_app_looks_close_at_a_first_click_and_zooms_in_on_later_clicks_as_the_preset_says(tmp_path):
    from PIL import Image

    from zeroseg import hub
    from zeroseg.io import rle_to_mask
    from zeroseg.server.segmenter import Segmenter

    image = np.full((240, 320, 3), 40, np.uint8)
    image[100:130, 150:190] = (230, 200, 60)  # a small bright object
    path = tmp_path / "small.png"
    Image.fromarray(image).save(path)
    model = hub.load_model("lite")
    assert model.zoom_in  # lite's preset: on
    looking = Segmenter(model, first_look=True)  # zeroseg serve --first-look
    close_up = looking.predict(1, path, [(170, 115, 1)])[0]
    truth = np.zeros((240, 320), bool)
    truth[100:130, 150:190] = True
    mask = rle_to_mask(close_up.rle)
    assert mask.shape == (240, 320) and (mask & truth).sum() / (mask | truth).sum() > 0.8
    # a flat bright object: the whole photo's answer did not spill, so it stands (the close-up is in the test above)
    assert looking.zoom.first_look and close_up.crop is None
    app = Segmenter(model)
    first = app.predict(1, path, [(170, 115, 1)])
    assert not app.zoom.first_look and first[0].crop is None  # the app's default: no second embedding
    second = app.predict(1, path, [(170, 115, 1), (152, 102, 1)], mask_input=first[0].id, multimask=False)
    crop = second[0].crop
    assert crop is not None and crop[0] <= 150 and crop[2] >= 190 and (crop[2] - crop[0]) < 320
    assert rle_to_mask(second[0].rle).shape == (240, 320)  # pasted back at the photo's size
    third = app.predict(1, path, [(170, 115, 1), (152, 102, 1), (186, 126, 1)], mask_input=second[0].id,
                        multimask=False)  # fmt: skip
    assert third[0].crop == crop  # the object still fits: the same crop, its logits reused
    plain = Segmenter(model, zoom_in=False)  # zeroseg serve --no-zoom-in
    again = plain.predict(1, path, [(170, 115, 1), (152, 102, 1)], mask_input=plain.predict(1, path, [(170, 115, 1)])[0].id)
    assert again[0].crop is None


def test_a_small_box_is_clicked_at_its_centre_judged_on_the_whole_photo():
    fake = FakePredictor()
    fake.box_choice = True  # the lite preset's box rules
    model = PredictorModel(fake, zoom_in=True)
    model.set_image(np.zeros((200, 400, 3), np.uint8))
    model.predict([], None, box=(100, 50, 120, 60))  # 0.25% of the photo
    (x0, y0, *_), call = model.zoom.crop, fake.calls[-1]
    assert np.allclose(call["points"], np.array([[110, 55]]) - [x0, y0])  # in the crop's frame
    assert np.allclose(call["box"], np.array([100, 50, 120, 60]) - [x0, y0, x0, y0])
    fake.box_choice = False
    model.predict([], None, box=(100, 50, 120, 60))
    assert fake.calls[-1]["points"] is None  # without the rules: the box alone
