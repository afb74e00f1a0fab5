"""Reference for the serving benchmark: a bare Starlette app calling the same native booster.

    REF_BUNDLE_DIR=.../serving_bundle REF_SNAPSHOT=.../latest.parquet \
        .venv/bin/uvicorn --app-dir benchmarks starlette_ref:app --port 3102 --no-access-log

``POST /score {"merchant_id": ...}``: the snapshot row (encoded once at start, like the
service), ``booster.predict(raw_score=True)`` on that one row, calibration and master scale,
JSON out. No authentication, no audit record, no reason codes, no input model: about the
least work a scoring endpoint can do in Python on this stack, hence the ceiling the
service is measured against.
"""

from __future__ import annotations

import json
import os

import polars as pl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from training.bundle import ScoringBundle

bundle = ScoringBundle.load(os.environ["REF_BUNDLE_DIR"], num_threads=1)
snapshot = pl.read_parquet(os.environ["REF_SNAPSHOT"])
X = bundle.encode(snapshot)
index = {m: i for i, m in enumerate(snapshot["merchant_id"].cast(pl.String).to_list())}


async def score(request: Request) -> Response:
    merchant_id = json.loads(await request.body()).get("merchant_id")
    i = index.get(merchant_id)
    if i is None:
        return Response(b'{"error":"unknown merchant"}', status_code=404, media_type="application/json")
    p = bundle.pd_from_margin(bundle.booster.predict(X[i : i + 1], raw_score=True, num_threads=1))
    body = {
        "merchant_id": merchant_id,
        "pd": float(p[0]),
        "score": int(bundle.scale.score(p)[0]),
        "grade": str(bundle.scale.grade(p)[0]),
        "class": str(bundle.scale.risk_class(p)[0]),
    }
    return Response(json.dumps(body).encode(), media_type="application/json")


app = Starlette(routes=[Route("/score", score, methods=["POST"])])
