"""The house plan of ``pipeline``: no import cycle, and no import from a later floor.

Floors, bottom up: the ground floor (shared by every stage), the stages in the
order of the workflow's DAG (data, prepare, upscale, measure, train, report), and the
glue the Snakemake rules call (``pipeline.workflow``). A module may import its
own floor and the floors below; a stage may read an earlier stage, never a
later one. Imports are read from the sources (functions included), nothing is
imported.
"""

from __future__ import annotations

from pipeline.provenance import PACKAGE, module_imports

GROUND = {
    "pipeline",
    "pipeline.config",
    "pipeline.devices",
    "pipeline.geometry",
    "pipeline.io",
    "pipeline.provenance",
    "pipeline.resize",
    "pipeline.resize_pulse",
    "pipeline.shards",
    "pipeline.smk",
    "pipeline.torch_io",
    "pipeline.vocabulary",
}
STAGES = ("data", "prepare", "upscale", "measure", "train", "report")
TOP = {"pipeline.workflow"}


def modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def floor(module: str) -> int:
    if module in GROUND:
        return 0
    if module in TOP:
        return len(STAGES) + 1
    stage = module.split(".")[1]
    assert stage in STAGES, f"{module}: on no floor of the plan (add it to tests/test_layers.py)"
    return STAGES.index(stage) + 1


def test_every_module_is_on_a_floor_and_imports_nothing_above_it() -> None:
    upward = [
        f"{module} -> {imported}"
        for module in modules()
        for imported in module_imports(module)
        if floor(imported) > floor(module)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    graph = {module: module_imports(module) for module in modules()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in graph.get(module, ()):
            if state.get(imported) == 1:
                cycle = [*path[path.index(imported) :], imported]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module)


def test_imports_are_read_from_the_sources() -> None:
    """The walk sees imports inside functions and submodules named in ``from`` imports."""
    assert "pipeline.resize_pulse" in module_imports("pipeline.resize")  # inside a function
    assert "pipeline.prepare.dlib_models" in module_imports("pipeline.measure.identity")
    assert "pipeline.upscale.specs" in module_imports("pipeline.upscale")
