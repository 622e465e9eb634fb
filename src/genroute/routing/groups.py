"""Model groups: deployments sharing a `model_name`, wildcards, aliases and fallback tables.

A deployment's id is `model_info.id` when the config gives one, else a stable id derived
from the entry (group, `provider/model`, api_base and its position among identical
entries): the same config gives the same ids in every process, so cooldowns and usage can
be shared through Redis. The API key never takes part.

Names that match a wildcard entry (`gemini-*`) each get a deployment of their own, built on
first use and kept in a least-recently-used cache of `WILDCARD_CACHE` names, so clients
sending many distinct names cannot grow memory without bound. `resident(id)` says whether
a deployment id is still in use (configured, or cached), so that routing state can forget
the others.

What a wildcard captures from a client's name becomes part of an upstream model id, which
some providers put in a URL. `check_model_id` refuses, with a 400 naming the model, what no
provider's model id looks like: control and invisible formatting characters, whitespace,
`?`, `#`, `%` and `\\`, an empty, `.` or `..` path segment, and more than
`MAX_MODEL_NAME` characters. `/` itself is allowed between other characters: OpenRouter,
Together, vLLM and Hugging Face ids contain it (`openrouter/*` is a LiteLLM pattern), and
providers escape the id wherever it goes into a path.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from genroute.config import Config, DeploymentParams, ModelEntry, RouterSettings
from genroute.errors import ConfigError, FailureReason, InvalidRequest, NotFound
from genroute.providers.base import DeploymentSpec, Provider
from genroute.routing.state import Limits

__all__ = [
    "MAX_MODEL_NAME",
    "WILDCARD_CACHE",
    "Builder",
    "Deployment",
    "ModelGroups",
    "check_model_id",
    "derived_id",
    "normalise_model_name",
    "wildcard",
]

Builder = Callable[[str, ModelEntry, str], "Deployment"]
WILDCARD_CACHE = 1024
MAX_MODEL_NAME = 256
_URL_SYNTAX = frozenset("?#%\\")
_RULES = (
    "a model id has no control characters, whitespace, '?', '#', '%' or '\\', "
    "no empty, '.' or '..' segment between '/', and at most "
    f"{MAX_MODEL_NAME} characters"
)


@dataclass(slots=True)
class Deployment:
    """One model_list entry, resolved to its provider."""

    model_name: str
    entry: ModelEntry
    spec: DeploymentSpec
    provider: Provider
    id: str = ""

    @property
    def weight(self) -> float:
        """The simple-shuffle weight: `weight`, else `rpm`, else `tpm`, else 1."""
        p = self.spec.params
        for value in (p.weight, p.rpm, p.tpm):
            if value is not None:
                return float(value)
        return 1.0

    @property
    def limits(self) -> Limits:
        """The rpm/tpm/parallel caps of this deployment."""
        p = self.spec.params
        return Limits(rpm=p.rpm, tpm=p.tpm, max_parallel=p.max_parallel_requests)


def normalise_model_name(name: str) -> str:
    """Drop the `models/` prefix the SDKs add; keep any `/` inside the id."""
    name = name.strip()
    return name[len("models/") :] if name.startswith("models/") else name


def _bad_character(text: str) -> str | None:
    for char in text:
        if char in _URL_SYNTAX or char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):
            return char
    return None


def check_model_id(model: str, captured: Iterable[str], upstream: str) -> None:
    """Refuse (InvalidRequest, naming `model`) a client's name whose wildcard captures
    `captured` make `upstream` something no provider model id looks like (module docstring)."""
    problem = None
    if len(model) > MAX_MODEL_NAME or len(upstream) > MAX_MODEL_NAME + 64:
        problem = f"it is over {MAX_MODEL_NAME} characters"
    else:
        for part in captured:
            char = _bad_character(part)
            if char is not None:
                problem = f"it contains {char!r}"
                break
        else:
            if any(segment in ("", ".", "..") for segment in upstream.split("/")):
                problem = "it has an empty, '.' or '..' path segment"
    if problem is not None:
        shown = model if len(model) <= 80 else model[:80] + "…"
        raise InvalidRequest(f"model {shown!r} is not a valid model name: {problem}; {_RULES}")


def wildcard(pattern: str) -> re.Pattern[str]:
    """A regex for a `model_name` with `*` wildcards; each `*` is a group."""
    body = "(.*)".join(re.escape(p) for p in pattern.split("*"))
    return re.compile(f"^{body}$", re.DOTALL)  # any character, so check_model_id sees it


def derived_id(model_name: str, params: DeploymentParams, occurrence: int) -> str:
    """A stable, key-free id for an entry without `model_info.id`."""
    text = "\0".join([model_name, params.model, params.api_base or "", str(occurrence)])
    return f"{params.model}#{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _fallback_table(maps: list[dict[str, list[str]]]) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for item in maps:
        for group, targets in item.items():
            table.setdefault(group, []).extend(targets)
    return table


class ModelGroups:
    """Resolves client model names to groups of deployments, and groups to fallbacks."""

    def __init__(
        self,
        config: Config,
        build: Builder,
        allow_ad_hoc_models: bool,
        *,
        wildcard_cache: int = WILDCARD_CACHE,
    ) -> None:
        self._build = build
        self.allow_ad_hoc_models = allow_ad_hoc_models
        self._groups: dict[str, list[Deployment]] = {}
        # Deployments built for names matching a wildcard (or ad hoc), least recent first.
        self._dynamic: OrderedDict[str, list[Deployment]] = OrderedDict()
        self._dynamic_limit = max(1, wildcard_cache)
        # How many cached names use each dynamic deployment id (a wildcard entry with a
        # model_info.id gives every name the same id).
        self._dynamic_ids: Counter[str] = Counter()
        self._configured_ids: frozenset[str] = frozenset()
        self._patterns: list[tuple[re.Pattern[str], ModelEntry]] = []
        self.aliases = dict(config.router_settings.model_group_alias)
        seen: dict[tuple[str, str, str], int] = {}
        for entry in config.model_list:
            if "*" in entry.model_name:
                self._patterns.append((wildcard(entry.model_name), entry))
                continue
            key = (entry.model_name, entry.params.model, entry.params.api_base or "")
            seen[key] = seen.get(key, -1) + 1
            ident = entry.model_info.id or derived_id(entry.model_name, entry.params, seen[key])
            self._groups.setdefault(entry.model_name, []).append(
                build(entry.model_name, entry, ident)
            )
        ids = [d.id for group in self._groups.values() for d in group]
        self._configured_ids = frozenset(ids)
        if len(ids) != len(set(ids)):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ConfigError(f"{config.source}: model_list: model_info.id {dup!r} is used twice")
        settings = config.router_settings
        self._fallbacks = {
            FailureReason.CONTEXT_WINDOW: _fallback_table(settings.context_window_fallbacks),
            FailureReason.CONTENT_POLICY: _fallback_table(settings.content_policy_fallbacks),
        }
        self._general = _fallback_table(settings.fallbacks)
        self._default = list(settings.default_fallbacks)
        self._check_fallbacks(config.source, settings)

    def _check_fallbacks(self, source: str, settings: RouterSettings) -> None:
        for name in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for i, item in enumerate(getattr(settings, name)):
                for group, targets in item.items():
                    for target in [group, *targets]:
                        if target != "*" and not self.knows(target):
                            raise ConfigError(
                                f"{source}: router_settings.{name}[{i}].{group}: "
                                f"no model group {target!r} in model_list"
                            )
        for target in self._default:
            if not self.knows(target):
                raise ConfigError(
                    f"{source}: router_settings.default_fallbacks: "
                    f"no model group {target!r} in model_list"
                )

    def knows(self, name: str) -> bool:
        """True if `name` is a group, an alias or matches a wildcard entry."""
        name = normalise_model_name(name)
        if name in self._groups or name in self.aliases:
            return True
        return any(pattern.match(name) for pattern, _ in self._patterns)

    @property
    def names(self) -> list[str]:
        """Every concrete group name, then wildcard patterns, then aliases."""
        patterns = [entry.model_name for _, entry in self._patterns]
        return [*self._groups, *patterns, *self.aliases]

    def canonical(self, model: str) -> str:
        """The group name `model` resolves to (aliases followed)."""
        name = normalise_model_name(model)
        if not name:
            raise InvalidRequest("model: the model name is empty")
        seen: set[str] = set()
        while name in self.aliases and name not in self._groups and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        return name

    def group(self, model: str) -> list[Deployment]:
        """The deployments serving `model`; raises NotFound for an unknown name."""
        name = self.canonical(model)
        found = self._groups.get(name)
        if found is not None:
            return found
        found = self._dynamic.get(name)
        if found is not None:
            self._dynamic.move_to_end(name)
            return found
        deployments = self._resolve_dynamic(name)
        self._dynamic[name] = deployments
        self._dynamic_ids.update(d.id for d in deployments)
        if len(self._dynamic) > self._dynamic_limit:
            _, evicted = self._dynamic.popitem(last=False)
            self._dynamic_ids.subtract(d.id for d in evicted)
            for d in evicted:
                if self._dynamic_ids[d.id] <= 0:
                    del self._dynamic_ids[d.id]
        return deployments

    def _resolve_dynamic(self, name: str) -> list[Deployment]:
        for pattern, entry in self._patterns:
            match = pattern.match(name)
            if match:
                upstream = entry.params.model
                for captured in match.groups():
                    upstream = upstream.replace("*", captured, 1)
                check_model_id(name, match.groups(), upstream)
                params = entry.params.model_copy(update={"model": upstream})
                concrete = entry.model_copy(update={"params": params})
                ident = entry.model_info.id or derived_id(name, params, 0)
                return [self._build(name, concrete, ident)]
        if self.allow_ad_hoc_models and "/" in name:
            check_model_id(name, [name], name)
            entry = ModelEntry(model_name=name, params=DeploymentParams(model=name))
            return [self._build(name, entry, derived_id(name, entry.params, 0))]
        raise NotFound(f"model {name!r} is not served here; GET models lists the models that are")

    def resident(self, deployment_id: str) -> bool:
        """Whether a deployment with this id is configured or cached (still in use)."""
        return deployment_id in self._configured_ids or deployment_id in self._dynamic_ids

    def all_deployments(self) -> list[Deployment]:
        """Every configured deployment, then those built for recently used wildcard names."""
        groups = [*self._groups.values(), *self._dynamic.values()]
        return [d for group in groups for d in group]

    def listed_deployments(self, dynamic_limit: int) -> tuple[list[Deployment], int]:
        """Every configured deployment, then those of the `dynamic_limit` most recently used
        wildcard names; and how many wildcard names were left out."""
        listed = [d for group in self._groups.values() for d in group]
        recent = list(self._dynamic.values())[-dynamic_limit:] if dynamic_limit > 0 else []
        listed += [d for group in reversed(recent) for d in group]
        return listed, len(self._dynamic) - len(recent)

    def fallbacks(self, group: str, reason: FailureReason) -> list[str]:
        """The groups to try, in order, after `group` failed for `reason`."""
        if not reason.falls_back:
            return []
        table = self._fallbacks.get(reason, self._general)
        targets = table.get(group) or table.get("*") or []
        if not targets and table is self._general:
            targets = self._default
        return [self.canonical(t) for t in targets if self.canonical(t) != group]
