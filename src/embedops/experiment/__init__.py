"""A/B tests and team-draft interleaving between a champion and a challenger: assignment, statistics, decisions.

Library only (no HTTP): the server, the CLI and `Project` call these functions.
"""

from embedops.experiment.ab import ABResult, ArmSummary, ab_analysis
from embedops.experiment.assignment import SRMResult, assign, bucket, srm_check, users_per_arm
from embedops.experiment.definition import (
    CHALLENGER,
    CHAMPION,
    INTERLEAVED,
    Arm,
    Experiment,
    ExperimentError,
    StoppingRule,
)
from embedops.experiment.interleave import (
    InterleaveResult,
    Interleaving,
    credit,
    interleave_analysis,
    interleave_seed,
    team_draft,
)
from embedops.experiment.outcome import Outcome, request_value
from embedops.experiment.report import ExperimentReport, analyze
from embedops.experiment.simulate import SimulatedUser, present, simulate
from embedops.experiment.store import ExperimentStore

__all__ = [
    "CHALLENGER", "CHAMPION", "INTERLEAVED", "ABResult", "Arm", "ArmSummary", "Experiment", "ExperimentError",
    "ExperimentReport", "ExperimentStore", "InterleaveResult", "Interleaving", "Outcome", "SRMResult",
    "SimulatedUser", "StoppingRule", "ab_analysis", "analyze", "assign", "bucket", "credit", "interleave_analysis",
    "interleave_seed", "present", "request_value", "simulate", "srm_check", "team_draft", "users_per_arm",
]
