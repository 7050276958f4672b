"""The simulated bank's web catalogue: sections, page groups and pages with URL patterns and titles.

A page belongs to one *group* (the states of the intent journeys in `intents.py`); a group belongs to one
*section* of the site. A path may hold one placeholder that generation fills per event: `{appId}` (the
session's application id), `{acct}` (the customer's account reference), `{id}` (a random id: job
postings, press releases) or `{q}` (the search text). Application pages exist once per product and step;
generation picks the page of the product the visitor is applying for. Page content is not modelled:
only URL, title and the kind of page (which sets dwell and form events).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clickintent.sim.products import PRODUCT_IDS, PRODUCTS

SITE = "https://www.examplebank.com"
BRAND = "ExampleBank"

PLACEHOLDERS = ("{appId}", "{acct}", "{id}", "{q}")

# Seconds on a page relative to the intent's median dwell, by kind of page.
KIND_DWELL = {
    "hub": 0.6,
    "product": 1.0,
    "compare": 1.4,
    "calculator": 2.2,
    "article": 1.8,
    "apply": 1.6,
    "search": 0.5,
    "login": 0.5,
    "account": 0.8,
    "legal": 0.7,
    "job": 1.3,
    "form": 1.5,
}

# Groups by section; the order fixes the group index used by the journeys.
SECTION_GROUPS: dict[str, tuple[str, ...]] = {
    "home": ("home", "search", "legal", "locations", "rates"),
    "credit-cards": ("cards_hub", "card_rewards", "card_cashback", "card_secured", "card_bt", "card_learn"),
    "checking": ("checking_hub", "checking_product"),
    "savings": ("savings_product", "cd_product", "savings_tools"),
    "auto-loans": ("auto_hub", "auto_purchase", "auto_refi", "auto_tools"),
    "home-loans": (
        "mortgage_hub",
        "mortgage_product",
        "mortgage_tools",
        "mortgage_learn",
        "refi_product",
        "home_equity",
    ),
    "investing": ("invest_hub", "invest_product", "invest_learn"),
    "small-business": ("biz_hub", "biz_product", "biz_learn"),
    "credit-score": ("credit_tools", "credit_learn"),
    "support": ("help_hub", "help_access", "help_fraud", "help_cards", "help_general", "contact"),
    "about": ("about", "careers", "careers_jobs"),
    "login": ("login", "enroll", "accounts", "app_status"),
    "apply": ("apply_1", "apply_2", "apply_3", "apply_4"),
}
SECTIONS: tuple[str, ...] = tuple(SECTION_GROUPS)
GROUPS: tuple[str, ...] = tuple(g for groups in SECTION_GROUPS.values() for g in groups)
GROUP_SECTION: dict[str, str] = {g: s for s, groups in SECTION_GROUPS.items() for g in groups}
APPLY_STEPS = 4


@dataclass(frozen=True)
class Page:
    path: str  # URL path (and fixed query), may hold one of PLACEHOLDERS
    title: str  # the <title>, brand suffix included
    group: str  # journey state it belongs to (one of GROUPS)
    kind: str  # a key of KIND_DWELL
    product: str | None = None  # product the page sells, if any (one of PRODUCT_IDS)
    weight: float = 1.0  # relative chance among the pages of its group
    form: str | None = None  # 'start' or 'submit' when the page logs a form event


def _t(*parts: str) -> str:
    return " | ".join((*parts, BRAND))


def _slugify(text: str) -> str:
    return text.lower().replace("'", "").replace(",", "").replace("?", "").replace(" ", "-")


def _articles(prefix: str, group: str, titles: tuple[str, ...], section_title: str) -> list[Page]:
    return [Page(f"{prefix}/{_slugify(t)}", _t(t, section_title), group, "article") for t in titles]


def _home() -> list[Page]:
    return [
        Page("/", _t("Banking, credit cards, loans and investing"), "home", "hub", weight=4.0),
        Page("/search?q={q}", _t("Search results"), "search", "search"),
        Page("/privacy", _t("Privacy notice"), "legal", "legal"),
        Page("/terms-of-use", _t("Terms of use"), "legal", "legal"),
        Page("/accessibility", _t("Accessibility"), "legal", "legal"),
        Page("/sitemap", _t("Site map"), "legal", "legal", weight=0.5),
        Page("/locations", _t("Branch and ATM locator"), "locations", "hub", weight=2.0),
        Page("/locations/search?zip={id}", _t("Branches near you"), "locations", "hub"),
        Page("/locations/atm-fees", _t("ATM fees and network"), "locations", "article"),
        Page("/rates", _t("Today's rates"), "rates", "hub", weight=2.0),
        Page("/rates/savings-and-cds", _t("Savings and CD rates"), "rates", "compare"),
    ]


def _cards() -> list[Page]:
    sec = "Credit Cards"
    pages = [
        Page("/credit-cards", _t(sec), "cards_hub", "hub", weight=4.0),
        Page("/credit-cards/compare", _t("Compare credit cards"), "cards_hub", "compare", weight=2.0),
        Page("/credit-cards/card-finder", _t("Find the right card", sec), "cards_hub", "calculator"),
        Page("/credit-cards/prequalify", _t("See if you prequalify", sec), "cards_hub", "form", form="start"),
    ]
    cards = (
        ("travel-rewards", "Travel Rewards Card", "card_rewards", "rewards_card"),
        ("platinum-rewards", "Platinum Rewards Card", "card_rewards", "rewards_card"),
        ("cash-back", "Cash Back Card", "card_cashback", "cash_back_card"),
        ("everyday-cash", "Everyday Cash Card", "card_cashback", "cash_back_card"),
        ("secured", "Secured Card", "card_secured", "secured_card"),
        ("zero-intro-apr", "Zero Intro APR Card", "card_bt", "balance_transfer_card"),
        ("balance-transfer", "Balance Transfer Card", "card_bt", "balance_transfer_card"),
    )
    for slug, name, group, product in cards:
        base = f"/credit-cards/{slug}"
        pages += [
            Page(base, _t(name, sec), group, "product", product, weight=3.0),
            Page(f"{base}/rates-and-fees", _t(f"{name} rates and fees", sec), group, "product", product),
            Page(f"{base}/benefits", _t(f"{name} benefits", sec), group, "product", product),
        ]
    pages += _articles(
        "/credit-cards/learn",
        "card_learn",
        (
            "How credit card rewards work",
            "What is a balance transfer",
            "Build credit with a secured card",
            "APR explained",
            "How to pay off credit card debt",
        ),
        sec,
    )
    return pages


def _checking() -> list[Page]:
    sec = "Checking"
    pages = [
        Page("/checking", _t("Checking accounts"), "checking_hub", "hub", weight=3.0),
        Page("/checking/compare", _t("Compare checking accounts"), "checking_hub", "compare"),
        Page("/checking/switch-kit", _t("Switch your direct deposit", sec), "checking_hub", "article"),
        Page("/checking/new-account-bonus", _t("New account bonus", sec), "checking_hub", "hub"),
        Page("/checking/overdraft-options", _t("Overdraft options", sec), "checking_hub", "article"),
    ]
    for slug, name in (
        ("everyday", "Everyday Checking"),
        ("premium", "Premium Checking"),
        ("student", "Student Checking"),
        ("second-chance", "Fresh Start Checking"),
    ):
        pages += [
            Page(f"/checking/{slug}", _t(name, sec), "checking_product", "product", "checking", weight=2.0),
            Page(f"/checking/{slug}/fees", _t(f"{name} fees", sec), "checking_product", "product", "checking"),
        ]
    return pages


def _savings() -> list[Page]:
    sec = "Savings and CDs"
    pages = [
        Page("/savings", _t("Savings accounts"), "savings_product", "hub", weight=2.0),
        Page("/savings/high-yield", _t("High-Yield Savings", sec), "savings_product", "product", "savings", 3.0),
        Page("/savings/money-market", _t("Money Market account", sec), "savings_product", "product", "savings"),
        Page("/savings/kids-savings", _t("Kids savings", sec), "savings_product", "product", "savings", 0.5),
        Page("/cds", _t("Certificates of deposit", sec), "cd_product", "hub", "cd", 2.0),
    ]
    for months in (6, 12, 18, 24, 36, 60):
        pages.append(Page(f"/cds/{months}-month", _t(f"{months}-month CD", sec), "cd_product", "product", "cd"))
    pages += [
        Page("/savings/calculator", _t("Savings calculator", sec), "savings_tools", "calculator"),
        Page("/cds/calculator", _t("CD calculator", sec), "savings_tools", "calculator"),
        Page("/savings/learn/cd-ladder", _t("How to build a CD ladder", sec), "savings_tools", "article"),
        Page("/savings/learn/emergency-fund", _t("How big an emergency fund", sec), "savings_tools", "article"),
    ]
    return pages


def _auto() -> list[Page]:
    sec = "Auto Loans"
    return [
        Page("/auto-loans", _t(sec), "auto_hub", "hub", weight=3.0),
        Page("/auto-loans/rates", _t("Auto loan rates", sec), "auto_hub", "compare", weight=2.0),
        Page("/auto-loans/dealer-network", _t("Find a dealer", sec), "auto_hub", "hub"),
        Page("/auto-loans/new-car", _t("New car loans", sec), "auto_purchase", "product", "auto_loan", 2.0),
        Page("/auto-loans/used-car", _t("Used car loans", sec), "auto_purchase", "product", "auto_loan", 2.0),
        Page(
            "/auto-loans/private-party",
            _t("Private party loans", sec),
            "auto_purchase",
            "product",
            "auto_loan",
        ),
        Page(
            "/auto-loans/refinance",
            _t("Refinance your car", sec),
            "auto_refi",
            "product",
            "auto_refinance",
            3.0,
        ),
        Page(
            "/auto-loans/lease-buyout",
            _t("Lease buyout loans", sec),
            "auto_refi",
            "product",
            "auto_refinance",
        ),
        Page(
            "/auto-loans/payment-calculator",
            _t("Car payment calculator", sec),
            "auto_tools",
            "calculator",
            weight=2.0,
        ),
        Page(
            "/auto-loans/refinance-calculator",
            _t("Auto refinance calculator", sec),
            "auto_tools",
            "calculator",
        ),
        Page("/auto-loans/learn/how-much-car", _t("How much car can I afford", sec), "auto_tools", "article"),
    ]


def _home_loans() -> list[Page]:
    sec = "Home Loans"
    pages = [
        Page("/home-loans", _t("Home loans and home equity"), "mortgage_hub", "hub", weight=3.0),
        Page("/home-loans/rates", _t("Mortgage rates", sec), "mortgage_hub", "compare", weight=3.0),
        Page("/home-loans/prequalify", _t("Get prequalified", sec), "mortgage_hub", "form", form="start"),
        Page("/home-loans/loan-officers", _t("Find a loan officer", sec), "mortgage_hub", "hub"),
    ]
    for slug, name in (
        ("fixed-30", "30-year fixed mortgage"),
        ("fixed-15", "15-year fixed mortgage"),
        ("adjustable-rate", "Adjustable-rate mortgage"),
        ("fha", "FHA loans"),
        ("va", "VA loans"),
        ("jumbo", "Jumbo loans"),
        ("first-time-buyer", "First-time homebuyer program"),
    ):
        pages.append(Page(f"/home-loans/purchase/{slug}", _t(name, sec), "mortgage_product", "product", "mortgage"))
    pages += [
        Page(
            "/home-loans/mortgage-calculator",
            _t("Mortgage calculator", sec),
            "mortgage_tools",
            "calculator",
            weight=3.0,
        ),
        Page(
            "/home-loans/affordability-calculator",
            _t("Home affordability calculator", sec),
            "mortgage_tools",
            "calculator",
            weight=2.0,
        ),
        Page(
            "/home-loans/closing-cost-calculator",
            _t("Closing cost calculator", sec),
            "mortgage_tools",
            "calculator",
        ),
        Page(
            "/home-loans/refinance",
            _t("Refinance your mortgage", sec),
            "refi_product",
            "product",
            "mortgage_refinance",
            3.0,
        ),
        Page(
            "/home-loans/refinance/rate-and-term",
            _t("Rate-and-term refinance", sec),
            "refi_product",
            "product",
            "mortgage_refinance",
        ),
        Page(
            "/home-loans/refinance/cash-out",
            _t("Cash-out refinance", sec),
            "refi_product",
            "product",
            "mortgage_refinance",
        ),
        Page(
            "/home-loans/refinance-calculator",
            _t("Refinance calculator", sec),
            "refi_product",
            "calculator",
            "mortgage_refinance",
            2.0,
        ),
        Page(
            "/home-loans/refinance/rates",
            _t("Refinance rates", sec),
            "refi_product",
            "compare",
            "mortgage_refinance",
        ),
        Page("/home-equity", _t("Home equity"), "home_equity", "hub", "heloc", 2.0),
        Page(
            "/home-equity/heloc",
            _t("Home equity line of credit", sec),
            "home_equity",
            "product",
            "heloc",
            3.0,
        ),
        Page("/home-equity/home-equity-loan", _t("Home equity loan", sec), "home_equity", "product", "heloc"),
        Page(
            "/home-equity/heloc-calculator",
            _t("HELOC payment calculator", sec),
            "home_equity",
            "calculator",
            "heloc",
        ),
        Page("/home-equity/rates", _t("Home equity rates", sec), "home_equity", "compare", "heloc"),
    ]
    pages += _articles(
        "/home-loans/learn",
        "mortgage_learn",
        (
            "How much house can I afford",
            "Closing costs explained",
            "Fixed vs adjustable rate",
            "What is PMI",
            "Steps to buying a home",
            "When to refinance",
        ),
        sec,
    )
    return pages


def _investing() -> list[Page]:
    sec = "Investing"
    pages = [
        Page("/investing", _t("Investing and retirement"), "invest_hub", "hub", weight=3.0),
        Page("/investing/pricing", _t("Pricing", sec), "invest_hub", "compare"),
        Page("/investing/find-an-advisor", _t("Find an advisor", sec), "invest_hub", "hub"),
        Page(
            "/investing/retirement-calculator",
            _t("Retirement calculator", sec),
            "invest_hub",
            "calculator",
            weight=2.0,
        ),
    ]
    for slug, name in (
        ("brokerage", "Self-directed brokerage"),
        ("roth-ira", "Roth IRA"),
        ("traditional-ira", "Traditional IRA"),
        ("rollover-ira", "Roll over a 401(k)"),
        ("automated-investing", "Automated investing"),
    ):
        pages.append(Page(f"/investing/{slug}", _t(name, sec), "invest_product", "product", "investing"))
    pages += _articles(
        "/investing/learn",
        "invest_learn",
        (
            "Roth vs traditional IRA",
            "How to start investing",
            "What is an index fund",
            "How to roll over a 401k",
            "Investing for retirement in your 30s",
        ),
        sec,
    )
    return pages


def _business() -> list[Page]:
    sec = "Small Business"
    pages = [
        Page("/small-business", _t("Small business banking"), "biz_hub", "hub", weight=3.0),
        Page("/small-business/compare-accounts", _t("Compare business accounts", sec), "biz_hub", "compare"),
    ]
    for slug, name in (
        ("business-checking", "Business checking"),
        ("business-advantage-checking", "Business Advantage checking"),
        ("business-savings", "Business savings"),
        ("business-credit-card", "Business credit card"),
        ("line-of-credit", "Business line of credit"),
        ("sba-loans", "SBA loans"),
        ("merchant-services", "Merchant services"),
        ("payroll", "Payroll services"),
    ):
        pages.append(Page(f"/small-business/{slug}", _t(name, sec), "biz_product", "product", "small_business"))
    pages += _articles(
        "/small-business/learn",
        "biz_learn",
        ("How to open a business account", "Separating business and personal", "Cash flow basics"),
        sec,
    )
    pages.append(
        Page("/small-business/loan-calculator", _t("Business loan calculator", sec), "biz_learn", "calculator")
    )
    return pages


def _credit_score() -> list[Page]:
    sec = "Credit Score"
    pages = [
        Page("/credit-score", _t("Free credit score"), "credit_tools", "hub", weight=3.0),
        Page("/credit-score/check", _t("Check your score", sec), "credit_tools", "form", form="start"),
        Page("/credit-score/simulator", _t("Credit score simulator", sec), "credit_tools", "calculator"),
        Page("/credit-score/report", _t("Your credit report", sec), "credit_tools", "product"),
        Page("/credit-score/identity-monitoring", _t("Identity monitoring", sec), "credit_tools", "product"),
    ]
    pages += _articles(
        "/credit-score/learn",
        "credit_learn",
        (
            "What affects your credit score",
            "How to build credit from scratch",
            "How long do late payments stay",
            "Credit utilization explained",
            "How to dispute a credit report error",
            "Does checking your score hurt it",
        ),
        sec,
    )
    return pages


def _support() -> list[Page]:
    sec = "Help Center"
    pages = [
        Page("/help", _t(sec), "help_hub", "hub", weight=3.0),
        Page("/security", _t("Security center"), "help_hub", "hub"),
        Page("/contact-us", _t("Contact us"), "contact", "hub", weight=3.0),
        Page("/contact-us/schedule-appointment", _t("Schedule an appointment"), "contact", "form", form="start"),
        Page("/contact-us/chat", _t("Chat with us"), "contact", "hub"),
    ]
    groups = {
        "help_access": (
            "Reset your password",
            "Forgot your username",
            "Two-step verification",
            "Account locked",
            "Trouble signing in",
            "Update your phone number",
        ),
        "help_fraud": (
            "Report fraud",
            "Dispute a charge",
            "Recognize phishing",
            "Common scams",
            "Identity theft help",
            "Unrecognized transaction",
        ),
        "help_cards": (
            "Activate your card",
            "Lock or unlock your card",
            "Report a lost or stolen card",
            "Replace a damaged card",
            "Set a travel notice",
            "Change your PIN",
        ),
        "help_general": (
            "Routing number",
            "Wire transfers",
            "Send money with Zelle",
            "Set up direct deposit",
            "Mobile check deposit",
            "Order checks",
            "Stop a payment",
            "Understand your statement",
            "Account fees",
            "Close an account",
            "Update your address",
        ),
    }
    for group, titles in groups.items():
        pages += _articles("/help", group, titles, sec)
    return pages


def _about() -> list[Page]:
    pages = [
        Page("/about", _t("About us"), "about", "hub", weight=2.0),
        Page("/about/leadership", _t("Leadership"), "about", "article"),
        Page("/about/community", _t("Community impact"), "about", "article"),
        Page("/about/investor-relations", _t("Investor relations"), "about", "hub"),
        Page("/newsroom", _t("Newsroom"), "about", "hub"),
        Page("/newsroom/releases/{id}", _t("Press release", "Newsroom"), "about", "article"),
        Page("/careers", _t("Careers"), "careers", "hub", weight=3.0),
        Page("/careers/benefits", _t("Benefits", "Careers"), "careers", "article"),
        Page("/careers/internships", _t("Internships and early careers", "Careers"), "careers", "article"),
        Page("/careers/search", _t("Search jobs", "Careers"), "careers_jobs", "hub", weight=3.0),
        Page("/careers/jobs/{id}", _t("Job posting", "Careers"), "careers_jobs", "job", weight=4.0),
        Page("/careers/apply?jobId={id}", _t("Apply", "Careers"), "careers_jobs", "form", form="start"),
    ]
    for area in (
        "technology",
        "branch-banking",
        "operations",
        "risk-and-compliance",
        "customer-service",
        "marketing",
    ):
        name = area.replace("-", " ").title()
        pages.append(Page(f"/careers/areas/{area}", _t(f"{name} jobs", "Careers"), "careers", "hub"))
    return pages


def _login() -> list[Page]:
    acct = "/accounts/{acct}"
    return [
        Page("/login", _t("Sign in"), "login", "login", weight=4.0),
        Page("/login/verify", _t("Verify it's you"), "login", "login"),
        Page("/enroll", _t("Enroll in online banking"), "enroll", "form", form="start", weight=2.0),
        Page("/enroll/verify-identity", _t("Verify your identity", "Enroll"), "enroll", "form"),
        Page("/enroll/create-credentials", _t("Create username and password", "Enroll"), "enroll", "form"),
        Page(f"{acct}/summary", _t("Account summary"), "accounts", "account", weight=4.0),
        Page(f"{acct}/activity", _t("Account activity"), "accounts", "account", weight=3.0),
        Page(f"{acct}/statements", _t("Statements and documents"), "accounts", "account"),
        Page(f"{acct}/transfers", _t("Transfers"), "accounts", "account"),
        Page(f"{acct}/bill-pay", _t("Bill pay"), "accounts", "account"),
        Page(f"{acct}/card-controls", _t("Card controls"), "accounts", "account"),
        Page(f"{acct}/disputes", _t("Disputes"), "accounts", "account", weight=0.5),
        Page("/settings/profile", _t("Profile and settings"), "accounts", "account"),
        Page("/application-status?appId={appId}", _t("Application status"), "app_status", "account", weight=3.0),
        Page("/application-status/lookup", _t("Check application status"), "app_status", "form"),
        Page("/application-status/upload-documents", _t("Upload documents"), "app_status", "form"),
    ]


def _apply() -> list[Page]:
    steps = ("About you", "Income and employment", "Review terms", "Review and submit")
    pages = []
    for product in PRODUCTS:
        for k, step in enumerate(steps, start=1):
            pages.append(
                Page(
                    f"/apply/step-{k}?product={product.slug}&appId={{appId}}",
                    _t(f"{product.name} application", f"Step {k} of {APPLY_STEPS}: {step}"),
                    f"apply_{k}",
                    "apply",
                    product.id,
                    form="start" if k == 1 else "submit" if k == APPLY_STEPS else None,
                )
            )
    return pages


def default_pages() -> tuple[Page, ...]:
    """Every page of the default catalogue, grouped by section."""
    builders: tuple[Callable[[], list[Page]], ...] = (
        _home, _cards, _checking, _savings, _auto, _home_loans, _investing, _business,
        _credit_score, _support, _about, _login, _apply,
    )  # fmt: skip
    return tuple(p for build in builders for p in build())


def validate_pages(pages: tuple[Page, ...]) -> None:
    """Fail on an unknown group, kind or product, a second placeholder, or a repeated path."""
    seen: set[str] = set()
    for p in pages:
        if p.group not in GROUP_SECTION:
            raise ValueError(f"page {p.path!r}: unknown group {p.group!r}; known: {', '.join(GROUPS)}")
        if p.kind not in KIND_DWELL:
            raise ValueError(f"page {p.path!r}: unknown kind {p.kind!r}; known: {', '.join(KIND_DWELL)}")
        if p.product is not None and p.product not in PRODUCT_IDS:
            raise ValueError(f"page {p.path!r}: unknown product {p.product!r}")
        if p.form not in (None, "start", "submit"):
            raise ValueError(f"page {p.path!r}: form must be 'start', 'submit' or null")
        if not p.path.startswith("/") or sum(p.path.count(h) for h in PLACEHOLDERS) > 1:
            raise ValueError(f"page {p.path!r}: path must start with '/' and hold at most one placeholder")
        if p.weight <= 0:
            raise ValueError(f"page {p.path!r}: weight must be positive")
        if p.path in seen:
            raise ValueError(f"page {p.path!r} appears twice")
        seen.add(p.path)
