"""Money: a `Decimal` amount with an ISO 4217 currency.

Rules:
- Amounts come from `str`, `int` or `Decimal`, never `float`.
- Arithmetic refuses mixed currencies.
- Rounding happens only where a caller names it (`quantize`), half-even by default,
  to the currency's minor unit from `CURRENCY_EXPONENTS`.
- Storage uses integer minor units (`to_minor` / `from_minor`); JSON uses decimal strings.
  An amount from outside must be below `AMOUNT_CEILING` in absolute value, so its minor
  units fit the database's signed 64-bit integers in every currency here (exponent <= 3)
  and it quantizes exactly in 28-digit decimal arithmetic.
- `allocate` splits by largest remainder so the parts always sum exactly to the whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from finsync.domain.errors import CurrencyMismatchError, DomainError, UnknownCurrencyError

# ISO 4217 minor-unit exponents of the currencies finsync accepts.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2,
    "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2,
    "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2,
    "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2, "PLN": 2, "SAR": 2, "SEK": 2, "SGD": 2,
    "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "UGX": 0, "USD": 2, "VND": 0, "ZAR": 2,
}

# The minor unit of each currency as a Decimal (0.01 for USD): what `quantize` rounds to.
QUANTA: dict[str, Decimal] = {c: Decimal(1).scaleb(-e) for c, e in CURRENCY_EXPONENTS.items()}

# Major units, exclusive: 10**15 with 3 decimal places is 10**18 minor units < 2**63.
AMOUNT_CEILING = Decimal(10) ** 15


def exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrencyError(f"unknown ISO 4217 currency {currency!r}") from None


def quantum(currency: str) -> Decimal:
    """The currency's minor unit as a Decimal (0.01 for USD)."""
    try:
        return QUANTA[currency]
    except KeyError:
        raise UnknownCurrencyError(f"unknown ISO 4217 currency {currency!r}") from None


def to_decimal(value: str | int | Decimal) -> Decimal:
    """The one way to make an amount; floats are refused because they are not exact."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise DomainError(f"amounts must be str, int or Decimal, not {type(value).__name__}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise DomainError(f"not a decimal amount: {value!r}") from None
    if not amount.is_finite():
        raise DomainError(f"amount must be finite: {value!r}")
    return amount


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if self.currency not in CURRENCY_EXPONENTS:
            exponent(self.currency)  # raises UnknownCurrencyError
        if not isinstance(self.amount, Decimal):
            raise DomainError("Money.amount must be a Decimal; use Money.of()")
        if self.amount.is_zero() and self.amount.is_signed():
            object.__setattr__(self, "amount", -self.amount)  # no "-0.00" in the books

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        return cls(to_decimal(amount), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        try:
            return _ZEROS[currency]
        except KeyError:
            exponent(currency)  # raises UnknownCurrencyError
            raise

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return _checked(Decimal(minor).scaleb(-exponent(currency)), currency)

    def to_minor(self) -> int:
        """Integer minor units; the amount must already be at the currency's precision."""
        scaled = self.amount.scaleb(CURRENCY_EXPONENTS[self.currency])
        minor = int(scaled)
        if scaled != minor:
            raise DomainError(f"{self} has more precision than {self.currency} minor units")
        return minor

    def quantize(self, rounding: str = ROUND_HALF_EVEN) -> Money:
        return _checked(self.amount.quantize(QUANTA[self.currency], rounding=rounding),
                        self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return _checked(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return _checked(self.amount - other.amount, self.currency)

    def __abs__(self) -> Money:
        return self if self.amount >= 0 else -self

    def __neg__(self) -> Money:
        return _checked(-self.amount, self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        if isinstance(factor, float):
            raise DomainError("multiply Money by int or Decimal, not float")
        return Money(self.amount * factor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    def allocate(self, weights: Sequence[int | Decimal]) -> tuple[Money, ...]:
        """Split by weights, in minor units, by largest remainder; parts sum to the whole.

        Ties in remainder go to the earlier part, so the split is deterministic.
        """
        if not weights or any(w < 0 for w in weights):
            raise DomainError("allocation needs at least one weight, none negative")
        total_weight = sum(Decimal(w) for w in weights)
        if total_weight == 0:
            raise DomainError("allocation weights sum to zero")
        whole = self.quantize().to_minor()
        sign = -1 if whole < 0 else 1
        exact = [Decimal(abs(whole)) * Decimal(w) / total_weight for w in weights]
        floors = [int(x) for x in exact]
        short = abs(whole) - sum(floors)
        order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
        for i in order[:short]:
            floors[i] += 1
        return tuple(Money.from_minor(sign * f, self.currency) for f in floors)


_new = object.__new__
_set = object.__setattr__


def _checked(amount: Decimal, currency: str) -> Money:
    """`Money(amount, currency)` for what Money's own methods compute: a Decimal, in a
    currency a Money already holds or `exponent` just accepted. Only the sign of zero is
    still to fix. Skipping the dataclass constructor and its checks roughly halves the cost
    of the objects posting makes (about twenty per document)."""
    money = _new(Money)
    _set(money, "amount", -amount if amount.is_zero() and amount.is_signed() else amount)
    _set(money, "currency", currency)
    return money


# Zero in each currency, at its minor unit ("0.00 USD"); Money is immutable, so one serves all.
_ZEROS: dict[str, Money] = {c: Money(Decimal(0).scaleb(-e), c)
                            for c, e in CURRENCY_EXPONENTS.items()}


def total(amounts: Sequence[Money], currency: str) -> Money:
    """Sum in one currency; an empty sequence is zero in that currency. The amounts are
    added as Decimals from the currency's zero, without a Money per addition: the same sum
    as adding the Money one by one, as the sign of an intermediate zero changes only a
    zero result, whose sign `_checked` fixes."""
    result = Money.zero(currency).amount
    for money in amounts:
        if money.currency != currency:
            raise CurrencyMismatchError(f"cannot combine {currency} with {money.currency}")
        result += money.amount
    return _checked(result, currency)


def per_currency(amounts: Iterable[Money]) -> tuple[Money, ...]:
    """`amounts` summed per currency (never across two), in currency order."""
    sums: dict[str, Money] = {}
    for money in amounts:
        found = sums.get(money.currency)
        sums[money.currency] = money if found is None else found + money
    return tuple(sums[currency] for currency in sorted(sums))
