"""Group-aware splits never leak, are reproducible, and can be recorded and rebuilt."""

import json

import pytest

from kerasmed.data.readers import Sample, cvc_clinicdb_sequence
from kerasmed.data.splits import (GroupLeakError, check_no_leak, kfold_assignments, kfold_split,
                                  make_split, split_by_fraction, split_by_subset,
                                  split_from_record, split_train_val_test)


def grouped(n_groups=12, sizes=(1, 2, 3, 7)):
    return [Sample(f"g{g}_{i}.png", f"g{g}_{i}_m.png", group=f"g{g}")
            for g in range(n_groups) for i in range(sizes[g % len(sizes)])]


def groups_of(samples):
    return {s.group for s in samples}


@pytest.fixture
def cvc_like():
    return [Sample(f"{n}.tif", f"gt/{n}.tif", group=cvc_clinicdb_sequence(n))
            for n in range(1, 613)]


@pytest.mark.parametrize("seed", range(5))
def test_fraction_split_never_leaks(cvc_like, seed):
    train, val = split_by_fraction(cvc_like, 0.2, seed)
    assert not groups_of(train) & groups_of(val)
    assert len(train) + len(val) == 612 and 100 <= len(val) <= 160
    train, val, test = split_train_val_test(cvc_like, 0.15, 0.15, seed)
    assert not (groups_of(train) & groups_of(val) or groups_of(train) & groups_of(test)
                or groups_of(val) & groups_of(test))
    assert len(train) + len(val) + len(test) == 612 and min(len(val), len(test)) >= 80


def test_ungrouped_samples_are_their_own_groups():
    samples = [Sample(f"{i}.png", f"m{i}.png") for i in range(20)]
    train, val, test = split_train_val_test(samples, 0.2, 0.2, seed=1)
    assert (len(train), len(val), len(test)) == (12, 4, 4)
    assert split_train_val_test(samples, 0.2, 0.2, seed=1) == (train, val, test)


def test_kfold_is_group_aware_and_balanced(cvc_like):
    folds = kfold_assignments(cvc_like, 5, seed=0)
    sizes = [folds.count(f) for f in range(5)]
    assert sum(sizes) == 612 and max(sizes) - min(sizes) <= 25
    for s, f in zip(cvc_like, folds):
        assert all(f == g for t, g in zip(cvc_like, folds) if t.group == s.group)
    vals = []
    for fold in range(5):
        train, val = kfold_split(cvc_like, 5, fold, seed=0)
        assert not groups_of(train) & groups_of(val)
        vals += [s.image for s in val]
    assert sorted(vals) == sorted(s.image for s in cvc_like)  # every sample validated once
    assert kfold_assignments(cvc_like, 5, seed=0) == folds
    assert kfold_assignments(cvc_like, 5, seed=1) != folds
    with pytest.raises(ValueError, match="cannot make 40 folds from 29 group"):
        kfold_assignments(cvc_like, 40)


def test_publisher_subsets_and_leak_detection():
    samples = [Sample(f"train_{i}.bmp", "m", group=f"p{i % 3}", subset="train")
               for i in range(6)]
    samples += [Sample(f"testA_{i}.bmp", "m", group=f"p{3 + i}", subset="testA")
                for i in range(2)]
    parts = split_by_subset(samples, train=["train"], test=["testA"])
    assert len(parts["train"]) == 6 and len(parts["test"]) == 2 and "val" not in parts
    leaky = samples + [Sample("testB_1.bmp", "m", group="p0", subset="testB")]
    with pytest.raises(GroupLeakError, match=r"group p0 in \['test', 'train'\]"):
        split_by_subset(leaky, train=["train"], test=["testA", "testB"])
    with pytest.warns(UserWarning, match="p0"):
        split_by_subset(leaky, train=["train"], test=["testA", "testB"], on_leak="warn")
    with pytest.raises(ValueError, match=r"subsets \['val'\] are not in the dataset"):
        split_by_subset(samples, train=["train"], val=["val"])


def test_check_no_leak_names_groups_and_duplicate_images():
    a, b = Sample("1.png", group="s1"), Sample("2.png", group="s1")
    with pytest.raises(GroupLeakError, match="group s1"):
        check_no_leak({"train": [a], "val": [b]})
    with pytest.raises(GroupLeakError, match=r"image 1\.png"):
        check_no_leak({"train": [Sample("1.png")], "val": [Sample("1.png")]})


@pytest.mark.parametrize("method,params", [("fraction", {"val_fraction": 0.25}),
                                           ("fraction", {"val_fraction": 0.2,
                                                         "test_fraction": 0.2}),
                                           ("kfold", {"k": 4, "fold": 2})])
def test_split_record_round_trip(method, params):
    samples = grouped()
    parts, record = make_split(samples, method, seed=3, **params)
    assert record["method"] == method and record["seed"] == 3
    record = json.loads(json.dumps(record))  # JSON-able
    assert set(record["groups"]["train"]).isdisjoint(record["groups"]["val"])
    again, _ = make_split(samples, "record", record=record)
    assert again == parts
    assert make_split(samples, method, seed=3, **params)[0] == parts


def test_record_with_missing_images_is_an_error():
    samples = grouped()
    parts, record = make_split(samples, "fraction", val_fraction=0.3)
    with pytest.raises(ValueError, match="no longer in the dataset"):
        split_from_record(samples[1:], {"train": [str(s.image) for s in samples], "val": []})
    with pytest.raises(ValueError, match="unknown split method"):
        make_split(samples, "random")


def test_subset_method_via_make_split():
    samples = [Sample(f"{s}_{i}", "m", subset=s) for s in ("train", "val", "test")
               for i in range(3)]
    parts, record = make_split(samples, "subset", train_subsets=["train"], val_subsets=["val"],
                               test_subsets=["test"])
    assert [len(parts[p]) for p in ("train", "val", "test")] == [3, 3, 3]
    assert record["train_subsets"] == ["train"]
