"""The facts of a run, made once by the run and stored in its release as facts.json.

Which weights it started from, which strategy trained which layers, which data and split, the headline
figures, and the recipe's prose (study summary, intended use, citations) as it stood at training time. The
model card, the Space's tab text, the compare report and the push's commit message read this record and
nothing else, so they cannot disagree, and a release renders its card with no recipe table at hand.

Nothing in it is a path of the machine that trained the model: local files are named by their file name
and sha256, local datasets and releases by their directory's name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_hub import __version__
from tl_hub.config import RunConfig
from tl_hub.data.naming import dataset_name
from tl_hub.errors import TLHubError
from tl_hub.models import get_architecture
from tl_hub.release.files import FACTS_NAME, read_json, write_json
from tl_hub.strategies import STRATEGIES

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)

# What each strategy trains, in a reader's words.
STRATEGY_WORDS = {name: s.words for name, s in STRATEGIES.items()}
START_KINDS = ("random", "pretrained", "file", "release")
SCORED_IN_TRAINING = "training"


@dataclass(frozen=True)
class StartWeights:
    """Where a run's weights started, named as anyone can look it up (never a local path)."""

    kind: str  # random | pretrained (a timm tag or Hub repo) | file (a local weights file) | release
    name: str  # "random", the tag or repo id, the file's name, or the release's repo id / directory name
    sha256: str | None = None  # of a local file (or a local release's weights)
    hub_id: str | None = None  # the Hub model repo the weights come from, when there is one

    def __post_init__(self) -> None:
        if self.kind not in START_KINDS:
            raise TLHubError(f"start weights kind {self.kind!r}: expected one of {', '.join(START_KINDS)}")

    def describe(self) -> str:
        """The start in a sentence's words: 'random weights', 'the pretrained weights vgg16.tv_in1k', ..."""
        if self.kind == "random":
            return "random weights"
        if self.kind == "file":
            return f"the weights file `{self.name}` (sha256 {(self.sha256 or '?')[:16]}...)"
        if self.kind == "release":
            return f"the tl_hub release `{self.name}`"
        return f"the pretrained weights `{self.name}`"


RANDOM = StartWeights("random", "random")


@dataclass(frozen=True)
class Result:
    """One headline figure set: a split of a dataset, scored by training or by scripts/evaluate.py."""

    split: str
    dataset: str  # the dataset's public name
    accuracy: float
    macro_f1: float
    top5_accuracy: float
    num_samples: int
    hub_id: str | None = None  # the Hub dataset id, when the data came from the Hub
    scored_by: str = SCORED_IN_TRAINING  # or "scripts/evaluate.py"


@dataclass(frozen=True)
class RecipeText:
    """A recipe's prose, copied into the release when it trains. Empty study fields when the run does not
    follow the study's protocol; generic text for a recipe name tl_hub does not know."""

    name: str
    description: str = ""  # the recipe's one sentence, when the run follows it
    departures: tuple[str, ...] = ()  # how the run differs from the recipe, in words
    study_summary: str = ""
    study_results: dict[str, float] = field(default_factory=dict)
    intended_use: str = (
        "Classifying images into the classes of the dataset it was trained on, one main subject per image. "
        "Any other image still gets one of those labels. A research and teaching model."
    )
    citations: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    license: str = "apache-2.0"
    example: str = "image.jpg"  # the file the card's snippet classifies: a photo, a sign


@dataclass(frozen=True)
class Facts:
    recipe: RecipeText
    architecture: str
    library: str  # "timm" for timm architectures (they load with timm.create_model), else "tl_hub"
    strategy: str
    start: StartWeights
    dataset: str  # the training data's public name
    dataset_hub_id: str | None  # its Hub id, when it came from the Hub
    num_classes: int
    counts: dict[str, int]  # images per split
    validation_from: str
    skipped_images: int
    results: tuple[Result, ...]
    tl_hub_version: str = __version__

    def description(self) -> str:
        """The card's first line: the recipe's sentence when the run follows it, else what the run did."""
        if self.recipe.description:
            return self.recipe.description
        return (
            f"`{self.architecture}` trained on `{self.dataset}` ({self.num_classes} classes) from "
            f"{self.start.describe()}: {STRATEGY_WORDS.get(self.strategy, self.strategy)}."
        )

    def headline(self) -> Result | None:
        """The figure to show first: the newest test result, else validation from training."""
        for split in ("test", "validation"):
            found = [r for r in self.results if r.split == split]
            if found:
                return found[-1]
        return None

    def study_figure(self, result: Result) -> float | None:
        """The study's accuracy for `result`'s split, when the run followed its protocol on the same data."""
        if result.dataset != self.dataset:
            return None
        return self.recipe.study_results.get(f"{result.split}_accuracy")

    def with_result(self, result: Result) -> Facts:
        """These facts with `result`, replacing an earlier one of the same split and dataset."""
        kept = tuple(r for r in self.results if (r.split, r.dataset) != (result.split, result.dataset))
        return dataclasses.replace(self, results=(*kept, result))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, source: str) -> Facts:
        """Parse facts.json; a TLHubError names the release and what is wrong."""
        try:
            d = dict(d)
            return cls(
                recipe=_recipe_text(d.pop("recipe")),
                start=StartWeights(**d.pop("start")),
                results=tuple(Result(**r) for r in d.pop("results")),
                counts={str(k): int(v) for k, v in d.pop("counts").items()},
                **d,
            )
        except (TypeError, ValueError, KeyError, AttributeError, TLHubError) as e:
            raise TLHubError(
                f"{FACTS_NAME} of {source!r} is unreadable ({type(e).__name__}: {e}); write the release again"
            ) from None


def _recipe_text(d: dict[str, Any]) -> RecipeText:
    d = dict(d)
    for key in ("departures", "citations", "tags"):
        d[key] = tuple(d.get(key, ()))
    return RecipeText(**d)


def run_facts(
    run: RunConfig, start: StartWeights, recipe: RecipeText, metrics: dict[str, Any], num_classes: int
) -> Facts:
    """The facts of `run`, from what it started from, its recipe's prose and its metrics.json."""
    from tl_hub.data.naming import is_hub_dataset_id

    arch = get_architecture(run.model.architecture)
    name = dataset_name(run.data)
    hub_id = run.data.dataset if is_hub_dataset_id(run.data.dataset) else None
    data = metrics["data"]
    results = tuple(
        result_of(metrics[split], split, name, hub_id) for split in ("validation", "test") if split in metrics
    )
    return Facts(
        recipe=recipe,
        architecture=arch.name,
        library="timm" if arch.timm else "tl_hub",
        strategy=run.transfer.strategy,
        start=start,
        dataset=name,
        dataset_hub_id=hub_id,
        num_classes=num_classes,
        counts=dict(data["counts"]),
        validation_from=data["validation_from"],
        skipped_images=int(data["skipped_images"]),
        results=results,
    )


def result_of(
    metrics: dict[str, Any], split: str, dataset: str, hub_id: str | None, scored_by: str = SCORED_IN_TRAINING
) -> Result:
    return Result(
        split=split,
        dataset=dataset,
        accuracy=float(metrics["accuracy"]),
        macro_f1=float(metrics["macro_f1"]),
        top5_accuracy=float(metrics["top5_accuracy"]),
        num_samples=int(metrics["num_samples"]),
        hub_id=hub_id,
        scored_by=scored_by,
    )


def public_run(run: RunConfig, facts: Facts) -> RunConfig:
    """`run` as a release's config.json records it: the start and the data by their public names only."""
    start = facts.start
    pretrained = start.name if start.kind in ("pretrained", "file") else None
    return dataclasses.replace(
        run,
        model=dataclasses.replace(run.model, pretrained=pretrained),
        data=dataclasses.replace(run.data, dataset=facts.dataset_hub_id or facts.dataset),
        transfer=dataclasses.replace(run.transfer, init_from=start.name if start.kind == "release" else None),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_facts(directory: Path, facts: Facts) -> None:
    write_json(Path(directory) / FACTS_NAME, facts.to_dict())


def load_facts(repo_or_dir: str | Path, api: HfApi | None = None) -> Facts | None:
    """The facts.json of a release directory or Hub repo (`api`: its Hub client, as `fetch`); None for a
    release written before tl_hub wrote one (or a Hub repo that cannot be reached)."""
    from tl_hub.release.hub import fetch

    source = str(repo_or_dir)
    local = Path(repo_or_dir).expanduser()
    if local.is_dir() and not (local / FACTS_NAME).is_file():
        return None
    try:
        path = fetch(repo_or_dir, FACTS_NAME, api)
    except TLHubError as e:
        logger.warning("no facts for %s: %s", source, e)
        return None
    return Facts.from_dict(read_json(path, source), source)
