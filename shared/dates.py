"""A calendar date as the API accepts it: `YYYY-MM-DD` only.

Pydantic also reads numbers (and numeric strings) as Unix timestamps, so `exam_date=0`
would silently mean 1970-01-01; the OpenAPI document promises `format: date`, so anything
else is refused."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_only(value: Any) -> Any:
    if isinstance(value, dt.date) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("must be a date as YYYY-MM-DD")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_only)]
