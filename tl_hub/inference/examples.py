"""A Space tab's example images: the release's own (from its validation split), else signs rendered by
tl_hub, else photos fetched from the model's Hub dataset (`tab_examples`). Each file is checked before the
page may serve it; nothing goes to the network unless a cache for it is given.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_hub.data.images import read_image
from tl_hub.errors import TLHubError
from tl_hub.inference.serving import MAX_PIXELS
from tl_hub.release.facts import load_facts

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)

# Photos for the pets tab: a few from the Hub dataset its model was trained on, fetched once and cached.
EXAMPLE_PHOTOS = 6

# Signs rendered by tl_hub's synthetic generator as examples: (GTSRB class id, seed).
EXAMPLE_SIGNS = [(c, 2026) for c in (14, 13, 2, 12, 17, 28, 38, 40)]
EXAMPLE_SIZE = 128


def render_sign_examples(directory: Path) -> list[str]:
    """Real-looking signs from tl_hub's synthetic generator, saved as PNGs for gr.Examples."""
    import numpy as np

    from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
    from tl_hub.data.synthetic import render_sign

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for class_id, seed in EXAMPLE_SIGNS:
        name = GTSRB_CLASS_NAMES[class_id].lower().replace(" ", "_").replace("(", "").replace(")", "")
        path = directory / f"{class_id:02d}_{name.replace('/', '_')}.png"
        render_sign(class_id, np.random.default_rng([seed, class_id]), EXAMPLE_SIZE).save(path)
        paths.append(str(path))
    return paths


def release_examples(
    source: str | Path | None, directory: Path, hub: bool = False, api: HfApi | None = None
) -> list[str]:
    """The example images a release holds (`examples/*.jpg`, written from its validation split by
    `write_release`), each checked (size, pixels, an image at all) and copied into `directory`, where the page
    may serve files from. A local release's always; a Hub repo's only with `hub` (downloaded, cached by
    huggingface_hub); none, quietly, when there are none or they cannot be had."""
    from tl_hub.release.files import EXAMPLES_DIR, MAX_EXAMPLE_BYTES, MAX_EXAMPLES, example_files

    if source is None:
        return []
    local = Path(source).expanduser()
    try:
        if local.is_dir():
            files = example_files(local)
        elif hub:
            files = _hub_examples(str(source), api)
        else:
            return []
    except Exception as e:  # offline, a repo that cannot be listed: the tab just has other examples
        logger.info("no example images from %s (%s)", source, str(e).splitlines()[0] if str(e) else e)
        return []
    target = directory / "release"
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for file in files[:MAX_EXAMPLES]:
        try:
            if file.stat().st_size > MAX_EXAMPLE_BYTES:
                raise TLHubError(f"over {MAX_EXAMPLE_BYTES // 2**10} KB")
            read_image(file, max_pixels=MAX_PIXELS)  # an image, within the pixel limit
            shutil.copyfile(file, target / file.name)
        except (TLHubError, OSError) as e:
            logger.warning("%s: %s/%s passed over (%s)", source, EXAMPLES_DIR, file.name, e)
            continue
        paths.append(str(target / file.name))
    return paths


def _hub_examples(repo_id: str, api: HfApi | None) -> list[Path]:
    """The example images of the Hub model repo `repo_id`, downloaded (with `api`, else huggingface_hub's
    defaults)."""
    from huggingface_hub import HfApi, constants

    from tl_hub.release.files import EXAMPLES_DIR, MAX_EXAMPLES
    from tl_hub.release.hub import fetch

    if constants.HF_HUB_OFFLINE:
        raise RuntimeError("HF_HUB_OFFLINE is set")
    names = sorted(
        name
        for name in (api or HfApi()).list_repo_files(repo_id)
        if name.startswith(f"{EXAMPLES_DIR}/") and name.endswith(".jpg") and name.count("/") == 1
    )
    return [fetch(repo_id, name, api) for name in names[:MAX_EXAMPLES]]


def tab_examples(
    kind: str,
    source: str | Path | None,
    directory: Path,
    hub_cache: Path | None = None,
    api: HfApi | None = None,
) -> tuple[list[str], str]:
    """A tab's example images and what to call them: the release's own (`release_examples`, from its
    validation split) where it has them; else, for signs, signs rendered by tl_hub; for pets, photos from the
    model's Hub dataset fetched into `hub_cache` (`dataset_examples`; none without a cache). With no
    `hub_cache` nothing here goes to the network; with one, `api` is the Hub client (None: huggingface_hub's
    defaults)."""
    if own := release_examples(source, directory / kind, hub=hub_cache is not None, api=api):
        return own, "Examples (from the model's validation split)"
    if kind == "sign":
        return render_sign_examples(directory / "signs"), "Examples (rendered by tl_hub)"
    if hub_cache is not None:
        return dataset_examples(source, hub_cache, api=api), "Examples (from the model's training dataset)"
    return [], ""


def dataset_examples(
    source: str | Path | None, directory: Path, n: int = EXAMPLE_PHOTOS, api: HfApi | None = None
) -> list[str]:
    """A few photos from the Hub dataset the model `source` was trained on (its facts.json says which),
    fetched once into `directory` and reused after; none, quietly, offline or for a model trained on local
    data."""
    try:
        facts = load_facts(source, api) if source is not None else None
    except TLHubError:
        return []
    if facts is None or facts.dataset_hub_id is None:
        return []
    dataset = facts.dataset_hub_id
    target = directory / dataset.replace("/", "--")
    if cached := sorted(str(p) for p in target.glob("*.jpg")):
        return cached
    try:
        return _download_examples(dataset, target, n, api)
    except Exception as e:  # offline, no parquet file, another layout: the tab just has no examples
        logger.info("no example photos from %s (%s)", dataset, str(e).splitlines()[0] if str(e) else e)
        return []


def _download_examples(dataset: str, target: Path, n: int, api: HfApi | None) -> list[str]:
    """`n` photos spread over the first rows of the dataset's smallest test (else validation, else any)
    parquet file, saved as JPEGs; the folder appears whole or not at all."""
    import numpy as np
    import pyarrow.parquet as pq
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise RuntimeError("HF_HUB_OFFLINE is set")
    hub = api or HfApi()
    tree = hub.list_repo_tree(dataset, repo_type="dataset", recursive=True)
    files = [f for f in tree if f.path.endswith(".parquet")]
    if not files:
        raise RuntimeError("no parquet file")

    def preference(f: Any) -> tuple[int, int]:
        split = next((i for i, word in enumerate(("test", "valid")) if word in f.path), 2)
        return split, f.size or 0

    table = pq.ParquetFile(hub.hf_hub_download(dataset, min(files, key=preference).path, repo_type="dataset"))
    rows = table.read_row_group(0)
    column = next(c for c in rows.column_names if "bytes" in str(rows.schema.field(c).type))
    images = rows.column(column).to_pylist()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".examples-", dir=target.parent))
    for i, index in enumerate(np.linspace(0, len(images) - 1, min(n, len(images))).round().astype(int)):
        image = read_image(images[index]["bytes"], max_pixels=MAX_PIXELS).convert("RGB")
        image.thumbnail((512, 512))
        image.save(tmp / f"{i}.jpg", quality=90)
    tmp.replace(target)
    logger.info("example photos: %d from %s", min(n, len(images)), dataset)
    return sorted(str(p) for p in target.glob("*.jpg"))
