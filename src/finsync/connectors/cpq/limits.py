"""Limits of a CPQ source beyond the hub's `InputLimits` (which bound body bytes, JSON
shape, strings, amounts and dates of every draft).

Rules:
- A commercial contract has at most `lines_max` lines and each line at most
  `ramp_steps_max` ramp steps (`too_many_lines`, `too_many_ramp_steps`).
- A dropped file is at most `file_bytes_max` bytes (`file_too_large`), `rows_max` rows or
  JSON lines (`too_many_rows`) and `versions_max` contract versions (`too_many_versions`);
  one CSV cell at most `cell_max_chars` characters (`cell_too_long`).
- Each refusal is a `MappingError` with its code, naming the limit and its value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from finsync.domain import json_limits
from finsync.domain.commercial import CommercialContract
from finsync.domain.errors import MappingError
from finsync.domain.limits import InputLimits


@dataclass(frozen=True, slots=True)
class CpqLimits:
    lines_max: int = 1_000
    ramp_steps_max: int = 120  # ten years of monthly steps
    file_bytes_max: int = 64 << 20
    rows_max: int = 200_000
    versions_max: int = 20_000
    cell_max_chars: int = 4_000


DEFAULT = CpqLimits()


def check_contract(contract: CommercialContract, limits: CpqLimits = DEFAULT) -> None:
    """Refuse a contract with more lines, or a line with more ramp steps, than allowed."""
    if len(contract.lines) > limits.lines_max:
        raise MappingError(f"commercial contract {contract.id} has {len(contract.lines):,} "
                           f"lines: at most {limits.lines_max:,} (lines_max)",
                           code="too_many_lines")
    for line in contract.lines:
        if len(line.ramp) > limits.ramp_steps_max:
            raise MappingError(f"line {line.line_id} has {len(line.ramp):,} ramp steps: at "
                               f"most {limits.ramp_steps_max:,} (ramp_steps_max)",
                               code="too_many_ramp_steps")


def parse_json(body: bytes | str, limits: InputLimits) -> object:
    """JSON within the source's limits (depth and elements checked before parsing); numbers
    with a fraction are read as `Decimal`, never as a float. Refusals: `json_too_deep`,
    `json_too_large`, `invalid_json`."""
    try:
        text = body if isinstance(body, str) else json_limits.decode(body)
        json_limits.check(text, limits)
        return json.loads(text, parse_float=Decimal)
    except RecursionError as exc:
        raise MappingError("JSON nested too deeply to parse", code="json_too_deep") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"body is not JSON: {exc}", code="invalid_json") from exc
