"""Where a run comes from, in the words its release keeps: the recipe's prose as it applies to the run.

Here, above both the recipe table and the release, so that a release never reads the recipe table: the
trainer copies the prose into facts.json at training time, and the card renders from that alone.
"""

from __future__ import annotations

from tl_hub.config import RunConfig
from tl_hub.data.naming import dataset_name
from tl_hub.recipes import RECIPES
from tl_hub.release.facts import RecipeText


def recipe_text(run: RunConfig) -> RecipeText:
    """The prose of `run`'s recipe, as its release keeps it: the recipe's description and the study's summary
    only when the run follows the recipe, the study's figures only when it follows the study's protocol, the
    intended use and tags only on the recipe's own data; generic text for a name that is not a recipe."""
    recipe = RECIPES.get(run.recipe)
    if recipe is None:
        return RecipeText(name=run.recipe)
    own = recipe.config
    changed = [
        f"{what} {ours} (the recipe's: {theirs})"
        for what, ours, theirs in (
            ("architecture", run.model.architecture, own.model.architecture),
            ("strategy", run.transfer.strategy, own.transfer.strategy),
            ("start", _start_kind(run), _start_kind(own)),
            ("dataset", dataset_name(run.data), dataset_name(own.data)),
        )
        if ours != theirs
    ]
    shortened = [
        f"{what} {ours} (the study's: {theirs})"
        for what, ours, theirs in (
            ("epochs", run.train.epochs, own.train.epochs),
            ("training images", run.data.train_size or "all", own.data.train_size or "all"),
        )
        if ours != theirs and recipe.study_results
    ]
    same_data = run.data.dataset == own.data.dataset
    generic = RecipeText(name=run.recipe)
    return RecipeText(
        name=recipe.name,
        description="" if changed else recipe.description,
        departures=(*changed, *shortened),
        study_summary="" if changed else recipe.study_summary,
        study_results={} if changed or shortened else dict(recipe.study_results),
        intended_use=recipe.intended_use if same_data and recipe.intended_use else generic.intended_use,
        citations=recipe.citations,
        tags=recipe.tags if same_data else (),
        license=recipe.license,
        example=recipe.example if same_data else generic.example,
    )


def _start_kind(run: RunConfig) -> str:
    if not run.transfer.spec.pretrained or (run.model.pretrained is None and run.transfer.init_from is None):
        return "random weights"
    return "a tl_hub release" if run.transfer.init_from is not None else "pretrained weights"
