"""Fine-tuning: training pairs (files, BEIR qrels, feedback), hard-negative mining, training, before/after."""

from embedops.train.evaluate import compare_retrieval, compare_sts, heldout_split
from embedops.train.mining import MiningStats, mine_hard_negatives
from embedops.train.pairs import TrainingSet, load_training_set, pairs_from_beir, read_feedback, read_pairs
from embedops.train.run import RunReport, run_training
from embedops.train.trainer import TrainOutcome, TrainParams, last_checkpoint, train_model

__all__ = [
    "MiningStats",
    "RunReport",
    "TrainOutcome",
    "TrainParams",
    "TrainingSet",
    "compare_retrieval",
    "compare_sts",
    "heldout_split",
    "last_checkpoint",
    "load_training_set",
    "mine_hard_negatives",
    "pairs_from_beir",
    "read_feedback",
    "read_pairs",
    "run_training",
    "train_model",
]
