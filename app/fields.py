"""Field types and patterns every resource's schemas share.

Each constraint here is one the OpenAPI document states as it is enforced:
a pattern is validated with the very regular expression the document shows,
so a client generated from the document, or a fuzzer reading it, meets no
rule it could not have known.
"""
from __future__ import annotations

import calendar
import math
import re
from typing import Any

from marshmallow import ValidationError, fields

#: An id the broker issued: its prefix and 32 lower-case hex digits (core.ids.new_id).
ID_PATTERNS = {prefix: rf"^{prefix}_[0-9a-f]{{32}}$" for prefix in ("ses", "ctx", "prx", "key", "ext")}


def id_field(prefix: str, description: str) -> fields.String:
    """An optional reference to another resource: null, or an id of the right shape (else 422)."""
    return PatternString(ID_PATTERNS[prefix], f"Must be an id like {prefix}_ and 32 hex digits.",
                         load_default=None, allow_none=True, metadata={"description": description})


class StrictInteger(fields.Integer):
    """A JSON integer: not a string of digits, not a float, not ``true`` (which Python counts as 1)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON true or false: ``1`` or ``"yes"`` for a flag is a mistake worth a 422, not a guess."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class UnixSeconds(fields.Float):
    """A JSON number of seconds since 1970, never a string; dumped as given, so exports' whole seconds stay integers."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})["minimum"] = 0
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValidationError("Must be Unix seconds: a number, 0 or more.")
        return value

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> int | float | None:
        return value


RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:([Zz])|([+-])(\d\d):(\d\d))"
)


class Timestamp(fields.String):
    """An RFC 3339 date-time (``format: date-time``) loaded as Unix seconds.

    Every date-time RFC 3339 allows is taken, offsets, fractions and leap
    seconds included, and computed in plain arithmetic, so year 1 or 9999 in
    any offset cannot overflow Python's datetime.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})["format"] = "date-time"
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        match = RFC3339.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ValidationError("Must be an RFC 3339 date-time, like 2030-01-01T00:00:00Z.")
        year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
        offset = 0
        if match.group(8):
            offset_hours, offset_minutes = int(match.group(9)), int(match.group(10))
            if offset_hours > 23 or offset_minutes > 59:
                raise ValidationError("The offset must be between -23:59 and +23:59.")
            offset = (offset_hours * 60 + offset_minutes) * 60 * (1 if match.group(8) == "+" else -1)
        leap_year = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        days_in_month = 29 if month == 2 and leap_year else calendar.mdays[month] if 1 <= month <= 12 else 0
        if not 1 <= day <= days_in_month or hour > 23 or minute > 59 or second > 60:
            raise ValidationError("Not a real date and time.")
        return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + min(second, 59) - offset

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


class PatternString(fields.String):
    """A string its pattern admits, read as JSON Schema validators in Python read a pattern (``re.search``).

    The pattern goes into the OpenAPI document as it is. A closing ``$`` also
    admits one final newline there, so that newline is dropped from the value.
    """

    def __init__(self, pattern: str, error: str, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})["pattern"] = pattern
        super().__init__(**kwargs)
        self.regex = re.compile(pattern)
        self.pattern_error = error

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not self.regex.search(text):
            raise ValidationError(self.pattern_error)
        return text.removesuffix("\n")
