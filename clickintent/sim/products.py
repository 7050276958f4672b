"""The one product list of the simulated bank, shared by app tiles, holdings and conversions.

Every product id here appears, spelled the same way, in `truth/customers.parquet` (holdings and past
clicks), `truth/app_home.parquet` (tiles shown and clicked) and `truth/conversions.parquet` (the product
applied for), so a downstream evaluation can join them. The list is fixed: a config file can add pages but
not products. Pricing, eligibility and approval are not modelled: an application is the conversion.

Each product belongs to a family whose *half-life* says how long a web visit about it keeps pulling the
customer's app behaviour (docs/SIMULATOR.md, "--signal"): days for cards, a week or so for deposit
accounts and personal loans, weeks for mortgages and home equity, whose purchase journeys last a month or
more. The half-lives are assumptions, not measurements: they only order the families by how long such a
decision usually takes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    id: str  # stable key used in every truth file
    name: str  # what tiles and application pages call it
    slug: str  # its form in URLs (`/apply/step-1?product=SLUG`, `app://offers/SLUG`)
    family: str  # cards, deposits, auto, home, lending, investing, business
    half_life_days: float  # how fast a web visit's pull on this product's tile fades


# Half-life of the pull of a web visit, per family (an assumption, see the module docstring).
HALF_LIFE_DAYS = {"cards": 3.0, "deposits": 7.0, "lending": 7.0, "auto": 10.0, "investing": 14.0,
                  "business": 14.0, "home": 28.0}  # fmt: skip


def _product(id: str, name: str, slug: str, family: str) -> Product:
    return Product(id, name, slug, family, HALF_LIFE_DAYS[family])


PRODUCTS: tuple[Product, ...] = (
    _product("rewards_card", "Travel Rewards Card", "travel-rewards", "cards"),
    _product("cash_back_card", "Cash Back Card", "cash-back", "cards"),
    _product("secured_card", "Secured Card", "secured", "cards"),
    _product("balance_transfer_card", "Balance Transfer Card", "balance-transfer", "cards"),
    _product("checking", "Everyday Checking", "checking", "deposits"),
    _product("savings", "High-Yield Savings", "savings", "deposits"),
    _product("cd", "Certificate of Deposit", "cd", "deposits"),
    _product("auto_loan", "Auto Loan", "auto-loan", "auto"),
    _product("auto_refinance", "Auto Refinance", "auto-refinance", "auto"),
    _product("mortgage", "Mortgage", "mortgage", "home"),
    _product("mortgage_refinance", "Mortgage Refinance", "mortgage-refinance", "home"),
    _product("heloc", "Home Equity Line of Credit", "heloc", "home"),
    _product("personal_loan", "Personal Loan", "personal-loan", "lending"),
    _product("investing", "Investing Account", "investing", "investing"),
    _product("small_business", "Business Checking", "business-checking", "business"),
)

PRODUCT_IDS: tuple[str, ...] = tuple(p.id for p in PRODUCTS)
PRODUCT_INDEX: dict[str, int] = {p: i for i, p in enumerate(PRODUCT_IDS)}
