"""The names every task stage and the workflow's config checks share: splits, task families and tasks
(kept free of data libraries so the DAG can use them)."""

TRAIN = "train"
TEST_UNSEEN_ADVERTISER = "test_unseen_advertiser"
TEST_AFTER_CUTOFF = "test_after_cutoff"
SPLITS = (TRAIN, TEST_UNSEEN_ADVERTISER, TEST_AFTER_CUTOFF)
TEST_SPLITS = SPLITS[1:]

FAMILIES = ("TAG", "TAP", "TC", "TS")
TASKS = ("TAG", "TAP-G", "TAP-A", "TAP-R", "TC-A", "TC-G", "TC-R", "TS-E", "TS-B")
EXTERNAL_FAMILY = "external"
