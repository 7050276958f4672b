"""The one product list of the simulated bank, shared by app tiles, holdings and conversions.

Every product id here appears, spelled the same way, in `truth/customers.parquet` (holdings and past
clicks), `truth/app_home.parquet` (tiles shown and clicked) and `truth/conversions.parquet` (the product
applied for), so a downstream evaluation can join them. The list is fixed: a config file can add pages but
not products. Pricing, eligibility and approval are not modelled: an application is the conversion.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    id: str  # stable key used in every truth file
    name: str  # what tiles and application pages call it
    slug: str  # its form in URLs (`/apply/step-1?product=SLUG`, `app://offers/SLUG`)


PRODUCTS: tuple[Product, ...] = (
    Product("rewards_card", "Travel Rewards Card", "travel-rewards"),
    Product("cash_back_card", "Cash Back Card", "cash-back"),
    Product("secured_card", "Secured Card", "secured"),
    Product("balance_transfer_card", "Balance Transfer Card", "balance-transfer"),
    Product("checking", "Everyday Checking", "checking"),
    Product("savings", "High-Yield Savings", "savings"),
    Product("cd", "Certificate of Deposit", "cd"),
    Product("auto_loan", "Auto Loan", "auto-loan"),
    Product("auto_refinance", "Auto Refinance", "auto-refinance"),
    Product("mortgage", "Mortgage", "mortgage"),
    Product("mortgage_refinance", "Mortgage Refinance", "mortgage-refinance"),
    Product("heloc", "Home Equity Line of Credit", "heloc"),
    Product("personal_loan", "Personal Loan", "personal-loan"),
    Product("investing", "Investing Account", "investing"),
    Product("small_business", "Business Checking", "business-checking"),
)

PRODUCT_IDS: tuple[str, ...] = tuple(p.id for p in PRODUCTS)
PRODUCT_INDEX: dict[str, int] = {p: i for i, p in enumerate(PRODUCT_IDS)}
