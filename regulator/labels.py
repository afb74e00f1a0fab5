"""Bilingual labels for the values regulators see: sectors, business forms, urban/rural, provinces, classes.

Codes stay the keys of every JSON answer; labels are display text only. An unknown code is
its own label, so a new sector or region shows up (unnamed) rather than disappearing.
"""

from __future__ import annotations

from functools import lru_cache

DIMENSION_LABELS: dict[str, tuple[str, str]] = {
    "sector": ("Sector", "行业"),
    "province": ("Province", "省份"),
    "city": ("City (prefecture)", "地市"),
    "business_form": ("Business form", "经营主体类型"),
    "urban_rural": ("Urban / rural", "城乡"),
    "month": ("Month", "月份"),
    "class": ("Credit-risk class", "信用风险分类"),
    "grade": ("Rating grade", "评级"),
}

VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "sector": {
        "catering": ("Catering", "餐饮"),
        "retail": ("Retail", "零售"),
        "accommodation": ("Accommodation", "住宿"),
        "housekeeping": ("Housekeeping", "家政"),
        "laundry_dyeing": ("Laundry and dyeing", "洗染"),
        "appliance_repair": ("Appliance repair", "家电维修"),
        "portrait_photography": ("Portrait photography", "人像摄影"),
        "beauty_hairdressing": ("Beauty and hairdressing", "美容美发"),
        "convenience": ("Community convenience store", "社区便利店"),
    },
    "business_form": {
        "individual_business": ("Individual business", "个体工商户"),
        "enterprise": ("Enterprise", "企业"),
    },
    "urban_rural": {"urban": ("Urban", "城镇"), "rural": ("Rural", "农村")},
    "decision": {"approve": ("Approve", "批准"), "refer": ("Refer", "转人工"), "decline": ("Decline", "拒绝")},
    "outcome": {"defaults": ("Defaulted", "违约"), "performing": ("Performing", "未违约")},
    "migration": {"new": ("New", "新进入"), "exited": ("Left", "退出")},
    "kind": {"objection": ("Objection", "异议"), "repair": ("Credit repair", "信用修复")},
    # what the objections view counts (regulator.objections.MEASURES)
    "objection": {
        "received": ("Received", "受理"),
        "resolved": ("Resolved", "已办结"),
        "corrected": ("Corrected", "已更正"),
        "upheld": ("Upheld (record stands)", "维持原记录"),
        "open": ("Open", "办理中"),
        "overdue": ("Overdue", "逾期"),
        "resolved_in_time": ("Resolved within 20 days", "20日内办结"),
        "open_in_time": ("Open, not yet due", "办理中（未到期）"),
    },
    # GB/T 2260 province-level divisions (first two digits of the region code)
    "province": {
        "11": ("Beijing", "北京"),
        "12": ("Tianjin", "天津"),
        "13": ("Hebei", "河北"),
        "14": ("Shanxi", "山西"),
        "15": ("Inner Mongolia", "内蒙古"),
        "21": ("Liaoning", "辽宁"),
        "22": ("Jilin", "吉林"),
        "23": ("Heilongjiang", "黑龙江"),
        "31": ("Shanghai", "上海"),
        "32": ("Jiangsu", "江苏"),
        "33": ("Zhejiang", "浙江"),
        "34": ("Anhui", "安徽"),
        "35": ("Fujian", "福建"),
        "36": ("Jiangxi", "江西"),
        "37": ("Shandong", "山东"),
        "41": ("Henan", "河南"),
        "42": ("Hubei", "湖北"),
        "43": ("Hunan", "湖南"),
        "44": ("Guangdong", "广东"),
        "45": ("Guangxi", "广西"),
        "46": ("Hainan", "海南"),
        "50": ("Chongqing", "重庆"),
        "51": ("Sichuan", "四川"),
        "52": ("Guizhou", "贵州"),
        "53": ("Yunnan", "云南"),
        "54": ("Tibet", "西藏"),
        "61": ("Shaanxi", "陕西"),
        "62": ("Gansu", "甘肃"),
        "63": ("Qinghai", "青海"),
        "64": ("Ningxia", "宁夏"),
        "65": ("Xinjiang", "新疆"),
    },
}

UNKNOWN = "unknown"


@lru_cache(maxsize=1)
def class_labels() -> dict[str, tuple[str, str]]:
    """Class texts from the master scale (A low ... D high credit risk)."""
    from training.master_scale import MasterScale

    return {c: (t.en, t.zh) for c, t in MasterScale.load().classes.items()}


def label(dimension: str, key: str | None) -> dict[str, str]:
    """``{"en": ..., "zh": ...}`` for one value of a dimension."""
    if key is None or key == UNKNOWN:
        return {"en": "unknown", "zh": "未知"}
    if dimension == "class":
        en, zh = class_labels().get(key, (key, key))
        return {"en": f"{key}: {en}", "zh": f"{key}：{zh}"}
    if dimension == "city":
        province = VALUES["province"].get(key[:2])
        if province:
            return {"en": f"{province[0]} {key}", "zh": f"{province[1]} {key}"}
    if dimension == "grade":
        return {"en": f"grade {key}", "zh": f"{key}级"}
    en, zh = VALUES.get(dimension, {}).get(key, (key, key))
    return {"en": en, "zh": zh}


def dimension_label(dimension: str) -> dict[str, str]:
    en, zh = DIMENSION_LABELS.get(dimension, (dimension, dimension))
    return {"en": en, "zh": zh}
