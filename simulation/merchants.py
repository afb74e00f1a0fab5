"""Who the merchants are: sector, place, legal form, age, capital, owner, size and starting health.

Static attributes feed both the registry table and the dynamics: young businesses start with
worse latent health, well-capitalised enterprises with better; individual businesses and rural
merchants are smaller and record fewer of their sales on the platform (thinner files).

Most merchants are established before the first simulated day. ``ENTRY_RATE`` of the market a
year are entrants: registered on a day inside the simulated span, they do business only from
that day on and start with the worst health of all (``ENTRANT_SHIFT``, a brand-new business).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from data_contracts.uscc import ALPHABET, check_chars
from simulation import regions, sectors
from simulation.dynamics import Dynamics

ENTERPRISE_SHARE = {
    "catering": 0.25,
    "retail": 0.30,
    "accommodation": 0.45,
    "housekeeping": 0.40,
    "laundry_dyeing": 0.15,
    "appliance_repair": 0.15,
    "portrait_photography": 0.30,
    "beauty_hairdressing": 0.20,
    "convenience": 0.30,
}
"""Chance of being an enterprise (not an individual business), per sector, before the urban/rural factor."""
_EARLIEST_REGISTRATION = 3652  # 1980-01-01 as an epoch day, the contract's lower bound
# sectors where revenue-based loans (repaid from card-acquiring flow) are offered
REVENUE_BASED_SECTORS = ("catering", "retail", "laundry_dyeing", "beauty_hairdressing", "convenience")
ENTRY_RATE = 0.035
"""Entrants a year as a share of the merchants: the chance of being registered inside the span is
``ENTRY_RATE`` x the span in years (at most 0.5)."""
ENTRANT_SHIFT = 0.45
"""Latent ill health of a business in its registration month, above the long-run mean (an
established business under two years old starts 0.35 above it)."""

_PREFIX = (
    "老王",
    "老李",
    "张记",
    "刘记",
    "陈家",
    "阿强",
    "小杨",
    "福满",
    "金源",
    "鑫隆",
    "顺发",
    "兴旺",
    "嘉禾",
    "和兴",
    "红星",
    "东方",
    "新城",
    "绿源",
    "如意",
    "佳美",
    "百姓",
    "万家",
    "惠民",
    "乐享",
    "好运",
    "吉祥",
    "长青",
    "明辉",
    "华联",
    "富贵",
    "隆盛",
    "德顺",
    "聚福",
    "永安",
    "同心",
)
_SUFFIX = {
    "catering": ("面馆", "饺子馆", "小吃店", "餐厅", "火锅店", "烧烤店", "快餐店", "川菜馆", "早餐店", "茶餐厅"),
    "retail": ("百货", "商行", "五金店", "服装店", "文具店", "鞋店", "水果店", "副食店"),
    "accommodation": ("宾馆", "旅馆", "客栈", "民宿", "招待所", "酒店"),
    "housekeeping": ("家政服务部", "保洁服务部", "家政服务中心", "月嫂服务部"),
    "laundry_dyeing": ("洗衣店", "干洗店", "洗染店", "洗衣坊"),
    "appliance_repair": ("家电维修部", "电器维修店", "空调维修部", "家电服务部"),
    "portrait_photography": ("照相馆", "摄影工作室", "影楼", "婚纱摄影"),
    "beauty_hairdressing": ("理发店", "美发沙龙", "美容院", "美甲店", "发型设计"),
    "convenience": ("便利店", "小卖部", "超市", "便民店"),
}


@dataclass
class Merchants:
    """One block of merchants; arrays indexed by local merchant number."""

    index: np.ndarray
    """Global merchant number (merchant_id = M + 8 digits of index + 1)."""
    sector: np.ndarray
    region: np.ndarray
    rural: np.ndarray
    enterprise: np.ndarray
    registered_day: np.ndarray
    """Epoch day of registration."""
    entrant: np.ndarray
    """Registered inside the simulated span: no activity of any kind before ``registered_day``."""
    tenure_years: np.ndarray
    """Years registered at the first simulated day (negative for entrants)."""
    capital_fen: np.ndarray
    """Registered capital in fen; -1 where none is declared."""
    size: np.ndarray
    """Scale of the business (mean about 1) before health."""
    thin: np.ndarray
    """Noise level of what the platform records (individual/rural merchants higher)."""
    borrower: np.ndarray
    d0: np.ndarray
    """Latent deviation at the end of month -1; for an entrant, in its registration month."""
    credit_code: list[str]
    name: list[str]
    owner_hash: list[str]

    @cached_property
    def ids(self) -> list[str]:
        return [f"M{i + 1:08d}" for i in self.index]


def draw_merchants(
    dyn: Dynamics, rng: np.random.Generator, index: np.ndarray, start_day: int, salt: str, end_day: int | None = None
) -> Merchants:
    """Draw a block of merchants with global numbers ``index``.

    ``start_day`` and ``end_day``: epoch days of the first simulated day and of the day after the
    last; entrants register in [start_day, end_day) (none when ``end_day`` is None).
    """
    n = len(index)
    sector = rng.choice(len(sectors.SECTORS), size=n, p=sectors.SHARES)
    region = rng.choice(len(regions.CODES), size=n, p=regions.WEIGHTS)
    rural = regions.RURAL[region]
    p_ent = np.array([ENTERPRISE_SHARE[s] for s in sectors.NAMES])[sector] * np.where(rural, 0.6, 1.2)
    enterprise = rng.random(n) < p_ent
    tenure = np.clip(np.exp(np.log(np.where(enterprise, 6.0, 4.0)) + 0.8 * rng.standard_normal(n)), 0.1, 35.0)
    registered_day = np.maximum(start_day - np.round(tenure * 365.25).astype(np.int64), _EARLIEST_REGISTRATION)
    span = 0 if end_day is None else end_day - start_day
    entrant = rng.random(n) < min(ENTRY_RATE * span / 365.25, 0.5)
    entry_day = start_day + (rng.random(n) * span).astype(np.int64)
    registered_day = np.where(entrant, entry_day, registered_day)
    tenure = np.where(entrant, (start_day - registered_day) / 365.25, tenure)
    log_cap = rng.standard_normal(n)
    cap_yuan = np.where(
        enterprise,
        np.round(5e5 * np.exp(1.0 * log_cap), -4).clip(1e4, 1e9),
        np.round(3e4 * np.exp(0.8 * log_cap), -3).clip(1e3, 1e7),
    )
    declared = enterprise | (rng.random(n) < 0.45)
    capital_fen = np.where(declared, cap_yuan * 100, -1).astype(np.int64)
    size = np.exp(0.5 * rng.standard_normal(n) - 0.125) * np.where(enterprise, 1.6, 0.85) * np.where(rural, 0.7, 1.15)
    thin = np.where(enterprise, 0.05, 0.15) + np.where(rural, 0.12, 0.0)
    borrow_share = sectors.column("borrow_share")[sector] * np.where(enterprise, 1.15, 0.95)
    borrower = rng.random(n) < borrow_share
    shift = np.where(entrant, ENTRANT_SHIFT, np.where(tenure < 2, 0.35, np.where(tenure < 4, 0.15, -0.05)))
    shift = shift - np.where(enterprise, 0.12 * log_cap, 0.0)
    d0 = shift + dyn.stationary_sd * rng.standard_normal(n)
    return Merchants(
        index=index,
        sector=sector,
        region=region,
        rural=rural,
        enterprise=enterprise,
        registered_day=registered_day,
        entrant=entrant,
        tenure_years=tenure,
        capital_fen=capital_fen,
        size=size,
        thin=thin,
        borrower=borrower,
        d0=d0,
        credit_code=_credit_codes(rng, region, enterprise),
        name=_names(rng, sector),
        owner_hash=_owner_hashes(rng, index, salt),
    )


def _credit_codes(rng: np.random.Generator, region: np.ndarray, enterprise: np.ndarray) -> list[str]:
    """Valid unified social credit codes: 92 (individual business) / 91 (enterprise), region, 9 chars, check."""
    n = len(region)
    values = np.empty((n, 17), dtype=np.int64)
    values[:, 0] = 9
    values[:, 1] = np.where(enterprise, 1, 2)
    values[:, 2:8] = regions.CODE_DIGITS[region]
    values[:, 8:17] = rng.integers(0, len(ALPHABET), (n, 9))
    check = check_chars(values)
    full = np.concatenate([values, check[:, None]], axis=1)
    alphabet = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
    return [bytes(row).decode() for row in alphabet[full]]


def _names(rng: np.random.Generator, sector: np.ndarray) -> list[str]:
    prefix = rng.integers(0, len(_PREFIX), len(sector))
    pick = rng.random(len(sector))
    out = []
    for p, s, u in zip(prefix, sector, pick, strict=True):
        suffixes = _SUFFIX[sectors.NAMES[s]]
        out.append(_PREFIX[p] + suffixes[int(u * len(suffixes))])
    return out


def _owner_hashes(rng: np.random.Generator, index: np.ndarray, salt: str) -> list[str]:
    """Salted SHA-256 (16 hex) of a synthetic owner identity; a few owners run two shops."""
    owner = index.copy()
    shared = rng.random(len(index)) < 0.04
    if len(index) > 1:
        owner[shared] = index[rng.integers(0, len(index), int(shared.sum()))]
    return [hashlib.sha256(f"{salt}:owner:{o}".encode()).hexdigest()[:16] for o in owner]
