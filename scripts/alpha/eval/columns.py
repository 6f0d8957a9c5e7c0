"""The result tables' column names (light: the DAG reads them to decide which benchmarks each table needs)."""

# Table 1's twelve columns in the paper's order, and Table 2's value column
TABLE1_COLUMNS = (
    "OpinionQA-XL Representativeness", "OpinionQA-XL Steerability",
    "OpinionQA Representativeness", "OpinionQA Steerability",
    "GlobalOpinionQA Avg Sim", "GlobalOpinionQA Skew",
    "CultureBank Reddit", "CultureBank TikTok",
    "CultureNLI US", "CultureNLI IN",
    "GSS Representativeness", "GSS Steerability",
)
TABLE2_VALUE = "Opinion Alignment"
