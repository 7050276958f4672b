"""The simulator: a seeded financial-services world with ground truth (issue 3, docs/SIMULATOR.md).

`simulate(out_dir, visitors=..., days=..., seed=..., signal=..., config=...)` writes raw web and app events
in the events contract (`events.parquet`, messy as real logs) and the truth kept apart (`truth/`). The
modules: products (the product list), catalogue (pages), intents (latent intents), config (knobs), world
(compiled arrays), people, web, app, truth (truth tables) and generate (the batch loop and writing).
"""

from clickintent.sim.config import SimConfig, load_config
from clickintent.sim.generate import BAD_REASONS, RAW_EVENTS, SimSummary, simulate
from clickintent.sim.intents import INTENT_NAMES, intent_holding_keys
from clickintent.sim.products import PRODUCT_IDS, PRODUCTS

__all__ = [
    "BAD_REASONS",
    "INTENT_NAMES",
    "PRODUCTS",
    "PRODUCT_IDS",
    "RAW_EVENTS",
    "SimConfig",
    "SimSummary",
    "intent_holding_keys",
    "load_config",
    "simulate",
]
