"""The `smiles:` section of the run config: the smiles-and-laughter tracks' own settings (beside
the smiles package, which imports the config: the section sits below both). It is registered
as the `challenge.track_settings` entry point `smiles` (pyproject.toml), the way a team's own
study track adds its section, and the two tracks declare it (TrackSpec.settings = "smiles")."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class SmilesSettings(BaseModel):
    """smile-laugh and smile-intensity read these (TrackSpec.settings = "smiles")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    option_prefix: ClassVar[str] = ""  # the options keep their plain names (--eval-data), as the smiles tracks have always spelled them
    panel: ClassVar[str] = "smile-laugh and smile-intensity"
    dataset_paths: ClassVar[tuple[str, ...]] = ("scheme",)  # relative paths in a dataset's challenge.yaml: beside that file

    eval_data: str | None = Field(None, description="smile-laugh: a second corpus, scored zero-shot.")
    scheme: str | None = Field(None, description="ELAN tier names and level spellings (YAML; default the corpus's elan_scheme.yaml).")
    clip_length: PositiveFloat = Field(1.2, description="smile-laugh: clip length in seconds.")
    clip_hop: PositiveFloat = Field(0.6, description="smile-laugh: seconds between clip starts.")
    subtle: Literal["drop", "keep", "merge"] = Field(
        "drop", description="smile-intensity: the Subtle level dropped, kept as its own class, or merged into Low."
    )
    folds: PositiveInt = Field(
        5,
        description="Grouped cross-validation folds over recordings (speakers), for early stopping and selection (smile-intensity --folds 1: the valid recordings).",
    )
    both_ways: bool = Field(False, description="smile-laugh with --eval-data: also train on that corpus and score zero-shot on --data.")
    corpus_norm: bool = Field(True, description="smile-laugh: standardise the zero-shot corpus's features with its own statistics.")
    pooling: list[Literal["mean", "std", "p10", "p90"]] = Field(
        default_factory=lambda: ["mean", "std", "p10", "p90"],
        min_length=1,
        description="smile-laugh: the statistics of each feature over a clip that the model reads (the baseline keeps mean and std).",
    )
