"""A shopper's time zone: guessed from a phone number on first contact, or told in chat ("I'm in
Taipei", "my time zone is Los Angeles", "我在台北"). Quiet hours and the staffed-hours message
read it; the shop's zone stands in while it is unknown."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_zones

__all__ = ["CITIES", "from_phone", "recognise", "valid"]

# The common cities (and a few zone names) shoppers say, lower-cased, to their IANA zone. A zone's
# own name ("Asia/Taipei") is understood as well.
CITIES: dict[str, str] = {
    # North America
    "new york": "America/New_York",
    "new york city": "America/New_York",
    "nyc": "America/New_York",
    "boston": "America/New_York",
    "washington": "America/New_York",
    "washington dc": "America/New_York",
    "miami": "America/New_York",
    "atlanta": "America/New_York",
    "philadelphia": "America/New_York",
    "toronto": "America/Toronto",
    "montreal": "America/Toronto",
    "detroit": "America/Detroit",
    "chicago": "America/Chicago",
    "dallas": "America/Chicago",
    "houston": "America/Chicago",
    "austin": "America/Chicago",
    "mexico city": "America/Mexico_City",
    "denver": "America/Denver",
    "phoenix": "America/Phoenix",
    "los angeles": "America/Los_Angeles",
    "la": "America/Los_Angeles",
    "san francisco": "America/Los_Angeles",
    "san diego": "America/Los_Angeles",
    "seattle": "America/Los_Angeles",
    "portland": "America/Los_Angeles",
    "las vegas": "America/Los_Angeles",
    "vancouver": "America/Vancouver",
    "anchorage": "America/Anchorage",
    "honolulu": "Pacific/Honolulu",
    "hawaii": "Pacific/Honolulu",
    "eastern time": "America/New_York",
    "central time": "America/Chicago",
    "mountain time": "America/Denver",
    "pacific time": "America/Los_Angeles",
    # South America
    "sao paulo": "America/Sao_Paulo",
    "são paulo": "America/Sao_Paulo",
    "buenos aires": "America/Argentina/Buenos_Aires",
    # Europe and Africa
    "london": "Europe/London",
    "dublin": "Europe/Dublin",
    "lisbon": "Europe/Lisbon",
    "paris": "Europe/Paris",
    "berlin": "Europe/Berlin",
    "madrid": "Europe/Madrid",
    "rome": "Europe/Rome",
    "amsterdam": "Europe/Amsterdam",
    "brussels": "Europe/Brussels",
    "zurich": "Europe/Zurich",
    "vienna": "Europe/Vienna",
    "stockholm": "Europe/Stockholm",
    "warsaw": "Europe/Warsaw",
    "athens": "Europe/Athens",
    "istanbul": "Europe/Istanbul",
    "moscow": "Europe/Moscow",
    "cairo": "Africa/Cairo",
    "johannesburg": "Africa/Johannesburg",
    "lagos": "Africa/Lagos",
    "nairobi": "Africa/Nairobi",
    # Asia and Oceania
    "dubai": "Asia/Dubai",
    "mumbai": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
    "new delhi": "Asia/Kolkata",
    "bangalore": "Asia/Kolkata",
    "bangkok": "Asia/Bangkok",
    "jakarta": "Asia/Jakarta",
    "singapore": "Asia/Singapore",
    "kuala lumpur": "Asia/Kuala_Lumpur",
    "manila": "Asia/Manila",
    "hong kong": "Asia/Hong_Kong",
    "macau": "Asia/Macau",
    "shanghai": "Asia/Shanghai",
    "beijing": "Asia/Shanghai",
    "shenzhen": "Asia/Shanghai",
    "taipei": "Asia/Taipei",
    "taiwan": "Asia/Taipei",
    "kaohsiung": "Asia/Taipei",
    "taichung": "Asia/Taipei",
    "tainan": "Asia/Taipei",
    "hsinchu": "Asia/Taipei",
    "tokyo": "Asia/Tokyo",
    "osaka": "Asia/Tokyo",
    "japan": "Asia/Tokyo",
    "seoul": "Asia/Seoul",
    "sydney": "Australia/Sydney",
    "melbourne": "Australia/Melbourne",
    "brisbane": "Australia/Brisbane",
    "perth": "Australia/Perth",
    "auckland": "Pacific/Auckland",
    # Traditional Chinese names
    "台北": "Asia/Taipei",
    "臺北": "Asia/Taipei",
    "新北": "Asia/Taipei",
    "台灣": "Asia/Taipei",
    "臺灣": "Asia/Taipei",
    "台中": "Asia/Taipei",
    "臺中": "Asia/Taipei",
    "台南": "Asia/Taipei",
    "臺南": "Asia/Taipei",
    "高雄": "Asia/Taipei",
    "桃園": "Asia/Taipei",
    "新竹": "Asia/Taipei",
    "香港": "Asia/Hong_Kong",
    "澳門": "Asia/Macau",
    "上海": "Asia/Shanghai",
    "北京": "Asia/Shanghai",
    "深圳": "Asia/Shanghai",
    "東京": "Asia/Tokyo",
    "大阪": "Asia/Tokyo",
    "日本": "Asia/Tokyo",
    "首爾": "Asia/Seoul",
    "新加坡": "Asia/Singapore",
    "吉隆坡": "Asia/Kuala_Lumpur",
    "曼谷": "Asia/Bangkok",
    "雪梨": "Australia/Sydney",
    "墨爾本": "Australia/Melbourne",
    "倫敦": "Europe/London",
    "巴黎": "Europe/Paris",
    "柏林": "Europe/Berlin",
    "紐約": "America/New_York",
    "洛杉磯": "America/Los_Angeles",
    "舊金山": "America/Los_Angeles",
    "西雅圖": "America/Los_Angeles",
    "芝加哥": "America/Chicago",
    "溫哥華": "America/Vancouver",
    "多倫多": "America/Toronto",
}
_ZONES = {name.lower(): name for name in available_timezones() if "/" in name and not name.startswith("Etc/")}

# Only a whole message that states where the shopper is (or their zone) counts: "I'm in Taipei",
# "I am in Los Angeles now", "my time zone is Asia/Taipei", "set my timezone to London",
# "我在台北", "我住在高雄", "我的時區是東京". A place the table does not know is no match.
_EN = re.compile(
    r"^(?:(?:hi|hello|hey|ok|okay)[,!. ]+)?"
    r"(?:(?:i'?m|i am|i live|i'm living|i am living|i'm based|i am based|we're|we are|we live)\s+(?:in|at)"
    r"|(?:my\s+)?time\s?zone(?:\s+is|\s*[:=])?"
    r"|(?:please\s+)?(?:set|change|use)\s+(?:my\s+|the\s+)?time\s?zone\s+(?:to|as)?)"
    r"\s+(?P<place>[a-zà-ÿ_/ .'-]+?)(?:\s+(?:now|time|please))?\s*[.!]*$",
    re.IGNORECASE,
)
_ZH = re.compile(
    r"^(?:我(?:現在)?(?:人)?(?:住)?在|我的時區是|時區(?:是|改成|設為|設定為)?)\s*(?P<place>\S+?)[。！!.]*$"
)


def recognise(text: str) -> str | None:
    """The IANA zone a message tells us the shopper is in, or None."""
    text = " ".join(text.strip().split())
    match = _EN.match(text) or _ZH.match(text)
    if match is None:
        return None
    place = match.group("place").strip(" .'").lower()
    place = re.sub(r"^the\s+", "", place)
    return CITIES.get(place) or _ZONES.get(place.replace(" ", "_"))


def from_phone(number: str) -> str | None:
    """The zone of a phone number (E.164) when it maps to exactly one, else None."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_zones.time_zones_for_number(parsed) if valid(z)]
    return zones[0] if len(zones) == 1 else None


def valid(name: str | None) -> bool:
    if not name or name.startswith("Etc/Unknown"):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local_time(name: str, now: datetime) -> str:
    """The time of day in zone `name` at `now`, as "14:05"."""
    return now.astimezone(ZoneInfo(name)).strftime("%H:%M")
