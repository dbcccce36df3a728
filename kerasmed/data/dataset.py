"""``keras.utils.PyDataset`` loaders that stream samples from disk in fixed-shape batches.

Per sample, in this order:

1. read the image (its stored dtype, converted to ``channels``) and the mask (encoded by
   ``mask_mode``), or take them from the in-memory cache;
2. bring both to ``image_size`` (``fit``: stretch, letterbox, centre/random crop, a tile, or
   a training patch, a share of them forced onto foreground as in nnU-Net);
3. training only: ``augment(image, mask, rng)``, on the image still in its stored dtype (so
   Augmentor's 8-bit operations apply and the 16-bit safeguards in kerasmed.data.augment are
   used), at the model's input size (cheaper than at full resolution);
4. normalise the image to ``float32`` and encode the mask as the training target.

Randomness (epoch order, random crops, augmentation) comes from ``numpy`` generators seeded by
``(seed, epoch)`` and ``(seed, epoch, sample index)``, so a batch is the same whatever the number
of workers, threads or processes and whatever order they run in. ``set_epoch`` restores the
epoch counter when a run is resumed.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from kerasmed.data.augment import Augmentation, build_augmentation
from kerasmed.data.io import (ON_ERROR, ImageReadError, image_size, looks_like_image,
                              looks_like_mask, read_class_mask, read_image, read_label_mask,
                              read_mask)
from kerasmed.data.memory import CACHE_SHARE, cache_bytes, physical_memory_bytes
from kerasmed.data.normalize import NORMALIZATIONS, make_normalizer, normalize_image
from kerasmed.data.spatial import (FIT_MODES, crop_or_pad, fit_pair, foreground_patch_origin,
                                   random_patch_origin, resize_image, resize_mask, tile_origins)
from kerasmed.data.targets import distance_map
from kerasmed.names import KerasmedWarning

__all__ = ["SegmentationDataset", "ClassificationDataset", "normalize_image", "NORMALIZATIONS",
           "MASK_MODES", "TRAINING_MASK_MODES", "check_samples"]

# The targets a network trains on; "instances" keeps the labels themselves (evaluation).
TRAINING_MASK_MODES = ("binary", "classes", "distance")
MASK_MODES = TRAINING_MASK_MODES + ("instances",)
# Fit modes that cut windows out of the whole image: the cache keeps whole decoded images.
_WINDOWED = ("random_crop", "tile", "patches")


def _resolve_augment(augment):
    if augment is None or isinstance(augment, (list, tuple)):
        augment = build_augmentation(augment)
    elif not callable(augment):
        raise ValueError(f"augment must be a list of operations or a callable (image, mask, rng) "
                         f"-> (image, mask), got {type(augment).__name__}")
    return None if isinstance(augment, Augmentation) and not len(augment) else augment


def check_samples(samples, read, workers: int = 4):
    """Decode every sample with ``read(sample)``; return ``(good, problems, results)``.

    ``problems`` is a list of ``(sample, message)`` (the message names the file);
    ``results`` maps the index of each good sample to what ``read`` returned.
    """
    def attempt(i):
        try:
            return i, read(samples[i]), None
        except (ImageReadError, ValueError) as err:
            return i, None, str(err)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(attempt, range(len(samples))))
    good, problems, results = [], [], {}
    for i, value, error in outcomes:
        if error is None:
            results[len(good)] = value
            good.append(samples[i])
        else:
            problems.append((samples[i], error))
    return good, problems, results


class _BaseDataset(keras.utils.PyDataset):
    _fit_modes = FIT_MODES

    def __init__(self, samples, batch_size, image_size, channels=3, shuffle=False, seed=0,
                 normalization="auto", cache=False, augment=None, fit="resize", training=None,
                 drop_remainder=None, on_error="raise", pad_value=0, tile_overlap=0, page=0,
                 verify=True, patches_per_epoch=None, foreground_share=1 / 3,
                 passes_per_epoch=1, **kwargs):
        super().__init__(**kwargs)
        if not samples:
            raise ValueError(f"{type(self).__name__} needs at least one sample")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if fit not in self._fit_modes:
            raise ValueError(f"fit must be one of {self._fit_modes}, got {fit!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be {' or '.join(map(repr, ON_ERROR))}, got "
                             f"{on_error!r}")
        if isinstance(foreground_share, bool) or not isinstance(foreground_share, (int, float)) \
                or not 0 <= foreground_share <= 1:
            raise ValueError(f"foreground_share must be a number in [0, 1], got "
                             f"{foreground_share!r}")
        if patches_per_epoch is not None:
            if fit != "patches":
                raise ValueError(f"patches_per_epoch applies to fit='patches' only, not "
                                 f"fit={fit!r}")
            if isinstance(patches_per_epoch, bool) or not isinstance(
                    patches_per_epoch, (int, np.integer)) or patches_per_epoch < 1:
                raise ValueError(f"patches_per_epoch must be a positive integer or None, got "
                                 f"{patches_per_epoch!r}")
        if isinstance(passes_per_epoch, bool) or not isinstance(
                passes_per_epoch, (int, np.integer)) or passes_per_epoch < 1:
            raise ValueError(f"passes_per_epoch must be a positive integer, got "
                             f"{passes_per_epoch!r}")
        if passes_per_epoch > 1 and fit == "patches":
            raise ValueError("passes_per_epoch applies to the whole-image fits; fit='patches' "
                             "sets the size of an epoch with patches_per_epoch")
        self.samples = list(samples)
        self.batch_size = int(batch_size)
        self.image_size = tuple(int(s) for s in image_size)
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"image_size must be [height, width], got {image_size!r}")
        self.channels = channels
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.training = self.shuffle if training is None else bool(training)
        if (fit == "patches" and self.training and patches_per_epoch is not None
                and patches_per_epoch < int(batch_size)):
            raise ValueError(f"patches_per_epoch={patches_per_epoch} is less than one batch of "
                             f"{int(batch_size)}; training needs patches_per_epoch >= batch_size")
        self.drop_remainder = self.shuffle if drop_remainder is None else bool(drop_remainder)
        self.normalization = normalization
        self._normalize = make_normalizer(normalization)
        self.augment = _resolve_augment(augment)
        self.fit = fit
        self.pad_value = pad_value
        self.tile_overlap = int(tile_overlap)
        self.foreground_share = float(foreground_share)
        self.patches_per_epoch = patches_per_epoch  # resolved in _make_items (training patches)
        self.passes_per_epoch = int(passes_per_epoch) if self.training else 1
        self._has_foreground = None  # {sample index: bool}, from the scan or read on first need
        self._foreground_index = {} if cache else None  # {sample index: flat foreground pixels}
        self._warned_background = False
        self.page = page
        self.on_error = on_error
        self.skipped: list[tuple] = []
        self._cache = {} if cache else None
        self._epoch = 0
        if cache:
            self._check_cache_memory()
        if on_error == "skip":
            self._scan()
        elif verify:
            self._verify()
            self._scan(strict=True)
        self._items = self._make_items()
        if (self.foreground_per_batch and self._has_foreground is not None
                and not any(self._has_foreground.values())):
            self._warn_background()
        if self.drop_remainder and len(self._items) < self.batch_size:
            raise ValueError(f"{len(self._items)} training samples are fewer than one batch "
                             f"of {self.batch_size}")
        self._order = self._make_order()

    # ------------------------------------------------------------------ checks and bookkeeping

    def _paths(self, sample):
        return [sample.image]

    def _verify(self):
        bad = [str(p) for s in self.samples for i, p in enumerate(self._paths(s))
               if not (looks_like_mask(p) if i else looks_like_image(p))]
        if bad:
            raise ImageReadError(f"{len(bad)} file(s) are missing, empty or not PNG/JPEG/TIFF/BMP "
                                 f"images:\n  " + "\n  ".join(bad[:50])
                                 + ("\n  ..." if len(bad) > 50 else ""))

    def _check_cache_memory(self):
        """Refuse a cache that cannot fit (``CACHE_SHARE`` of this machine's memory), before
        the scan fills it. The first readable sample's decoded arrays give the item sizes;
        the cache keeps fitted samples at ``image_size``, or whole images (sizes from the
        headers) for the windowed fits."""
        memory = physical_memory_bytes()
        if not memory:
            return
        for sample in self.samples[:8]:
            try:
                image, mask = self._read_raw(sample)
                break
            except (ImageReadError, OSError, ValueError):
                continue  # the scan names the unreadable files
        else:
            return
        mask_itemsize = 0 if mask is None else mask.dtype.itemsize
        channels = image.shape[2] if image.ndim == 3 else 1
        if self.fit in _WINDOWED:
            pixels = [math.prod(image_size(s.image)) for s in self.samples]
        else:
            pixels = [math.prod(self.image_size)] * len(self.samples)
        needed = cache_bytes(pixels, channels, image.dtype.itemsize, mask_itemsize)
        if needed > CACHE_SHARE * memory:
            raise ValueError(
                f"cache: keeping the {len(self.samples)} decoded samples in memory takes about "
                f"{needed / 2**30:.1f} GiB, more than {CACHE_SHARE:.0%} of this machine's "
                f"{memory / 2**30:.0f} GiB; set data.cache to false (images are then read "
                f"every epoch) or use a smaller data.image_size")

    def _scan(self, strict=False):
        """Decode every sample once, before training: unreadable or truncated images, masks
        that are not binary and masks whose size differs from their image's are found now,
        not at some batch of some epoch. ``strict`` raises one ``ImageReadError`` naming
        every bad file; otherwise they are skipped and listed in ``skipped``."""
        workers = max(2, getattr(self, "workers", 1) or 1)
        keep = self._cache is not None

        patches = self.fit == "patches"

        def read(sample):  # decoded data is kept only for the cache, else just the size
            pair = self._read_raw(sample)
            # fit="patches": which samples have foreground, for the forced patches
            found = pair[1] is not None and bool(np.any(pair[1]))
            if keep and self.fit not in _WINDOWED:
                pair = fit_pair(*pair, self.image_size, self.fit, pad_value=self.pad_value)
            return pair[0].shape[:2], (pair if keep else None), found

        good, problems, results = check_samples(self.samples, read, workers)
        if problems and strict:
            raise ImageReadError(f"{len(problems)} of {len(self.samples)} sample(s) cannot be "
                                 f"used (data.on_error: \"skip\" would leave them out):\n  "
                                 + "\n  ".join(msg for _, msg in problems[:50])
                                 + ("\n  ..." if len(problems) > 50 else ""))
        if problems:
            self.skipped = problems
            warnings.warn(f"{type(self).__name__}: skipped {len(problems)} of "
                          f"{len(self.samples)} sample(s) that cannot be used:\n  "
                          + "\n  ".join(msg for _, msg in problems[:50])
                          + ("\n  ..." if len(problems) > 50 else ""),
                          stacklevel=4, category=KerasmedWarning)
        if not good:
            raise ImageReadError(f"none of the {len(self.samples)} samples can be read; first "
                                 f"problem: {problems[0][1]}")
        self.samples = good
        self._sizes = {i: size for i, (size, _, _) in results.items()}
        found = {i: found for i, (_, _, found) in results.items()}
        if patches:
            self._has_foreground = found
        elif self.training and getattr(self, "mask_mode", None) in ("binary", "classes") \
                and not any(found.values()):
            # Dice rewards predicting nothing on empty masks: the run would look perfect.
            warnings.warn(f"{type(self).__name__}: every mask of the {len(found)} training "
                          f"sample(s) is empty: the network can only learn background, and "
                          f"Dice and IoU score an empty prediction of an empty mask as 1",
                          stacklevel=4, category=KerasmedWarning)
        if keep:
            self._cache.update({i: pair for i, (_, pair, _) in results.items()})

    @property
    def _random_patches(self) -> bool:
        """Training with ``fit="patches"``: items are patches drawn anew every epoch."""
        return self.fit == "patches" and self.training

    def _image_sizes(self):
        sizes = getattr(self, "_sizes", {})
        return [sizes.get(i) or image_size(s.image) for i, s in enumerate(self.samples)]

    def default_patches_per_epoch(self) -> int:
        """``fit="patches"`` training without ``patches_per_epoch``: about as many patch pixels
        an epoch as the images hold, ``len(samples) * max(1, round(median image pixels / patch
        pixels))``, and at least one batch."""
        pixels = float(np.median([h * w for h, w in self._image_sizes()]))
        per_image = max(1, int(round(pixels / (self.image_size[0] * self.image_size[1]))))
        return max(self.batch_size, len(self.samples) * per_image)

    def _make_items(self):
        if self._random_patches:
            if self.patches_per_epoch is None:
                self.patches_per_epoch = self.default_patches_per_epoch()
            self.patches_per_epoch = int(self.patches_per_epoch)
            # The sample and the window of each item are drawn when it is loaded.
            return [(None, None)] * self.patches_per_epoch
        if self.fit not in ("tile", "patches"):  # validation patches: the tile grid
            items = [(i, None) for i in range(len(self.samples))]
        else:
            items = []
            for i, (h, w) in enumerate(self._image_sizes()):
                items += [(i, o) for o in tile_origins(h, w, self.image_size, self.tile_overlap)]
        # Several passes in one epoch: each repeat is its own item, so it gets its own place
        # in the shuffled order and its own augmentation (both drawn per item).
        return items * self.passes_per_epoch

    def _make_order(self):
        n = len(self._items)
        # Random patches are random draws already; their position in the batch decides which
        # are forced onto foreground, so they keep their order.
        if not self.shuffle or self._random_patches:
            return np.arange(n)
        return np.random.default_rng([self.seed, self._epoch]).permutation(n)

    @property
    def epoch(self) -> int:
        return self._epoch

    def set_epoch(self, epoch: int):
        """Set the epoch counter (orders and augmentations derive from it), e.g. on resume."""
        self._epoch = int(epoch)
        self._order = self._make_order()

    def on_epoch_end(self):
        self._epoch += 1
        self._order = self._make_order()

    def __len__(self):
        n = len(self._items)
        return n // self.batch_size if self.drop_remainder else math.ceil(n / self.batch_size)

    @property
    def tiles(self):
        """``(sample, (y, x) or None)`` of each item, in item order (for stitching tiles)."""
        if self._random_patches:
            raise ValueError("training patches (fit='patches', training=True) are drawn anew "
                             "every epoch; only validation patches form a tile grid")
        return [(self.samples[i], o) for i, o in self._items]

    @property
    def foreground_per_batch(self) -> int:
        """Training patches forced onto foreground in each full batch (the last ones):
        ``round(batch_size * foreground_share)``; 0 unless ``fit="patches"`` and training."""
        if not self._random_patches:
            return 0
        return int(round(self.batch_size * self.foreground_share))

    # --------------------------------------------------------------------------- per sample

    def _read_raw(self, sample):
        raise NotImplementedError

    def _whole(self, sample_index):
        """The decoded image and mask of a sample (cached with ``cache``)."""
        if self._cache is not None and sample_index in self._cache:
            return self._cache[sample_index]
        pair = self._read_raw(self.samples[sample_index])
        if self._cache is not None:
            self._cache[sample_index] = pair
        return pair

    def _foreground(self, sample_index, mask):
        """Flat indices of the foreground pixels of a sample's mask (non-zero: binary
        foreground, a class other than 0, an instance label); kept once per sample with
        ``cache``."""
        if self._foreground_index is not None and sample_index in self._foreground_index:
            return self._foreground_index[sample_index]
        index = np.flatnonzero(mask)
        if mask.size < 2 ** 31:
            index = index.astype(np.int32)
        if self._foreground_index is not None:
            self._foreground_index[sample_index] = index
        return index

    def _foreground_samples(self):
        """Indices of the samples whose mask has foreground (known from the scan, else every
        mask is read once, on the first forced patch that needs it)."""
        if self._has_foreground is None:
            self._has_foreground = {i: bool(np.any(self._whole(i)[1]))
                                    for i in range(len(self.samples))}
        return [i for i, found in sorted(self._has_foreground.items()) if found]

    def _warn_background(self):
        if not self._warned_background:
            self._warned_background = True
            warnings.warn(f"{type(self).__name__}: fit='patches' with foreground_share="
                          f"{self.foreground_share:g}, but no mask of the {len(self.samples)} "
                          f"sample(s) has foreground; every patch is placed at random",
                          stacklevel=4, category=KerasmedWarning)

    def _random_patch(self, item_index, rng):
        """A training patch: a sample drawn uniformly, a window drawn uniformly, or, for the
        last ``foreground_per_batch`` positions of each batch, a window around a random
        foreground pixel (``foreground_patch_origin``; nnU-Net's foreground oversampling). A
        forced patch whose sample has no foreground moves to a sample, drawn uniformly, that
        has; with none, the patch stays random (warned once)."""
        sample_index = int(rng.integers(0, len(self.samples)))
        forced = item_index % self.batch_size >= self.batch_size - self.foreground_per_batch
        origin = None
        if forced and self._has_foreground is not None \
                and not self._has_foreground.get(sample_index, True):
            index = np.empty(0, np.int64)  # known from the scan to be background: not read
        else:
            image, mask = self._whole(sample_index)
            index = self._foreground(sample_index, mask) if forced else None
        if forced and index.size == 0:
            others = self._foreground_samples()
            if others:
                sample_index = others[int(rng.integers(0, len(others)))]
                image, mask = self._whole(sample_index)
                index = self._foreground(sample_index, mask)
            else:
                self._warn_background()
                image, mask = self._whole(sample_index)
        if forced and index.size:
            origin = foreground_patch_origin(index, image.shape[:2], self.image_size, rng)
        if origin is None:
            origin = random_patch_origin(image.shape[:2], self.image_size, rng)
        return fit_pair(image, mask, self.image_size, "patches", pad_value=self.pad_value,
                        origin=origin)

    def _fitted(self, item_index, rng):
        if self._random_patches:
            return self._random_patch(item_index, rng)
        sample_index, origin = self._items[item_index]
        if self.fit in _WINDOWED:  # whole images cached; the window is cut per item
            image, mask = self._whole(sample_index)
            return fit_pair(image, mask, self.image_size, self.fit,
                            rng=rng if self.training else None, pad_value=self.pad_value,
                            origin=origin)
        # One item per sample: the fitted pair is what the cache keeps.
        if self._cache is not None and sample_index in self._cache:
            return self._cache[sample_index]
        pair = fit_pair(*self._read_raw(self.samples[sample_index]), self.image_size, self.fit,
                        pad_value=self.pad_value)
        if self._cache is not None:
            self._cache[sample_index] = pair
        return pair

    def _prepare(self, item_index):
        """``(image in stored dtype, mask or None)`` at ``image_size``, augmented if training."""
        rng = np.random.default_rng([self.seed, self._epoch, item_index]) if self.training \
            else None
        image, mask = self._fitted(item_index, rng)
        if self.augment is not None and self.training:
            image, mask = self.augment(image, mask, rng)
            if image.shape[:2] != self.image_size:  # an op that changes the size (resize...)
                image = resize_image(image, self.image_size)
                if image.ndim == 2:
                    image = image[..., None]
                mask = None if mask is None else resize_mask(mask, self.image_size)
        return image, mask

    def __getitem__(self, batch_index):
        if not 0 <= batch_index < len(self):
            raise IndexError(f"batch {batch_index} out of range for {len(self)} batches")
        start = batch_index * self.batch_size
        indices = self._order[start:start + self.batch_size]
        return self._batch([self.load(int(i)) for i in indices])


class SegmentationDataset(_BaseDataset):
    """Batches of ``(images, masks)`` read from a list of ``Sample``.

    Args:
        samples: ``Sample`` list (from a reader in kerasmed.data.readers).
        batch_size: samples per batch.
        image_size: ``[height, width]`` of the model input.
        channels: 1 (grey) or 3 (RGB); images are converted on reading.
        shuffle: training mode: a new order each epoch from ``seed`` and the epoch number, and
            the incomplete last batch dropped so every batch has the same shape (a new shape
            would retrace the compiled train step). Validation (``shuffle=False``) keeps every
            sample, in order.
        seed: seeds the epoch order, random crops and augmentation.
        normalization: see kerasmed.data.normalize (``"auto"``, ``"dtype_range"``,
            ``"minmax"``, ``"percentile"``, ``"mean_std"``, ``"backbone"``, or a dict).
        mask_threshold: binary masks: foreground is ``mask > threshold``; ``None``: automatic
            (0/1, 0/255, JPEG noise), with an error for masks that do not look binary.
        cache: keep decoded samples in memory (after fitting to ``image_size``, or whole
            images for random crops, tiles and patches, with the foreground pixels of each
            sample that a forced patch used). With ``use_multiprocessing`` each worker process
            holds its own cache.
        outputs: repeat the mask for models with several outputs (deep supervision): a list of
            output names gives a dict target per batch.
        augment: an augmentation spec (list of dicts, see kerasmed.data.augment) or a callable
            ``(image, mask, rng) -> (image, mask)``; applied to training batches only.
        fit: how images reach ``image_size``: ``"resize"`` (stretch), ``"pad"`` (aspect kept,
            letterboxed), ``"center_crop"``, ``"random_crop"`` (random window when training,
            centre window otherwise), ``"tile"`` (every tile of a grid over each image: the
            dataset's items are tiles; see ``tiles``), ``"patches"`` (training:
            ``patches_per_epoch`` windows at native scale, each from a sample drawn at random,
            the last ``round(batch_size * foreground_share)`` of every batch forced to contain
            foreground, as nnU-Net's ``oversample_foreground_percent``, Isensee et al. 2021;
            validation: the tile grid of ``"tile"``).
        mask_mode: ``"binary"`` (float32 0/1 target, ``(H, W, 1)``, or with ``one_hot`` the
            two-class ``(H, W, 2)`` [background, foreground] target of softmax heads such as
            Micro-Net's; instance masks such as GlaS become ``label > 0``), ``"instances"``
            (int32 labels kept, ``(H, W, 1)``), ``"classes"`` (int32 class indices
            ``(H, W, 1)``, or float32 one-hot ``(H, W, num_classes)`` with ``one_hot``) or
            ``"distance"`` (float32 ``(H, W, 1)`` distance map of the instance labels, the
            regression target of Kidney-SegNet; see ``kerasmed.data.targets.distance_map``).
            Distance maps are computed per sample after resizing and augmentation, so they
            always describe the objects the network sees.
        distance_normalize: ``"distance"``: divide each object's distances by its own maximum
            (every nucleus peaks at 1, whatever its size), else raw pixel distances.
        target_size: ``[height, width]`` of the model's output when it differs from
            ``image_size`` (valid-padded networks): targets are centre-cropped, or zero-padded,
            to it. ``None``: the target has the image's size.
        num_classes, class_values: for ``"classes"``: K, and optionally the stored grey level or
            RGB triple of each class (see ``read_class_mask``).
        training: whether to augment and crop randomly (default: ``shuffle``).
        drop_remainder: drop the incomplete last batch (default: ``shuffle``).
        on_error: ``"raise"``: an unreadable file fails the batch that needs it (missing,
            empty and non-image files are found when the dataset is made, all listed at once);
            ``"skip"``: every sample is decoded when the dataset is made, those that fail
            (unreadable, truncated, unexpected mask values) are left out and listed in a warning
            and in ``skipped``.
        pad_value: fill value of letterbox and crop padding (masks are padded with 0).
        tile_overlap: pixels shared by neighbouring tiles (``fit="tile"``, and validation with
            ``fit="patches"``).
        patches_per_epoch: ``fit="patches"``, training: items (patches) an epoch, at least
            ``batch_size``. ``None``: ``len(samples) * max(1, round(median image pixels /
            patch pixels))`` (about as many patch pixels as the images hold), at least one
            batch; the value used is kept in ``patches_per_epoch``.
        foreground_share: ``fit="patches"``, training: the share of each batch forced to
            contain foreground (nnU-Net: 0.33; 0: every patch uniform, 1: every patch on
            foreground). Foreground is any non-zero mask value: binary foreground, a class
            other than 0, an instance label. A forced patch holds a random foreground pixel at
            a random place in the window (``kerasmed.data.spatial.foreground_patch_origin``);
            a sample without foreground gives its turn to one, drawn at random, that has; if
            no sample has any, patches are random and a ``KerasmedWarning`` says so.
        passes_per_epoch: training with the whole-image fits (and ``"tile"``): the images
            (tiles) one epoch goes over, in one shuffled order, each with its own augmentation
            (default 1). Longer epochs make validation, checkpoints and plots a smaller share
            of a run on a small dataset; the planner sets it.
        page: TIFF page to read (``"all"`` stacks a single-channel stack as channels).
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of PyDataset.
    """

    def __init__(self, samples, batch_size: int, image_size, channels: int = 3, shuffle=False,
                 seed: int = 0, normalization="auto", mask_threshold=None, cache: bool = False,
                 outputs=None, augment=None, fit: str = "resize", mask_mode: str = "binary",
                 num_classes: int | None = None, class_values=None, one_hot: bool = False,
                 distance_normalize: bool = True, target_size=None,
                 patches_per_epoch: int | None = None, foreground_share: float = 1 / 3,
                 **kwargs):
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        if class_values is not None:
            if num_classes is not None and num_classes != len(class_values):
                raise ValueError(f"num_classes={num_classes} but {len(class_values)} "
                                 f"class_values")
            num_classes = len(class_values)
        if mask_mode == "classes" and one_hot and not num_classes:
            raise ValueError("one_hot class masks need num_classes (or class_values)")
        if one_hot and mask_mode not in ("binary", "classes"):
            raise ValueError(f"one_hot applies to binary and class masks, not mask_mode "
                             f"{mask_mode!r}")
        if target_size is not None:
            target_size = tuple(int(t) for t in target_size)
            if len(target_size) != 2 or min(target_size) < 1:
                raise ValueError(f"target_size must be [height, width], got {target_size!r}")
        self.distance_normalize = bool(distance_normalize)
        self.target_size = target_size
        self.mask_threshold = mask_threshold
        self.mask_mode = mask_mode
        self.num_classes = num_classes
        self.class_values = class_values
        self.one_hot = one_hot
        self.outputs = list(outputs) if outputs else None
        missing = [str(s.image) for s in samples if s.mask is None]
        if missing:
            raise ValueError(f"{len(missing)} sample(s) have no mask, e.g. {missing[0]}")
        super().__init__(samples, batch_size, image_size, channels=channels, shuffle=shuffle,
                         seed=seed, normalization=normalization, cache=cache, augment=augment,
                         fit=fit, patches_per_epoch=patches_per_epoch,
                         foreground_share=foreground_share, **kwargs)

    def _paths(self, sample):
        return [sample.image, sample.mask]

    def _read_mask(self, sample, shape):
        # shape: the image's, to draw XML outline masks (MoNuSeg) at.
        if self.mask_mode == "binary":
            return read_mask(sample.mask, self.mask_threshold, sample.mask_type, shape=shape)
        if self.mask_mode in ("instances", "distance"):
            return read_label_mask(sample.mask, shape=shape)
        return read_class_mask(sample.mask, self.num_classes, self.class_values)

    def _read_raw(self, sample):
        image = read_image(sample.image, channels=self.channels, page=self.page)
        mask = self._read_mask(sample, image.shape[:2])
        if mask.shape != image.shape[:2]:
            raise ImageReadError(f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but "
                                 f"its image {sample.image} is {image.shape[1]}x{image.shape[0]}")
        return image, mask

    def load(self, index: int):
        """Item ``index`` as ``(image float32 (H, W, C), target)`` for the current epoch."""
        image, mask = self._prepare(index)
        image = self._normalize(image)
        if image.ndim == 2:
            image = image[..., None]
        if self.mask_mode == "binary":
            foreground = mask > 0
            target = (np.stack([~foreground, foreground], axis=-1) if self.one_hot
                      else foreground[..., None]).astype(np.float32)
        elif self.mask_mode == "distance":
            target = distance_map(mask, normalize=self.distance_normalize)[..., None]
        elif self.mask_mode == "classes" and self.one_hot:
            target = np.eye(self.num_classes, dtype=np.float32)[mask]
        else:
            target = mask.astype(np.int32)[..., None]
        if self.target_size is not None:
            # After the distance transform: objects cut by the window keep their true depth.
            target = crop_or_pad(target, self.target_size)
        return image, target

    def _batch(self, pairs):
        images = np.stack([p[0] for p in pairs])
        masks = np.stack([p[1] for p in pairs])
        if self.outputs:
            return images, {name: masks for name in self.outputs}
        return images, masks


class ClassificationDataset(_BaseDataset):
    """Batches of ``(images, labels)`` for image classification (OCT2017).

    Takes the same arguments as ``SegmentationDataset`` where they apply (no masks; ``fit`` is
    one of resize, pad, center_crop, random_crop), plus:

    Args:
        classes: class names in index order (default: the sorted labels of ``samples``). A
            sample whose label is not among them is an error.
        one_hot: float32 one-hot targets ``(B, K)`` instead of int32 indices ``(B,)``.
    """

    _fit_modes = ("resize", "pad", "center_crop", "random_crop")

    def __init__(self, samples, batch_size: int, image_size, channels: int = 3, classes=None,
                 one_hot: bool = False, **kwargs):
        unlabeled = [str(s.image) for s in samples if s.label is None]
        if unlabeled:
            raise ValueError(f"{len(unlabeled)} sample(s) have no label, e.g. {unlabeled[0]}")
        self.classes = list(classes) if classes is not None else sorted({s.label
                                                                         for s in samples})
        unknown = sorted({s.label for s in samples} - set(self.classes))
        if unknown:
            raise ValueError(f"labels {unknown} are not among classes {self.classes}")
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self.one_hot = one_hot
        super().__init__(samples, batch_size, image_size, channels=channels, **kwargs)

    def _read_raw(self, sample):
        return read_image(sample.image, channels=self.channels, page=self.page), None

    def class_counts(self) -> dict:
        counts = {c: 0 for c in self.classes}
        for s in self.samples:
            counts[s.label] += 1
        return counts

    def class_weights(self) -> dict:
        """``{class index: weight}`` balancing the classes (n / (K * count)), for ``fit``."""
        counts = self.class_counts()
        n, k = sum(counts.values()), len(counts)
        return {self.class_index[c]: (n / (k * m) if m else 0.0) for c, m in counts.items()}

    def load(self, index: int):
        image, _ = self._prepare(index)
        image = self._normalize(image)
        if image.ndim == 2:
            image = image[..., None]
        label = self.class_index[self.samples[self._items[index][0]].label]
        return image, label

    def _batch(self, pairs):
        images = np.stack([p[0] for p in pairs])
        labels = np.asarray([p[1] for p in pairs], dtype=np.int32)
        if self.one_hot:
            return images, np.eye(len(self.classes), dtype=np.float32)[labels]
        return images, labels
