"""The named training setups. Most reproduce one experiment of the study as their defaults; cnn-gtsrb goes
beyond it (signs at 99%+), and timm-finetune is the general photo recipe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import timm

from tl_hub.config import (
    AugConfig,
    DataConfig,
    ModelConfig,
    PreprocessConfig,
    RunConfig,
    TrainConfig,
    TransferConfig,
)
from tl_hub.errors import ConfigError
from tl_hub.models.sources import preprocess_from_cfg


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str  # one sentence for logs and the model card
    config: RunConfig
    # The study's published numbers for this protocol, shown beside ours in the model card.
    study_results: dict[str, float] = field(default_factory=dict)
    base_model: str | None = None  # Hub id of the pretrained start, for transfer recipes
    # Model-card text: what the study did, what the model is for, what to cite.
    study_summary: str = ""
    intended_use: str = ""
    citations: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    license: str = "apache-2.0"
    example: str = "photo.jpg"  # what the model card's snippet classifies: a photo, or a sign


def weights_preprocess(pretrained_tag: str) -> PreprocessConfig:
    """The preprocessing timm's pretrained weights `pretrained_tag` expect (resize, crop, mean, std)."""
    return preprocess_from_cfg(timm.models.get_pretrained_cfg(pretrained_tag))


# Training-time augmentation by kind of image, for --augment and the recipes.
AUGMENTATIONS: dict[str, AugConfig] = {
    # Traffic signs (the study's): small rotations and blur, never a flip (a mirrored "keep left" is
    # "keep right").
    "sign": AugConfig(rotation=15.0, blur_prob=0.5, blur_sigma=(0.1, 1.0), hflip=False),
    # Photos: random-resized crops and flips, milder than ImageNet training's (8% crops): the images are
    # small and few, and pretrained features already hold the invariances.
    "photo": AugConfig(crop_scale=(0.35, 1.0), crop_ratio=(3 / 4, 4 / 3), hflip=True),
    # timm's default training augmentation (transforms_factory): random-resized crops of 8-100% of the
    # image at aspect 3/4-4/3, flips, and colour jitter 0.4 (brightness, contrast, saturation), for
    # larger photo datasets.
    "timm": AugConfig(
        crop_scale=(0.08, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        hflip=True,
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
    ),
    "none": AugConfig(),
}

# Citations that more than one recipe's model card gives.
STALLKAMP = (
    "J. Stallkamp, M. Schlipsing, J. Salmen, C. Igel. Man vs. computer: Benchmarking machine "
    "learning algorithms for traffic sign recognition. Neural Networks, 32, 2012."
)
CIRESAN = (
    "D. Ciresan, U. Meier, J. Masci, J. Schmidhuber. Multi-column deep neural network for traffic "
    "sign classification. Neural Networks, 32, 2012."
)
IOFFE = (
    "S. Ioffe, C. Szegedy. Batch normalization: accelerating deep network training by reducing "
    "internal covariate shift. ICML 2015."
)

# SignCNN on 32x32 colour signs: cnn-gtsrb on real GTSRB, and cnn-synthetic on rendered signs.
SIGNCNN_GTSRB = RunConfig(
    recipe="cnn-gtsrb",
    model=ModelConfig(architecture="signcnn", drop_rate=0.3),
    preprocess=PreprocessConfig(
        input_size=32,
        grayscale=False,  # colour tells signs of one shape apart (red prohibitions, blue mandates)
        equalize="clahe",  # on the luminance only, as for LeNet-5
        clahe_clip_limit=2.0,
        clahe_grid=4,
        # Per-channel pixel mean and std of CLAHE-equalized GTSRB training images (5,000 sampled).
        mean=(0.41, 0.39, 0.39),
        std=(0.27, 0.26, 0.27),
        interpolation="bilinear",
        crop_pct=None,
    ),
    aug=AugConfig(
        rotation=10.0,
        scale=(0.9, 1.1),
        translate=0.08,
        blur_prob=0.3,
        blur_sigma=(0.1, 1.0),
        brightness=0.3,
        contrast=0.3,
        hflip=False,
    ),
    data=DataConfig(dataset="tanganke/gtsrb", val_fraction=0.1),
    train=TrainConfig(
        epochs=20,
        batch_size=128,
        lr=2e-3,
        optimizer="adamw",
        weight_decay=0.05,
        scheduler="cosine",
        lr_warmup_epochs=1.0,
        label_smoothing=0.1,
    ),
)

# The rendered-only recipes' test-time views: a sign's size in a real crop is what renders get least right,
# and the mean prediction over fields of view of 0.8-1.2 reads real signs better (README, "Test-time views").
SIGN_VIEWS = (0.8, 0.9, 1.1, 1.2)

RECIPES: dict[str, Recipe] = {
    "lenet-gtsrb": Recipe(
        name="lenet-gtsrb",
        description="LeNet-5 trained from scratch on GTSRB traffic signs (43 classes), 32x32 grayscale.",
        config=RunConfig(
            recipe="lenet-gtsrb",
            model=ModelConfig(
                architecture="lenet5",
                drop_rate=0.3,  # the study's dropout keep probability 0.7, on the FC layers
            ),
            preprocess=PreprocessConfig(
                input_size=32,
                grayscale=True,  # sign identity is in shape and pictogram; colour varies with lighting
                # GTSRB has very dark and washed-out frames. The study equalized the histogram; its adaptive
                # form (CLAHE) lifts track-separated validation accuracy from 0.916 to 0.97 here, because a
                # global histogram of a 32x32 crop is dominated by the background around the sign.
                equalize="clahe",
                clahe_clip_limit=2.0,
                clahe_grid=4,
                # Pixel mean and std of CLAHE-equalized GTSRB training images (5,000 sampled).
                mean=(0.40,),
                std=(0.26,),
                interpolation="bilinear",
                crop_pct=None,  # GTSRB crops include a ~10% border around the sign; keep it all
            ),
            aug=AUGMENTATIONS["sign"],  # the study's rotation and blur
            data=DataConfig(
                dataset="tanganke/gtsrb",  # parquet, image/label, train 26,640 / test 12,630
                val_fraction=0.1,
            ),
            train=TrainConfig(epochs=20, batch_size=128, lr=1e-3, optimizer="adam", scheduler="constant"),
        ),
        study_results={
            "validation_accuracy_epoch_1": 0.686,
            "validation_accuracy": 0.968,
            "test_accuracy": 0.955,
        },
        study_summary=(
            "LeNet-5 on 32x32 grayscale GTSRB images with histogram equalization, Adam (lr 1e-3), batch 128, "
            "20 epochs, dropout keep probability 0.7 and rotation / blur augmentation, which reached 96.8% "
            "validation and 95.5% test accuracy"
        ),
        intended_use=(
            "Classifying cropped images of German traffic signs (one sign filling most of the image, as in "
            "GTSRB) into the 43 GTSRB classes. Not a detector: it does not find signs in street scenes. "
            "Inputs are reduced to 32x32 grayscale, so signs that differ only in colour are confused more "
            "easily; signs of other countries and classes outside GTSRB get a confident wrong answer. A "
            "research and teaching model, not for driving decisions."
        ),
        citations=(
            "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document "
            "recognition. Proceedings of the IEEE, 86(11), 1998.",
            STALLKAMP,
            "J. Yosinski, J. Clune, Y. Bengio, H. Lipson. How transferable are features in deep neural "
            "networks? NeurIPS 2014.",
        ),
        tags=("traffic-signs", "gtsrb", "lenet"),
        example="sign.png",
    ),
    "cnn-gtsrb": Recipe(
        name="cnn-gtsrb",
        description=(
            "A compact batch-normalized CNN (SignCNN, 0.8M parameters) trained from scratch on GTSRB traffic "
            "signs (43 classes), 32x32 colour: beyond the study's LeNet-5."
        ),
        config=SIGNCNN_GTSRB,
        intended_use=(
            "Classifying cropped images of German traffic signs (one sign filling most of the image, as in "
            "GTSRB) into the 43 GTSRB classes. Not a detector: it does not find signs in street scenes. "
            "Signs of other countries and classes outside GTSRB get a confident wrong answer. A research and "
            "teaching model, not for driving decisions."
        ),
        citations=(
            CIRESAN,
            "P. Sermanet, Y. LeCun. Traffic sign recognition with multi-scale convolutional networks. "
            "IJCNN 2011.",
            IOFFE,
            STALLKAMP,
        ),
        tags=("traffic-signs", "gtsrb", "cnn"),
        example="sign.png",
    ),
    "cnn-gtsrb-fast": Recipe(
        name="cnn-gtsrb-fast",
        description=(
            "Signs at 99.4%+ in minutes: a SignCNN of half the width (signcnn_small, 0.35M parameters) "
            "trained from scratch on GTSRB traffic signs (43 classes) for 7 epochs, 32x32 colour."
        ),
        config=dataclasses.replace(
            SIGNCNN_GTSRB.replace(
                {
                    # 16-32-64 channels: a quarter of SignCNN's convolution work, 3x its images/s on a CPU
                    "model.architecture": "signcnn_small",
                    # 7 epochs of one warm-up and cosine decay: 0.994 after 6 epochs, 0.996 after 8
                    # (benchmarks/signs_time_to_accuracy.py)
                    "train.epochs": 7,
                    "train.lr_warmup_epochs": 0.3,  # a short warm-up: the run is short
                    "train.channels_last": True,  # oneDNN's faster layout: about 1.2x on 2 CPU cores
                }
            ),
            recipe="cnn-gtsrb-fast",
        ),
        intended_use=(
            "Classifying cropped images of German traffic signs (one sign filling most of the image, as in "
            "GTSRB) into the 43 GTSRB classes, trained in minutes on a laptop's CPU. Not a detector: it does "
            "not find signs in street scenes. Signs of other countries and classes outside GTSRB get a "
            "confident wrong answer. A research and teaching model, not for driving decisions."
        ),
        citations=(
            CIRESAN,
            IOFFE,
            "L. N. Smith, N. Topin. Super-convergence: very fast training of neural networks using large "
            "learning rates. 2019.",
            STALLKAMP,
        ),
        tags=("traffic-signs", "gtsrb", "cnn"),
        example="sign.png",
    ),
    "cnn-synthetic": Recipe(
        name="cnn-synthetic",
        description=(
            "SignCNN (0.8M parameters) trained only on tl_hub's rendered traffic signs (43 GTSRB classes), "
            "32x32 colour: the offline quickstart's model, which reads real GTSRB signs without seeing one."
        ),
        config=dataclasses.replace(
            SIGNCNN_GTSRB.replace(
                {
                    # rendered, 200 per class (--synthetic-per-class): no download
                    "data.dataset": "synthetic",
                    # 5 epochs keep the quickstart under 3 minutes on 2 CPU cores (2 min 40 s on a slow
                    # day); 6 add about 0.01 on real signs
                    "train.epochs": 5,
                    "train.channels_last": True,  # oneDNN's faster layout: 191 s -> 160 s end to end
                    # predictions average 5 fields of view: 0.897 -> 0.910 of the real signs (README)
                    "preprocess.tta_scales": SIGN_VIEWS,
                }
            ),
            recipe="cnn-synthetic",
        ),
        intended_use=(
            "Trying tl_hub offline, and a starting point for fine-tuning on real signs (--init-from). It "
            "classifies cropped images of German traffic signs into the 43 GTSRB classes, but having seen "
            "only rendered signs it is far less accurate on real ones than a model trained on them (see "
            "BENCHMARKS.md). Not a detector, and not for driving decisions."
        ),
        citations=(
            CIRESAN,
            IOFFE,
            STALLKAMP,
        ),
        tags=("traffic-signs", "gtsrb", "cnn", "synthetic-data"),
        example="sign.png",
    ),
    "cnn-rendered": Recipe(
        name="cnn-rendered",
        description=(
            "SignCNN (0.8M parameters) trained only on tl_hub's rendered traffic signs (43 GTSRB classes), "
            "32x32 colour, on five times the quickstart's renders for longer: the rendered-only model to "
            "start from when there is time (under 30 minutes on 2 CPU cores)."
        ),
        config=dataclasses.replace(
            SIGNCNN_GTSRB.replace(
                {
                    "data.dataset": "synthetic",
                    # 1,000 fresh renders per class instead of the quickstart's 200, seen 9 times each
                    "data.synthetic_per_class": 1000,
                    "train.epochs": 9,
                    "train.channels_last": True,
                    "preprocess.tta_scales": SIGN_VIEWS,
                }
            ),
            recipe="cnn-rendered",
        ),
        intended_use=(
            "A rendered-only traffic-sign classifier for the 43 GTSRB classes, and a starting point for "
            "fine-tuning on a few real signs (--init-from). It has seen no real sign: see BENCHMARKS.md for "
            "how it reads real ones. Not a detector, and not for driving decisions."
        ),
        citations=(
            CIRESAN,
            IOFFE,
            STALLKAMP,
        ),
        tags=("traffic-signs", "gtsrb", "cnn", "synthetic-data"),
        example="sign.png",
    ),
    "vgg16-catsdogs": Recipe(
        name="vgg16-catsdogs",
        description="VGG16 pretrained on ImageNet, conv base frozen, with a new head for cats vs. dogs.",
        config=RunConfig(
            recipe="vgg16-catsdogs",
            model=ModelConfig(
                architecture="vgg16",
                drop_rate=0.5,  # the study's Dropout 0.5 between Dense 256 and the output layer
                pretrained="vgg16.tv_in1k",  # torchvision's ImageNet weights, as Keras' VGG16 in the study
            ),
            preprocess=weights_preprocess(
                "vgg16.tv_in1k"
            ),  # 224x224: resize 256, center crop, ImageNet mean/std
            aug=AugConfig(rotation=20.0, hflip=True),  # a mirrored cat is still a cat
            data=DataConfig(
                dataset="Bingsu/Cat_and_Dog",  # parquet, image/labels, cat/dog, train 8,000 / test 2,000, CC0
                train_size=2000,  # the study's small-data setting: 1,000 per class
                val_size=500,
            ),
            train=TrainConfig(epochs=100, batch_size=100, lr=1e-4, optimizer="sgd", momentum=0.9),
            transfer=TransferConfig(strategy="feature-extract"),
        ),
        study_results={"validation_accuracy": 0.930, "test_accuracy": 0.930},
        base_model="timm/vgg16.tv_in1k",
        study_summary=(
            "VGG16 pretrained on ImageNet with its convolutional layers frozen and a new head (Flatten -> "
            "Dense 256 ReLU -> Dropout 0.5 -> Dense 2) trained on 2,000 Dogs vs. Cats images (500 for "
            "validation) with SGD (lr 1e-4, momentum 0.9), batch 100, 100 epochs, 224x224 inputs and "
            "rotation / flip augmentation, "
            "which reached 93.0% test accuracy"
        ),
        intended_use=(
            "Telling cats from dogs in photos where one animal is the main subject. Any other image (another "
            "animal, no animal, both) still gets one of the two labels. A research and teaching model."
        ),
        citations=(
            "K. Simonyan, A. Zisserman. Very deep convolutional networks for large-scale image recognition. "
            "ICLR 2015.",
            "J. Yosinski, J. Clune, Y. Bengio, H. Lipson. How transferable are features in deep neural "
            "networks? NeurIPS 2014.",
        ),
        tags=("cats-vs-dogs", "vgg16", "transfer-learning"),
    ),
    "vgg16-catsdogs-finetune": Recipe(
        name="vgg16-catsdogs-finetune",
        description=(
            "VGG16 pretrained on ImageNet with a pooled head: the head trained on the frozen base, then the "
            "last conv block fine-tuned with it at a lower learning rate, for cats vs. dogs."
        ),
        config=RunConfig(
            recipe="vgg16-catsdogs-finetune",
            # global average pooling -> Dense 2 in place of the study's Flatten -> Dense 256: a linear probe
            # on the pooled base reads 0.982 of the validation photos, the Flatten head 0.968
            # (benchmarks/vgg16_heads.py)
            model=ModelConfig(
                architecture="vgg16", drop_rate=0.0, pretrained="vgg16.tv_in1k", pooled_head=True
            ),
            # the whole 256x256 centre square (timm's resize 256 without the crop to 224): 0.982 -> 0.988,
            # animals cut by the crop come back
            preprocess=dataclasses.replace(weights_preprocess("vgg16.tv_in1k"), input_size=256, crop_pct=1.0),
            # flips only: views rotated by up to 20 degrees (black corners) read 0.984 against 0.986
            aug=AugConfig(hflip=True),
            data=DataConfig(dataset="Bingsu/Cat_and_Dog", train_size=2000, val_size=500),
            train=TrainConfig(
                epochs=8,
                batch_size=32,
                lr=1e-3,  # the head's; the last conv block at a tenth of it (transfer below)
                optimizer="adamw",
                weight_decay=0.05,
                scheduler="cosine",
                label_smoothing=0.0,  # 0.1 costs the pooled head a point on these photos (vgg16_heads.py)
            ),
            transfer=TransferConfig(
                strategy="finetune-top",
                head_epochs=5,  # LP-FT: the head first, on the frozen base, then block 5 joins
                top_lr_scale=0.1,
                # --strategy finetune-all: the pretrained blocks at a tenth of the head's rate too; at the
                # head's 1e-3, AdamW wrecked the BatchNorm-free base (0.500 on 10 photos per class, 2 seeds)
                base_lr_scale=0.1,
                # blocks 1-4 once per image and view; each epoch trains block 5 and the head on one view:
                # 5.6x faster per fine-tuning epoch than the whole network (benchmarks/vgg16_finetune.py)
                cache_views=2,
            ),
        ),
        base_model="timm/vgg16.tv_in1k",
        study_summary=(
            "VGG16 pretrained on ImageNet with its convolutional layers frozen and a new head (Flatten -> "
            "Dense 256 ReLU -> Dropout 0.5 -> Dense 2) trained on 2,000 Dogs vs. Cats images (500 for "
            "validation), which reached 93.0% test accuracy; this recipe replaces that head with global "
            "average pooling -> Dense 2 on the whole 256x256 photo, then fine-tunes the last convolutional "
            "block, the study's next step"
        ),
        intended_use=(
            "Telling cats from dogs in photos where one animal is the main subject. Any other image (another "
            "animal, no animal, both) still gets one of the two labels. A research and teaching model."
        ),
        citations=(
            "K. Simonyan, A. Zisserman. Very deep convolutional networks for large-scale image recognition. "
            "ICLR 2015.",
            "A. Kumar, A. Raghunathan, R. Jones, T. Ma, P. Liang. Fine-tuning can distort pretrained "
            "features and underperform out-of-distribution. ICLR 2022.",
        ),
        tags=("cats-vs-dogs", "vgg16", "transfer-learning", "fine-tuning"),
    ),
    "timm-finetune": Recipe(
        name="timm-finetune",
        description="A timm backbone pretrained on ImageNet with a new classifier, for photo classification.",
        config=RunConfig(
            recipe="timm-finetune",
            model=ModelConfig(
                architecture="efficientnet_lite0",  # any timm model with --model NAME
                drop_rate=0.2,  # before the new classifier, when it trains on live images
                pretrained="efficientnet_lite0",  # timm's ImageNet weights (the Hub; or --model local-dir:)
            ),
            preprocess=weights_preprocess("efficientnet_lite0"),  # --model replaces it with its weights' own
            aug=AUGMENTATIONS["photo"],  # --augment sign for traffic signs
            data=DataConfig(
                dataset="Bingsu/Cat_and_Dog",  # parquet, image/labels, cat/dog, train 8,000 / test 2,000, CC0
                val_fraction=0.1,
            ),
            train=TrainConfig(
                epochs=10,
                batch_size=32,
                lr=1e-3,  # the head's; pretrained layers train at a tenth of it (transfer below)
                optimizer="adamw",
                weight_decay=0.01,
                scheduler="cosine",
                lr_warmup_epochs=1.0,  # stepped every batch
                label_smoothing=0.1,
            ),
            transfer=TransferConfig(
                # A small photo set close to ImageNet: the frozen backbone's features, cached once, with a
                # linear head (the quadrant's first cell); finetune-top / finetune-all with --strategy.
                strategy="feature-extract",
                head_epochs=1,  # finetune-top: one head-only epoch before the last stage joins
                top_lr_scale=0.1,
                base_lr_scale=0.1,  # finetune-all: pretrained layers at a tenth of the head's rate
            ),
        ),
        study_summary="",
        intended_use=(
            "Classifying photos into the classes of the dataset it was trained on, one main subject per "
            "photo. Any other image still gets one of those labels. A research and teaching model."
        ),
        citations=(
            "R. Wightman. PyTorch Image Models (timm). https://github.com/huggingface/pytorch-image-models",
            "J. Yosinski, J. Clune, Y. Bengio, H. Lipson. How transferable are features in deep neural "
            "networks? NeurIPS 2014.",
        ),
        tags=("transfer-learning", "timm"),
    ),
}

DEFAULT_RECIPE = "lenet-gtsrb"


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; a ConfigError lists the valid names otherwise."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}: choose one of {', '.join(sorted(RECIPES))}") from None
