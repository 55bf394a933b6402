"""`mlops-gates serve`: the live analysis as a small HTTP service that rollout controllers call. Read-only but
for one endpoint, which needs a bearer token.

- `GET /v1/analysis?canary=&stable=`: the analysis as JSON, for Argo Rollouts' web metric provider (an
  AnalysisTemplate reads `$.verdict`);
- `POST /flagger/{hook}`: Flagger's webhooks, answered with the status codes Flagger acts on;
- `POST /v1/rollback?canary=&stable=`: with the bearer token, roll back when the analysis says ROLLBACK;
- `GET /metrics`: every check and verdict for Prometheus; `GET /healthz`, `GET /readyz`;
- `GET /openapi.json`: the API's schema.

FastAPI reads the annotations at run time, so this module imports it at the top (the `serve` extra)."""

import hmac
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from mlops_gates._version import __version__
from mlops_gates.errors import GateError
from mlops_gates.live.exposition import Exposition
from mlops_gates.live.serve import Service

MAX_BODY = 64 * 1024  # Flagger's payload is a few hundred bytes
# Flagger: 2xx lets the rollout go on, anything else holds it (rollout hooks count a failed check); a rollback
# hook's 2xx fails the canary at once. confirm-rollout asks only whether the service can answer.
FLAGGER_OK = {
    "confirm-rollout": set(),
    "pre-rollout": {"PROMOTE", "CONTINUE"},
    "rollout": {"PROMOTE", "CONTINUE"},
    "confirm-promotion": {"PROMOTE"},
    "rollback": {"ROLLBACK"},
}


def app(
    service: Service,
    model: str,
    environment: str,
    act: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    token: str | None = None,
) -> FastAPI:
    """The ASGI application. `act` rolls back on a ROLLBACK verdict (with the registry's checks, audit log and
    alerts); it is reachable only with the bearer `token`, the one endpoint that changes anything."""
    api = FastAPI(title="mlops-gates live analysis", version=__version__)
    metrics = Exposition(model, environment)

    def run(canary: str, stable: str, split: float | None) -> dict[str, Any]:
        try:
            result = service.analysis(canary, stable, split)
        except GateError as exc:  # unreadable logs: cannot judge, and say why
            raise HTTPException(status_code=422, detail=exc.render()) from None
        metrics.observe(result)
        return result.record()

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    def readyz() -> JSONResponse:
        why = service.ready()
        body = {"status": "ready"} if why is None else {"status": "not ready", "reason": why}
        return JSONResponse(body, status_code=200 if why is None else 503)

    @api.get("/v1/analysis")
    def analysis(
        canary: str = Query(min_length=1, max_length=200),
        stable: str = Query(min_length=1, max_length=200),
        split: float | None = Query(default=None, gt=0, lt=1),
    ) -> dict[str, Any]:
        return run(canary, stable, split)

    @api.post("/flagger/{hook}")
    async def flagger(hook: str, request: Request) -> JSONResponse:
        if hook not in FLAGGER_OK:
            raise HTTPException(
                status_code=404, detail=f"no Flagger hook {hook!r}; use {', '.join(FLAGGER_OK)}"
            )
        body = await request.body()
        if len(body) > MAX_BODY:
            raise HTTPException(status_code=413, detail="the payload is larger than Flagger sends")
        canary, stable, split = _flagger_metadata(body)
        if hook == "confirm-rollout":
            why = service.ready()
            return JSONResponse(
                {"ready": why is None, "reason": why}, status_code=200 if why is None else 503
            )
        record = run(canary, stable, split)
        ok = record["verdict"] in FLAGGER_OK[hook]
        return JSONResponse(record, status_code=200 if ok else 403)

    @api.post("/v1/rollback")
    def rollback(
        request: Request,
        canary: str = Query(min_length=1, max_length=200),
        stable: str = Query(min_length=1, max_length=200),
        split: float | None = Query(default=None, gt=0, lt=1),
    ) -> JSONResponse:
        _authorised(request, act, token)
        record = run(canary, stable, split)
        if act is None or record["verdict"] != "ROLLBACK":
            done = {"done": f"nothing: the analysis says {record['verdict']}"}
            return JSONResponse({**record, "response": done}, status_code=409)
        return JSONResponse({**record, "response": act(record)})

    @api.get("/metrics")
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return api


def _authorised(request: Request, act: Any, token: str | None) -> None:
    """Raise unless rolling back is on and the request carries the bearer token (compared in constant time)."""
    if act is None or not token:
        raise HTTPException(
            status_code=403,
            detail="rolling back is off: start serve with --rollback MODEL@ENV and the token's variable set",
        )
    given = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise HTTPException(
            status_code=401, detail="a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


def _flagger_metadata(body: bytes) -> tuple[str, str, float | None]:
    """The versions from a Flagger webhook's metadata (`canary`, `stable`, optional `split`)."""
    try:
        payload = json.loads(body or b"{}")
        meta = payload.get("metadata") or {}
        canary, stable = str(meta["canary"]), str(meta["stable"])
        split = float(meta["split"]) if "split" in meta else None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HTTPException(
            status_code=400,
            detail="the webhook's metadata must name the versions: {canary: v2, stable: v1} (and split: 0.1)",
        ) from None
    if split is not None and not 0 < split < 1:
        raise HTTPException(status_code=400, detail="split must be a fraction between 0 and 1")
    return canary, stable, split
