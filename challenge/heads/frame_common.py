"""What the per-frame heads share: the problems they handle and the output width per problem."""

from __future__ import annotations

from challenge.track import Problem

FRAME_PROBLEMS = {Problem.FRAME_CLASSIFICATION, Problem.FRAME_MULTILABEL, Problem.FRAME_REGRESSION}


class FrameHeadMixin:
    """fit/predict for per-frame torch heads; subclasses build `self.model` in `build(dims)` (saved
    and restored by Head.state/restore from `self.shape`)."""

    def build(self, dims: list[int]):
        raise NotImplementedError

    def fit(self, train, valid, score, report=None) -> float:
        import torch

        from challenge.training.frame_loop import fit_frame_model

        torch.manual_seed(self.seed)
        self.shape = {"dims": [int(d) for d in train.dims]}
        self.model = self.build(**self.shape)
        if hasattr(self, "start"):  # a pretrained part takes its weights (cnn-gru's FER encoder)
            self.start(self.model)
        best, self.history = fit_frame_model(
            self.model,
            self.problem,
            train,
            valid,
            self.params,
            score,
            report,
            self.seed,
            self.device,
            self.n_outputs,
            getattr(self, "checkpoint", None),
        )
        return best

    def predict(self, data):
        from challenge.training.frame_loop import predict_frames

        return predict_frames(self.model, self.problem, data, self.params["window"], self.device)
