"""The plain FastAPI endpoint, as the field's tutorials write it: one predict call per request.

Run: python bench/fastapi_baseline.py MODEL.joblib PORT
"""

from __future__ import annotations

import sys

import joblib
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

model = joblib.load(sys.argv[1])
app = FastAPI()


class Features(BaseModel):
    data: list[float]


@app.post("/predict")
def predict(features: Features) -> dict[str, list[int]]:
    return {"prediction": model.predict([features.data]).tolist()}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
