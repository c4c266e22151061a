"""`GET /v1/digest` and `GET /v1/digest/key`: signed stream digests for supervisors (ADR 0011)."""
from __future__ import annotations

from litestar import Router, get
from litestar.params import Parameter

from services.api.deps import ApiDeps
from services.api.read_common import EXCEPTION_HANDLERS, ApiError, bad
from services.api.responses import errors
from services.audit.digest import ChainBroken, Digest, issue
from services.runtime.signing import PublicKeyView, SigningKey, signing_key


def _key(deps: ApiDeps) -> SigningKey:
    if deps.signing_key is None:
        if deps.settings is None:
            raise ApiError(503, "unavailable", "this server has no data directory to keep a signing key in")
        deps.signing_key = signing_key(deps.settings)
    return deps.signing_key


@get("/digest", responses=errors(400, 409, 503),
     summary="The stream's signed digest up to a sequence (default: its last)",
     description="One hash over every subject's head as of `upto`, signed with the ledger's Ed25519 key; keep it "
                 "elsewhere and check it later with `ledger verify --digest FILE`. Reads the whole stream up to "
                 "`upto`. 409 when a person's chain is broken there.")
async def digest(deps: ApiDeps, upto: int | None = Parameter(default=None, ge=1, description="last stream sequence "
                                                                                         "covered")) -> Digest:
    if deps.js is None:
        raise ApiError(503, "unavailable", "no NATS connection to read the ledger from")
    key = _key(deps)
    try:
        return await issue(deps.js, key, upto, seal_key=deps.seal_key,
                           stream=deps.stream)
    except ChainBroken as exc:
        raise ApiError(409, "chain_broken", str(exc)) from None
    except ValueError as exc:
        raise bad(str(exc)) from None


@get("/digest/key", responses=errors(400, 503),
     summary="The public key that verifies the ledger's digests", sync_to_thread=False)
def digest_key(deps: ApiDeps) -> PublicKeyView:
    return _key(deps).view()


def digest_router() -> Router:
    return Router(path="/v1", route_handlers=[digest, digest_key], tags=["supervision"],
                  opt={"roles": ("supervisor", "admin")}, exception_handlers=EXCEPTION_HANDLERS)
