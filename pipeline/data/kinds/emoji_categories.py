"""Which emoji the ``emoji`` data sets keep, and their categories, as small auditable tables.

Categories come from an emoji's Unicode name and its short names as
``emoji-datasource`` spells them (``OLDER MAN``, ``older_man``; older Unicode
names such as ``MAN WITH GUA PI MAO`` for the CLDR "person with skullcap").
Names are lower-cased and ``_``, ``-`` and ``:`` become spaces before matching,
so every pattern is written for plain words (``\\bred hair``).

Skin tones come from the variant, not from names: the five Unicode modifiers
U+1F3FB..U+1F3FF stand for Fitzpatrick types 1-2, 3, 4, 5 and 6 and become
``skin:1`` (lightest) .. ``skin:5`` (darkest).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Subcategories (emoji-datasource's `subcategory`, which is Unicode's emoji
# subgroup) kept by default: people whose face fills a good part of the image,
# and the smiley faces. Left out: person-activity, person-sport and
# person-resting (whole bodies, small faces), family (several faces) and
# face-costume (poo, ghost, alien monster, robot: not faces of people; clown,
# ogre and goblin go with them because Unicode groups them so).
PERSON_SUBCATEGORIES = ("person", "person-role", "person-fantasy", "person-gesture")
FACE_SUBCATEGORIES = (
    "face-smiling",
    "face-affection",
    "face-tongue",
    "face-hand",
    "face-neutral-skeptical",
    "face-sleepy",
    "face-unwell",
    "face-hat",
    "face-glasses",
    "face-concerned",
    "face-negative",
)
DEFAULT_SUBCATEGORIES = PERSON_SUBCATEGORIES + FACE_SUBCATEGORIES

# Skin-tone modifier codepoint -> (tone 1..5, CLDR name).
SKIN_TONES: dict[str, tuple[int, str]] = {
    "1F3FB": (1, "light"),  # Fitzpatrick type 1-2
    "1F3FC": (2, "medium-light"),  # type 3
    "1F3FD": (3, "medium"),  # type 4
    "1F3FE": (4, "medium-dark"),  # type 5
    "1F3FF": (5, "dark"),  # type 6
}


@dataclass(frozen=True)
class Rule:
    """A category given to an emoji whose normalised names match ``pattern`` (a regex),
    or whose subcategory is one of ``subcategories``."""

    category: str
    pattern: str
    subcategories: tuple[str, ...] = ()


# category -> what in the name gives it. Headwear and glasses follow the name
# (or the Unicode subgroup that says so: face-hat, face-glasses), never how one
# platform happens to draw a role (a police officer's cap is not in its name).
RULES: tuple[Rule, ...] = (
    Rule("baby", r"\bbaby\b"),
    Rule("child", r"\b(child|boy|girl)\b"),
    Rule("old_age", r"\bolder\b|\bold (man|woman|person|adult)\b"),
    Rule("bald", r"\bbald\b"),
    Rule("beard", r"\bbeard(ed)?\b"),
    Rule("bride_veil", r"\bbride\b|\bveil\b"),
    Rule("cook", r"\bcook\b"),
    Rule("curly_hair", r"\bcurly\b"),
    Rule("red_hair", r"\bred hair(ed)?\b"),
    Rule("blond", r"\bblonde?\b"),
    Rule("white_hair", r"\bwhite hair(ed)?\b"),
    Rule("elf", r"\belf\b"),
    Rule("santa", r"\bsanta\b|\bclaus\b|\bchristmas\b"),
    Rule("vampire", r"\bvampire\b"),
    Rule("zombie", r"\bzombie\b"),
    Rule("skull", r"\bskull\b"),
    Rule("crown", r"\bcrown\b|\bprince(ss)?\b"),
    Rule("turban", r"\bturban\b"),
    Rule("headscarf", r"\bheadscarf\b"),
    Rule("hat", r"\bhat\b|\bcap\b|\bskullcap\b|\bgua pi mao\b", ("face-hat",)),
    # Roles whose name says the helmet (Unicode draws no helmet-less firefighter).
    Rule("helmet", r"\bhelmet\b|\bconstruction worker\b|\bfirefighter\b|\bastronaut\b"),
    Rule("health_worker", r"\bhealth worker\b|\bdoctor\b"),
    Rule("teacher", r"\bteacher\b"),
    Rule("glasses", r"\b(sun)?glasses\b|\bnerd\b|\bmonocle\b", ("face-glasses",)),
)
_COMPILED = tuple((rule, re.compile(rule.pattern)) for rule in RULES)


def normalise_name(text: str) -> str:
    """Lower case, with ``_``, ``-`` and ``:`` as spaces and runs of spaces collapsed."""
    return " ".join(re.sub(r"[_\-:]", " ", text.lower()).split())


def name_categories(names: Iterable[str], subcategory: str = "") -> list[str]:
    """The categories of ``RULES`` that an emoji's names (or subcategory) match, in table order."""
    text = " | ".join(normalise_name(name) for name in names if name)
    return [
        rule.category
        for rule, pattern in _COMPILED
        if pattern.search(text) or subcategory in rule.subcategories
    ]


def skin_tones(modifiers: str) -> list[int]:
    """Tones 1..5 of a ``skin_variations`` key (``1F3FB`` or ``1F3FB-1F3FF``, one per person)."""
    tones = []
    for code in modifiers.upper().split("-"):
        if code not in SKIN_TONES:
            raise ValueError(f"{modifiers!r}: {code} is not a skin-tone modifier (1F3FB..1F3FF)")
        tones.append(SKIN_TONES[code][0])
    return tones
