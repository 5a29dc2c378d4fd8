"""The validator's errors, under the shared root.

    RiskstreamError (streams.errors)
    └── ValidatorError        the validator cannot do what was asked
        ├── BatchLoadError    a batch, labels or traps object is missing or malformed
        ├── ReplayError       a replay command cannot be served (unknown date, no index)
        ├── ControlRefused    a command no operator provably sent, or one too many for its date
        └── IdentityError     a miner record its claimed sender did not provably send (validator.identity)

Bad miner input is never raised: it is dead-lettered or penalised with a reason.
"""

from __future__ import annotations

from streams.errors import RiskstreamError


class ValidatorError(RiskstreamError):
    """The validator cannot do what was asked."""


class BatchLoadError(ValidatorError):
    """A batch, labels or traps object is missing or does not have the contract's columns."""


class ReplayError(ValidatorError):
    """A replay command names a date the validator has no offsets or batch for."""


class ControlRefused(ValidatorError):
    """A command (or re-announcement) that no operator provably sent, or one too many for its date."""
