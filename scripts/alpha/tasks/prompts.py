"""Prompt texts of the ALPHA50M tasks, as chat messages, and parsers for TAP's fixed answer templates.

The wording is fixed here in one place: changing a template changes every shard (and reruns the
rules that build them, because the rules list this file as an input).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from alpha.tasks.samples import messages

SYSTEM_MARKETER = (
    "You are an expert marketer who understands how different audiences respond to advertising "
    "on Facebook and Instagram."
)

GENDER_WORDS = {"female": ("women", "Female"), "male": ("men", "Male")}
AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")


@dataclass(frozen=True)
class Audience:
    """A target segment; any part may be None (not part of this task's audience)."""

    gender: str | None = None  # "female" / "male"
    age: str | None = None  # "25-34"
    state: str | None = None  # "Texas"

    def describe(self) -> str:
        """"women aged 25-34 in Texas", "men", "people in Ohio", "people aged 65+"."""
        who = GENDER_WORDS[self.gender][0] if self.gender else "people"
        parts = [who]
        if self.age:
            parts.append(f"aged {self.age}")
        if self.state:
            parts.append(f"in {self.state}")
        return " ".join(parts)


def spend_text(lower: int | None, upper: int | None, currency: str | None) -> str:
    cur = (currency or "").strip().upper()
    fmt = (lambda v: f"${v:,}") if cur == "USD" else (lambda v: f"{v:,} {cur}".strip())
    if lower is None and upper is None:
        return "not reported"
    if upper is None:
        return f"at least {fmt(lower)}"
    return f"{fmt(lower or 0)} to {fmt(upper)}"


def dates_text(start: dt.date | None, stop: dt.date | None) -> str:
    first = start.isoformat() if start else "an unknown date"
    return f"from {first} to {stop.isoformat()}" if stop else f"from {first}, still running"


# ---------------------------------------------------------------- TAG


def tag(audience: Audience, page_name: str, spend: str, dates: str, keywords: list[str], body: str) -> list[dict]:
    kw = ", ".join(keywords) if keywords else "none"
    user = (
        f"Write an ad for {page_name} that will appeal most to {audience.describe()}.\n"
        f"Budget: {spend}\n"
        f"Delivery: {dates}\n"
        f"Keywords: {kw}\n"
        "Reply with the ad text only."
    )
    return messages(SYSTEM_MARKETER, user, body)


# ---------------------------------------------------------------- TAP

TAP_QUESTIONS = {
    "TAP-G": "Which gender would this ad appeal to most: Male or Female?",
    "TAP-A": f"Which age group would this ad appeal to most? Choose from {', '.join(AGES)}.",
    "TAP-R": "Which 3 US states would this ad perform best in?",
}
TAP_ANSWERS = {
    "TAP-G": "Best target audience for this ad is {}.",
    "TAP-A": "Best target age group for this ad is the audience aged {}.",
    "TAP-R": "Top 3 states where the ad will perform best are {}.",
}
_TAP_PATTERNS = {
    task: re.compile("^" + re.escape(template).replace(re.escape("{}"), "(.+?)") + "$")
    for task, template in TAP_ANSWERS.items()
}


def tap(task: str, answer: str, page_name: str, date: dt.date | None, body: str) -> list[dict]:
    """``answer``: "Male"/"Female", an age bracket, or "A, B, C" (three states, best first)."""
    when = date.isoformat() if date else "unknown"
    user = f"Ad: {body}\nAdvertiser: {page_name}\nDate: {when}\n{TAP_QUESTIONS[task]}"
    return messages(SYSTEM_MARKETER, user, TAP_ANSWERS[task].format(answer))


def tap_answer(task: str, label: str | list[str]) -> str:
    if task == "TAP-G":
        return GENDER_WORDS[label][1]
    if task == "TAP-R":
        return ", ".join(label)
    return label


def parse_tap(task: str, text: str) -> str | list[str] | None:
    """Inverse of the answer templates: "male"/"female", the age bracket, or the list of states;
    None when ``text`` does not follow the template (a model's free-form reply)."""
    match = _TAP_PATTERNS[task].match(text.strip())
    if not match:
        return None
    value = match.group(1).strip()
    if task == "TAP-G":
        return {"Male": "male", "Female": "female"}.get(value)
    if task == "TAP-A":
        return value if value in AGES else None
    states = [s.strip() for s in value.split(",")]
    return states if len(states) == 3 and all(states) else None


# ---------------------------------------------------------------- TC and TS


def transcreation(source: Audience, target: Audience, page_name: str, source_ad: str, target_ad: str) -> list[dict]:
    user = (
        f"This ad by {page_name} resonated most with {source.describe()}.\n"
        f"Ad: {source_ad}\n"
        f"Rewrite it for {target.describe()}, keeping its meaning. Reply with the ad text only."
    )
    return messages(SYSTEM_MARKETER, user, target_ad)


TS_GOALS = {
    "TS-B": "makes better use of the advertising budget",
    "TS-E": "gets more engagement from this audience",
}


def transsuasion(task: str, audience: Audience, page_name: str, ad1: str, ad2: str) -> list[dict]:
    user = (
        f"This ad by {page_name} targets {audience.describe()}.\n"
        f"Ad: {ad1}\n"
        f"Rewrite it so that it {TS_GOALS[task]}. Reply with the ad text only."
    )
    return messages(SYSTEM_MARKETER, user, ad2)
