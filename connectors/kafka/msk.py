"""Amazon MSK: the cluster ARN that turns events into AWS's MSK shape (ESM-SPEC §2.7), and
IAM authentication over SASL/OAUTHBEARER with AWS's token signer.

`auth: AWS_MSK_IAM` connects with SASL_SSL and OAUTHBEARER; the token is a SigV4-signed URL
made by `aws-msk-iam-sasl-signer-python` from the AWS default credential chain (environment,
profile, container or instance role), for the region given by `region`, else the one in
`msk_cluster_arn`. Tokens last 15 minutes; the provider reuses one until a minute before it
expires, so reconnects do not sign a new one each time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MSK_ARN_PREFIX = "arn:aws:kafka:"
_REFRESH_MARGIN_SECONDS = 60.0

Signer = Callable[[str], tuple[str, int]]  # region → (token, expiry epoch ms)


def arn_problems(arn: str | None) -> list[str]:
    """`msk_cluster_arn: problem` when the ARN is not an MSK cluster ARN."""
    if arn is None:
        return []
    parts = arn.split(":", 5)
    if len(parts) != 6 or not arn.startswith(MSK_ARN_PREFIX) or not parts[3] \
            or not parts[5].startswith("cluster/"):
        return [f"msk_cluster_arn: {arn!r} is not an MSK cluster ARN "
                "(arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID)"]
    return []


def region_of(arn: str | None) -> str | None:
    """The region named in an MSK cluster ARN, or None."""
    if arn is None or arn_problems(arn):
        return None
    return arn.split(":")[3]


def default_signer(region: str) -> tuple[str, int]:
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # type: ignore[import-untyped]

    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return str(token), int(expiry_ms)


class MskIamTokens:
    """MSK IAM tokens for SASL/OAUTHBEARER, signed once and reused until a minute before
    they expire; `oauth_cb` is librdkafka's token callback. Thread-safe."""

    def __init__(self, region: str, signer: Signer | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.region = region
        self._signer = signer or default_signer
        self._now = now
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._now() >= self._expires_at - _REFRESH_MARGIN_SECONDS:
                self._token, expiry_ms = self._signer(self.region)
                self._expires_at = expiry_ms / 1000.0
            return self._token

    def oauth_cb(self, _config: str) -> tuple[str, float]:
        """librdkafka's `oauth_cb`: the token and its expiry in epoch seconds."""
        token = self.token()
        return token, self._expires_at
