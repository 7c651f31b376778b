"""What voice-note transcription may cost (issue #16.12: it was outside every cap).

Transcription is paid per audio minute. A note's length is estimated from its size
(`voice_budget.bytes_per_second`); it counts `tokens_per_minute` towards the customer's
`limits.daily_tokens` and its seconds towards the business's `business_daily_minutes`.
A note that would go over either is not sent for transcription: the agent reads that it
cannot listen to it today and asks the customer to type.
"""

from __future__ import annotations

import math
from datetime import datetime

from bot.models import CustomerKey
from bot.settings import VoiceBudgetSettings
from bot.stores.customers import CustomerStore, utc_day
from bot.stores.usage_lines import VOICE, BusinessUsage


class VoiceBudget:
    def __init__(self, settings: VoiceBudgetSettings, usage: BusinessUsage,
                 customers: CustomerStore, daily_tokens: int) -> None:
        self.s = settings
        self.usage = usage
        self.customers = customers
        self.daily_tokens = daily_tokens  # the customer's cap (limits.daily_tokens); 0: none

    def seconds(self, size: int) -> float:
        return size / self.s.bytes_per_second

    def tokens(self, seconds: float) -> int:
        return math.ceil(seconds / 60 * self.s.tokens_per_minute)

    async def allows(self, key: CustomerKey, seconds: float, now: datetime) -> bool:
        day = utc_day(now)
        business = self.s.business_daily_minutes * 60
        if business and await self.usage.seconds_on(VOICE, day) + seconds > business:
            return False
        if self.daily_tokens:
            used = await self.customers.usage_on(key, day)
            if used.tokens_in + used.tokens_out + self.tokens(seconds) > self.daily_tokens:
                return False
        return True

    async def charge(self, key: CustomerKey, seconds: float, now: datetime) -> None:
        await self.usage.add(VOICE, now, seconds=seconds)
        tokens = self.tokens(seconds)
        if tokens:
            await self.customers.add_usage(key, tokens_in=tokens)
