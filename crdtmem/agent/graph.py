"""A knowledge graph on a :class:`~crdtmem.memory.Memory`: entities, observations, relations.

It is the model of the reference MCP memory server (``@modelcontextprotocol/server-memory``),
with the same operations and results, kept in three CRDTs so that every replica writes it
concurrently and all replicas converge::

    graph = KnowledgeGraph(memory)
    graph.create_entities([{"name": "Ada", "entityType": "person", "observations": ["wrote notes"]}])
    graph.create_relations([{"from": "Ada", "to": "Engine", "relationType": "programs"}])
    graph.read_graph()  # {"entities": [...], "relations": [...]}

Objects (``NAME`` is the graph name, ``graph`` by default):

- ``NAME.entities``: OR-Map entity name -> entityType (last writer wins).
- ``NAME.observations``: OR-Map (entity name, observation) -> None; an OR-Set whose entries
  also carry the stamp of their add, so each entity's observations list oldest first.
- ``NAME.relations``: OR-Map (from, to, relationType) -> None, listed oldest first.

Concurrent writes on different replicas are all kept. Where a single-file server would have
applied one write after the other, the CRDT rule is **add wins**: a delete removes only what
its replica had seen. So an entity deleted on one replica while another adds observations to
it survives, holding only the concurrently added observations (``add_observations`` re-writes
the entity it adds to); a relation created concurrently with the delete of one of its ends
survives, dangling (the reference server lets relations name missing entities too). Two
replicas creating the same entity name concurrently get one entity holding both replicas'
observations; its entityType is the last writer's.

Entities list by name (every replica shows the same order); observations and relations list
in the order they were added.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from ..errors import CrdtmemError, DecodeError
from ..values import decode_value

__all__ = ["KnowledgeGraph", "EntityNotFoundError", "Entity", "Relation", "Graph"]


class Entity(TypedDict):
    """A node: its unique name, its type, and what is known about it."""

    name: str
    entityType: str
    observations: list[str]


Relation = TypedDict("Relation", {"from": str, "to": str, "relationType": str})
"""A directed edge, in active voice: ``from`` ``relationType`` ``to``."""


class Graph(TypedDict):
    entities: list[Entity]
    relations: list[Relation]


class EntityNotFoundError(CrdtmemError, LookupError):
    """``add_observations`` named an entity the graph does not hold (nothing was written)."""


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _texts(values: Any, what: str) -> list[str]:
    """The strings of ``values``, duplicates dropped, first occurrence kept."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{what} must be a list of strings, got {type(values).__name__}")
    return list(dict.fromkeys(_text(v, what) for v in values))


def _relation_key(relation: Any) -> tuple[str, str, str]:
    if not isinstance(relation, dict):
        raise TypeError(f"a relation must be an object, got {type(relation).__name__}")
    return (_text(relation.get("from"), "from"), _text(relation.get("to"), "to"),
            _text(relation.get("relationType"), "relationType"))


def _is_key(key: Any, size: int) -> bool:
    """Whether ``key`` is a tuple of ``size`` strings (another writer may have stored anything)."""
    return isinstance(key, tuple) and len(key) == size and all(isinstance(part, str) for part in key)


def _decoded_key(encoded: bytes, size: int) -> Any:
    """The key ``encoded`` names if it is a tuple of ``size`` strings, else None."""
    try:
        key = decode_value(encoded)
    except DecodeError:
        return None
    return key if _is_key(key, size) else None


def _relation(key: tuple[str, str, str]) -> Relation:
    return {"from": key[0], "to": key[1], "relationType": key[2]}


class KnowledgeGraph:
    """The shared knowledge graph ``name`` of ``memory``.

    Create one per memory and graph name, on the thread that writes the memory; it keeps no
    graph state of its own (only decoded keys), so remote changes show in the next read. Every method takes and returns
    the JSON shapes of the reference memory server's tools.

    Args:
        memory: the replica to read and write.
        name: prefix of the three objects the graph keeps (see the module docstring).
    """

    def __init__(self, memory: Any, name: str = "graph") -> None:
        self._memory = memory
        self._names = (f"{name}.entities", f"{name}.observations", f"{name}.relations")
        self._keys: dict[str, dict[bytes, Any]] = {}  # per map: live encoded key -> decoded (None: bad shape)
        for object_name in self._names:
            memory.map(object_name)  # fail now, not mid-write, if a name holds another type

    @property
    def memory(self) -> Any:
        """The replica the graph lives in."""
        return self._memory

    @property
    def object_names(self) -> tuple[str, str, str]:
        """The memory objects holding the graph: watch them with ``memory.on_change``."""
        return self._names

    @property
    def _entities(self) -> Any:
        return self._memory.map(self._names[0])

    @property
    def _observations(self) -> Any:
        return self._memory.map(self._names[1])

    @property
    def _relations(self) -> Any:
        return self._memory.map(self._names[2])

    def _oldest_first(self, object_name: str, size: int) -> list[Any]:
        """The keys (tuples of ``size`` strings) of one map, oldest write first (ties broken by
        writer, then key); keys of any other shape are skipped."""
        state = self._memory.state(object_name)
        if state is None:
            return []
        rows = sorted(state.items(), key=lambda row: (row[1][0], row[1][1], row[0]))
        known = self._keys.get(object_name, {})
        decoded = self._keys[object_name] = {key: known[key] if key in known else _decoded_key(key, size)
                                             for key, _ in rows}  # decode each key once, keep live ones only
        return [key for key in decoded.values() if key is not None]

    # -- writes -----------------------------------------------------------------------------

    def create_entities(self, entities: Iterable[Entity]) -> list[Entity]:
        """Add the entities whose name is new; call when an agent learns of new things.

        Entities whose name the graph already holds are ignored (their type and observations
        are left alone; use :meth:`add_observations`). A name repeated within ``entities``
        counts once, its first occurrence.

        Returns:
            the entities added, as given (observations without duplicates).
        """
        added: list[Entity] = []
        handle, seen = self._entities, set()
        plan = []
        for entity in entities:
            if not isinstance(entity, dict):
                raise TypeError(f"an entity must be an object, got {type(entity).__name__}")
            name = _text(entity.get("name"), "name")
            entity_type = _text(entity.get("entityType"), "entityType")
            observations = _texts(entity.get("observations"), "observations")
            if name in seen or name in handle:
                continue
            seen.add(name)
            plan.append((name, entity_type, observations))
        for name, entity_type, observations in plan:
            handle.put(name, entity_type)
            for observation in observations:
                self._observations.put((name, observation), None)
            added.append({"name": name, "entityType": entity_type, "observations": observations})
        return added

    def create_relations(self, relations: Iterable[Relation]) -> list[Relation]:
        """Add the relations not already present; call to connect entities (active voice).

        The ends need not exist (as in the reference server).

        Returns:
            the relations added.
        """
        keys = list(dict.fromkeys(_relation_key(r) for r in relations))
        handle = self._relations
        new = [key for key in keys if key not in handle]
        for key in new:
            handle.put(key, None)
        return [_relation(key) for key in new]

    def add_observations(self, observations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add facts to existing entities; call when an agent learns more about known things.

        Raises:
            EntityNotFoundError: some ``entityName`` is not in the graph; nothing is written.

        Returns:
            per request item, ``{"entityName", "addedObservations"}``: the contents that were
            not already observed.
        """
        plan = []
        for item in observations:
            if not isinstance(item, dict):
                raise TypeError(f"an observation request must be an object, got {type(item).__name__}")
            plan.append((_text(item.get("entityName"), "entityName"), _texts(item.get("contents"), "contents")))
        entities, held = self._entities, self._observations
        for name, _ in plan:
            if name not in entities:
                raise EntityNotFoundError(f"Entity with name {name} not found")
        results = []
        for name, contents in plan:
            new = [content for content in contents if (name, content) not in held]
            for content in new:
                held.put((name, content), None)
            if new:
                # Re-write the entity so that it survives a concurrent delete with its new facts.
                entities.put(name, entities.get(name))
            results.append({"entityName": name, "addedObservations": new})
        return results

    def delete_entities(self, entity_names: Iterable[str]) -> None:
        """Delete entities, their observations and every relation from or to them."""
        names = set(_texts(list(entity_names), "entityNames"))
        entities, held, relations = self._entities, self._observations, self._relations
        for name in sorted(names):
            entities.remove(name)
        for key in held.keys():
            if _is_key(key, 2) and key[0] in names:
                held.remove(key)
        for key in relations.keys():
            if _is_key(key, 3) and (key[0] in names or key[1] in names):
                relations.remove(key)

    def delete_observations(self, deletions: Iterable[dict[str, Any]]) -> None:
        """Delete the given observations of the given entities; absent ones are ignored."""
        held = self._observations
        for item in deletions:
            if not isinstance(item, dict):
                raise TypeError(f"a deletion must be an object, got {type(item).__name__}")
            name = _text(item.get("entityName"), "entityName")
            for observation in _texts(item.get("observations"), "observations"):
                held.remove((name, observation))

    def delete_relations(self, relations: Iterable[Relation]) -> None:
        """Delete the given relations; absent ones are ignored."""
        handle = self._relations
        for key in [_relation_key(r) for r in relations]:
            handle.remove(key)

    # -- reads ------------------------------------------------------------------------------

    def read_graph(self) -> Graph:
        """The whole graph: every entity with its observations, and every relation."""
        return self._subgraph(lambda entity: True, lambda relation, names: True)

    def search_nodes(self, query: str) -> Graph:
        """Entities whose name, type or an observation contains ``query`` (case-insensitive),
        and the relations with at least one end among them."""
        needle = _text(query, "query").lower()

        def matches(entity: Entity) -> bool:
            return (needle in entity["name"].lower() or needle in entity["entityType"].lower()
                    or any(needle in o.lower() for o in entity["observations"]))

        return self._subgraph(matches, lambda key, names: key[0] in names or key[1] in names)

    def open_nodes(self, names: Iterable[str]) -> Graph:
        """The named entities (missing names are skipped) and the relations with at least one
        end among them."""
        wanted = set(_texts(list(names), "names"))
        return self._subgraph(lambda e: e["name"] in wanted, lambda key, found: key[0] in found or key[1] in found)

    def _subgraph(self, keep_entity: Any, keep_relation: Any) -> Graph:
        entity_types = {k: v for k, v in self._entities.value.items() if isinstance(k, str) and isinstance(v, str)}
        observed: dict[str, list[str]] = {name: [] for name in entity_types}
        for name, observation in self._oldest_first(self._names[1], 2):
            if name in observed:
                observed[name].append(observation)
        entities: list[Entity] = []
        for name in sorted(entity_types):
            entity: Entity = {"name": name, "entityType": entity_types[name], "observations": observed[name]}
            if keep_entity(entity):
                entities.append(entity)
        found = {entity["name"] for entity in entities}
        relations = [_relation(key) for key in self._oldest_first(self._names[2], 3) if keep_relation(key, found)]
        return {"entities": entities, "relations": relations}
