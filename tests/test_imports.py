"""The package's modules import each other without a cycle, counting the imports inside
functions too (a function-level import hides a cycle from Python, not from a reader)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnnlm"


def import_graph(package: Path = PACKAGE) -> dict:
    """{module: set of the package's modules it imports}, from every import statement in its file.

    Module-level and function-level, absolute (`rnnlm.x`, `from rnnlm import x`) and
    relative (`from .x import y`, `from . import x`). A name that is not a module
    (`from . import __version__`) counts as an import of the package's __init__.
    """
    modules = {p.stem for p in package.glob("*.py")}

    def module_of(dotted: str, alias: str | None) -> str:
        head = dotted.split(".")[0] if dotted else ""
        if head:
            return head
        return alias if alias in modules else "__init__"

    graph = {}
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == package.name or a.name.startswith(package.name + "."):
                        targets.add(module_of(a.name[len(package.name) + 1:], None))
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    if node.module != package.name and not (node.module or "").startswith(package.name + "."):
                        continue
                    within = node.module[len(package.name) + 1:]
                elif node.level == 1:
                    within = node.module or ""
                else:
                    continue        # above a flat package: not ours
                for a in node.names:
                    targets.add(module_of(within, a.name))
        targets.discard(path.stem)
        graph[path.stem] = targets
    return graph


def import_loops(graph: dict) -> list:
    """The groups of modules that import each other in a loop (strongly connected, Tarjan), sorted."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(groups)


def shortest_cycle(graph: dict, group: list) -> list:
    """[a, ..., a]: the shortest import cycle from the group's first module back to it (breadth first)."""
    start = group[0]
    parent = {start: None}
    queue = [start]
    for v in queue:
        if start in graph[v]:
            break
        for w in sorted(graph[v] & set(group)):
            if w not in parent:
                parent[w] = v
                queue.append(w)
    path = [start]
    while v != start:
        path.insert(1, v)
        v = parent[v]
    return path + [start]


def describe_loops(graph: dict) -> str:
    lines = []
    for group in import_loops(graph):
        lines.append("  " + " -> ".join(shortest_cycle(graph, group)))
        lines.append("    every import inside this loop: " + ", ".join(
            f"{a} -> {b}" for a in group for b in sorted(graph[a] & set(group))))
    return "\n".join(lines)


def test_import_loops_are_found():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert import_loops(g) == [["a", "b", "c"], ["d", "e"]]
    assert shortest_cycle(g, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert import_loops({"a": {"b"}, "b": set()}) == []
    g = {"a": {"b", "c"}, "b": {"c"}, "c": {"a"}}
    assert shortest_cycle(g, ["a", "b", "c"]) == ["a", "c", "a"]


def test_import_graph_sees_imports_inside_functions():
    g = import_graph()
    # tracking.jacobian_event imports lag_curve inside the function; cli imports every command lazily.
    assert "jacobian" in g["tracking"]
    assert "clitrain" in g["cli"] and "train" in g["clitrain"] and "jacobianrun" in g["cliinstruments"]
    assert "errors" in g["train"]          # and module-level ones


def test_no_import_cycle():
    graph = import_graph()
    assert not import_loops(graph), "import cycles in rnnlm (module -> imported module):\n" + describe_loops(graph)
