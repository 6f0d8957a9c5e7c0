"""Population groups shared by the ad side, the survey side and the demo: the four census regions (the only
region variable of Pew ATP), Pew ATP's age groups, and the default mapping of Meta's adult age brackets onto
them (``alpha.correlation`` compares groups across the two; ``alpha.demo.lean`` plants its survey
lean on them)."""
from __future__ import annotations

# Meta bracket -> Pew ATP age group. 25-34 straddles 18-29 / 30-49 evenly (25-29 | 30-34); it goes to
# 30-49 here, a documented choice: pass another map to test how much it matters.
AGE_MAP = {"18-24": "18-29", "25-34": "30-49", "35-44": "30-49", "45-54": "50-64", "55-64": "50-64", "65+": "65+"}
PEW_AGES = ("18-29", "30-49", "50-64", "65+")
# The four census regions (Census Bureau definition), the only region variable in Pew ATP (CREGION).
CENSUS_REGIONS = {
    "Northeast": ("Connecticut", "Maine", "Massachusetts", "New Hampshire", "Rhode Island", "Vermont", "New Jersey",
                  "New York", "Pennsylvania"),
    "Midwest": ("Illinois", "Indiana", "Michigan", "Ohio", "Wisconsin", "Iowa", "Kansas", "Minnesota", "Missouri",
                "Nebraska", "North Dakota", "South Dakota"),
    "South": ("Delaware", "District of Columbia", "Florida", "Georgia", "Maryland", "North Carolina", "South Carolina",
              "Virginia", "West Virginia", "Alabama", "Kentucky", "Mississippi", "Tennessee", "Arkansas", "Louisiana",
              "Oklahoma", "Texas"),
    "West": ("Arizona", "Colorado", "Idaho", "Montana", "Nevada", "New Mexico", "Utah", "Wyoming", "Alaska",
             "California", "Hawaii", "Oregon", "Washington"),
}
STATE_REGION = {state: region for region, states in CENSUS_REGIONS.items() for state in states}
