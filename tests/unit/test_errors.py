"""The error table: every refusal names the metric reason it is counted under, and the
metrics declare exactly those reasons (a Grafana panel lists them)."""

from __future__ import annotations

from server import errors
from server.metrics import REJECT_REASONS


def subclasses(cls: type[errors.EmbedError]) -> set[type[errors.EmbedError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_every_refusal_has_a_declared_reason_and_every_reason_a_refusal() -> None:
    reasons = {cls.reason for cls in subclasses(errors.EmbedError) if cls.reason is not None}
    assert reasons == set(REJECT_REASONS)
    for cls in subclasses(errors.EmbedError):
        refusal = 400 <= cls.status < 500 and cls.status not in (404, 405, 499)
        assert (cls.reason is not None) == refusal or cls.status == 503, cls
