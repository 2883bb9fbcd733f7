"""The embedded default: a synthetic enterprise knowledge base generated deterministically from a seed.

It is built so that each failure mode the project measures actually occurs, with ground truth:

* policies with numbered sections and clauses (600-2,000 words) whose condition and consequence sit in
  adjacent sentences, so a fixed-size window cuts clauses (``chunk_boundary``);
* procedures for several machine models with near-identical wording and different values, asked about by
  identifier (``exact_term``), plus error-code troubleshooting articles;
* policies superseded by a newer version with changed values (``stale_version``);
* team pages that procedures and policies point to, so some answers need two documents (``multi_hop``);
* Q&A knowledge-base articles asked about in other words (``simple``).

Every query carries doc-level qrels, gold evidence spans (``doc_id``, ``start``, ``end``) in its metadata,
a failure-mode ``label`` and a ``train``/``test`` split. Heading and numbering styles vary with the seed
(and per document), so no chunker can win by matching one template.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from chunkers.types import Document, Query
from retrievers.types import Qrels
from benchmarks.datasets.base import Dataset, apply_limit
from benchmarks.errors import ConfigError
from benchmarks.labels import LABELS  # the failure-mode vocabulary, defined once

SPLITS = ("train", "test", "all")

# ---------------------------------------------------------------------------------------------- vocab
TOPICS = [
    ("Travel", ["flight booking", "hotel stay", "rail ticket", "rental car"]),
    ("Expense Reimbursement", ["meal receipt", "mileage claim", "client dinner", "taxi fare"]),
    ("Remote Work", ["home office stipend", "co-working membership", "remote work agreement", "equipment loan"]),
    ("Data Retention", ["email archive", "customer contract", "payroll record", "chat transcript"]),
    ("Information Security", ["security exception", "penetration test", "vulnerability report", "firewall change"]),
    ("Access Control", ["administrator account", "badge access request", "shared mailbox", "production database role"]),
    ("Procurement", ["purchase order", "sole-source contract", "framework agreement", "capital purchase"]),
    ("Vendor Onboarding", ["supplier questionnaire", "vendor bank change", "supplier audit", "vendor risk rating"]),
    ("Annual Leave", ["carry-over request", "unpaid leave request", "leave cancellation", "sabbatical request"]),
    ("Parental Leave", ["shared parental leave", "adoption leave", "phased return plan", "keeping-in-touch day"]),
    ("Overtime", ["weekend shift", "on-call allowance", "night shift premium", "overtime pre-approval"]),
    ("Code of Conduct", ["conduct complaint", "outside employment request", "personal relationship disclosure", "dress code exemption"]),
    ("Whistleblowing", ["anonymous report", "retaliation complaint", "hotline report", "investigation summary"]),
    ("Gifts and Hospitality", ["supplier gift", "hospitality invitation", "gift register entry", "conference sponsorship"]),
    ("Conflict of Interest", ["board membership", "family employment disclosure", "investment disclosure", "side business"]),
    ("Device Usage", ["personal phone enrolment", "laptop encryption waiver", "USB storage device", "tablet request"]),
    ("Password and Authentication", ["password reset", "hardware token", "service account credential", "MFA exemption"]),
    ("Incident Response", ["severity one incident", "data breach notification", "post-incident review", "incident bridge call"]),
    ("Backup and Recovery", ["restore request", "backup failure", "offsite tape rotation", "recovery test"]),
    ("Change Management", ["emergency change", "standard change", "change freeze exception", "rollback plan"]),
    ("Recruitment", ["job requisition", "referral bonus", "interview panel", "offer letter"]),
    ("Performance Review", ["mid-year review", "performance improvement plan", "rating appeal", "calibration session"]),
    ("Learning and Development", ["external course", "certification exam", "conference attendance", "study leave"]),
    ("Health and Safety", ["near-miss report", "risk assessment", "first aid kit inspection", "lone working plan"]),
    ("Visitor Access", ["visitor badge", "escorted tour", "contractor site pass", "after-hours visit"]),
    ("Clean Desk", ["locked drawer", "confidential waste bag", "whiteboard photo", "printed report"]),
    ("Software Licensing", ["license request", "license true-up", "trial software", "license transfer"]),
    ("Open Source Usage", ["open source contribution", "copyleft component", "license scan", "dependency upgrade"]),
    ("Customer Data Privacy", ["subject access request", "data deletion request", "consent record", "cross-border transfer"]),
    ("Records Management", ["records transfer", "legal hold", "archive box", "records destruction"]),
    ("Business Continuity", ["continuity plan", "site evacuation", "crisis team call", "alternate site test"]),
    ("Company Vehicle", ["pool car booking", "fuel card", "vehicle damage report", "private mileage log"]),
    ("Mobile Phone", ["roaming request", "handset upgrade", "lost phone report", "international plan"]),
    ("Social Media", ["public post about the company", "press enquiry", "employee advocacy post", "official account request"]),
    ("Anti-Bribery", ["facilitation payment", "agent appointment", "due diligence check", "charitable donation"]),
    ("Export Control", ["export licence", "dual-use item shipment", "restricted party screening", "technical data transfer"]),
    ("Contractor Management", ["contractor extension", "statement of work", "contractor timesheet", "contractor equipment"]),
    ("Relocation", ["relocation allowance", "temporary housing", "home-finding trip", "repayment agreement"]),
    ("Tuition Assistance", ["degree programme", "tuition refund", "course transcript", "repayment waiver"]),
    ("Equipment Disposal", ["laptop disposal", "hard drive destruction", "asset write-off", "donation of equipment"]),
    ("Encryption", ["encryption key rotation", "certificate renewal", "key escrow request", "unencrypted transfer"]),
    ("Cloud Usage", ["cloud account request", "public storage bucket", "cloud cost alert", "region exception"]),
    ("Printing", ["colour printing request", "bulk print job", "secure print release", "printer relocation"]),
    ("Energy and Facilities", ["heating override", "after-hours lighting", "desk move", "workspace adjustment"]),
]
ROLES = ["Finance Director", "Chief Information Security Officer", "HR Business Partner", "Head of Legal",
         "line manager", "Compliance Officer", "Chief Operating Officer", "Facilities Manager", "Data Protection Officer",
         "Procurement Lead", "Head of Engineering", "Regional Controller"]
SYSTEMS = ["LedgerPoint", "ServiceHub", "PeopleDesk", "RiskTrack", "AssetBase", "ClaimFlow", "DocVault", "OpsBoard"]
SUBJECTS = ["an employee", "a contractor", "a team lead", "a department head", "a new starter", "a temporary worker"]
TEAMS = ["Plant Maintenance", "Field Service", "Quality Assurance", "Reliability Engineering", "Production Support",
         "Facilities Operations", "Workplace Services", "Finance Operations", "People Operations", "IT Service Desk"]
FIRST = ["Amara", "Jonas", "Priya", "Mateo", "Ingrid", "Kwame", "Sofia", "Tomasz", "Leila", "Hiro", "Nadia", "Oscar"]
LAST = ["Okafor", "Lindqvist", "Raman", "Alvarez", "Berg", "Mensah", "Costa", "Nowak", "Haddad", "Tanaka", "Petrova", "Reyes"]
FAMILIES = ["X", "RX", "HX", "TX", "MX", "PX"]
PROCEDURES = ["Calibration", "Filter Replacement", "Firmware Update", "Cold Start", "Emergency Shutdown"]

# Clause templates: (condition sentence, consequence sentence, question about the consequence).
CLAUSES = [
    ("If {subj} needs a {noun} that costs more than {amount}, a written business case is required.",
     "The business case must be approved by the {role} before any commitment is made.",
     "Who has to approve the business case for a {noun} costing more than {amount}?"),
    ("Where a {noun} is not completed within {days} days, the matter is escalated.",
     "Escalation goes to the {role}, who decides within {days2} working days whether to grant an extension.",
     "Who decides on an extension when a {noun} is not completed within {days} days?"),
    ("When {subj} reports a problem with a {noun}, the report must be logged in {system}.",
     "Reports logged later than {hours} hours after discovery are reviewed by the {role}.",
     "Who reviews a late report about a {noun}, and after how many hours is it late?"),
    ("Any {noun} that is older than {months} months must be reviewed.",
     "Items that fail the review are withdrawn and recorded in {system} by the {role}.",
     "What happens to a {noun} older than {months} months that fails its review?"),
    ("{Subj} may not share a {noun} with external parties unless the {role} has granted an exception.",
     "Such an exception is valid for at most {days} days and must be renewed in {system}.",
     "For how long is an exception to share a {noun} with external parties valid?"),
    ("Requests for a {noun} submitted fewer than {days} days in advance are treated as urgent.",
     "Urgent requests carry a surcharge of {pct} percent, charged to the requesting cost centre.",
     "What surcharge applies to a {noun} requested fewer than {days} days in advance?"),
    ("A {noun} above {amount} requires two signatures.",
     "The second signature must come from the {role}, and the record is kept in {system} for {years} years.",
     "Whose second signature is needed for a {noun} above {amount}?"),
]
FILLERS = [
    "This section applies to all staff, contractors and temporary workers, in every office and site.",
    "Managers are responsible for making sure their teams understand the rules that follow.",
    "The rules in this section are reviewed every year and after any significant incident.",
    "Questions about this section can be raised with the policy owner at any time.",
    "Records created under this section are subject to the company's retention schedule.",
    "Exceptions not covered by this section are decided case by case and documented.",
    "Local law takes precedence where it sets a stricter requirement than this section.",
    "Breaches of this section may lead to disciplinary action, up to and including dismissal.",
]
SECTION_NAMES = ["Purpose and Scope", "Definitions", "Responsibilities", "Requests and Approvals", "Limits and Thresholds",
                 "Exceptions", "Monitoring and Review", "Records", "Escalation", "Compliance", "Reporting", "Training"]

KB_TOPICS = [
    ("Resetting your VPN token", ["VPN token", "token app", "VPN client"]), ("Setting up a network printer", ["printer", "print queue", "toner"]),
    ("Replacing a lost badge", ["badge", "badge reader", "reception"]), ("Applying for a parking permit", ["parking permit", "car park", "licence plate"]),
    ("Viewing your payslip", ["payslip", "tax code", "pay date"]), ("Requesting a replacement laptop", ["laptop", "docking station", "battery"]),
    ("Reading work email on your phone", ["mail app", "phone", "device profile"]), ("Booking a meeting room", ["meeting room", "room display", "catering order"]),
    ("Getting access to a shared drive", ["shared drive", "folder owner", "access group"]), ("Requesting new software", ["software request", "software catalogue", "installer"]),
    ("Activating your expense card", ["expense card", "card PIN", "spending limit"]), ("Booking annual leave", ["holiday request", "leave balance", "team calendar"]),
    ("Changing your home address", ["home address", "emergency contact", "personal details"]), ("Joining the pension scheme", ["pension scheme", "contribution rate", "pension provider"]),
    ("Registering a visitor", ["visitor", "visitor pass", "host"]), ("Connecting to guest Wi-Fi", ["guest Wi-Fi", "guest voucher", "network name"]),
    ("Requesting an ergonomic assessment", ["ergonomic assessment", "standing desk", "monitor arm"]), ("Booking a hot desk", ["hot desk", "desk booking app", "floor plan"]),
    ("Enrolling in multi-factor authentication", ["authenticator app", "backup codes", "sign-in prompt"]), ("Reporting a phishing email", ["phishing email", "report button", "suspicious link"]),
    ("Reporting a lost laptop", ["lost laptop", "remote wipe", "police reference"]), ("Updating your name in company systems", ["name change", "email alias", "directory entry"]),
    ("Enrolling in mandatory training", ["training module", "learning portal", "completion certificate"]), ("Joining the mentoring programme", ["mentor", "mentee", "mentoring agreement"]),
    ("Joining the cycle-to-work scheme", ["bike voucher", "salary sacrifice", "bike shop"]), ("Finding a first aider", ["first aider", "first aid room", "defibrillator"]),
    ("Preparing for a fire drill", ["fire drill", "assembly point", "fire warden"]), ("Sending a parcel by courier", ["courier", "shipping label", "parcel collection"]),
    ("Ordering business cards", ["business cards", "print proof", "card design"]), ("Claiming a conference fee", ["conference fee", "registration receipt", "event budget"]),
    ("Recovering a deleted file", ["deleted file", "recycle bin", "previous version"]), ("Setting up voicemail", ["voicemail", "voicemail PIN", "greeting message"]),
]
KB_ANSWERS = [
    "Open {system}, choose '{thing_cap}' and follow the prompts; it takes about {minutes} minutes.",
    "Raise a ticket in {system} under the '{thing}' category; the {team} team responds within {hours} hours.",
    "Ask your line manager to approve it in {system}, then collect it from the {team} desk on floor {floor}.",
    "Call extension {ext} between 8am and 6pm; outside those hours use the self-service page in {system}.",
]
KB_QUESTIONS = [("How do I get a new {thing}?", "What is the process for obtaining a replacement {thing}?"),
                ("Who do I contact about my {thing}?", "Which team or extension handles questions about the {thing}?"),
                ("How long does it take to sort out the {thing}?", "How quickly is a request about the {thing} handled?"),
                ("Where do I go to change my {thing}?", "Where can the {thing} be changed?")]

STEP_TEMPLATES = {
    "Calibration": [
        "Power on the {model} and let it warm up for {minutes} minutes.",
        "Select CALIBRATE on the control panel and enter service code {code}.",
        "Place the reference weight of {weight} kg on the sensor plate.",
        "Adjust the zero offset until the display reads {offset}.",
        "Confirm the reading and press SAVE; the {model} beeps {beeps} times.",
        "Record the calibration value in the maintenance log.",
    ],
    "Filter Replacement": [
        "Switch off the {model} and isolate the supply at breaker {breaker}.",
        "Wait {minutes} minutes for the pressure to fall below {pressure} bar.",
        "Remove the filter housing cover by loosening the {bolts} retaining bolts.",
        "Fit a new filter cartridge of type {part} with the arrow pointing up.",
        "Tighten the filter housing bolts to {torque} Nm in a cross pattern.",
        "Restore power and check the differential pressure reads below {pressure2} bar.",
    ],
    "Firmware Update": [
        "Download firmware version {version} for the {model} from the service portal.",
        "Copy the image to a USB stick formatted as FAT32 and insert it into port {port}.",
        "Hold the MODE and RESET buttons together for {seconds} seconds to enter update mode.",
        "Wait until the status light turns {colour}; do not remove power during the update.",
        "Reboot the {model} and confirm the version under Settings > About.",
        "Run the self-test and record the firmware version in the asset register.",
    ],
    "Cold Start": [
        "Check that the ambient temperature is above {temp} degrees Celsius.",
        "Open coolant valve {valve} and confirm flow on the sight glass.",
        "Turn the main switch of the {model} to position {position}.",
        "Wait {minutes} minutes for the pre-heat cycle to finish.",
        "Start the drive at {rpm} rpm and increase slowly to operating speed.",
        "If error code {error} appears, stop and contact the duty engineer.",
    ],
    "Emergency Shutdown": [
        "Press the red emergency stop on the {model} front panel.",
        "Close isolation valve {valve} within {seconds} seconds.",
        "Switch the {model} breaker {breaker} to OFF and apply a lock.",
        "Vent residual pressure through port {port} until the gauge reads zero.",
        "Do not restart until the {model} has cooled below {temp} degrees Celsius.",
        "Report the shutdown in {system} within {hours} hours.",
    ],
}
# (question about one step of a procedure, index of the step that answers it)
STEP_QUESTIONS = {
    "Calibration": ("What reference weight is used when calibrating the {model}?", 2),
    "Filter Replacement": ("What torque should the filter housing bolts be tightened to on the {model}?", 4),
    "Firmware Update": ("Which firmware version should the {model} be updated to?", 0),
    "Cold Start": ("At what speed in rpm is the drive started during a cold start of the {model}?", 4),
    "Emergency Shutdown": ("Within how many seconds must the isolation valve be closed in an emergency shutdown of the {model}?", 1),
}


# ------------------------------------------------------------------------------------------- styles
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiou])")


def _fix_articles(text: str) -> str:
    """'a anonymous report' -> 'an anonymous report' (templates fill nouns after a fixed article)."""
    return _ARTICLE.sub(lambda m: m.group(1) + "n ", text)


def _section_heading(style: int, n: int, name: str) -> str:
    return [f"## {n}. {name}", f"Section {n} - {name}", f"{n}. {name.upper()}", f"# {name}", f"Article {n}: {name}"][style]


def _clause_label(style: int, sec: int, n: int) -> str:
    return [f"{sec}.{n}", f"({'abcdefghij'[n - 1]})", f"{sec}.{n}.", f"Clause {sec}.{n}:", f"{n}."][style]


def _step_label(style: int, n: int) -> str:
    return [f"Step {n}:", f"{n}.", f"{n})", f"({n})", f"- Step {n} -"][style]


# ------------------------------------------------------------------------------------------ builder
class _Text:
    """Accumulates a document's text and remembers the character span of each named piece."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.spans: dict[str, tuple[int, int]] = {}

    def add(self, text: str, key: str | None = None, sep: str = "\n") -> None:
        if self.parts:
            self.parts.append(sep)
            self.pos += len(sep)
        if key is not None:
            self.spans[key] = (self.pos, self.pos + len(text))
        self.parts.append(text)
        self.pos += len(text)

    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class _Q:
    text: str
    label: str
    evidence: list[tuple[str, str]]  # (doc_id, span key)
    extra: dict[str, Any] = field(default_factory=dict)


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.docs: dict[str, Document] = {}
        self.spans: dict[str, dict[str, tuple[int, int]]] = {}
        self.queries: list[_Q] = []

    # ------------------------------------------------------------------ helpers
    def person(self) -> str:
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    def day(self, lo: int, hi: int) -> date:
        return date(2019, 1, 1) + timedelta(days=self.rng.randint(lo, hi))

    def add_doc(self, did: str, title: str, built: _Text, meta: dict[str, Any]) -> None:
        self.docs[did] = Document(did, title, built.text(), meta)
        self.spans[did] = built.spans

    def clause_values(self, noun: str) -> dict[str, Any]:
        r = self.rng
        subj = r.choice(SUBJECTS)
        return {
            "noun": noun, "subj": subj, "Subj": subj[0].upper() + subj[1:], "role": r.choice(ROLES),
            "system": r.choice(SYSTEMS), "amount": f"{r.choice([250, 500, 750, 1000, 2500, 5000, 10000]):,} euros",
            "days": r.choice([3, 5, 7, 10, 14, 30]), "days2": r.choice([2, 3, 5]), "hours": r.choice([4, 8, 24, 48, 72]),
            "months": r.choice([6, 12, 18, 24, 36]), "pct": r.choice([5, 10, 15, 20, 25]), "years": r.choice([3, 5, 7, 10]),
        }

    # ------------------------------------------------------------------ teams
    def teams(self) -> None:
        self.team_facts: dict[str, dict[str, str]] = {}
        for name in TEAMS:
            did = "TEAM-" + name.lower().replace(" ", "-")
            facts = {"manager": self.person(), "budget": f"CC-{self.rng.randint(1000, 9999)}",
                     "site": self.rng.choice(["Rotterdam", "Leeds", "Gdansk", "Porto", "Lyon", "Aarhus"]),
                     "hours": self.rng.choice(["07:00-19:00", "08:00-18:00", "24/7", "06:00-22:00"])}
            t = _Text()
            t.add(f"{name} team")
            t.add(f"The {name} team is based in {facts['site']}.", "site")
            t.add(f"The team is managed by {facts['manager']}, who handles escalations and approvals for the team.", "manager")
            t.add(f"All costs of the {name} team are booked to budget code {facts['budget']}.", "budget")
            t.add(f"The team can be reached during {facts['hours']} through the service desk queue.", "hours")
            self.add_doc(did, f"{name} team", t, {"doc_type": "team", "effective_date": str(self.day(0, 1500)),
                                                   "version": 1, "supersedes": None, "superseded_by": None, "deprecated": False})
            self.team_facts[did] = facts

    # ------------------------------------------------------------------ policies
    def policy_text(self, code: str, topic: str, nouns: list[str], version: int, owner: str,
                    plan: list[list[dict[str, Any]]], head_style: int, clause_style: int) -> _Text:
        t = _Text()
        t.add(f"{topic} Policy ({code}, version {version})")
        t.add(f"Policy owner: the {owner} team. This policy sets the rules for {', '.join(nouns[:-1])} and {nouns[-1]}.",
              "owner")
        names = iter(SECTION_NAMES)
        for s, clauses in enumerate(plan, 1):
            t.add("", sep="\n")
            t.add(_section_heading(head_style, s, next(names)))
            fill = self.rng.sample(FILLERS, 2)
            t.add(fill[0])
            for c, vals in enumerate(clauses, 1):
                cond, cons, _ = CLAUSES[vals["template"]]
                body = _fix_articles(f"{cond.format(**vals)} {cons.format(**vals)}")
                label = _clause_label(clause_style, s, c)
                extra = f" {fill[1]}" if c == len(clauses) else ""
                t.add(f"{label} {body}{extra}", key=f"s{s}c{c}")
                # the span to retrieve is the clause itself (without its label or trailing filler)
                start = t.spans[f"s{s}c{c}"][0] + len(label) + 1
                t.spans[f"s{s}c{c}"] = (start, start + len(body))
        return t

    def policies(self) -> None:
        r = self.rng
        topics = TOPICS[:]
        r.shuffle(topics)
        versioned = set(range(16))  # the first 16 shuffled topics get a superseded older version
        team_ids = list(self.team_facts)
        for i, (topic, nouns) in enumerate(topics):
            code = f"POL-{100 + i:03d}"
            n_sections = r.randint(6, 8)
            plan = []
            for _ in range(n_sections):
                row = []
                for _ in range(r.randint(2, 4)):
                    vals = self.clause_values(r.choice(nouns))
                    vals["template"] = r.randrange(len(CLAUSES))
                    row.append(vals)
                plan.append(row)
            owner_id = r.choice(team_ids)
            owner = self.docs[owner_id].title.removesuffix(" team")
            head_style, clause_style = r.randrange(5), r.randrange(5)
            version = r.randint(2, 4) if i in versioned else 1
            current_id = f"{code}-v{version}"
            eff = self.day(900, 2300)
            meta = {"doc_type": "policy", "effective_date": str(eff), "version": version, "supersedes": None,
                    "superseded_by": None, "deprecated": False, "topic": topic}
            changed: list[tuple[int, int]] = []
            if i in versioned:
                old_plan = [[dict(v) for v in row] for row in plan]
                # the older version differs in the values of a few clauses
                cells = [(s, c) for s in range(len(plan)) for c in range(len(plan[s]))]
                changed = r.sample(cells, 3)
                for s, c in changed:
                    nv = self.clause_values(plan[s][c]["noun"])
                    for key in ("amount", "days", "hours", "months", "pct", "role", "years", "system"):
                        old_plan[s][c][key] = nv[key]
                    if all(old_plan[s][c][k] == plan[s][c][k] for k in ("amount", "days", "role")):
                        old_plan[s][c]["days"] = plan[s][c]["days"] + 1
                old_id = f"{code}-v{version - 1}"
                old_text = self.policy_text(code, topic, nouns, version - 1, owner, old_plan, head_style, clause_style)
                self.add_doc(old_id, f"{topic} Policy", old_text, {
                    "doc_type": "policy", "effective_date": str(eff - timedelta(days=r.randint(400, 900))),
                    "version": version - 1, "supersedes": None, "superseded_by": current_id, "deprecated": False,
                    "topic": topic})
                meta["supersedes"] = old_id
            text = self.policy_text(code, topic, nouns, version, owner, plan, head_style, clause_style)
            self.add_doc(current_id, f"{topic} Policy", text, meta)
            # queries -------------------------------------------------------------
            if i in versioned:
                for s, c in changed[:2]:
                    vals = plan[s][c]
                    q = _fix_articles(CLAUSES[vals["template"]][2].format(**vals))
                    q = q.replace(vals.get("amount", "\0"), "the threshold") if vals["template"] in (0, 6) else q
                    self.queries.append(_Q(f"Under the {topic} policy: {q[0].lower()}{q[1:]}", "stale_version",
                                           [(current_id, f"s{s + 1}c{c + 1}")],
                                           {"stale_doc_ids": [meta["supersedes"]], "current_doc_id": current_id}))
            else:
                cells = [(s, c) for s in range(len(plan)) for c in range(len(plan[s]))]
                for s, c in r.sample(cells, 2 if i < 36 else 1):
                    vals = plan[s][c]
                    q = _fix_articles(CLAUSES[vals["template"]][2].format(**vals))
                    self.queries.append(_Q(f"{topic} policy: {q}", "chunk_boundary", [(current_id, f"s{s + 1}c{c + 1}")]))
            if i % 4 == 0:
                attr = r.choice(["manager", "budget"])
                ask = "Who manages" if attr == "manager" else "Which budget code is used by"
                self.queries.append(_Q(f"{ask} the team that owns the {topic} policy?", "multi_hop",
                                       [(current_id, "owner"), (owner_id, attr)]))
        # a few retired policies: deprecated, with no replacement
        for j, topic in enumerate(["Fax Usage", "Pager Allowance", "Typing Pool"]):
            vals = self.clause_values(topic.lower())
            t = _Text()
            t.add(f"{topic} Policy (retired)")
            t.add(f"This policy was withdrawn and is kept for reference only. {CLAUSES[0][0].format(**vals)} "
                  f"{CLAUSES[0][1].format(**vals)}")
            self.add_doc(f"POL-9{j:02d}-v1", f"{topic} Policy", t, {
                "doc_type": "policy", "effective_date": str(self.day(0, 400)), "version": 1, "supersedes": None,
                "superseded_by": None, "deprecated": True, "topic": topic})

    # ------------------------------------------------------------------ procedures
    def procedures(self) -> None:
        r = self.rng
        family = r.choice(FAMILIES)
        numbers = sorted(r.sample([100, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800], 6))
        self.models = [f"{family}-{n}" for n in numbers]
        team_ids = [t for t in self.team_facts if t.split("-", 1)[1] in
                    ("plant-maintenance", "field-service", "quality-assurance", "reliability-engineering", "production-support")]
        pre_styles = ["Before you begin:", "Preconditions:", "Prerequisites", "You will need:"]
        for model in self.models:
            for ptype in PROCEDURES:
                did = f"PRC-{model}-{ptype.lower().replace(' ', '-')}"
                vals = {
                    "model": model, "minutes": r.choice([5, 10, 15, 20, 30]), "code": f"{r.randint(1000, 9999)}",
                    "weight": r.choice([1, 2, 5, 10, 20, 25]), "offset": f"0.{r.randint(0, 99):02d}", "beeps": r.randint(2, 4),
                    "breaker": f"CB{r.randint(1, 24)}", "pressure": r.choice([0.2, 0.5, 1.0]), "bolts": r.choice([4, 6, 8]),
                    "part": f"FC-{r.randint(100, 999)}", "torque": r.choice([12, 15, 18, 22, 25, 30, 35, 40]),
                    "pressure2": r.choice([1.5, 2.0, 2.5]), "version": f"{r.randint(2, 6)}.{r.randint(0, 9)}.{r.randint(0, 20)}",
                    "port": f"P{r.randint(1, 4)}", "seconds": r.choice([5, 10, 15, 20, 30]),
                    "colour": r.choice(["green", "blue", "amber"]), "temp": r.choice([5, 10, 15, 40, 50, 60]),
                    "valve": f"V{r.randint(1, 12)}", "position": r.choice(["I", "II", "START"]),
                    "rpm": r.choice([300, 450, 600, 750, 900, 1200]), "error": f"E-{r.randint(1000, 9999)}",
                    "system": r.choice(SYSTEMS), "hours": r.choice([4, 8, 24]),
                }
                owner_id = r.choice(team_ids)
                owner = self.docs[owner_id].title.removesuffix(" team")
                style = r.randrange(5)
                t = _Text()
                t.add(f"{model} {ptype} Procedure")
                t.add(f"Applies to: {model} units only. Owner: the {owner} team.", "owner")
                t.add(f"{r.choice(pre_styles)} wear safety glasses and gloves, read the {model} safety notes, and make sure "
                      f"a second person is present if the unit is in production.")
                for n, step in enumerate(STEP_TEMPLATES[ptype], 1):
                    body = step.format(**vals)
                    label = _step_label(style, n)
                    t.add(f"{label} {body}", key=f"step{n}")
                    start = t.spans[f"step{n}"][0] + len(label) + 1
                    t.spans[f"step{n}"] = (start, start + len(body))
                t.add(f"End of procedure. Questions go to the {owner} team.")
                self.add_doc(did, f"{model} {ptype} Procedure", t, {
                    "doc_type": "procedure", "effective_date": str(self.day(600, 2200)), "version": 1, "supersedes": None,
                    "superseded_by": None, "deprecated": False, "model": model})
                q, step_idx = STEP_QUESTIONS[ptype]
                self.queries.append(_Q(q.format(model=model), "exact_term", [(did, f"step{step_idx + 1}")]))
                attr = r.choice(["manager", "budget", "site"])
                ask = {"manager": "Who manages", "budget": "What budget code is charged by", "site": "Where is"}[attr]
                tail = " based" if attr == "site" else ""
                self.queries.append(_Q(f"{ask} the team that owns the {model} {ptype.lower()} procedure{tail}?",
                                       "multi_hop", [(did, "owner"), (owner_id, attr)]))

    # ------------------------------------------------------------------ knowledge base
    def kb(self) -> None:
        r = self.rng
        articles = KB_TOPICS[:]
        r.shuffle(articles)
        q_styles = [("Q:", "A:"), ("Question:", "Answer:"), ("**Q.**", "**A.**"), ("", "")]
        for i, (title, things) in enumerate(articles):
            did = f"KB-{1000 + i}"
            qs, ans = r.choice(q_styles)
            t = _Text()
            t.add(title)
            t.add(f"Last reviewed by the {r.choice(TEAMS)} team.")
            picked = r.sample(range(len(KB_QUESTIONS)), 3)
            for n, qi in enumerate(picked, 1):
                thing = things[(n - 1) % len(things)]
                vals = {"thing": thing, "thing_cap": thing[0].upper() + thing[1:], "system": r.choice(SYSTEMS),
                        "team": r.choice(TEAMS), "minutes": r.choice([2, 5, 10]), "hours": r.choice([4, 8, 24]),
                        "floor": r.randint(1, 9), "ext": r.randint(2000, 7999)}
                question = KB_QUESTIONS[qi][0].format(**vals)
                answer = r.choice(KB_ANSWERS).format(**vals)
                pair = f"{qs} {question}\n{ans} {answer}".strip() if qs else f"{question}\n{answer}"
                t.add("", sep="\n")
                t.add(pair, key=f"qa{n}")
                if n == 1:
                    self.queries.append(_Q(KB_QUESTIONS[qi][1].format(**vals), "simple", [(did, f"qa{n}")]))
            self.add_doc(did, title, t, {"doc_type": "kb", "effective_date": str(self.day(300, 2300)), "version": 1,
                                         "supersedes": None, "superseded_by": None, "deprecated": False})
        # troubleshooting articles: error codes per model (exact identifiers)
        for j, model in enumerate(self.models):
            did = f"KB-{2000 + j}"
            t = _Text()
            t.add(f"Troubleshooting {model} error codes")
            codes = [f"E-{r.randint(1000, 9999)}" for _ in range(4)]
            causes = r.sample(["a blocked coolant line", "a failed temperature sensor", "low supply voltage",
                               "a worn drive belt", "a firmware checksum mismatch", "an open safety interlock",
                               "a clogged filter", "a loose encoder cable"], 4)
            for n, (code, cause) in enumerate(zip(codes, causes), 1):
                t.add("", sep="\n")
                t.add(f"Q: What does error {code} mean on the {model}?\nA: Error {code} indicates {cause}. "
                      f"Stop the unit and follow the {model} maintenance procedures.", key=f"qa{n}")
            self.add_doc(did, f"Troubleshooting {model} error codes", t, {
                "doc_type": "kb", "effective_date": str(self.day(300, 2300)), "version": 1, "supersedes": None,
                "superseded_by": None, "deprecated": False, "model": model})
            n = r.randint(1, 4)
            self.queries.append(_Q(f"What causes error code {codes[n - 1]} on the {model}?", "exact_term", [(did, f"qa{n}")]))

    # ------------------------------------------------------------------ assemble
    def build(self) -> tuple[list[Document], list[Query]]:
        self.teams()
        self.policies()
        self.procedures()
        self.kb()
        queries = []
        by_label: dict[str, list[_Q]] = {}
        for q in self.queries:
            by_label.setdefault(q.label, []).append(q)
        counter = 0
        for label in LABELS:
            group = by_label.get(label, [])
            order = list(range(len(group)))
            self.rng.shuffle(order)
            n_train = len(group) // 3
            train = set(order[:n_train])
            for i, q in enumerate(group):
                counter += 1
                evidence = [{"doc_id": d, "start": self.spans[d][k][0], "end": self.spans[d][k][1]} for d, k in q.evidence]
                meta = {"label": label, "split": "train" if i in train else "test", "evidence": evidence, **q.extra}
                queries.append(Query(f"ent-{self.seed}-{counter:04d}", q.text, meta))
        return list(self.docs.values()), queries


def generate(seed: int = 0) -> tuple[list[Document], list[Query], Qrels]:
    """All documents and queries (both splits) for ``seed``; qrels from each query's evidence documents."""
    docs, queries = _Generator(int(seed)).build()
    qrels: Qrels = {q.id: {e["doc_id"]: 1 for e in q.metadata["evidence"]} for q in queries}
    return docs, queries, qrels


class EnterpriseLoader:
    """``dataset=enterprise`` (the default): generated in memory, fully offline, from ``seed``."""

    def __init__(self, *, name: str = "enterprise", seed: int = 0, split: str = "test", tune_split: str | None = None,
                 limit: int | None = None, strict: bool = True, path: str | None = None, data_dir: str = ".",
                 labels: list[str] | None = None) -> None:
        if path:
            raise ConfigError("dataset.path is not used by dataset=enterprise (it is generated); for a folder on disk "
                              "use dataset=beir dataset.path=<folder>")
        if name != "enterprise":  # the generated set has no other name: a name here is a dataset=... forgotten
            raise ConfigError(f"dataset.name={name!r} is not read by dataset=enterprise (the generated set; its runs are "
                              f"labelled enterprise-seed<N>); for a BEIR collection: dataset=beir dataset.name={name}")
        for key, value in (("dataset.split", split), ("dataset.tune_split", tune_split)):
            if value is not None and value not in SPLITS:
                raise ConfigError(f"{key} must be one of {'|'.join(SPLITS)} for dataset=enterprise, got {value!r}")
        self.name, self.seed, self.split, self.tune_split, self.limit = name, seed, split, tune_split, limit
        unknown = sorted(set(labels or []) - set(LABELS))
        if unknown:
            raise ConfigError(f"dataset.labels: unknown label(s) {unknown}; allowed: {'|'.join(LABELS)}")
        self.labels = list(labels) if labels else None


    def dataset_name(self) -> str:
        """The name runs are labelled with, known before the corpus is generated."""
        return f"{self.name}-seed{self.seed}"
    def load(self) -> Dataset:
        docs, queries, qrels = generate(self.seed)

        def select(split: str | None) -> tuple[list[Query], Qrels]:
            if split is None:
                return [], {}
            chosen = [q for q in queries if (split == "all" or q.metadata["split"] == split)
                      and (self.labels is None or q.metadata["label"] in self.labels)]
            return apply_limit(chosen, {q.id: qrels[q.id] for q in chosen}, self.limit)

        test_q, test_rel = select(self.split)
        tune_q, tune_rel = select(self.tune_split)
        return Dataset(name=self.dataset_name(), corpus=docs, queries=test_q, qrels=test_rel, split=self.split,
                       tune_queries=tune_q, tune_qrels=tune_rel, tune_split=self.tune_split, source=f"generated:seed={self.seed}")
