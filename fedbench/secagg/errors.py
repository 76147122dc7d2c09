"""The errors of secure aggregation: each names the client, the stage and what to change."""

from __future__ import annotations

from fedbench.errors import FedbenchError


class SecAggError(FedbenchError):
    """Secure aggregation cannot go on as asked (a bad parameter, a bad key, too few clients or shares)."""

    code = "secagg"


class MaskKeyError(SecAggError):
    """A mask would be expanded from a key that is not a full 256-bit key."""

    code = "secagg_mask_key"


class OutOfRange(SecAggError):
    """An update has a value that cannot be encoded (not finite, or beyond the clip range when refused)."""

    code = "secagg_out_of_range"


class ShareRefused(SecAggError):
    """An honest client refuses the server's unmasking request (it would reveal both shares of a client)."""

    code = "secagg_share_refused"


class RoundAborted(SecAggError):
    """A round cannot complete: too few clients or shares are left to meet the threshold."""

    code = "secagg_round_aborted"
