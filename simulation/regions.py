"""Real county-level administrative divisions (GB/T 2260) the simulated merchants sit in.

A small embedded list across nine provinces. The feature pipeline reads province from digits
1-2 and urban/rural from digits 5-6 (below 21: urban district; 21 and above: county or
county-level city, counted as rural), so every code here follows that convention.
"""

from __future__ import annotations

import numpy as np

# (code, name): urban districts (digits 5-6 < 21) and counties / county-level cities (>= 21).
REGIONS: tuple[tuple[str, str], ...] = (
    # Beijing 北京
    ("110101", "东城区"),
    ("110105", "朝阳区"),
    ("110106", "丰台区"),
    ("110108", "海淀区"),
    # Zhejiang 浙江
    ("330102", "杭州市上城区"),
    ("330106", "杭州市西湖区"),
    ("330110", "杭州市余杭区"),
    ("330203", "宁波市海曙区"),
    ("330212", "宁波市鄞州区"),
    ("330302", "温州市鹿城区"),
    ("330122", "桐庐县"),
    ("330127", "淳安县"),
    ("330182", "建德市"),
    ("330225", "象山县"),
    ("330281", "余姚市"),
    ("330381", "瑞安市"),
    ("330782", "义乌市"),
    # Guangdong 广东
    ("440103", "广州市荔湾区"),
    ("440104", "广州市越秀区"),
    ("440106", "广州市天河区"),
    ("440304", "深圳市福田区"),
    ("440305", "深圳市南山区"),
    ("440604", "佛山市禅城区"),
    ("440229", "翁源县"),
    ("440232", "乳源瑶族自治县"),
    ("441223", "广宁县"),
    ("441224", "怀集县"),
    ("441581", "陆丰市"),
    ("441881", "英德市"),
    ("445281", "普宁市"),
    # Sichuan 四川
    ("510104", "成都市锦江区"),
    ("510105", "成都市青羊区"),
    ("510107", "成都市武侯区"),
    ("510121", "金堂县"),
    ("510129", "大邑县"),
    ("510181", "都江堰市"),
    ("510321", "荣县"),
    ("513221", "汶川县"),
    # Henan 河南
    ("410102", "郑州市中原区"),
    ("410105", "郑州市金水区"),
    ("410302", "洛阳市老城区"),
    ("410122", "中牟县"),
    ("410181", "巩义市"),
    ("410323", "新安县"),
    ("411325", "内乡县"),
    ("411721", "西平县"),
    # Shandong 山东
    ("370102", "济南市历下区"),
    ("370202", "青岛市市南区"),
    ("370212", "青岛市崂山区"),
    ("370124", "平阴县"),
    ("370281", "胶州市"),
    ("370283", "平度市"),
    ("371321", "沂南县"),
    # Hubei 湖北
    ("420102", "武汉市江岸区"),
    ("420106", "武汉市武昌区"),
    ("420281", "大冶市"),
    ("421022", "公安县"),
    ("421087", "松滋市"),
    # Yunnan 云南
    ("530102", "昆明市五华区"),
    ("530103", "昆明市盘龙区"),
    ("530124", "富民县"),
    ("530721", "玉龙纳西族自治县"),
    ("532523", "屏边苗族自治县"),
)

CODES: tuple[str, ...] = tuple(code for code, _ in REGIONS)


def is_rural(code: str) -> bool:
    """True for counties and county-level cities (digits 5-6 at least 21)."""
    return int(code[4:6]) >= 21


def province(code: str) -> str:
    """Two-digit province code."""
    return code[:2]


RURAL = np.array([is_rural(c) for c in CODES])
"""Per region index: counts as rural."""

# Merchants cluster in cities: an urban district weighs 2.2 times a county.
WEIGHTS = np.where(RURAL, 1.0, 2.2) / np.where(RURAL, 1.0, 2.2).sum()
"""Per region index: share of merchants registered there."""

CODE_DIGITS = np.array([[int(ch) for ch in c] for c in CODES], dtype=np.int8)
"""Per region index: the six digits, for building credit codes."""
