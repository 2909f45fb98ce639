"""Procedural street scenes with a controllable synthetic -> real-ish domain shift.

The built-in data lets the demo, the tests and the benchmarks run anywhere, with no download.
A scene is a street seen from a car: sky, buildings, a road towards a vanishing point,
sidewalks, trees, poles with traffic signs, cars and people, painted back to front and labelled
with Cityscapes trainIds. Two styles share the geometry generator but not its statistics:

* ``source`` looks rendered: flat per-object colours from a clean palette, hard edges, a high
  horizon, few and small objects.
* ``target`` looks captured: textured surfaces (windows, asphalt grain, foliage), other colours
  for the same classes, a colour cast and other illumination, vignetting, blur and sensor noise,
  a lower horizon, more and larger cars and people, more vegetation.

Every sample is a pure function of ``(seed, index, style)``, so two processes (or two ranks)
produce byte-identical images. ``python -m uda.data.synthetic`` writes a split to disk as PNGs
plus a list file that :class:`uda.data.ListFileDataset` reads.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from uda.data.base import SegDataset
from uda.registry import DATASETS

# Cityscapes trainIds of the classes that appear in synthetic scenes.
ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, SKY, PERSON, CAR = 0, 1, 2, 5, 7, 8, 10, 11, 13
SYNTHETIC_CLASS_IDS: tuple[int, ...] = (
    ROAD,
    SIDEWALK,
    BUILDING,
    POLE,
    SIGN,
    VEGETATION,
    SKY,
    PERSON,
    CAR,
)
STYLES = ('source', 'target')


@dataclass(frozen=True)
class StyleParams:
    """Statistics of one domain. Colours are RGB in [0, 1]; ranges are (low, high)."""

    colours: dict  # trainId -> list of base colours an instance picks from
    colour_jitter: float  # per-instance colour noise (std)
    horizon: tuple[float, float]  # horizon height as a fraction of H
    road_half_width: tuple[float, float]  # half-width of the road at the bottom, fraction of W
    num_cars: tuple[int, int]
    car_scale: tuple[float, float]
    num_people: tuple[int, int]
    person_scale: tuple[float, float]
    num_trees: tuple[int, int]
    num_poles: tuple[int, int]
    building_height: tuple[float, float]  # top of buildings above the horizon, fraction of H
    textured: bool
    brightness: tuple[float, float]
    cast: tuple[float, float]  # multiplicative colour cast range per channel
    blur_sigma: tuple[float, float]
    noise_std: tuple[float, float]
    vignette: float


SOURCE_STYLE = StyleParams(
    colours={
        ROAD: [(0.50, 0.50, 0.52), (0.45, 0.45, 0.48)],
        SIDEWALK: [(0.80, 0.72, 0.62), (0.85, 0.80, 0.70)],
        BUILDING: [(0.80, 0.45, 0.35), (0.90, 0.85, 0.65), (0.60, 0.65, 0.75), (0.70, 0.70, 0.70)],
        POLE: [(0.35, 0.35, 0.38)],
        SIGN: [(0.95, 0.85, 0.10), (0.10, 0.35, 0.85)],
        VEGETATION: [(0.20, 0.65, 0.20), (0.30, 0.75, 0.25)],
        SKY: [(0.45, 0.70, 0.98)],
        PERSON: [(0.90, 0.20, 0.20), (0.20, 0.30, 0.90), (0.95, 0.65, 0.20)],
        CAR: [(0.85, 0.10, 0.10), (0.10, 0.20, 0.80), (0.95, 0.95, 0.95), (0.15, 0.60, 0.25)],
    },
    colour_jitter=0.03,
    horizon=(0.36, 0.46),
    road_half_width=(0.30, 0.42),
    num_cars=(1, 3),
    car_scale=(0.10, 0.18),
    num_people=(0, 2),
    person_scale=(0.08, 0.14),
    num_trees=(0, 2),
    num_poles=(1, 3),
    building_height=(0.20, 0.34),
    textured=False,
    brightness=(1.0, 1.0),
    cast=(1.0, 1.0),
    blur_sigma=(0.0, 0.0),
    noise_std=(0.0, 0.0),
    vignette=0.0,
)

TARGET_STYLE = StyleParams(
    colours={
        ROAD: [(0.34, 0.33, 0.35), (0.40, 0.38, 0.38)],
        SIDEWALK: [(0.62, 0.58, 0.55), (0.55, 0.54, 0.55)],
        BUILDING: [(0.62, 0.50, 0.44), (0.50, 0.50, 0.55), (0.70, 0.66, 0.56)],
        POLE: [(0.45, 0.45, 0.45)],
        SIGN: [(0.85, 0.80, 0.25), (0.25, 0.35, 0.70)],
        VEGETATION: [(0.30, 0.45, 0.18), (0.25, 0.38, 0.15)],
        SKY: [(0.70, 0.78, 0.88), (0.60, 0.70, 0.85)],
        PERSON: [(0.25, 0.20, 0.22), (0.55, 0.30, 0.25), (0.25, 0.30, 0.50)],
        CAR: [(0.25, 0.25, 0.28), (0.65, 0.65, 0.68), (0.55, 0.15, 0.12), (0.20, 0.25, 0.50)],
    },
    colour_jitter=0.05,
    horizon=(0.42, 0.54),
    road_half_width=(0.24, 0.36),
    num_cars=(2, 5),
    car_scale=(0.14, 0.26),
    num_people=(1, 4),
    person_scale=(0.12, 0.22),
    num_trees=(1, 4),
    num_poles=(1, 3),
    building_height=(0.26, 0.42),
    textured=True,
    brightness=(0.7, 0.95),
    cast=(0.85, 1.10),
    blur_sigma=(0.5, 1.1),
    noise_std=(0.02, 0.05),
    vignette=0.35,
)

STYLE_PARAMS = {'source': SOURCE_STYLE, 'target': TARGET_STYLE}


def _rng(seed: int, index: int, style: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), STYLES.index(style)])


class _Canvas:
    """An RGB float image, its label map and per-pixel texture keys, painted back to front."""

    def __init__(
        self, height: int, width: int, rng: np.random.Generator, style: StyleParams
    ) -> None:
        self.h, self.w, self.rng, self.style = height, width, rng, style
        self.img = np.zeros((height, width, 3), np.float32)
        self.lbl = np.full((height, width), SKY, np.uint8)
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def colour(self, cls: int) -> np.ndarray:
        choices = self.style.colours[cls]
        base = np.asarray(choices[self.rng.integers(len(choices))], np.float32)
        return np.clip(base + self.rng.normal(0, self.style.colour_jitter, 3), 0, 1)

    def paint(
        self,
        mask: np.ndarray,
        cls: int,
        colour: Optional[np.ndarray] = None,
        texture: Optional[np.ndarray] = None,
    ) -> None:
        """Fill ``mask`` with a class colour, modulated by ``texture`` (same shape) if given."""
        if not mask.any():
            return
        col = self.colour(cls) if colour is None else colour
        if texture is None:
            self.img[mask] = col
        else:
            self.img[mask] = np.clip(col[None] * texture[mask][:, None], 0, 1)
        self.lbl[mask] = cls

    def noise_texture(self, scale: float, amount: float) -> np.ndarray:
        """Smooth multiplicative noise around 1 (grain, foliage, stains)."""
        small = self.rng.normal(0, 1, (max(2, int(self.h / scale)), max(2, int(self.w / scale))))
        tex = cv2.resize(small.astype(np.float32), (self.w, self.h), interpolation=cv2.INTER_CUBIC)
        return 1.0 + amount * tex


def _render(
    height: int, width: int, rng: np.random.Generator, style: StyleParams
) -> tuple[np.ndarray, np.ndarray]:
    cv = _Canvas(height, width, rng, style)
    H, W = height, width
    u = rng.uniform
    horizon = u(*style.horizon) * H
    vx = u(0.38, 0.62) * W
    road_hw = u(*style.road_half_width) * W
    walk_hw = road_hw + u(0.12, 0.22) * W

    # Sky, with a vertical gradient when textured (haze towards the horizon).
    sky = cv.colour(SKY)
    if style.textured:
        cv.paint(np.ones((H, W), bool), SKY, sky, 0.85 + 0.3 * (cv.yy / H))
    else:
        cv.paint(np.ones((H, W), bool), SKY, sky)

    # Buildings: a row of blocks on each side, down to the ground.
    for side in (-1, 1):
        x = 0.0 if side < 0 else W
        edge = vx + side * 0.08 * W
        while (side < 0 and x < edge) or (side > 0 and x > edge):
            bw = u(0.08, 0.22) * W
            x0, x1 = (x, min(x + bw, edge)) if side < 0 else (max(x - bw, edge), x)
            top = horizon - u(*style.building_height) * H
            mask = (cv.xx >= x0) & (cv.xx < x1) & (cv.yy >= top) & (cv.yy < H)
            tex = None
            if style.textured:
                # Window grid plus stains: the texture a captured facade has.
                period_x, period_y = u(6, 12), u(7, 13)
                win = (np.mod(cv.xx - x0, period_x) > 0.45 * period_x) & (
                    np.mod(cv.yy - top, period_y) > 0.5 * period_y
                )
                tex = cv.noise_texture(8, 0.08) * np.where(win, u(0.55, 0.8), 1.0)
            cv.paint(mask, BUILDING, texture=tex)
            x = x1 if side < 0 else x0

    # Ground plane: sidewalks, then the road on top.
    below = cv.yy >= horizon
    depth = np.clip((cv.yy - horizon) / max(H - horizon, 1), 0, 1)  # 0 at horizon, 1 at bottom
    walk = below & (np.abs(cv.xx - vx) <= 0.01 * W + depth * walk_hw)
    road = below & (np.abs(cv.xx - vx) <= 0.005 * W + depth * road_hw)
    cv.paint(walk, SIDEWALK, texture=cv.noise_texture(3, 0.06) if style.textured else None)
    road_tex = None
    if style.textured:
        road_tex = cv.noise_texture(2, 0.10)
        # Lane marking: a dashed bright stripe, still labelled road.
        lane = (
            road
            & (np.abs(cv.xx - vx) <= 0.004 * W + depth * 0.012 * W)
            & (np.mod(np.log1p(20 * depth + 1e-3) * 9, 2) < 1)
        )
        road_tex = np.where(lane, 2.2, road_tex)
    cv.paint(road, ROAD, texture=road_tex)

    # Objects, each placed on the ground at depth d in (0, 1], drawn far to near.
    objects: list[tuple[float, str]] = []
    for _ in range(rng.integers(style.num_cars[0], style.num_cars[1] + 1)):
        objects.append((u(0.15, 1.0), 'car'))
    for _ in range(rng.integers(style.num_people[0], style.num_people[1] + 1)):
        objects.append((u(0.15, 1.0), 'person'))
    for _ in range(rng.integers(style.num_trees[0], style.num_trees[1] + 1)):
        objects.append((u(0.1, 0.9), 'tree'))
    for _ in range(rng.integers(style.num_poles[0], style.num_poles[1] + 1)):
        objects.append((u(0.1, 0.9), 'pole'))
    objects.sort(key=lambda o: o[0])
    for d, kind in objects:
        base_y = horizon + d * (H - horizon)
        side = -1 if rng.random() < 0.5 else 1
        if kind == 'car':
            cx = vx + u(-0.8, 0.8) * d * road_hw
            cw = u(*style.car_scale) * W * (0.3 + 0.9 * d)
            ch = cw * u(0.45, 0.6)
            body = (np.abs(cv.xx - cx) <= cw / 2) & (cv.yy <= base_y) & (cv.yy >= base_y - ch * 0.6)
            cabin = (
                (np.abs(cv.xx - cx) <= cw * 0.32)
                & (cv.yy < base_y - ch * 0.6)
                & (cv.yy >= base_y - ch)
            )
            col = cv.colour(CAR)
            tex = None
            if style.textured:
                tex = np.where(cabin, 0.45, 1.0) * cv.noise_texture(4, 0.05)
            cv.paint(body | cabin, CAR, col, tex)
        elif kind == 'person':
            px = vx + side * u(0.9, 1.2) * d * road_hw + side * 0.01 * W
            ph = u(*style.person_scale) * H * (0.3 + 1.0 * d)
            pw = ph * 0.28
            body = (
                ((cv.xx - px) / (pw / 2)) ** 2 + ((cv.yy - (base_y - ph * 0.42)) / (ph * 0.42)) ** 2
            ) <= 1
            head = ((cv.xx - px) ** 2 + (cv.yy - (base_y - ph * 0.9)) ** 2) <= (ph * 0.1) ** 2
            cv.paint(body | head, PERSON)
        elif kind == 'tree':
            tx = vx + side * u(1.05, 1.5) * d * walk_hw + side * 0.02 * W
            th = u(0.25, 0.45) * H * (0.3 + 0.9 * d)
            trunk = (
                (np.abs(cv.xx - tx) <= max(1.0, th * 0.04))
                & (cv.yy <= base_y)
                & (cv.yy >= base_y - th * 0.6)
            )
            r = th * u(0.22, 0.32)
            crown = (
                (cv.xx - tx) ** 2 / (r * 1.2) ** 2 + (cv.yy - (base_y - th * 0.7)) ** 2 / r**2
            ) <= 1
            tex = cv.noise_texture(1.5, 0.25) if style.textured else None
            cv.paint(trunk | crown, VEGETATION, texture=tex)
        else:  # pole with a sign
            px = vx + side * u(1.0, 1.15) * d * walk_hw + side * 0.01 * W
            ph = u(0.3, 0.5) * H * (0.3 + 0.9 * d)
            half = max(0.8, ph * 0.015)
            pole = (np.abs(cv.xx - px) <= half) & (cv.yy <= base_y) & (cv.yy >= base_y - ph)
            cv.paint(pole, POLE)
            s = max(2.0, ph * u(0.09, 0.14))
            sy = base_y - ph + s * 0.6
            if rng.random() < 0.5:
                sign = (np.abs(cv.xx - px) <= s / 2) & (np.abs(cv.yy - sy) <= s / 2)
            else:
                sign = ((cv.xx - px) ** 2 + (cv.yy - sy) ** 2) <= (s / 2) ** 2
            cv.paint(sign, SIGN)

    img = cv.img
    if style.textured:
        img = img * cv.noise_texture(16, 0.06)[..., None]
    # Camera: illumination, colour cast, vignetting, optics blur, sensor noise.
    img = img * u(*style.brightness) * rng.uniform(*style.cast, size=3).astype(np.float32)
    if style.vignette > 0:
        r2 = ((cv.xx - W / 2) / (W / 2)) ** 2 + ((cv.yy - H / 2) / (H / 2)) ** 2
        img = img * (1 - style.vignette * 0.5 * r2)[..., None]
    sigma = u(*style.blur_sigma)
    if sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sigma).astype(np.float32)
    noise = u(*style.noise_std)
    if noise > 0:
        img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return img, cv.lbl


def render_scene(
    index: int, style: str = 'source', seed: int = 0, size: Sequence[int] = (128, 256)
) -> tuple[np.ndarray, np.ndarray]:
    """Render one scene.

    Args:
        index: Sample index; with ``seed`` and ``style`` it fixes the scene.
        style: ``'source'`` (rendered look) or ``'target'`` (captured look).
        seed: Dataset seed: different seeds give disjoint-looking splits.
        size: ``(height, width)`` in pixels.

    Returns:
        ``(image [H, W, 3] uint8 RGB, label [H, W] uint8 Cityscapes trainIds)``.
    """
    if style not in STYLE_PARAMS:
        raise ValueError(f"Unknown synthetic style '{style}'; choose one of {list(STYLES)}.")
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ValueError(f'Synthetic scenes need size >= (16, 16), got {tuple(size)}.')
    return _render(h, w, _rng(seed, index, style), STYLE_PARAMS[style])


def write_split(
    out_dir: str,
    style: str,
    num: int,
    seed: int = 0,
    size: Sequence[int] = (128, 256),
    list_name: Optional[str] = None,
) -> str:
    """Write ``num`` scenes as ``images/*.png`` + ``labels/*.png`` and a list file.

    Returns:
        Path of the list file (lines ``images/x.png labels/x.png``, relative to ``out_dir``).
    """
    from PIL import Image

    os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
    os.makedirs(os.path.join(out_dir, 'labels'), exist_ok=True)
    lines = []
    for i in range(num):
        img, lbl = render_scene(i, style, seed, size)
        name = f'{style}_{seed}_{i:05d}.png'
        Image.fromarray(img).save(os.path.join(out_dir, 'images', name))
        Image.fromarray(lbl).save(os.path.join(out_dir, 'labels', name))
        lines.append(f'images/{name} labels/{name}')
    list_path = os.path.join(out_dir, list_name or f'{style}.txt')
    with open(list_path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return list_path


@DATASETS.register_module()
class SyntheticDataset(SegDataset):
    """Built-in procedural street scenes, rendered on the fly (:mod:`uda.data.synthetic`).

    Args:
        style: ``'source'`` or ``'target'``.
        num_samples: Length of the split.
        seed: Split seed; use different seeds for train and val.
        size: ``(height, width)`` of the rendered scenes.
        **kwargs: See :class:`SegDataset`.
    """

    def __init__(
        self,
        style: str = 'source',
        num_samples: int = 200,
        seed: int = 0,
        size: Sequence[int] = (128, 256),
        cache: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_samples < 1:
            raise ValueError(f'SyntheticDataset: num_samples must be >= 1, got {num_samples}.')
        self.style, self.num_samples, self.seed, self.size = style, num_samples, seed, tuple(size)
        render_scene(0, style, seed, (16, 16))  # fail early on a bad style
        # Rendering costs ~10 ms per scene on a CPU that also trains; persistent workers keep
        # the scenes they rendered (num_samples * H * W * 4 bytes per worker).
        self.cache = cache
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.num_samples

    def load(self, index: int) -> tuple[np.ndarray, Optional[np.ndarray], dict]:
        if index in self._cache:
            img, lbl = self._cache[index]
        else:
            img, lbl = render_scene(index, self.style, self.seed, self.size)
            if self.cache:
                self._cache[index] = (img, lbl)
        info = dict(
            img_path=f'synthetic://{self.style}/{self.seed}/{index}',
            label_path=f'synthetic://{self.style}/{self.seed}/{index}',
        )
        return img, (lbl if self.reads_label else None), info


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='Write built-in synthetic street scenes as PNGs plus a list file.'
    )
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--style', choices=STYLES, default='source')
    parser.add_argument('--num', type=int, default=100, help='number of scenes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, nargs=2, default=(128, 256), metavar=('H', 'W'))
    parser.add_argument('--list-name', default=None, help='list file name (default STYLE.txt)')
    args = parser.parse_args(argv)
    path = write_split(args.out, args.style, args.num, args.seed, args.size, args.list_name)
    print(f'wrote {args.num} {args.style} scenes and {path}')


if __name__ == '__main__':
    main()
