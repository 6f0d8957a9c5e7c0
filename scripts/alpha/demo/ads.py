"""Synthetic Meta Ad Library dumps for the embedded demo, deterministic from a seed.

``write_demo_ads(out_dir, seed)`` writes, into ``out_dir``:

``ads_current.jsonl``
    JSON Lines, current Ad Library API field names, dates ``2021-12-08``; a few malformed lines
    (truncated objects, one stray non-JSON line) and a blank line.
``ads_legacy.jsonl``
    an older collector's JSON Lines: ``ad_creative_body`` (one string), ``ad_creative_link_title``,
    ``region_distribution``, ``potential_reach``, ``funding_entity``, dates ``2019-10-30T22:24:19+0000``;
    a few 2019 ads with Puerto Rico split into municipios.
``ads_page.json``
    one Graph API page ``{"data": [...], "paging": {"cursors": {...}, "next": "...access_token=..."}}``.
``ads_export.csv`` (+ ``ads_export_demos.csv``, ``ads_export_regions.csv``)
    a flattened CSV export: bodies JSON-encoded, titles/languages/platforms as Python-literal lists,
    dotted range columns, an unknown ``collector_batch`` column, ~10% of ids mangled to spreadsheet
    notation (``1.23457E+15``; the real id is in ``ad_snapshot_url``). Side tables keyed by the real id.
    Spreadsheet round trips also left dates unpadded (``2023-5-3``) or as ``2023-05-03 14:02:11``, and
    rounded ~4% of the export-only ads' page ids (``1.29585E+14``); a ``page_url`` column carries the
    real number for most of them, three have none (quarantined as ``mangled_page_id``).
``ads_single.json``
    one ad object in its own file, keyed by a document store's ``_id`` (``{"$oid": ...}``) with no
    ``id`` field: the ad id is only in ``ad_snapshot_url``. A copy of a page-only ad, merged before the
    page, so this record is the one kept.
``ads_wide.csv``
    a wide spreadsheet export (UTF-8 with a byte-order mark, CRLF line ends): one percentage column per
    region (states by bare name, other regions as ``region: <name>``) and per ``<gender> <age>`` cell,
    half the rows in ``12.5%`` notation; copies of ~3% of the export's ads, merged before the export.
``ads_library_report.csv``
    an Ad Library Report download (spend totals per advertiser), which is not an ad dump: never in
    ``ads.dumps``; a test checks that ingesting it stops with a message saying what it is.
``media_verbalisation.jsonl``
    ``{"ad_id", "verbalisation"}`` for ~20% of the ads.
``truth.parquet``
    ground truth for tests: one row per unique ad (topic, family, dump files, every planted quirk,
    the planted audience target, ``rerun_of``).

Every ``ad_snapshot_url`` (and the page's ``paging.next``) carries an ``access_token`` as real dumps
do, so these files must never be copied into results unredacted.

Planted signal: each page has one of 12 topics; delivery by region is census population share x the
topic's per-state interest multipliers x gamma noise (states under Meta's reporting threshold are then
absent), the demographic split is census sex x age share x the topic's age / gender multipliers x
noise. Ads come in near-paraphrase families (2-8 rewrites of one message) whose variants sometimes
shift the audience (another top state, age bracket or gender), for transcreation pair mining. About
``repeat_body_share`` of the ads rerun an earlier creative of their family (same page, unshifted
variants only) with their own id, dates, money and distributions, as advertisers rerun creatives; the
truth's ``rerun_of`` names the ad that first ran it.

Everything random comes from one ``numpy.random.Generator`` and one ``random.Random`` seeded from
``seed``, the reruns from a ``numpy.random.Generator`` of their own (so they move no other draw), and
the later collector quirks from a ``random.Random`` of their own; no clock, host or path enters an
output, so the same seed gives the same bytes.

Memory stays roughly flat in the number of ads: the ads live in typed arrays (under 200 bytes an ad),
their texts and distributions in an unnamed scratch file in ``out_dir`` until written, every file is
written record by record, the truth in row groups.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import pickle
import random
import re
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["write_demo_ads", "TOPICS", "DUMP_FILES", "pct"]

DEFAULT_CENSUS_DIR = Path(__file__).resolve().parents[2] / "config" / "census"

CURRENT, LEGACY, PAGE, EXPORT = "ads_current.jsonl", "ads_legacy.jsonl", "ads_page.json", "ads_export.csv"
DUMP_FILES = (CURRENT, LEGACY, PAGE, EXPORT)
EXPORT_DEMOS, EXPORT_REGIONS = "ads_export_demos.csv", "ads_export_regions.csv"
# Collector quirks beyond the four main dumps: one ad per JSON file (a document store's export), a
# wide spreadsheet export, and an Ad Library Report download that is not an ad dump at all.
SINGLE, WIDE, REPORT = "ads_single.json", "ads_wide.csv", "ads_library_report.csv"
REPORT_COLUMNS = ("Page ID", "Page name", "Disclaimer", "Amount spent (USD)", "Number of ads in Library")
MEDIA, TRUTH = "media_verbalisation.jsonl", "truth.parquet"

AGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
TEEN = "13-17"
GENDERS = ("female", "male")
TERRITORIES = ("Guam", "Northern Mariana Islands", "US Virgin Islands", "Eastern District", "Western District")
# Region columns a wide export names bare; the rest ("Eastern District", ...) carry a "region: " prefix
WIDE_BARE_REGIONS = frozenset({"Unknown", "Guam", "Northern Mariana Islands", "US Virgin Islands", "Puerto Rico",
                               "Washington, District of Columbia"})
AU_REGIONS = ("New South Wales", "Victoria", "Queensland", "Western Australia", "South Australia",
              "Australian Capital Territory", "Tasmania", "Northern Territory")
AU_WEIGHTS = (0.32, 0.26, 0.20, 0.10, 0.07, 0.02, 0.02, 0.01)
# used when config/census/pr_municipios.csv is absent; "Florida" (also a municipio) is never used
PR_MUNICIPIOS_FALLBACK = ("San Juan", "Bayamón", "Carolina", "Ponce", "Caguas", "Guaynabo", "Mayagüez", "Arecibo")
REPORTING_THRESHOLD = 0.0015  # states whose share falls below this are absent, as in Meta's dumps

SPEND_BUCKETS = ((0, 99), (100, 499), (500, 999), (1000, 4999), (5000, 9999), (10000, 49999),
                 (50000, 99999), (100000, 199999), (200000, 499999), (500000, 999999), (1000000, None))
IMPRESSION_BUCKETS = ((0, 999), (1000, 4999), (5000, 9999), (10000, 49999), (50000, 99999), (100000, 199999),
                      (200000, 499999), (500000, 999999), (1000000, None))
AUDIENCE_BUCKETS = ((1000, 5000), (5001, 10000), (10001, 50000), (50001, 100000), (100001, 500000),
                    (500001, 1000000), (1000001, None))

CURRENT_KEYS = ("id", "page_id", "page_name", "bylines", "ad_creation_time", "ad_delivery_start_time",
                "ad_delivery_stop_time", "ad_creative_bodies", "ad_creative_link_titles", "ad_creative_link_captions",
                "ad_creative_link_descriptions", "currency", "spend", "impressions", "estimated_audience_size",
                "demographic_distribution", "delivery_by_region", "languages", "publisher_platforms", "ad_snapshot_url")
EXPORT_COLUMNS = ("id", "page_id", "page_name", "bylines", "ad_creation_time", "ad_delivery_start_time",
                  "ad_delivery_stop_time", "ad_creative_bodies", "ad_creative_link_titles", "currency",
                  "spend.lower_bound", "spend.upper_bound", "impressions.lower_bound", "impressions.upper_bound",
                  "estimated_audience_size.lower_bound", "estimated_audience_size.upper_bound", "languages",
                  "publisher_platforms", "ad_snapshot_url", "collector_batch", "page_url")

FIRST_DAY, LAST_DAY = dt.date(2021, 1, 1), dt.date(2024, 6, 30)
# Real dumps rerun one creative with other delivery: in two public samples of political ads, 100 ads had
# 28 distinct bodies and 80 had 42. At 0.4 the ingested demo keeps about 0.73 distinct bodies per ad
# (carousels, URLs and empty bodies make some reruns distinct again) while ~90% of the paraphrase
# families keep two or more creatives and no shifted variant is lost. See _plant_reruns.
REPEAT_BODY_SHARE = 0.4
RERUN_SEED_OFFSET = 7_919_003  # the reruns' own random stream: seed + this
CREATIVE = "\x00"  # stands for an ad's creative text in its bodies until the text is filled in
TRUTH_ROW_GROUP = 8_192  # rows per row group of truth.parquet: bounds the memory that writing it takes
LEGACY_BEFORE = dt.date(2022, 4, 1)  # the old collector only saw ads that started before this


# ------------------------------------------------------------------------------------------ topics


@dataclass(frozen=True)
class Topic:
    name: str
    states: tuple[tuple[str, float], ...]  # (state, per-capita interest multiplier), strongest first
    anti: tuple[str, ...]  # states the topic barely reaches (x0.3)
    ages: dict  # age bracket -> multiplier (others 1.0)
    male: float  # multiplier on male cells; female cells stay 1.0
    teen: float  # 13-17 share of the ad's audience when reported
    cpm: float  # dollars per 1000 impressions (impressions per dollar differ by topic)
    brands: tuple[str, ...]
    kinds: tuple[str, ...]  # second word of page names
    products: tuple[str, ...]
    benefits: tuple[str, ...]
    details: tuple[str, ...]
    customers: str
    hooks: tuple[str, ...]
    offers: tuple[str, ...]
    ctas: tuple[str, ...]
    images: tuple[str, ...]
    emoji: str = ""

    @property
    def top_age(self) -> str:
        return max(AGES, key=lambda a: self.ages.get(a, 1.0))

    @property
    def top_gender(self) -> str | None:
        return "male" if self.male > 1.05 else "female" if self.male < 0.95 else None


TOPICS: tuple[Topic, ...] = (
    Topic(
        "retirement", (("Florida", 7.0), ("Arizona", 5.0), ("South Carolina", 3.5)), ("Utah", "Alaska", "District of Columbia"),
        {"65+": 4.0, "55-64": 2.5, "45-54": 1.0, "35-44": 0.4, "25-34": 0.25, "18-24": 0.15}, 0.8, 0.0005, 9.0,
        ("Golden Years", "Sunset Harbor", "Evergreen", "Silver Palms", "Heritage Oaks", "Bright Horizons"),
        ("Senior Living", "Medicare Advisors", "Retirement Group", "Care Partners", "Insurance Agency"),
        ("retirement community", "Medicare Advantage plan", "senior living residence", "fixed annuity", "supplemental insurance plan"),
        ("enjoy peace of mind in your golden years", "get care that grows with you", "spend more time with the grandkids",
         "enjoy a worry-free retirement", "lower your out-of-pocket costs"),
        ("with on-site nurses and weekly social events", "with no hidden fees and flexible terms",
         "close to golf courses and sandy beaches",
         "with licensed advisors ready to answer every question", "with dental and vision coverage included"),
        "retirees",
        ("Turning 65 this year?", "Retired and tired of surprise medical bills?", "Your retirement should feel like a vacation."),
        ("Enrollment closes soon, so do not miss out.", "Plans start at zero dollars a month.",
         "Ask about our move-in special this season."),
        ("Schedule a free tour today.", "Call now for a free quote.", "Book your consultation this week.", "Compare plans in minutes."),
        ("an older couple walking hand in hand on a beach at sunset", "a smiling nurse chatting with a senior resident in a sunny garden",
         "grandparents playing cards with their grandchildren"),
    ),
    Topic(
        "college", (("Massachusetts", 5.0), ("Rhode Island", 4.0), ("Vermont", 3.5), ("Utah", 3.0)), ("Florida", "West Virginia"),
        {"18-24": 6.0, "25-34": 2.0, "45-54": 0.5, "55-64": 0.35, "65+": 0.2}, 1.0, 0.02, 6.0,
        ("Campus Forward", "Bright Path", "Study Smart", "Next Semester", "Scholar Lane", "Quad"),
        ("Tutoring", "Student Loans", "Learning", "Prep Academy", "Scholars"),
        ("student loan refinance", "online degree program", "test prep course", "campus housing plan", "textbook rental service"),
        ("graduate without the debt", "ace your finals this semester", "study on your own schedule", "lower your monthly payments",
         "get a head start on your career"),
        ("with tutors available around the clock", "designed by professors at top universities", "with no application fee this fall",
         "trusted by students on hundreds of campuses", "with flexible repayment after graduation"),
        "students",
        ("Finals week is coming.", "Still paying too much on your student loans?", "Your degree, your schedule."),
        ("First month free for new students.", "Save up to forty percent on textbooks.", "No origination fees, ever."),
        ("Apply before the deadline.", "Start your free trial.", "Check your rate in minutes.", "Sign up today."),
        ("students studying together around a library table", "a graduate throwing a cap in the air", "a laptop and coffee on a dorm desk"),
    ),
    Topic(
        "hunting", (("Montana", 8.0), ("Wyoming", 6.5), ("Idaho", 5.0), ("South Dakota", 4.0)),
        ("Hawaii", "District of Columbia", "New York", "New Jersey"),
        {"35-44": 1.6, "45-54": 1.8, "18-24": 0.7, "65+": 0.8}, 4.0, 0.004, 7.0,
        ("Ridge Line", "Big Sky", "Timber Trail", "Elk Creek", "Iron Range", "Backcountry"),
        ("Outfitters", "Sporting Goods", "Truck Accessories", "Supply", "Hunting Co"),
        ("hunting rifle scope", "blaze orange jacket", "ladder tree stand", "pickup truck bed rack", "heavy-duty tow hitch"),
        ("get ready for opening day", "stay warm in the back country", "gear up for the toughest seasons",
         "haul more with a truck that never quits", "make a steady shot at any distance"),
        ("with a lifetime warranty and free mounting", "tested by guides in the Rockies", "in stock at every store this weekend",
         "with rugged all-weather construction", "rated to haul over two thousand pounds"),
        "hunters",
        ("Elk season is almost here.", "Tired of gear that quits on the ridge?", "Real hunters know the difference."),
        ("Save fifteen percent through Sunday.", "Free shipping on orders over ninety nine dollars.",
         "Trade in your old scope for credit."),
        ("Shop the season sale.", "Find a dealer near you.", "Order yours today.", "Gear up now."),
        ("a hunter in camouflage glassing a valley at dawn", "a pickup truck parked on a gravel ridge road",
         "an elk standing in a misty meadow"),
    ),
    Topic(
        "beauty", (("California", 4.0), ("New York", 3.5), ("Nevada", 2.5)), ("North Dakota", "Wyoming", "West Virginia"),
        {"25-34": 2.5, "35-44": 2.0, "18-24": 1.4, "55-64": 0.5, "65+": 0.3}, 0.15, 0.008, 12.0,
        ("Glow Theory", "Luna", "Velvet Bloom", "Rose & Clay", "Dewdrop", "Pure Petal"),
        ("Skin Lab", "Beauty", "Cosmetics", "Skincare", "Studio"),
        ("vitamin C serum", "hydrating night cream", "clean volumizing mascara", "at-home facial kit", "mineral sunscreen"),
        ("get glowing skin in two weeks", "wake up to a fresh look every morning", "make skin care feel like self care",
         "feel confident without harsh chemicals", "get softer, smoother skin"),
        ("made with clean and cruelty-free ingredients", "recommended by board-certified dermatologists",
         "with free shipping on every order", "loved by over ten thousand customers", "in recyclable glass packaging"),
        "customers",
        ("Your skin deserves better.", "Meet your new morning ritual.", "Dull skin? Not anymore."),
        ("Get twenty percent off your first order.", "Free gift with every purchase this week.", "Subscribe and save on every refill."),
        ("Shop the new collection.", "Claim your free sample.", "Find your shade today.", "Try it risk free."),
        ("a woman applying serum in a bright bathroom", "pastel skincare bottles arranged on white marble",
         "a close-up of dewy skin in soft light"),
        " ✨",
    ),
    Topic(
        "snow", (("Vermont", 8.0), ("Maine", 6.5), ("New Hampshire", 5.5), ("Minnesota", 4.0)),
        ("Florida", "Hawaii", "Arizona", "Texas", "Louisiana"), {"25-34": 1.5, "35-44": 1.7, "65+": 0.6}, 1.4, 0.01, 8.0,
        ("Northern Peak", "Frostline", "Maple Ridge", "Whiteout", "Summit Pass", "Powder Trail"),
        ("Gear", "Outdoors", "Ski Shop", "Equipment", "Mountain Supply"),
        ("insulated snow boots", "ski season pass", "two-stage snowblower", "winter tire set", "heated ski jacket"),
        ("beat the next blizzard", "stay dry on the slopes", "clear your driveway in minutes", "grip the ice with confidence",
         "squeeze in more runs before lunch"),
        ("rated for temperatures far below zero", "with early bird pricing until December", "with free installation and storage",
         "built for long New England winters", "with unlimited weekday skiing"),
        "skiers",
        ("Winter is coming early this year.", "Snow day? Make it a ski day.", "Nobody likes shoveling."),
        ("Lock in last season's price.", "Kids ski free with every adult pass.", "Free tune-up with every purchase."),
        ("Reserve yours now.", "Shop winter deals.", "Visit our store this weekend.", "Buy your pass today."),
        ("a skier carving through fresh powder under blue sky", "a snowblower clearing a driveway during a storm",
         "snow-covered pine trees at a ski lodge"),
    ),
    Topic(
        "surf", (("Hawaii", 9.0), ("California", 3.5), ("Oregon", 2.5)),
        ("Kansas", "Nebraska", "Iowa", "Oklahoma", "North Dakota", "Wyoming"),
        {"18-24": 2.2, "25-34": 2.0, "55-64": 0.5, "65+": 0.3}, 1.8, 0.015, 10.0,
        ("Island Swell", "Pacific Board", "Salt Wave", "Reef Break", "Tide Line", "Blue Lagoon"),
        ("Surf Co", "Surf Shop", "Boardworks", "Surf School", "Watersports"),
        ("hand-shaped surfboard", "4/3 wetsuit", "surf lesson package", "reef-safe sunscreen", "soft-top longboard"),
        ("catch the best waves of summer", "feel the ocean like a local", "ride longer and paddle faster",
         "protect the reef while you play", "stand up on your very first day"),
        ("shaped by hand on the North Shore", "with free board rental on weekends", "made from recycled materials",
         "with instructors certified in water safety", "with a two-year warranty"),
        "surfers",
        ("The swell is building.", "Never surfed before?", "Summer starts in the water."),
        ("Book three lessons, get the fourth free.", "Free wax with every board.", "Locals save ten percent."),
        ("Book your lesson today.", "Shop the summer drop.", "Paddle out with us.", "Reserve a board now."),
        ("a surfer riding a turquoise wave", "surfboards lined up on a sandy beach at golden hour",
         "an instructor teaching kids on the sand"),
        " 🌊",
    ),
    Topic(
        "country", (("Tennessee", 6.0), ("Kentucky", 5.0), ("Alabama", 3.5), ("Arkansas", 3.0)),
        ("Massachusetts", "District of Columbia", "Hawaii"), {"35-44": 1.5, "45-54": 1.8, "55-64": 1.5, "18-24": 0.7}, 1.25, 0.006, 7.5,
        ("Honky Tonk", "Nashville Nights", "Backroads", "Whiskey River", "Front Porch", "Bluegrass"),
        ("Live", "Radio", "Music Fest", "Records", "Concerts"),
        ("country music festival ticket", "acoustic guitar", "live concert stream", "vinyl record box set", "songwriter night pass"),
        ("hear your favorite stars live", "sing along under the stars", "bring the band home", "feel the real sound of the South",
         "make it a night you will never forget"),
        ("with three stages and food trucks all weekend", "with early bird discounts for families",
         "featuring new artists and living legends", "with lawn seats and VIP passes", "recorded live in Nashville"),
        "fans",
        ("Grab your boots.", "Y'all ready for a good time?", "Some songs just hit home."),
        ("Kids under ten get in free.", "Two-day passes are twenty percent off.", "Free shipping on all vinyl."),
        ("Get tickets before they sell out.", "Stream it free this Friday.", "Shop the collection.", "Grab your seats now."),
        ("a crowd waving hats at an outdoor country concert", "an acoustic guitar leaning on a wooden porch",
         "a fiddle player under stage lights"),
    ),
    Topic(
        "tech", (("Washington", 5.0), ("California", 3.5), ("Massachusetts", 3.0), ("Colorado", 2.5)),
        ("Mississippi", "West Virginia", "Arkansas"),
        {"25-34": 2.6, "18-24": 1.6, "35-44": 1.5, "55-64": 0.5, "65+": 0.2}, 1.8, 0.003, 14.0,
        ("CodeLaunch", "Cloud Career", "DevBridge", "Stack Path", "Byte Forge", "Open Loop"),
        ("Academy", "Hub", "Careers", "Bootcamp", "Labs"),
        ("coding bootcamp", "cloud certification course", "software engineering job board", "data science workshop",
         "interview prep program"),
        ("land your first tech job", "level up your engineering career", "learn the skills employers want",
         "switch careers in twelve weeks", "earn a higher salary next year"),
        ("with mentors from leading tech companies", "with flexible evening classes", "with job placement support included",
         "taught by senior engineers", "with real projects for your portfolio"),
        "graduates",
        ("Thinking about a career change?", "Tech is hiring.", "Your next role starts here."),
        ("Pay nothing until you are hired.", "Scholarships available for this cohort.", "The first module is free."),
        ("Apply for the next cohort.", "Browse open roles today.", "Start learning for free.", "Book an info session."),
        ("a developer coding on two monitors at night", "a team whiteboarding in a bright office", "a laptop showing lines of code"),
    ),
    Topic(
        "farm", (("Iowa", 8.0), ("Nebraska", 7.0), ("Kansas", 5.5), ("North Dakota", 4.5)),
        ("District of Columbia", "New York", "Hawaii", "Massachusetts", "New Jersey"),
        {"45-54": 1.8, "55-64": 2.0, "65+": 1.5, "18-24": 0.5, "25-34": 0.7}, 2.5, 0.003, 6.5,
        ("Heartland", "Prairie", "Golden Field", "Harvest Moon", "Red Barn", "Plainsview"),
        ("Farm Supply", "Co-op", "Seeds", "Equipment", "Feed & Grain"),
        ("hybrid seed corn", "tractor replacement parts", "premium livestock feed", "grain storage bin", "precision planter"),
        ("bring in a better harvest this fall", "keep your equipment running", "keep your herd healthy all year", "protect every bushel",
         "grow higher yields per acre"),
        ("delivered straight to your farm", "with agronomists ready to help", "at co-op member prices",
         "backed by decades of field trials", "with financing through harvest"),
        "farmers",
        ("Planting season waits for no one.", "Every acre counts.", "Built by farmers, for farmers."),
        ("Zero percent financing until harvest.", "Members earn a year-end dividend.", "Free delivery within fifty miles."),
        ("Order before planting season.", "Call your local dealer.", "Stop by the co-op today.", "Get a quote now."),
        ("a tractor crossing a golden wheat field", "rows of green corn under a wide blue sky", "cattle grazing beside a red barn"),
    ),
    Topic(
        "parenting", (("Utah", 5.0), ("Idaho", 3.5), ("Texas", 2.5)), ("Vermont", "District of Columbia", "Maine"),
        {"25-34": 3.0, "35-44": 2.0, "18-24": 1.0, "55-64": 0.3, "65+": 0.2}, 0.35, 0.001, 9.5,
        ("Little Sprouts", "Happy Nest", "Tiny Steps", "Cuddle Bug", "Acorn", "Bumble"),
        ("Baby", "Kids", "Family Co", "Nursery", "Toys"),
        ("organic baby formula", "convertible car seat", "diaper subscription", "kids learning tablet", "baby sleep sack"),
        ("get more smiles and fewer tears", "find peace of mind as a new parent", "get everything your little one needs",
         "keep your baby safe from day one", "help the whole family sleep better"),
        ("recommended by pediatricians", "with free delivery every month", "tested to the highest safety standards",
         "with a thirty day money back guarantee", "made without harsh chemicals"),
        "parents",
        ("New parent? We have been there.", "Nap time just got easier.", "Little ones grow fast."),
        ("Your first box is half off.", "Free registry gift for expecting parents.", "Bundle and save fifteen percent."),
        ("Shop baby essentials.", "Start your subscription.", "Build your registry today.", "Learn more."),
        ("a parent cradling a sleeping newborn", "a toddler stacking colorful blocks on a rug", "a car seat in the back of a family SUV"),
    ),
    Topic(
        "fishing", (("Alaska", 8.0), ("Louisiana", 4.5), ("Michigan", 3.5), ("Wisconsin", 3.0)),
        ("District of Columbia", "Nevada", "Arizona"), {"55-64": 1.8, "45-54": 1.6, "65+": 1.3, "18-24": 0.6}, 3.0, 0.006, 7.0,
        ("Reel Deal", "Bayou", "Northern Lakes", "Silver Salmon", "Tackle Box", "Deep Water"),
        ("Charters", "Tackle", "Boats", "Marine", "Fishing Co"),
        ("fishing charter", "graphite spinning rod", "aluminum fishing boat", "fish finder sonar", "tackle box kit"),
        ("land the catch of a lifetime", "get more bites every trip", "enjoy a calm day on the water", "find the fish faster",
         "bring home dinner"),
        ("with experienced local captains", "with all bait and tackle included", "built to handle rough water",
         "with free rigging on every rod", "with GPS mapping of every lake"),
        "anglers",
        ("The salmon are running.", "Early mornings, tight lines.", "Nothing beats a day on the lake."),
        ("Book a half day, get a free photo package.", "Save ten percent on all rods.", "Boat show pricing ends soon."),
        ("Book your trip today.", "Shop tackle now.", "Reserve a charter.", "Find your boat."),
        ("an angler holding up a king salmon on a boat", "a fishing boat at dawn on a still lake", "a tackle box full of bright lures"),
    ),
    Topic(
        "gaming", (("Georgia", 4.5), ("Nevada", 3.5), ("Texas", 2.5)), ("Vermont", "Maine", "West Virginia"),
        {"18-24": 4.0, "25-34": 2.2, "45-54": 0.5, "55-64": 0.25, "65+": 0.15}, 3.5, 0.03, 11.0,
        ("Pixel Rush", "Level Up", "Neon Arcade", "Respawn", "Crit Hit", "Boss Fight"),
        ("Gaming", "Esports", "Games", "Studios", "Arena"),
        ("gaming headset", "mechanical keyboard", "esports tournament pass", "cloud gaming subscription", "high refresh gaming monitor"),
        ("win more matches", "play anywhere without lag", "hear every footstep", "build a setup that looks as good as it plays",
         "join the biggest tournament of the year"),
        ("with tournament-grade switches", "with a free month for new players", "with cash prizes every weekend",
         "with zero latency wireless", "used by pro players"),
        "gamers",
        ("Tired of lag?", "Your squad is waiting.", "GG starts with your gear."),
        ("Free skin bundle with every preorder.", "Save twenty five percent this week.", "Students get a free month."),
        ("Download now.", "Join the tournament.", "Shop the drop.", "Play free today."),
        ("a gamer with a headset in a neon-lit room", "an esports arena with a cheering crowd", "a glowing RGB keyboard close-up"),
        " 🎮",
    ),
)

SYNONYMS: dict[str, tuple[str, ...]] = {
    "discover": ("Discover", "Explore", "Check out", "Meet", "Try"),
    "looking": ("Looking for a way to", "Need a way to", "Want to", "Trying to", "Ready to"),
    "thousands": ("Thousands of", "Hundreds of", "So many", "More and more"),
    "trust": ("trust", "love", "rely on", "count on"),
    "ever": ("ever ", ""),
    "nationwide": ("across the country", "nationwide", "all over the US", "in every state"),
    "our": ("our", "the new", "our latest"),
    "now": ("today", "now", "this week"),
    "best": ("best", "finest", "most reliable"),
    "can": ("can", "will"),
    "get": ("Try", "Get", "Pick up", "Grab"),
    "simple": ("It is that simple.", "No hassle.", "Easy as that.", "It only takes a minute."),
}
# benefits are verb phrases ("beat the next blizzard"); details are post-modifiers ("with free installation")
MAIN_TEMPLATES = (
    "{discover} {our} {product} and {benefit}, {detail}.",
    "{looking} {benefit}? {get} {our} {product}, {detail}.",
    "Ready to {benefit}? Say hello to {our} {product}, {detail}.",
    "With {our} {product}, you {can} {benefit}, {detail}.",
    "{benefit_cap} with {our} {product}, {detail}.",
)
PROOF_TEMPLATES = (
    "{thousands} {customers} {nationwide} already {trust} us.",
    "Rated {rating} stars by {customers} {nationwide}.",
    "{customers_cap} say it is the {best} {product} they have {ever}tried.",
)
SHORT_BODIES = ("Shop now!", "Big sale", "Learn more", "Tickets on sale", "Apply today", "New arrivals", "Sale", "Book now")
EMPTY_BODY_SHAPES = ("empty_string", "missing", "empty_strings", "empty_list")
STRAY_LINES = ("<html><head><title>502 Bad Gateway</title></head></html>",
               "Traceback (most recent call last): requests.exceptions.ReadTimeout: "
               "HTTPSConnectionPool(host='graph.facebook.com', port=443)")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def pct(value: float) -> str:
    """A share as Meta writes it: a string, shortest decimal; under 0.001 in Java-style scientific
    notation (``"2.6E-5"``)."""
    if value <= 0.0:
        return "0.0"
    if value < 1e-3:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}E{int(exponent)}"
    return repr(round(float(value), 6))


# ------------------------------------------------------------------------------------------ census


@dataclass
class Census:
    regions: list[str]  # Meta region names: 50 states + DC, then Puerto Rico if present
    state_names: list[str]  # census names, same order
    pop_share: np.ndarray  # share of the US (incl. PR) population, same order
    cells: list[tuple[str, str]]  # (gender, age) for the 12 adult cells
    cell_share: np.ndarray
    municipios: tuple[str, ...]


def _read_census(census_dir: Path) -> Census:
    census_dir = Path(census_dir)
    state_csv = census_dir / "census2020_state_population.csv"
    sex_age_csv = census_dir / "census2020_sex_age.csv"
    for path in (state_csv, sex_age_csv):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: census table missing (expected in census_dir={census_dir})")
    with open(state_csv, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    regions = [r["meta_region_name"].strip() for r in rows]
    names = [r["state"].strip() for r in rows]
    pop = np.array([float(r["population_2020"]) for r in rows])
    with open(sex_age_csv, encoding="utf-8-sig", newline="") as fh:
        cells_rows = [r for r in csv.DictReader(fh) if r["age"].strip() in AGES]
    cells = [(r["sex"].strip().lower(), r["age"].strip()) for r in cells_rows]
    cell_pop = np.array([float(r["population_2020"]) for r in cells_rows])
    municipios: tuple[str, ...] = PR_MUNICIPIOS_FALLBACK
    mun_csv = census_dir / "pr_municipios.csv"
    if mun_csv.is_file():
        with open(mun_csv, encoding="utf-8-sig", newline="") as fh:
            listed = tuple(r["municipio"].strip() for r in csv.DictReader(fh) if r.get("municipio", "").strip())
        listed = tuple(m for m in listed if m != "Florida")
        if listed:
            # the large municipios first (they are the ones that show up in a 2019 dump)
            big = [m for m in PR_MUNICIPIOS_FALLBACK if m in listed]
            municipios = tuple(big + [m for m in listed if m not in big])
    return Census(regions, names, pop / pop.sum(), cells, cell_pop / cell_pop.sum(), municipios)


# ------------------------------------------------------------------------------------------ the ads

# Planted quirks, in the truth table's column order; an ad holds them as bits of one int.
FLAG_NAMES = ("empty_body", "short_body", "multi_frame", "has_url", "non_usd", "missing_impr_upper", "municipios",
              "teen_cells", "unknown_gender", "unknown_region", "territories", "puerto_rico", "no_region",
              "missing_dates", "foreign")
_FLAG_BIT = {name: 1 << i for i, name in enumerate(FLAG_NAMES)}
MERGE_ORDER = (CURRENT, LEGACY, SINGLE, PAGE, WIDE, EXPORT)  # the order ads.dumps lists the demo's dumps in
EN, EN_ES = ["en"], ["en", "es"]  # every ad shares one of these (records only read them)


class _Column:
    """One field of every ad in a typed array; ``codes`` maps a field of few values (strings, tuples) to
    small integers."""

    __slots__ = ("values", "codes", "index")

    def __init__(self, typecode: str, codes: tuple | None = None):
        self.values = array(typecode)
        self.codes = list(codes) if codes is not None else None
        self.index = {v: k for k, v in enumerate(self.codes)} if codes is not None else None

    def encode(self, value: Any) -> int:
        if self.codes is None:
            return value
        if value not in self.index:
            self.index[value] = len(self.codes)
            self.codes.append(value)
        return self.index[value]

    def decode(self, raw: int) -> Any:
        return raw if self.codes is None else self.codes[raw]


def _field(name: str) -> property:
    def get(self: Ad) -> Any:
        column = self._ads.columns[name]
        return column.decode(column.values[self.i])

    def get_plain(self: Ad) -> Any:  # most reads: no decoding
        return self._ads.columns[name].values[self.i]

    def set_(self: Ad, value: Any) -> None:
        column = self._ads.columns[name]
        column.values[self.i] = column.encode(value)

    return property(get if AD_COLUMNS[name][1] is not None else get_plain, set_)


def _date_field(name: str) -> property:
    def get(self: Ad) -> dt.date | None:
        day = self._ads.columns[name].values[self.i]
        return dt.date.fromordinal(day) if day else None

    def set_(self: Ad, value: dt.date | None) -> None:
        self._ads.columns[name].values[self.i] = value.toordinal() if value else 0

    return property(get, set_)


# An ad's fields: name -> (array type code, the values of a field of few values, stored as their index).
# Dates are ordinals (0: none), the spill keys byte offsets and lengths, "rerun" the source's row + 1.
AD_COLUMNS: dict[str, tuple[str, tuple | None]] = {
    "ad_id": ("q", None), "page": ("i", None), "family_id": ("i", None), "variant": ("b", None),
    "body_key": ("q", None), "own_key": ("q", None), "payload_key": ("q", None),
    "start": ("i", None), "created": ("i", None), "stop": ("i", None), "hour": ("b", None),
    "flag_bits": ("i", None), "rerun": ("i", None), "n_frames": ("h", None),
    "seen_bits": ("b", None), "n_records": ("h", None), "n_malformed": ("h", None),
    "has_regions": ("b", (False, True)), "prefixed_region": ("b", (False, True)), "es": ("b", None),
    "shift": ("b", ("none", "state", "age", "gender")), "shift_value": ("h", (None,)),
    "body_shape": ("b", ("list",) + EMPTY_BODY_SHAPES), "currency": ("b", ("USD", "EUR", "GBP", "CAD", "AUD")),
    "primary": ("b", DUMP_FILES), "spend": ("b", SPEND_BUCKETS), "impressions": ("b", IMPRESSION_BUCKETS),
    "audience": ("b", AUDIENCE_BUCKETS),
}


class _Ads:
    """Every unique ad's fields, one typed array each (about 80 bytes an ad, where a Python object with
    its dates, id and keys took some 600), and one small view (an ``Ad``, about 90 bytes) per ad."""

    def __init__(self, pages: list[dict]):
        self.pages = pages
        self.columns = {name: _Column(typecode, codes) for name, (typecode, codes) in AD_COLUMNS.items()}
        self.views: list[Ad] = []

    def __len__(self) -> int:
        return len(self.views)

    def array(self, name: str) -> np.ndarray:
        """A column as NumPy, without a copy (the table must not grow while it is held)."""
        values = self.columns[name].values
        return np.frombuffer(values, dtype=np.dtype(values.typecode))

    def add(self, ad_id: str, page: int, family_id: int, variant: int, body_key: int, start: dt.date, shift: str) -> Ad:
        """A new ad, every other field at its default."""
        values = {"ad_id": int(ad_id), "page": page, "family_id": family_id, "variant": variant, "body_key": body_key, "own_key": body_key,
                  "start": start.toordinal(), "payload_key": -1, "shift": self.columns["shift"].encode(shift)}
        for name, column in self.columns.items():
            column.values.append(values.get(name, 0))
        view = Ad(self, len(self.views))
        self.views.append(view)
        return view


class Ad:
    """One ad: a view of row ``i`` of an ``_Ads`` table (one view per ad, so ``is`` tells ads apart). Its
    texts and delivery distributions, most of its bytes, wait in the spill store (``body_key``,
    ``payload_key``) until a dump writes the ad."""

    __slots__ = ("_ads", "i")

    def __init__(self, ads: _Ads, i: int):
        self._ads, self.i = ads, i

    page = _field("page")
    family_id = _field("family_id")
    variant = _field("variant")
    body_key = _field("body_key")  # the creative text, in the spill store
    own_key = _field("own_key")  # the creative drawn for the ad: body_key but for reruns
    payload_key = _field("payload_key")  # bodies, link texts and distributions, in the spill store
    start = _date_field("start")
    created = _date_field("created")
    stop = _date_field("stop")
    hour = _field("hour")
    shift = _field("shift")  # the planted audience shift: none, state, age, gender
    shift_value = _field("shift_value")
    body_shape = _field("body_shape")  # how an empty body is written (see EMPTY_BODY_SHAPES)
    currency = _field("currency")
    spend = _field("spend")  # (lower, upper) buckets
    impressions = _field("impressions")
    audience = _field("audience")
    primary = _field("primary")  # the dump the ad comes from
    flag_bits = _field("flag_bits")
    n_frames = _field("n_frames")
    seen_bits = _field("seen_bits")  # dumps holding a record of the ad, as bits over MERGE_ORDER
    n_records = _field("n_records")  # intact records
    n_malformed = _field("n_malformed")  # truncated records
    has_regions = _field("has_regions")
    prefixed_region = _field("prefixed_region")  # delivers to a region a wide export names as "region: <name>"

    @property
    def ad_id(self) -> str:
        return str(self._ads.columns["ad_id"].values[self.i])

    @property
    def topic(self) -> Topic:
        return self._ads.pages[self.page]["topic"]

    @property
    def platforms(self) -> list[str]:
        return self._ads.pages[self.page]["platforms"]

    @property
    def languages(self) -> list[str]:
        return EN_ES if self._ads.columns["es"].values[self.i] else EN

    @languages.setter
    def languages(self, value: list[str]) -> None:
        self._ads.columns["es"].values[self.i] = value == EN_ES

    @property
    def rerun_of(self) -> Ad | None:
        """The ad whose creative this one reruns (same page, same family), or None."""
        k = self._ads.columns["rerun"].values[self.i]
        return self._ads.views[k - 1] if k else None

    @rerun_of.setter
    def rerun_of(self, source: Ad | None) -> None:
        self._ads.columns["rerun"].values[self.i] = source.i + 1 if source is not None else 0

    def has(self, flag: str) -> bool:
        return self._ads.columns["flag_bits"].values[self.i] & _FLAG_BIT[flag] != 0

    def set_flag(self, flag: str, value: bool = True) -> None:
        bits = self._ads.columns["flag_bits"].values
        bits[self.i] = bits[self.i] | _FLAG_BIT[flag] if value else bits[self.i] & ~_FLAG_BIT[flag]

    def targets(self) -> tuple[list[str], str | None, str | None]:
        """The planted audience: (top states, strongest first; top age bracket; top gender or None)."""
        topic = self.topic
        if self.has("foreign"):
            return [], topic.top_age, topic.top_gender
        top_states, top_age, top_gender = [s for s, _ in topic.states], topic.top_age, topic.top_gender
        shift, value = self.shift, self.shift_value
        if shift == "state" and value:
            top_states = [value] + top_states
        elif shift == "age" and value:
            top_age = value
        elif shift == "gender" and value:
            top_gender = value
        return top_states, top_age, top_gender


class _Delivery(NamedTuple):
    """What an ad's records show beyond the compact Ad: read back from the spill store per record."""

    bodies: list[str]
    link_title: str | None
    link_caption: str | None
    link_description: str | None
    demographics: list[dict]
    regions: list[dict]
    own_bodies: list[str] | None = None  # reruns: the texts the ad would show without reruns
    own_link_title: str | None = None

    def own(self) -> _Delivery:
        """The delivery as it would be without reruns."""
        if self.own_bodies is None:
            return self
        return self._replace(bodies=self.own_bodies, link_title=self.own_link_title)


class _Spill:
    """An append-only scratch file of values (pickled: only this process reads them), read back by key.
    The ads are drawn in one order and written in others (each dump is shuffled), so their texts and
    distributions wait here, on disk, rather than in memory; the file has no name and goes when closed."""

    _LENGTH_BITS = 24

    def __init__(self, directory: Path):
        self._fh = tempfile.TemporaryFile(dir=directory)
        self._end = 0

    def __enter__(self) -> _Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def put(self, value: Any) -> int:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) >= 1 << self._LENGTH_BITS:
            raise ValueError(f"spill value of {len(data)} bytes is too large")
        self._fh.seek(self._end)
        self._fh.write(data)
        key = self._end << self._LENGTH_BITS | len(data)
        self._end += len(data)
        return key

    def get(self, key: int) -> Any:
        self._fh.seek(key >> self._LENGTH_BITS)
        return pickle.loads(self._fh.read(key & ((1 << self._LENGTH_BITS) - 1)))

    def delivery(self, a: Ad) -> _Delivery:
        return _Delivery(*self.get(a.payload_key))


class _Gen:
    def __init__(self, seed: int, census: Census):
        self.np = np.random.default_rng(np.random.SeedSequence([int(seed), 20240630]))
        self.py = random.Random(int(seed) * 7919 + 17)
        self.census = census
        self.used_ids: set[int] = set()
        self.state_index = {name: i for i, name in enumerate(census.state_names)}
        self.pr_index = self.state_index.get("Puerto Rico")
        self.bare_regions = WIDE_BARE_REGIONS | frozenset(census.regions)  # names a wide export writes without a prefix

    def pick(self, seq):
        return seq[self.py.randrange(len(seq))]

    def new_id(self, digits: int) -> str:
        while True:
            value = self.py.randrange(10 ** (digits - 1), 10**digits)
            if value not in self.used_ids:  # ints: the same test as on their decimal strings, in half the memory
                self.used_ids.add(value)
                return str(value)

    def token(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "EAAB" + "".join(self.py.choice(alphabet) for _ in range(self.py.randrange(36, 60)))

    # -------------------------------------------------------------- text

    def message(self, topic: Topic) -> dict:
        """One family's message: what it says; each variant says it differently."""
        return {
            "product": self.pick(topic.products),
            "benefit": self.pick(topic.benefits),
            "detail": self.pick(topic.details),
            "hook": self.pick(topic.hooks),
            "offer": self.pick(topic.offers),
            "cta": self.pick(topic.ctas),
            "rating": self.pick(("4.7", "4.8", "4.9")),
            "proof": self.py.randrange(len(PROOF_TEMPLATES)),
            "template": self.py.randrange(len(MAIN_TEMPLATES)),
            "syn": {k: self.py.randrange(len(v)) for k, v in SYNONYMS.items()},
            "with_hook": self.py.random() < 0.35,
            "with_proof": self.py.random() < 0.5,
            "with_offer": self.py.random() < 0.4,
            "with_simple": self.py.random() < 0.15,
            "hook_first": True,
            "cta_first": False,
            "emoji": bool(topic.emoji) and self.py.random() < 0.5,
        }

    def rewrite(self, msg: dict, topic: Topic, heavy: bool) -> dict:
        """A variant of a message: light = synonym swaps and maybe another call to action;
        heavy = another sentence frame, clauses added or dropped, reordered, other wording."""
        out = dict(msg, syn=dict(msg["syn"]))
        for key, options in SYNONYMS.items():
            if self.py.random() < (0.5 if heavy else 0.35):
                out["syn"][key] = self.py.randrange(len(options))
        if self.py.random() < (0.5 if heavy else 0.25):
            out["cta"] = self.pick(topic.ctas)
        if heavy:
            if self.py.random() < 0.75:
                out["template"] = self.pick([t for t in range(len(MAIN_TEMPLATES)) if t != msg["template"]])
            toggle = self.pick(("with_hook", "with_proof", "with_offer", "with_simple"))
            out[toggle] = not out[toggle]
            if self.py.random() < 0.15:
                out["detail"] = self.pick(topic.details)
            if self.py.random() < 0.2:
                out["proof"] = self.py.randrange(len(PROOF_TEMPLATES))
            out["hook_first"] = self.py.random() < 0.7
            out["cta_first"] = self.py.random() < 0.15
        return out

    def render(self, msg: dict, topic: Topic) -> str:
        syn = {k: SYNONYMS[k][i] for k, i in msg["syn"].items()}
        slots = dict(
            syn, product=msg["product"], benefit=msg["benefit"], detail=msg["detail"], rating=msg["rating"],
            customers=topic.customers, customers_cap=_cap(topic.customers), our_cap=_cap(syn["our"]),
            benefit_cap=_cap(msg["benefit"]),
        )
        main = MAIN_TEMPLATES[msg["template"]].format(**slots)
        sentences = [main]
        if msg["with_proof"]:
            sentences.append(PROOF_TEMPLATES[msg["proof"]].format(**slots))
        if msg["with_offer"]:
            sentences.append(msg["offer"])
        if msg["with_simple"]:
            sentences.append(syn["simple"])
        cta = msg["cta"].replace("today", syn["now"]) if "today" in msg["cta"] else msg["cta"]
        if msg["cta_first"]:
            sentences.insert(0, cta)
        else:
            sentences.append(cta)
        if msg["with_hook"]:
            if msg["hook_first"]:
                sentences.insert(0, msg["hook"])
            else:
                sentences.insert(len(sentences) - 1, msg["hook"])
        text = " ".join(sentences)
        if msg["emoji"]:
            text += topic.emoji
        return text

    # -------------------------------------------------------------- audiences

    def demographics(self, topic: Topic, age_mult: dict, male: float, teen: bool, unknown: bool) -> list[dict]:
        cells = self.census.cells
        weights = self.census.cell_share * np.array(
            [age_mult.get(age, 1.0) * (male if sex == "male" else 1.0) for sex, age in cells]
        )
        weights = weights / weights.sum() * self.np.gamma(30.0, 1.0 / 30.0, len(weights))
        weights = weights / weights.sum()
        entries = {(age, sex): float(w) for (sex, age), w in zip(cells, weights)}
        extra = 0.0
        if teen:
            teen_total = topic.teen * float(self.np.uniform(0.3, 1.7)) + 2e-5
            split = float(self.np.uniform(0.2, 0.8))
            entries[(TEEN, "female")] = teen_total * split
            entries[(TEEN, "male")] = teen_total * (1 - split)
            extra += teen_total
        if unknown:
            ages = sorted(self.py.sample(range(len(AGES)), k=self.py.randrange(2, 7)))
            for i in ages:
                share = float(self.np.uniform(1e-5, 0.004))
                entries[(AGES[i], "unknown")] = share
                extra += share
        scale = 1.0 / (1.0 + extra)
        order = {g: i for i, g in enumerate(("female", "male", "unknown"))}
        keys = sorted(entries, key=lambda k: ((TEEN,) + AGES).index(k[0]) * 3 + order[k[1]])
        return [{"percentage": pct(entries[k] * scale), "age": k[0], "gender": k[1]} for k in keys]

    def regions(self, state_mult: np.ndarray, include_pr: bool, unknown: bool, territories: bool, municipios: bool) -> list[dict]:
        weights = self.census.pop_share * state_mult * self.np.gamma(20.0, 1.0 / 20.0, len(state_mult))
        if self.pr_index is not None and not include_pr:
            weights[self.pr_index] = 0.0
        weights = weights / weights.sum()
        keep = weights >= REPORTING_THRESHOLD
        shares = {self.census.regions[i]: float(weights[i]) for i in np.flatnonzero(keep)}
        if unknown:
            shares["Unknown"] = float(self.np.uniform(0.0005, 0.006))
        if territories:
            for name in self.py.sample(TERRITORIES, k=self.py.randrange(1, len(TERRITORIES) + 1)):
                shares[name] = float(self.np.uniform(5e-6, 4e-4))
        if municipios and "Puerto Rico" in shares:
            total = shares.pop("Puerto Rico")
            names = list(self.census.municipios[: self.py.randrange(4, 9)])
            parts = self.np.dirichlet(np.linspace(3.0, 0.6, len(names)))
            for name, part in zip(names, parts):
                shares[name] = total * float(part)
        norm = sum(shares.values())
        return [{"percentage": pct(shares[k] / norm), "region": k} for k in sorted(shares)]

    def foreign_regions(self) -> list[dict]:
        weights = np.array(AU_WEIGHTS) * self.np.gamma(15.0, 1.0 / 15.0, len(AU_WEIGHTS))
        weights = weights / weights.sum()
        return [{"percentage": pct(float(w)), "region": r} for r, w in sorted(zip(AU_REGIONS, weights))]


def _bucket(buckets, value: float) -> tuple:
    for low, high in buckets:
        if high is None or value <= high:
            return low, high
    return buckets[-1]


def _bounds(rng: tuple) -> dict:
    low, high = rng
    out = {"lower_bound": str(low)}
    if high is not None:
        out["upper_bound"] = str(high)
    return out


def _page_sizes(gen: _Gen, n_ads: int, n_pages: int) -> list[int]:
    """Zipf-like page sizes with jitter: one page of >= 300 ads (at 3,000 ads), many of 1-5."""
    n_pages = max(1, min(n_pages, n_ads))
    ranks = np.arange(1, n_pages + 1, dtype=float)
    weights = ranks**-1.1 * gen.np.lognormal(0.0, 0.25, n_pages)
    weights = np.sort(weights)[::-1]
    raw = weights / weights.sum() * n_ads
    sizes = np.maximum(1, np.floor(raw)).astype(int)
    sizes[0] = max(int(sizes[0]), min(300, n_ads // 3))
    excess = int(sizes.sum()) - n_ads
    while excess > 0:  # take from the largest pages (never below 1)
        i = int(np.argmax(sizes))
        take = min(excess, int(sizes[i]) - 1 - (300 if i == 0 and n_ads >= 900 else 0))
        take = max(take, 1) if sizes[i] > 1 else 0
        if take == 0:
            break
        sizes[i] -= take
        excess -= take
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    k = 0
    while int(sizes.sum()) < n_ads:
        sizes[order[k % n_pages]] += 1
        k += 1
    return sorted((int(s) for s in sizes), reverse=True)

# ------------------------------------------------------------------------------------------ main


def write_demo_ads(
    out_dir: Path,
    seed: int,
    n_ads: int = 3000,
    n_pages: int = 150,
    census_dir: Path | None = None,
    repeat_body_share: float = REPEAT_BODY_SHARE,
) -> dict:
    """Write the demo dumps (see the module docstring) into ``out_dir``; returns a summary of counts.

    ``repeat_body_share``: the share of ads that rerun an earlier ad's creative (see ``_plant_reruns``).
    Memory stays roughly flat in ``n_ads``: ads are kept compact, their texts and distributions wait in
    a scratch file in ``out_dir``, and every dump is written record by record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    census = _read_census(Path(census_dir) if census_dir is not None else DEFAULT_CENSUS_DIR)
    gen = _Gen(seed, census)
    n_ads, n_pages, share = int(n_ads), int(n_pages), float(repeat_body_share)
    if n_ads < 1 or n_pages < 1:
        raise ValueError(f"n_ads={n_ads} and n_pages={n_pages} must both be at least 1")
    if not 0.0 <= share < 1.0:
        raise ValueError(f"repeat_body_share={share} must be in [0, 1)")

    sizes = _page_sizes(gen, n_ads, n_pages)
    topic_order = list(TOPICS)
    gen.py.shuffle(topic_order)
    tokens = {name: gen.token() for name in DUMP_FILES}
    tokens["paging"] = tokens[PAGE]
    tokens[SINGLE], tokens[WIDE] = tokens[PAGE], tokens[EXPORT]  # no draw: the random stream stays as it was
    pages = _make_pages(gen, sizes, topic_order)
    with _Spill(out_dir) as store:
        table, n_families = _make_ads(gen, census, pages, sizes, store)
        # a stream of its own: the reruns move no draw of the main streams
        n_reruns = _plant_reruns(table.views, share, np.random.default_rng(int(seed) + RERUN_SEED_OFFSET))
        order = list(range(len(table)))
        gen.py.shuffle(order)
        ads = [table.views[i] for i in order]
        del order
        by_primary = _assign_dumps(gen, ads, pages)
        _plant_quirks(gen, ads, by_primary, pages)
        for a in ads:
            _fill(gen, census, pages[a.page], a, store)
        _first_runs(ads)
        _top_impressions_in_current(gen, by_primary[CURRENT])
        copies, extra_copies = _copies(gen, by_primary, len(ads))
        summary = _Writer(out_dir, seed, gen, census, pages, sizes, tokens, table, ads, by_primary, copies, extra_copies,
                          store).write_all()
    summary["unique_ads"] = len(ads)
    summary["pages"] = len(sizes)
    summary["largest_page"] = max(sizes)
    summary["families"] = n_families
    summary["duplicated_ads"] = sum(1 for a in ads if a.n_records > 1)
    summary["unrecoverable_malformed_ads"] = sum(1 for a in ads if a.n_records == 0)
    summary["reruns"] = n_reruns
    return summary


# ------------------------------------------------------------------------------------------ pages and ads


def _make_pages(gen: _Gen, sizes: list[int], topic_order: list[Topic]) -> list[dict]:
    """Each page's topic, id, name, byline, domain, platforms and money level; a few unnamed pages, one
    Australian advertiser."""
    n_pages = len(sizes)
    mid = [p for p, s in enumerate(sizes) if 8 <= s <= 60] or list(range(n_pages))
    unnamed_pages = set(gen.py.sample(mid, k=min(3, len(mid))))
    small = [p for p, s in enumerate(sizes) if 6 <= s <= 20 and p not in unnamed_pages] or [n_pages - 1]
    foreign_page = gen.pick(small) if n_pages > 1 else -1
    used_names: set[str] = set()
    pages = []
    for p, size in enumerate(sizes):
        topic = topic_order[p % len(topic_order)]
        for _ in range(50):
            name = f"{gen.pick(topic.brands)} {gen.pick(topic.kinds)}"
            if name not in used_names:
                break
            name = f"{name} of {gen.pick(('Texas', 'Ohio', 'Georgia', 'Oregon', 'Florida', 'Colorado', 'Maine', 'Iowa'))}"
            if name not in used_names:
                break
        else:
            name = f"{name} {p}"
        if p == foreign_page:
            name = f"{gen.pick(topic.brands)} Australia"
        used_names.add(name)
        pages.append({
            "page_id": gen.new_id(gen.py.randrange(9, 16)),
            "name": name,
            "unnamed": p in unnamed_pages,
            "byline": f"{name} {gen.pick(('LLC', 'Inc.', 'Holdings', 'Corp'))}" if gen.py.random() < 0.8 else gen.pick(
                ("Ad Partners Media", "Brightline Marketing Group", "Northstar Digital", "Summit Agency")),
            "topic": topic,
            "foreign": p == foreign_page,
            "domain": re.sub(r"[^a-z0-9]", "", name.lower())[:18] + gen.pick((".com", ".com", ".co", ".net")),
            "platforms": gen.pick((["facebook", "instagram"], ["facebook"], ["facebook", "instagram", "messenger"],
                                   ["facebook", "instagram", "audience_network", "messenger"], ["instagram"])),
            "cpm": topic.cpm * float(gen.np.lognormal(0.0, 0.25)),
            "spend_level": float(gen.np.normal(5.6, 0.9)) + (0.8 if size > 100 else 0.0),
        })
    return pages


def _make_ads(gen: _Gen, census: Census, pages: list[dict], sizes: list[int], store: _Spill) -> tuple[_Ads, int]:
    """Every page's ads, as families of near-paraphrases, page by page; returns (the ads, in that order,
    number of families)."""
    table = _Ads(pages)
    family_id = 0
    for p, size in enumerate(sizes):
        remaining = size
        while remaining > 0:
            n_var = min(remaining, gen.py.randrange(2, 9))
            if remaining - n_var == 1:  # never leave a page's last ad alone in a family (pages of 1 excepted)
                n_var = n_var + 1 if n_var < 8 else n_var - 1
            remaining -= n_var
            _make_family(gen, census, table, p, family_id, n_var, store)
            family_id += 1
    gen.used_ids.clear()  # every id is drawn
    return table, family_id


def _make_family(gen: _Gen, census: Census, table: _Ads, p: int, family_id: int, n_var: int, store: _Spill) -> None:
    """``n_var`` rewrites of one message, variant 0 first; some variants shift the audience."""
    topic = table.pages[p]["topic"]
    msg = gen.message(topic)
    family_day = FIRST_DAY + dt.timedelta(days=gen.py.randrange(0, (LAST_DAY - FIRST_DAY).days - 45))
    family_shift = gen.py.random() < 0.45
    texts: list[str] = []
    for v in range(n_var):
        vmsg = msg if v == 0 else gen.rewrite(msg, topic, heavy=gen.py.random() < 0.4)
        text = gen.render(vmsg, topic)
        tries = 0
        while text in texts and tries < 8:
            vmsg = gen.rewrite(msg, topic, heavy=True)
            text = gen.render(vmsg, topic)
            tries += 1
        if text in texts:
            text = f"{text} Limited time only."
        texts.append(text)
        shift = "none"
        if family_shift and v > 0 and gen.py.random() < 0.6:
            shift = gen.pick(("state", "state", "age", "gender"))
        ad_id = gen.new_id(16 if gen.py.random() < 0.85 else 15)
        start = family_day + dt.timedelta(days=gen.py.randrange(0, 45))
        ad = table.add(ad_id, p, family_id, v, store.put(text), start, shift)
        ad.hour = gen.py.randrange(24)
        if shift == "state":
            taken = {s for s, _ in topic.states} | set(topic.anti) | {"Puerto Rico"}
            ad.shift_value = gen.pick([s for s in census.state_names if s not in taken])
        elif shift == "age":
            ad.shift_value = gen.pick([a for a in AGES if a != topic.top_age])
        elif shift == "gender":
            ad.shift_value = "female" if topic.top_gender == "male" else "male"


def _plant_reruns(ads: list[Ad], share: float, rng: np.random.Generator) -> int:
    """Make about ``share`` of the ads reruns: an advertiser running one creative again, with its own
    delivery (ad id, dates, spend, distributions are drawn as for any ad). ``ads`` are in creation order
    (families contiguous, variant 0 first); returns the number of reruns.

    A rerun takes the creative of an earlier variant of its own family, so the creative stays on its
    page (one topic, hence one planted lean) and in its family (the paraphrase truth holds). Only
    variants without a planted audience shift rerun, and only the creative of another such variant:
    one creative, one planted audience. That caps the share at the unshifted later variants' (~0.55
    of the ads); asking for more gives that many."""
    eligible = [i for i, a in enumerate(ads) if a.variant > 0 and a.shift == "none"]
    k = min(len(eligible), round(share * len(ads)))
    if k == 0:
        return 0
    for j in np.sort(rng.choice(len(eligible), size=k, replace=False)):
        i = eligible[int(j)]
        a = ads[i]
        sources = [b for b in ads[i - a.variant:i] if b.shift == "none"]
        source = sources[int(rng.integers(len(sources)))]
        a.rerun_of = source.rerun_of or source  # in creation order, so a source's own source is already set
        a.body_key = a.rerun_of.body_key
    return k


def _first_runs(ads: list[Ad]) -> None:
    """Point every rerun at the first ad to run its creative (earliest start, then lowest id), once the
    dates are final; that first ad is no rerun."""
    runs: dict[int, list[Ad]] = {}
    for a in ads:
        if a.rerun_of is not None:
            runs.setdefault(a.rerun_of.i, [a.rerun_of]).append(a)
    for members in runs.values():
        first = min(members, key=lambda b: (b.start, int(b.ad_id)))
        for b in members:
            b.rerun_of = None if b is first else first


def _assign_dumps(gen: _Gen, ads: list[Ad], pages: list[dict]) -> dict[str, list[Ad]]:
    """Which dump each ad comes from (the old collector saw only early ads); the ads of each dump."""
    for ad in ads:
        r = gen.py.random()
        if ad.start < LEGACY_BEFORE and r < 0.6:
            ad.primary = LEGACY
        else:
            r2 = gen.py.random()
            ad.primary = CURRENT if r2 < 0.55 / 0.8 else PAGE if r2 < 0.60 / 0.8 else EXPORT
    foreign_ads = [a for a in ads if pages[a.page]["foreign"]]
    for a in foreign_ads[:3]:  # the Australian advertiser shows up in the current dump
        a.primary = CURRENT
    return {d: [a for a in ads if a.primary == d] for d in DUMP_FILES}


def _choose(gen: _Gen, pool: list[Ad], k: int) -> list[Ad]:
    k = max(0, min(k, len(pool)))
    return gen.py.sample(pool, k) if k else []


def _free(a: Ad, pages: list[dict], *flags: str) -> bool:
    return not any(a.has(k) for k in flags) and not pages[a.page]["foreign"]


def _plant_quirks(gen: _Gen, ads: list[Ad], by_primary: dict[str, list[Ad]], pages: list[dict]) -> None:
    """The collector and content quirks, each on a share of the ads and a minimum in each dump."""

    def plant(flag: str, rate: float, mins: dict, eligible) -> None:
        """Set ``flag`` on about ``rate`` of the eligible ads, at least ``mins[dump]`` in each dump."""
        for dump in DUMP_FILES:
            pool = [a for a in by_primary[dump] if eligible(a)]
            chosen = [a for a in pool if gen.py.random() < rate]
            need = mins.get(dump, 0) - len(chosen)
            if need > 0:
                taken = {a.i for a in chosen}
                chosen += _choose(gen, [a for a in pool if a.i not in taken], need)
            for a in chosen:
                a.set_flag(flag)

    def free(a: Ad, *flags: str) -> bool:
        return _free(a, pages, *flags)

    # 2019 legacy ads with Puerto Rico split into municipios
    plant("municipios", 0.015, {LEGACY: 6}, lambda a: a.primary == LEGACY)
    for a in ads:
        if a.has("municipios"):
            a.start = dt.date(2019, 10, 1) + dt.timedelta(days=gen.py.randrange(0, 80))
    plant("empty_body", 0.012, {CURRENT: 8, LEGACY: 3, PAGE: 2, EXPORT: 3}, lambda a: free(a))
    plant("short_body", 0.012, {CURRENT: 8, LEGACY: 3, PAGE: 2, EXPORT: 3}, lambda a: free(a, "empty_body"))
    plant("multi_frame", 0.14, {CURRENT: 20, PAGE: 3, EXPORT: 5},
          lambda a: a.primary != LEGACY and free(a, "empty_body", "short_body"))
    plant("has_url", 0.10, {CURRENT: 15, LEGACY: 4, PAGE: 2, EXPORT: 4}, lambda a: free(a, "empty_body", "short_body"))
    plant("non_usd", 0.012, {CURRENT: 6, LEGACY: 2, PAGE: 1, EXPORT: 2}, lambda a: free(a))
    plant("no_region", 0.004, {CURRENT: 3, EXPORT: 1}, lambda a: free(a, "municipios", "empty_body", "short_body"))
    plant("missing_dates", 0.0, {CURRENT: 2}, lambda a: free(a, "empty_body", "short_body", "no_region"))
    plant("teen_cells", 0.35, {d: 3 for d in DUMP_FILES}, lambda a: not pages[a.page]["foreign"])
    plant("unknown_gender", 0.5, {d: 3 for d in DUMP_FILES}, lambda a: not pages[a.page]["foreign"])
    plant("unknown_region", 0.25, {d: 3 for d in DUMP_FILES}, lambda a: free(a, "no_region"))
    plant("territories", 0.08, {d: 3 for d in DUMP_FILES}, lambda a: free(a, "no_region"))
    plant("puerto_rico", 0.55, {d: 3 for d in DUMP_FILES}, lambda a: free(a, "no_region"))
    for a in ads:
        if a.has("municipios"):
            a.set_flag("puerto_rico")
    for dump in DUMP_FILES:  # every shape of empty body in every dump
        for i, a in enumerate(a for a in by_primary[dump] if a.has("empty_body")):
            a.body_shape = EMPTY_BODY_SHAPES[i % len(EMPTY_BODY_SHAPES)]


# ------------------------------------------------------------------------------------------ filling an ad in


def _fill(gen: _Gen, census: Census, page: dict, a: Ad, store: _Spill) -> None:
    """Draw an ad's dates, bodies, money, links and audience; its texts and distributions go to the
    spill store, the rest stays on the Ad."""
    topic = a.topic
    if a.primary == LEGACY and not a.has("municipios"):
        a.start = min(a.start, LEGACY_BEFORE - dt.timedelta(days=1))
    a.created = a.start - dt.timedelta(days=gen.py.choice((0, 0, 0, 1, 1, 2, 3, 7)))
    # no stop time: still running (most ads of the last two months, a few older ones)
    running = ((LAST_DAY - a.start).days < 60 and gen.py.random() < 0.6) or gen.py.random() < 0.03
    a.stop = None if running else a.start + dt.timedelta(days=gen.py.randrange(1, 90))
    template = _bodies(gen, a, page)
    if a.has("non_usd"):
        a.currency = gen.pick(("EUR", "GBP", "CAD", "EUR"))
    if page["foreign"]:
        a.currency = "AUD"
    # money: spend bucket from a lognormal draw; impressions from spend / CPM, bucketed
    spend_value = float(gen.np.lognormal(page["spend_level"], 1.3))
    a.spend = _bucket(SPEND_BUCKETS, spend_value)
    a.impressions = _bucket(IMPRESSION_BUCKETS, spend_value / page["cpm"] * 1000.0 * float(gen.np.lognormal(0, 0.3)))
    a.audience = _bucket(AUDIENCE_BUCKETS, max(1000.0, spend_value / page["cpm"] * 1000.0 * float(gen.np.lognormal(0.5, 0.8))))
    title_choice, caption, description = _links(gen, topic, page)
    a.languages = EN if gen.py.random() < 0.93 else EN_ES
    demographics, regions = _audience(gen, census, page, a)
    a.set_flag("missing_impr_upper", a.impressions[1] is None)
    a.n_frames, a.has_regions = len(template), bool(regions)
    a.prefixed_region = any(e["region"] not in gen.bare_regions for e in regions)
    payload = _texts(template, title_choice, store.get(a.body_key), topic, page) + [caption, description, demographics, regions]
    if a.own_key != a.body_key:  # a rerun: also the texts of its own creative (see _Writer.truncated)
        payload += _texts(template, title_choice, store.get(a.own_key), topic, page)
    a.payload_key = store.put(payload)


def _bodies(gen: _Gen, a: Ad, page: dict) -> list[str]:
    """The ad's creative bodies: empty, a few words, or its creative (with a URL, and carousel cards),
    with CREATIVE standing for the creative: no draw depends on its text."""
    if a.has("empty_body"):
        return []
    if a.has("short_body"):
        return [gen.pick(SHORT_BODIES)]
    body = CREATIVE
    if a.has("has_url"):
        url = gen.pick((f"https://www.{page['domain']}/offer?utm_source=facebook&utm_campaign=c{a.family_id}",
                        f"www.{page['domain']}", f"http://{page['domain']}/sale", f"https://{page['domain']}/"))
        body = gen.pick((f"{body} Learn more at {url}", f"{body} Visit {url}", f"{body}\n\n{url}"))
    if not a.has("multi_frame"):
        return [body]
    cards = []
    for _ in range(gen.py.randrange(1, 4)):
        m = gen.message(a.topic)
        m.update(with_hook=False, with_offer=False, with_simple=False, with_proof=gen.py.random() < 0.3, emoji=False)
        cards.append(gen.render(m, a.topic))
    if gen.py.random() < 0.4:  # some carousels repeat a card
        return [body, body] + cards if gen.py.random() < 0.5 else [body] + cards + [cards[0]]
    return [body] + cards


def _links(gen: _Gen, topic: Topic, page: dict) -> tuple[int | None, str | None, str | None]:
    """(which link title, link caption, link description), each present on a share of the ads; the title
    is one of four (see _link_title)."""
    title = caption = description = None
    if gen.py.random() < 0.8:
        title = gen.py.randrange(4)
    if gen.py.random() < 0.6:
        caption = page["domain"].upper() if gen.py.random() < 0.5 else page["domain"]
    if gen.py.random() < 0.5:
        description = gen.pick(topic.offers)
    return title, caption, description


def _link_title(choice: int | None, creative: str, topic: Topic, page: dict) -> str | None:
    """Link title ``choice``: the creative's first sentence, "<product> sale", the page name or "Shop <page>"."""
    if choice is None:
        return None
    if choice == 0:
        first = re.split(r"[.?!]", creative)[0]
        return _cap(first if len(first) <= 60 else first[:60].rsplit(" ", 1)[0].rstrip(","))
    return _cap((f"{_cap(topic.products[0])} sale", page["name"], f"Shop {page['name']}")[choice - 1])


def _texts(template: list[str], title_choice: int | None, creative: str, topic: Topic, page: dict) -> list:
    """[bodies, link title] of an ad showing ``creative``."""
    return [[body.replace(CREATIVE, creative) for body in template], _link_title(title_choice, creative, topic, page)]


def _audience(gen: _Gen, census: Census, page: dict, a: Ad) -> tuple[list[dict], list[dict]]:
    """(demographic distribution, region distribution): the topic's planted audience, shifted for a
    shifted variant, times noise."""
    topic = a.topic
    if page["foreign"]:
        regions = gen.foreign_regions()
        a.set_flag("foreign")
        return gen.demographics(topic, dict(topic.ages), topic.male, False, False), regions
    mult = np.ones(len(census.state_names))
    for s in topic.anti:
        if s in gen.state_index:
            mult[gen.state_index[s]] = 0.3
    for s, m in topic.states:
        if s in gen.state_index:
            mult[gen.state_index[s]] = m
    age_mult, male = dict(topic.ages), topic.male
    if a.shift == "state" and a.shift_value:
        mult[gen.state_index[a.shift_value]] = max(m for _, m in topic.states) * 1.6
    elif a.shift == "age" and a.shift_value:
        age_mult[a.shift_value] = max(age_mult.values()) * 2.0
    elif a.shift == "gender" and a.shift_value:
        male = 4.0 if a.shift_value == "male" else 0.25
    demographics = gen.demographics(topic, age_mult, male, a.has("teen_cells"), a.has("unknown_gender"))
    if a.has("no_region"):
        return demographics, []
    return demographics, gen.regions(mult, a.has("puerto_rico"), a.has("unknown_region"), a.has("territories"),
                                     a.has("municipios"))


def _top_impressions_in_current(gen: _Gen, current: list[Ad]) -> None:
    """Make sure the top impressions bucket (no upper_bound) occurs in the current dump."""
    top_cur = [a for a in current if a.has("missing_impr_upper")]
    for a in _choose(gen, [a for a in current if not a.has("missing_impr_upper")], 4 - len(top_cur)):
        a.spend, a.impressions = SPEND_BUCKETS[6], IMPRESSION_BUCKETS[-1]
        a.set_flag("missing_impr_upper")


def _copies(gen: _Gen, by_primary: dict[str, list[Ad]], n: int) -> tuple[dict[str, list[Ad]], list[tuple[str, Ad]]]:
    """Each dump's records in order: its ads plus copies within the dump and across dumps, shuffled;
    and the (dump, ad) extra copies."""
    copies: dict[str, list[Ad]] = {d: list(by_primary[d]) for d in DUMP_FILES}
    extra_copies: list[tuple[str, Ad]] = []
    for dump, k in ((CURRENT, max(3, round(0.015 * len(by_primary[CURRENT])))), (LEGACY, 4), (PAGE, 2), (EXPORT, 4)):
        for a in _choose(gen, by_primary[dump], k):
            extra_copies.append((dump, a))
    for src, dst, k in ((CURRENT, EXPORT, max(3, round(0.02 * n))), (CURRENT, PAGE, 4), (LEGACY, CURRENT, 4), (PAGE, EXPORT, 3)):
        pool = [a for a in by_primary[src] if not (dst == LEGACY and a.has("multi_frame"))]
        for a in _choose(gen, pool, k):
            extra_copies.append((dst, a))
    for dump, a in extra_copies:
        copies[dump].append(a)
    for dump in DUMP_FILES:  # copies land at random places in their dump
        gen.py.shuffle(copies[dump])
    return copies, extra_copies


# ------------------------------------------------------------------------------------------ writing the dumps


class _Layout:
    """A dump's lines: its records in order, with extra lines inserted at drawn positions, written without
    holding the records. ``insert`` does what ``list.insert`` would do on the list of every line."""

    def __init__(self, n_records: int):
        self.n_records = n_records
        self.extras: list[list] = []  # [position among all lines, line]

    def __len__(self) -> int:
        return self.n_records + len(self.extras)

    def insert(self, position: int, line: str) -> None:
        for extra in self.extras:
            if extra[0] >= position:
                extra[0] += 1
        self.extras.append([position, line])

    def write(self, path: Path, records: Iterator[str]) -> None:
        """Every line, each ended by a newline (as ``"\\n".join(lines) + "\\n"``: an empty dump is one newline)."""
        extras = {position: line for position, line in self.extras}
        with open(path, "w", encoding="utf-8") as fh:
            if not len(self):
                fh.write("\n")
            for i in range(len(self)):
                fh.write(extras[i] if i in extras else next(records))
                fh.write("\n")


def _spreadsheet_date(value: str, ad_id: str) -> str:
    """A date after a spreadsheet round trip: unpadded (2023-5-3), with a time, or as it was."""
    if not value:
        return value
    style = int(ad_id[-3:]) % 7
    day = dt.date.fromisoformat(value)
    if style in (1, 2):  # 2023-5-3
        return f"{day.year}-{day.month}-{day.day}"
    if style == 3:  # 2023-05-03 14:02:11
        return f"{value} {int(ad_id[-2:]) % 24:02d}:{int(ad_id[-4:-2]) % 60:02d}:{int(ad_id[-6:-4]) % 60:02d}"
    return value


def _dumps(rec: dict) -> str:
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def _cut_max(line: str) -> int:
    """Where a truncated record line must end by: before its snapshot URL (and its access token)."""
    cut_max = line.find('"ad_snapshot_url"')
    return cut_max if cut_max > 40 else len(line) - 1


class _Writer:
    """Writes the dumps, the report, the media verbalisations and the truth, record by record, in the
    order their random draws were made before (so a seed gives the same bytes)."""

    def __init__(self, out_dir: Path, seed: int, gen: _Gen, census: Census, pages: list[dict], sizes: list[int],
                 tokens: dict[str, str], table: _Ads, ads: list[Ad], by_primary: dict[str, list[Ad]], copies: dict[str, list[Ad]],
                 extra_copies: list[tuple[str, Ad]], store: _Spill):
        self.out_dir, self.gen, self.census, self.pages, self.sizes, self.tokens = out_dir, gen, census, pages, sizes, tokens
        self.table, self.ads, self.by_primary, self.copies, self.extra_copies = table, ads, by_primary, copies, extra_copies
        self.store = store
        self.copied = {b.ad_id for _, b in extra_copies}
        # A separate stream of random numbers for the collector quirks added later keeps every earlier
        # draw, hence every other output, as it was.
        self.quirks = random.Random(f"{seed}-collector-quirks")
        self.summary: dict[str, Any] = {}
        self.mangled: set[str] = set()
        self.page_mangle: set[str] = set()
        self.page_lost: set[str] = set()
        self.wide_ids: set[str] = set()
        self.media_ids: set[str] = set()
        self.single_id = ""

    def write_all(self) -> dict:
        self.write_current()
        self.write_legacy()
        self.write_page()
        self.write_export()
        self.write_single()
        self.write_wide()
        self.write_report()
        self.write_media()
        self.write_truth()
        return self.summary

    # ---------------------------------------------------------------- records

    def free(self, a: Ad, *flags: str) -> bool:
        return _free(a, self.pages, *flags)

    def snapshot(self, ad_id: str, dump: str) -> str:
        return f"https://www.facebook.com/ads/archive/render_ad/?id={ad_id}&access_token={self.tokens[dump]}"

    def page_name_fields(self, a: Ad) -> dict:
        page = self.pages[a.page]
        if not page["unnamed"]:
            return {"page_name": page["name"]}
        return {} if int(a.ad_id) % 2 else {"page_name": ""}  # unnamed: the key absent, or ""

    def current_record(self, a: Ad, dump: str, d: _Delivery | None = None) -> dict:
        d = d or self.store.delivery(a)
        page = self.pages[a.page]
        rec: dict[str, Any] = {"id": a.ad_id, "page_id": page["page_id"], **self.page_name_fields(a), "bylines": page["byline"]}
        if not a.has("missing_dates"):
            rec["ad_creation_time"] = a.created.isoformat()
            rec["ad_delivery_start_time"] = a.start.isoformat()
            if a.stop:
                rec["ad_delivery_stop_time"] = a.stop.isoformat()
        if a.has("empty_body"):
            shape = a.body_shape
            if shape == "empty_string":
                rec["ad_creative_bodies"] = [""]
            elif shape == "empty_strings":
                rec["ad_creative_bodies"] = ["", " "]
            elif shape == "empty_list":
                rec["ad_creative_bodies"] = []
        else:
            rec["ad_creative_bodies"] = list(d.bodies)
        if d.link_title:
            rec["ad_creative_link_titles"] = [d.link_title] * (len(d.bodies) if a.has("multi_frame") else 1)
        if d.link_caption:
            rec["ad_creative_link_captions"] = [d.link_caption]
        if d.link_description:
            rec["ad_creative_link_descriptions"] = [d.link_description]
        rec["currency"] = a.currency
        rec["spend"] = _bounds(a.spend)
        rec["impressions"] = _bounds(a.impressions)
        rec["estimated_audience_size"] = _bounds(a.audience)
        rec["demographic_distribution"] = d.demographics
        if d.regions or not a.has("no_region") or a.ad_id[-1] in "01234":
            rec["delivery_by_region"] = d.regions  # no_region ads: [] or the key absent
        rec["languages"] = a.languages
        rec["publisher_platforms"] = a.platforms
        rec["ad_snapshot_url"] = self.snapshot(a.ad_id, dump)
        return rec

    def legacy_record(self, a: Ad, d: _Delivery | None = None) -> dict:
        d = d or self.store.delivery(a)
        page = self.pages[a.page]

        def stamp(day: dt.date, hour: int) -> str:
            return f"{day.isoformat()}T{hour:02d}:{int(a.ad_id[-2:]) % 60:02d}:{int(a.ad_id[-4:-2]) % 60:02d}+0000"

        rec: dict[str, Any] = {"id": a.ad_id, "page_id": page["page_id"], **self.page_name_fields(a), "funding_entity": page["byline"]}
        if not a.has("missing_dates"):
            rec["ad_creation_time"] = stamp(a.created, a.hour // 2)  # 00-11h; delivery starts 3h later at the earliest
            rec["ad_delivery_start_time"] = stamp(a.start, a.hour // 2 + 3 + a.hour % 9)
            if a.stop:
                rec["ad_delivery_stop_time"] = stamp(a.stop, a.hour)
        if a.has("empty_body"):
            if a.body_shape != "missing":
                rec["ad_creative_body"] = ""
        else:
            rec["ad_creative_body"] = d.bodies[0]  # the old API gave one body (the first card)
        if d.link_title:
            rec["ad_creative_link_title"] = d.link_title
        if d.link_caption:
            rec["ad_creative_link_caption"] = d.link_caption
        if d.link_description:
            rec["ad_creative_link_description"] = d.link_description
        rec["currency"] = a.currency
        rec["spend"] = _bounds(a.spend)
        rec["impressions"] = _bounds(a.impressions)
        rec["potential_reach"] = _bounds(a.audience)
        rec["demographic_distribution"] = d.demographics
        if d.regions or a.ad_id[-1] in "01234":
            rec["region_distribution"] = d.regions
        rec["publisher_platforms"] = a.platforms
        rec["ad_snapshot_url"] = self.snapshot(a.ad_id, LEGACY)
        return rec

    def note(self, a: Ad, dump: str, broken: bool = False) -> None:
        a.seen_bits |= 1 << MERGE_ORDER.index(dump)
        if broken:
            a.n_malformed += 1
        else:
            a.n_records += 1

    def truncated(self, a: Ad, dump: str) -> str:
        """The ad's record in ``dump``, cut short before its snapshot URL (a truncated line). The cut is drawn
        over the record the ad would have without reruns: the range of a draw decides how many random
        words it takes, so a rerun's other text would move every later draw."""
        d = self.store.delivery(a)
        line, own = (_dumps(self.legacy_record(a, x) if dump == LEGACY else self.current_record(a, dump, x)) for x in (d, d.own()))
        cut = self.gen.py.randrange(max(20, _cut_max(own) // 4), _cut_max(own))
        return line[: min(cut, _cut_max(line))]

    # ---------------------------------------------------------------- JSON Lines

    def write_current(self) -> None:
        """Current names: 3 ads whose only record is truncated, 1 truncated extra copy, a stray non-JSON
        line, a JSON array on its own line, blank lines."""
        gen, cur = self.gen, self.copies[CURRENT]
        only_once = [a for a in self.by_primary[CURRENT] if a.ad_id not in self.copied]
        doomed = {a.ad_id for a in _choose(gen, only_once, 3)}
        cut = {a.ad_id: self.truncated(a, CURRENT) for a in cur if a.ad_id in doomed}
        layout = _Layout(len(cur))
        twice = [a for a in self.by_primary[CURRENT] if a.ad_id not in doomed]
        if twice:  # a truncated extra copy of an ad that is also there intact (a collector retry)
            a = gen.pick(twice)
            position = gen.py.randrange(len(layout) + 1)
            layout.insert(position, self.truncated(a, CURRENT))
            self.note(a, CURRENT, True)
        stray = [STRAY_LINES[0], '["unexpected","array",3]']
        for extra in stray:
            layout.insert(gen.py.randrange(len(layout) + 1), extra)
        for _ in range(2):
            layout.insert(gen.py.randrange(1, len(layout) + 1), "")

        def records() -> Iterator[str]:
            for a in cur:
                broken = a.ad_id in doomed
                self.note(a, CURRENT, broken)
                yield cut[a.ad_id] if broken else _dumps(self.current_record(a, CURRENT))

        layout.write(self.out_dir / CURRENT, records())
        self.summary[CURRENT] = {"lines": len(layout), "records": len(cur) - len(doomed),
                                 "malformed": len(doomed) + (1 if twice else 0) + len(stray), "blank": 2}

    def write_legacy(self) -> None:
        """Legacy names: one ad whose only record is truncated, one stray line, one blank line."""
        gen, leg = self.gen, self.copies[LEGACY]
        leg_once = [a for a in self.by_primary[LEGACY] if a.ad_id not in self.copied]
        doomed = {a.ad_id for a in _choose(gen, leg_once, 1)}
        cut = {a.ad_id: self.truncated(a, LEGACY) for a in leg if a.ad_id in doomed}
        layout = _Layout(len(leg))
        if leg:
            layout.insert(gen.py.randrange(len(layout) + 1), STRAY_LINES[1])
            layout.insert(gen.py.randrange(1, len(layout) + 1), "")

        def records() -> Iterator[str]:
            for a in leg:
                broken = a.ad_id in doomed
                self.note(a, LEGACY, broken)
                yield cut[a.ad_id] if broken else _dumps(self.legacy_record(a))

        layout.write(self.out_dir / LEGACY, records())
        self.summary[LEGACY] = {"lines": len(layout), "records": len(leg) - len(doomed),
                                "malformed": len(doomed) + (1 if leg else 0), "blank": 1 if leg else 0}

    # ---------------------------------------------------------------- one API page

    def write_page(self) -> None:
        """``{"data": [...], "paging": {...}}`` on one line, written record by record."""
        gen, data = self.gen, self.copies[PAGE]
        with open(self.out_dir / PAGE, "w", encoding="utf-8") as fh:
            fh.write('{"data":[')
            for k, a in enumerate(data):
                fh.write("," if k else "")
                fh.write(_dumps(self.current_record(a, PAGE)))
                self.note(a, PAGE)
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
            after = "".join(gen.py.choice(alphabet) for _ in range(40))
            before = "".join(gen.py.choice(alphabet) for _ in range(40))
            paging = {
                "cursors": {"before": f"QVFIU{before}", "after": f"QVFIU{after}"},
                "next": (
                    "https://graph.facebook.com/v19.0/ads_archive?ad_reached_countries=%5B%22US%22%5D&ad_type=ALL"
                    f"&search_terms=%27%27&limit={max(len(data), 1)}&access_token={self.tokens['paging']}&after=QVFIU{after}"
                ),
            }
            fh.write(f'],"paging":{_dumps(paging)}}}\n')
        self.summary[PAGE] = {"records": len(data)}

    # ---------------------------------------------------------------- CSV export

    def write_export(self) -> None:
        """The flattened CSV export and its side tables keyed by the real id; mangled ids, rounded page
        ids and spreadsheet dates."""
        gen, pages, rows = self.gen, self.pages, self.copies[EXPORT]
        batch_names = [f"{gen.pick(('nyc', 'sfo', 'chi'))}-{k:03d}" for k in range(1 + len(rows) // 200)]
        export_ads = self.by_primary[EXPORT] + [b for d, b in self.extra_copies if d == EXPORT]
        export_mangle = {a.ad_id for a in export_ads if gen.py.random() < 0.1}
        # Spreadsheet round trips also rounded some page ids (the page URL, where there is one, keeps the
        # real number), and wrote dates unpadded or as "date time".
        export_only = sorted(a.ad_id for a in self.by_primary[EXPORT] if a.ad_id not in self.copied and not pages[a.page]["unnamed"]
                             and self.free(a, "empty_body", "short_body", "no_region", "missing_dates"))  # else kept but for the page id
        k = min(len(export_only), max(6, round(0.04 * len(export_only))))
        self.page_mangle = set(self.quirks.sample(export_only, k=k))
        self.page_lost = set(sorted(self.page_mangle)[:3])  # no page URL in their rows: quarantined as mangled_page_id
        side_done: set[str] = set()
        n_mangled = n_demo = n_region = 0
        with open(self.out_dir / EXPORT, "w", encoding="utf-8") as f_main, \
                open(self.out_dir / EXPORT_DEMOS, "w", encoding="utf-8") as f_demo, \
                open(self.out_dir / EXPORT_REGIONS, "w", encoding="utf-8") as f_region:
            w_main, w_demo, w_region = (csv.writer(f, lineterminator="\n") for f in (f_main, f_demo, f_region))
            w_main.writerow(EXPORT_COLUMNS)
            w_demo.writerow(["ad_id", "age", "gender", "percentage"])
            w_region.writerow(["ad_id", "region", "percentage"])
            for k, a in enumerate(rows):
                rec, ad_id = self.current_record(a, EXPORT), a.ad_id
                mangled = ad_id in export_mangle
                w_main.writerow(self.export_row(a, rec, mangled, batch_names[k // 200]))
                n_mangled += mangled
                if mangled:
                    self.mangled.add(ad_id)
                self.note(a, EXPORT)
                if ad_id in side_done:
                    continue
                side_done.add(ad_id)
                w_demo.writerows([ad_id, e["age"], e["gender"], e["percentage"]] for e in rec["demographic_distribution"])
                w_region.writerows([ad_id, e["region"], e["percentage"]] for e in rec.get("delivery_by_region", []))
                n_demo += len(rec["demographic_distribution"])
                n_region += len(rec.get("delivery_by_region", []))
        self.summary[EXPORT] = {"rows": len(rows), "mangled_ids": n_mangled, "demographic_rows": n_demo, "region_rows": n_region}

    def export_row(self, a: Ad, rec: dict, mangled: bool, batch: str) -> list:
        for key in ("ad_creation_time", "ad_delivery_start_time", "ad_delivery_stop_time"):
            if key in rec:
                rec[key] = _spreadsheet_date(rec[key], a.ad_id)
        page_url = f"https://www.facebook.com/{rec['page_id']}/" if (int(a.ad_id) % 5 < 3 or a.ad_id in self.page_mangle) else ""
        if a.ad_id in self.page_mangle:
            rec["page_id"] = f"{int(rec['page_id']):.5E}".replace("E+0", "E+")
            page_url = "" if a.ad_id in self.page_lost else page_url
        shown = f"{int(a.ad_id):.5E}".replace("E+0", "E+") if mangled else a.ad_id
        bodies_cell = json.dumps(rec["ad_creative_bodies"], ensure_ascii=False) if "ad_creative_bodies" in rec else ""
        return [
            shown, rec["page_id"], rec.get("page_name", ""), rec["bylines"], rec.get("ad_creation_time", ""),
            rec.get("ad_delivery_start_time", ""), rec.get("ad_delivery_stop_time", ""), bodies_cell,
            repr(rec["ad_creative_link_titles"]) if "ad_creative_link_titles" in rec else "", rec["currency"],
            rec["spend"]["lower_bound"], rec["spend"].get("upper_bound", ""), rec["impressions"]["lower_bound"],
            rec["impressions"].get("upper_bound", ""), rec["estimated_audience_size"]["lower_bound"],
            rec["estimated_audience_size"].get("upper_bound", ""), repr(rec["languages"]), repr(rec["publisher_platforms"]),
            rec["ad_snapshot_url"], batch, page_url,
        ]

    # ---------------------------------------------------------------- one-object file, wide export, report

    def write_single(self) -> None:
        """One ad object in its own file, keyed by a document store's _id (its ad id only in
        ad_snapshot_url); a copy of a page-only ad, merged before the page."""
        quirks = self.quirks
        page_only = sorted((a for a in self.by_primary[PAGE] if a.ad_id not in self.copied and not self.pages[a.page]["unnamed"]
                            and self.free(a, "empty_body", "short_body", "no_region", "missing_dates")), key=lambda x: x.ad_id)
        single_ad = quirks.choice(page_only) if page_only else self.by_primary[CURRENT][0]
        single = {"_id": {"$oid": "".join(quirks.choice("0123456789abcdef") for _ in range(24))}}
        single.update({k: v for k, v in self.current_record(single_ad, SINGLE).items() if k != "id"})
        (self.out_dir / SINGLE).write_text(json.dumps(single, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        self.note(single_ad, SINGLE)
        self.single_id = single_ad.ad_id
        self.summary[SINGLE] = {"records": 1}

    def write_wide(self) -> None:
        """A wide spreadsheet export (UTF-8 with a byte-order mark, CRLF): one percentage column per region
        and per gender x age cell, some rows in "12.5%" notation; copies of export ads, merged before the
        export, so these rows are the ones kept."""
        quirks, census = self.quirks, self.census
        wide_pool = sorted((a for a in self.by_primary[EXPORT] if a.ad_id not in self.copied and a.ad_id not in self.page_mangle
                            and a.has_regions and self.free(a, "empty_body", "short_body", "no_region", "missing_dates")
                            and not self.pages[a.page]["unnamed"]), key=lambda x: x.ad_id)
        wide_ads = quirks.sample(wide_pool, k=min(len(wide_pool), max(5, round(0.03 * len(self.by_primary[EXPORT])))))
        if wide_ads and not any(a.prefixed_region for a in wide_ads):
            wide_ads[0] = next((a for a in wide_pool if a.prefixed_region and a not in wide_ads), wide_ads[0])
        region_set: set[str] = set()
        cell_set: set[tuple[str, str]] = set()
        for a in wide_ads:
            d = self.store.delivery(a)
            region_set.update(e["region"] for e in d.regions)
            cell_set.update((e["gender"], e["age"]) for e in d.demographics)
        region_cols, cell_cols = sorted(region_set), sorted(cell_set)

        def region_header(name: str) -> str:
            return name if name in WIDE_BARE_REGIONS or name in census.regions else f"region: {name}"

        with open(self.out_dir / WIDE, "w", encoding="utf-8", newline="") as fh:
            fh.write("\ufeff")
            w_wide = csv.writer(fh, lineterminator="\r\n")
            w_wide.writerow(["ad_archive_id", "page_id", "page_name", "bylines", "ad_delivery_start_time", "ad_delivery_stop_time",
                             "ad_creative_bodies", "currency", "spend_lower", "spend_upper", "impressions_lower", "impressions_upper",
                             "ad_snapshot_url"] + [region_header(r) for r in region_cols] + [f"{g} {a}" for g, a in cell_cols])
            for a in wide_ads:
                d = self.store.delivery(a)
                rec = self.current_record(a, WIDE, d)
                percent = quirks.random() < 0.5

                def share(value: str | None) -> str:
                    if value is None:
                        return ""
                    return f"{float(value) * 100:.10g}%" if percent else value

                regions = {e["region"]: e["percentage"] for e in d.regions}
                cells = {(e["gender"], e["age"]): e["percentage"] for e in d.demographics}
                w_wide.writerow([a.ad_id, rec["page_id"], rec.get("page_name", ""), rec["bylines"],
                                 _spreadsheet_date(rec.get("ad_delivery_start_time", ""), a.ad_id), rec.get("ad_delivery_stop_time", ""),
                                 json.dumps(rec.get("ad_creative_bodies", []), ensure_ascii=False), rec["currency"],
                                 rec["spend"]["lower_bound"], rec["spend"].get("upper_bound", ""), rec["impressions"]["lower_bound"],
                                 rec["impressions"].get("upper_bound", ""), rec["ad_snapshot_url"]]
                                + [share(regions.get(r)) for r in region_cols] + [share(cells.get(c)) for c in cell_cols])
                self.note(a, WIDE)
        self.wide_ids = {a.ad_id for a in wide_ads}
        self.summary[WIDE] = {"rows": len(wide_ads), "region_columns": len(region_cols), "cell_columns": len(cell_cols)}

    def write_report(self) -> None:
        """An Ad Library Report download (spend totals per advertiser): not an ad dump, never in ads.dumps."""
        pages, sizes = self.pages, self.sizes
        with open(self.out_dir / REPORT, "w", encoding="utf-8", newline="") as fh:
            fh.write("\ufeff")
            w_report = csv.writer(fh, lineterminator="\n")
            w_report.writerow(REPORT_COLUMNS)
            for p in sorted(range(len(pages)), key=lambda i: pages[i]["page_id"]):
                if not pages[p]["unnamed"]:
                    w_report.writerow([pages[p]["page_id"], pages[p]["name"], f"Paid for by {pages[p]['byline']}",
                                       f"{int(sizes[p] * pages[p]['cpm'] * 40):,}", sizes[p]])

    # ---------------------------------------------------------------- media, truth

    def write_media(self) -> None:
        """Media verbalisations for ~20% of the ads."""
        gen = self.gen
        n = 0
        with open(self.out_dir / MEDIA, "w", encoding="utf-8") as fh:
            for a in sorted(self.ads, key=lambda x: x.ad_id):
                if gen.py.random() < 0.2:
                    kind = gen.pick(("Image", "Image", "Video", "Carousel"))
                    scene = gen.pick(a.topic.images)
                    extra = gen.pick(("", "", " at sunrise", " in soft natural light",
                                      f", with the text \"{self.pages[a.page]['name']}\" overlaid", ", logo in the corner"))
                    text = f"{kind}: {scene}{extra}"
                    if kind == "Video":
                        text += f"; {gen.py.randrange(6, 46)} seconds, upbeat music"
                    fh.write(json.dumps({"ad_id": a.ad_id, "verbalisation": text}, ensure_ascii=False) + "\n")
                    self.media_ids.add(a.ad_id)
                    n += 1
        self.summary[MEDIA] = {"records": n}

    def write_truth(self) -> None:
        """Ground truth for tests: one row per unique ad, in page, family, variant order; row groups of
        TRUTH_ROW_GROUP rows, each built column by column."""
        table = self.table
        order = np.lexsort([table.array(name) for name in ("variant", "family_id", "page")])
        columns = self.truth_columns()
        schema = pa.schema([f for f, _ in columns])
        # malloc-backed: Arrow's default pool keeps what the writer freed, which would grow the peak with the ads
        pool = pa.system_memory_pool()
        with pq.ParquetWriter(self.out_dir / TRUTH, schema, compression="zstd", memory_pool=pool) as writer:
            for first in range(0, len(order), TRUTH_ROW_GROUP):
                rows = [table.views[i] for i in order[first:first + TRUTH_ROW_GROUP].tolist()]
                arrays = [pa.array([get(a) for a in rows], type=f.type, memory_pool=pool) for f, get in columns]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))

    def truth_columns(self) -> list[tuple[pa.Field, Any]]:
        pages = self.pages

        def flag(name: str):
            return lambda a: a.has(name)

        string, boolean, integer = pa.string(), pa.bool_(), pa.int64()
        return [
            (pa.field("ad_id", string), lambda a: a.ad_id),
            (pa.field("page_id", string), lambda a: pages[a.page]["page_id"]),
            (pa.field("page_name", string), lambda a: pages[a.page]["name"]),
            (pa.field("topic", string), lambda a: a.topic.name),
            (pa.field("family_id", integer), lambda a: a.family_id),
            (pa.field("variant", integer), lambda a: a.variant),
            (pa.field("dumps", pa.list_(string)), lambda a: [d for i, d in enumerate(MERGE_ORDER) if a.seen_bits >> i & 1]),
            (pa.field("primary_dump", string), lambda a: a.primary),
            (pa.field("n_records", integer), lambda a: a.n_records),
            (pa.field("delivery_start", pa.date32()), lambda a: a.start),
            (pa.field("delivery_stop", pa.date32()), lambda a: a.stop),
            (pa.field("currency", string), lambda a: a.currency),
            (pa.field("n_frames", integer), lambda a: a.n_frames),
            (pa.field("is_duplicate", boolean), lambda a: a.n_records > 1),
            (pa.field("unnamed_page", boolean), lambda a: pages[a.page]["unnamed"]),
            *[(pa.field(name, boolean), flag(name)) for name in FLAG_NAMES],
            (pa.field("malformed_line", boolean), lambda a: a.n_malformed > 0),
            (pa.field("malformed_only", boolean), lambda a: a.n_records == 0),
            (pa.field("mangled_id", boolean), lambda a: a.ad_id in self.mangled),
            (pa.field("mangled_page_id", boolean), lambda a: a.ad_id in self.page_mangle),
            (pa.field("mangled_page_lost", boolean), lambda a: a.ad_id in self.page_lost),
            (pa.field("in_wide", boolean), lambda a: a.ad_id in self.wide_ids),
            (pa.field("in_single", boolean), lambda a: a.ad_id == self.single_id),
            (pa.field("has_media", boolean), lambda a: a.ad_id in self.media_ids),
            (pa.field("audience_shift", string), lambda a: a.shift),
            (pa.field("top_states", pa.list_(string)), lambda a: a.targets()[0]),
            (pa.field("top_age", string), lambda a: a.targets()[1]),
            (pa.field("top_gender", string), lambda a: a.targets()[2]),
            (pa.field("rerun_of", string), lambda a: a.rerun_of.ad_id if a.rerun_of is not None else None),
        ]
