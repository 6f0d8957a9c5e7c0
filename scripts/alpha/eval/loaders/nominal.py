"""Nominal or ordinal: the one rule every survey loader applies (GSS, raw ATP waves for OpinionQA-XL and
OpinionQA-from-raw, the released OpinionQA files).

A *nominal* question (categorical options: labour-force statuses, religions, regions, parties, ...) keeps
its options and human distributions but gets all-equal ordinals, OpinionQA's own convention: the
ordinal-W1 metrics exclude it and count it (``excluded: {"equal_ordinals": n}``). An *ordinal* question
keeps the loader's ordinals (GSS / raw ATP: the value codes; OpinionQA: ``option_ordinal``).

The decision, per question, first match wins; the reason is recorded (``NominalRule.report``):

1. ``config_ordinal`` / ``config_nominal``: the question is named in the loader option ``ordinal`` /
   ``nominal`` (config ``benchmarks.<name>.options``). Entries match the question key case-blind; an
   entry without a wave suffix (``GUNREASON``) matches that variable in every wave (``GUNREASON_W26``),
   one with a suffix only that wave. A name in both lists is an error.
2. ``opinionqa``: OpinionQA's released ``option_ordinal`` for the question is known (the released
   files; raw waves built with them): nominal exactly when those ordinals are all equal. So on every
   question OpinionQA has, the marking is OpinionQA's.
3. ``name_list``: the variable name (wave suffix dropped, lower case) is in ``NOMINAL_NAMES``: GSS
   categorical variables (race, relig, region, marital, wrkstat, spwrksta, born, parborn, sex, ...).
4. ``labels``: the label heuristic on the substantive option labels (refusal-type options excluded).

The label heuristic. Each label (lower case, quotes straightened, "(VOL.)" dropped) is

- *scale-like* when it holds a word of a recognised scale (``SCALE_WORDS``): agreement, approval,
  support (agree, approve, favor, oppose, support, accept); degree and amount (very, somewhat,
  extremely, strongly, mostly, a lot, a little, a great deal, not at all, too, enough, about right, all,
  some, none, more, less, major, minor); frequency (always, often, sometimes, rarely, never, once,
  daily, weekly, every, times a ...); comparison and change (better, worse, same, higher, lower,
  increase, decrease, above / below average, upper, middle); evaluation (excellent, good, fair, poor,
  bad, positive, negative, important, serious, satisfied, happy, interested, worried, concerned,
  confident, comfortable, likely, probably, definitely, true, false, right, wrong, safe, easy, hard,
  harsh, strict, effective, helpful, harmful, legal, allowed, trust, warm, cold); neutral midpoints
  (neither ... nor, mixed, neutral, depends, in between, equally); a leading "yes" / "no" (unless
  what follows it names a category: "Yes, born in US" is categorical); numbers
  (digits, number words, "N or more", money and age brackets); education levels (high school,
  college, degree, graduate, ...) and the ideology scale (liberal, moderate, conservative); or a
  graded variant of another label of the question (the same words once degree words and negations are
  dropped: "Allowed" / "Not allowed", "Interested" / "Not interested");
- else *categorical* when it holds a word of a categorical vocabulary (``CATEGORY_WORDS``): labour-force
  status (working full / part time, unemployed, retired, in school, keeping house, laid off, disabled),
  religion, region and community type, race and ethnicity, marital status, party, sex, birthplace and
  parents, "other" / "something else";
- else neither.

The question is **ordinal** when at least half of its labels are scale-like and they outnumber the
categorical ones; otherwise **nominal**. So a recognised scale (agree/disagree, very/somewhat/not at
all, frequencies, numbers, yes/no, favor/oppose, ...) is ordinal, a list of categories ("Working full
time / Working part time / Unemployed / Retired", "Protestant / Catholic / Jewish / None / Other",
"Republican / Democrat / Independent") is nominal, and so is a list of options that carries no scale
word at all ("For protection / For hunting / For sport shooting"). Two options count like any other:
"Yes / No" and "Favor / Oppose" are ordinal; "Male / Female", "For protection / For hunting" and "Yes,
born in US / No" nominal.
The heuristic is a best effort on wording: ``nominal`` / ``ordinal`` in the config settle any question
it gets wrong, and the report lists every nominal question with its reason, the override entries that
matched nothing, and, where OpinionQA's marking decided, the questions on which the labels alone would
have decided otherwise (``labels_disagree_with_opinionqa``, a check of the heuristic).

The rule in prose: docs/benchmarks.md, "Nominal or ordinal".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["NOMINAL_NAMES", "NominalRule", "labels_look_nominal", "label_kind", "all_equal"]

# GSS categorical variables (cumulative file names); the first eleven are the loader's former NOMINAL list
NOMINAL_NAMES = frozenset({
    "race", "relig", "relig16", "region", "reg16", "marital", "wrkstat", "denom", "denom16", "srcbelt", "xnorcsiz",
    "spwrksta", "wrkslf", "spwrkslf", "born", "parborn", "granborn", "maborn", "paborn", "sex", "sprel", "sprel16",
    "spden", "oth16", "other", "jew", "jew16", "hispanic", "racecen1", "racecen2", "racecen3", "ethnic", "eth1", "eth2",
    "eth3", "zodiac", "dwelown", "wrkgovt", "spwrkgvt", "mawrkslf", "pawrkslf", "family16", "vote68", "vote72", "vote76", "vote80",
    "vote84", "vote88", "vote92", "vote96", "vote00",
    "vote04", "vote08", "vote12", "vote16", "vote20", "pres68", "pres72", "pres76", "pres80", "pres84", "pres88",
    "pres92", "pres96", "pres00", "pres04", "pres08", "pres12", "pres16", "pres20",
})

_W = r"(?<!\w)(?:{})(?!\w)"  # whole words / phrases


def _words(*patterns: str) -> re.Pattern:
    return re.compile(_W.format("|".join(patterns)))


SCALE_WORDS = _words(
    # agreement, approval, support
    r"(dis)?agree[sd]?", r"(dis)?approve[sd]?", r"(un)?favou?r(able|ably|s|ed)?", r"oppose[sd]?", r"support(s|ed)?",
    r"(un)?accept(able|ed)?", r"reject(s|ed)?",
    # degree and amount
    r"very", r"somewhat", r"extremely", r"fairly", r"slightly", r"quite", r"rather", r"pretty", r"highly",
    r"strong(ly|er|est)?", r"weak(ly|er)?", r"completely", r"totally", r"entirely", r"mostly", r"partly", r"partially",
    r"largely", r"mainly", r"major", r"minor", r"great(er|est|ly)?", r"a? ?(good|great|fair) (deal|amount)", r"lot",
    r"little", r"much", r"more", r"less", r"most", r"least", r"too", r"enough", r"about right", r"just right",
    r"right amount", r"at all", r"hardly( any| ever)?", r"barely", r"nearly", r"almost", r"all", r"some", r"none",
    r"nothing", r"few(er)?", r"many", r"several", r"half", r"not (very|too|so|that)", r"extent", r"degree",
    # frequency
    r"always", r"often", r"frequently", r"sometimes", r"occasionally", r"rarely", r"seldom", r"never", r"ever",
    r"usually", r"regularly", r"daily", r"weekly", r"monthly", r"yearly", r"annually", r"hourly", r"once", r"twice",
    r"(?<!full )(?<!part )(?<!full-)(?<!part-)times?", r"every", r"(a|per|each) (day|week|month|year)", r"days?", r"weeks?", r"months?",
    r"years?", r"hours?", r"minutes?",
    # comparison and change
    r"better", r"worse", r"same", r"similar", r"higher", r"lower", r"larger", r"smaller", r"bigger", r"increas(e|ed|es|ing)",
    r"decreas(e|ed|es|ing)", r"ris(e|es|ing|en)", r"fall(s|ing|en)?", r"grow(s|ing|n)?", r"declin(e|ed|es|ing)",
    r"improv(e|ed|es|ing)", r"go(ne)? (up|down)", r"above", r"below", r"average", r"upper", r"middle", r"stay(ed|s)?",
    r"unchanged", r"equal(ly)?",
    # neutral midpoints
    r"neither \w+( \w+)? nor", r"mixed(?! race)", r"neutral", r"depends", r"in between", r"in the middle",
    # evaluation
    r"excellent", r"good", r"fair(ly)?", r"poor(ly)?", r"bad(ly)?", r"terrible", r"awful", r"positive(ly)?",
    r"negative(ly)?", r"(un)?important", r"essential", r"priority", r"serious(ly)?", r"(dis|un)?satisf(ied|actory)",
    r"(un)?happy", r"(un|dis)?interested", r"confident", r"worr(y|ied|ies)", r"concerned", r"afraid", r"scared",
    r"fear(ful)?", r"(un)?comfortable", r"(un)?likely", r"probably", r"definitely", r"certain(ly)?", r"(im)?possible",
    r"true", r"false", r"right", r"wrong", r"(un)?fair", r"(un)?safe", r"easy", r"easier", r"difficult", r"hard(er)?",
    r"strict(er)?", r"harsh(er)?", r"lenient", r"(in)?effective(ly)?", r"success(ful)?", r"useful", r"helpful",
    r"help(s|ed)?", r"hurt(s)?", r"harm(s|ed|ful)?", r"benefit(s|ed)?", r"(dis)?trust", r"optimistic", r"pessimistic",
    r"hopeful", r"proud", r"angry", r"upset", r"enthusiastic", r"excited", r"warm", r"cold", r"close(ly)?",
    r"lean(s|ing)?", r"(il)?legal", r"allowed", r"permitted", r"forbidden", r"should", r"enough",
    # numbers
    r"\d[\d,.]*\+?", r"zero", r"one", r"two", r"three", r"four", r"five", r"six", r"seven", r"eight", r"nine", r"ten",
    r"eleven", r"twelve", r"twenty", r"hundred", r"thousand", r"first", r"second", r"third", r"fourth", r"fifth",
    # education levels and the ideology scale
    r"high school", r"college", r"degree", r"graduate", r"grad", r"post-? ?grad(uate)?", r"bachelor'?s?", r"associate'?s?",
    r"master'?s?", r"doctorate", r"ph\.? ?d", r"grade", r"diploma", r"ged", r"elementary", r"liberal", r"conservative",
    r"moderate(ly)?", r"middle of the road",
)
_YES_NO = re.compile(r"\A(yes|no)\b")
CATEGORY_WORDS = _words(
    # labour-force status
    r"work(s|ing|er)?", r"(un|self-? ?)?employ(ed|ment)", r"retired", r"student", r"school", r"keeping house",
    r"homemaker", r"housewife", r"laid off", r"disabled", r"full-? ?time", r"part-? ?time", r"temp", r"job",
    r"military", r"business",
    # religion
    r"protestant", r"catholic", r"jewish", r"judaism", r"jew", r"muslim", r"moslem", r"islam(ic)?", r"buddhis[mt]",
    r"hindu(ism)?", r"orthodox", r"christian", r"mormon", r"lds", r"atheist", r"agnostic", r"baptist", r"methodist",
    r"lutheran", r"presbyterian", r"episcopal(ian)?", r"pentecostal", r"evangelical", r"(non-? ?)?denomination(al)?",
    r"church", r"religion", r"religious",
    # region and community type
    r"north ?east(ern)?", r"mid ?west(ern)?", r"south(ern)?", r"west(ern)?", r"east(ern)?", r"north(ern)?",
    r"new england", r"atlantic", r"central", r"mountain", r"pacific", r"urban", r"suburb(an|s)?", r"rural", r"city",
    r"town", r"countryside", r"farm", r"state", r"region", r"country",
    # race and ethnicity
    r"white", r"black", r"african(-american)?", r"asian(-american)?", r"hispanic", r"latin[oax]", r"native",
    r"(american )?indian", r"alaska(n)?", r"hawaiian", r"islander", r"mixed race", r"multiracial", r"races?",
    r"ethnic(ity)?",
    # marital status
    r"married", r"widowed", r"divorced", r"separated", r"single", r"partner",
    # party
    r"republican(s)?", r"democrat(s|ic)?", r"independent(s)?", r"libertarian", r"party", r"gop",
    # sex
    r"male", r"female", r"man", r"woman", r"men", r"women", r"boy", r"girl", r"gender",
    # birthplace and parents
    r"born", r"u\.? ?s\.?", r"united states", r"america(n)?", r"abroad", r"foreign", r"outside", r"mother", r"father",
    r"parents?",
    # other
    r"other", r"something else", r"someone else",
)
# dropped before comparing two labels ("Very safe" / "Not at all safe" -> "safe")
_GRADING = frozenset("""a an the not no never don't dont doesn't isn't aren't wasn't very somewhat extremely fairly
slightly quite rather pretty highly strongly completely totally mostly really so too at all much little lot bit
more less most least great deal some any only just""".split())


def _normalise(label: Any) -> str:
    text = str(label).replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-").replace("\u2014", "-")
    text = re.sub(r"\(\s*vol\.?\s*\)", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip(" .:;,")


def _stripped(text: str) -> str:
    words = re.findall(r"[\w'$]+", text)
    return " ".join(w for w in words if w not in _GRADING)


def label_kind(labels: Sequence[Any]) -> list[str]:
    """Per label: "scale", "category" or "other" (module docstring)."""
    texts = [_normalise(x) for x in labels]
    cores = [_stripped(t) for t in texts]
    kinds = []
    for i, text in enumerate(texts):
        graded = bool(cores[i]) and any(j != i and cores[j] == cores[i] for j in range(len(texts)))
        yes_no = _YES_NO.match(text)
        rest = text[yes_no.end():].strip(" ,;:-") if yes_no else text
        if graded or (yes_no and not CATEGORY_WORDS.search(rest)) or SCALE_WORDS.search(rest):
            kinds.append("scale")
        elif CATEGORY_WORDS.search(text):
            kinds.append("category")
        else:
            kinds.append("other")
    return kinds


def labels_look_nominal(labels: Sequence[Any]) -> bool:
    """The label heuristic: False (ordinal) when at least half the labels are scale-like and they
    outnumber the categorical ones, else True (nominal)."""
    kinds = label_kind(labels)
    n_scale, n_category = kinds.count("scale"), kinds.count("category")
    return not (2 * n_scale >= len(kinds) and n_scale > n_category)


def all_equal(values: Sequence[float]) -> bool:
    values = [float(x) for x in values]
    return bool(values) and max(values) == min(values)


def _name(text: Any) -> str:
    return str(text).strip().lower()


def _stem(key: Any) -> str:
    return re.sub(r"_w\d+\Z", "", _name(key))


@dataclass
class NominalRule:
    """The rule (module docstring) with a loader's overrides; records every decision for the report.

    ``nominal`` / ``ordinal``: config override lists; ``names``: the name list (default
    ``NOMINAL_NAMES``); ``released``: {key: OpinionQA option_ordinal} known for some questions (used for
    the marking only, e.g. OpinionQA-XL built next to the released OpinionQA files)."""

    nominal: Iterable[str] = ()
    ordinal: Iterable[str] = ()
    names: Iterable[str] = NOMINAL_NAMES
    released: Mapping[str, Sequence[float]] | None = None
    decisions: dict[str, tuple[bool, str]] = field(default_factory=dict)
    disagreements: list[str] = field(default_factory=list)

    def __post_init__(self):
        for which in ("nominal", "ordinal"):
            value = getattr(self, which)
            if isinstance(value, str):
                value = [value]
            setattr(self, which, [str(x).strip() for x in (value or ())])
        both = sorted({_name(x) for x in self.nominal} & {_name(x) for x in self.ordinal})
        if both:
            raise ValueError(f"nominal/ordinal overrides: {both} named in both lists")
        self.names = frozenset(_name(x) for x in self.names)
        self.released = dict(self.released or {})
        self._used: set[tuple[str, str]] = set()

    def _listed(self, which: str, key: str) -> bool:
        hit = False
        for entry in getattr(self, which):
            e = _name(entry)
            if e == _name(key) or (not re.search(r"_w\d+\Z", e) and e == _stem(key)):
                self._used.add((which, entry))
                hit = True
        return hit

    def decide(self, key: str, labels: Sequence[Any], released: Sequence[float] | None = None,
               qid: str | None = None) -> tuple[bool, str]:
        """(nominal?, reason) for question ``key`` with substantive option ``labels``; ``released``:
        OpinionQA's option_ordinal when known (else looked up in ``self.released``). Recorded under
        ``qid`` (default ``key``)."""
        if released is None:
            released = self.released.get(key)
        if self._listed("ordinal", key):
            out = (False, "config_ordinal")
        elif self._listed("nominal", key):
            out = (True, "config_nominal")
        elif released is not None and len(released) == len(labels):
            out = (all_equal(released), "opinionqa")
            if labels_look_nominal(labels) != out[0]:
                self.disagreements.append(qid or key)
        elif _stem(key) in self.names:
            out = (True, "name_list")
        else:
            out = (labels_look_nominal(labels), "labels")
        self.decisions[qid or key] = out
        return out

    def apply(self, key: str, labels: Sequence[Any], ordinals: Sequence[float], ordinal_values: Sequence[float],
              released: Sequence[float] | None = None, qid: str | None = None) -> list[float]:
        """The question's ordinals under the rule: all equal (1.0) when nominal (equal ones kept as
        they are); when ordinal, ``ordinals``, or ``ordinal_values`` (codes / positions) if those were
        all equal (an ordinal override of a question OpinionQA marks nominal)."""
        nominal, _ = self.decide(key, labels, released, qid)
        ordinals = [float(x) for x in ordinals]
        if nominal:
            return ordinals if all_equal(ordinals) else [1.0] * len(ordinals)
        return [float(x) for x in ordinal_values] if all_equal(ordinals) and len(ordinals) > 1 else ordinals

    def report(self) -> dict[str, Any]:
        """For the loader's report: counts, every nominal question with its reason, the questions forced
        ordinal, override entries that matched no question, and the heuristic's disagreements with
        OpinionQA's marking."""
        nominal = {q: reason for q, (is_nominal, reason) in self.decisions.items() if is_nominal}
        by_reason: dict[str, int] = {}
        for reason in nominal.values():
            by_reason[reason] = by_reason.get(reason, 0) + 1
        return {
            "questions": len(self.decisions),
            "nominal": len(nominal),
            "nominal_by_reason": dict(sorted(by_reason.items())),
            "nominal_questions": nominal,
            "forced_ordinal": [q for q, (n, reason) in self.decisions.items() if reason == "config_ordinal"],
            "unused_overrides": {w: [e for e in getattr(self, w) if (w, e) not in self._used]
                                 for w in ("nominal", "ordinal")},
            "labels_disagree_with_opinionqa": list(dict.fromkeys(self.disagreements)),
        }
