"""A synthetic consumer-credit default data set, generated on the spot so demos and tests need no download.

The table looks like the UCI "default of credit card clients" data: one row per card holder with bureau and
income facts, card usage and five months of bills and payments, and a binary `default` label. Two latent
factors ("wealth" and "financial stress") drive the features, so they correlate the way real ones do; amounts
are skewed, counts are integers and a few columns have missing values. The label is a logistic function of
some features plus unobserved noise, calibrated so that a plain logistic regression reaches an AUC near 0.77.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

ID_COLUMN = "id"
LABEL_COLUMN = "default"

N_MONTHS = 5
BILL_COLUMNS = [f"bill_amt_{m}" for m in range(1, N_MONTHS + 1)]
PAY_COLUMNS = [f"pay_amt_{m}" for m in range(1, N_MONTHS + 1)]

GUEST_FEATURES = [
    "credit_limit",
    "months_on_book",
    "utilization",
    "late_payments_6m",
    "late_payments_12m",
    *BILL_COLUMNS,
    *PAY_COLUMNS,
]
HOST_FEATURES = [
    "age",
    "education",
    "income",
    "employment_years",
    "home_owner",
    "n_dependents",
    "years_at_address",
    "n_cards",
    "n_open_loans",
    "other_debt",
    "debt_to_income",
    "savings_balance",
    "n_inquiries_6m",
    "n_collections",
]
FEATURES = HOST_FEATURES + GUEST_FEATURES

MISSING_RATES = {"income": 0.05, "employment_years": 0.07, "years_at_address": 0.03, "debt_to_income": 0.02}

_INTERCEPT = -1.83
_SIGNAL_SCALE = 1.04
_NOISE_SCALE = 1.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


def make_credit(n_rows: int = 30_000, seed: int = 0) -> pd.DataFrame:
    """Generate `n_rows` card holders: `id`, the features in `FEATURES` and the 0/1 label `default`.

    The same `seed` always gives the same frame; about 22% of the rows are positives.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, numbers.Integral) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}")
    n = int(n_rows)
    rng = np.random.default_rng(seed)

    def normal() -> np.ndarray:
        return rng.standard_normal(n)

    age = np.clip(np.round(21 + rng.gamma(4.0, 5.5, n)), 21, 80).astype(np.int64)
    z_age = (age - 43.0) / 12.0
    wealth = 0.40 * z_age + np.sqrt(1 - 0.40**2) * normal()
    stress = -0.35 * wealth - 0.15 * z_age + 0.92 * normal()

    education = np.digitize(0.7 * wealth + 0.7 * normal(), [-0.9, 0.1, 1.1]).astype(np.int64) + 1
    income_true = np.exp(10.75 + 0.38 * wealth + 0.10 * (education - 2.5) - 0.08 * stress + 0.30 * normal())
    income = np.round(income_true, -2)
    employment_years = np.round(
        np.minimum(age - 18, rng.gamma(1.8, 3.5 * np.exp(0.20 * wealth - 0.25 * stress + 0.35 * z_age))), 1
    )
    owner_prob = _sigmoid(-0.3 + 1.1 * wealth + 0.35 * z_age - 0.3 * stress)
    home_owner = (rng.random(n) < owner_prob).astype(np.int64)
    n_dependents = np.minimum(rng.poisson(np.exp(-0.25 + 0.25 * stress - 0.5 * (z_age - 0.1) ** 2)), 6)
    years_at_address = np.round(
        np.minimum(age - 18, rng.gamma(1.5, 2.5 + 3.5 * home_owner + 1.5 * np.maximum(z_age, -1))), 1
    )

    n_cards = 1 + np.minimum(rng.poisson(np.exp(0.75 + 0.20 * wealth + 0.20 * stress)), 14)
    n_open_loans = np.minimum(rng.poisson(np.exp(0.10 + 0.35 * stress + 0.45 * home_owner)), 12)
    other_debt = np.where(
        n_open_loans > 0,
        np.round(n_open_loans * np.exp(8.8 + 0.35 * wealth + 0.15 * stress + 0.7 * normal()), -1),
        0.0,
    )
    savings_balance = np.round(np.exp(8.4 + 0.95 * wealth - 0.35 * stress + 1.0 * normal()), -1)
    savings_balance[rng.random(n) < _sigmoid(-2.0 + 0.8 * stress - 0.5 * wealth)] = 0.0
    n_inquiries_6m = np.minimum(rng.poisson(np.exp(-0.30 + 0.30 * stress + 0.3 * normal())), 15)
    n_collections = np.minimum(rng.poisson(np.exp(-2.40 + 0.40 * stress + 0.5 * normal())), 10)

    credit_limit = np.clip(
        np.round(np.exp(8.75 + 0.60 * np.log(income_true / 50_000) + 0.25 * wealth + 0.35 * normal()), -2),
        500,
        150_000,
    )
    months_on_book = np.minimum(
        np.round(rng.gamma(2.5, 18.0 * np.exp(0.25 * z_age))), (age - 18) * 12
    ).astype(np.int64)
    months_on_book = np.maximum(months_on_book, 3)

    util_level = -0.6 + 0.30 * stress - 0.25 * wealth + 0.9 * normal()
    pay_level = 0.4 - 0.30 * stress + 0.35 * wealth + 0.9 * normal()
    miss_prob = _sigmoid(-3.3 + 0.35 * stress - 0.4 * pay_level + 0.7 * normal())
    # Column 0 is the latest statement (bill_amt_1); pay_amt_m pays bill m+1, so one older bill is drawn.
    shock = normal()
    bills = np.empty((n, N_MONTHS + 1))
    for month in range(N_MONTHS, -1, -1):
        shock = 0.8 * shock + 0.6 * normal()
        month_util = _sigmoid(util_level + 0.45 * shock) * np.exp(0.05 * normal())
        bills[:, month] = np.round(credit_limit * month_util)
    # A missed month has no payment; the late counts cover the latest 6 and 12 months.
    missed = rng.random((n, 6)) < miss_prob[:, None]
    pay_ratio = _sigmoid(pay_level[:, None] + 0.5 * rng.standard_normal((n, N_MONTHS)))
    payments = np.where(missed[:, :N_MONTHS], 0.0, np.round(bills[:, 1:] * pay_ratio))
    late_payments_6m = missed.sum(axis=1).astype(np.int64)
    late_payments_12m = late_payments_6m + rng.binomial(6, miss_prob).astype(np.int64)
    utilization = np.round(bills[:, 0] / credit_limit, 4)
    # Yearly debt service (3% a month of loans and card balance) over income.
    debt_to_income = np.round((0.03 * other_debt + 0.03 * bills[:, 0]) * 12 / income_true, 4)

    # The label sees these features (and the hidden exact income) plus noise no feature carries.
    signal = (
        0.55 * _zscore(np.sqrt(late_payments_12m))
        + 0.40 * _zscore(utilization)
        - 0.30 * _zscore(np.log1p(payments[:, :3].mean(axis=1) / credit_limit))
        + 0.30 * _zscore(np.log1p(debt_to_income))
        - 0.35 * _zscore(np.log(income_true))
        + 0.30 * _zscore(np.sqrt(n_collections))
        + 0.25 * _zscore(np.sqrt(n_inquiries_6m))
        - 0.25 * _zscore(np.log1p(savings_balance))
        - 0.15 * _zscore(np.log1p(employment_years))
    )
    logit = _INTERCEPT + _SIGNAL_SCALE * signal + _NOISE_SCALE * normal()
    default = (rng.random(n) < _sigmoid(logit)).astype(np.int64)

    columns: dict[str, np.ndarray] = {
        "age": age,
        "education": education,
        "income": income,
        "employment_years": employment_years,
        "home_owner": home_owner,
        "n_dependents": n_dependents.astype(np.int64),
        "years_at_address": years_at_address,
        "n_cards": n_cards.astype(np.int64),
        "n_open_loans": n_open_loans.astype(np.int64),
        "other_debt": other_debt,
        "debt_to_income": debt_to_income,
        "savings_balance": savings_balance,
        "n_inquiries_6m": n_inquiries_6m.astype(np.int64),
        "n_collections": n_collections.astype(np.int64),
        "credit_limit": credit_limit,
        "months_on_book": months_on_book,
        "utilization": utilization,
        "late_payments_6m": late_payments_6m,
        "late_payments_12m": late_payments_12m,
    }
    for month in range(N_MONTHS):
        columns[BILL_COLUMNS[month]] = bills[:, month]
    for month in range(N_MONTHS):
        columns[PAY_COLUMNS[month]] = payments[:, month]
    for name, rate in MISSING_RATES.items():
        values = columns[name].astype(np.float64)
        values[rng.random(n) < rate] = np.nan
        columns[name] = values

    width = max(7, len(str(n - 1)))
    frame = pd.DataFrame({ID_COLUMN: [f"C{i:0{width}d}" for i in range(n)]})
    frame = pd.concat([frame, pd.DataFrame({name: columns[name] for name in FEATURES})], axis=1)
    frame[LABEL_COLUMN] = default
    return frame
