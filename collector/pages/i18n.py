"""The dashboard's words in French and English: one catalogue, the same keys in both languages.

The language is the `lang` query parameter when given (and then kept in every link), else the
first of French or English the browser's Accept-Language prefers, else French: the public this
instrument serves first reads French.
"""

from __future__ import annotations

from collections.abc import Callable

LANGS = ("fr", "en")
DEFAULT = "fr"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Surblocage: blocking on French networks",
        "tagline": "Legal services and domains made unreachable by blocking, measured by "
        "volunteers' probes on French networks.",
        "nav.overview": "Overview",
        "nav.timeline": "Timeline",
        "nav.collateral": "Collateral damage",
        "nav.api": "API",
        "lang.other": "Français",
        "headline.title": "Right now",
        "headline.services": "legal services blocked",
        "headline.domains": "legal domains unreachable",
        "headline.addresses": "blocked addresses",
        "headline.none": "No blocking measured right now.",
        "matrix.title": "Services by network",
        "matrix.help": "Each cell is the current state of a service on a network; a blocked "
        "cell links to its evidence.",
        "matrix.service": "Service",
        "matrix.category": "Category",
        "matrix.empty": "No measurement yet.",
        "state.ok": "reachable",
        "state.blocked": "blocked",
        "state.down": "down everywhere",
        "state.nodata": "no data",
        "since": "since",
        "until": "until",
        "filter.network": "Network",
        "filter.service": "Service",
        "filter.category": "Category",
        "filter.days": "Days",
        "filter.all": "all",
        "filter.apply": "Show",
        "timeline.title": "Blocked intervals",
        "timeline.help": "Each bar is a period when the service was blocked on the network; "
        "evenings (18:00-24:00, Paris time), when matches are played, are shaded.",
        "timeline.empty": "No blocking in this period.",
        "timeline.open": "still blocked",
        "timeline.closed": "lifted",
        "collateral.title": "Collateral damage: blocked addresses and what sits behind them",
        "collateral.help": "An address blocked on a network takes down every service and "
        "domain behind it, not only the one the order aimed at.",
        "collateral.address": "Address",
        "collateral.networks": "Blocked on",
        "collateral.services": "Watched services behind it",
        "collateral.domains": "Indexed legal domains behind it",
        "collateral.intended": "targeted by orders",
        "collateral.empty": "No blocked address right now.",
        "flag.title": "Blocking flag",
        "flag.network": "Network",
        "flag.service": "Service",
        "flag.method": "Method",
        "flag.resolver": "Resolver path",
        "flag.resolver.isp": "the network's own resolver",
        "flag.scope.resolver": "{resolver} blocks {service} on every network",
        "flag.state": "State",
        "flag.first_seen": "First seen",
        "flag.last_seen": "Last seen",
        "flag.closed_at": "Lifted at",
        "flag.probes": "Probes",
        "flag.confidence": "Confidence",
        "flag.control": "Control",
        "flag.evidence": "Evidence",
        "flag.history": "History of this block",
        "flag.download": "Download the evidence package (signed zip)",
        "flag.download.help": "The records, the control, the flag's history and a README, "
        "signed with the collector's key: a file a lawyer or a regulator can keep.",
        "diag.title": "What the probes' diagnostics found",
        "diag.none": "No probe diagnosed this block.",
        "diag.probe_one": "%(n)s probe",
        "diag.probe_many": "%(n)s probes",
        "diag.probes": "Diagnosed by %(n)s.",
        "diag.dns.on_path": "Answer forged on the path, seen by %(n)s.",
        "diag.dns.race": "A forged answer raced the resolver's (injection on the path), seen by "
        "%(n)s.",
        "diag.dns.none": "No answer forged on the path (the resolver itself lies), seen by %(n)s.",
        "diag.reset.path": "Reset sent by a box on the path, seen by %(n)s.",
        "diag.reset.server": "Reset sent by the server itself, seen by %(n)s.",
        "diag.reset.unknown": "Origin of the reset unknown, for %(n)s.",
        "diag.location": "Interference at hop %(hop)s (%(where)s), located there by %(n)s.",
        "diag.skipped": "%(n)s could not diagnose (no raw socket, diagnosed lately, or "
        "out of packet budget).",
        "state.open": "open",
        "state.closed": "closed",
        "m.title": "Measurement",
        "m.probe": "Probe",
        "m.target": "Target",
        "m.started": "Started",
        "m.verdict": "Verdict",
        "m.blockpage": "Block page matched",
        "m.step": "Step",
        "m.probe_side": "From the probe",
        "m.control_side": "From the collector (control)",
        "m.dns": "DNS",
        "m.tcp": "TCP",
        "m.tls": "TLS",
        "m.http": "HTTP",
        "m.diagnostics": "Diagnostics",
        "m.none": "none",
        "m.ok": "ok",
        "m.raw": "The whole record (JSON)",
        "footer": "Surblocage: an open measurement of blocking in France. Data: the JSON API "
        "and exports.",
    },
    "fr": {
        "title": "Surblocage : le blocage sur les réseaux français",
        "tagline": "Services et domaines légaux rendus injoignables par le blocage, mesurés "
        "par les sondes de bénévoles sur les réseaux français.",
        "nav.overview": "Vue d'ensemble",
        "nav.timeline": "Chronologie",
        "nav.collateral": "Dommages collatéraux",
        "nav.api": "API",
        "lang.other": "English",
        "headline.title": "En ce moment",
        "headline.services": "services légaux bloqués",
        "headline.domains": "domaines légaux injoignables",
        "headline.addresses": "adresses bloquées",
        "headline.none": "Aucun blocage mesuré en ce moment.",
        "matrix.title": "Services par réseau",
        "matrix.help": "Chaque case donne l'état actuel d'un service sur un réseau ; une case "
        "bloquée mène à ses preuves.",
        "matrix.service": "Service",
        "matrix.category": "Catégorie",
        "matrix.empty": "Aucune mesure pour l'instant.",
        "state.ok": "joignable",
        "state.blocked": "bloqué",
        "state.down": "en panne partout",
        "state.nodata": "pas de données",
        "since": "depuis",
        "until": "jusqu'au",
        "filter.network": "Réseau",
        "filter.service": "Service",
        "filter.category": "Catégorie",
        "filter.days": "Jours",
        "filter.all": "tous",
        "filter.apply": "Afficher",
        "timeline.title": "Périodes de blocage",
        "timeline.help": "Chaque barre est une période où le service était bloqué sur le "
        "réseau ; les soirées (18 h-24 h, heure de Paris), quand les matchs se jouent, sont "
        "grisées.",
        "timeline.empty": "Aucun blocage sur cette période.",
        "timeline.open": "toujours bloqué",
        "timeline.closed": "levé",
        "collateral.title": "Dommages collatéraux : les adresses bloquées et ce qu'elles hébergent",
        "collateral.help": "Une adresse bloquée sur un réseau rend injoignables tous les "
        "services et domaines qu'elle héberge, pas seulement celui que visait l'ordre.",
        "collateral.address": "Adresse",
        "collateral.networks": "Bloquée sur",
        "collateral.services": "Services suivis hébergés",
        "collateral.domains": "Domaines légaux indexés hébergés",
        "collateral.intended": "visés par des ordres",
        "collateral.empty": "Aucune adresse bloquée en ce moment.",
        "flag.title": "Signalement de blocage",
        "flag.network": "Réseau",
        "flag.service": "Service",
        "flag.method": "Méthode",
        "flag.resolver": "Résolveur",
        "flag.resolver.isp": "le résolveur du réseau",
        "flag.scope.resolver": "{resolver} bloque {service} sur tous les réseaux",
        "flag.state": "État",
        "flag.first_seen": "Vu la première fois",
        "flag.last_seen": "Vu la dernière fois",
        "flag.closed_at": "Levé le",
        "flag.probes": "Sondes",
        "flag.confidence": "Confiance",
        "flag.control": "Contrôle",
        "flag.evidence": "Preuves",
        "flag.history": "Historique de ce blocage",
        "flag.download": "Télécharger le dossier de preuves (zip signé)",
        "flag.download.help": "Les mesures, le contrôle, l'historique du signalement et un "
        "README, signés avec la clé du collecteur : un fichier qu'un avocat ou un régulateur "
        "peut conserver.",
        "diag.title": "Ce que les diagnostics des sondes ont trouvé",
        "diag.none": "Aucune sonde n'a diagnostiqué ce blocage.",
        "diag.probe_one": "%(n)s sonde",
        "diag.probe_many": "%(n)s sondes",
        "diag.probes": "Diagnostiqué par %(n)s.",
        "diag.dns.on_path": "Réponse forgée sur le chemin, vue par %(n)s.",
        "diag.dns.race": "Une réponse forgée a devancé celle du résolveur (injection sur le "
        "chemin), vue par %(n)s.",
        "diag.dns.none": "Aucune réponse forgée sur le chemin (le résolveur ment lui-même), vue "
        "par %(n)s.",
        "diag.reset.path": "Réinitialisation envoyée par un boîtier sur le chemin, vue par %(n)s.",
        "diag.reset.server": "Réinitialisation envoyée par le serveur lui-même, vue par %(n)s.",
        "diag.reset.unknown": "Origine de la réinitialisation inconnue, pour %(n)s.",
        "diag.location": "Interférence au saut %(hop)s (%(where)s), localisée là par %(n)s.",
        "diag.skipped": "%(n)s n'ont pas pu diagnostiquer (pas de socket brut, diagnostic récent "
        "ou budget de paquets épuisé).",
        "state.open": "ouvert",
        "state.closed": "clos",
        "m.title": "Mesure",
        "m.probe": "Sonde",
        "m.target": "Cible",
        "m.started": "Début",
        "m.verdict": "Verdict",
        "m.blockpage": "Page de blocage reconnue",
        "m.step": "Étape",
        "m.probe_side": "Depuis la sonde",
        "m.control_side": "Depuis le collecteur (contrôle)",
        "m.dns": "DNS",
        "m.tcp": "TCP",
        "m.tls": "TLS",
        "m.http": "HTTP",
        "m.diagnostics": "Diagnostics",
        "m.none": "aucun",
        "m.ok": "ok",
        "m.raw": "La mesure entière (JSON)",
        "footer": "Surblocage : une mesure ouverte du blocage en France. Données : l'API JSON "
        "et les exports.",
    },
}


def choose(asked: str | None, accept_language: str) -> str:
    """Return the page's language: ``asked`` (the lang parameter, already checked), else the
    first of LANGS the Accept-Language header prefers (RFC 9110 12.5.4 q-values), else DEFAULT."""
    if asked in LANGS:
        return asked
    best, best_q = DEFAULT, 0.0
    for item in accept_language.split(",")[:32]:  # a header of a thousand tags is not read whole
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().partition("-")[0]
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best


def translator(lang: str) -> Callable[[str], str]:
    """Return the function the templates call: a key -> its words in ``lang``."""
    words = MESSAGES[lang]
    return words.__getitem__
