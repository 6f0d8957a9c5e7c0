"""Synthetic Meta Ad Library dumps for the embedded default, deterministic from a seed.

The files imitate the real formats of shared/specs/inputs.md, quirks included: a JSON Lines dump
with current field names, one with legacy names and old date formats, an API JSON page, and a CSV
export with side tables and spreadsheet-mangled ids; plus a media-verbalisation file and a truth
table (for tests only) recording the planted signal and every injected quirk.

Planted signal: each page has a topic whose delivery skews to particular states, ages and genders;
ads come in near-paraphrase families whose variants sometimes shift that emphasis, so later stages
(pair mining, TAP, TC) have real structure to find.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
TERRITORIES = ("Guam", "Northern Mariana Islands", "US Virgin Islands", "Eastern District", "Western District")
PR_MUNICIPIOS = ("San Juan", "Bayamón", "Carolina", "Ponce", "Caguas", "Mayagüez")
AU_REGIONS = ("New South Wales", "Victoria", "Queensland", "Western Australia", "South Australia")
SPEND_BUCKETS = [(0, 99), (100, 499), (500, 999), (1000, 4999), (5000, 9999), (10000, 49999), (50000, 99999)]
IMPRESSION_BUCKETS = [(0, 999), (1000, 4999), (5000, 9999), (10000, 49999), (50000, 99999), (100000, 199999), (200000, 499999), (500000, 999999), (1000000, None)]
AUDIENCE_BUCKETS = [(1000, 5000), (5000, 10000), (10000, 50000), (50000, 100000), (100000, 500000), (500000, 1000000), (1000000, None)]


@dataclass(frozen=True)
class Topic:
    name: str
    states: tuple[str, ...]
    ages: dict[str, float]
    male: float  # multiplier on male cells (female cells get 1 / male)
    page_words: tuple[str, ...]
    product: tuple[str, ...]
    benefit: tuple[str, ...]
    detail: tuple[str, ...]
    cta: tuple[str, ...]
    image: tuple[str, ...]


TOPICS = (
    Topic("retirement", ("Florida", "Arizona", "South Carolina"), {"65+": 4.0, "55-64": 2.5}, 1.0, ("Golden Years", "Sunset Living", "Harbor Senior"),
          ("retirement community", "Medicare plan", "senior living residence", "annuity plan"), ("peace of mind in your golden years", "care that grows with you", "more time for the grandkids", "a worry-free retirement"),
          ("with on-site nurses and weekly social events", "with no hidden fees and flexible terms", "close to golf courses and beaches", "with licensed advisors ready to help"),
          ("Schedule a free tour today.", "Call now for a free quote.", "Book your consultation this week."), ("an older couple walking on a beach at sunset", "a smiling nurse with a senior resident")),
    Topic("college", ("Massachusetts", "Rhode Island", "Vermont", "Utah"), {"18-24": 5.0, "25-34": 1.5}, 1.0, ("Campus Forward", "Bright Path Tutoring", "Study Smart"),
          ("student loan refinance", "online degree program", "test prep course", "campus housing plan"), ("graduate without the debt", "ace your finals this semester", "study on your own schedule", "lower your monthly payments"),
          ("with tutors available around the clock", "designed by professors at top schools", "with no application fee this fall", "trusted by thousands of students"),
          ("Apply before the deadline.", "Start your free trial.", "Check your rate in minutes."), ("students studying together in a library", "a graduate throwing a cap in the air")),
    Topic("hunting", ("Montana", "Wyoming", "Idaho", "South Dakota"), {"35-44": 1.6, "45-54": 1.6}, 4.0, ("Ridge Line Outfitters", "Big Sky Sporting", "Timber Trail Supply"),
          ("hunting rifle scope", "blaze orange jacket", "tree stand", "pickup truck bed rack"), ("get ready for opening day", "stay warm in the back country", "built for the toughest seasons", "gear that never quits"),
          ("with lifetime warranty and free mounting", "tested by guides in the Rockies", "in stock at every store this weekend", "with rugged all-weather construction"),
          ("Shop the season sale.", "Find a dealer near you.", "Order yours today."), ("a hunter in camouflage at dawn in the mountains", "a pickup truck on a gravel ridge road")),
    Topic("beauty", ("California", "New York", "Nevada"), {"25-34": 2.2, "35-44": 1.8}, 0.2, ("Glow Theory", "Luna Skin Lab", "Velvet Bloom"),
          ("vitamin C serum", "hydrating night cream", "clean mascara", "spa facial kit"), ("glowing skin in two weeks", "a fresh look every morning", "skin care that feels like self care", "confidence without the harsh chemicals"),
          ("made with clean and cruelty-free ingredients", "recommended by dermatologists", "with free shipping on every order", "loved by over ten thousand customers"),
          ("Shop the new collection.", "Claim your free sample.", "Get twenty percent off today."), ("a woman applying serum in a bright bathroom", "pastel skincare bottles on marble")),
    Topic("snow", ("Vermont", "Maine", "New Hampshire", "Minnesota"), {"25-34": 1.5, "35-44": 1.5}, 1.3, ("Northern Peak Gear", "Frostline Outdoors", "Maple Ridge Ski"),
          ("insulated snow boots", "ski season pass", "snowblower", "winter tire set"), ("beat the next blizzard", "stay dry on the slopes", "clear your driveway in minutes", "grip the ice with confidence"),
          ("rated for temperatures far below zero", "with early bird pricing until December", "with free installation and storage", "built for New England winters"),
          ("Reserve yours now.", "Shop winter deals.", "Visit our store this weekend."), ("a skier carving fresh powder", "a snow-covered driveway with a snowblower")),
    Topic("surf", ("Hawaii", "California", "Oregon"), {"18-24": 2.0, "25-34": 2.0}, 1.8, ("Island Swell", "Pacific Board Co", "Salt Wave Surf"),
          ("surfboard", "wetsuit", "surf lesson package", "reef-safe sunscreen"), ("catch the best waves of summer", "feel the ocean like a local", "ride longer and paddle faster", "protect the reef while you play"),
          ("shaped by hand on the North Shore", "with free board rental on weekends", "made from recycled materials", "with instructors certified in water safety"),
          ("Book your lesson today.", "Shop the summer drop.", "Paddle out with us."), ("a surfer riding a turquoise wave", "surfboards lined up on a sandy beach")),
    Topic("country", ("Tennessee", "Kentucky", "Alabama", "Arkansas"), {"35-44": 1.5, "45-54": 1.8, "55-64": 1.5}, 1.2, ("Honky Tonk Live", "Nashville Nights", "Backroads Radio"),
          ("country music festival ticket", "acoustic guitar", "live concert stream", "vinyl record collection"), ("hear your favorite stars live", "sing along under the stars", "bring the band home", "the sound of the south"),
          ("with three stages and food trucks all weekend", "with early bird discounts for families", "featuring new artists and legends", "with lawn seats and VIP passes"),
          ("Get tickets before they sell out.", "Stream it free this Friday.", "Shop the collection."), ("a crowd waving at an outdoor country concert", "an acoustic guitar on a porch")),
    Topic("tech", ("Washington", "California", "Massachusetts", "Colorado"), {"25-34": 2.5, "35-44": 1.8}, 1.7, ("CodeLaunch", "Cloud Career Hub", "DevBridge Academy"),
          ("coding bootcamp", "cloud certification course", "software engineering job board", "data science workshop"), ("land your first tech job", "level up your engineering career", "learn the skills employers want", "switch careers in twelve weeks"),
          ("with mentors from leading tech companies", "with flexible evening classes", "with job placement support included", "taught by senior engineers"),
          ("Apply for the next cohort.", "Browse open roles today.", "Start learning for free."), ("a developer coding on two monitors", "a team whiteboarding in a bright office")),
    Topic("farm", ("Iowa", "Nebraska", "Kansas", "North Dakota"), {"45-54": 1.8, "55-64": 2.0, "65+": 1.5}, 2.2, ("Heartland Farm Supply", "Prairie Co-op", "Golden Field Seeds"),
          ("seed corn", "tractor parts", "livestock feed", "grain storage bin"), ("a better harvest this fall", "keep your equipment running", "healthier herds all year", "protect every bushel"),
          ("delivered straight to your farm", "with agronomists ready to help", "at co-op member prices", "backed by decades of field trials"),
          ("Order before planting season.", "Call your local dealer.", "Stop by the co-op today."), ("a tractor in a golden wheat field", "rows of green corn under a blue sky")),
    Topic("parenting", ("Utah", "Idaho", "Texas"), {"25-34": 3.0, "35-44": 2.0}, 0.35, ("Little Sprouts", "Happy Nest Baby", "Tiny Steps Co"),
          ("organic baby formula", "convertible car seat", "diaper subscription", "kids learning tablet"), ("more smiles and fewer tears", "peace of mind for new parents", "everything your little one needs", "safe and gentle from day one"),
          ("recommended by pediatricians", "with free delivery every month", "tested to the highest safety standards", "with a thirty day money back guarantee"),
          ("Shop baby essentials.", "Start your subscription.", "Try it risk free."), ("a parent holding a sleeping newborn", "a toddler playing with colorful blocks")),
    Topic("fitness", ("Colorado", "Florida", "Texas", "Georgia"), {"18-24": 1.8, "25-34": 2.2}, 1.5, ("Iron Pulse Gym", "Peak Form Fitness", "Flex Nation"),
          ("gym membership", "home workout app", "protein powder", "personal training package"), ("get stronger in thirty days", "reach your fitness goals faster", "train anywhere anytime", "feel your best every day"),
          ("with certified coaches and custom plans", "with no sign-up fee this month", "with classes from sunrise to midnight", "trusted by athletes nationwide"),
          ("Join today.", "Download the app free.", "Claim your first session."), ("a woman lifting weights in a modern gym", "a runner stretching at sunrise")),
    Topic("energy", ("Texas", "Oklahoma", "Louisiana", "New Mexico"), {"45-54": 1.6, "55-64": 1.6}, 1.6, ("Lone Star Solar", "Bright Grid Energy", "SunRanch Power"),
          ("home solar panel system", "backup battery", "energy efficient air conditioner", "electric plan"), ("cut your power bill in half", "keep the lights on during storms", "stay cool all summer for less", "energy independence for your home"),
          ("with zero down financing", "with federal tax credits available", "installed by local certified crews", "with a twenty five year warranty"),
          ("Get your free estimate.", "See if your home qualifies.", "Switch plans today."), ("solar panels on a suburban roof", "a family relaxing in a cool living room")),
)

SYNONYMS = {
    "Discover": ("Discover", "Explore", "Meet", "Try"),
    "our": ("our", "the new", "this season's"),
    "today": ("today", "now", "this week"),
    "Looking for": ("Looking for", "Need", "Searching for", "Ready for"),
}


def _pct(share: float) -> str:
    """Meta's string percentages: plain decimals, tiny ones in scientific notation ("2.6E-5")."""
    if share < 1e-4:
        mantissa, exponent = f"{share:.1e}".split("e")
        return f"{mantissa}E{int(exponent)}"
    return f"{share:.6f}".rstrip("0").rstrip(".") or "0"


class _Generator:
    def __init__(self, seed: int, census_dir: Path):
        self.rng = np.random.default_rng(seed)
        states = list(csv.DictReader(open(census_dir / "census2020_state_population.csv", encoding="utf-8")))
        self.state_names = [r["state"] for r in states]
        self.meta_names = {r["state"]: r["meta_region_name"] for r in states}
        pop = np.array([int(r["population_2020"]) for r in states], dtype=float)
        self.state_share = pop / pop.sum()
        cells = list(csv.DictReader(open(census_dir / "census2020_sex_age.csv", encoding="utf-8")))
        self.cells = [(r["sex"], r["age"]) for r in cells]
        cpop = np.array([int(r["population_2020"]) for r in cells], dtype=float)
        self.cell_share = cpop / cpop.sum()
        self.tokens = {name: self.token() for name in ("current", "legacy", "page", "export")}
        self.used_ids: set[str] = set()

    def token(self) -> str:
        alphabet = np.array(list(string.ascii_letters + string.digits))
        return "EAAB" + "".join(self.rng.choice(alphabet, 44))

    def new_id(self, digits: int = 16) -> str:
        while True:
            value = str(int(self.rng.integers(10 ** (digits - 1), 10**digits)))
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    # -------------------------------------------------------------- delivery

    def regions(self, topic: Topic, focus: str | None, foreign: bool, municipios: bool) -> list[dict]:
        if foreign:
            shares = self.rng.dirichlet(np.ones(len(AU_REGIONS)) * 2)
            return [{"percentage": _pct(s), "region": r} for r, s in zip(AU_REGIONS, shares)]
        weights = self.state_share.copy()
        for i, name in enumerate(self.state_names):
            if name in topic.states:
                weights[i] *= 6.0
            if name == focus:
                weights[i] *= 10.0
        weights *= self.rng.lognormal(0.0, 0.35, len(weights))
        entries = [(self.meta_names[n], w) for n, w in zip(self.state_names, weights)]
        if self.rng.random() < 0.5:
            entries.append(("Unknown", weights.sum() * self.rng.uniform(0.002, 0.02)))
        if self.rng.random() < 0.15:
            entries.append((self.pick(TERRITORIES), weights.sum() * self.rng.uniform(0.0005, 0.003)))
        if municipios:  # 2019 dumps split Puerto Rico into municipios
            entries = [e for e in entries if e[0] != "Puerto Rico"]
            entries += [(m, weights.sum() * self.rng.uniform(0.0005, 0.004)) for m in PR_MUNICIPIOS[: int(self.rng.integers(2, 6))]]
        total = sum(w for _, w in entries)
        kept = [(r, w / total) for r, w in entries if w / total >= 0.0015]  # below Meta's threshold: absent
        tiny = [(r, w / total) for r, w in entries if w / total < 0.0015]
        if tiny and self.rng.random() < 0.3:  # now and then a tiny share is reported, in scientific notation
            r, w = tiny[int(self.rng.integers(len(tiny)))]
            kept.append((r, max(w / 50, 1.2e-5)))
        norm = sum(w for _, w in kept)
        return [{"percentage": _pct(w / norm), "region": r} for r, w in kept]

    def demographics(self, topic: Topic, age_focus: str | None, gender_focus: str | None) -> list[dict]:
        weights = self.cell_share.copy()
        for i, (sex, age) in enumerate(self.cells):
            weights[i] *= topic.ages.get(age, 1.0) * (topic.male if sex == "male" else 1.0 / topic.male)
            if age == age_focus:
                weights[i] *= 6.0
            if sex == gender_focus:
                weights[i] *= 4.0
        weights *= self.rng.lognormal(0.0, 0.2, len(weights))
        entries = [(age, sex, w) for (sex, age), w in zip(self.cells, weights)]
        total = weights.sum()
        if self.rng.random() < 0.6:
            entries.append(("13-17", self.pick(("male", "female")), total * self.rng.uniform(0.001, 0.02)))
        for age in AGES:
            if self.rng.random() < 0.4:
                entries.append((age, "unknown", total * self.rng.uniform(0.00002, 0.006)))
        norm = sum(w for *_, w in entries)
        return [{"percentage": _pct(w / norm), "age": a, "gender": g} for a, g, w in entries]

    # -------------------------------------------------------------- text

    def sentence_parts(self, topic: Topic) -> dict:
        return {
            "product": self.pick(topic.product),
            "benefit": self.pick(topic.benefit),
            "detail": self.pick(topic.detail),
            "cta": self.pick(topic.cta),
            "opener": self.pick(("Discover", "Looking for")),
        }

    def render(self, parts: dict, topic: Topic, variant: int) -> str:
        """A family's message rewritten: synonym swaps, reordered clauses, phrases added or dropped."""
        syn = {k: self.pick(v) for k, v in SYNONYMS.items()}
        opener = syn[parts["opener"]]
        if opener in ("Looking for", "Need", "Searching for", "Ready for"):
            first = f"{opener} {parts['benefit']}? Our {parts['product']} is here {parts['detail']}."
        else:
            first = f"{opener} {syn['our']} {parts['product']} for {parts['benefit']}, {parts['detail']}."
        sentences = [first]
        if variant % 3 != 1:
            sentences.append(f"Customers say it is the best {parts['product']} they have tried.")
        if variant % 2 == 1:
            sentences.append(f"Thousands of families already enjoy {self.pick(topic.benefit)} with us.")
        cta = parts["cta"] if self.rng.random() < 0.6 else self.pick(topic.cta)
        sentences.append(cta.replace("today", syn["today"]))
        if self.rng.random() < 0.4:
            sentences = [sentences[-1]] + sentences[:-1]
        return " ".join(sentences)


def _bucket(buckets, value):
    for low, high in buckets:
        if high is None or value <= high:
            return low, high
    return buckets[-1]


def _range(low, high, drop_upper=False):
    out = {"lower_bound": str(low)}
    if high is not None and not drop_upper:
        out["upper_bound"] = str(high)
    return out


def write_demo_ads(out_dir: Path, seed: int, census_dir: Path, n_ads: int = 3000, n_pages: int = 150) -> dict:
    """Write the demo dumps into ``out_dir``; returns counts per file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g = _Generator(seed, Path(census_dir))
    rng = g.rng

    # heavy-tailed (Zipf-like) page sizes with jitter: one page of at least 300 ads, many of 1-5
    weights = np.arange(1, n_pages + 1, dtype=float) ** -1.15 * rng.lognormal(0.0, 0.3, n_pages)
    weights[0] = max(weights[0], weights[1:].max() * 1.5)
    sizes = np.maximum(1, np.floor(weights / weights.sum() * n_ads)).astype(int)
    sizes[0] = max(sizes[0], min(300, n_ads // 3))
    while sizes.sum() > n_ads:
        sizes[int(np.argmax(sizes))] -= 1
    sizes[int(np.argmax(sizes))] += n_ads - sizes.sum()
    unnamed_pages = {n_pages // 4, n_pages - 5}

    ads, truth = [], []
    family_id = 0
    start_day = dt.date(2021, 1, 1)
    for p, size in enumerate(sizes):
        topic = TOPICS[p % len(TOPICS)] if p else TOPICS[int(rng.integers(len(TOPICS)))]
        page_id = g.new_id(int(rng.integers(9, 16)))
        page_name = f"{g.pick(topic.page_words)} {g.pick(('Co', 'Group', 'Store', 'USA', 'Network', 'Club'))} {p}"
        remaining = int(size)
        while remaining > 0:
            n_var = min(remaining, int(rng.integers(2, 9)))
            remaining -= n_var
            parts = g.sentence_parts(topic)
            family_day = start_day + dt.timedelta(days=int(rng.integers(0, 1277)))
            for v in range(n_var):
                shift = rng.random()
                focus_state = g.pick(g.state_names[:51]) if shift < 0.3 else None
                age_focus = g.pick(AGES) if 0.3 <= shift < 0.5 else None
                gender_focus = g.pick(("male", "female")) if 0.5 <= shift < 0.6 else None
                spend = _bucket(SPEND_BUCKETS, rng.lognormal(6.5, 1.5))
                impressions = _bucket(IMPRESSION_BUCKETS, (spend[0] + (spend[1] or spend[0])) / 2 * rng.uniform(40, 250))
                start = family_day + dt.timedelta(days=int(rng.integers(0, 40)))
                ad = {
                    "ad_id": g.new_id(16), "page_id": page_id, "page_name": "" if p in unnamed_pages else page_name,
                    "topic": topic.name, "family_id": family_id, "body": g.render(parts, topic, v),
                    "start": start, "stop": None if rng.random() < 0.1 else start + dt.timedelta(days=int(rng.integers(1, 60))),
                    "spend": spend, "impressions": impressions, "audience": AUDIENCE_BUCKETS[int(rng.integers(len(AUDIENCE_BUCKETS)))],
                    "currency": "USD", "foreign": False, "focus_state": focus_state, "age_focus": age_focus, "gender_focus": gender_focus,
                    "topic_obj": topic,
                }
                ads.append(ad)
            family_id += 1

    order = rng.permutation(len(ads))
    ads = [ads[i] for i in order]
    n = len(ads)
    dump_of = np.array(["current"] * n, dtype=object)
    cut = rng.random(n)
    dump_of[cut >= 0.55] = "legacy"
    dump_of[cut >= 0.75] = "page"
    dump_of[cut >= 0.80] = "export"

    flags = {k: np.zeros(n, dtype=bool) for k in ("empty_body", "short_body", "multi_frame", "has_url", "non_usd", "foreign", "municipios")}
    quirk = rng.random((n, 6))
    flags["empty_body"] = quirk[:, 0] < 0.01
    flags["short_body"] = (quirk[:, 0] >= 0.01) & (quirk[:, 0] < 0.02)
    flags["multi_frame"] = quirk[:, 1] < 0.15
    flags["has_url"] = quirk[:, 2] < 0.12
    flags["non_usd"] = quirk[:, 3] < 0.012
    flags["foreign"] = quirk[:, 4] < 0.004
    flags["municipios"] = (dump_of == "legacy") & (quirk[:, 5] < 0.05)

    records = []
    for i, ad in enumerate(ads):
        topic = ad.pop("topic_obj")
        if dump_of[i] == "legacy":  # old dumps: earlier dates
            ad["start"] = dt.date(2019, 10, 1) + dt.timedelta(days=(ad["start"] - start_day).days % 600)
            if ad["stop"]:
                ad["stop"] = ad["start"] + dt.timedelta(days=int(rng.integers(1, 60)))
        body = ad["body"]
        if flags["has_url"][i]:
            body += " " + g.pick(("Learn more at https://www.example.com/offer?ref=fb", "Visit www.example.org/deals", "Details: http://shop.example.net/p/123"))
        bodies = [body]
        if flags["multi_frame"][i]:
            extra = [g.render(g.sentence_parts(topic), topic, int(rng.integers(0, 4))) for _ in range(int(rng.integers(1, 3)))]
            bodies = [body, body] + extra if rng.random() < 0.3 else [body] + extra
        if flags["empty_body"][i]:
            bodies = g.pick(([], [""], ["  "]))
        elif flags["short_body"][i]:
            bodies = [g.pick(("Shop now!", "Sale", "Learn more", "Big deals"))]
        if flags["non_usd"][i]:
            ad["currency"] = g.pick(("EUR", "GBP", "CAD"))
        ad.update(
            bodies=bodies,
            regions=g.regions(topic, ad["focus_state"], bool(flags["foreign"][i]), bool(flags["municipios"][i])),
            demographics=g.demographics(topic, ad["age_focus"], ad["gender_focus"]),
        )
        records.append(ad)
        truth.append({
            "ad_id": ad["ad_id"], "page_id": ad["page_id"], "topic": ad["topic"], "family_id": ad["family_id"],
            "dump": dump_of[i], "delivery_start": ad["start"],
            "top_states": list(topic.states) if ad["focus_state"] is None else [ad["focus_state"], *topic.states],
            "top_age": ad["age_focus"] or max(topic.ages, key=topic.ages.get),
            "top_gender": ad["gender_focus"] or ("male" if topic.male > 1 else "female" if topic.male < 1 else None),
            "unnamed_page": ad["page_name"] == "", **{k: bool(v[i]) for k, v in flags.items()},
        })

    def snapshot(ad_id: str, dump: str) -> str:
        return f"https://www.facebook.com/ads/archive/render_ad/?id={ad_id}&access_token={g.tokens[dump]}"

    def current(ad) -> dict:
        rec = {
            "id": ad["ad_id"], "page_id": ad["page_id"], "page_name": ad["page_name"], "bylines": f"Paid for by {ad['page_name'] or 'an advertiser'}",
            "ad_creation_time": (ad["start"] - dt.timedelta(days=1)).isoformat(), "ad_delivery_start_time": ad["start"].isoformat(),
            "ad_creative_bodies": ad["bodies"], "ad_creative_link_titles": [ad["page_name"]] if ad["page_name"] else [],
            "currency": ad["currency"], "spend": _range(*ad["spend"]),
            "impressions": _range(*ad["impressions"]), "estimated_audience_size": _range(*ad["audience"]),
            "demographic_distribution": ad["demographics"], "delivery_by_region": ad["regions"],
            "languages": ["en"], "publisher_platforms": ["facebook", "instagram"] if int(ad["ad_id"]) % 3 else ["facebook"],
            "ad_snapshot_url": snapshot(ad["ad_id"], "current"),
        }
        if ad["stop"]:
            rec["ad_delivery_stop_time"] = ad["stop"].isoformat()
        if not ad["page_name"] and int(ad["ad_id"]) % 2:
            del rec["page_name"]
        return rec

    def legacy(ad) -> dict:
        stamp = lambda d: f"{d.isoformat()}T{int(ad['ad_id']) % 24:02d}:24:19+0000"  # noqa: E731
        rec = {
            "id": ad["ad_id"], "page_id": ad["page_id"], "page_name": ad["page_name"], "funding_entity": ad["page_name"] or "Unknown funder",
            "ad_creation_time": stamp(ad["start"]), "ad_delivery_start_time": stamp(ad["start"]),
            "ad_creative_body": "\n".join(ad["bodies"]) if ad["bodies"] else "", "currency": ad["currency"],
            "spend": _range(*ad["spend"]), "impressions": _range(*ad["impressions"]), "potential_reach": _range(*ad["audience"]),
            "demographic_distribution": ad["demographics"], "region_distribution": ad["regions"],
            "ad_snapshot_url": snapshot(ad["ad_id"], "legacy"),
        }
        if ad["stop"]:
            rec["ad_delivery_stop_time"] = stamp(ad["stop"])
        return rec

    by_dump = {d: [r for r, dd in zip(records, dump_of) if dd == d] for d in ("current", "legacy", "page", "export")}
    # exact duplicates: within a dump, and the same ad in two dumps (current and export)
    dup_within = [r for r in by_dump["current"] if int(r["ad_id"]) % 37 == 0]
    dup_across = [r for r in by_dump["current"] if int(r["ad_id"]) % 41 == 1]
    counts = {}

    def dumps_line(rec: dict) -> str:
        return json.dumps(rec, ensure_ascii=False)

    lines = [dumps_line(current(r)) for r in by_dump["current"]]
    for k, r in enumerate(dup_within):
        lines.insert(min(len(lines), (k * 97) % len(lines) + 50), dumps_line(current(r)))
    for k in range(5):  # malformed lines: truncated objects and stray text
        pos = int(rng.integers(len(lines)))
        lines.insert(pos, lines[pos][: int(rng.integers(20, 200))] if k < 4 else "<html>502 Bad Gateway</html>")
    lines.insert(len(lines) // 2, "")
    (out_dir / "ads_current.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts["ads_current.jsonl"] = len(lines)

    lines = [dumps_line(legacy(r)) for r in by_dump["legacy"]]
    lines.insert(len(lines) // 3, lines[len(lines) // 3][:80])
    (out_dir / "ads_legacy.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts["ads_legacy.jsonl"] = len(lines)

    page = {"data": [current(r) | {"ad_snapshot_url": snapshot(r["ad_id"], "page")} for r in by_dump["page"]],
            "paging": {"cursors": {"before": "QVFIUmx", "after": "QVFIUjZA"},
                       "next": f"https://graph.facebook.com/v19.0/ads_archive?after=QVFIUjZA&limit=250&access_token={g.tokens['page']}"}}
    (out_dir / "ads_page.json").write_text(json.dumps(page, ensure_ascii=False, indent=1), encoding="utf-8")
    counts["ads_page.json"] = len(page["data"])

    export = by_dump["export"] + dup_across
    columns = ["id", "page_id", "page_name", "bylines", "ad_creation_time", "ad_delivery_start_time", "ad_delivery_stop_time",
               "ad_creative_bodies", "ad_creative_link_titles", "currency", "spend.lower_bound", "spend.upper_bound",
               "impressions.lower_bound", "impressions.upper_bound", "estimated_audience_size.lower_bound",
               "estimated_audience_size.upper_bound", "languages", "publisher_platforms", "ad_snapshot_url", "collector_batch"]
    main, demos, regions = io.StringIO(), io.StringIO(), io.StringIO()
    w_main, w_demo, w_reg = csv.writer(main, lineterminator="\n"), csv.writer(demos, lineterminator="\n"), csv.writer(regions, lineterminator="\n")
    w_main.writerow(columns)
    w_demo.writerow(["ad_id", "age", "gender", "percentage"])
    w_reg.writerow(["ad_id", "region", "percentage"])
    mangled = 0
    for k, r in enumerate(export):
        rec = current(r)
        shown_id = rec["id"]
        if rng.random() < 0.1:
            shown_id = f"{float(rec['id']):.5E}".replace("E+0", "E+")
            mangled += 1
        w_main.writerow([
            shown_id, rec["page_id"], rec.get("page_name", ""), rec["bylines"], rec["ad_creation_time"], rec["ad_delivery_start_time"],
            rec.get("ad_delivery_stop_time", ""), json.dumps(rec["ad_creative_bodies"], ensure_ascii=False), repr(rec["ad_creative_link_titles"]),
            rec["currency"], rec["spend"]["lower_bound"], rec["spend"].get("upper_bound", ""), rec["impressions"]["lower_bound"],
            rec["impressions"].get("upper_bound", ""), rec["estimated_audience_size"]["lower_bound"],
            rec["estimated_audience_size"].get("upper_bound", ""), repr(rec["languages"]), repr(rec["publisher_platforms"]),
            snapshot(r["ad_id"], "export"), f"batch-{k // 100}",
        ])
        for d in rec["demographic_distribution"]:
            w_demo.writerow([rec["id"], d["age"], d["gender"], d["percentage"]])
        for d in rec["delivery_by_region"]:
            w_reg.writerow([rec["id"], d["region"], d["percentage"]])
    (out_dir / "ads_export.csv").write_text(main.getvalue(), encoding="utf-8")
    (out_dir / "ads_export_demos.csv").write_text(demos.getvalue(), encoding="utf-8")
    (out_dir / "ads_export_regions.csv").write_text(regions.getvalue(), encoding="utf-8")
    counts["ads_export.csv"] = len(export)
    counts["mangled_ids"] = mangled

    with open(out_dir / "media_verbalisation.jsonl", "w", encoding="utf-8") as fh:
        n_media = 0
        for r, t in zip(records, truth):
            if int(r["ad_id"]) % 5 == 0:
                topic = next(x for x in TOPICS if x.name == r["topic"])
                fh.write(json.dumps({"ad_id": r["ad_id"], "verbalisation": f"Image: {g.pick(topic.image)}."}) + "\n")
                n_media += 1
    counts["media_verbalisation.jsonl"] = n_media

    dup_ids = {r["ad_id"] for r in dup_within} | {r["ad_id"] for r in dup_across}
    for t in truth:
        t["is_duplicate"] = t["ad_id"] in dup_ids
    table = pa.Table.from_pylist(truth)
    pq.write_table(table, out_dir / "truth.parquet", compression="zstd")
    counts["unique_ads"] = len(truth)
    counts["pages"] = int(n_pages)
    counts["largest_page"] = int(sizes.max())
    return counts
