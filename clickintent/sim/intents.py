"""The latent intents of the simulated world: why a visitor came, and how that shows in behaviour.

Each intent is a compact spec that `world.py` compiles into a Markov chain over page groups (landing
groups, where the journey dwells, when it ends) plus its own dwell,
device, referrer and search-query profiles and the products it is about. Who has which intent depends on
the person's segment, customer status and a few holdings (`intent_holding_keys`), nothing else, so the
placebo world stays a clean experiment. Intent names never appear in the events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
REFERRERS: tuple[str, ...] = ("direct", "organic", "paid", "email", "social", "affiliate")


def _m(**kw: float) -> Mapping[str, float]:
    return MappingProxyType(kw)


@dataclass(frozen=True)
class IntentSpec:
    name: str  # the truth label (never written to events)
    description: str  # one line for docs and taxonomy evaluation
    share: float  # base weight in the intent mix
    entry: Mapping[str, float]  # group -> weight of landing there
    groups: Mapping[str, float]  # group -> weight of moving there on each step
    device: Mapping[str, float]  # DEVICES -> weight
    referrer: Mapping[str, float]  # REFERRERS -> weight
    queries: tuple[str, ...]  # on-site search and search-engine text
    products: Mapping[str, float] = field(default_factory=dict)  # product -> weight (tiles, applications)
    stop: float = 0.18  # chance the session ends after any page
    stay: float = 0.3  # chance the next page is in the same group
    dwell_s: float = 30.0  # median seconds on a page of kind 'product'
    search: float = 1.0  # multiplier on the weight of the on-site search group
    segments: Mapping[str, float] = field(default_factory=dict)  # segment -> share multiplier
    holdings: Mapping[str, float] = field(default_factory=dict)  # held product -> share multiplier
    customer: float = 1.0  # share multiplier for customers (servicing intents are mostly theirs)


# Shopping intents land on product groups from search engines and affiliates; servicing
# intents come direct, go through login and dwell briefly; research intents read calculators and articles.
INTENTS: tuple[IntentSpec, ...] = (
    IntentSpec(
        "rewards_card",
        "Shopping for a rewards or cash-back credit card",
        8.0,
        entry=_m(home=1, cards_hub=3, card_rewards=3, card_cashback=2),
        groups=_m(cards_hub=2, card_rewards=4, card_cashback=3, card_learn=1, search=0.4, login=0.2),
        device=_m(desktop=0.5, mobile=0.44, tablet=0.06),
        referrer=_m(direct=0.15, organic=0.3, paid=0.2, email=0.1, social=0.07, affiliate=0.18),
        queries=(
            "best travel rewards card",
            "cash back credit card",
            "no annual fee card",
            "airline miles card",
            "platinum rewards",
            "card with lounge access",
            "2% cash back",
            "rewards card bonus",
        ),
        products=_m(rewards_card=0.6, cash_back_card=0.4),
        dwell_s=35,
        segments=_m(young_professional=1.5, mass_affluent=1.5, student=0.6, retiree=0.7),
    ),
    IntentSpec(
        "credit_building",
        "Building or repairing credit with a secured card and score tools",
        5.0,
        entry=_m(card_secured=3, credit_tools=3, credit_learn=2, cards_hub=1),
        groups=_m(card_secured=4, credit_tools=3, credit_learn=3, card_learn=1, cards_hub=1, search=0.5),
        device=_m(desktop=0.3, mobile=0.65, tablet=0.05),
        referrer=_m(direct=0.15, organic=0.4, paid=0.15, email=0.05, social=0.15, affiliate=0.1),
        queries=(
            "secured credit card",
            "build credit",
            "credit score low",
            "how to improve credit score",
            "card for bad credit",
            "credit builder",
            "secured card deposit",
            "first credit card",
        ),
        products=_m(secured_card=0.85, checking=0.15),
        dwell_s=40,
        segments=_m(student=3.0, young_professional=1.5, mass_affluent=0.3, retiree=0.3),
    ),
    IntentSpec(
        "balance_transfer",
        "Consolidating card debt with a balance transfer or personal loan",
        4.0,
        entry=_m(card_bt=4, cards_hub=2, card_learn=1),
        groups=_m(card_bt=5, cards_hub=2, card_learn=2, credit_tools=1, search=0.3),
        device=_m(desktop=0.55, mobile=0.4, tablet=0.05),
        referrer=_m(direct=0.1, organic=0.35, paid=0.25, email=0.1, social=0.05, affiliate=0.15),
        queries=(
            "balance transfer card",
            "0% apr",
            "consolidate credit card debt",
            "balance transfer fee",
            "intro apr 18 months",
            "pay off debt faster",
            "personal loan debt consolidation",
        ),
        products=_m(balance_transfer_card=0.75, personal_loan=0.25),
        dwell_s=45,
        segments=_m(young_professional=1.3, family=1.4, retiree=0.6, student=0.6),
    ),
    IntentSpec(
        "savings_rates",
        "Comparing savings and CD rates",
        7.0,
        entry=_m(rates=3, savings_product=3, cd_product=2, home=1),
        groups=_m(rates=2, savings_product=4, cd_product=3, savings_tools=2, search=0.4, login=0.2),
        device=_m(desktop=0.5, mobile=0.42, tablet=0.08),
        referrer=_m(direct=0.25, organic=0.3, paid=0.1, email=0.15, social=0.05, affiliate=0.15),
        queries=(
            "high yield savings",
            "cd rates",
            "12 month cd",
            "savings apy",
            "money market rates",
            "best cd rate",
            "cd ladder",
            "emergency fund",
        ),
        products=_m(savings=0.6, cd=0.4),
        dwell_s=30,
        segments=_m(retiree=2.0, mass_affluent=1.6, student=0.5),
    ),
    IntentSpec(
        "open_checking",
        "Opening a checking account",
        6.0,
        entry=_m(checking_hub=4, checking_product=3, home=1),
        groups=_m(checking_hub=3, checking_product=4, help_general=0.5, locations=0.5, search=0.4),
        device=_m(desktop=0.4, mobile=0.55, tablet=0.05),
        referrer=_m(direct=0.25, organic=0.3, paid=0.25, email=0.05, social=0.1, affiliate=0.05),
        queries=(
            "checking account",
            "open account online",
            "no fee checking",
            "student checking",
            "checking bonus",
            "second chance checking",
            "routing number",
            "overdraft fee",
        ),
        products=_m(checking=0.85, savings=0.15),
        dwell_s=28,
        segments=_m(student=2.0, young_professional=1.5, retiree=0.5),
        customer=0.5,
    ),
    IntentSpec(
        "auto_purchase",
        "Financing a new or used car",
        4.0,
        entry=_m(auto_hub=3, auto_purchase=3, auto_tools=2),
        groups=_m(auto_hub=2, auto_purchase=4, auto_tools=3, rates=0.5, search=0.3),
        device=_m(desktop=0.4, mobile=0.55, tablet=0.05),
        referrer=_m(direct=0.15, organic=0.35, paid=0.25, email=0.05, social=0.05, affiliate=0.15),
        queries=(
            "auto loan rates",
            "used car loan",
            "car payment calculator",
            "new car financing",
            "how much car can i afford",
            "auto loan preapproval",
            "dealer financing",
        ),
        products=_m(auto_loan=1.0),
        dwell_s=40,
        segments=_m(family=1.5, young_professional=1.3, student=0.7),
    ),
    IntentSpec(
        "auto_refinance",
        "Refinancing an existing car loan",
        2.5,
        entry=_m(auto_refi=4, auto_hub=2, auto_tools=1),
        groups=_m(auto_refi=5, auto_tools=3, auto_hub=1, search=0.3, login=0.3),
        device=_m(desktop=0.5, mobile=0.45, tablet=0.05),
        referrer=_m(direct=0.2, organic=0.3, paid=0.2, email=0.15, social=0.05, affiliate=0.1),
        queries=(
            "refinance car loan",
            "auto refinance rates",
            "lower car payment",
            "lease buyout",
            "refinance calculator auto",
        ),
        products=_m(auto_refinance=1.0),
        dwell_s=45,
        holdings=_m(auto_loan=5.0),
    ),
    IntentSpec(
        "mortgage_purchase",
        "Researching a mortgage to buy a home",
        5.0,
        entry=_m(mortgage_hub=3, mortgage_tools=3, mortgage_learn=2, mortgage_product=2),
        groups=_m(mortgage_hub=2, mortgage_product=4, mortgage_tools=4, mortgage_learn=3, search=0.4),
        device=_m(desktop=0.65, mobile=0.28, tablet=0.07),
        referrer=_m(direct=0.15, organic=0.4, paid=0.2, email=0.05, social=0.05, affiliate=0.15),
        queries=(
            "mortgage rates",
            "first time home buyer",
            "fha loan",
            "30 year fixed",
            "morgage calculator",
            "how much house can i afford",
            "closing costs",
            "prequalify mortgage",
            "va loan",
        ),
        products=_m(mortgage=1.0),
        stop=0.12,
        dwell_s=70,
        segments=_m(family=2.0, young_professional=1.6, student=0.2, retiree=0.4),
    ),
    IntentSpec(
        "mortgage_refinance",
        "Refinancing a mortgage",
        3.0,
        entry=_m(refi_product=5, mortgage_hub=2, rates=1),
        groups=_m(refi_product=5, mortgage_tools=2, mortgage_learn=1, mortgage_hub=1, search=0.3, login=0.3),
        device=_m(desktop=0.65, mobile=0.3, tablet=0.05),
        referrer=_m(direct=0.2, organic=0.3, paid=0.2, email=0.2, social=0.02, affiliate=0.08),
        queries=(
            "refinance rates",
            "cash out refinance",
            "should i refinance",
            "refinance calculator",
            "rate and term refinance",
            "refi closing costs",
        ),
        products=_m(mortgage_refinance=1.0),
        stop=0.13,
        dwell_s=60,
        holdings=_m(mortgage=6.0),
        segments=_m(family=1.5, mass_affluent=1.5, student=0.1),
    ),
    IntentSpec(
        "home_equity",
        "Borrowing against home equity (HELOC)",
        2.5,
        entry=_m(home_equity=5, mortgage_hub=1),
        groups=_m(home_equity=5, mortgage_tools=1, mortgage_learn=1, search=0.3, login=0.3),
        device=_m(desktop=0.6, mobile=0.33, tablet=0.07),
        referrer=_m(direct=0.2, organic=0.3, paid=0.2, email=0.2, social=0.02, affiliate=0.08),
        queries=(
            "heloc",
            "home equity loan",
            "heloc rates",
            "borrow against my home",
            "home improvement loan",
        ),
        products=_m(heloc=1.0),
        dwell_s=55,
        holdings=_m(mortgage=4.0),
        segments=_m(family=1.5, mass_affluent=1.6, retiree=1.2, student=0.1),
    ),
    IntentSpec(
        "investing_research",
        "Researching investing and retirement accounts",
        4.0,
        entry=_m(invest_hub=4, invest_learn=2, invest_product=2),
        groups=_m(invest_hub=2, invest_product=4, invest_learn=4, search=0.4, login=0.3),
        device=_m(desktop=0.65, mobile=0.3, tablet=0.05),
        referrer=_m(direct=0.25, organic=0.35, paid=0.1, email=0.15, social=0.05, affiliate=0.1),
        queries=(
            "roth ira",
            "open brokerage account",
            "rollover 401k",
            "index funds",
            "retirement calculator",
            "robo advisor fees",
            "ira contribution limit",
        ),
        products=_m(investing=1.0),
        stop=0.15,
        dwell_s=60,
        segments=_m(mass_affluent=2.5, young_professional=1.3, retiree=1.3, student=0.4),
    ),
    IntentSpec(
        "small_business",
        "Small-business banking",
        3.0,
        entry=_m(biz_hub=5, biz_product=2),
        groups=_m(biz_hub=2, biz_product=5, biz_learn=2, search=0.3, login=0.2),
        device=_m(desktop=0.7, mobile=0.25, tablet=0.05),
        referrer=_m(direct=0.25, organic=0.35, paid=0.2, email=0.1, social=0.05, affiliate=0.05),
        queries=(
            "business checking",
            "sba loan",
            "merchant services",
            "business credit card",
            "ein account",
            "payroll services",
            "line of credit business",
        ),
        products=_m(small_business=1.0),
        dwell_s=45,
        segments=_m(business_owner=12.0, student=0.1, retiree=0.3),
    ),
    IntentSpec(
        "access_trouble",
        "Cannot sign in: password, username or verification trouble",
        3.5,
        entry=_m(login=6, help_access=2, home=1),
        groups=_m(login=4, help_access=4, contact=1, accounts=1, search=0.3),
        device=_m(desktop=0.35, mobile=0.6, tablet=0.05),
        referrer=_m(direct=0.55, organic=0.2, paid=0.0, email=0.2, social=0.0, affiliate=0.05),
        queries=(
            "reset password",
            "forgot username",
            "locked out",
            "cant log in",
            "verification code",
            "sign in",
            "two step verification",
        ),
        stay=0.45,
        stop=0.22,
        dwell_s=18,
        customer=6.0,
        segments=_m(retiree=1.6),
    ),
    IntentSpec(
        "fraud_dispute",
        "Reporting fraud or disputing a charge",
        2.5,
        entry=_m(help_fraud=4, login=3, contact=1),
        groups=_m(help_fraud=4, login=2, accounts=3, contact=2, search=0.5),
        device=_m(desktop=0.45, mobile=0.5, tablet=0.05),
        referrer=_m(direct=0.6, organic=0.3, paid=0.0, email=0.08, social=0.0, affiliate=0.02),
        queries=(
            "report fraud",
            "dispute a charge",
            "unauthorized transaction",
            "scam text",
            "phishing email",
            "charge i dont recognize",
            "identity theft",
        ),
        stop=0.2,
        dwell_s=35,
        customer=6.0,
    ),
    IntentSpec(
        "card_activation_lock",
        "Activating, locking or replacing a card",
        3.0,
        entry=_m(help_cards=4, login=4),
        groups=_m(help_cards=4, login=2, accounts=3, search=0.3),
        device=_m(desktop=0.25, mobile=0.7, tablet=0.05),
        referrer=_m(direct=0.7, organic=0.2, paid=0.0, email=0.1, social=0.0, affiliate=0.0),
        queries=("activate card", "lock card", "lost card", "replace card", "travel notice", "change pin"),
        stop=0.25,
        dwell_s=15,
        customer=6.0,
        holdings=_m(rewards_card=1.5, cash_back_card=1.5, secured_card=1.5, balance_transfer_card=1.5),
    ),
    IntentSpec(
        "application_status",
        "Checking on an application already submitted",
        2.5,
        entry=_m(app_status=6, login=2),
        groups=_m(app_status=5, login=1, accounts=1, contact=1, search=0.2),
        device=_m(desktop=0.4, mobile=0.55, tablet=0.05),
        referrer=_m(direct=0.5, organic=0.1, paid=0.0, email=0.4, social=0.0, affiliate=0.0),
        queries=("application status", "check my application", "upload documents", "approval time"),
        stop=0.3,
        dwell_s=20,
    ),
    IntentSpec(
        "careers",
        "Looking for a job at the bank",
        2.5,
        entry=_m(careers=4, careers_jobs=4, about=1),
        groups=_m(careers=3, careers_jobs=5, about=1, search=0.2),
        device=_m(desktop=0.6, mobile=0.37, tablet=0.03),
        referrer=_m(direct=0.2, organic=0.4, paid=0.0, email=0.05, social=0.3, affiliate=0.05),
        queries=(
            "jobs",
            "careers",
            "teller jobs",
            "software engineer",
            "internship",
            "remote jobs",
            "branch manager",
        ),
        stop=0.15,
        dwell_s=40,
        segments=_m(student=3.0, young_professional=1.5, retiree=0.2),
        customer=0.5,
    ),
    IntentSpec(
        "casual_browsing",
        "Browsing without a clear goal: home page, news, rates, locations",
        6.0,
        entry=_m(home=6, about=1, rates=1, locations=1),
        groups=_m(
            home=2,
            about=1,
            rates=1,
            locations=1,
            cards_hub=1,
            checking_hub=1,
            help_hub=1,
            legal=0.3,
            search=0.3,
        ),
        device=_m(desktop=0.4, mobile=0.55, tablet=0.05),
        referrer=_m(direct=0.45, organic=0.25, paid=0.05, email=0.05, social=0.15, affiliate=0.05),
        queries=("hours", "branch near me", "atm", "interest rates", "phone number", "holiday hours"),
        stop=0.35,
        stay=0.1,
        dwell_s=12,
    ),
)

INTENT_NAMES: tuple[str, ...] = tuple(i.name for i in INTENTS)


def intent_holding_keys(intents: tuple[IntentSpec, ...] = INTENTS) -> tuple[str, ...]:
    """The products whose holding changes the intent mix (sorted): the placebo test stratifies on them."""
    return tuple(sorted({p for i in intents for p in i.holdings}))
