"""Drawing people: a lone traveller or a family, with names in their origin's
custom, documents, sexes and dates of birth that agree with their ages."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import date, timedelta

from node.demo.names import Names, Origin
from node.demo.places import Place


@dataclass(frozen=True)
class Person:
    document_number: str
    family_name: str
    given_names: str
    date_of_birth: date
    sex: str


@dataclass
class Group:
    """People met together: one traveller, or a family."""

    encounter_date: date
    place: Place
    nationality: str
    previous_country: str
    people: list[Person]


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _birth_date(rng: random.Random, encounter: date, age: int) -> date:
    latest = min(_years_before(encounter, age), encounter - timedelta(days=1))
    earliest = _years_before(encounter, age + 1) + timedelta(days=1)
    return earliest + timedelta(days=rng.randrange((latest - earliest).days + 1))


def _pattern_char(rng: random.Random, ch: str) -> str:
    if ch == "A":
        return rng.choice(string.ascii_uppercase)
    if ch == "9":
        return str(rng.randrange(10))
    return ch


def _document_number(rng: random.Random, pattern: str, used: set[str]) -> str:
    while True:
        number = "".join(_pattern_char(rng, ch) for ch in pattern)
        if number not in used:
            used.add(number)
            return number


def _sex(rng: random.Random, male_share: float) -> str:
    if rng.random() < 0.003:
        return "X"
    return "M" if rng.random() < male_share else "F"


def _given_names(rng: random.Random, names: Names, sex: str) -> str:
    pool = {"M": names.male, "F": names.female}.get(sex) or rng.choice((names.male, names.female))
    first = rng.choice(pool)
    if rng.random() < names.second_given:
        second = rng.choice(pool)
        if second != first:
            return f"{first} {second}"
    return first


def _family_name(rng: random.Random, names: Names) -> str:
    """A family name in its base (masculine) form."""
    if names.two_surnames:
        paternal, maternal = rng.sample(names.family, 2)
        return f"{paternal} {maternal}"
    return rng.choice(names.family)


def _single_age(rng: random.Random) -> int:
    draw = rng.random()
    if draw < 0.012:
        return rng.randint(60, 76)
    if draw < 0.022:
        return rng.randint(15, 17)  # adolescents travelling without their parents
    if draw < 0.07:
        return rng.randint(46, 59)
    return min(45, int(rng.triangular(18, 46, 26)))


class PeopleMaker:
    def __init__(self, rng: random.Random, used_documents: set[str]) -> None:
        self._rng = rng
        self._used = used_documents

    def person(
        self, origin: Origin, encounter: date, age: int, sex: str, family_base: str
    ) -> Person:
        names = origin.names
        family = family_base + (names.feminine_suffix if sex == "F" else "")
        return Person(
            document_number=_document_number(self._rng, origin.document, self._used),
            family_name=family,
            given_names=_given_names(self._rng, names, sex),
            date_of_birth=_birth_date(self._rng, encounter, age),
            sex=sex,
        )

    def group(self, origin: Origin, encounter: date) -> list[Person]:
        rng = self._rng
        if rng.random() >= origin.family_rate:
            sex = _sex(rng, origin.male_share)
            family = _family_name(rng, origin.names)
            return [self.person(origin, encounter, _single_age(rng), sex, family)]
        return self._family(origin, encounter)

    def _family(self, origin: Origin, encounter: date) -> list[Person]:
        rng, names = self._rng, origin.names
        both = rng.random() < 0.65
        has_father = both or rng.random() < 0.2
        has_mother = both or not has_father
        father_age = int(rng.triangular(21, 52, 32))
        mother_age = max(18, min(50, father_age + rng.randint(-8, 3)))
        father_family = _family_name(rng, names)
        mother_family = father_family if names.spouse_shares_name else _family_name(rng, names)
        adults: list[Person] = []
        if has_father:
            adults.append(self.person(origin, encounter, father_age, "M", father_family))
        if has_mother:
            adults.append(self.person(origin, encounter, mother_age, "F", mother_family))
        youngest = min(
            age for age, present in ((father_age, has_father), (mother_age, has_mother)) if present
        )
        if names.patronymic:
            child_family = (
                adults[0].given_names.split()[0] if has_father else rng.choice(names.male)
            )
        elif names.two_surnames:
            paternal = (father_family if has_father else _family_name(rng, names)).split()[0]
            child_family = f"{paternal} {mother_family.split()[0]}" if has_mother else father_family
        else:
            child_family = father_family if has_father else mother_family
        children = rng.choices((1, 2, 3, 4), weights=(45, 35, 15, 5))[0]
        return adults + [
            self.person(
                origin,
                encounter,
                rng.randint(0, min(17, youngest - 16)),
                rng.choice("FM"),
                child_family,
            )
            for _ in range(children)
        ]
